"""Report writing: a ``BenchResult`` as Markdown tables (plain GFM), the headline table
of the README, and a chart of the ratios.

Every ratio is ghostnp's time (or memory) over PyTorch's, per round, so that both come
from the same moment of the machine; a table gives its median and its range over rounds.
Below 1, ghostnp is faster.
"""

from __future__ import annotations

from .runner import GEMM_SHAPE, BenchResult, RowResult

__all__ = ["HEADLINE", "headline_rows", "markdown", "plot", "readme_table", "replace_section"]

# (what, how to find it, target): the numbers the speed work is judged by.
HEADLINE = [
    ("depthwise 3x3, C240 @14x14, N=16, fwd+bwd", "dw 3x3 s1 240 @14x14", "≤ 1.0"),
    ("depthwise 3x3, C480 @7x7", "dw 3x3 s1 480 @7x7", "≤ 1.0"),
    ("depthwise layers at 56-112 px", "dw>=56", "keep"),
    ("dense 3x3 64->128 @56x56", "dense 3x3 s1 64->128 @56x56", "≤ 1.2"),
    ("pointwise 80->240 @14x14", "1x1 80->240 @14x14", "≤ 1.2"),
    ("GhostNet-1.0x SGD step, batch 16, 224x224", "train b16 224", "≤ 0.9"),
    ("GhostNet-1.0x inference, batch 1, 224x224", "infer b1 224", "≤ 0.9"),
    ("training-step peak memory above the pre-step size", "memory", "≤ 1.2"),
    ("compile cost on an empty cache (`ghostnp train --epochs 1`)", "compile", "≤ 10 s"),
]


def network_note() -> str:
    """What the whole-network workloads run (says whether ``ghostnp.no_grad`` exists)."""
    import ghostnp

    if hasattr(ghostnp, "no_grad"):
        how = "ghostnp under `ghostnp.no_grad()`"
    else:
        how = "ghostnp without `ghostnp.no_grad()` (this version has none: caches are kept)"
    return (
        "`train`: forward, cross-entropy, backward and an SGD step with momentum; "
        f"`infer`: eval mode, {how}, PyTorch under `torch.inference_mode()`."
    )


BUSY_WARNING = (
    "**Warning: other processes used a median {load:.2f} cores during the rounds.** The "
    "blocks of a round then get different shares of the cores, and the ratios scatter "
    "(see the range column); with more than one thread, PyTorch's OpenMP threads also "
    "wait for each other at every barrier while a core is taken, which favours ghostnp. "
    "Rerun on a quiet machine."
)


def _busy(result: BenchResult) -> bool:
    m = result.machine
    return m["foreign_median"] is not None and m["foreign_median"] > m["busy_limit"]


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.0f}"


def _range(lo: float, hi: float) -> str:
    return f"{lo:.2f}-{hi:.2f}"


def headline_rows(result: BenchResult) -> list[tuple[str, str, str, str]]:
    """(what, ghostnp/PyTorch, range over rounds, target) for each headline number this
    run measured (the quick run has no memory, compile or batch-16 training rows)."""
    out = []
    for what, key, target in HEADLINE:
        if key == "dw>=56":
            dws = [
                r
                for r in result.rows
                if r.row.shape is not None and r.row.shape.depthwise and r.row.shape.h >= 56
            ]
            if dws:
                meds = [r.ratio().median for r in dws]
                lo = min(r.ratio().lo for r in dws)
                hi = max(r.ratio().hi for r in dws)
                out.append(
                    (
                        f"{what} ({len(dws)} layers)",
                        _range(min(meds), max(meds)),
                        _range(lo, hi),
                        target,
                    )
                )
        elif key == "memory":
            if result.memory:
                g, t = _median(result.memory["ghostnp"]), _median(result.memory["torch"])
                out.append((f"{what} ({g:.0f} vs {t:.0f} MiB)", f"{g / t:.2f}", "", target))
        elif key == "compile":
            if result.compile:
                c = result.compile
                text = f"{c['cost_s']:.0f} s ({c['cold_s']:.0f} s vs {c['warm_s']:.0f} s)"
                out.append((what, text, "", target))
        else:
            res = result.get(key)
            if res is not None:
                q = res.ratio()
                out.append((what, f"{q.median:.2f}", _range(q.lo, q.hi), target))
    return out


def _median(values) -> float:
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else 0.5 * (v[n // 2 - 1] + v[n // 2])


def _table(header: list[str], align: str, rows: list[list[str]]) -> list[str]:
    rule = "|" + "|".join("--:" if a == "r" else "---" for a in align) + "|"
    return ["| " + " | ".join(header) + " |", rule] + ["| " + " | ".join(r) + " |" for r in rows]


def machine_line(result: BenchResult) -> str:
    """One paragraph: the machine, the threads, the versions, the load, the duration."""
    m = result.machine
    th = m["threads"]
    same = len({th["numba"], th["torch"], th["openblas"]}) == 1
    threads = (
        f"{th['numba']} thread{'' if th['numba'] == 1 else 's'} each for Numba, OpenBLAS and PyTorch"
        if same
        else f"threads: Numba {th['numba']}, OpenBLAS {th['openblas']}, PyTorch {th['torch']}"
    )
    if th.get("numba_layer"):
        threads += f" (Numba's {th['numba_layer']} threading layer)"
    load = ""
    if m["foreign_median"] is not None:
        load = (
            f" Other processes used a median {m['foreign_median']:.2f} cores during a round "
            f"(at most {m['foreign_max']:.2f}); {m['rounds_retried']} of {m['rounds_total']} "
            "rounds were repeated because other processes were busy, and "
            f"{m['rounds_busy']} were kept with more than {m['busy_limit']} cores busy."
        )
    return (
        f"Run {m['date']} ({result.mode}, {m['seconds']:.0f} s): {m['platform']} ({m['cpu']}); "
        f"{threads}; {m['versions']}.{blas_sentence(th.get('blas'))} {m['rounds']} rounds per "
        f"row, blocks of at least {m['min_time'] * 1e3:.0f} ms. Load average "
        f"{m['load_start']} at the start, {m['load_end']} at the end.{load}"
    )


def blas_sentence(blas: dict | None) -> str:
    """' NumPy's BLAS: ...' naming its kernels, what chose them and the GEMM rate; '' if unknown."""
    if not blas:
        return ""
    kernels = f", its {blas['kernels']} kernels" if blas.get("kernels") else ""
    if blas.get("coretype"):
        kernels += f" (chosen by OPENBLAS_CORETYPE={blas['coretype']}"
        kernels += ", on a CPU with AVX-512)" if blas.get("avx512") else ")"
    m, k, n = GEMM_SHAPE
    return (
        f" NumPy's BLAS: {blas['name']}{kernels}; a float32 product ({m}x{k}) @ ({k}x{n}) "
        f"runs at {blas['gflops']:.0f} GFLOP/s."
    )


def _pair_rows(rows: list[RowResult], with_count: bool) -> list[list[str]]:
    out = []
    for res in rows:
        a, b = res.names[:2]
        q = res.ratio()
        cells = [res.row.key]
        if with_count:
            s = res.row.shape
            cells.append(str(s.count) if s is not None and s.count else "—")
        cells += [
            _ms(res.time(a).median),
            _ms(res.time(b).median),
            f"{q.median:.2f}",
            _range(q.lo, q.hi),
        ]
        out.append(cells)
    return out


def markdown(result: BenchResult, heading: str = "###") -> str:
    """The whole result as Markdown: machine line, self-check, headline, layers,
    whole network, col2im, memory and compile tables."""
    h = heading
    lines = [machine_line(result), ""]
    if _busy(result):
        lines += [BUSY_WARNING.format(load=result.machine["foreign_median"]), ""]
    if result.check is not None:
        lines += [
            f"{h} Self-check: PyTorch timed by the harness and by torch.utils.benchmark",
            "",
            f"Each must agree within x{result.check.limit}, or no table is printed.",
            "",
        ]
        rows = [[k, _ms(hs), _ms(ds), f"{hs / ds:.2f}"] for k, hs, ds in result.check.rows]
        lines += _table(["layer, fwd+bwd", "harness ms", "direct ms", "ratio"], "lrrr", rows)
        lines += ["", "Passed." if result.check.ok else "FAILED.", ""]
    head = headline_rows(result)
    if head:
        lines += [f"{h} Headline: ghostnp / PyTorch", ""]
        lines += _table(
            ["what", "ghostnp / PyTorch", "range", "target"], "lrrr", [list(r) for r in head]
        )
        lines.append("")
    layers = [r for r in result.rows if r.row.group == "layers"]
    batch = layers[0].row.shape.n if layers and layers[0].row.shape else "?"
    for group, title, first, names, note in (
        (
            "layers",
            f"Convolutions, forward + backward, float32, batch {batch}",
            ["layer", "in GhostNet"],
            ["ghostnp ms", "PyTorch ms"],
            "",
        ),
        (
            "network",
            "GhostNet-1.0x, whole network",
            ["workload"],
            ["ghostnp ms", "PyTorch ms"],
            network_note(),
        ),
        (
            "col2im",
            "col2im: the NumPy reference against np.add.at",
            ["columns of"],
            ["reference ms", "np.add.at ms"],
            "",
        ),
    ):
        rows = [r for r in result.rows if r.row.group == group]
        if rows:
            header = [*first, *names, "ratio", "range"]
            lines += [f"{h} {title}", ""]
            lines += _table(header, "l" + "r" * (len(header) - 1), _pair_rows(rows, len(first) > 1))
            lines += ["", note, ""] if note else [""]
    if result.memory:
        g, t = result.memory["ghostnp"], result.memory["torch"]
        lines += [f"{h} Peak memory of training steps (batch 16, 224x224)", ""]
        lines += _table(
            ["", "ghostnp MiB", "PyTorch MiB", "ratio"],
            "lrrr",
            [
                [
                    "peak above the resident set before the steps",
                    f"{_median(g):.0f}",
                    f"{_median(t):.0f}",
                    f"{_median(g) / _median(t):.2f}",
                ],
                [
                    "each fresh process",
                    ", ".join(f"{v:.0f}" for v in g),
                    ", ".join(f"{v:.0f}" for v in t),
                    "",
                ],
            ],
        )
        lines.append("")
    if result.compile:
        c = result.compile
        loads = ", ".join("?" if v is None else f"{v:.2f}" for v in c["foreign"])
        cmd = c.get("command", "ghostnp")
        lines += [f"{h} Compile cost: `{cmd} train --epochs 1`, fresh processes", ""]
        lines += _table(
            ["kernel cache", "wall s"],
            "lr",
            [
                ["empty (compiles every kernel it uses)", f"{c['cold_s']:.1f}"],
                ["warm (median of the later runs)", f"{c['warm_s']:.1f}"],
                ["compile cost", f"{c['cost_s']:.1f}"],
            ],
        )
        lines += ["", f"Other processes' load during each run, cores: {loads}.", ""]
    return "\n".join(lines).rstrip() + "\n"


def readme_table(result: BenchResult) -> str:
    """The README's speed table: the headline rows, ratio and range only, and a line
    with the run's date, thread count and load."""
    rows = [[w, r, g, t] for w, r, g, t in headline_rows(result)]
    m = result.machine
    n = m["threads"]["numba"]
    caption = f"Run {m['date']}, {n} thread{'' if n == 1 else 's'} each."
    if _busy(result):
        caption += (
            f" Other processes used a median {m['foreign_median']:.2f} cores meanwhile: "
            "the ratios scatter widely (see the ranges); rerun on a quiet machine."
        )
    table = _table(["", "ghostnp / PyTorch", "range", "target"], "lrrr", rows)
    return "\n".join([*table, "", caption]) + "\n"


def replace_section(text: str, new: str, start: str, end: str) -> str:
    """``text`` with what lies between the marker lines ``start`` and ``end`` replaced
    by ``new``; ValueError when a marker is missing."""
    i, j = text.find(start), text.find(end)
    if i < 0 or j < i:
        raise ValueError(f"replace_section: markers {start!r} ... {end!r} not found in order")
    return text[: i + len(start)] + "\n" + new.strip("\n") + "\n" + text[j:]


def plot(result: BenchResult, path) -> None:
    """A bar chart (PNG at ``path``) of ghostnp/PyTorch per layer and workload: the
    median with the range over rounds as an error bar, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, NullFormatter

    groups = [
        ("layers", "convolutions, forward + backward, batch 16"),
        ("network", "whole GhostNet-1.0x"),
    ]
    data = [([r for r in result.rows if r.row.group == g], t) for g, t in groups]
    data = [(rows, t) for rows, t in data if rows]
    heights = [len(rows) for rows, _ in data]
    fig, axes = plt.subplots(
        len(data),
        1,
        figsize=(7.5, 0.16 * sum(heights) + 1.8 * len(data)),
        height_ratios=heights,
        layout="constrained",
        squeeze=False,
    )
    for ax, (rows, title) in zip(axes[:, 0], data, strict=True):
        qs = [r.ratio() for r in rows]
        y = list(range(len(rows)))
        med = [q.median for q in qs]
        err = [[q.median - q.lo for q in qs], [q.hi - q.median for q in qs]]
        colors = ["tab:green" if m <= 1 else "tab:red" for m in med]
        ax.barh(y, med, 0.7, xerr=err, color=colors, error_kw={"lw": 0.7, "capsize": 1.5})
        ax.set_yticks(y, [r.row.key for r in rows], fontsize=6)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.axvline(1.0, color="k", lw=0.8)
        lo, hi = ax.get_xlim()
        ticks = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 10)
        ax.set_xticks([v for v in ticks if lo <= v <= hi])
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(title, fontsize=9)
    axes[-1, 0].set_xlabel("time ghostnp / time PyTorch (log scale; below 1: ghostnp faster)")
    fig.savefig(path, dpi=110)
    plt.close(fig)
