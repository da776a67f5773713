"""Threading policy: how many threads a kernel call gets, and which threading layer runs them.

A parallel loop pays for waking its thread pool on every call. A kernel with fewer than
``PARALLEL_MIN_WORK`` multiply-adds therefore runs on one thread, and under Numba's
workqueue threading layer, whose threads sleep between calls and take longer to wake,
the bar is ``WORKQUEUE_MIN_WORK``. docs/performance-notes.md tells how these numbers
were measured.

The threading layer: unless the user chose one (``NUMBA_THREADING_LAYER``, a
``.numba_config.yaml`` or ``numba.config.THREADING_LAYER``), ghostnp asks for
``"workqueue"``. OpenMP's threads spin-wait between parallel regions, which slows every
kernel call down as soon as another process competes for the cores; workqueue's threads
sleep instead. The choice is made on the first kernel call (``set_threads``), before
Numba starts its threads, and never at import.

The phase kernels (depthwise, im2col, col2im) split their work into items that own
their outputs, and ``run_items`` hands contiguous ranges of items to a pool of Python
threads: the compiled kernels release the GIL (``nogil``), so the threads run at once.
That takes no second, parallel compilation of each kernel (Numba compiles a ``prange``
loop around a kernel as a whole new function), which a first run would wait for. Handing
items to that pool and collecting them costs 25-60 microseconds a call here, far less
than waking workqueue's threads, so those kernels get a second thread from
``POOL_MIN_WORK`` multiply-adds on (``pool_threads``), a bar of its own.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numba

PARALLEL_MIN_WORK = 1 << 16
WORKQUEUE_MIN_WORK = 12 << 20
POOL_MIN_WORK = 2 << 20  # run_items's Python pool (see above and performance-notes.md)

_state: dict[str, str | bool | None] = {"layer": None, "configured": False}
_pool: dict[int, ThreadPoolExecutor] = {}  # worker count -> pool, made on first use
if hasattr(os, "register_at_fork"):  # a forked child has none of the parent's threads
    os.register_at_fork(after_in_child=_pool.clear)


def choose_threading_layer() -> None:
    """Select the workqueue layer, unless the user chose a layer or Numba's threads run already."""
    _state["configured"] = True
    if "NUMBA_THREADING_LAYER" in os.environ or str(numba.config.THREADING_LAYER) != "default":
        return
    try:
        numba.threading_layer()  # raises until the first parallel launch
    except ValueError:
        numba.config.THREADING_LAYER = "workqueue"


def _min_work() -> int:
    """PARALLEL_MIN_WORK, or WORKQUEUE_MIN_WORK under the workqueue threading layer."""
    name = _state["layer"]
    if name is None:
        try:
            name = _state["layer"] = numba.threading_layer()  # known after the first launch
        except ValueError:
            name = str(numba.config.THREADING_LAYER)
    return WORKQUEUE_MIN_WORK if name == "workqueue" else PARALLEL_MIN_WORK


def threads_for(work: int) -> int:
    """How many threads a kernel of ``work`` multiply-adds gets: all of them, or one."""
    return numba.config.NUMBA_NUM_THREADS if work >= _min_work() else 1


def pool_threads(work: int) -> int:
    """How many threads ``run_items`` gets for ``work`` multiply-adds: all, or one."""
    return numba.config.NUMBA_NUM_THREADS if work >= POOL_MIN_WORK else 1


def set_threads(work: int) -> int:
    """Run the next kernel, of ``work`` multiply-adds, on all threads or on one; returns the count."""
    if not _state["configured"]:
        choose_threading_layer()
    threads = threads_for(work)
    numba.set_num_threads(threads)
    return threads


def run_items(kernel: Callable[..., Any], args: tuple[Any, ...], items: int, threads: int) -> None:
    """Run ``kernel(*args, lo, hi)`` over the work items [0, items) on ``threads`` threads.

    Thread k gets the items [k*items//t, (k+1)*items//t) for t = min(threads, items)
    chunks; the calling thread runs the first chunk itself. Each item owns its part of
    the result, so the split never changes a bit of it.
    """
    chunks = max(1, min(threads, items))
    if chunks == 1:
        kernel(*args, 0, items)
        return
    pool = _pool.get(chunks - 1)
    if pool is None:
        pool = _pool[chunks - 1] = ThreadPoolExecutor(chunks - 1, "ghostnp-kernel")
    bounds = [k * items // chunks for k in range(chunks + 1)]
    rest = [pool.submit(kernel, *args, bounds[k], bounds[k + 1]) for k in range(1, chunks)]
    try:
        kernel(*args, bounds[0], bounds[1])
    finally:
        for f in rest:  # every chunk has finished writing before the result is returned
            f.result()
