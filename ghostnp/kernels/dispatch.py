"""The kernel interface: every kernel ``functional/`` calls, run on the active backend.

Two backends implement the same kernels with the same signatures: ``"numpy"``
(``reference.py``, plain NumPy, the version to step through) and ``"numba"`` (the
``numba`` package, compiled, with every speed route), the default. ``set_backend``
switches at run time, ``use_backend`` for a block, and the environment variable
``GHOSTNP_BACKEND`` sets the starting choice. The Numba backend is imported only when its
kernels are first needed, so ``import ghostnp`` stays quick and the NumPy path works
even where Numba cannot compile.

``KERNELS`` lists every kernel. Each function below forwards one of them through
``_run``, the single place through which every kernel call passes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType, TracebackType
from typing import ParamSpec, TypeVar

from ..typing import FloatArray
from . import reference
from .geometry import ConvGeometry

BACKENDS = ("numba", "numpy")
KERNELS = (
    "unfold",
    "fold",
    "conv_matmul",
    "conv_backward_weight",
    "depthwise_forward",
    "depthwise_backward_input",
    "depthwise_backward_weight",
    "depthwise_backward",
    "batch_norm_stats",
    "batch_norm_normalize",
    "batch_norm_backward",
)

_state: dict[str, str | None] = {"name": None}
_loaded: dict[str, ModuleType] = {"numpy": reference}

P = ParamSpec("P")
R = TypeVar("R")


def _validate(name: str) -> str:
    if name not in BACKENDS:
        raise ValueError(f"set_backend: expected one of {BACKENDS}, got {name!r}")
    return name


def set_backend(name: str) -> None:
    """Select the kernels used from now on: ``"numba"`` or ``"numpy"``."""
    _state["name"] = _validate(name)


def get_backend() -> str:
    """The name of the active backend (``GHOSTNP_BACKEND`` if set, else ``"numba"``)."""
    name = _state["name"]
    if name is None:
        env = os.environ.get("GHOSTNP_BACKEND", "numba").strip().lower() or "numba"
        try:
            name = _state["name"] = _validate(env)
        except ValueError:
            raise ValueError(f"GHOSTNP_BACKEND: expected one of {BACKENDS}, got {env!r}") from None
    return name


class use_backend:
    """Context manager: ``with use_backend("numpy"): ...`` runs a block on one backend."""

    def __init__(self, name: str):
        self.name = _validate(name)
        self.prev = ""

    def __enter__(self) -> use_backend:
        self.prev = get_backend()
        set_backend(self.name)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        set_backend(self.prev)


def _backend() -> ModuleType:
    """The module of the active backend, importing the Numba one on first use."""
    name = get_backend()
    if name not in _loaded:
        from . import numba  # imported lazily on purpose

        _loaded[name] = numba
    return _loaded[name]


def _caused_by_interrupt(e: BaseException) -> bool:
    """True when a KeyboardInterrupt is somewhere in ``e``'s chain of causes.

    Ctrl-C while a compiled kernel runs comes back from Numba's dispatcher wrapped in
    ``SystemError: CPUDispatcher(...) returned a result with an exception set`` (often a
    SystemError from a SystemError), with the interrupt at the end of the chain.
    """
    cause: BaseException | None = e
    while cause is not None:
        if isinstance(cause, KeyboardInterrupt):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def _run(kernel: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """Run the active backend's twin of ``kernel`` (named after the reference, which also
    fixes the signature): every kernel call passes here. Ctrl-C inside a compiled kernel
    is raised as the KeyboardInterrupt it is, not as Numba's SystemError around it."""
    twin: Callable[P, R] = getattr(_backend(), kernel.__name__)
    try:
        return twin(*args, **kwargs)
    except SystemError as e:
        if _caused_by_interrupt(e):
            raise KeyboardInterrupt from None
        raise


# ----------------------------------------------------------------------------------------
# the kernels: shapes and meaning in reference.py, which is the specification
# ----------------------------------------------------------------------------------------


def unfold(x: FloatArray, geom: ConvGeometry) -> FloatArray:
    """im2col of the zero-padded x: (N, C, H, W) -> cols (N, C, kh, kw, ho, wo)."""
    return _run(reference.unfold, x, geom)


def fold(cols: FloatArray, geom: ConvGeometry) -> FloatArray:
    """The adjoint of ``unfold``: cols (N, C, kh, kw, ho, wo) -> (N, C, H, W)."""
    return _run(reference.fold, cols, geom)


def conv_matmul(a: FloatArray, b: FloatArray) -> FloatArray:
    """a (G, P, Q) @ b (N, G, Q, L) -> (N, G, P, L), one product per image and group."""
    return _run(reference.conv_matmul, a, b)


def conv_backward_weight(dy: FloatArray, cols: FloatArray) -> FloatArray:
    """dy (N, G, O/G, L), cols (N, G, K, L) -> dW (G, O/G, K), summed over images and pixels."""
    return _run(reference.conv_backward_weight, dy, cols)


def depthwise_forward(x: FloatArray, w: FloatArray, geom: ConvGeometry) -> FloatArray:
    """x (N, C, H, W), w (C*M, kh, kw) -> y (N, C*M, ho, wo)."""
    return _run(reference.depthwise_forward, x, w, geom)


def depthwise_backward_input(
    dy: FloatArray, w: FloatArray, c: int, geom: ConvGeometry
) -> FloatArray:
    """dy (N, C*M, ho, wo), w (C*M, kh, kw), C -> dx (N, C, H, W)."""
    return _run(reference.depthwise_backward_input, dy, w, c, geom)


def depthwise_backward_weight(dy: FloatArray, x: FloatArray, geom: ConvGeometry) -> FloatArray:
    """dy (N, C*M, ho, wo), x (N, C, H, W) -> dw (C*M, kh, kw)."""
    return _run(reference.depthwise_backward_weight, dy, x, geom)


def depthwise_backward(
    dy: FloatArray, x: FloatArray, w: FloatArray, geom: ConvGeometry
) -> tuple[FloatArray, FloatArray]:
    """Both depthwise gradients, (dx like x, dw like w), in one call."""
    return _run(reference.depthwise_backward, dy, x, w, geom)


def batch_norm_stats(x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Per-channel (mean, biased variance) of x (N, C, H, W), each (C,)."""
    return _run(reference.batch_norm_stats, x)


def batch_norm_normalize(
    x: FloatArray,
    mean: FloatArray,
    inv_std: FloatArray,
    gamma: FloatArray,
    beta: FloatArray,
    affine: bool,
) -> tuple[FloatArray, FloatArray]:
    """(xhat, y) of batch norm, both (N, C, H, W); y is xhat when not ``affine``."""
    return _run(reference.batch_norm_normalize, x, mean, inv_std, gamma, beta, affine)


def batch_norm_backward(
    dy: FloatArray, xhat: FloatArray, scale: FloatArray, training: bool
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(dx (N, C, H, W), dgamma (C,), dbeta (C,)) of batch norm; ``scale`` is gamma * inv_std."""
    return _run(reference.batch_norm_backward, dy, xhat, scale, training)
