"""The plain loops: im2col, col2im and depthwise convolution for any geometry.

Each kernel reads an input that is already zero-padded (``xp``, (N, C, Hp, Wp)) and runs
the definition in ``reference.py`` as loops, with the last index innermost so that
memory is read in order when the stride is 1. These are the kernels to read first.

Every kernel runs ``prange`` over outputs that no other iteration writes (an (n, c) plane
of the result, or the filters of one output channel), so parallel iterations never race
on a ``+=``; a weight gradient sums over the batch inside the iteration that owns its
channel. Indices: image ``ni``, channel ``ci``, output channel ``oi``, tap (i, j),
output pixel (p, q), input row ``r``.
"""

from __future__ import annotations

import numpy as np
from numba import prange

from .jit import kernel


@kernel(parallel=True)
def _im2col(xp, kh, kw, sh, sw, dil_h, dil_w, ho, wo):
    """cols[n, c, i, j, p, q] = xp[n, c, p*sh + i*dil_h, q*sw + j*dil_w]."""
    n, c = xp.shape[0], xp.shape[1]
    cols = np.empty((n, c, kh, kw, ho, wo), dtype=xp.dtype)
    for nc in prange(n * c):
        ni = nc // c
        ci = nc % c
        for i in range(kh):
            for j in range(kw):
                for p in range(ho):
                    r = p * sh + i * dil_h
                    for q in range(wo):
                        cols[ni, ci, i, j, p, q] = xp[ni, ci, r, q * sw + j * dil_w]
    return cols


@kernel(parallel=True)
def _col2im(cols, hp, wp, sh, sw, dil_h, dil_w):
    """The adjoint of ``_im2col``: (N, C, kh, kw, ho, wo) -> dxp (N, C, hp, wp)."""
    n, c, kh, kw, ho, wo = cols.shape
    dxp = np.zeros((n, c, hp, wp), dtype=cols.dtype)
    for nc in prange(n * c):  # each iteration owns the plane dxp[ni, ci]
        ni = nc // c
        ci = nc % c
        for i in range(kh):
            for j in range(kw):
                for p in range(ho):
                    r = p * sh + i * dil_h
                    for q in range(wo):
                        dxp[ni, ci, r, q * sw + j * dil_w] += cols[ni, ci, i, j, p, q]
    return dxp


@kernel(parallel=True)
def _depthwise_forward(xp, w, sh, sw, dil_h, dil_w, ho, wo):
    """y[n, o, p, q] = sum_{i,j} w[o, i, j] * xp[n, o // M, p*sh + i*dil_h, q*sw + j*dil_w]."""
    n, c = xp.shape[0], xp.shape[1]
    o, kh, kw = w.shape
    m = o // c
    y = np.zeros((n, o, ho, wo), dtype=xp.dtype)
    for no in prange(n * o):  # each iteration owns the plane y[ni, oi]
        ni = no // o
        oi = no % o
        ci = oi // m
        for i in range(kh):
            for j in range(kw):
                wv = w[oi, i, j]
                for p in range(ho):
                    r = p * sh + i * dil_h
                    for q in range(wo):
                        y[ni, oi, p, q] += wv * xp[ni, ci, r, q * sw + j * dil_w]
    return y


@kernel(parallel=True)
def _depthwise_backward_input(dy, w, c, hp, wp, sh, sw, dil_h, dil_w):
    """dxp (N, C, hp, wp): each input pixel sums w * dy over the windows and filters that read it."""
    n, o, ho, wo = dy.shape
    kh, kw = w.shape[1], w.shape[2]
    m = o // c
    dxp = np.zeros((n, c, hp, wp), dtype=dy.dtype)
    for nc in prange(n * c):  # each iteration owns the plane dxp[ni, ci]
        ni = nc // c
        ci = nc % c
        for i in range(kh):
            for j in range(kw):
                for mi in range(m):
                    oi = ci * m + mi
                    wv = w[oi, i, j]
                    for p in range(ho):
                        r = p * sh + i * dil_h
                        for q in range(wo):
                            dxp[ni, ci, r, q * sw + j * dil_w] += wv * dy[ni, oi, p, q]
    return dxp


@kernel(parallel=True)
def _depthwise_backward_weight(dy, xp, kh, kw, sh, sw, dil_h, dil_w):
    """dw[o, i, j] = sum_{n,p,q} dy[n, o, p, q] * xp[n, o // M, p*sh + i*dil_h, q*sw + j*dil_w]."""
    n, o, ho, wo = dy.shape
    c = xp.shape[1]
    m = o // c
    dw = np.zeros((o, kh, kw), dtype=dy.dtype)
    for oi in prange(o):  # each iteration owns dw[oi]
        ci = oi // m
        for i in range(kh):
            for j in range(kw):
                acc = 0.0
                for ni in range(n):
                    for p in range(ho):
                        r = p * sh + i * dil_h
                        for q in range(wo):
                            acc += dy[ni, oi, p, q] * xp[ni, ci, r, q * sw + j * dil_w]
                dw[oi, i, j] = acc
    return dw
