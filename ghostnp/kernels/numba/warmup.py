"""A first run compiles on two cores: the depthwise backward kernel in a helper process.

On an empty kernel cache, a first training step compiles every kernel it calls, one
after another on one core, and most of that time goes to the backward kernels (the
depthwise backward alone takes about half of it). They do not depend on the forward
ones, so when the Numba backend is first imported and finds the depthwise backward
kernel missing from the cache, ``start`` launches a quiet process
(``compile_backward("helper")``) that compiles the float32 depthwise backward kernel on
tiny inputs and stores it in the same cache folder, while this process compiles the
forward kernels as it needs them. The first float32 backward kernel this process runs
calls ``join`` first, which compiles the other backward kernels here (col2im and batch
norm: ``compile_backward("own")``) and then waits for the helper to finish; the
depthwise backward kernel is then loaded from what the helper stored instead of being
compiled again. The split gives each process about half of the work: on two cores a
first ``ghostnp train`` took 11-12 s instead of 16-19 s.

Compiled code is the same whichever process compiles it, so results do not change. The
helper is skipped when the cache already holds the kernel, on a one-core machine, when
``GHOSTNP_PARALLEL_COMPILE=0``, and inside the helper itself; other dtypes than float32
never wait for it. If it fails, this process compiles what it needs as usual. It runs in
its own session (Ctrl-C in the terminal does not reach it), prints nothing, and is
stopped when this process exits.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
from typing import Any

import numpy as np

__all__ = ["start", "join", "compile_backward"]

ENV_SWITCH = "GHOSTNP_PARALLEL_COMPILE"
_CHILD_MARK = "GHOSTNP_COMPILE_HELPER"
JOIN_TIMEOUT = 600.0  # seconds; after that this process stops waiting and compiles itself

_CHILD_CODE = "from ghostnp.kernels.numba.warmup import compile_backward; compile_backward()"

_state: dict[str, Any] = {"proc": None}


def _cache_is_cold() -> bool:
    """True when the cache holds no usable float32 depthwise backward kernel (missing,
    or stored for another version of the source)."""
    from .depthwise import _dw_backward_items

    try:
        return not _dw_backward_items._cache._cache_file._load_index()
    except Exception:  # a Numba without these internals: do not guess
        return False


def enabled() -> bool:
    """Whether a helper may be started here (see the module's docstring)."""
    from numba.core import config

    return (
        os.environ.get(ENV_SWITCH, "1").strip() != "0"
        and _CHILD_MARK not in os.environ
        and (os.cpu_count() or 1) >= 2
        and not config.DISABLE_JIT
    )


def start() -> bool:
    """Start the helper if it may run and the cache is cold; True when one was started."""
    if _state["proc"] is not None or not enabled() or not _cache_is_cold():
        return False
    env = dict(os.environ)
    env[_CHILD_MARK] = "1"
    env["NUMBA_NUM_THREADS"] = "1"  # it compiles; it has nothing to run in parallel
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", _CHILD_CODE],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    except OSError:
        return False
    _state["proc"] = proc
    atexit.register(_stop)
    return True


def join(dtype: Any, timeout: float = JOIN_TIMEOUT) -> None:
    """Before a float32 backward kernel: wait until the helper, if one runs, has stored
    its kernels (or failed). Other dtypes do not wait: the helper compiles float32 only."""
    proc = _state["proc"]
    if proc is None or dtype != np.float32:
        return
    _state["proc"] = None  # the kernels compiled next must not wait for themselves
    try:
        compile_backward("own")  # this process's share, while the helper works on its own
    finally:
        _state["proc"] = proc
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        pass  # _stop ends it; this process then compiles what it needs itself
    _stop()


def _stop() -> None:
    """Forget the helper, stopping it if it still runs."""
    proc, _state["proc"] = _state["proc"], None
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait()


def compile_backward(part: str = "helper") -> None:
    """Compile (and cache) float32 backward kernels by running them on tiny inputs in
    geometries that take them: ``part="helper"``, the helper's share, is the depthwise
    backward (3x3 stride 1 and 5x5 stride 2); ``part="own"``, what this process
    compiles while it waits, is col2im of a padded 3x3 window and batch norm."""
    from ..geometry import ConvGeometry
    from . import _depthwise_backward, batch_norm_backward, fold

    f32 = np.float32
    x = np.zeros((2, 2, 8, 8), dtype=f32)
    if part == "helper":
        for k, s in ((3, 1), (5, 2)):
            geom = ConvGeometry.of((8, 8), (k, k), (s, s), (k // 2, k // 2), (1, 1))
            dy = np.zeros((2, 2, geom.ho, geom.wo), dtype=f32)
            _depthwise_backward(dy, x, np.zeros((2, k, k), dtype=f32), 2, geom, True, True)
    else:
        geom = ConvGeometry.of((8, 8), (3, 3), (1, 1), (1, 1), (1, 1))
        fold(np.zeros((2, 2, 3, 3, 8, 8), dtype=f32), geom)
        batch_norm_backward(x, x, np.ones(2, dtype=f32), True)
