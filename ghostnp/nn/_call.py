"""How a module is called: ``module(x)`` and ``module.backward(dy)`` both pass through here.

Two pieces of bookkeeping sit around every forward and every backward pass, and a reader
stepping through the math does not need to see either of them:

* `call` is ``Module.__call__``: it refuses NaN or Inf input at a model's outermost call
  in train mode, runs ``forward``, puts the module's path into input errors, and runs the
  forward hooks;
* `located_backward` wraps the ``backward`` of every Module subclass (installed by
  ``Module.__init_subclass__``): it puts the module's path into input errors and runs the
  backward hooks (`Module.register_full_backward_hook`).

They live in this module of their own so that a debugger can skip them by name. pdb
skips every frame whose module matches a pattern in ``skip``:

    import pdb
    pdb.Pdb(skip=["ghostnp.nn._call"]).set_trace()
    dx = model.backward(dy)          # `step` stops in the model's own backward

With that setting, ``step`` on ``model(x)`` lands in the model's ``forward`` and ``step``
on ``m.backward(dy)`` in the backward that the module's class defines.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from ..errors import LayerError, LayerValueError, NonFiniteInputError

if TYPE_CHECKING:
    from .module import Module

__all__ = ["call", "located_backward", "check_finite_input"]

F = TypeVar("F", bound=Callable[..., Any])


class _Running(threading.local):
    """Per thread: how deep module calls are nested (0: the next call is a model's
    outermost), and which modules are inside their backward right now."""

    def __init__(self) -> None:
        self.depth = 0
        self.backward: set[int] = set()


_running = _Running()


def check_finite_input(module: Module, x: object) -> None:
    """Raise NonFiniteInputError (a ValueError) naming ``module`` if the float array ``x`` holds NaN or Inf.

    One reduction over ``x`` when it is finite (the usual case); the counts only when not.
    """
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "fc":
        return
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(x.sum()):
            return
    finite = np.isfinite(x)
    bad = x.size - int(np.count_nonzero(finite))
    if bad == 0:  # the sum overflowed, the values are fine
        return
    nan = int(np.count_nonzero(np.isnan(x)))
    where = f" (the first in sample {int(np.argmin(finite.reshape(len(x), -1).all(axis=1)))})"
    raise NonFiniteInputError(
        module.where,
        f"the input holds {bad} non-finite value(s) of {x.size} ({nan} NaN, {bad - nan} "
        f"infinite){where if x.ndim > 1 else ''}; in train mode they would turn its "
        "running statistics (batch norm) into NaN for good, so nothing was run or changed",
    )


def call(module: Module, *args: Any, **kwargs: Any) -> Any:
    """``module(*args)``: forward, then the forward hooks ``hook(module, args, output)``.

    At the outermost call in train mode, a model that holds buffers (state that NaN would
    poison, such as batch norm's running statistics) first checks its input is finite.
    """
    if _running.depth == 0 and module.training and module.check_finite_input and args:
        if any(True for _ in module.named_buffers()):
            check_finite_input(module, args[0])
    _running.depth += 1
    try:
        out = module.forward(*args, **kwargs)
    except LayerError as e:
        e.relocate(module.where)
        raise
    finally:
        _running.depth -= 1
    for hook in list(module._forward_hooks.values()):
        hook(module, args, out)
    return out


def _hook_error(module: Module, hook: object, detail: str) -> LayerValueError:
    """The error for a backward hook's bad return value, already naming ``module`` (an
    enclosing module must not put its own path in its place)."""
    err = LayerValueError(
        module.where, f"backward hook {getattr(hook, '__name__', hook)!r} {detail}"
    )
    err.located = True
    return err


def _apply_backward_hooks(module: Module, dx: Any, grad_output: tuple[Any, ...]) -> Any:
    """Run ``hook(module, (dx,), grad_output)`` for each backward hook in the order they were
    registered; a hook that returns a tuple replaces dx for the hooks after it and for
    the caller."""
    for hook in list(module._backward_hooks.values()):
        new = hook(module, (dx,), grad_output)
        if new is None:
            continue
        if not isinstance(new, (tuple, list)) or len(new) != 1:
            what = type(new).__name__
            if isinstance(new, (tuple, list)):
                what += f" of length {len(new)}"
            raise _hook_error(
                module,
                hook,
                f"returned a {what}; a hook returns None or a replacement "
                "grad_input: a tuple of one array",
            )
        if np.shape(new[0]) != np.shape(dx):
            raise _hook_error(
                module,
                hook,
                f"returned grad_input of shape {np.shape(new[0])}; expected "
                f"{np.shape(dx)}, the shape of the gradient it replaces",
            )
        dx = new[0]
    return dx


def located_backward(fn: F) -> F:
    """``fn``, a Module subclass's ``backward``, wrapped so that its input errors carry the
    module's path and the module's backward hooks run after it.

    A backward that calls its parent class's backward (``super().backward(dy)``) runs the
    hooks once, after the outermost of the two returns.
    """

    @functools.wraps(fn)
    def backward(self: Module, *args: Any, **kwargs: Any) -> Any:
        key = id(self)
        if key in _running.backward:  # the super() call inside a subclass's backward
            return fn(self, *args, **kwargs)
        _running.backward.add(key)
        try:
            dx = fn(self, *args, **kwargs)
        except LayerError as e:
            e.relocate(self.where)
            raise
        finally:
            _running.backward.discard(key)
        if self._backward_hooks:
            dx = _apply_backward_hooks(self, dx, (*args, *kwargs.values()))
        return dx

    backward._ghostnp_located = True  # type: ignore[attr-defined]
    return backward  # type: ignore[return-value]
