"""Inverted dropout: in training zero each element with probability p and scale the
survivors by 1/(1-p), so eval needs no rescaling.

    mask = (u >= p) / (1 - p),  u ~ U[0, 1)      y = x * mask      dx = dy * mask
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import LayerValueError
from ..typing import FloatArray
from .shape import check_float, check_same_shape

__all__ = ["DropoutCache", "dropout_forward", "dropout_backward"]


class DropoutCache(NamedTuple):
    """What dropout_backward needs: the scaled keep-mask (like x; None when nothing was
    dropped) and the shape of x."""

    mask: FloatArray | None  # scaled keep-mask like x, None when nothing was dropped
    shape: tuple[int, ...]  # x.shape, which dy must have


def dropout_forward(
    x: FloatArray,
    p: float = 0.5,
    training: bool = True,
    rng: np.random.Generator | int | None = None,
) -> tuple[FloatArray, DropoutCache]:
    """Apply dropout to x (any shape) -> (y like x, cache). ``rng``: a numpy Generator or a seed."""
    op = "dropout"
    check_float(op, "x", x)
    if not 0.0 <= p <= 1.0:
        raise LayerValueError(op, f"p must lie in [0, 1], got {p}")
    if not training or p == 0.0:
        return x.copy(), DropoutCache(None, x.shape)
    if p == 1.0:
        mask = np.zeros_like(x)
    else:
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        mask = (gen.random(x.shape) >= p).astype(x.dtype) / x.dtype.type(1.0 - p)
    return x * mask, DropoutCache(mask, x.shape)


def dropout_backward(dy: FloatArray, cache: DropoutCache) -> FloatArray:
    """dy (like x) -> dx: the same mask as the forward."""
    check_float("dropout_backward", "dy", dy)
    check_same_shape("dropout_backward", "dy", dy, cache.shape)
    if cache.mask is None:
        return dy.copy()
    return dy * cache.mask
