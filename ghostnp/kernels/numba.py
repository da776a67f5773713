"""Numba versions of the hot loops in ``reference.py``, with the same signatures.

Every kernel runs ``prange`` over outputs that no other iteration writes (a block of
whole channels, or an (n, c) plane), so parallel iterations never race on a ``+=``; the
depthwise weight gradient sums over the batch inside the iteration that owns its
channels. Results are allocated by NumPy in the wrappers at the bottom (NumPy asks the
kernel for huge pages, which makes first writes to a large fresh array several times
cheaper than in memory allocated inside a kernel).

The layout trick behind the fast kernels
----------------------------------------
Take stride (sh, sw) and an output of ho x wo. When the input is no larger than
(sh*ho) x (sw*wo), as in every GhostNet layer ('same' padding at stride 1, even sizes at
stride 2), split it into sh*sw *phases*: phase (u, v) holds the pixels x[sh*a + u,
sw*q + v], an ho x wo plane shaped exactly like an output plane. Kernel tap (i, j), at
unpadded offset (i*dh - ph, j*dw - pw), then reads for every output pixel (a, q) the
pixel (a + fi, q + gj) of one phase: with the flat index t = a*wo + q that is the
single shifted run ``phase_flat[t + fi*wo + gj]``. The planes of consecutive channels
are consecutive in memory, so one contiguous, vectorised loop per tap covers a whole
block of channels; at stride 1 the only phase is x itself and nothing is copied.

A shifted read that leaves its plane (into the padding, or into the next plane) must
count as zero. It is multiplied by ``wm[k, t] = w[c, k] * valid[k, t]``, a per-element
weight that is 0 exactly there, built once per block of channels and reused for every
image. The same run-and-mask form gives the input gradient (shifts reversed, each phase
of dx gathering the taps that land on it), the weight gradient (per-pixel products
summed over the batch, then masked and reduced), and im2col / col2im for dense
convolutions. Other geometries (a multiplier M > 1 is fine; a 'valid' convolution whose
input is larger than sh*ho is not) run plain loops.

``fastmath={"contract"}`` only lets a multiply and an add fuse into one FMA; no sum is
reordered except the final per-channel reduction of the weight gradient, and every
result is deterministic (it does not depend on the thread count).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

# Below this many multiply-adds a kernel runs on one thread: waking the thread pool
# costs more than the work (and far more on a busy machine), as gradient checks and
# small layers show.
PARALLEL_MIN_WORK = 1 << 16

# Elements per block of channels in the fast depthwise kernels: the block's masked
# weights (kh*kw of these) stay in cache while every image of the batch streams by.
STACK = 2048

FASTMATH = {"contract"}


def _threads(work: int) -> int:
    return numba.config.NUMBA_NUM_THREADS if work >= PARALLEL_MIN_WORK else 1


# ----------------------------------------------------------------------------------------
# geometry and masks
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
def _masked_weights(w, first, step, nc, mask, wm):
    """wm[k, cc*L + t] = w[first + cc*step, k] * mask[k, t], for cc < nc."""
    kw = w.shape[2]
    length = mask.shape[1]
    for k in range(mask.shape[0]):
        mk = mask[k]
        for cc in range(nc):
            wv = w[first + cc * step, k // kw, k % kw]
            dst = wm[k, cc * length : (cc + 1) * length]
            for t in range(length):
                dst[t] = wv * mk[t]


# ----------------------------------------------------------------------------------------
# moving planes in and out of the flat layout
# ----------------------------------------------------------------------------------------


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
# the inner loops
# ----------------------------------------------------------------------------------------


@njit(cache=True, fastmath=FASTMATH)
def _mac_taps(out, wm, src, s0, shift, ks, n, assign):
    """out[t] (= if assign, else +=) sum over k in ks of wm[k, t] * src[s0 + t + shift[k]].

    For t in [0, n). Reads that would fall outside ``src`` are skipped: their weight is
    zero by construction. Taps go three at a time through one vectorised loop over t
    (slices are indexed from 0, so no negative-index check blocks vectorisation).
    """
    size = src.size
    lo, hi = 0, n
    for k in ks:
        lo = max(lo, -(s0 + shift[k]))
        hi = min(hi, size - s0 - shift[k])
    lo = min(lo, n)
    hi = max(hi, lo)
    o = out[lo:hi]
    first = assign
    g = 0
    if ks.size == 9:  # a 3x3 kernel: all taps in one pass, the sum kept in a register
        a0, a1, a2 = wm[ks[0], lo:hi], wm[ks[1], lo:hi], wm[ks[2], lo:hi]
        a3, a4, a5 = wm[ks[3], lo:hi], wm[ks[4], lo:hi], wm[ks[5], lo:hi]
        a6, a7, a8 = wm[ks[6], lo:hi], wm[ks[7], lo:hi], wm[ks[8], lo:hi]
        m = o.size
        b0, b1, b2 = s0 + lo + shift[ks[0]], s0 + lo + shift[ks[1]], s0 + lo + shift[ks[2]]
        b3, b4, b5 = s0 + lo + shift[ks[3]], s0 + lo + shift[ks[4]], s0 + lo + shift[ks[5]]
        b6, b7, b8 = s0 + lo + shift[ks[6]], s0 + lo + shift[ks[7]], s0 + lo + shift[ks[8]]
        x0, x1, x2 = src[b0 : b0 + m], src[b1 : b1 + m], src[b2 : b2 + m]
        x3, x4, x5 = src[b3 : b3 + m], src[b4 : b4 + m], src[b5 : b5 + m]
        x6, x7, x8 = src[b6 : b6 + m], src[b7 : b7 + m], src[b8 : b8 + m]
        if first:
            for t in range(m):
                o[t] = (
                    a0[t] * x0[t]
                    + a1[t] * x1[t]
                    + a2[t] * x2[t]
                    + a3[t] * x3[t]
                    + a4[t] * x4[t]
                    + a5[t] * x5[t]
                    + a6[t] * x6[t]
                    + a7[t] * x7[t]
                    + a8[t] * x8[t]
                )
        else:
            for t in range(m):
                o[t] += (
                    a0[t] * x0[t]
                    + a1[t] * x1[t]
                    + a2[t] * x2[t]
                    + a3[t] * x3[t]
                    + a4[t] * x4[t]
                    + a5[t] * x5[t]
                    + a6[t] * x6[t]
                    + a7[t] * x7[t]
                    + a8[t] * x8[t]
                )
        g = 9
    while g < ks.size:
        if ks.size - g >= 3:
            k0, k1, k2 = ks[g], ks[g + 1], ks[g + 2]
            a0, a1, a2 = wm[k0, lo:hi], wm[k1, lo:hi], wm[k2, lo:hi]
            b0, b1, b2 = s0 + lo + shift[k0], s0 + lo + shift[k1], s0 + lo + shift[k2]
            x0, x1, x2 = src[b0 : b0 + o.size], src[b1 : b1 + o.size], src[b2 : b2 + o.size]
            if first:
                for t in range(o.size):
                    o[t] = a0[t] * x0[t] + a1[t] * x1[t] + a2[t] * x2[t]
            else:
                for t in range(o.size):
                    o[t] += a0[t] * x0[t] + a1[t] * x1[t] + a2[t] * x2[t]
            g += 3
        else:
            k0 = ks[g]
            a0 = wm[k0, lo:hi]
            b0 = s0 + lo + shift[k0]
            x0 = src[b0 : b0 + o.size]
            if first:
                for t in range(o.size):
                    o[t] = a0[t] * x0[t]
            else:
                for t in range(o.size):
                    o[t] += a0[t] * x0[t]
            g += 1
        first = False
    if ks.size == 0 and assign:
        o[:] = 0
    for e in range(n - (hi - lo)):  # the few elements next to the ends of src, tap by tap
        t = e if e < lo else e + hi - lo
        acc = 0.0 if assign else out[t]
        for k in ks:
            idx = s0 + t + shift[k]
            if 0 <= idx < size:
                acc += wm[k, t] * src[idx]
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
    k = 0
    while k < shift.size:
        if shift.size - k >= 3:
            p0, p1, p2 = part[k, lo:hi], part[k + 1, lo:hi], part[k + 2, lo:hi]
            b0, b1, b2 = s0 + lo + shift[k], s0 + lo + shift[k + 1], s0 + lo + shift[k + 2]
            x0, x1, x2 = src[b0 : b0 + gk.size], src[b1 : b1 + gk.size], src[b2 : b2 + gk.size]
            for t in range(gk.size):
                gt = gk[t]
                p0[t] += gt * x0[t]
                p1[t] += gt * x1[t]
                p2[t] += gt * x2[t]
            k += 3
        else:
            p0 = part[k, lo:hi]
            b0 = s0 + lo + shift[k]
            x0 = src[b0 : b0 + gk.size]
            for t in range(gk.size):
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
    k = 0
    while k < shift.size:
        if shift.size - k >= 3:
            p0, p1, p2 = part[k, lo:hi], part[k + 1, lo:hi], part[k + 2, lo:hi]
            a0, a1, a2 = s0 + lo + shift[k], s0 + lo + shift[k + 1], s0 + lo + shift[k + 2]
            c0, c1, c2 = s1 + lo + shift[k], s1 + lo + shift[k + 1], s1 + lo + shift[k + 2]
            x0, x1, x2 = src[a0 : a0 + m], src[a1 : a1 + m], src[a2 : a2 + m]
            y0, y1, y2 = src[c0 : c0 + m], src[c1 : c1 + m], src[c2 : c2 + m]
            for t in range(m):
                u = ga[t]
                v = gb[t]
                p0[t] += u * x0[t] + v * y0[t]
                p1[t] += u * x1[t] + v * y1[t]
                p2[t] += u * x2[t] + v * y2[t]
            k += 3
        else:
            p0 = part[k, lo:hi]
            a0, c0 = s0 + lo + shift[k], s1 + lo + shift[k]
            x0, y0 = src[a0 : a0 + m], src[c0 : c0 + m]
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


@njit(cache=True, fastmath={"contract", "reassoc"})
def _dot(a, b):
    """sum_t a[t] * b[t], vectorised (the compiler picks the order of the additions)."""
    acc = a[0] * 0
    for t in range(a.size):
        acc += a[t] * b[t]
    return acc


# ----------------------------------------------------------------------------------------
# depthwise convolution, fast kernels
# ----------------------------------------------------------------------------------------


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _dw_forward_fast(x, w, sh, sw, dh, dw, ph, pw, y, stack):
    n, c = x.shape[0], x.shape[1]
    o, kh, kw = w.shape
    m = o // c
    ho, wo = y.shape[2], y.shape[3]
    length = ho * wo
    taps = kh * kw
    phase, shift, fr, fc = _tap_table(kh, kw, sh, sw, dh, dw, ph, pw, wo)
    mask = _valid_mask(fr, fc, 1, ho, wo, x)
    ks = np.arange(taps)
    direct = sh * sw == 1 and x.shape[2] == ho and x.shape[3] == wo  # read x in place
    cb = max(1, min(c, stack // length))  # channels per work item
    yf = y.reshape(n, o * length)
    xf = x.reshape(x.size)
    for it in prange((c + cb - 1) // cb):  # item: channels [c0, c0 + nc), every image
        c0 = it * cb
        nc = min(cb, c - c0)
        ln = nc * length
        wm = np.empty((m, taps, ln), dtype=x.dtype)
        for mm in range(m):
            _masked_weights(w, c0 * m + mm, m, nc, mask, wm[mm])
        buf = np.zeros(0 if direct else sh * sw * ln, dtype=x.dtype)
        tmp = np.empty(0 if m == 1 else ln, dtype=x.dtype)
        sk = shift + phase * ln
        for b in range(n):
            if not direct:
                _load_phases(x, b, c0, nc, sh, sw, ho, wo, buf)
            for mm in range(m):
                out = yf[b, c0 * length : c0 * length + ln] if m == 1 else tmp
                if direct:
                    _mac_taps(out, wm[mm], xf, (b * c + c0) * length, shift, ks, ln, True)
                else:
                    _mac_taps(out, wm[mm], buf, 0, sk, ks, ln, True)
                if m > 1:
                    _scatter_planes(tmp, y, b, c0 * m + mm, m, nc)
    return y


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _dw_backward_input_fast(dy, w, sh, sw, dh, dw, ph, pw, dx, stack):
    n, o, ho, wo = dy.shape
    c = dx.shape[1]
    m = o // c
    kh, kw = w.shape[1], w.shape[2]
    length = ho * wo
    taps = kh * kw
    nph = sh * sw
    phase, shift, fr, fc = _tap_table(kh, kw, sh, sw, dh, dw, ph, pw, wo)
    mask = _valid_mask(fr, fc, -1, ho, wo, dy)  # input pixel t gets from output t - shift
    neg = -shift
    by_phase, count = _taps_by_phase(phase, nph)
    direct = nph == 1 and dx.shape[2] == ho and dx.shape[3] == wo  # dx is the only phase
    cb = max(1, min(c, stack // length))
    dxf = dx.reshape(n, c * length) if direct else dx.reshape(n, dx.size // n)
    dyf = dy.reshape(dy.size)
    for it in prange((c + cb - 1) // cb):  # item: channels [c0, c0 + nc), every image
        c0 = it * cb
        nc = min(cb, c - c0)
        ln = nc * length
        wm = np.empty((m, taps, ln), dtype=dy.dtype)
        for mm in range(m):
            _masked_weights(w, c0 * m + mm, m, nc, mask, wm[mm])
        buf = np.empty(0 if direct else nph * ln, dtype=dy.dtype)
        g = np.empty(0 if m == 1 else ln, dtype=dy.dtype)
        for b in range(n):
            for mm in range(m):  # the M output channels of an input channel all add into it
                if m == 1:
                    src, s0 = dyf, (b * c + c0) * length
                else:
                    _gather_planes(dy, b, c0 * m + mm, m, nc, g)
                    src, s0 = g, 0
                for p in range(nph):
                    out = (
                        dxf[b, c0 * length : c0 * length + ln]
                        if direct
                        else buf[p * ln : (p + 1) * ln]
                    )
                    _mac_taps(out, wm[mm], src, s0, neg, by_phase[p, : count[p]], ln, mm == 0)
            if not direct:
                _store_phases(buf, dx, b, c0, nc, sh, sw, ho, wo)
    return dx


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _dw_backward_weight_fast(dy, x, sh, sw, dh, dw, ph, pw, dw_, stack):
    n, o, ho, wo = dy.shape
    c = x.shape[1]
    m = o // c
    kh, kw = dw_.shape[1], dw_.shape[2]
    length = ho * wo
    taps = kh * kw
    phase, shift, fr, fc = _tap_table(kh, kw, sh, sw, dh, dw, ph, pw, wo)
    mask = _valid_mask(fr, fc, 1, ho, wo, x)
    direct = sh * sw == 1 and x.shape[2] == ho and x.shape[3] == wo
    cb = max(1, min(c, stack // length))
    dyf = dy.reshape(n, o * length)
    xf = x.reshape(x.size)
    for it in prange((c + cb - 1) // cb):  # item: channels [c0, c0 + nc), summed over images
        c0 = it * cb
        nc = min(cb, c - c0)
        ln = nc * length
        part = np.zeros((m, taps, ln), dtype=dy.dtype)  # per tap and pixel, summed over n
        buf = np.zeros(0 if direct else 2 * sh * sw * ln, dtype=x.dtype)  # two images
        half = sh * sw * ln
        g = np.empty(0 if m == 1 else ln, dtype=dy.dtype)
        sk = shift + phase * ln
        paired = 0
        while m == 1 and paired + 1 < n:  # images in pairs: half the traffic on `part`
            b = paired
            g0 = dyf[b, c0 * length : c0 * length + ln]
            g1 = dyf[b + 1, c0 * length : c0 * length + ln]
            if direct:
                s0 = (b * c + c0) * length
                _acc_products2(part[0], g0, g1, xf, s0, s0 + c * length, shift, ln)
            else:
                _load_phases(x, b, c0, nc, sh, sw, ho, wo, buf[:half])
                _load_phases(x, b + 1, c0, nc, sh, sw, ho, wo, buf[half:])
                _acc_products2(part[0], g0, g1, buf, 0, half, sk, ln)
            paired += 2
        for b in range(paired, n):
            if not direct:
                _load_phases(x, b, c0, nc, sh, sw, ho, wo, buf[:half])
            for mm in range(m):
                if m == 1:
                    gb = dyf[b, c0 * length : c0 * length + ln]
                else:
                    _gather_planes(dy, b, c0 * m + mm, m, nc, g)
                    gb = g
                if direct:
                    _acc_products(part[mm], gb, xf, (b * c + c0) * length, shift, ln)
                else:
                    _acc_products(part[mm], gb, buf[:half], 0, sk, ln)
        for mm in range(m):
            for k in range(taps):
                for cc in range(nc):
                    seg = part[mm, k, cc * length : (cc + 1) * length]
                    dw_[(c0 + cc) * m + mm, k // kw, k % kw] = _dot(seg, mask[k])
    return dw_


# ----------------------------------------------------------------------------------------
# depthwise convolution, plain loops for the other geometries
# ----------------------------------------------------------------------------------------


@njit(cache=True)
def _valid_cols(off, s, w, wo):
    """Output columns q in [q0, q1) whose input column q*s + off lies in [0, w)."""
    q0 = 0 if off >= 0 else (-off + s - 1) // s
    q1 = (w - 1 - off) // s + 1 if w - 1 - off >= 0 else 0
    return q0, max(q0, min(q1, wo))


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _dw_forward_loops(x, w, sh, sw, dh, dw, ph, pw, y):
    n, c, h, wd = x.shape
    o, kh, kw = w.shape
    m = o // c
    ho, wo = y.shape[2], y.shape[3]
    for no in prange(n * o):  # each iteration owns the plane y[b, oc]
        b, oc = no // o, no % o
        ch = oc // m
        for a in range(ho):
            row = y[b, oc, a]
            row[:] = 0
            for i in range(kh):
                r = a * sh - ph + i * dh
                if 0 <= r < h:
                    for j in range(kw):
                        off = j * dw - pw
                        q0, q1 = _valid_cols(off, sw, wd, wo)
                        wv = w[oc, i, j]
                        for q in range(q0, q1):
                            row[q] += wv * x[b, ch, r, q * sw + off]
    return y


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _dw_backward_input_loops(dy, w, sh, sw, dh, dw, ph, pw, dx):
    n, o, ho, wo = dy.shape
    kh, kw = w.shape[1], w.shape[2]
    c, h, wd = dx.shape[1], dx.shape[2], dx.shape[3]
    m = o // c
    for nc in prange(n * c):  # each iteration owns the plane dx[b, ch]
        b, ch = nc // c, nc % c
        dx[b, ch] = 0
        for mm in range(m):
            oc = ch * m + mm
            for a in range(ho):
                for i in range(kh):
                    r = a * sh - ph + i * dh
                    if 0 <= r < h:
                        for j in range(kw):
                            off = j * dw - pw
                            q0, q1 = _valid_cols(off, sw, wd, wo)
                            wv = w[oc, i, j]
                            for q in range(q0, q1):
                                dx[b, ch, r, q * sw + off] += wv * dy[b, oc, a, q]
    return dx


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _dw_backward_weight_loops(dy, x, sh, sw, dh, dw, ph, pw, dw_):
    n, o, ho, wo = dy.shape
    c, h, wd = x.shape[1], x.shape[2], x.shape[3]
    kh, kw = dw_.shape[1], dw_.shape[2]
    m = o // c
    for oc in prange(o):  # each iteration owns dw_[oc], summing over the batch itself
        ch = oc // m
        for i in range(kh):
            for j in range(kw):
                off = j * dw - pw
                q0, q1 = _valid_cols(off, sw, wd, wo)
                acc = 0.0
                for b in range(n):
                    for a in range(ho):
                        r = a * sh - ph + i * dh
                        if 0 <= r < h:
                            for q in range(q0, q1):
                                acc += dy[b, oc, a, q] * x[b, ch, r, q * sw + off]
                dw_[oc, i, j] = acc
    return dw_


# ----------------------------------------------------------------------------------------
# im2col / col2im (dense convolution)
# ----------------------------------------------------------------------------------------


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _im2col_fast(x, sh, sw, dh, dw, ph, pw, cols, threads):
    n, c, kh, kw, ho, wo = cols.shape
    length = ho * wo
    taps = kh * kw
    phase, shift, fr, fc = _tap_table(kh, kw, sh, sw, dh, dw, ph, pw, wo)
    mask = _valid_mask(fr, fc, 1, ho, wo, x)
    sk = shift + phase * length
    direct = sh * sw == 1 and x.shape[2] == ho and x.shape[3] == wo
    cf = cols.reshape(n * c, taps, length)
    xf = x.reshape(x.size)
    planes = n * c
    chunks = min(planes, threads)
    for ci in prange(chunks):  # each chunk owns the planes cols[b, ch] of its (b, ch)
        buf = np.zeros(0 if direct else sh * sw * length, dtype=x.dtype)
        one = np.empty(1, dtype=np.int64)
        for p in range(ci * planes // chunks, (ci + 1) * planes // chunks):
            if not direct:
                _load_phases(x, p // c, p % c, 1, sh, sw, ho, wo, buf)
            for k in range(taps):  # cols[b, ch, k] = masked, shifted copy of one phase
                one[0] = k
                if direct:
                    _mac_taps(cf[p, k], mask, xf, p * length, shift, one, length, True)
                else:
                    _mac_taps(cf[p, k], mask, buf, 0, sk, one, length, True)
    return cols


@njit(parallel=True, cache=True, fastmath=FASTMATH)
def _col2im_fast(cols, sh, sw, dh, dw, ph, pw, dx, threads):
    n, c, kh, kw, ho, wo = cols.shape
    length = ho * wo
    taps = kh * kw
    nph = sh * sw
    phase, shift, fr, fc = _tap_table(kh, kw, sh, sw, dh, dw, ph, pw, wo)
    mask = _valid_mask(fr, fc, -1, ho, wo, cols)
    by_phase, count = _taps_by_phase(phase, nph)
    back = np.arange(taps) * length - shift  # tap k's plane, shifted back
    direct = nph == 1 and dx.shape[2] == ho and dx.shape[3] == wo
    cf = cols.reshape(n * c, taps * length)
    dxf = dx.reshape(n * c, dx.shape[2] * dx.shape[3])
    planes = n * c
    chunks = min(planes, threads)
    for ci in prange(chunks):  # each chunk owns the planes dx[b, ch] of its (b, ch)
        buf = np.empty(0 if direct else nph * length, dtype=cols.dtype)
        for p in range(ci * planes // chunks, (ci + 1) * planes // chunks):
            for q in range(nph):  # phase q of dx sums the (masked) taps that land on it
                out = dxf[p] if direct else buf[q * length : (q + 1) * length]
                _mac_taps(out, mask, cf[p], 0, back, by_phase[q, : count[q]], length, True)
            if not direct:
                _store_phases(buf, dx, p // c, p % c, 1, sh, sw, ho, wo)
    return dx


@njit(parallel=True, cache=True)
def _im2col_loops(x, sh, sw, dh, dw, ph, pw, cols):
    n, c, kh, kw, ho, wo = cols.shape
    h, wd = x.shape[2], x.shape[3]
    for nc in prange(n * c):  # each iteration owns the plane cols[b, ch]
        b, ch = nc // c, nc % c
        for i in range(kh):
            for j in range(kw):
                off = j * dw - pw
                q0, q1 = _valid_cols(off, sw, wd, wo)
                for a in range(ho):
                    row = cols[b, ch, i, j, a]
                    row[:] = 0
                    r = a * sh - ph + i * dh
                    if 0 <= r < h:
                        for q in range(q0, q1):
                            row[q] = x[b, ch, r, q * sw + off]
    return cols


@njit(parallel=True, cache=True)
def _col2im_loops(cols, sh, sw, dh, dw, ph, pw, dx):
    n, c, kh, kw, ho, wo = cols.shape
    h, wd = dx.shape[2], dx.shape[3]
    for nc in prange(n * c):  # each iteration owns the plane dx[b, ch]
        b, ch = nc // c, nc % c
        dx[b, ch] = 0
        for i in range(kh):
            for j in range(kw):
                off = j * dw - pw
                q0, q1 = _valid_cols(off, sw, wd, wo)
                for a in range(ho):
                    r = a * sh - ph + i * dh
                    if 0 <= r < h:
                        for q in range(q0, q1):
                            dx[b, ch, r, q * sw + off] += cols[b, ch, i, j, a, q]
    return dx


# ----------------------------------------------------------------------------------------
# Public wrappers with the reference signatures: allocate, pick the thread count and the
# kernel, then run.
# ----------------------------------------------------------------------------------------


def _set_threads(work: int) -> int:
    t = _threads(work)
    numba.set_num_threads(t)
    return t


def _phases_fit(h, w, sh, sw, ho, wo):
    """True when the input fits in sh*sw phases of the output's size (the fast kernels)."""
    return h <= sh * ho and w <= sw * wo


def im2col(xp, kh, kw, sh, sw, dh, dw, ho, wo, ph=0, pw=0):
    n, c, h, wd = xp.shape
    t = _set_threads(n * c * kh * kw * ho * wo)
    cols = np.empty((n, c, kh, kw, ho, wo), dtype=xp.dtype)
    if _phases_fit(h, wd, sh, sw, ho, wo):
        return _im2col_fast(xp, sh, sw, dh, dw, ph, pw, cols, t)
    return _im2col_loops(xp, sh, sw, dh, dw, ph, pw, cols)


def col2im(cols, hp, wp, sh, sw, dh, dw, ph=0, pw=0):
    n, c, kh, kw, ho, wo = cols.shape
    h, wd = hp - 2 * ph, wp - 2 * pw
    t = _set_threads(cols.size)
    dx = np.empty((n, c, h, wd), dtype=cols.dtype)
    if _phases_fit(h, wd, sh, sw, ho, wo):
        return _col2im_fast(cols, sh, sw, dh, dw, ph, pw, dx, t)
    return _col2im_loops(cols, sh, sw, dh, dw, ph, pw, dx)


def depthwise_forward(xp, w, sh, sw, dh, dw, ho, wo, ph=0, pw=0):
    n, c, h, wd = xp.shape
    _set_threads(n * w.size * ho * wo)
    y = np.empty((n, w.shape[0], ho, wo), dtype=xp.dtype)
    if _phases_fit(h, wd, sh, sw, ho, wo):
        return _dw_forward_fast(xp, w, sh, sw, dh, dw, ph, pw, y, STACK)
    return _dw_forward_loops(xp, w, sh, sw, dh, dw, ph, pw, y)


def depthwise_backward_input(dy, w, c, hp, wp, sh, sw, dh, dw, ph=0, pw=0):
    n, o, ho, wo = dy.shape
    h, wd = hp - 2 * ph, wp - 2 * pw
    _set_threads(dy.size * w.shape[1] * w.shape[2])
    dx = np.empty((n, c, h, wd), dtype=dy.dtype)
    if _phases_fit(h, wd, sh, sw, ho, wo):
        return _dw_backward_input_fast(dy, w, sh, sw, dh, dw, ph, pw, dx, STACK)
    return _dw_backward_input_loops(dy, w, sh, sw, dh, dw, ph, pw, dx)


def depthwise_backward_weight(dy, xp, kh, kw, sh, sw, dh, dw, ph=0, pw=0):
    n, o, ho, wo = dy.shape
    h, wd = xp.shape[2], xp.shape[3]
    _set_threads(dy.size * kh * kw)
    dw_ = np.empty((o, kh, kw), dtype=dy.dtype)
    if _phases_fit(h, wd, sh, sw, ho, wo):
        return _dw_backward_weight_fast(dy, xp, sh, sw, dh, dw, ph, pw, dw_, STACK)
    return _dw_backward_weight_loops(dy, xp, sh, sw, dh, dw, ph, pw, dw_)
