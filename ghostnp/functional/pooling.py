"""Pooling and nearest-neighbour upsampling.

Max and average pooling reuse the convolution's im2col: unfold every window into a
column, reduce the column (max or mean), and in backward fold the column gradients back
with col2im, which adds where windows overlap.

    max:  y = max over the window;   dx gets dy at the position of that max (the first, on ties)
    avg:  y = sum(window) / count;   dx gets dy / count at every position of the window

Adaptive average pooling and nearest upsampling are both separable linear maps,
y = A @ x @ B^T over the last two axes with A (Ho, H) and B (Wo, W), so their backward
is dx = A^T @ dy @ B: no loops, and the adjoint is exact by construction.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..errors import LayerValueError
from ..kernels import dispatch as kernels
from ..kernels.geometry import ConvGeometry
from ..typing import FloatArray, IntArray, IntOrPair
from .conv import conv_geometry
from .shape import check_float, check_rank, check_same_shape, pair

__all__ = [
    "PoolCache",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    "adaptive_avg_pool2d_forward",
    "adaptive_avg_pool2d_backward",
    "upsample_nearest2d_forward",
    "upsample_nearest2d_backward",
]


class PoolCache(NamedTuple):
    """What the max and average pooling backward passes need: the input shape, the window
    geometry, and either the argmax inside each window (max pool, (N, C, ho, wo)) or the
    number of elements per window (average pool)."""

    x_shape: tuple[int, ...]  # (N, C, H, W)
    geom: ConvGeometry
    argmax: IntArray | None  # max pool: position of the maximum in each window, (N, C, ho, wo)
    divisor: FloatArray | float | None  # avg pool: elements per window


def _pool_setup(
    op: str,
    x: FloatArray,
    kernel_size: IntOrPair,
    stride: IntOrPair | None,
    padding: IntOrPair,
    dilation: IntOrPair,
) -> ConvGeometry:
    check_float(op, "x", x)
    check_rank(op, "input", x, 4, "(N, C, H, W)")
    kh, kw = pair(kernel_size, "kernel_size", op)
    geom = conv_geometry(
        op, x.shape, (kh, kw), (kh, kw) if stride is None else stride, padding, dilation
    )
    if geom.ph > kh // 2 or geom.pw > kw // 2:
        raise LayerValueError(
            op, f"padding should be at most half the kernel {(kh, kw)}, got {geom.padding}"
        )
    return geom


def _unfold(x: FloatArray, fill: float, geom: ConvGeometry) -> FloatArray:
    """(N, C, H, W) -> windows (N, C, kh*kw, ho, wo), the padding filled with ``fill``."""
    n, c = x.shape[:2]
    ph, pw = geom.padding
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=fill) if ph or pw else x
    cols = kernels.unfold(xp, geom.on_padded_input())  # (N, C, kh, kw, ho, wo)
    return cols.reshape(n, c, geom.kh * geom.kw, geom.ho, geom.wo)


def _fold(cols: FloatArray, cache: PoolCache) -> FloatArray:
    """Windows (N, C, kh*kw, ho, wo) -> (N, C, H, W), summing overlaps and dropping padding."""
    n, c, h, wd = cache.x_shape
    geom = cache.geom
    cols = cols.reshape(n, c, geom.kh, geom.kw, geom.ho, geom.wo)
    dxp = kernels.fold(cols, geom.on_padded_input())  # (N, C, H + 2*ph, W + 2*pw)
    return np.ascontiguousarray(dxp[:, :, geom.ph : geom.ph + h, geom.pw : geom.pw + wd])


def _check_dy(op: str, dy: FloatArray, shape: tuple[int, ...]) -> None:
    check_float(op, "dy", dy)
    check_same_shape(op, "dy", dy, shape)


def max_pool2d_forward(
    x: FloatArray,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
) -> tuple[FloatArray, PoolCache]:
    """Max over each window: x (N, C, H, W) -> (y (N, C, ho, wo), cache). Padding never wins."""
    geom = _pool_setup("max_pool2d", x, kernel_size, stride, padding, dilation)
    cols = _unfold(x, -np.inf, geom)  # (N, C, kh*kw, ho, wo)
    idx = cols.argmax(axis=2)  # (N, C, ho, wo): the first maximum, as PyTorch
    y = np.take_along_axis(cols, idx[:, :, None], axis=2)[:, :, 0]  # (N, C, ho, wo)
    return y, PoolCache(x.shape, geom, argmax=idx, divisor=None)


def max_pool2d_backward(dy: FloatArray, cache: PoolCache) -> FloatArray:
    """dy (N, C, ho, wo) -> dx (N, C, H, W): each window's gradient goes to its maximum."""
    n, c = cache.x_shape[:2]
    geom = cache.geom
    _check_dy("max_pool2d_backward", dy, (n, c, geom.ho, geom.wo))
    assert cache.argmax is not None, "a max-pool cache holds the argmax"
    cols = np.zeros((n, c, geom.kh * geom.kw, geom.ho, geom.wo), dtype=dy.dtype)
    np.put_along_axis(cols, cache.argmax[:, :, None], dy[:, :, None], axis=2)
    return _fold(cols, cache)


def avg_pool2d_forward(
    x: FloatArray,
    kernel_size: IntOrPair,
    stride: IntOrPair | None = None,
    padding: IntOrPair = 0,
    count_include_pad: bool = True,
) -> tuple[FloatArray, PoolCache]:
    """Mean over each window: x (N, C, H, W) -> (y (N, C, ho, wo), cache).

    With ``count_include_pad=True`` (PyTorch's default) padded zeros count in the divisor.
    """
    geom = _pool_setup("avg_pool2d", x, kernel_size, stride, padding, 1)
    cols = _unfold(x, 0.0, geom)  # (N, C, kh*kw, ho, wo)
    divisor: FloatArray | float
    if count_include_pad or geom.padding == (0, 0):
        divisor = float(geom.kh * geom.kw)
    else:  # count the real pixels in each window
        ones = np.ones((1, 1, *x.shape[2:]), dtype=x.dtype)
        divisor = _unfold(ones, 0.0, geom).sum(axis=2)[0, 0]  # (ho, wo)
    y = cols.sum(axis=2) / divisor  # (N, C, ho, wo)
    return y, PoolCache(x.shape, geom, argmax=None, divisor=divisor)


def avg_pool2d_backward(dy: FloatArray, cache: PoolCache) -> FloatArray:
    """dy (N, C, ho, wo) -> dx (N, C, H, W): each window spreads dy / count over its pixels."""
    n, c = cache.x_shape[:2]
    geom = cache.geom
    _check_dy("avg_pool2d_backward", dy, (n, c, geom.ho, geom.wo))
    assert cache.divisor is not None, "an average-pool cache holds the divisor"
    kk = geom.kh * geom.kw
    cols = np.broadcast_to((dy / cache.divisor)[:, :, None], (n, c, kk, geom.ho, geom.wo))
    return _fold(np.ascontiguousarray(cols), cache)


# ----------------------------------------------------------------------------------
# Separable linear resampling: adaptive average pooling and nearest upsampling
# ----------------------------------------------------------------------------------


class ResampleCache(NamedTuple):
    """What the backward of adaptive pooling or nearest upsampling needs: the row matrix
    a (Ho, H), the column matrix b (Wo, W) and the input shape."""

    a: FloatArray  # (Ho, H)
    b: FloatArray  # (Wo, W)
    x_shape: tuple[int, ...]


def _apply(x: FloatArray, a: FloatArray, b: FloatArray) -> FloatArray:
    """a @ x @ b^T over the last two axes: (N, C, H, W) -> (N, C, Ho, Wo)."""
    return np.matmul(a, np.matmul(x, b.T))


def _adaptive_matrix(n_in: int, n_out: int, dtype: np.dtype[Any]) -> FloatArray:
    """Row i averages input cells floor(i*n_in/n_out) .. ceil((i+1)*n_in/n_out) - 1."""
    m = np.zeros((n_out, n_in), dtype=dtype)
    for i in range(n_out):
        lo = (i * n_in) // n_out
        hi = -((-(i + 1) * n_in) // n_out)  # ceil
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m


def adaptive_avg_pool2d_forward(
    x: FloatArray, output_size: IntOrPair
) -> tuple[FloatArray, ResampleCache]:
    """Average x (N, C, H, W) into an output grid (Ho, Wo) with PyTorch's window rule.

    Output 1 is global average pooling. Returns (y (N, C, Ho, Wo), cache).
    """
    op = "adaptive_avg_pool2d"
    check_float(op, "x", x)
    check_rank(op, "input", x, 4, "(N, C, H, W)")
    oh, ow = pair(output_size, "output_size", op)
    if oh < 1 or ow < 1:
        raise LayerValueError(op, f"output_size must be positive, got {(oh, ow)}")
    h, wd = x.shape[2:]
    a = _adaptive_matrix(h, oh, x.dtype)
    b = _adaptive_matrix(wd, ow, x.dtype)
    if oh == 1 and ow == 1:  # global average pooling: the mean of each plane
        y = x.mean(axis=(2, 3), keepdims=True)
    else:
        y = _apply(x, a, b)
    return y, ResampleCache(a, b, x.shape)


def adaptive_avg_pool2d_backward(dy: FloatArray, cache: ResampleCache) -> FloatArray:
    """dy (N, C, Ho, Wo) -> dx (N, C, H, W) = A^T @ dy @ B."""
    n, c = cache.x_shape[:2]
    _check_dy("adaptive_avg_pool2d_backward", dy, (n, c, cache.a.shape[0], cache.b.shape[0]))
    return np.ascontiguousarray(_apply(dy, cache.a.T, cache.b.T))


def _nearest_matrix(n_in: int, n_out: int, scale: float | None, dtype: np.dtype[Any]) -> FloatArray:
    """One-hot rows: output cell i copies input cell src(i), PyTorch's nearest rule.

    src(i) = i if sizes are equal, i // 2 if the output is twice the input, else
    min(floor(i * s), n_in - 1) with s computed in float32 as PyTorch does (s = 1/scale
    when a scale factor was given, else n_in / n_out).
    """
    i = np.arange(n_out)
    if n_out == n_in:
        src = i
    elif n_out == 2 * n_in:
        src = i // 2
    else:
        s = np.float32(1.0 / scale) if scale is not None else np.float32(n_in) / np.float32(n_out)
        src = np.minimum(np.floor(i.astype(np.float32) * s).astype(np.int64), n_in - 1)
    m = np.zeros((n_out, n_in), dtype=dtype)
    m[i, src] = 1.0
    return m


def upsample_nearest2d_forward(
    x: FloatArray,
    size: IntOrPair | None = None,
    scale_factor: float | tuple[float, float] | None = None,
) -> tuple[FloatArray, ResampleCache]:
    """Nearest-neighbour resize of x (N, C, H, W) to ``size`` (Ho, Wo) or by ``scale_factor``.

    Returns (y (N, C, Ho, Wo), cache). Give exactly one of size and scale_factor; with a
    scale factor the output is floor(H * scale) x floor(W * scale).
    """
    op = "upsample_nearest2d"
    check_float(op, "x", x)
    check_rank(op, "input", x, 4, "(N, C, H, W)")
    h, wd = x.shape[2:]
    if (size is None) == (scale_factor is None):
        raise LayerValueError(op, "give exactly one of size and scale_factor")
    if scale_factor is None:  # the size was given
        oh, ow = pair(size, "size", op)
        scale_h = scale_w = None
    else:
        sf = scale_factor if isinstance(scale_factor, (tuple, list)) else (scale_factor,) * 2
        scale_h, scale_w = float(sf[0]), float(sf[1])
        if scale_h <= 0 or scale_w <= 0:
            raise LayerValueError(op, f"scale_factor must be positive, got {scale_factor!r}")
        oh, ow = int(np.floor(h * scale_h)), int(np.floor(wd * scale_w))
    if oh < 1 or ow < 1:
        raise LayerValueError(op, f"output size must be positive, got {(oh, ow)}")
    a = _nearest_matrix(h, oh, scale_h, x.dtype)
    b = _nearest_matrix(wd, ow, scale_w, x.dtype)
    return _apply(x, a, b), ResampleCache(a, b, x.shape)


def upsample_nearest2d_backward(dy: FloatArray, cache: ResampleCache) -> FloatArray:
    """dy (N, C, Ho, Wo) -> dx (N, C, H, W): each input pixel sums the gradients of its copies."""
    n, c = cache.x_shape[:2]
    _check_dy("upsample_nearest2d_backward", dy, (n, c, cache.a.shape[0], cache.b.shape[0]))
    return np.ascontiguousarray(_apply(dy, cache.a.T, cache.b.T))
