"""2-D convolution by im2col, and its backward pass by col2im.

Sizes: N images, C input and O output channels, G groups, a kh x kw kernel, output
ho x wo with L = ho*wo pixels, and K = C/G*kh*kw, the length of one column. For each
group g (W_g: the (O/G, K) weights of the group's outputs):

    cols  = im2col(pad(x))                       # (N, C, kh, kw, ho, wo) -> (N, G, K, L)
    y_g   = W_g @ cols_g + b                     # (O/G, K) @ (N, K, L) -> (N, O/G, L)

Column l of cols_g holds the K input values under output pixel l's window, so one
matrix product computes every output pixel. y is linear in W and in cols, so with dy
reshaped to (N, G, O/G, L) the rule for a product Y = A @ B (dA = dY @ B^T, dB = A^T @ dY)
gives the backward pass:

    dW_g    = sum_n dy_g[n] @ cols_g[n]^T         # (O/G, L) @ (L, K), summed over n -> (O/G, K)
    dcols_g = W_g^T @ dy_g                       # (K, O/G) @ (N, O/G, L) -> (N, K, L)
    dx      = crop(col2im(dcols))                # (N, C, H, W)
    db      = sum of dy over n, h, w             # (O,)

col2im puts every column entry back where im2col took it from; a pixel that lay in
several windows receives the sum of their gradients, which makes col2im the adjoint of
im2col. ``kernels.unfold`` is im2col(pad(x)) and ``kernels.fold`` is crop(col2im(.)).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import LayerValueError
from ..kernels import dispatch as kernels
from ..kernels.geometry import ConvGeometry
from ..typing import FloatArray, IntOrPair
from .shape import check_float, check_rank, check_same_dtype, check_same_shape, pair

__all__ = [
    "Conv2dCache",
    "conv2d_forward",
    "conv2d_backward",
    "conv_geometry",
    "check_conv_arrays",
]


class Conv2dCache(NamedTuple):
    """What conv2d_backward needs: the columns, the weight and the geometry."""

    cols: FloatArray  # (N, G, K, L)
    w: FloatArray  # (O, C/G, kh, kw)
    x_shape: tuple[int, ...]  # (N, C, H, W)
    has_bias: bool
    groups: int
    geom: ConvGeometry

    @property
    def stride(self) -> tuple[int, int]:
        return self.geom.stride

    @property
    def padding(self) -> tuple[int, int]:
        return self.geom.padding

    @property
    def dilation(self) -> tuple[int, int]:
        return self.geom.dilation

    @property
    def out_hw(self) -> tuple[int, int]:
        return self.geom.out_hw


def conv_geometry(
    op: str,
    x_shape: tuple[int, ...],
    kernel_hw: tuple[int, int],
    stride: IntOrPair,
    padding: IntOrPair,
    dilation: IntOrPair,
) -> ConvGeometry:
    """Check stride/padding/dilation (ints or pairs) and build the window's geometry.

    Raises a ``LayerValueError`` naming ``op`` when an argument is out of range or the
    input is too small for the kernel. Shared by convolution, depthwise convolution and
    pooling, which all slide a window.
    """
    sh, sw = pair(stride, "stride", op)
    ph, pw = pair(padding, "padding", op)
    dil_h, dil_w = pair(dilation, "dilation", op)
    kh, kw = kernel_hw
    if min(sh, sw, dil_h, dil_w, kh, kw) < 1 or min(ph, pw) < 0:
        raise LayerValueError(
            op,
            f"expected kernel, stride and dilation >= 1 and padding >= 0, got kernel {kernel_hw}, "
            f"stride {(sh, sw)}, padding {(ph, pw)}, dilation {(dil_h, dil_w)}",
        )
    h, wd = x_shape[-2:]
    geom = ConvGeometry.of((h, wd), (kh, kw), (sh, sw), (ph, pw), (dil_h, dil_w))
    if geom.ho < 1 or geom.wo < 1:
        raise LayerValueError(
            op,
            f"input of spatial size {h}x{wd} with padding {(ph, pw)} is too small for a "
            f"{kh}x{kw} kernel with dilation {(dil_h, dil_w)} (output would be "
            f"{geom.ho}x{geom.wo})",
        )
    return geom


def check_conv_arrays(
    op: str, x: FloatArray, w: FloatArray, b: FloatArray | None, weight_layout: str
) -> None:
    """Require float arrays of one dtype: a 4-D input, a 4-D weight (``weight_layout`` goes
    in the message) and an optional bias."""
    check_float(op, "x", x)
    check_float(op, "weight", w)
    check_rank(op, "input", x, 4, "(N, C, H, W)")
    check_rank(op, "weight", w, 4, weight_layout)
    if b is not None:
        check_float(op, "bias", b)
    check_same_dtype(op, x=x, weight=w, bias=b)


def conv2d_forward(
    x: FloatArray,
    w: FloatArray,
    b: FloatArray | None = None,
    stride: IntOrPair = 1,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
) -> tuple[FloatArray, Conv2dCache]:
    """Convolve x (N, C, H, W) with w (O, C/groups, kh, kw) [+ b (O,)] -> (y (N, O, ho, wo), cache).

    ho = floor((H + 2*ph - dil_h*(kh-1) - 1) / sh) + 1, and likewise wo (PyTorch's rule).
    """
    op = "conv2d"
    check_conv_arrays(op, x, w, b, "(O, C/groups, kh, kw)")
    if not isinstance(groups, (int, np.integer)) or groups < 1:
        raise LayerValueError(op, f"groups must be a positive int, got {groups!r}")
    n, c = x.shape[:2]
    o, cg, kh, kw = w.shape
    if c % groups or o % groups:
        raise LayerValueError(
            op, f"groups={groups} must divide in_channels {c} and out_channels {o}"
        )
    if cg * groups != c:
        raise LayerValueError(
            op,
            f"expected {cg * groups} input channels (weight {tuple(w.shape)}, groups={groups}), "
            f"got {c} (input shape {tuple(x.shape)})",
        )
    if b is not None and b.shape != (o,):
        raise LayerValueError(op, f"expected bias of shape ({o},), got {tuple(b.shape)}")
    geom = conv_geometry(op, x.shape, (kh, kw), stride, padding, dilation)
    g, col_len, length = int(groups), cg * kh * kw, geom.ho * geom.wo
    cols = kernels.unfold(x, geom)  # (N, C, kh, kw, ho, wo)
    cols = cols.reshape(n, g, col_len, length)  # (N, G, K, L)
    wg = w.reshape(g, o // g, col_len)  # (G, O/G, K)
    y = kernels.conv_matmul(wg, cols)  # (N, G, O/G, L)
    y = y.reshape(n, o, geom.ho, geom.wo)  # (N, O, ho, wo)
    if b is not None:
        y += b.reshape(1, o, 1, 1)  # y is a fresh array
    return y, Conv2dCache(cols, w, x.shape, b is not None, g, geom)


def conv2d_backward(
    dy: FloatArray, cache: Conv2dCache
) -> tuple[FloatArray, FloatArray, FloatArray | None]:
    """Gradients of conv2d: dy (N, O, ho, wo) -> (dx (N, C, H, W), dw like w, db (O,) or None)."""
    op = "conv2d_backward"
    n, c = cache.x_shape[:2]
    w, geom, g = cache.w, cache.geom, cache.groups
    o, _, kh, kw = w.shape
    check_float(op, "dy", dy)
    check_same_dtype(op, dy=dy, weight=w)
    check_same_shape(op, "dy", dy, (n, o, geom.ho, geom.wo))
    dyg = dy.reshape(n, g, o // g, geom.ho * geom.wo)  # (N, G, O/G, L)
    wg = w.reshape(g, o // g, -1)  # (G, O/G, K)
    dw = kernels.conv_backward_weight(dyg, cache.cols)  # (G, O/G, K)
    dw = dw.reshape(w.shape)  # (O, C/G, kh, kw)
    dcols = kernels.conv_matmul(wg.transpose(0, 2, 1), dyg)  # (N, G, K, L)
    dcols = dcols.reshape(n, c, kh, kw, geom.ho, geom.wo)
    dx = kernels.fold(dcols, geom)  # (N, C, H, W)
    db = dy.sum(axis=(0, 2, 3)) if cache.has_bias else None  # (O,)
    return dx, dw, db
