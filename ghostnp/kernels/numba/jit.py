"""How the Numba kernels are compiled: one decorator, ``kernel``, for every one of them.

A first run compiles each kernel it calls (a student's first ``ghostnp train`` waits for
it) and Numba caches the machine code for later runs (see ``cache.py``). What this file
decides is how much gets compiled:

* once per argument type, not once per constant. When one kernel calls another with a
  constant argument (``0``, ``1``, ``True``), Numba types that argument as a literal and
  compiles a separate copy of the callee for it: ``_mac_taps(out, ..., 0, ...)`` and
  ``_mac_taps(out, ..., s0, ...)`` would be two compilations of the same loops. The
  dispatcher below types such arguments as plain ints and bools, so every call site of
  a helper shares one compiled version per array type;
* ``error_model="numpy"``: integer division by zero is not checked for (every divisor
  in these kernels is a positive size), which leaves out the code that would raise
  ``ZeroDivisionError``;
* helpers that only kernels call (``helper=True``) get no wrapper for calls from Python.

Everything else is Numba's ``njit``: ``cache=True``, the given ``parallel`` and
``fastmath`` (see ``fastmath.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from numba.core import config
from numba.core.registry import CPUDispatcher
from numba.core.types.misc import unliteral

__all__ = ["kernel"]


class _Kernel(CPUDispatcher):  # type: ignore[misc]  # numba is untyped
    """Numba's CPU dispatcher, except that a call from compiled code compiles (or reuses)
    the version for the non-literal types of its arguments."""

    def get_call_template(self, args: Any, kws: Any) -> Any:
        args = tuple(unliteral(a) for a in args)
        kws = {k: unliteral(v) for k, v in kws.items()}
        return super().get_call_template(args, kws)


def kernel(
    *,
    parallel: bool = False,
    fastmath: set[str] | bool = False,
    nogil: bool = False,
    helper: bool = False,
) -> Callable[[Callable[..., Any]], Any]:
    """Decorator: compile a function as a cached nopython Numba kernel (see above).

    ``parallel`` turns ``prange`` loops into threads; ``fastmath`` is one of the sets in
    ``fastmath.py``; ``nogil`` releases the GIL while the kernel runs (for
    ``threads.run_items``); ``helper=True`` marks a function called only by other kernels.
    """
    options: dict[str, Any] = {
        "nopython": True,
        "parallel": parallel,
        "fastmath": fastmath,
        "nogil": nogil,
        "error_model": "numpy",
    }
    if helper:
        options["no_cpython_wrapper"] = True

    def wrap(fn: Callable[..., Any]) -> Any:
        if config.DISABLE_JIT:  # NUMBA_DISABLE_JIT=1: plain Python, as njit does
            return fn
        dispatcher = _Kernel(py_func=fn, locals={}, targetoptions=dict(options))
        dispatcher.enable_caching()
        return dispatcher

    return wrap
