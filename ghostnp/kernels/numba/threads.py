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
"""

from __future__ import annotations

import os

import numba

PARALLEL_MIN_WORK = 1 << 16
WORKQUEUE_MIN_WORK = 12 << 20

_state: dict[str, str | bool | None] = {"layer": None, "configured": False}


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


def set_threads(work: int) -> int:
    """Run the next kernel, of ``work`` multiply-adds, on all threads or on one; returns the count."""
    if not _state["configured"]:
        choose_threading_layer()
    threads = threads_for(work)
    numba.set_num_threads(threads)
    return threads
