"""2-D convolution by im2col, and its backward pass by col2im.

Forward, for one group g (shapes with N batch, C in, O out, G groups, K = C/G*kh*kw,
L = ho*wo):

    cols = im2col(pad(x))                       # (N, G, K, L)   one column per output pixel
    y    = W_g @ cols + b                       # (G, O/G, K) @ (N, G, K, L) -> (N, G, O/G, L)

Backward, with dy reshaped to (N, G, O/G, L):

    dW_g  = sum_n dy_g @ cols_g^T               # (O/G, K)
    dcols = W_g^T @ dy_g                        # (N, G, K, L)
    dx    = crop(col2im(dcols))                 # overlapping patches add up: col2im is im2col's adjoint
    db    = sum over n, h, w of dy              # (O,)

A 1x1 convolution without padding needs no im2col: its columns are the input pixels.
The kernels pad virtually (im2col reads zeros outside x, col2im drops what falls on
the padding), so neither pad(x) nor the padded gradient is ever materialised.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import LayerValueError
from ..kernels import dispatch as K
from .shape import check_float, check_rank, check_same_dtype, conv_out_size, pair

__all__ = ["Conv2dCache", "conv2d_forward", "conv2d_backward", "conv_geometry"]


class Conv2dCache(NamedTuple):
    """What conv2d_backward needs: the columns (or the input, for 1x1) and the geometry."""

    cols: np.ndarray  # (N, G, K, L); for a 1x1 conv the (strided) input as (N, G, C/G, L)
    w: np.ndarray  # (O, C/G, kh, kw)
    x_shape: tuple  # (N, C, H, W)
    has_bias: bool
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int
    out_hw: tuple  # (ho, wo)
    pointwise: bool  # True when the 1x1 shortcut was taken


def conv_geometry(op, x_shape, kernel_hw, stride, padding, dilation):
    """Normalise stride/padding/dilation to pairs and compute (ho, wo), or raise.

    Shared by convolution, depthwise convolution and pooling, which all slide a window.
    """
    sh, sw = pair(stride, "stride", op)
    ph, pw = pair(padding, "padding", op)
    dh, dw = pair(dilation, "dilation", op)
    kh, kw = kernel_hw
    if min(sh, sw, dh, dw, kh, kw) < 1 or min(ph, pw) < 0:
        raise LayerValueError(
            op,
            f"expected kernel, stride and dilation >= 1 and padding >= 0, got kernel {kernel_hw}, "
            f"stride {(sh, sw)}, padding {(ph, pw)}, dilation {(dh, dw)}",
        )
    h, w = x_shape[-2:]
    ho = conv_out_size(h, kh, sh, ph, dh)
    wo = conv_out_size(w, kw, sw, pw, dw)
    if ho < 1 or wo < 1:
        raise LayerValueError(
            op,
            f"input of spatial size {h}x{w} with padding {(ph, pw)} is too small for a "
            f"{kh}x{kw} kernel with dilation {(dh, dw)} (output would be {ho}x{wo})",
        )
    return (sh, sw), (ph, pw), (dh, dw), (ho, wo)


def _weight_grad(dy, cols):
    """sum_n dy[n] @ cols[n]^T for dy (N, O, L), cols (N, K, L) -> (O, K), by whichever
    of two BLAS routes moves less memory:

    * N products into an (N, O, K) stack, then a sum over n: extra memory N*O*K;
    * one (O, N*L) @ (N*L, K) product after transposing copies of both: (O + K)*N*L.
    """
    n, o, length = dy.shape
    k = cols.shape[1]
    if o * k <= (o + k) * length:
        return np.matmul(dy, cols.transpose(0, 2, 1)).sum(axis=0)  # (N, O, K) -> (O, K)
    return np.tensordot(dy, cols, axes=([0, 2], [0, 2]))  # (O, K)


def conv2d_forward(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """Convolve x (N, C, H, W) with w (O, C/groups, kh, kw) [+ b (O,)] -> (y (N, O, ho, wo), cache).

    ho = floor((H + 2*ph - dh*(kh-1) - 1) / sh) + 1, and likewise wo (PyTorch's rule).
    """
    op = "conv2d"
    check_float(op, "x", x)
    check_float(op, "weight", w)
    check_rank(op, "input", x, 4, "(N, C, H, W)")
    check_rank(op, "weight", w, 4, "(O, C/groups, kh, kw)")
    if b is not None:
        check_float(op, "bias", b)
    check_same_dtype(op, x=x, weight=w, bias=b)
    if not isinstance(groups, (int, np.integer)) or groups < 1:
        raise LayerValueError(op, f"groups must be a positive int, got {groups!r}")
    n, c, h, wd = x.shape
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
    (sh, sw), (ph, pw), (dh, dw), (ho, wo) = conv_geometry(
        op, x.shape, (kh, kw), stride, padding, dilation
    )
    g = groups
    pointwise = kh == 1 and kw == 1 and ph == 0 and pw == 0
    if pointwise:
        xs = x if (sh, sw) == (1, 1) else x[:, :, ::sh, ::sw]
        cols = np.ascontiguousarray(xs).reshape(n, g, cg, ho * wo)  # (N, G, C/G, L)
    else:
        cols6 = K.im2col(x, kh, kw, sh, sw, dh, dw, ho, wo, ph, pw)  # (N, C, kh, kw, ho, wo)
        cols = cols6.reshape(n, g, cg * kh * kw, ho * wo)  # (N, G, K, L)
    wg = w.reshape(g, o // g, cg * kh * kw)  # (G, O/G, K)
    if g == 1 and ho * wo == 1:  # 1x1 maps (squeeze-excite, head): one (N, K) @ (K, O)
        y = (cols.reshape(n, -1) @ wg[0].T).reshape(n, o, 1, 1)
    else:
        y = np.matmul(wg, cols).reshape(n, o, ho, wo)  # (N, O, ho, wo)
    if b is not None:
        y += b.reshape(1, o, 1, 1)
    cache = Conv2dCache(
        cols, w, x.shape, b is not None, (sh, sw), (ph, pw), (dh, dw), g, (ho, wo), pointwise
    )
    return y, cache


def conv2d_backward(dy, cache: Conv2dCache):
    """Gradients of conv2d: dy (N, O, ho, wo) -> (dx (N, C, H, W), dw like w, db (O,) or None)."""
    op = "conv2d_backward"
    n, c, h, wd = cache.x_shape
    w = cache.w
    o, cg, kh, kw = w.shape
    ho, wo = cache.out_hw
    check_float(op, "dy", dy)
    check_same_dtype(op, dy=dy, weight=w)
    if dy.shape != (n, o, ho, wo):
        raise LayerValueError(op, f"expected dy of shape {(n, o, ho, wo)}, got {tuple(dy.shape)}")
    g = cache.groups
    (sh, sw), (ph, pw), (dh, dw_) = cache.stride, cache.padding, cache.dilation
    dyg = dy.reshape(n, g, o // g, ho * wo)  # (N, G, O/G, L)
    cols = cache.cols  # (N, G, K, L)

    wg = w.reshape(g, o // g, -1)  # (G, O/G, K)
    if g == 1 and ho * wo == 1:  # 1x1 maps: plain matrix products over the batch
        dy2, cols2 = dyg.reshape(n, o), cols.reshape(n, -1)  # (N, O), (N, K)
        dw = (dy2.T @ cols2).reshape(w.shape)  # (O, K)
        dcols = (dy2 @ wg[0]).reshape(cols.shape)  # (N, 1, K, 1)
    else:
        # dW_g = sum over n and l of dy[n, g, :, l] (outer) cols[n, g, :, l]
        dw = np.empty((g, o // g, cols.shape[2]), dtype=dy.dtype)
        for gi in range(g):
            dw[gi] = _weight_grad(dyg[:, gi], cols[:, gi])
        dw = dw.reshape(w.shape)
        dcols = np.matmul(wg.transpose(0, 2, 1), dyg)  # (N, G, K, L)
    if cache.pointwise:
        dxs = dcols.reshape(n, c, ho, wo)
        if (sh, sw) == (1, 1):
            dx = dxs
        else:  # pixels the stride skipped had no effect on y
            dx = np.zeros((n, c, h, wd), dtype=dy.dtype)
            dx[:, :, ::sh, ::sw] = dxs
    else:
        dcols6 = dcols.reshape(n, c, kh, kw, ho, wo)
        # the adjoint of im2col, with the padding cropped off: (N, C, H, W)
        dx = K.col2im(dcols6, h + 2 * ph, wd + 2 * pw, sh, sw, dh, dw_, ph, pw)
    db = dy.sum(axis=(0, 2, 3)) if cache.has_bias else None
    return dx, dw, db
