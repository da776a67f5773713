"""Choose which implementation of the hot loops runs: ``"numba"`` (default) or ``"numpy"``.

``set_backend`` switches at run time; the environment variable ``GHOSTNP_BACKEND`` sets
the starting choice. Numba is imported only when its kernels are first needed, so
``import ghostnp`` stays quick and the NumPy path works even where Numba cannot compile.
"""

from __future__ import annotations

import functools
import os

from . import reference

BACKENDS = ("numba", "numpy")
KERNELS = (
    "im2col",
    "col2im",
    "depthwise_forward",
    "depthwise_backward_input",
    "depthwise_backward_weight",
)

_state = {"name": None, "numba_module": None}


def _validate(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"set_backend: expected one of {BACKENDS}, got {name!r}")
    return name


def set_backend(name: str) -> None:
    """Select the kernels used from now on: ``"numba"`` or ``"numpy"``."""
    _state["name"] = _validate(name)


def get_backend() -> str:
    """The name of the active backend (``GHOSTNP_BACKEND`` if set, else ``"numba"``)."""
    if _state["name"] is None:
        env = os.environ.get("GHOSTNP_BACKEND", "numba").strip().lower() or "numba"
        try:
            _state["name"] = _validate(env)
        except ValueError:
            raise ValueError(f"GHOSTNP_BACKEND: expected one of {BACKENDS}, got {env!r}") from None
    return _state["name"]


class use_backend:
    """Context manager: ``with use_backend("numpy"): ...`` runs a block on one backend."""

    def __init__(self, name: str):
        self.name = _validate(name)

    def __enter__(self):
        self.prev = get_backend()
        set_backend(self.name)
        return self

    def __exit__(self, *exc):
        set_backend(self.prev)
        return False


def _module():
    if get_backend() == "numpy":
        return reference
    if _state["numba_module"] is None:
        from . import numba as nb  # noqa: PLC0415 - imported lazily on purpose

        _state["numba_module"] = nb
    return _state["numba_module"]


def _interrupt_as_keyboard(kernel):
    """Let Ctrl-C during a compiled kernel surface as KeyboardInterrupt.

    When SIGINT arrives while Numba's dispatcher is inside a compiled function, the
    KeyboardInterrupt set by Python's signal handler comes back wrapped in
    ``SystemError: CPUDispatcher(...) returned a result with an exception set``
    (the interrupt at the end of its chain of causes). Raise the interrupt itself, so
    that code which handles Ctrl-C sees it.
    """

    @functools.wraps(kernel)
    def call(*args, **kwargs):
        try:
            return kernel(*args, **kwargs)
        except SystemError as e:
            cause = e
            while cause is not None:  # SystemError from SystemError ... from the interrupt
                if isinstance(cause, KeyboardInterrupt):
                    raise KeyboardInterrupt from None
                cause = cause.__cause__ or cause.__context__
            raise

    return call


def _c(a):
    """Numba kernels index raw memory; hand them C-contiguous arrays."""
    return a if a.flags.c_contiguous else a.copy()


@_interrupt_as_keyboard
def im2col(xp, kh, kw, sh, sw, dh, dw, ho, wo, ph=0, pw=0):
    return _module().im2col(_c(xp), kh, kw, sh, sw, dh, dw, ho, wo, ph, pw)


@_interrupt_as_keyboard
def col2im(cols, hp, wp, sh, sw, dh, dw, ph=0, pw=0):
    return _module().col2im(_c(cols), hp, wp, sh, sw, dh, dw, ph, pw)


@_interrupt_as_keyboard
def depthwise_forward(xp, w, sh, sw, dh, dw, ho, wo, ph=0, pw=0):
    return _module().depthwise_forward(_c(xp), _c(w), sh, sw, dh, dw, ho, wo, ph, pw)


@_interrupt_as_keyboard
def depthwise_backward_input(dy, w, c, hp, wp, sh, sw, dh, dw, ph=0, pw=0):
    return _module().depthwise_backward_input(_c(dy), _c(w), c, hp, wp, sh, sw, dh, dw, ph, pw)


@_interrupt_as_keyboard
def depthwise_backward_weight(dy, xp, kh, kw, sh, sw, dh, dw, ph=0, pw=0):
    return _module().depthwise_backward_weight(_c(dy), _c(xp), kh, kw, sh, sw, dh, dw, ph, pw)


@_interrupt_as_keyboard
def depthwise_backward(dy, xp, w, sh, sw, dh, dw, ph=0, pw=0):
    """Both depthwise gradients, (dxp, dw), in one call (one pass over dy with Numba)."""
    return _module().depthwise_backward(_c(dy), _c(xp), _c(w), sh, sw, dh, dw, ph, pw)


@_interrupt_as_keyboard
def batch_norm_stats(x):
    """Per-channel (mean, biased variance) of x (N, C, H, W)."""
    return _module().batch_norm_stats(_c(x))


@_interrupt_as_keyboard
def batch_norm_normalize(x, mu, inv_std, weight, bias, affine):
    """(xhat, y) of batch norm; y is xhat when not ``affine``."""
    return _module().batch_norm_normalize(_c(x), mu, inv_std, weight, bias, affine)


@_interrupt_as_keyboard
def batch_norm_backward(dy, xhat, scale, training):
    """(dx, dweight, dbias) of batch norm; ``scale`` is weight * inv_std."""
    return _module().batch_norm_backward(_c(dy), _c(xhat), scale, training)
