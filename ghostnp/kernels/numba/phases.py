"""The phase layout: tap tables, validity masks, and moving planes in and out of it.

The phase kernels (``depthwise.py``, ``im2col.py``) run whenever the input is no larger
than (sh*ho) x (sw*wo), the output times the stride, as in every GhostNet layer ('same'
padding at stride 1, even sizes at stride 2). Split the *unpadded* input into sh*sw
phases: phase (u, v) holds the pixels x[sh*p + u, sw*q + v], an ho x wo plane shaped
exactly like an output plane. Tap (i, j), at unpadded offset (i*dil_h - ph, j*dil_w - pw),
then reads for every output pixel (p, q) the pixel (p + fi, q + gj) of one phase: with
the flat index t = p*wo + q that is the single shifted run ``phase_flat[t + fi*wo + gj]``.
The planes of consecutive channels are consecutive in memory, so one contiguous,
vectorised loop per tap covers a whole block of channels; at stride 1 the only phase is
x itself and nothing is copied, and the padding is never materialised.

A shifted read that leaves its plane (into the padding, or into the next plane) must
count as zero: it is multiplied by ``mask[k, t]``, which is 0 exactly there (one mask per
geometry, cached by ``masks``). Per-element weights ``wm[k, t] = w[c, k] * mask[k, t]``
for a block of channels are built once and reused for every image. The same run-and-mask
form gives the input gradient (shifts reversed, each phase of dx gathering the taps that
land on it), the weight gradient (per-pixel products summed over the batch, then masked
and reduced), and im2col / col2im for dense convolutions. L is ho*wo, the length of one
plane; ``nc`` planes of a block make a run of nc*L.
"""

from __future__ import annotations

import functools

import numpy as np

from ..geometry import ConvGeometry
from .jit import kernel


def phases_fit(geom: ConvGeometry) -> bool:
    """True when the input fits in sh*sw phases of the output's size (the phase kernels run)."""
    return geom.h <= geom.sh * geom.ho and geom.wd <= geom.sw * geom.wo


def masks(geom: ConvGeometry, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """The validity masks of a geometry, (for reads of x, for reads of dy), each (kh*kw, ho*wo)."""
    return _masks(
        geom.kh,
        geom.kw,
        geom.sh,
        geom.sw,
        geom.dil_h,
        geom.dil_w,
        geom.ph,
        geom.pw,
        geom.ho,
        geom.wo,
        dtype.str,
    )


@functools.lru_cache(maxsize=128)
def _masks(kh, kw, sh, sw, dil_h, dil_w, ph, pw, ho, wo, dtype):
    """Built once per geometry and dtype, and shared by every call with that geometry. (They
    stay writeable: Numba types a read-only array far more slowly on every call.)"""
    _, _, fr, fc = _tap_table(kh, kw, sh, sw, dil_h, dil_w, ph, pw, wo)
    like = np.empty(0, dtype=dtype)
    return _valid_mask(fr, fc, 1, ho, wo, like), _valid_mask(fr, fc, -1, ho, wo, like)


@kernel()
def _tap_table(kh, kw, sh, sw, dil_h, dil_w, ph, pw, wo):
    """Per tap k = i*kw + j: its phase u*sw + v, flat shift fi*wo + gj, and (fi, gj)."""
    taps = kh * kw
    phase = np.empty(taps, dtype=np.int64)
    shift = np.empty(taps, dtype=np.int64)
    fr = np.empty(taps, dtype=np.int64)
    fc = np.empty(taps, dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            k = i * kw + j
            ri, cj = i * dil_h - ph, j * dil_w - pw  # offset of the tap in the unpadded input
            u, v = ri % sh, cj % sw
            fr[k], fc[k] = (ri - u) // sh, (cj - v) // sw
            phase[k] = u * sw + v
            shift[k] = fr[k] * wo + fc[k]
    return phase, shift, fr, fc


@kernel(helper=True)
def _taps_by_phase(phase, nph):
    """Row u*sw + v of the result lists the taps of phase (u, v); ``count`` says how many."""
    count = np.zeros(nph, dtype=np.int64)
    table = np.empty((nph, phase.size), dtype=np.int64)
    for k in range(phase.size):
        table[phase[k], count[phase[k]]] = k
        count[phase[k]] += 1
    return table, count


@kernel()
def _valid_mask(fr, fc, sign, ho, wo, like):
    """mask[k, p*wo + q] = 1 where (p + sign*fr[k], q + sign*fc[k]) lies in an ho x wo plane."""
    mask = np.zeros((fr.size, ho * wo), dtype=like.dtype)
    for k in range(fr.size):
        for p in range(ho):
            if 0 <= p + sign * fr[k] < ho:
                row = mask[k, p * wo : (p + 1) * wo]
                for q in range(wo):
                    if 0 <= q + sign * fc[k] < wo:
                        row[q] = 1
    return mask


@kernel(helper=True)
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


@kernel(helper=True)
def _load_phases(x, ni, c0, nc, sh, sw, ho, wo, buf):
    """buf[(u*sw + v)*nc*L + cc*L + p*wo + q] = x[ni, c0 + cc, sh*p + u, sw*q + v].

    Positions with no pixel behind them are never written (``buf`` starts zeroed).
    """
    c, h, wd = x.shape[1], x.shape[2], x.shape[3]
    length = ho * wo
    ln = nc * length
    if h == sh * ho and wd == sw * wo:  # the usual case: rows of all planes in one sweep
        xs = x.reshape(x.size)[(ni * c + c0) * h * wd : (ni * c + c0 + nc) * h * wd]
        for row in range(nc * ho):  # output row `row` of the block, all planes at once
            for u in range(sh):
                src = xs[(row * sh + u) * wd : (row * sh + u + 1) * wd]
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
        plane = x[ni, c0 + cc]
        for r in range(h):
            u, p = r % sh, r // sh
            src = plane[r]
            for v in range(min(sw, wd)):
                sv = src[v::sw]
                base = (u * sw + v) * ln + cc * length + p * wo
                dst = buf[base : base + sv.size]
                for q in range(sv.size):
                    dst[q] = sv[q]


@kernel(helper=True)
def _store_phases(buf, out, ni, c0, nc, sh, sw, ho, wo):
    """The inverse of ``_load_phases``: out[ni, c0 + cc] from the phases in ``buf``."""
    c, h, wd = out.shape[1], out.shape[2], out.shape[3]
    length = ho * wo
    ln = nc * length
    if h == sh * ho and wd == sw * wo:
        xs = out.reshape(out.size)[(ni * c + c0) * h * wd : (ni * c + c0 + nc) * h * wd]
        for row in range(nc * ho):
            for u in range(sh):
                dst = xs[(row * sh + u) * wd : (row * sh + u + 1) * wd]
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
        plane = out[ni, c0 + cc]
        for r in range(h):
            u, p = r % sh, r // sh
            dst = plane[r]
            for v in range(min(sw, wd)):
                dv = dst[v::sw]
                base = (u * sw + v) * ln + cc * length + p * wo
                src = buf[base : base + dv.size]
                for q in range(dv.size):
                    dv[q] = src[q]


@kernel(helper=True)
def _gather_planes(planes, ni, first, step, nc, buf):
    """buf[cc*L : (cc+1)*L] = plane planes[ni, first + cc*step], flattened."""
    length = planes.shape[2] * planes.shape[3]
    for cc in range(nc):
        src = planes[ni, first + cc * step].reshape(length)
        dst = buf[cc * length : (cc + 1) * length]
        for t in range(length):
            dst[t] = src[t]


@kernel(helper=True)
def _scatter_planes(buf, planes, ni, first, step, nc):
    """The inverse of ``_gather_planes``."""
    length = planes.shape[2] * planes.shape[3]
    for cc in range(nc):
        dst = planes[ni, first + cc * step].reshape(length)
        src = buf[cc * length : (cc + 1) * length]
        for t in range(length):
            dst[t] = src[t]


@kernel(helper=True)
def _padded_pixel(x, ni, ci, r, s):
    """x[ni, ci, r, s] of x zero-padded: 0 where (r, s) lies outside the plane."""
    return x[ni, ci, r, s] if 0 <= r < x.shape[2] and 0 <= s < x.shape[3] else 0.0


@kernel(helper=True)
def _add_inside(dx, ni, ci, r, s, v):
    """dx[ni, ci, r, s] += v where (r, s) lies inside the plane (padding is dropped)."""
    if 0 <= r < dx.shape[2] and 0 <= s < dx.shape[3]:
        dx[ni, ci, r, s] += v
