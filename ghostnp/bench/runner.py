"""Orchestration: which rows are timed, in what order, with how many threads; the
self-check of the PyTorch times; the fresh-process measurements; one ``BenchResult``.

Rows are timed round-robin: round 1 of every row, then round 2 of every row, and so on,
so that a burst of load on the machine touches one round of several rows rather than
every round of one row; within a round the implementations alternate (ghostnp first,
then PyTorch first). Everything runs in this process, with the same thread count for
Numba, OpenBLAS and PyTorch, as a user of either library runs it.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .fresh import measure_compile, measure_memory
from .timing import Round, Spread, run_round, spread
from .workloads import (
    NETWORKS,
    ConvShape,
    col2im_pair,
    ghostnet_conv_shapes,
    ghostnp_conv,
    ghostnp_network,
    tiny_shapes,
    torch_conv,
    torch_conv_direct,
    torch_network,
)

__all__ = [
    "CHECK_LIMIT",
    "BenchResult",
    "Row",
    "RowResult",
    "SelfCheck",
    "SelfCheckError",
    "measure",
    "quick_shapes",
    "self_check",
]

# The self-check refuses when the harness's and the direct PyTorch time differ by more.
CHECK_LIMIT = 1.5

DENSE_EXTRA = ConvShape(16, 64, 128, 3, 1, 1, 1, 56, 56, count=0, name="(VGG/ResNet-like)")


@dataclass
class Row:
    """One line of a table: ``makers`` build fresh callables, the first one is the
    numerator of the ratio (ghostnp), the second its denominator (PyTorch). ``direct``,
    when given, times PyTorch independently for the self-check (seconds per call)."""

    key: str
    group: str  # "layers", "network" or "col2im"
    makers: dict[str, Callable[[], Callable[[], object]]]
    shape: ConvShape | None = None
    direct: Callable[[float], float] | None = None


@dataclass
class RowResult:
    """The rounds of one row."""

    row: Row
    rounds: list[Round] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return list(self.row.makers)

    def time(self, name: str) -> Spread:
        """Seconds per call of implementation ``name``: median and range over rounds."""
        return spread(r.seconds[name] for r in self.rounds)

    def ratio(self) -> Spread:
        """First implementation's time over the second's, per round: median and range."""
        a, b = self.names[:2]
        return spread(r.seconds[a] / r.seconds[b] for r in self.rounds)


class SelfCheckError(RuntimeError):
    """The harness's PyTorch times disagree with a direct measurement: no table."""


@dataclass
class SelfCheck:
    """Harness and direct PyTorch seconds per call for a few layers; ``ok`` when each
    pair agrees within ``limit`` (a factor, either way)."""

    rows: list[tuple[str, float, float]]  # (layer, harness s, direct s)
    limit: float = CHECK_LIMIT

    def factor(self, harness: float, direct: float) -> float:
        return max(harness / direct, direct / harness)

    @property
    def failures(self) -> list[tuple[str, float, float]]:
        return [r for r in self.rows if not self.factor(r[1], r[2]) <= self.limit]

    @property
    def ok(self) -> bool:
        return bool(self.rows) and not self.failures

    def raise_if_failed(self) -> None:
        """Raise ``SelfCheckError`` naming every layer whose times disagree."""
        if not self.rows:
            raise SelfCheckError("benchmark self-check: no layer was checked")
        if self.failures:
            parts = [
                f"{k}: harness {h * 1e3:.3f} ms vs direct {d * 1e3:.3f} ms "
                f"(x{self.factor(h, d):.2f})"
                for k, h, d in self.failures
            ]
            raise SelfCheckError(
                f"benchmark self-check failed, PyTorch times disagree by more than "
                f"x{self.limit} with torch.utils.benchmark: {'; '.join(parts)}. "
                "No table is printed: rerun on a quieter machine."
            )


def self_check(results: list[RowResult], limit: float = CHECK_LIMIT) -> SelfCheck:
    """For every row that has a direct measurement: the harness's PyTorch time and the
    direct ``torch.utils.benchmark`` time, each the median over rounds, scaled so that
    their ratio is the median of the per-round ratios (both numbers of a pair come from
    the same round, as the table's ratios do)."""
    rows = []
    for res in results:
        if res.row.direct is not None and res.rounds:
            torch_name = res.names[1]
            harness = res.time(torch_name).median
            ratio = spread(r.seconds[torch_name] / r.seconds["direct"] for r in res.rounds)
            rows.append((res.row.key, harness, harness / ratio.median))
    return SelfCheck(rows, limit)


@dataclass
class BenchResult:
    """Everything one run measured, and the conditions it ran under."""

    rows: list[RowResult]
    check: SelfCheck | None
    memory: dict | None
    compile: dict | None
    machine: dict
    mode: str

    def get(self, key: str) -> RowResult | None:
        return next((r for r in self.rows if r.row.key == key), None)


# ----------------------------------------------------------------------------------------
# which rows
# ----------------------------------------------------------------------------------------

# The layers the self-check times directly: a depthwise, a 1x1 and a dense one.
CHECK_LAYERS = ("dw 3x3 s1 480 @7x7", "1x1 80->240 @14x14", "dense 3x3 s1 64->128 @56x56")


def quick_shapes(found: list[ConvShape]) -> list[ConvShape]:
    """The layers of the quick run: the depthwise 3x3 at 240 @14x14 and 480 @7x7, two
    depthwise layers at 56-112 px, the 1x1 80->240 @14x14 and 112->160 @7x7, and the
    dense 64->128 @56x56 (not in GhostNet)."""
    want = (
        "dw 3x3 s1 240 @14x14",
        "dw 3x3 s1 480 @7x7",
        "dw 3x3 s1 24 @112x112",
        "dw 5x5 s2 72 @56x56",
        "1x1 80->240 @14x14",
        "1x1 112->160 @7x7",
    )
    by_label = {s.label(): s for s in found}
    return [by_label[k] for k in want if k in by_label] + [DENSE_EXTRA]


def _kind_rank(s: ConvShape) -> tuple:
    order = ["dw 3x3 s1", "dw 3x3 s2", "dw 5x5 s2", "dw 5x5 s1", "1x1"]
    kind = s.kind if s.kind in order else "dense"
    return (order.index(kind) if kind in order else len(order), -s.h, s.cin, s.cout)


def _conv_row(s: ConvShape, threads: int, check: bool) -> Row:
    direct = None
    if check:

        def direct(min_time, _s=s):
            return torch_conv_direct(_s, threads, min_time)

    return Row(
        s.label(),
        "layers",
        {"ghostnp": lambda: ghostnp_conv(s), "torch": lambda: torch_conv(s)},
        shape=s,
        direct=direct,
    )


def _network_row(name: str) -> Row:
    kind, batch, size = NETWORKS[name]
    return Row(
        name,
        "network",
        {
            "ghostnp": lambda: ghostnp_network(kind, batch, size),
            "torch": lambda: torch_network(kind, batch, size),
        },
    )


def _col2im_row(s: ConvShape) -> Row:
    ref, add_at = col2im_pair(s)
    return Row(
        f"{s.label()} columns",
        "col2im",
        {"reference": lambda: ref, "np.add.at": lambda: add_at},
        shape=s,
    )


def build_rows(mode: str, threads: int, shapes: list[ConvShape] | None = None) -> list[Row]:
    """The rows of a run: ``mode`` "quick", "full" or "tiny" (a smoke test: tiny layers,
    no network). ``shapes`` replaces the layer list."""
    if shapes is None:
        if mode == "tiny":
            shapes = tiny_shapes()
        else:
            found = ghostnet_conv_shapes(16, 224)
            shapes = quick_shapes(found) if mode == "quick" else [*found, DENSE_EXTRA]
    shapes = sorted(shapes, key=_kind_rank)
    checked = {k for k in CHECK_LAYERS if any(s.label() == k for s in shapes)}
    if not checked:  # custom or tiny shapes: check the first of each kind
        seen: dict[str, str] = {}
        for s in shapes:
            seen.setdefault("dw" if s.depthwise else "1x1" if s.k == 1 else "dense", s.label())
        checked = set(seen.values())
    rows = [_conv_row(s, threads, s.label() in checked) for s in shapes]
    stem = next((s for s in shapes if not s.depthwise and s.k > 1), shapes[0])
    rows.append(_col2im_row(stem))
    if mode == "quick":
        rows += [_network_row("infer b1 224"), _network_row("train b64 32")]
    elif mode == "full":
        rows += [_network_row(name) for name in NETWORKS]
    return rows


# ----------------------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------------------

# rounds, seconds per block, warm-up calls, tries per round, seconds to wait for quiet
# before a repeat, and for all repeats of the run together
MODES = {
    "tiny": (2, 0.002, 1, 1, 0.0, 0.0),
    "quick": (3, 0.05, 2, 2, 5.0, 30.0),
    "full": (5, 0.1, 2, 3, 30.0, 1200.0),
}
BUSY_LIMIT = 0.25  # cores used by other processes above which a round is repeated


def _loadavg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:  # pragma: no cover
        return "?"


def _set_threads(threads: int):
    """Give Numba, OpenBLAS and PyTorch ``threads`` threads; returns the OpenBLAS limiter
    (a context to restore it), a description of what each now uses, and the (Numba,
    PyTorch) thread counts from before.

    Numba's threading layer is chosen first, as ghostnp's first kernel call chooses it in
    a user's process: ``numba.get_num_threads`` and ``numba.set_num_threads`` start
    Numba's threads, and started before that choice they would run on Numba's default
    layer, OpenMP. A second OpenMP
    runtime beside PyTorch's made PyTorch's depthwise 480 @7x7 about five times slower
    than in a process of its own (its many short parallel regions, at 2 threads).
    """
    import numba
    import torch

    from ..kernels.numba.threads import choose_threading_layer

    choose_threading_layer()
    before = numba.get_num_threads(), torch.get_num_threads()
    numba.set_num_threads(threads)
    torch.set_num_threads(threads)
    from threadpoolctl import threadpool_info, threadpool_limits

    limiter = threadpool_limits(limits=threads, user_api="blas")
    blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
    desc = {
        "numba": numba.get_num_threads(),
        "numba_layer": numba.threading_layer(),
        "torch": torch.get_num_threads(),
        "openblas": blas[0]["num_threads"] if blas else None,
        "blas": _blas_desc(blas[0]) if blas else None,
    }
    return limiter, desc, before


def measure(
    mode: str = "quick",
    shapes: list[ConvShape] | None = None,
    rounds: int | None = None,
    threads: int | None = None,
    memory: bool | None = None,
    compile_time: bool | None = None,
    check: bool | None = None,
    block_timer=None,
    direct_timer=None,
    progress=None,
    wait_budget: float | None = None,
) -> BenchResult:
    """Run the benchmark and return a ``BenchResult`` (raises ``SelfCheckError`` when
    ``check`` and the self-check fails).

    ``mode``: "quick" (a few layers, batch-1 inference and a small training step, about
    a minute), "full" (every distinct GhostNet-1.0x convolution at batch 16, the three
    whole-network workloads, peak memory and compile cost) or "tiny" (a smoke test).
    ``threads`` defaults to Numba's thread count. ``check`` (default: except in "tiny"
    mode, whose microsecond layers say nothing about the harness) runs the self-check.
    ``block_timer`` and ``direct_timer`` replace the timing of a block and of the direct
    PyTorch measurement (tests). ``wait_budget`` caps the seconds the whole run may spend
    waiting for other processes to calm down (default: 30 s quick, 20 min full).
    """
    import numba
    import torch

    if mode not in MODES:
        raise ValueError(f"benchmark mode: expected one of {sorted(MODES)}, got {mode!r}")
    t0 = time.perf_counter()
    say = progress or (lambda msg: None)
    n_rounds, min_time, warmup, tries, quiet_wait, budget = MODES[mode]
    wait_budget = budget if wait_budget is None else wait_budget
    n_rounds = rounds or n_rounds
    check = (mode != "tiny" or direct_timer is not None) if check is None else check
    threads = threads or int(numba.config.NUMBA_NUM_THREADS)
    memory = (mode == "full") if memory is None else memory
    compile_time = (mode == "full") if compile_time is None else compile_time
    load0 = _loadavg()
    limiter, thread_desc, before = _set_threads(threads)
    try:
        rows = build_rows(mode, threads, shapes)
        results = [RowResult(r) for r in rows]
        for r in range(n_rounds):
            say(f"round {r + 1}/{n_rounds}: {len(rows)} rows")
            for i, res in enumerate(results):
                names = res.names
                direct = {}
                if check and res.row.direct is not None:
                    direct["direct"] = direct_timer or res.row.direct
                    names = [*names, "direct"]
                order = names if (r + i) % 2 == 0 else names[::-1]
                # once the run has waited its budget, a busy round is kept as it is
                patient = sum(x.waited for q in results for x in q.rounds) < wait_budget
                done = run_round(
                    res.row.makers,
                    order,
                    min_time,
                    warmup,
                    busy_limit=BUSY_LIMIT,
                    max_tries=tries if patient else 1,
                    block_timer=block_timer,
                    direct=direct,
                    quiet_wait=quiet_wait,
                )
                res.rounds.append(done)
                load = "?" if done.foreign is None else f"{done.foreign:.2f}"
                a, b = res.names[:2]
                say(
                    f"  {res.row.key}: {a}/{b} {done.seconds[a] / done.seconds[b]:.2f} "
                    f"(other processes {load} cores, try {done.tries})"
                )
    finally:
        limiter.restore_original_limits()
        numba.set_num_threads(before[0])
        torch.set_num_threads(before[1])
    chk = self_check(results) if check else None
    if chk is not None:
        chk.raise_if_failed()
    mem = comp = None
    if memory:
        say("peak memory (fresh processes)")
        mem = measure_memory("train b16 224", threads)
    if compile_time:
        say("compile cost (fresh processes, empty kernel cache)")
        comp = measure_compile(threads)
    loads = [x.foreign for res in results for x in res.rounds if x.foreign is not None]
    machine = {
        "platform": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "cpu": _cpu_name(),
        "threads": thread_desc,
        "versions": f"numpy {np.__version__}, numba {numba.__version__}, torch {torch.__version__}",
        "load_start": load0,
        "load_end": _loadavg(),
        "foreign_median": statistics.median(loads) if loads else None,
        "foreign_max": max(loads) if loads else None,
        "rounds": n_rounds,
        "rounds_total": sum(len(res.rounds) for res in results),
        "rounds_retried": sum(x.tries > 1 for res in results for x in res.rounds),
        "rounds_busy": sum(x > BUSY_LIMIT for x in loads),
        "busy_limit": BUSY_LIMIT,
        "min_time": min_time,
        "seconds": time.perf_counter() - t0,
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    return BenchResult(results, chk, mem, comp, machine, mode)


def _blas_desc(info: dict) -> dict:
    """NumPy's BLAS as threadpoolctl reports it, the ``OPENBLAS_CORETYPE`` that may have
    chosen its kernels, whether the CPU has AVX-512, and the float32 GEMM rate it reaches."""
    return {
        "name": f"{info.get('internal_api', 'blas')} {info.get('version') or ''}".strip(),
        "kernels": info.get("architecture"),
        "coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "avx512": _cpu_has("avx512f"),
        "gflops": gemm_gflops(),
    }


GEMM_SHAPE = (128, 576, 3136)  # the dense 64->128 @56x56 layer's product for one image


def gemm_gflops(shape: tuple[int, int, int] = GEMM_SHAPE, min_time: float = 0.2) -> float:
    """GFLOP/s of NumPy's float32 product (m, k) @ (k, n) for ``shape`` = (m, k, n): the
    median of calls over at least ``min_time`` seconds, after two warm-up calls."""
    m, k, n = shape
    rng = np.random.default_rng(0)
    a = rng.standard_normal((m, k), dtype=np.float32)
    b = rng.standard_normal((k, n), dtype=np.float32)
    out = np.empty((m, n), dtype=np.float32)
    for _ in range(2):
        np.matmul(a, b, out=out)
    times: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < min_time or len(times) < 3:
        t0 = time.perf_counter()
        np.matmul(a, b, out=out)
        times.append(time.perf_counter() - t0)
    return 2.0 * m * k * n / statistics.median(times) / 1e9


def _cpuinfo(field: str) -> str | None:
    """The value of the first ``field`` line of /proc/cpuinfo (None where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(field):
                    return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover
        pass
    return None


def _cpu_has(flag: str) -> bool | None:
    """Whether /proc/cpuinfo lists ``flag`` (None where it cannot be read)."""
    flags = _cpuinfo("flags")
    return None if flags is None else flag in flags.split()


def _cpu_name() -> str:
    return _cpuinfo("model name") or platform.processor() or "unknown CPU"
