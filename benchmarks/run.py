"""Benchmark ghostnp against PyTorch CPU and write docs/benchmarks.md.

    python benchmarks/run.py            # full: every GhostNet layer, network, memory, compile
    python benchmarks/run.py --quick    # a few representative layers, under a minute

The measuring code is ``ghostnp.bench`` (also behind ``ghostnp bench``); this script adds
the file around the tables. Time it on an otherwise idle machine: with other jobs
running, every multi-threaded implementation slows down erratically (threads that wait
at a barrier for a preempted partner), and the ratios stop meaning anything. The full
run takes about ten minutes on two cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ghostnp.bench import run_bench

ROOT = Path(__file__).resolve().parent.parent

PREAMBLE = """# Benchmarks

ghostnp (its Numba kernels, and its NumPy reference kernels) against PyTorch on the CPU,
measured in one run of `python benchmarks/run.py --full` with the same number of threads
for all three. Times are medians in milliseconds; a ratio below 1 means ghostnp is faster.
How it is measured, and why each implementation runs in its own worker processes, is
described in `ghostnp/bench.py`; `ghostnp bench` prints the quick version of these tables.

Read single rows with care: one layer's time moves by 10-20% from run to run on a shared
machine. The 1x1 rows show the size of it, since their `numba` and `numpy ref` columns
run the same code (a 1x1 convolution is a plain matrix product on either backend).

"""


def before_section(path: Path, title: str) -> str:
    """An earlier benchmarks file as one section: its tables, headings one level down."""
    text = path.read_text()
    start = text.find("Run on ")  # drop the earlier file's own title and preamble
    body = text[start:] if start >= 0 else text
    body = "\n".join("#" + line if line.startswith("#") else line for line in body.splitlines())
    return f"## {title}\n\n{body.strip()}\n"


def _rows(md: str, heading: str) -> dict:
    """{label: numba/torch ratio} from the first table under a heading containing
    ``heading`` ("Convolution layers" or "whole network"), at any heading level."""
    lines = md.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.startswith("#") and heading in ln), None)
    if start is None:
        return {}
    layers = heading == "Convolution layers"
    rows = {}
    for line in lines[start + 1 :]:
        if line.startswith("#"):
            break
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        try:
            ratio = float(cells[7 if layers else 4])
        except (IndexError, ValueError):
            continue  # the header and the rule
        rows[f"{cells[1]} {cells[2]}" if layers else cells[0]] = ratio
    return rows


def plot_ratios(after: str, before: str | None, path: Path) -> None:
    """Bar chart of ghostnp-numba / torch, per layer and per workload, before and after."""
    import matplotlib  # only this command draws: imported here

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    panels = [
        ("Convolution layers", "GhostNet-1.0x's convolutions, forward + backward, batch 16"),
        ("whole network", "whole GhostNet-1.0x"),
    ]
    data = [(_rows(after, h), _rows(before or "", h), t) for h, t in panels]
    heights = [max(len(a), 1) for a, _, _ in data]
    fig, axes = plt.subplots(
        2, 1, figsize=(8, 0.17 * sum(heights) + 2.5), height_ratios=heights, layout="constrained"
    )
    for ax, (now, old, title) in zip(axes, data, strict=True):
        labels = list(now)
        y = range(len(labels))
        if old:
            ax.barh([i + 0.2 for i in y], [old.get(k, 0) for k in labels], 0.4, label="before")
        ax.barh([i - 0.2 for i in y], [now[k] for k in labels], 0.4, label="now")
        ax.set_yticks(list(y), labels, fontsize=6)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.axvline(1.0, color="k", lw=0.8)
        lo, hi = ax.get_xlim()
        ax.set_xticks([v for v in (0.05, 0.1, 0.2, 0.5, 0.7, 1, 1.5, 2, 3, 5, 10) if lo <= v <= hi])
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, loc="lower right")
    axes[-1].set_xlabel("time ghostnp (Numba) / time PyTorch, log scale: left of 1 is faster")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="a few layers, small repeats (< 60 s)")
    mode.add_argument("--full", action="store_true", help="everything (the default)")
    p.add_argument("--out", default=None, help="markdown file to write (full: docs/benchmarks.md)")
    p.add_argument("--no-write", action="store_true", help="only print the tables")
    p.add_argument(
        "--before",
        default=None,
        metavar="FILE",
        help="an earlier run's markdown file, appended as a 'before' section",
    )
    p.add_argument(
        "--before-title",
        default="An earlier run",
        help="the heading of the --before section",
    )
    args = p.parse_args(argv)

    quick = args.quick
    t0 = time.perf_counter()
    table = run_bench(quick=quick, progress=lambda m: print(f"[bench] {m}", file=sys.stderr))
    print(table)
    out = args.out or (None if quick else str(ROOT / "docs" / "benchmarks.md"))
    if out and not args.no_write:
        stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime())
        text = PREAMBLE + f"Run on {stamp}; {time.perf_counter() - t0:.0f} s.\n\n" + table
        before = Path(args.before).read_text() if args.before else None
        if not quick:
            png = Path(out).parent / "img" / "benchmarks.png"
            plot_ratios(table, before, png)
            text = text.replace(
                "\n### Convolution layers",
                f"\n![ghostnp / PyTorch per layer and workload](img/{png.name})\n\n"
                "### Convolution layers",
                1,
            )
        if args.before:
            text += "\n\n" + before_section(Path(args.before), args.before_title)
        Path(out).write_text(text)
        print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
