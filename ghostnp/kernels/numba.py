"""Numba versions of the hot loops in ``reference.py``, with the same signatures.

Each kernel runs ``prange`` over outputs that no other iteration writes (an (n, c)
plane of the result, or one output channel of a weight gradient), so parallel
iterations never race on a ``+=``. Loops keep the last index innermost so that memory
is read contiguously when the stride is 1.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

# Below this many multiply-adds a kernel runs on one thread: waking the thread pool
# costs more than the work (and far more on a busy machine), as gradient checks and
# small layers show.
PARALLEL_MIN_WORK = 1 << 16


def _threads(work: int) -> int:
    return numba.config.NUMBA_NUM_THREADS if work >= PARALLEL_MIN_WORK else 1


@njit(parallel=True, cache=True)
def _im2col(xp, kh, kw, sh, sw, dh, dw, ho, wo):
    n, c = xp.shape[0], xp.shape[1]
    cols = np.empty((n, c, kh, kw, ho, wo), dtype=xp.dtype)
    for nc in prange(n * c):
        b = nc // c
        ch = nc % c
        for i in range(kh):
            for j in range(kw):
                for a in range(ho):
                    r = a * sh + i * dh
                    for q in range(wo):
                        cols[b, ch, i, j, a, q] = xp[b, ch, r, q * sw + j * dw]
    return cols


@njit(parallel=True, cache=True)
def _col2im(cols, hp, wp, sh, sw, dh, dw):
    n, c, kh, kw, ho, wo = cols.shape
    dxp = np.zeros((n, c, hp, wp), dtype=cols.dtype)
    for nc in prange(n * c):  # each iteration owns the plane dxp[b, ch]
        b = nc // c
        ch = nc % c
        for i in range(kh):
            for j in range(kw):
                for a in range(ho):
                    r = a * sh + i * dh
                    for q in range(wo):
                        dxp[b, ch, r, q * sw + j * dw] += cols[b, ch, i, j, a, q]
    return dxp


@njit(parallel=True, cache=True)
def _depthwise_forward(xp, w, sh, sw, dh, dw, ho, wo):
    n, c = xp.shape[0], xp.shape[1]
    o, kh, kw = w.shape
    m = o // c
    y = np.zeros((n, o, ho, wo), dtype=xp.dtype)
    for no in prange(n * o):  # each iteration owns the plane y[b, oc]
        b = no // o
        oc = no % o
        ch = oc // m
        for i in range(kh):
            for j in range(kw):
                wv = w[oc, i, j]
                for a in range(ho):
                    r = a * sh + i * dh
                    for q in range(wo):
                        y[b, oc, a, q] += wv * xp[b, ch, r, q * sw + j * dw]
    return y


@njit(parallel=True, cache=True)
def _depthwise_backward_input(dy, w, c, hp, wp, sh, sw, dh, dw):
    n, o, ho, wo = dy.shape
    kh, kw = w.shape[1], w.shape[2]
    m = o // c
    dxp = np.zeros((n, c, hp, wp), dtype=dy.dtype)
    for nc in prange(n * c):  # each iteration owns the plane dxp[b, ch]
        b = nc // c
        ch = nc % c
        for i in range(kh):
            for j in range(kw):
                for mm in range(m):
                    oc = ch * m + mm
                    wv = w[oc, i, j]
                    for a in range(ho):
                        r = a * sh + i * dh
                        for q in range(wo):
                            dxp[b, ch, r, q * sw + j * dw] += wv * dy[b, oc, a, q]
    return dxp


@njit(parallel=True, cache=True)
def _depthwise_backward_weight(dy, xp, kh, kw, sh, sw, dh, dw):
    n, o, ho, wo = dy.shape
    c = xp.shape[1]
    m = o // c
    dw_ = np.zeros((o, kh, kw), dtype=dy.dtype)
    for oc in prange(o):  # each iteration owns dw_[oc]
        ch = oc // m
        for i in range(kh):
            for j in range(kw):
                acc = 0.0
                for b in range(n):
                    for a in range(ho):
                        r = a * sh + i * dh
                        for q in range(wo):
                            acc += dy[b, oc, a, q] * xp[b, ch, r, q * sw + j * dw]
                dw_[oc, i, j] = acc
    return dw_


# Public wrappers with the reference signatures: pick the thread count, then run.


def im2col(xp, kh, kw, sh, sw, dh, dw, ho, wo):
    numba.set_num_threads(_threads(xp.shape[0] * xp.shape[1] * kh * kw * ho * wo))
    return _im2col(xp, kh, kw, sh, sw, dh, dw, ho, wo)


def col2im(cols, hp, wp, sh, sw, dh, dw):
    numba.set_num_threads(_threads(cols.size))
    return _col2im(cols, hp, wp, sh, sw, dh, dw)


def depthwise_forward(xp, w, sh, sw, dh, dw, ho, wo):
    numba.set_num_threads(_threads(xp.shape[0] * w.size * ho * wo))
    return _depthwise_forward(xp, w, sh, sw, dh, dw, ho, wo)


def depthwise_backward_input(dy, w, c, hp, wp, sh, sw, dh, dw):
    numba.set_num_threads(_threads(dy.size * w.shape[1] * w.shape[2]))
    return _depthwise_backward_input(dy, w, c, hp, wp, sh, sw, dh, dw)


def depthwise_backward_weight(dy, xp, kh, kw, sh, sw, dh, dw):
    numba.set_num_threads(_threads(dy.size * kh * kw))
    return _depthwise_backward_weight(dy, xp, kh, kw, sh, sw, dh, dw)
