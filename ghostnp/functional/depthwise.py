"""Depthwise convolution: each input channel convolved with its own M filters.

With C input channels and channel multiplier M, the weight is (C*M, 1, kh, kw) and output
channel o = c*M + m reads only input channel c (PyTorch's ``groups=C`` ordering). With
xp = pad(x):

    y[n, o, p, q] = sum_{i,j} w[o, 0, i, j] * xp[n, o//M, p*sh + i*dil_h, q*sw + j*dil_w]  (+ b[o])

It costs C*M*kh*kw*ho*wo multiply-adds per image, against C*O*kh*kw*ho*wo for a dense
conv, which is why GhostNet's cheap operation and strided blocks use it. It is its own
kernel rather than im2col and one matrix product per group: each group would be a
product with a single row, and the columns would take kh*kw times the input's memory.

y is linear in x and in w; differentiating the sum term by term (same indexing):

    dxp[n, c, p*sh + i*dil_h, q*sw + j*dil_w] += sum_m w[c*M + m, 0, i, j] * dy[n, c*M + m, p, q]
    dx                = crop(dxp)                                             # (N, C, H, W)
    dw[o, 0, i, j]    = sum_{n,p,q} dy[n, o, p, q] * xp[n, o//M, p*sh + i*dil_h, q*sw + j*dil_w]
    db[o]             = sum_{n,p,q} dy[n, o, p, q]
"""

from __future__ import annotations

from typing import NamedTuple

from ..errors import LayerValueError
from ..kernels import dispatch as kernels
from ..kernels.geometry import ConvGeometry
from ..typing import FloatArray, IntOrPair
from .conv import check_conv_arrays, conv_geometry
from .shape import check_float, check_same_dtype, check_same_shape

__all__ = ["DepthwiseCache", "depthwise_conv2d_forward", "depthwise_conv2d_backward"]


class DepthwiseCache(NamedTuple):
    """The input, the weight and the geometry."""

    x: FloatArray  # (N, C, H, W), unpadded: the kernels pad it themselves
    w: FloatArray  # (C*M, 1, kh, kw)
    has_bias: bool
    geom: ConvGeometry


def depthwise_conv2d_forward(
    x: FloatArray,
    w: FloatArray,
    b: FloatArray | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
) -> tuple[FloatArray, DepthwiseCache]:
    """Depthwise conv of x (N, C, H, W) with w (C*M, 1, kh, kw) [+ b (C*M,)] -> (y (N, C*M, ho, wo), cache).

    Equal to ``conv2d_forward(x, w, b, stride, padding, dilation, groups=C)``.
    """
    op = "depthwise_conv2d"
    check_conv_arrays(op, x, w, b, "(C*M, 1, kh, kw)")
    c = x.shape[1]
    o, one, kh, kw = w.shape
    if one != 1 or o % c:
        raise LayerValueError(
            op,
            f"expected weight of shape (C*M, 1, kh, kw) with C = {c} input channels, "
            f"got {tuple(w.shape)}",
        )
    if b is not None and b.shape != (o,):
        raise LayerValueError(op, f"expected bias of shape ({o},), got {tuple(b.shape)}")
    geom = conv_geometry(op, x.shape, (kh, kw), stride, padding, dilation)
    y = kernels.depthwise_forward(x, w.reshape(o, kh, kw), geom)  # (N, C*M, ho, wo)
    if b is not None:
        y += b.reshape(1, o, 1, 1)  # y is a fresh array
    return y, DepthwiseCache(x, w, b is not None, geom)


def depthwise_conv2d_backward(
    dy: FloatArray, cache: DepthwiseCache
) -> tuple[FloatArray, FloatArray, FloatArray | None]:
    """Gradients: dy (N, C*M, ho, wo) -> (dx (N, C, H, W), dw (C*M, 1, kh, kw), db (C*M,) or None)."""
    op = "depthwise_conv2d_backward"
    n = cache.x.shape[0]
    w, geom = cache.w, cache.geom
    o, _, kh, kw = w.shape
    check_float(op, "dy", dy)
    check_same_dtype(op, dy=dy, weight=w)
    check_same_shape(op, "dy", dy, (n, o, geom.ho, geom.wo))
    dx, dw = kernels.depthwise_backward(dy, cache.x, w.reshape(o, kh, kw), geom)
    dw = dw.reshape(w.shape)  # (C*M, kh, kw) -> (C*M, 1, kh, kw)
    db = dy.sum(axis=(0, 2, 3)) if cache.has_bias else None  # (C*M,)
    return dx, dw, db
