"""The kernels in plain NumPy: the version to read and to step through.

Every kernel here has a twin with the same name and signature in the Numba backend
(``ghostnp.kernels.numba``); ``dispatch`` runs one or the other and both give the same
numbers to rounding. Each function here computes its definition as directly as NumPy
allows. The twins keep every shortcut (virtual padding, phase layouts, BLAS routes,
threads); none of that appears here.

The convolution kernels take the unpadded input x (N, C, H, W) and a ``ConvGeometry``
``geom`` (kernel kh x kw, stride sh x sw, padding ph x pw, dilation dil_h x dil_w, input
h x wd, output ho x wo). They pad x into ``xp`` (N, C, H + 2*ph, W + 2*pw) and crop the
padding off the gradients they return.

One observation does the work of six nested loops: for a fixed tap (i, j), the input
pixels that meet weight w[i, j] over all output pixels (p, q) form one strided slice of xp,

    xp[:, :, i*dil_h + sh*p, j*dil_w + sw*q]  for p < ho, q < wo      # (N, C, ho, wo)

so a loop over the kh*kw taps, each doing whole-array work on that slice, computes a
convolution, its adjoint and its weight gradient.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..typing import FloatArray
from .geometry import ConvGeometry


def pad(x: FloatArray, ph: int, pw: int) -> FloatArray:
    """Zero-pad the last two axes by ph rows and pw columns on each side."""
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def crop(xp: FloatArray, ph: int, pw: int) -> FloatArray:
    """Drop the padding again: (N, C, Hp, Wp) -> (N, C, Hp - 2*ph, Wp - 2*pw), the adjoint of ``pad``."""
    hp, wp = xp.shape[-2:]
    return np.ascontiguousarray(xp[:, :, ph : hp - ph, pw : wp - pw])


def _taps(
    kh: int, kw: int, sh: int, sw: int, dil_h: int, dil_w: int, ho: int, wo: int
) -> Iterator[tuple[int, int, slice, slice]]:
    """Every tap (i, j), with the (row, column) slices of the padded input it reads for all
    output pixels: rows i*dil_h + sh*p for p < ho, columns j*dil_w + sw*q for q < wo."""
    for i in range(kh):
        for j in range(kw):
            r0, c0 = i * dil_h, j * dil_w
            yield i, j, slice(r0, r0 + sh * (ho - 1) + 1, sh), slice(c0, c0 + sw * (wo - 1) + 1, sw)


def _per_channel(v: FloatArray) -> FloatArray:
    """A (C,) array shaped (1, C, 1, 1), to broadcast over (N, C, H, W)."""
    return v.reshape(1, -1, 1, 1)


# ----------------------------------------------------------------------------------------
# im2col and col2im: the definitions, on an input that is already padded
# ----------------------------------------------------------------------------------------


def im2col(
    xp: FloatArray, kh: int, kw: int, sh: int, sw: int, dil_h: int, dil_w: int, ho: int, wo: int
) -> FloatArray:
    """Copy every window of the padded xp (N, C, Hp, Wp) into a column: (N, C, kh, kw, ho, wo).

    cols[n, c, i, j, p, q] = xp[n, c, p*sh + i*dil_h, q*sw + j*dil_w]
    """
    n, c = xp.shape[:2]
    cols = np.empty((n, c, kh, kw, ho, wo), dtype=xp.dtype)
    for i, j, rows, columns in _taps(kh, kw, sh, sw, dil_h, dil_w, ho, wo):
        cols[:, :, i, j] = xp[:, :, rows, columns]
    return cols


def col2im(
    cols: FloatArray, hp: int, wp: int, sh: int, sw: int, dil_h: int, dil_w: int
) -> FloatArray:
    """Put every column entry back where ``im2col`` took it: (N, C, kh, kw, ho, wo) -> (N, C, hp, wp).

    The adjoint of ``im2col``: a pixel that sits in several windows receives the sum of
    their entries, hence ``+=``.
    """
    n, c, kh, kw, ho, wo = cols.shape
    out = np.zeros((n, c, hp, wp), dtype=cols.dtype)
    for i, j, rows, columns in _taps(kh, kw, sh, sw, dil_h, dil_w, ho, wo):
        out[:, :, rows, columns] += cols[:, :, i, j]
    return out


# ----------------------------------------------------------------------------------------
# dense and grouped convolution: unfold, fold and the products
# ----------------------------------------------------------------------------------------


def unfold(x: FloatArray, geom: ConvGeometry) -> FloatArray:
    """im2col of the zero-padded x: (N, C, H, W) -> cols (N, C, kh, kw, ho, wo)."""
    xp = pad(x, geom.ph, geom.pw)  # (N, C, H + 2*ph, W + 2*pw)
    return im2col(xp, geom.kh, geom.kw, geom.sh, geom.sw, geom.dil_h, geom.dil_w, geom.ho, geom.wo)


def fold(cols: FloatArray, geom: ConvGeometry) -> FloatArray:
    """The adjoint of ``unfold``: col2im, then crop the padding: cols -> (N, C, H, W)."""
    hp, wp = geom.padded_hw
    dxp = col2im(cols, hp, wp, geom.sh, geom.sw, geom.dil_h, geom.dil_w)  # (N, C, hp, wp)
    return crop(dxp, geom.ph, geom.pw)


def conv_matmul(a: FloatArray, b: FloatArray) -> FloatArray:
    """One matrix product per image and group: a (G, P, Q) @ b (N, G, Q, L) -> (N, G, P, L).

    With a = W_g (G, O/G, K) and b = cols it is the convolution; with a = W_g^T and b = dy
    it is the column gradient dcols.
    """
    return np.matmul(a, b)


def conv_backward_weight(dy: FloatArray, cols: FloatArray) -> FloatArray:
    """dW_g = sum over images n and pixels l of dy[n, g, :, l] (outer) cols[n, g, :, l].

    dy (N, G, O/G, L), cols (N, G, K, L) -> (G, O/G, K): for each group one contraction
    over the axes n and l.
    """
    groups = dy.shape[1]
    per_group = [
        np.tensordot(dy[:, gi], cols[:, gi], axes=([0, 2], [0, 2])) for gi in range(groups)
    ]
    return np.stack(per_group)  # (G, O/G, K)


# ----------------------------------------------------------------------------------------
# depthwise convolution: output channel o = c*M + m reads input channel c only
# ----------------------------------------------------------------------------------------


def _taps_of(geom: ConvGeometry) -> Iterator[tuple[int, int, slice, slice]]:
    """``_taps`` of a geometry."""
    return _taps(geom.kh, geom.kw, geom.sh, geom.sw, geom.dil_h, geom.dil_w, geom.ho, geom.wo)


def depthwise_forward(x: FloatArray, w: FloatArray, geom: ConvGeometry) -> FloatArray:
    """x (N, C, H, W), w (C*M, kh, kw) -> y (N, C*M, ho, wo).

    y[n, c*M + m, p, q] = sum_{i,j} w[c*M + m, i, j] * xp[n, c, p*sh + i*dil_h, q*sw + j*dil_w]
    """
    xp = pad(x, geom.ph, geom.pw)  # (N, C, Hp, Wp)
    n, c = x.shape[:2]
    m = w.shape[0] // c
    wv = w.reshape(c, m, geom.kh, geom.kw)
    y = np.zeros((n, c, m, geom.ho, geom.wo), dtype=x.dtype)
    for i, j, rows, columns in _taps_of(geom):
        # (N, C, 1, ho, wo) * (C, M, 1, 1): all M filters of channel c at once
        y += xp[:, :, None, rows, columns] * wv[:, :, i, j, None, None]
    return y.reshape(n, c * m, geom.ho, geom.wo)


def depthwise_backward_input(
    dy: FloatArray, w: FloatArray, c: int, geom: ConvGeometry
) -> FloatArray:
    """dy (N, C*M, ho, wo), w (C*M, kh, kw) and the channel count C -> dx (N, C, H, W).

    dxp[n, c, p*sh + i*dil_h, q*sw + j*dil_w] += sum_m w[c*M + m, i, j] * dy[n, c*M + m, p, q]
    """
    n = dy.shape[0]
    m = w.shape[0] // c
    dyv = dy.reshape(n, c, m, geom.ho, geom.wo)
    wv = w.reshape(c, m, geom.kh, geom.kw)
    dxp = np.zeros((n, c, *geom.padded_hw), dtype=dy.dtype)
    for i, j, rows, columns in _taps_of(geom):
        # the M outputs made from input channel c all send their gradient back to it
        dxp[:, :, rows, columns] += np.einsum("ncmpq,cm->ncpq", dyv, wv[:, :, i, j])
    return crop(dxp, geom.ph, geom.pw)


def depthwise_backward_weight(dy: FloatArray, x: FloatArray, geom: ConvGeometry) -> FloatArray:
    """dy (N, C*M, ho, wo), x (N, C, H, W) -> dw (C*M, kh, kw).

    dw[c*M + m, i, j] = sum_{n,p,q} dy[n, c*M + m, p, q] * xp[n, c, p*sh + i*dil_h, q*sw + j*dil_w]
    """
    xp = pad(x, geom.ph, geom.pw)
    n, c = x.shape[:2]
    m = dy.shape[1] // c
    dyv = dy.reshape(n, c, m, geom.ho, geom.wo)
    dw = np.empty((c, m, geom.kh, geom.kw), dtype=dy.dtype)
    for i, j, rows, columns in _taps_of(geom):
        dw[:, :, i, j] = np.einsum("ncmpq,ncpq->cm", dyv, xp[:, :, rows, columns])
    return dw.reshape(c * m, geom.kh, geom.kw)


def depthwise_backward(
    dy: FloatArray, x: FloatArray, w: FloatArray, geom: ConvGeometry
) -> tuple[FloatArray, FloatArray]:
    """Both gradients, (dx (N, C, H, W), dw (C*M, kh, kw)); the Numba twin makes them in one pass."""
    dx = depthwise_backward_input(dy, w, x.shape[1], geom)
    dw = depthwise_backward_weight(dy, x, geom)
    return dx, dw


# ----------------------------------------------------------------------------------------
# batch norm: each channel c normalised over its count = N*H*W values
# ----------------------------------------------------------------------------------------


def batch_norm_stats(x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """mean = mean(x) and var = mean((x - mean)^2) over (N, H, W): two (C,) arrays.

    Two passes, so that the variance does not cancel as E[x^2] - E[x]^2 would.
    """
    mean = x.mean(axis=(0, 2, 3))
    var = ((x - _per_channel(mean)) ** 2).mean(axis=(0, 2, 3))
    return mean, var


def batch_norm_normalize(
    x: FloatArray,
    mean: FloatArray,
    inv_std: FloatArray,
    gamma: FloatArray,
    beta: FloatArray,
    affine: bool,
) -> tuple[FloatArray, FloatArray]:
    """xhat = (x - mean) * inv_std and y = gamma * xhat + beta per channel: (xhat, y).

    x (N, C, H, W) and (C,) statistics and parameters; y is xhat itself when not ``affine``.
    """
    xhat = (x - _per_channel(mean)) * _per_channel(inv_std)
    if not affine:
        return xhat, xhat
    return xhat, _per_channel(gamma) * xhat + _per_channel(beta)


def batch_norm_backward(
    dy: FloatArray, xhat: FloatArray, scale: FloatArray, training: bool
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(dx (N, C, H, W), dgamma (C,), dbeta (C,)) from dy and xhat; ``scale`` = gamma * inv_std.

    The derivation in ``ghostnp.functional.norm``, line by line, sums over (N, H, W):

        dbeta  = sum(dy)
        dgamma = sum(dy * xhat)
        dx     = scale * (dy - dbeta / count - xhat * dgamma / count)    in training
        dx     = scale * dy                                              in eval
    """
    dbeta = dy.sum(axis=(0, 2, 3))
    dgamma = (dy * xhat).sum(axis=(0, 2, 3))
    if not training:  # the running statistics are constants
        return _per_channel(scale) * dy, dgamma, dbeta
    count = dy.size // dy.shape[1]  # N*H*W
    mean_dy = _per_channel(dbeta / count)
    mean_dy_xhat = _per_channel(dgamma / count)
    dx = _per_channel(scale) * (dy - mean_dy - xhat * mean_dy_xhat)
    return dx, dgamma, dbeta
