"""Fully connected layer: y = x @ W^T + b.

x (N, in), W (out, in), b (out,)  ->  y (N, out)
dx = dy @ W          (N, in)
dW = dy^T @ x        (out, in)
db = sum_n dy        (out,)
"""

from __future__ import annotations

from typing import NamedTuple

from ..errors import LayerValueError
from ..typing import FloatArray
from .shape import check_float, check_rank, check_same_dtype, check_same_shape

__all__ = ["LinearCache", "linear_forward", "linear_backward"]


class LinearCache(NamedTuple):
    """What linear_backward needs: the input x (N, in), the weight w (out, in) and whether
    there was a bias."""

    x: FloatArray  # (N, in)
    w: FloatArray  # (out, in)
    has_bias: bool


def linear_forward(
    x: FloatArray, w: FloatArray, b: FloatArray | None = None
) -> tuple[FloatArray, LinearCache]:
    """x (N, in) @ w (out, in)^T [+ b (out,)] -> (y (N, out), cache)."""
    op = "linear"
    check_float(op, "x", x)
    check_float(op, "weight", w)
    check_rank(op, "input", x, 2, "(N, in_features)")
    check_rank(op, "weight", w, 2, "(out_features, in_features)")
    if b is not None:
        check_float(op, "bias", b)
    check_same_dtype(op, x=x, weight=w, bias=b)
    if x.shape[1] != w.shape[1]:
        raise LayerValueError(
            op,
            f"expected {w.shape[1]} input features, got {x.shape[1]} (input shape "
            f"{tuple(x.shape)})",
        )
    if b is not None and b.shape != (w.shape[0],):
        raise LayerValueError(op, f"expected bias of shape ({w.shape[0]},), got {tuple(b.shape)}")
    y = x @ w.T
    if b is not None:
        y = y + b
    return y, LinearCache(x, w, b is not None)


def linear_backward(
    dy: FloatArray, cache: LinearCache
) -> tuple[FloatArray, FloatArray, FloatArray | None]:
    """dy (N, out) -> (dx (N, in), dw (out, in), db (out,) or None)."""
    op = "linear_backward"
    check_float(op, "dy", dy)
    expected = (cache.x.shape[0], cache.w.shape[0])
    check_same_shape(op, "dy", dy, expected)
    dx = dy @ cache.w
    dw = dy.T @ cache.x
    db = dy.sum(axis=0) if cache.has_bias else None
    return dx, dw, db
