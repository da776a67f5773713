"""Element-wise activations and their derivatives.

    relu(x)         = max(x, 0)                     relu'         = 1 where x > 0
    relu6(x)        = min(max(x, 0), 6)             relu6'        = 1 where 0 < x < 6
    hard_sigmoid(x) = relu6(x + 3) / 6              hard_sigmoid' = 1/6 where -3 < x < 3
    hard_swish(x)   = x * relu6(x + 3) / 6          hard_swish'   = 0 (x <= -3), x/3 + 1/2 (x < 3), 1
    sigmoid(x)      = 1 / (1 + exp(-x))             sigmoid'      = y * (1 - y)

At the kinks the derivative takes PyTorch's choice, so that gradients match it exactly.

A cache keeps only what the backward pass reads. The derivatives of relu, relu6 and
hard_sigmoid are a constant times "x lies inside an interval", so their caches hold that
boolean mask (one byte per element instead of four for a float32 x); hard_swish keeps x
and sigmoid its output y.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..typing import FloatArray
from .shape import check_float, check_same_shape

__all__ = [
    "ActivationCache",
    "relu_forward",
    "relu_backward",
    "relu6_forward",
    "relu6_backward",
    "hard_sigmoid_forward",
    "hard_sigmoid_backward",
    "hard_swish_forward",
    "hard_swish_backward",
    "sigmoid_forward",
    "sigmoid_backward",
]


class ActivationCache(NamedTuple):
    """What an activation's backward needs: the op's name and the saved array, of the
    input's shape: a boolean mask where the derivative is not 0 (relu, relu6,
    hard_sigmoid), the input x (hard_swish) or the output y (sigmoid)."""

    op: str
    saved: np.ndarray  # bool mask, or the input x / output y


def _check_dy(op: str, dy: FloatArray, saved: FloatArray) -> None:
    check_float(op, "dy", dy)
    check_same_shape(op, "dy", dy, saved.shape)


def relu_forward(x: FloatArray) -> tuple[FloatArray, ActivationCache]:
    """max(x, 0): x (any shape) -> (y like x, cache)."""
    check_float("relu", "x", x)
    return np.maximum(x, 0), ActivationCache("relu", x > 0)


def relu_backward(dy: FloatArray, cache: ActivationCache) -> FloatArray:
    """dy (like x) -> dx = dy where x > 0, else 0 (0 at x = 0, as PyTorch)."""
    _check_dy("relu_backward", dy, cache.saved)
    return dy * cache.saved  # cache.saved: x > 0


def relu6_forward(x: FloatArray) -> tuple[FloatArray, ActivationCache]:
    """min(max(x, 0), 6): x (any shape) -> (y like x, cache)."""
    check_float("relu6", "x", x)
    return np.clip(x, 0, 6), ActivationCache("relu6", (x > 0) & (x < 6))


def relu6_backward(dy: FloatArray, cache: ActivationCache) -> FloatArray:
    """dy (like x) -> dx = dy where 0 < x < 6, else 0 (0 at both corners)."""
    _check_dy("relu6_backward", dy, cache.saved)
    return dy * cache.saved  # cache.saved: 0 < x < 6


def hard_sigmoid_forward(x: FloatArray) -> tuple[FloatArray, ActivationCache]:
    """relu6(x + 3) / 6, the gate of GhostNet's squeeze-and-excite: x (any shape) -> (y like x, cache)."""
    check_float("hard_sigmoid", "x", x)
    return np.clip(x + 3, 0, 6) / 6, ActivationCache("hard_sigmoid", (x > -3) & (x < 3))


def hard_sigmoid_backward(dy: FloatArray, cache: ActivationCache) -> FloatArray:
    """dy (like x) -> dx = dy / 6 where -3 < x < 3, else 0 (0 at x = -3 and x = 3)."""
    _check_dy("hard_sigmoid_backward", dy, cache.saved)
    return dy * cache.saved / 6  # cache.saved: -3 < x < 3


def hard_swish_forward(x: FloatArray) -> tuple[FloatArray, ActivationCache]:
    """x * relu6(x + 3) / 6: x (any shape) -> (y like x, cache)."""
    check_float("hard_swish", "x", x)
    return x * np.clip(x + 3, 0, 6) / 6, ActivationCache("hard_swish", x)


def hard_swish_backward(dy: FloatArray, cache: ActivationCache) -> FloatArray:
    """dy (like x) -> dx = dy times 0 (x <= -3), x/3 + 1/2 (-3 < x < 3) or 1 (x >= 3)."""
    _check_dy("hard_swish_backward", dy, cache.saved)
    x = cache.saved
    slope = np.where(x <= -3, 0.0, np.where(x < 3, x / 3 + 0.5, 1.0)).astype(dy.dtype)
    return dy * slope


def sigmoid_forward(x: FloatArray) -> tuple[FloatArray, ActivationCache]:
    """1 / (1 + exp(-x)), without overflow for large |x|: x (any shape) -> (y like x, cache)."""
    check_float("sigmoid", "x", x)
    e = np.exp(-np.abs(x))  # in (0, 1]: never overflows
    y = np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)
    return y, ActivationCache("sigmoid", y)


def sigmoid_backward(dy: FloatArray, cache: ActivationCache) -> FloatArray:
    """dy (like y) -> dx = dy * y * (1 - y), from the saved output y."""
    _check_dy("sigmoid_backward", dy, cache.saved)
    y = cache.saved
    return dy * y * (1 - y)
