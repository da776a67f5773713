"""Depthwise convolution: each input channel convolved with its own M filters.

With C input channels and channel multiplier M, the weight is (C*M, 1, kh, kw) and output
channel o = c*M + m reads only input channel c (PyTorch's ``groups=C`` ordering):

    y[n, o, a, b] = sum_{i,j} w[o, 0, i, j] * xp[n, o//M, a*sh + i*dh, b*sw + j*dw]  (+ bias[o])

It costs C*M*kh*kw*ho*wo multiply-adds per image, against C*O*kh*kw*ho*wo for a dense
conv, which is why GhostNet's cheap operation and strided blocks use it. It is its own
kernel rather than im2col + batched GEMM, because a GEMM with one row per group wastes
the matrix unit and the column buffer would be kh*kw times the input.

Backward (same indexing):

    dx[n, c]        = sum_m sum_{i,j} w[c*M+m, 0, i, j] * dy[n, c*M+m] placed at its window
    dw[o, 0, i, j]  = sum_{n,a,b} dy[n, o, a, b] * xp[n, o//M, a*sh + i*dh, b*sw + j*dw]
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import LayerValueError
from ..kernels import dispatch as K
from .conv import conv_geometry
from .shape import check_float, check_rank, check_same_dtype

__all__ = ["DepthwiseCache", "depthwise_conv2d_forward", "depthwise_conv2d_backward"]


class DepthwiseCache(NamedTuple):
    """The input, the weight and the geometry."""

    x: np.ndarray  # (N, C, H, W): the kernels pad it virtually, no padded copy is kept
    w: np.ndarray  # (C*M, 1, kh, kw)
    x_shape: tuple
    has_bias: bool
    stride: tuple
    padding: tuple
    dilation: tuple
    out_hw: tuple


def depthwise_conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1):
    """Depthwise conv of x (N, C, H, W) with w (C*M, 1, kh, kw) [+ b (C*M,)] -> (y (N, C*M, ho, wo), cache).

    Equal to ``conv2d_forward(x, w, b, stride, padding, dilation, groups=C)``.
    """
    op = "depthwise_conv2d"
    check_float(op, "x", x)
    check_float(op, "weight", w)
    check_rank(op, "input", x, 4, "(N, C, H, W)")
    check_rank(op, "weight", w, 4, "(C*M, 1, kh, kw)")
    if b is not None:
        check_float(op, "bias", b)
    check_same_dtype(op, x=x, weight=w, bias=b)
    n, c, h, wd = x.shape
    o, one, kh, kw = w.shape
    if one != 1 or o % c:
        raise LayerValueError(
            op,
            f"expected weight of shape (C*M, 1, kh, kw) with C = {c} input channels, "
            f"got {tuple(w.shape)}",
        )
    if b is not None and b.shape != (o,):
        raise LayerValueError(op, f"expected bias of shape ({o},), got {tuple(b.shape)}")
    (sh, sw), (ph, pw), (dh, dw), (ho, wo) = conv_geometry(
        op, x.shape, (kh, kw), stride, padding, dilation
    )
    # the kernel reads x as if zero-padded by (ph, pw): xp = pad(x) is never materialised
    y = K.depthwise_forward(x, w.reshape(o, kh, kw), sh, sw, dh, dw, ho, wo, ph, pw)
    if b is not None:
        y += b.reshape(1, o, 1, 1)
    cache = DepthwiseCache(x, w, x.shape, b is not None, (sh, sw), (ph, pw), (dh, dw), (ho, wo))
    return y, cache


def depthwise_conv2d_backward(dy, cache: DepthwiseCache):
    """Gradients: dy (N, C*M, ho, wo) -> (dx (N, C, H, W), dw (C*M, 1, kh, kw), db (C*M,) or None)."""
    op = "depthwise_conv2d_backward"
    n, c, h, wd = cache.x_shape
    o, _, kh, kw = cache.w.shape
    ho, wo = cache.out_hw
    check_float(op, "dy", dy)
    check_same_dtype(op, dy=dy, weight=cache.w)
    if dy.shape != (n, o, ho, wo):
        raise LayerValueError(op, f"expected dy of shape {(n, o, ho, wo)}, got {tuple(dy.shape)}")
    (sh, sw), (ph, pw), (dh, dw_) = cache.stride, cache.padding, cache.dilation
    w3 = cache.w.reshape(o, kh, kw)
    # both gradients in one call; dx comes back with the padding already cropped off
    dx, dw = K.depthwise_backward(dy, cache.x, w3, sh, sw, dh, dw_, ph, pw)
    dw = dw.reshape(cache.w.shape)
    db = dy.sum(axis=(0, 2, 3)) if cache.has_bias else None
    return dx, dw, db
