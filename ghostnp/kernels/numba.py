"""Numba versions of the hot loops in ``reference.py``, with the same signatures.

Every kernel runs ``prange`` over outputs that no other iteration writes (an (n, c)
plane of the result, a block of whole channels, or the filters of one channel), so
parallel iterations never race on a ``+=``; weight gradients sum over the batch inside
the iteration that owns their channel. Results are allocated by NumPy in the wrappers at
the bottom (NumPy asks the kernel for huge pages, which makes the first writes to a large
fresh array several times cheaper than in memory allocated inside a compiled function).

There are two sets of convolution kernels, and the batch norm kernels at the end.

**The plain loops** ``_im2col``, ``_col2im``, ``_depthwise_forward``,
``_depthwise_backward_input``, ``_depthwise_backward_weight`` work on the padded input,
for any geometry, with the last index innermost so that memory is read contiguously when
the stride is 1. They are the ones to read first.

**The phase kernels** (``_*_fast``) run whenever the input is no larger than
(sh*ho) x (sw*wo), the output times the stride, as in every GhostNet layer ('same'
padding at stride 1, even sizes at stride 2). Split the *unpadded* input into sh*sw
phases: phase (u, v) holds the pixels x[sh*a + u, sw*q + v], an ho x wo plane shaped
exactly like an output plane. Kernel tap (i, j), at unpadded offset (i*dh - ph,
j*dw - pw), then reads for every output pixel (a, q) the pixel (a + fi, q + gj) of one
phase: with the flat index t = a*wo + q that is the single shifted run
``phase_flat[t + fi*wo + gj]``. The planes of consecutive channels are consecutive in
memory, so one contiguous, vectorised loop per tap covers a whole block of channels; at
stride 1 the only phase is x itself and nothing is copied, and the padding is never
materialised.

A shifted read that leaves its plane (into the padding, or into the next plane) must
count as zero: it is multiplied by ``mask[k, t]``, which is 0 exactly there (one mask per
geometry, cached). Per-element weights ``wm[k, t] = w[c, k] * mask[k, t]`` for a block of
channels are built once and reused for every image. The same run-and-mask form gives the
input gradient (shifts reversed, each phase of dx gathering the taps that land on it),
the weight gradient (per-pixel products summed over the batch, then masked and reduced),
and im2col / col2im for dense convolutions.

``fastmath={"contract"}`` only lets a multiply and an add fuse into one FMA; no sum is
reordered except the final per-channel reduction of a weight gradient. Every result is
deterministic: it does not depend on the thread count.
"""

from __future__ import annotations

import functools

import numba
import numpy as np
from numba import njit, prange

from .reference import _crop, _pad

# Below this many multiply-adds a kernel runs on one thread: waking the thread pool
# costs more than the work (and far more on a busy machine), as gradient checks and
# small layers show. Numba's workqueue threading layer (which ghostnp.kernels prefers,
# see its __init__) sleeps between launches, and waking its threads took 0.1-0.5 ms on
# the 2-vCPU machine the benchmarks ran on, against a few microseconds for OpenMP's
# spinning threads: there only kernels of a few milliseconds are worth splitting. On the
# GhostNet depthwise layers a second thread started to pay off at about 12M multiply-adds.
PARALLEL_MIN_WORK = 1 << 16
WORKQUEUE_MIN_WORK = 12 << 20

# Elements per work item of the depthwise phase kernels: whole planes of consecutive
# channels adding up to about this many, so that the item's per-element weights stay in
# cache while every image of the batch streams through.
STACK = 4096

FASTMATH = {"contract"}
# Reductions may also be reassociated, which lets a sum be vectorised (several partial
# sums); the order then depends on the machine's vector width, never on the thread count.
REDUCE = {"contract", "reassoc"}


_layer = {"name": None}


def _min_work() -> int:
    """PARALLEL_MIN_WORK, or WORKQUEUE_MIN_WORK under the workqueue threading layer."""
    name = _layer["name"]
    if name is None:
        try:
            name = _layer["name"] = numba.threading_layer()  # known after the first launch
        except ValueError:
            name = str(numba.config.THREADING_LAYER)
    return WORKQUEUE_MIN_WORK if name == "workqueue" else PARALLEL_MIN_WORK


def _threads(work: int) -> int:
    return numba.config.NUMBA_NUM_THREADS if work >= _min_work() else 1


# ----------------------------------------------------------------------------------------
# the plain loops (any geometry, padded input)
# ----------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------
# phase kernels: geometry, masks, moving planes in and out of the flat layout
# ----------------------------------------------------------------------------------------


@njit(cache=True)
def _tap_table(kh, kw, sh, sw, dh, dw, ph, pw, wo):
    """Per tap k = i*kw + j: its phase u*sw + v, flat shift fi*wo + gj, and (fi, gj)."""
    taps = kh * kw
    phase = np.empty(taps, dtype=np.int64)
    shift = np.empty(taps, dtype=np.int64)
    fr = np.empty(taps, dtype=np.int64)
    fc = np.empty(taps, dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            k = i * kw + j
            ri, cj = i * dh - ph, j * dw - pw  # offset of the tap in the unpadded input
            u, v = ri % sh, cj % sw
            fr[k], fc[k] = (ri - u) // sh, (cj - v) // sw
            phase[k] = u * sw + v
            shift[k] = fr[k] * wo + fc[k]
    return phase, shift, fr, fc


@njit(cache=True)
def _taps_by_phase(phase, nph):
    """Row p of the result lists the taps of phase p; count[p] says how many."""
    count = np.zeros(nph, dtype=np.int64)
    table = np.empty((nph, phase.size), dtype=np.int64)
    for k in range(phase.size):
        table[phase[k], count[phase[k]]] = k
        count[phase[k]] += 1
    return table, count


@njit(cache=True)
def _valid_mask(fr, fc, sign, ho, wo, like):
    """mask[k, a*wo + q] = 1 where (a + sign*fr[k], q + sign*fc[k]) lies in an ho x wo plane."""
    mask = np.zeros((fr.size, ho * wo), dtype=like.dtype)
    for k in range(fr.size):
        for a in range(ho):
            if 0 <= a + sign * fr[k] < ho:
                row = mask[k, a * wo : (a + 1) * wo]
                for q in range(wo):
                    if 0 <= q + sign * fc[k] < wo:
                        row[q] = 1
    return mask


@njit(cache=True)
def _masked_weights(w2, first, step, nc, mask, wm):
    """wm[k, cc*L + t] = w2[first + cc*step, k] * mask[k, t], for cc < nc."""
    length = mask.shape[1]
    for k in range(mask.shape[0]):
        mk = mask[k]
        for cc in range(nc):
            wv = w2[first + cc * step, k]
            dst = wm[k, cc * length : (cc + 1) * length]
            for t in range(length):
                dst[t] = wv * mk[t]


@njit(cache=True)
def _load_phases(x, b, c0, nc, sh, sw, ho, wo, buf):
    """buf[(u*sw + v)*nc*L + cc*L + a*wo + q] = x[b, c0 + cc, sh*a + u, sw*q + v].

    Positions with no pixel behind them are never written (``buf`` starts zeroed).
    """
    c, h, w = x.shape[1], x.shape[2], x.shape[3]
    length = ho * wo
    ln = nc * length
    if h == sh * ho and w == sw * wo:  # the usual case: rows of all planes in one sweep
        xs = x.reshape(x.size)[(b * c + c0) * h * w : (b * c + c0 + nc) * h * w]
        for row in range(nc * ho):  # output row `row` of the block, all planes at once
            for u in range(sh):
                src = xs[(row * sh + u) * w : (row * sh + u + 1) * w]
                base = u * sw * ln + row * wo
                if sw == 2:
                    d0 = buf[base : base + wo]
                    d1 = buf[base + ln : base + ln + wo]
                    for q in range(wo):
                        d0[q] = src[2 * q]
                        d1[q] = src[2 * q + 1]
                else:
                    for v in range(sw):
                        d = buf[base + v * ln : base + v * ln + wo]
                        for q in range(wo):
                            d[q] = src[q * sw + v]
        return
    for cc in range(nc):
        plane = x[b, c0 + cc]
        for r in range(h):
            u, a = r % sh, r // sh
            src = plane[r]
            for v in range(min(sw, w)):
                sv = src[v::sw]
                base = (u * sw + v) * ln + cc * length + a * wo
                dst = buf[base : base + sv.size]
                for q in range(sv.size):
                    dst[q] = sv[q]


@njit(cache=True)
def _store_phases(buf, out, b, c0, nc, sh, sw, ho, wo):
    """The inverse of ``_load_phases``: out[b, c0 + cc] from the phases in ``buf``."""
    c, h, w = out.shape[1], out.shape[2], out.shape[3]
    length = ho * wo
    ln = nc * length
    if h == sh * ho and w == sw * wo:
        xs = out.reshape(out.size)[(b * c + c0) * h * w : (b * c + c0 + nc) * h * w]
        for row in range(nc * ho):
            for u in range(sh):
                dst = xs[(row * sh + u) * w : (row * sh + u + 1) * w]
                base = u * sw * ln + row * wo
                if sw == 2:
                    s0 = buf[base : base + wo]
                    s1 = buf[base + ln : base + ln + wo]
                    for q in range(wo):
                        dst[2 * q] = s0[q]
                        dst[2 * q + 1] = s1[q]
                else:
                    for v in range(sw):
                        sv = buf[base + v * ln : base + v * ln + wo]
                        for q in range(wo):
                            dst[q * sw + v] = sv[q]
        return
    for cc in range(nc):
        plane = out[b, c0 + cc]
        for r in range(h):
            u, a = r % sh, r // sh
            dst = plane[r]
            for v in range(min(sw, w)):
                dv = dst[v::sw]
                base = (u * sw + v) * ln + cc * length + a * wo
                src = buf[base : base + dv.size]
                for q in range(dv.size):
                    dv[q] = src[q]


@njit(cache=True)
def _gather_planes(a, b, first, step, nc, buf):
    """buf[cc*L : (cc+1)*L] = plane a[b, first + cc*step], flattened."""
    length = a.shape[2] * a.shape[3]
    for cc in range(nc):
        src = a[b, first + cc * step].reshape(length)
        dst = buf[cc * length : (cc + 1) * length]
        for t in range(length):
            dst[t] = src[t]


@njit(cache=True)
def _scatter_planes(buf, a, b, first, step, nc):
    """The inverse of ``_gather_planes``."""
    length = a.shape[2] * a.shape[3]
    for cc in range(nc):
        dst = a[b, first + cc * step].reshape(length)
        src = buf[cc * length : (cc + 1) * length]
        for t in range(length):
            dst[t] = src[t]


# ----------------------------------------------------------------------------------------
# phase kernels: the inner loops
# ----------------------------------------------------------------------------------------


@njit(cache=True, fastmath=FASTMATH)
def _mac_taps(out, wm, scale, src, s0, shift, ks, n, assign):
    """out[t] (= if assign, else +=) sum over k in ks of scale[k] * wm[k, t] * src[s0 + t + shift[k]].

    For t in [0, n). Reads that would fall outside ``src`` are skipped: their weight is
    zero by construction. A 3x3 kernel's nine taps go through one vectorised loop over t,
    other taps three at a time (slices are indexed from 0, so no negative-index check
    blocks vectorisation).
    """
    size = src.size
    lo, hi = 0, n
    for k in ks:
        lo = max(lo, -(s0 + shift[k]))
        hi = min(hi, size - s0 - shift[k])
    lo = min(lo, n)
    hi = max(hi, lo)
    o = out[lo:hi]
    m = o.size
    d = s0 + lo
    g = 0
    if ks.size == 9:  # all nine taps in one pass, the sum kept in a register
        k0, k1, k2, k3, k4, k5, k6, k7, k8 = (
            ks[0],
            ks[1],
            ks[2],
            ks[3],
            ks[4],
            ks[5],
            ks[6],
            ks[7],
            ks[8],
        )
        a0, a1, a2 = wm[k0, lo:hi], wm[k1, lo:hi], wm[k2, lo:hi]
        a3, a4, a5 = wm[k3, lo:hi], wm[k4, lo:hi], wm[k5, lo:hi]
        a6, a7, a8 = wm[k6, lo:hi], wm[k7, lo:hi], wm[k8, lo:hi]
        c0, c1, c2 = scale[k0], scale[k1], scale[k2]
        c3, c4, c5 = scale[k3], scale[k4], scale[k5]
        c6, c7, c8 = scale[k6], scale[k7], scale[k8]
        x0, x1, x2 = src[d + shift[k0] :][:m], src[d + shift[k1] :][:m], src[d + shift[k2] :][:m]
        x3, x4, x5 = src[d + shift[k3] :][:m], src[d + shift[k4] :][:m], src[d + shift[k5] :][:m]
        x6, x7, x8 = src[d + shift[k6] :][:m], src[d + shift[k7] :][:m], src[d + shift[k8] :][:m]
        for t in range(m):
            acc = (
                c0 * a0[t] * x0[t]
                + c1 * a1[t] * x1[t]
                + c2 * a2[t] * x2[t]
                + c3 * a3[t] * x3[t]
                + c4 * a4[t] * x4[t]
                + c5 * a5[t] * x5[t]
                + c6 * a6[t] * x6[t]
                + c7 * a7[t] * x7[t]
                + c8 * a8[t] * x8[t]
            )
            o[t] = acc if assign else o[t] + acc
        g = 9
    while g < ks.size:
        first = assign and g == 0
        if ks.size - g >= 3:
            k0, k1, k2 = ks[g], ks[g + 1], ks[g + 2]
            a0, a1, a2 = wm[k0, lo:hi], wm[k1, lo:hi], wm[k2, lo:hi]
            c0, c1, c2 = scale[k0], scale[k1], scale[k2]
            x0, x1, x2 = (
                src[d + shift[k0] :][:m],
                src[d + shift[k1] :][:m],
                src[d + shift[k2] :][:m],
            )
            for t in range(m):
                acc = c0 * a0[t] * x0[t] + c1 * a1[t] * x1[t] + c2 * a2[t] * x2[t]
                o[t] = acc if first else o[t] + acc
            g += 3
        else:
            k0 = ks[g]
            a0, c0 = wm[k0, lo:hi], scale[k0]
            x0 = src[d + shift[k0] :][:m]
            for t in range(m):
                acc = c0 * a0[t] * x0[t]
                o[t] = acc if first else o[t] + acc
            g += 1
    if ks.size == 0 and assign:
        o[:] = 0
    for e in range(n - (hi - lo)):  # the few elements next to the ends of src, tap by tap
        t = e if e < lo else e + hi - lo
        acc = 0.0 if assign else out[t]
        for k in ks:
            idx = s0 + t + shift[k]
            if 0 <= idx < size:
                acc += scale[k] * wm[k, t] * src[idx]
        out[t] = acc


@njit(cache=True, fastmath=FASTMATH)
def _acc_products(part, g, src, s0, shift, n):
    """part[k, t] += g[t] * src[s0 + t + shift[k]] for every tap k and t in [0, n).

    Reads outside ``src`` are skipped (they meet a zero of the mask later). Taps go three
    at a time, sharing the loads of g.
    """
    size = src.size
    lo, hi = 0, n
    for k in range(shift.size):
        lo = max(lo, -(s0 + shift[k]))
        hi = min(hi, size - s0 - shift[k])
    lo = min(lo, n)
    hi = max(hi, lo)
    gk = g[lo:hi]
    m = gk.size
    d = s0 + lo
    k = 0
    while k < shift.size:
        if shift.size - k >= 3:
            p0, p1, p2 = part[k, lo:hi], part[k + 1, lo:hi], part[k + 2, lo:hi]
            x0 = src[d + shift[k] :][:m]
            x1 = src[d + shift[k + 1] :][:m]
            x2 = src[d + shift[k + 2] :][:m]
            for t in range(m):
                gt = gk[t]
                p0[t] += gt * x0[t]
                p1[t] += gt * x1[t]
                p2[t] += gt * x2[t]
            k += 3
        else:
            p0 = part[k, lo:hi]
            x0 = src[d + shift[k] :][:m]
            for t in range(m):
                p0[t] += gk[t] * x0[t]
            k += 1
    for e in range(n - (hi - lo)):  # the few elements next to the ends of src
        t = e if e < lo else e + hi - lo
        for k in range(shift.size):
            idx = s0 + t + shift[k]
            if 0 <= idx < size:
                part[k, t] += g[t] * src[idx]


@njit(cache=True, fastmath=FASTMATH)
def _acc_products2(part, g0, g1, src, s0, s1, shift, n):
    """Two images at once: part[k, t] += g0[t] * src[s0 + t + shift[k]]
    + g1[t] * src[s1 + t + shift[k]] (each load and store of ``part`` serves both)."""
    size = src.size
    lo, hi = 0, n
    for k in range(shift.size):
        lo = max(lo, -(s0 + shift[k]), -(s1 + shift[k]))
        hi = min(hi, size - s0 - shift[k], size - s1 - shift[k])
    lo = min(lo, n)
    hi = max(hi, lo)
    ga, gb = g0[lo:hi], g1[lo:hi]
    m = ga.size
    d0, d1 = s0 + lo, s1 + lo
    k = 0
    while k < shift.size:
        if shift.size - k >= 3:
            p0, p1, p2 = part[k, lo:hi], part[k + 1, lo:hi], part[k + 2, lo:hi]
            x0, y0 = src[d0 + shift[k] :][:m], src[d1 + shift[k] :][:m]
            x1, y1 = src[d0 + shift[k + 1] :][:m], src[d1 + shift[k + 1] :][:m]
            x2, y2 = src[d0 + shift[k + 2] :][:m], src[d1 + shift[k + 2] :][:m]
            for t in range(m):
                u, v = ga[t], gb[t]
                p0[t] += u * x0[t] + v * y0[t]
                p1[t] += u * x1[t] + v * y1[t]
                p2[t] += u * x2[t] + v * y2[t]
            k += 3
        else:
            p0 = part[k, lo:hi]
            x0, y0 = src[d0 + shift[k] :][:m], src[d1 + shift[k] :][:m]
            for t in range(m):
                p0[t] += ga[t] * x0[t] + gb[t] * y0[t]
            k += 1
    for e in range(n - (hi - lo)):  # the few elements next to the ends of src
        t = e if e < lo else e + hi - lo
        for k in range(shift.size):
            i0, i1 = s0 + t + shift[k], s1 + t + shift[k]
            if 0 <= i0 < size:
                part[k, t] += g0[t] * src[i0]
            if 0 <= i1 < size:
                part[k, t] += g1[t] * src[i1]


@njit(cache=True, fastmath=REDUCE)
def _dot(a, b):
    """sum_t a[t] * b[t], vectorised (the compiler picks the order of the additions)."""
    acc = a[0] * 0
    for t in range(a.size):
        acc += a[t] * b[t]
    return acc


# ----------------------------------------------------------------------------------------
# phase kernels: depthwise convolution
# ----------------------------------------------------------------------------------------


@njit(cache=True, fastmath=FASTMATH)
def _dw_forward_items(x, w, sh, sw, dh, dw, ph, pw, mask, y, stack, lo, hi):
    """Depthwise forward of the work items [lo, hi): item `it` is the block of channels
    [it*cb, it*cb + nc) of every image, and owns those planes of y."""
    n, c = x.shape[0], x.shape[1]
    o, kh, kw = w.shape
    m = o // c
    ho, wo = y.shape[2], y.shape[3]
    length = ho * wo
    taps = kh * kw
    phase, shift, fr, fc = _tap_table(kh, kw, sh, sw, dh, dw, ph, pw, wo)
    w2, ones = w.reshape(o, taps), np.ones(taps, dtype=x.dtype)
    ks = np.arange(taps)
    direct = sh * sw == 1 and x.shape[2] == ho and x.shape[3] == wo  # read x in place
    cb = max(1, min(c, stack // length))  # channels per work item
    yf = y.reshape(n, o * length)
    xf = x.reshape(x.size)
    for it in range(lo, hi):
        c0 = it * cb
        nc = min(cb, c - c0)
        ln = nc * length
        # per-element weights w * mask for a block of planes (one plane needs none)
        wm = np.empty((m if nc > 1 else 0, taps, ln), dtype=x.dtype)
        for mm in range(wm.shape[0]):
            _masked_weights(w2, c0 * m + mm, m, nc, mask, wm[mm])
        buf = np.zeros(0 if direct else sh * sw * ln, dtype=x.dtype)
        tmp = np.empty(0 if m == 1 else ln, dtype=x.dtype)
        sk = shift + phase * ln
        for b in range(n):
            if not direct:
                _load_phases(x, b, c0, nc, sh, sw, ho, wo, buf)
            for mm in range(m):
                wmm, sc = (wm[mm], ones) if nc > 1 else (mask, w2[c0 * m + mm])
                out = yf[b, c0 * length : c0 * length + ln] if m == 1 else tmp
                if direct:
                    _mac_taps(out, wmm, sc, xf, (b * c + c0) * length, shift, ks, ln, True)
                else:
                    _mac_taps(out, wmm, sc, buf, 0, sk, ks, ln, True)
                if m > 1:
                    _scatter_planes(tmp, y, b, c0 * m + mm, m, nc)
    return y


@njit(parallel=True, cache=True)
def _dw_forward_par(x, w, sh, sw, dh, dw, ph, pw, mask, y, stack, items, chunks):
    for ci in prange(chunks):  # each chunk owns the planes of its items
        lo, hi = ci * items // chunks, (ci + 1) * items // chunks
        _dw_forward_items(x, w, sh, sw, dh, dw, ph, pw, mask, y, stack, lo, hi)
    return y


@njit(cache=True, fastmath=FASTMATH)
def _dw_backward_items(dy, x, w, sh, sw, dh, dw, ph, pw, mask_x, mask_dx, dx, dw_, stack, lo, hi):
    """The input gradient into ``dx`` and the weight gradient into ``dw_`` for the work
    items [lo, hi), in one pass over dy (item `it`: the block of channels [it*cb,
    it*cb + nc) of every image). Either may be skipped by passing an empty array (x is
    read only for dw_)."""
    n, o, ho, wo = dy.shape
    want_dx, want_dw = dx.size > 0, dw_.size > 0
    c, h, wd = (dx.shape[1], dx.shape[2], dx.shape[3]) if want_dx else x.shape[1:]
    m = o // c
    kh, kw = w.shape[1], w.shape[2]
    length = ho * wo
    taps = kh * kw
    nph = sh * sw
    phase, shift, fr, fc = _tap_table(kh, kw, sh, sw, dh, dw, ph, pw, wo)
    neg = -shift  # input pixel t receives from output pixel t - shift
    by_phase, count = _taps_by_phase(phase, nph)
    w2, ones = w.reshape(o, taps), np.ones(taps, dtype=dy.dtype)
    direct = nph == 1 and h == ho and wd == wo  # x and dx are their own only phase
    cb = max(1, min(c, stack // length))
    dxf = dx.reshape(dx.shape[0], dx.size // max(1, dx.shape[0]))
    dyf = dy.reshape(n, o * length)
    dyflat = dy.reshape(dy.size)
    xf = x.reshape(x.size)
    for it in range(lo, hi):
        c0 = it * cb
        nc = min(cb, c - c0)
        ln = nc * length
        half = nph * ln
        wm = np.empty((m if want_dx and nc > 1 else 0, taps, ln), dtype=dy.dtype)
        for mm in range(wm.shape[0]):
            _masked_weights(w2, c0 * m + mm, m, nc, mask_dx, wm[mm])
        part = np.zeros((m if want_dw else 0, taps, ln), dtype=dy.dtype)  # summed over n
        xbuf = np.zeros(0 if direct or not want_dw else 2 * half, dtype=x.dtype)  # 2 images
        dbuf = np.empty(0 if direct or not want_dx else half, dtype=dy.dtype)
        g = np.empty(0 if m == 1 else ln, dtype=dy.dtype)
        sk = shift + phase * ln
        b = 0
        while b < n:
            pair = want_dw and m == 1 and b + 1 < n
            stop = b + 2 if pair else b + 1
            for bb in range(b, stop if want_dx else b):
                # input gradient of image bb: each phase of dx gathers the taps landing on it
                for mm in range(m):
                    wmm, sc = (wm[mm], ones) if nc > 1 else (mask_dx, w2[c0 * m + mm])
                    if m == 1:
                        src, s0 = dyflat, (bb * o + c0) * length
                    else:
                        _gather_planes(dy, bb, c0 * m + mm, m, nc, g)
                        src, s0 = g, 0
                    for p in range(nph):
                        if direct:
                            out = dxf[bb, c0 * length : c0 * length + ln]
                        else:
                            out = dbuf[p * ln : (p + 1) * ln]
                        ks = by_phase[p, : count[p]]
                        _mac_taps(out, wmm, sc, src, s0, neg, ks, ln, mm == 0)
                if not direct:
                    _store_phases(dbuf, dx, bb, c0, nc, sh, sw, ho, wo)
            # weight gradient: products per tap and pixel, summed over the images
            if pair:  # two images at once: half the loads and stores of `part`
                g0 = dyf[b, c0 * length : c0 * length + ln]
                g1 = dyf[b + 1, c0 * length : c0 * length + ln]
                if direct:
                    s0 = (b * c + c0) * length
                    _acc_products2(part[0], g0, g1, xf, s0, s0 + c * length, shift, ln)
                else:
                    _load_phases(x, b, c0, nc, sh, sw, ho, wo, xbuf[:half])
                    _load_phases(x, b + 1, c0, nc, sh, sw, ho, wo, xbuf[half:])
                    _acc_products2(part[0], g0, g1, xbuf, 0, half, sk, ln)
            elif want_dw:
                if not direct:
                    _load_phases(x, b, c0, nc, sh, sw, ho, wo, xbuf[:half])
                for mm in range(m):
                    if m == 1:
                        gb = dyf[b, c0 * length : c0 * length + ln]
                    else:
                        _gather_planes(dy, b, c0 * m + mm, m, nc, g)
                        gb = g
                    if direct:
                        _acc_products(part[mm], gb, xf, (b * c + c0) * length, shift, ln)
                    else:
                        _acc_products(part[mm], gb, xbuf[:half], 0, sk, ln)
            b = stop
        for mm in range(part.shape[0]):  # dw = sum over the valid pixels of each plane
            for k in range(taps):
                for cc in range(nc):
                    seg = part[mm, k, cc * length : (cc + 1) * length]
                    dw_[(c0 + cc) * m + mm, k // kw, k % kw] = _dot(seg, mask_x[k])
    return dx, dw_


@njit(parallel=True, cache=True)
def _dw_backward_par(
    dy, x, w, sh, sw, dh, dw, ph, pw, mask_x, mask_dx, dx, dw_, stack, items, chunks
):
    for ci in prange(chunks):  # each chunk owns the planes and filters of its items
        lo, hi = ci * items // chunks, (ci + 1) * items // chunks
        _dw_backward_items(
            dy, x, w, sh, sw, dh, dw, ph, pw, mask_x, mask_dx, dx, dw_, stack, lo, hi
        )
    return dx, dw_


# ----------------------------------------------------------------------------------------
# phase kernels: im2col / col2im
# ----------------------------------------------------------------------------------------


@njit(cache=True, fastmath=FASTMATH)
def _im2col_items(x, sh, sw, dh, dw, ph, pw, mask, cols, lo, hi):
    """im2col of the (image, channel) planes [lo, hi)."""
    n, c, kh, kw, ho, wo = cols.shape
    length = ho * wo
    taps = kh * kw
    phase, shift, fr, fc = _tap_table(kh, kw, sh, sw, dh, dw, ph, pw, wo)
    ones = np.ones(taps, dtype=x.dtype)
    sk = shift + phase * length
    direct = sh * sw == 1 and x.shape[2] == ho and x.shape[3] == wo
    cf = cols.reshape(n * c, taps, length)
    xf = x.reshape(x.size)
    buf = np.zeros(0 if direct else sh * sw * length, dtype=x.dtype)
    one = np.empty(1, dtype=np.int64)
    for p in range(lo, hi):
        if not direct:
            _load_phases(x, p // c, p % c, 1, sh, sw, ho, wo, buf)
        for k in range(taps):  # cols[b, ch, k] = masked, shifted copy of one phase
            one[0] = k
            if direct:
                _mac_taps(cf[p, k], mask, ones, xf, p * length, shift, one, length, True)
            else:
                _mac_taps(cf[p, k], mask, ones, buf, 0, sk, one, length, True)
    return cols


@njit(parallel=True, cache=True)
def _im2col_par(x, sh, sw, dh, dw, ph, pw, mask, cols, items, chunks):
    for ci in prange(chunks):  # each chunk owns the planes cols[b, ch] of its items
        lo, hi = ci * items // chunks, (ci + 1) * items // chunks
        _im2col_items(x, sh, sw, dh, dw, ph, pw, mask, cols, lo, hi)
    return cols


@njit(cache=True, fastmath=FASTMATH)
def _col2im_items(cols, sh, sw, dh, dw, ph, pw, mask, dx, lo, hi):
    """col2im into the (image, channel) planes [lo, hi) of dx."""
    n, c, kh, kw, ho, wo = cols.shape
    length = ho * wo
    taps = kh * kw
    nph = sh * sw
    phase, shift, fr, fc = _tap_table(kh, kw, sh, sw, dh, dw, ph, pw, wo)
    ones = np.ones(taps, dtype=cols.dtype)
    by_phase, count = _taps_by_phase(phase, nph)
    back = np.arange(taps) * length - shift  # tap k's plane, shifted back
    direct = nph == 1 and dx.shape[2] == ho and dx.shape[3] == wo
    cf = cols.reshape(n * c, taps * length)
    dxf = dx.reshape(n * c, dx.shape[2] * dx.shape[3])
    buf = np.empty(0 if direct else nph * length, dtype=cols.dtype)
    for p in range(lo, hi):
        for q in range(nph):  # phase q of dx sums the (masked) taps that land on it
            out = dxf[p] if direct else buf[q * length : (q + 1) * length]
            _mac_taps(out, mask, ones, cf[p], 0, back, by_phase[q, : count[q]], length, True)
        if not direct:
            _store_phases(buf, dx, p // c, p % c, 1, sh, sw, ho, wo)
    return dx


@njit(parallel=True, cache=True)
def _col2im_par(cols, sh, sw, dh, dw, ph, pw, mask, dx, items, chunks):
    for ci in prange(chunks):  # each chunk owns the planes dx[b, ch] of its items
        lo, hi = ci * items // chunks, (ci + 1) * items // chunks
        _col2im_items(cols, sh, sw, dh, dw, ph, pw, mask, dx, lo, hi)
    return dx


# ----------------------------------------------------------------------------------------
# Public wrappers with the reference signatures: pick the thread count and the kernel,
# allocate the result, run.
# ----------------------------------------------------------------------------------------


def _set_threads(work: int) -> int:
    t = _threads(work)
    numba.set_num_threads(t)
    return t


def _phases_fit(h, w, sh, sw, ho, wo):
    """True when the input fits in sh*sw phases of the output's size (the phase kernels)."""
    return h <= sh * ho and w <= sw * wo


@functools.lru_cache(maxsize=128)
def _masks(kh, kw, sh, sw, dh, dw, ph, pw, ho, wo, dtype):
    """The validity masks of a geometry, (for reads of x, for reads of dy): each is
    (kh*kw, ho*wo), built once and shared by every call with that geometry. (They stay
    writeable: Numba types a read-only array far more slowly on every call.)"""
    _, _, fr, fc = _tap_table(kh, kw, sh, sw, dh, dw, ph, pw, wo)
    like = np.empty(0, dtype=dtype)
    return _valid_mask(fr, fc, 1, ho, wo, like), _valid_mask(fr, fc, -1, ho, wo, like)


def im2col(xp, kh, kw, sh, sw, dh, dw, ho, wo, ph=0, pw=0):
    """``reference.im2col``: (N, C, H, W) -> cols (N, C, kh, kw, ho, wo); x padded by
    (ph, pw) virtually when the phase kernels apply, else padded and looped plainly."""
    n, c, h, wd = xp.shape
    t = _set_threads(n * c * kh * kw * ho * wo)
    if _phases_fit(h, wd, sh, sw, ho, wo):
        mask = _masks(kh, kw, sh, sw, dh, dw, ph, pw, ho, wo, xp.dtype.str)[0]
        cols = np.empty((n, c, kh, kw, ho, wo), dtype=xp.dtype)
        args = (xp, sh, sw, dh, dw, ph, pw, mask, cols)
        if t == 1:  # called directly: no thread pool to wake at all
            return _im2col_items(*args, 0, n * c)
        return _im2col_par(*args, n * c, min(t, n * c))
    return _im2col(_pad(xp, ph, pw), kh, kw, sh, sw, dh, dw, ho, wo)


def col2im(cols, hp, wp, sh, sw, dh, dw, ph=0, pw=0):
    """``reference.col2im``: cols (N, C, kh, kw, ho, wo) -> (N, C, hp - 2ph, wp - 2pw),
    the adjoint of ``im2col`` with the padding cropped off."""
    n, c, kh, kw, ho, wo = cols.shape
    h, wd = hp - 2 * ph, wp - 2 * pw
    t = _set_threads(cols.size)
    if _phases_fit(h, wd, sh, sw, ho, wo):
        mask = _masks(kh, kw, sh, sw, dh, dw, ph, pw, ho, wo, cols.dtype.str)[1]
        dx = np.empty((n, c, h, wd), dtype=cols.dtype)
        args = (cols, sh, sw, dh, dw, ph, pw, mask, dx)
        if t == 1:
            return _col2im_items(*args, 0, n * c)
        return _col2im_par(*args, n * c, min(t, n * c))
    return _crop(_col2im(cols, hp, wp, sh, sw, dh, dw), ph, pw)


def _items(c, ho, wo):
    """Work items of the depthwise phase kernels: blocks of STACK // (ho*wo) channels."""
    return -(-c // max(1, min(c, STACK // (ho * wo))))


def depthwise_forward(xp, w, sh, sw, dh, dw, ho, wo, ph=0, pw=0):
    """``reference.depthwise_forward``: x (N, C, H, W), w (C*M, kh, kw) -> y (N, C*M, ho, wo)."""
    n, c, h, wd = xp.shape
    o, kh, kw = w.shape
    t = _set_threads(n * w.size * ho * wo * sh * sw)  # strided: the input is sh*sw x larger
    if _phases_fit(h, wd, sh, sw, ho, wo):
        mask = _masks(kh, kw, sh, sw, dh, dw, ph, pw, ho, wo, xp.dtype.str)[0]
        y = np.empty((n, o, ho, wo), dtype=xp.dtype)
        args = (xp, w, sh, sw, dh, dw, ph, pw, mask, y, STACK)
        items = _items(c, ho, wo)
        if t == 1:
            return _dw_forward_items(*args, 0, items)
        return _dw_forward_par(*args, items, min(t, items))
    return _depthwise_forward(_pad(xp, ph, pw), w, sh, sw, dh, dw, ho, wo)


def _dw_backward(dy, xp, w, c, h, wd, sh, sw, dh, dw, ph, pw, want_dx, want_dw):
    """Either or both depthwise gradients, (dx or None, dw or None)."""
    n, o, ho, wo = dy.shape
    _, kh, kw = w.shape
    t = _set_threads((want_dx + want_dw) * dy.size * kh * kw * sh * sw)
    if _phases_fit(h, wd, sh, sw, ho, wo):
        mask_x, mask_dx = _masks(kh, kw, sh, sw, dh, dw, ph, pw, ho, wo, dy.dtype.str)
        dx = np.empty((n, c, h, wd) if want_dx else (0, 0, 0, 0), dtype=dy.dtype)
        dw_ = np.empty((o, kh, kw) if want_dw else (0, 0, 0), dtype=dy.dtype)
        args = (dy, xp, w, sh, sw, dh, dw, ph, pw, mask_x, mask_dx, dx, dw_, STACK)
        items = _items(c, ho, wo)
        if t == 1:
            _dw_backward_items(*args, 0, items)
        else:
            _dw_backward_par(*args, items, min(t, items))
        return (dx if want_dx else None), (dw_ if want_dw else None)
    hp, wp = h + 2 * ph, wd + 2 * pw
    dx = (
        _crop(_depthwise_backward_input(dy, w, c, hp, wp, sh, sw, dh, dw), ph, pw)
        if want_dx
        else None
    )
    dw_ = (
        _depthwise_backward_weight(dy, _pad(xp, ph, pw), kh, kw, sh, sw, dh, dw)
        if want_dw
        else None
    )
    return dx, dw_


def depthwise_backward_input(dy, w, c, hp, wp, sh, sw, dh, dw, ph=0, pw=0):
    """``reference.depthwise_backward_input``: dy (N, C*M, ho, wo) -> dx (N, C, hp - 2ph,
    wp - 2pw)."""
    none = np.empty((0, 0, 0, 0), dtype=dy.dtype)  # x is not read for dx
    return _dw_backward(
        dy, none, w, c, hp - 2 * ph, wp - 2 * pw, sh, sw, dh, dw, ph, pw, True, False
    )[0]


def depthwise_backward_weight(dy, xp, kh, kw, sh, sw, dh, dw, ph=0, pw=0):
    """``reference.depthwise_backward_weight``: dy and x -> dw (C*M, kh, kw)."""
    n, c, h, wd = xp.shape
    w = np.empty((dy.shape[1], kh, kw), dtype=dy.dtype)  # only its shape is read for dw
    return _dw_backward(dy, xp, w, c, h, wd, sh, sw, dh, dw, ph, pw, False, True)[1]


def depthwise_backward(dy, xp, w, sh, sw, dh, dw, ph=0, pw=0):
    """Both depthwise gradients (dx like x, dw like w) from one pass over dy."""
    n, c, h, wd = xp.shape
    return _dw_backward(dy, xp, w, c, h, wd, sh, sw, dh, dw, ph, pw, True, True)


# ----------------------------------------------------------------------------------------
# batch norm: parallel over channels, each iteration owning its channel's statistics and
# planes; sums kept in float64, in an order that does not depend on the thread count
# ----------------------------------------------------------------------------------------


@njit(parallel=True, cache=True, fastmath=REDUCE)
def _bn_stats(x, mu, var):
    n, c, length = x.shape
    m = n * length
    for ch in prange(c):
        s = 0.0
        for b in range(n):
            xs = x[b, ch]
            for t in range(length):
                s += xs[t]
        mean = s / m
        s = 0.0
        for b in range(n):
            xs = x[b, ch]
            for t in range(length):
                d = xs[t] - mean
                s += d * d
        mu[ch] = mean
        var[ch] = s / m
    return mu, var


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _bn_normalize(x, mu, inv_std, weight, bias, xhat, y, affine):
    n, c, length = x.shape
    for ch in prange(c):
        mean, inv, g, beta = mu[ch], inv_std[ch], weight[ch], bias[ch]
        for b in range(n):
            xs, hs = x[b, ch], xhat[b, ch]
            if affine:
                ys = y[b, ch]
                for t in range(length):
                    v = (xs[t] - mean) * inv
                    hs[t] = v
                    ys[t] = v * g + beta
            else:
                for t in range(length):
                    hs[t] = (xs[t] - mean) * inv
    return xhat, y


@njit(parallel=True, cache=True, fastmath=REDUCE)
def _bn_backward(dy, xhat, scale, inv_m, training, dx, dweight, dbias):
    n, c, length = dy.shape
    for ch in prange(c):
        sb, sw = 0.0, 0.0
        for b in range(n):
            g, h = dy[b, ch], xhat[b, ch]
            for t in range(length):
                sb += g[t]
                sw += g[t] * h[t]
        dbias[ch], dweight[ch] = sb, sw
        k = scale[ch]
        # dx = k * (dy - sb/M - xhat * sw/M) in training, k * dy in eval; the means are
        # read back from the stored sums times inv_m[0] so that the loop runs in the
        # arrays' own precision (float64 scalars would widen every float32 operation)
        zero = inv_m[0] * 0  # a zero of the arrays' type
        mb, mw = (dbias[ch] * inv_m[0], dweight[ch] * inv_m[0]) if training else (zero, zero)
        for b in range(n):
            g, h, d = dy[b, ch], xhat[b, ch], dx[b, ch]
            for t in range(length):
                d[t] = k * (g[t] - mb - h[t] * mw)
    return dx, dweight, dbias


def _flat3(a):
    return a.reshape(a.shape[0], a.shape[1], -1)


def batch_norm_stats(x):
    """``reference.batch_norm_stats``: per-channel (mean, biased variance), each (C,)."""
    c = x.shape[1]
    _set_threads(x.size)
    mu, var = np.empty(c, dtype=x.dtype), np.empty(c, dtype=x.dtype)
    return _bn_stats(_flat3(x), mu, var)


def batch_norm_normalize(x, mu, inv_std, weight, bias, affine):
    """``reference.batch_norm_normalize``: (xhat, y), both (N, C, H, W); y is xhat when
    not ``affine``."""
    c = x.shape[1]
    _set_threads(x.size)
    xhat = np.empty_like(x)
    y = np.empty_like(x) if affine else xhat
    if not affine:
        weight = bias = np.empty(c, dtype=x.dtype)  # not read
    args = (_flat3(x), mu, inv_std, weight, bias, _flat3(xhat), _flat3(y), affine)
    _bn_normalize(*args)
    return xhat, y


def batch_norm_backward(dy, xhat, scale, training):
    """``reference.batch_norm_backward``: (dx (N, C, H, W), dweight (C,), dbias (C,))."""
    c = dy.shape[1]
    _set_threads(dy.size)
    dx = np.empty_like(dy)
    dweight, dbias = np.empty(c, dtype=dy.dtype), np.empty(c, dtype=dy.dtype)
    inv_m = np.full(1, c / dy.size, dtype=dy.dtype)  # 1 / (N*H*W)
    args = (_flat3(dy), _flat3(xhat), scale, inv_m, bool(training), _flat3(dx), dweight, dbias)
    _bn_backward(*args)
    return dx, dweight, dbias
