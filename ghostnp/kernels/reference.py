"""Readable NumPy versions of ghostnp's hot loops: the ones to step through.

Every function here has a twin with the same signature in ``numba.py``; both must give
the same numbers. The kernels work on the padded input ``xp`` (N, C, Hp, Wp) and never
look outside it. Geometry: kernel (kh, kw), stride (sh, sw), dilation (dh, dw), output
(ho, wo). The optional padding (ph, pw) lets a caller hand over the unpadded input
instead: it is zero-padded here, and gradients come back cropped to the unpadded size
(the Numba twins pad virtually, without the copy).

The trick used throughout: for a fixed kernel offset (i, j), the input pixels that meet
weight w[i, j] over all output positions form one strided slice of ``xp``:

    xp[:, :, i*dh : i*dh + sh*(ho-1) + 1 : sh,  j*dw : j*dw + sw*(wo-1) + 1 : sw]   # (N, C, ho, wo)

so a loop over the kh*kw offsets, each doing whole-array work, replaces six nested loops.
"""

from __future__ import annotations

import numpy as np


def _pad(x, ph, pw):
    """Zero-pad the last two axes by ph rows and pw columns on each side."""
    if ph == 0 and pw == 0:
        return x
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def _crop(xp, ph, pw):
    """Drop the padding again: the gradient of ``_pad``."""
    if ph == 0 and pw == 0:
        return xp
    hp, wp = xp.shape[-2:]
    return np.ascontiguousarray(xp[:, :, ph : hp - ph, pw : wp - pw])


def _window(i, j, sh, sw, dh, dw, ho, wo):
    """The (row, col) slices of the padded input that kernel offset (i, j) touches."""
    r0, c0 = i * dh, j * dw
    return slice(r0, r0 + sh * (ho - 1) + 1, sh), slice(c0, c0 + sw * (wo - 1) + 1, sw)


def im2col(xp, kh, kw, sh, sw, dh, dw, ho, wo, ph=0, pw=0):
    """Unfold patches: (N, C, Hp, Wp) -> cols (N, C, kh, kw, ho, wo).

    cols[n, c, i, j, a, b] = xp[n, c, a*sh + i*dh, b*sw + j*dw]
    """
    xp = _pad(xp, ph, pw)
    n, c = xp.shape[:2]
    cols = np.empty((n, c, kh, kw, ho, wo), dtype=xp.dtype)
    for i in range(kh):
        for j in range(kw):
            rows, cs = _window(i, j, sh, sw, dh, dw, ho, wo)
            cols[:, :, i, j] = xp[:, :, rows, cs]
    return cols


def col2im(cols, hp, wp, sh, sw, dh, dw, ph=0, pw=0):
    """Fold patches back, summing overlaps: cols (N, C, kh, kw, ho, wo) -> (N, C, Hp, Wp),
    or (N, C, Hp - 2*ph, Wp - 2*pw) with the padding cropped off.

    The adjoint of ``im2col``: a pixel that appeared in several patches receives the sum
    of their gradients, hence ``+=``.
    """
    n, c, kh, kw, ho, wo = cols.shape
    dxp = np.zeros((n, c, hp, wp), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            rows, cs = _window(i, j, sh, sw, dh, dw, ho, wo)
            dxp[:, :, rows, cs] += cols[:, :, i, j]
    return _crop(dxp, ph, pw)


def depthwise_forward(xp, w, sh, sw, dh, dw, ho, wo, ph=0, pw=0):
    """Depthwise conv: xp (N, C, Hp, Wp), w (C*M, kh, kw) -> y (N, C*M, ho, wo).

    Output channel o reads input channel o // M (PyTorch's groups=C ordering).
    y[n, o, a, b] = sum_{i,j} w[o, i, j] * xp[n, o//M, a*sh + i*dh, b*sw + j*dw]
    """
    xp = _pad(xp, ph, pw)
    n, c = xp.shape[:2]
    o, kh, kw = w.shape
    m = o // c
    y = np.zeros((n, c, m, ho, wo), dtype=xp.dtype)
    wv = w.reshape(c, m, kh, kw)
    for i in range(kh):
        for j in range(kw):
            rows, cs = _window(i, j, sh, sw, dh, dw, ho, wo)
            # (N, C, 1, ho, wo) * (C, M, 1, 1): every multiplier of channel c at once
            y += xp[:, :, None, rows, cs] * wv[:, :, i, j, None, None]
    return y.reshape(n, o, ho, wo)


def depthwise_backward_input(dy, w, c, hp, wp, sh, sw, dh, dw, ph=0, pw=0):
    """Gradient w.r.t. the padded input: dy (N, C*M, ho, wo), w (C*M, kh, kw) -> (N, C, Hp, Wp),
    or (N, C, Hp - 2*ph, Wp - 2*pw) with the padding cropped off."""
    n, o, ho, wo = dy.shape
    _, kh, kw = w.shape
    m = o // c
    dyv = dy.reshape(n, c, m, ho, wo)
    wv = w.reshape(c, m, kh, kw)
    dxp = np.zeros((n, c, hp, wp), dtype=dy.dtype)
    for i in range(kh):
        for j in range(kw):
            rows, cs = _window(i, j, sh, sw, dh, dw, ho, wo)
            # the M output channels made from input channel c all send gradient back to it
            dxp[:, :, rows, cs] += np.einsum("ncmab,cm->ncab", dyv, wv[:, :, i, j])
    return _crop(dxp, ph, pw)


def depthwise_backward_weight(dy, xp, kh, kw, sh, sw, dh, dw, ph=0, pw=0):
    """Gradient w.r.t. the weight: dy (N, C*M, ho, wo), xp (N, C, Hp, Wp) -> (C*M, kh, kw).

    dw[o, i, j] = sum_{n,a,b} dy[n, o, a, b] * xp[n, o//M, a*sh + i*dh, b*sw + j*dw]
    """
    xp = _pad(xp, ph, pw)
    n, o, ho, wo = dy.shape
    c = xp.shape[1]
    m = o // c
    dyv = dy.reshape(n, c, m, ho, wo)
    dw_ = np.empty((c, m, kh, kw), dtype=dy.dtype)
    for i in range(kh):
        for j in range(kw):
            rows, cs = _window(i, j, sh, sw, dh, dw, ho, wo)
            dw_[:, :, i, j] = np.einsum("ncmab,ncab->cm", dyv, xp[:, :, rows, cs])
    return dw_.reshape(o, kh, kw)


def depthwise_backward(dy, xp, w, sh, sw, dh, dw, ph=0, pw=0):
    """Both gradients at once: (depthwise_backward_input, depthwise_backward_weight).

    dxp has the shape of ``xp``; the Numba twin computes the two in one pass over dy.
    """
    n, c, hp, wp = xp.shape
    _, kh, kw = w.shape
    dxp = depthwise_backward_input(dy, w, c, hp + 2 * ph, wp + 2 * pw, sh, sw, dh, dw, ph, pw)
    dwt = depthwise_backward_weight(dy, xp, kh, kw, sh, sw, dh, dw, ph, pw)
    return dxp, dwt


# ----------------------------------------------------------------------------------------
# batch norm: per-channel statistics and the two elementwise passes, on (N, C, H, W)
# ----------------------------------------------------------------------------------------


def _channel_sum(a):
    """sum over (N, H, W) of a (N, C, H, W) -> (C,): pairwise along each contiguous plane
    (as accurate as ``a.sum(axis=(0, 2, 3))`` and faster)."""
    n, c = a.shape[:2]
    return a.reshape(n, c, -1).sum(axis=2).sum(axis=0)


def _channel_dot(a, b):
    """sum over (N, H, W) of a * b -> (C,), as one BLAS dot per plane: no (N, C, H, W)
    temporary for the product."""
    n, c = a.shape[:2]
    hw = a.shape[2] * a.shape[3]
    return np.matmul(a.reshape(n, c, 1, hw), b.reshape(n, c, hw, 1)).reshape(n, c).sum(axis=0)


def batch_norm_stats(x):
    """Per-channel mean and biased variance of x (N, C, H, W): two (C,) arrays."""
    n, c, h, w = x.shape
    m = n * h * w
    mu = _channel_sum(x) / m
    xc = x - mu.reshape(1, c, 1, 1)  # two passes: no cancellation as in E[x^2] - E[x]^2
    return mu, _channel_dot(xc, xc) / m


def batch_norm_normalize(x, mu, inv_std, weight, bias, affine):
    """xhat = (x - mu) * inv_std and y = weight * xhat + bias, per channel: (xhat, y),
    both (N, C, H, W); y is xhat itself when ``affine`` is False."""
    c = x.shape[1]
    xhat = x - mu.reshape(1, c, 1, 1)
    xhat *= inv_std.reshape(1, c, 1, 1)  # in place: one (N, C, H, W) array fewer
    if not affine:
        return xhat, xhat
    y = xhat * weight.reshape(1, c, 1, 1)
    y += bias.reshape(1, c, 1, 1)
    return xhat, y


def batch_norm_backward(dy, xhat, scale, training):
    """(dx, dweight, dbias) of batch norm from dy and xhat (N, C, H, W).

    ``scale`` (C,) is weight * inv_std. In training dx = scale * (dy - dbias/M - xhat *
    dweight/M) with M = N*H*W, else dx = scale * dy; dbias = sum dy, dweight = sum dy*xhat.
    """
    n, c, h, w = dy.shape
    m = n * h * w
    dbias = _channel_sum(dy)  # (C,)
    dweight = _channel_dot(dy, xhat)  # (C,)
    s = scale.reshape(1, c, 1, 1)
    if not training:
        return dy * s, dweight, dbias
    dx = xhat * (-dweight / m).reshape(1, c, 1, 1)  # built in place, pass by pass
    dx += dy
    dx -= (dbias / m).reshape(1, c, 1, 1)
    dx *= s
    return dx, dweight, dbias
