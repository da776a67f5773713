"""How a callable is timed: blocks of calls, rounds that alternate implementations, and
the spread of the results.

A *block* is one implementation timed alone: a few warm-up calls (compilation, caches,
thread pools, first writes to fresh memory), then calls until ``min_time`` seconds have
passed, each call timed on its own; the block's value is the median call. A *round*
times one block of every implementation of a row, one after the other, so that they
share whatever the machine is doing at that moment; the order flips from round to round.

Two things spoil a block, and both are kept out:

* threads left spinning by the implementation before it. OpenBLAS, which NumPy (and so
  ghostnp's 1x1 convolutions) calls, keeps its worker threads busy-waiting for about
  0.1 s after every matrix product; PyTorch's OpenMP threads that start meanwhile find a
  core taken and wait at every barrier. ``quiesce`` waits until this process uses no CPU
  before each block.
* other processes. ``CpuMeter`` reads the machine's busy time from ``/proc/stat`` and
  subtracts this process's own: what is left is the load of everything else, in cores.
  A round during which other processes used more than ``busy_limit`` cores is repeated
  (a few times at most, and then kept, with the load written down).
"""

from __future__ import annotations

import gc
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "CpuMeter",
    "Spread",
    "quiesce",
    "run_round",
    "spread",
    "time_block",
    "time_call",
    "wait_for_quiet",
]


def time_block(fn: Callable[[], object], min_time: float, warmup: int = 2, min_calls: int = 3):
    """Seconds of each timed call of ``fn``: ``warmup`` untimed calls, then calls until
    ``min_time`` seconds have passed and at least ``min_calls`` were made. The garbage
    collector is paused while timing (as ``timeit`` does). Returns a list of floats."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter()
        while len(times) < min_calls or time.perf_counter() - start < min_time:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    finally:
        if was_enabled:
            gc.enable()
    return times


def time_call(fn: Callable[[], object], repeats: int = 5, min_time: float = 0.05) -> list[float]:
    """Median seconds per call of ``fn`` in each of ``repeats`` blocks (see ``time_block``),
    each block started on an idle process."""
    out = []
    for _ in range(repeats):
        quiesce()
        out.append(statistics.median(time_block(fn, min_time)))
    return out


def quiesce(max_wait: float = 1.0, window: float = 0.02, idle: float = 0.1) -> float:
    """Sleep until this process's threads use less than ``idle`` of one core over a
    ``window`` of seconds (threads that spin-wait after a parallel call have gone to
    sleep), or ``max_wait`` seconds have passed. Returns the seconds waited."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < max_wait:
        c0, w0 = time.process_time(), time.perf_counter()
        time.sleep(window)
        if time.process_time() - c0 < idle * (time.perf_counter() - w0):
            break
    return time.perf_counter() - t0


def _machine_busy_seconds() -> float | None:
    """CPU-seconds all CPUs spent busy since boot (including time stolen by the host)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
    return (total - idle) / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    """CPU seconds of this process and of its children that have been waited for."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class CpuMeter:
    """The load of every other process, in cores, between ``start()`` and ``stop()``.

    Machine busy time (``/proc/stat``) minus this process's CPU time and that of the
    children it has waited for (a measured child process is part of the measurement,
    not other load), over the wall time. Resolution is one clock tick (10 ms) per CPU,
    so short intervals are approximate. ``stop()`` returns None where ``/proc/stat``
    does not exist.
    """

    def __init__(self) -> None:
        self._t = self._busy = self._own = None

    def start(self) -> CpuMeter:
        self._t = time.perf_counter()
        self._busy = _machine_busy_seconds()
        self._own = _own_seconds()
        return self

    def stop(self) -> float | None:
        busy = _machine_busy_seconds()
        if busy is None or self._busy is None:
            return None
        wall = max(time.perf_counter() - self._t, 1e-9)
        own = _own_seconds() - self._own
        return max(0.0, (busy - self._busy - own) / wall)


@dataclass
class Round:
    """One round of a row: seconds per call for each implementation (median of its
    block), and the load of other processes during the round, in cores."""

    seconds: dict[str, float]
    foreign: float | None
    tries: int = 1
    waited: float = 0.0  # seconds spent waiting for other processes to calm down


def run_round(
    makers: dict[str, Callable[[], Callable[[], object]]],
    order: list[str],
    min_time: float,
    warmup: int = 2,
    busy_limit: float = 0.25,
    max_tries: int = 3,
    block_timer=None,
    direct: dict[str, Callable[[float], float]] | None = None,
    quiet_wait: float = 10.0,
) -> Round:
    """Time one block of each implementation in ``order`` and return a ``Round``.

    ``makers[name]()`` builds a fresh callable (inputs allocated, model built), so no
    implementation runs on memory another one warmed; ``direct[name](min_time)`` is a
    measurement that times itself and returns seconds per call (the self-check's). A
    round during which other processes used more than ``busy_limit`` cores is run again,
    ``max_tries`` times at most (the least disturbed try is kept), each time after
    waiting (``quiet_wait`` seconds at most) for the machine to calm down. ``block_timer(name,
    fn, min_time, warmup)`` replaces the timing of a block (seconds per call), for tests.
    """
    direct = direct or {}
    best = None
    waited = 0.0
    for attempt in range(1, max_tries + 1):
        seconds = {}
        meter = CpuMeter().start()
        for name in order:
            if name in direct:
                quiesce()
                seconds[name] = direct[name](min_time)
                continue
            fn = makers[name]()
            quiesce()
            if block_timer is not None:
                seconds[name] = block_timer(name, fn, min_time, warmup)
            else:
                seconds[name] = statistics.median(time_block(fn, min_time, warmup))
            del fn
        foreign = meter.stop()
        r = Round(seconds, foreign, attempt, waited)
        if best is None or (foreign or 0.0) < (best.foreign or 0.0):
            best = r
        if foreign is None or foreign <= busy_limit:
            return r
        if attempt < max_tries:
            waited += wait_for_quiet(busy_limit, quiet_wait)
    best.tries, best.waited = max_tries, waited
    return best


def wait_for_quiet(limit: float, max_wait: float, window: float = 0.5) -> float:
    """Sleep until other processes used at most ``limit`` cores over a ``window`` of
    seconds, or ``max_wait`` seconds have passed. Returns the seconds waited."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < max_wait:
        meter = CpuMeter().start()
        time.sleep(window)
        load = meter.stop()
        if load is None or load <= limit:
            break
    return time.perf_counter() - t0


@dataclass(frozen=True)
class Spread:
    """The median of per-round values and their range (lowest, highest)."""

    median: float
    lo: float
    hi: float
    values: tuple[float, ...] = field(default=(), repr=False)

    def __str__(self) -> str:
        return f"{self.median:.3g} [{self.lo:.3g}, {self.hi:.3g}]"


def spread(values) -> Spread:
    """``Spread`` of a non-empty sequence of numbers."""
    v = sorted(float(x) for x in values)
    if not v:
        raise ValueError("spread: expected at least one value, got none")
    return Spread(statistics.median(v), v[0], v[-1], tuple(v))
