"""Depthwise convolution in the phase layout (see ``phases.py``): forward, and both
gradients from one pass over dy.

Work is split into items: item ``it`` is the block of channels [it*cb, it*cb + nc) of
every image, cb chosen so that a block holds about ``stack`` elements (``STACK`` in the
backend's interface), and the item owns those planes of y or dx and those filters of
dw. ``threads.run_items`` hands ranges of items to threads, so no two threads ever
write the same element, and a weight gradient is summed over the batch
inside the item that owns it, in an order that does not depend on the thread count.

A read that leaves a plane is multiplied by a zero of the mask, which is exact for finite
numbers but turns a NaN or Inf of a neighbouring plane (another channel or image) into a
NaN. So each block's output is checked (``_finite``, one pass over data still in cache)
and a block that is not finite is recomputed by the exact loops at the end of this file.
The weight gradient's final sum selects the valid pixels instead of multiplying by the
mask; when the block's dy holds a NaN or Inf, the exact loop computes it instead (the
reference multiplies such a dy by the zero padding, giving NaN). A sample's output thus
depends on its own input only, NaN and Inf included, and equals the reference's.
"""

from __future__ import annotations

import numpy as np

from .fastmath import FASTMATH
from .jit import kernel
from .phases import (
    _add_inside,
    _gather_planes,
    _load_phases,
    _masked_weights,
    _padded_pixel,
    _scatter_planes,
    _store_phases,
    _tap_table,
    _taps_by_phase,
)
from .taps import _acc_products, _acc_products2, _finite, _mac_taps, _masked_sum


@kernel(fastmath=FASTMATH, nogil=True)
def _dw_forward_items(x, w, sh, sw, dil_h, dil_w, ph, pw, mask, y, stack, lo, hi):
    """Depthwise forward of the work items [lo, hi): item `it` is the block of channels
    [it*cb, it*cb + nc) of every image, and owns those planes of y."""
    n, c = x.shape[0], x.shape[1]
    o, kh, kw = w.shape
    m = o // c
    ho, wo = y.shape[2], y.shape[3]
    length = ho * wo
    taps = kh * kw
    phase, shift, fr, fc = _tap_table(kh, kw, sh, sw, dil_h, dil_w, ph, pw, wo)
    w2 = w.reshape(o, taps)
    ks = np.arange(taps)
    direct = sh * sw == 1 and x.shape[2] == ho and x.shape[3] == wo  # read x in place
    cb = max(1, min(c, stack // length))  # channels per work item
    yf = y.reshape(n, o * length)
    xf = x.reshape(x.size)
    for it in range(lo, hi):
        c0 = it * cb
        nc = min(cb, c - c0)
        ln = nc * length
        # per-element weights w * mask for the block's planes, built once for all images
        wm = np.empty((m, taps, ln), dtype=x.dtype)
        for mi in range(wm.shape[0]):
            _masked_weights(w2, c0 * m + mi, m, nc, mask, wm[mi])
        buf = np.zeros(0 if direct else sh * sw * ln, dtype=x.dtype)
        tmp = np.empty(0 if m == 1 else ln, dtype=x.dtype)
        sk = shift + phase * ln
        for ni in range(n):
            if not direct:
                _load_phases(x, ni, c0, nc, sh, sw, ho, wo, buf)
            finite = True
            for mi in range(m):
                out = yf[ni, c0 * length : c0 * length + ln] if m == 1 else tmp
                if direct:
                    _mac_taps(out, wm[mi], xf, (ni * c + c0) * length, shift, ks, ln, True)
                else:
                    _mac_taps(out, wm[mi], buf, 0, sk, ks, ln, True)
                finite = finite and _finite(out)
                if m > 1:
                    _scatter_planes(tmp, y, ni, c0 * m + mi, m, nc)
            if not finite:  # a NaN or Inf may have come in under a zero of the mask
                _dw_forward_exact(x, w, sh, sw, dil_h, dil_w, ph, pw, y, ni, c0, nc)
    return y


@kernel(fastmath=FASTMATH, nogil=True)
def _dw_backward_items(
    dy, x, w, sh, sw, dil_h, dil_w, ph, pw, mask_x, mask_dx, dx, dw, stack, lo, hi
):
    """The input gradient into ``dx`` and the weight gradient into ``dw`` for the work
    items [lo, hi), in one pass over dy (item `it`: the block of channels [it*cb,
    it*cb + nc) of every image). Either may be skipped by passing an empty array (x is
    read only for dw)."""
    n, o, ho, wo = dy.shape
    want_dx, want_dw = dx.size > 0, dw.size > 0
    c, h, wd = (dx.shape[1], dx.shape[2], dx.shape[3]) if want_dx else x.shape[1:]
    m = o // c
    kh, kw = w.shape[1], w.shape[2]
    length = ho * wo
    taps = kh * kw
    nph = sh * sw
    phase, shift, fr, fc = _tap_table(kh, kw, sh, sw, dil_h, dil_w, ph, pw, wo)
    neg = -shift  # input pixel t receives from output pixel t - shift
    by_phase, count = _taps_by_phase(phase, nph)
    w2 = w.reshape(o, taps)
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
        wm = np.empty((m if want_dx else 0, taps, ln), dtype=dy.dtype)
        for mi in range(wm.shape[0]):
            _masked_weights(w2, c0 * m + mi, m, nc, mask_dx, wm[mi])
        part = np.zeros((m if want_dw else 0, taps, ln), dtype=dy.dtype)  # summed over n
        xbuf = np.zeros(0 if direct or not want_dw else 2 * half, dtype=x.dtype)  # 2 images
        dbuf = np.empty(0 if direct or not want_dx else half, dtype=dy.dtype)
        dy_block = np.empty(0 if m == 1 else ln, dtype=dy.dtype)
        sk = shift + phase * ln
        dy_finite = True  # else dw takes the exact loop: padding * NaN is NaN there
        ni = 0
        while ni < n:
            pair = want_dw and m == 1 and ni + 1 < n
            stop = ni + 2 if pair else ni + 1
            for nj in range(ni, stop if want_dx else ni):
                # input gradient of image nj: each phase of dx gathers the taps landing on it
                for mi in range(m):
                    if m == 1:
                        src, s0 = dyflat, (nj * o + c0) * length
                    else:
                        _gather_planes(dy, nj, c0 * m + mi, m, nc, dy_block)
                        src, s0 = dy_block, 0
                    for uv in range(nph):  # phase (u, v) = (uv // sw, uv % sw)
                        if direct:
                            out = dxf[nj, c0 * length : c0 * length + ln]
                        else:
                            out = dbuf[uv * ln : (uv + 1) * ln]
                        ks = by_phase[uv, : count[uv]]
                        _mac_taps(out, wm[mi], src, s0, neg, ks, ln, mi == 0)
                if not direct:
                    _store_phases(dbuf, dx, nj, c0, nc, sh, sw, ho, wo)
                done = dxf[nj, c0 * length : c0 * length + ln] if direct else dbuf
                if not _finite(done):  # a NaN or Inf may have come in under a zero of the mask
                    _dw_backward_input_exact(dy, w, sh, sw, dil_h, dil_w, ph, pw, dx, nj, c0, nc)
            # weight gradient: products per tap and pixel, summed over the images
            if pair:  # two images at once: half the loads and stores of `part`
                gy0 = dyf[ni, c0 * length : c0 * length + ln]
                gy1 = dyf[ni + 1, c0 * length : c0 * length + ln]
                dy_finite = dy_finite and _finite(gy0) and _finite(gy1)
                if direct:
                    s0 = (ni * c + c0) * length
                    _acc_products2(part[0], gy0, gy1, xf, s0, s0 + c * length, shift, ln)
                else:
                    _load_phases(x, ni, c0, nc, sh, sw, ho, wo, xbuf[:half])
                    _load_phases(x, ni + 1, c0, nc, sh, sw, ho, wo, xbuf[half:])
                    _acc_products2(part[0], gy0, gy1, xbuf, 0, half, sk, ln)
            elif want_dw:
                if not direct:
                    _load_phases(x, ni, c0, nc, sh, sw, ho, wo, xbuf[:half])
                for mi in range(m):
                    if m == 1:
                        gy = dyf[ni, c0 * length : c0 * length + ln]
                    else:
                        _gather_planes(dy, ni, c0 * m + mi, m, nc, dy_block)
                        gy = dy_block
                    dy_finite = dy_finite and _finite(gy)
                    if direct:
                        _acc_products(part[mi], gy, xf, (ni * c + c0) * length, shift, ln)
                    else:
                        _acc_products(part[mi], gy, xbuf[:half], 0, sk, ln)
            ni = stop
        if not dy_finite:
            _dw_backward_weight_exact(dy, x, sh, sw, dil_h, dil_w, ph, pw, dw, c0, nc)
            continue
        for mi in range(part.shape[0]):  # dw = sum over the valid pixels of each plane
            for k in range(taps):
                for cc in range(nc):
                    seg = part[mi, k, cc * length : (cc + 1) * length]
                    dw[(c0 + cc) * m + mi, k // kw, k % kw] = _masked_sum(seg, mask_x[k])
    return dx, dw


# ----------------------------------------------------------------------------------------
# exact loops for a block whose fast result is not finite
# ----------------------------------------------------------------------------------------


@kernel(helper=True)
def _dw_forward_exact(x, w, sh, sw, dil_h, dil_w, ph, pw, y, ni, c0, nc):
    """The planes y[ni, c0*M : (c0 + nc)*M] by the definition, on x zero-padded (a tap in
    the padding adds w * 0, as in the reference); only pixels of x's own planes are read."""
    c = x.shape[1]
    o, kh, kw = w.shape
    m = o // c
    ho, wo = y.shape[2], y.shape[3]
    for ci in range(c0, c0 + nc):
        for oi in range(ci * m, (ci + 1) * m):
            for p in range(ho):
                for q in range(wo):
                    acc = 0.0
                    for i in range(kh):
                        r = p * sh + i * dil_h - ph
                        for j in range(kw):
                            s = q * sw + j * dil_w - pw
                            acc += w[oi, i, j] * _padded_pixel(x, ni, ci, r, s)
                    y[ni, oi, p, q] = acc
    return y


@kernel(helper=True)
def _dw_backward_input_exact(dy, w, sh, sw, dil_h, dil_w, ph, pw, dx, ni, c0, nc):
    """The planes dx[ni, c0 : c0 + nc] by the definition: every output pixel adds
    w * dy to the input pixels its window reads, taps in the padding skipped."""
    c = dx.shape[1]
    o, ho, wo = dy.shape[1], dy.shape[2], dy.shape[3]
    kh, kw = w.shape[1], w.shape[2]
    m = o // c
    for ci in range(c0, c0 + nc):
        dx[ni, ci] = 0
        for oi in range(ci * m, (ci + 1) * m):
            for p in range(ho):
                for q in range(wo):
                    g = dy[ni, oi, p, q]
                    for i in range(kh):
                        r = p * sh + i * dil_h - ph
                        for j in range(kw):
                            s = q * sw + j * dil_w - pw
                            _add_inside(dx, ni, ci, r, s, w[oi, i, j] * g)
    return dx


@kernel(helper=True)
def _dw_backward_weight_exact(dy, x, sh, sw, dil_h, dil_w, ph, pw, dw, c0, nc):
    """The filters dw[c0*M : (c0 + nc)*M] by the definition: the sum over images and output
    pixels of dy times the zero-padded x (a NaN in dy meets the padding as NaN * 0)."""
    n, o, ho, wo = dy.shape
    c = x.shape[1]
    kh, kw = dw.shape[1], dw.shape[2]
    m = o // c
    for ci in range(c0, c0 + nc):
        for oi in range(ci * m, (ci + 1) * m):
            for i in range(kh):
                for j in range(kw):
                    acc = 0.0
                    for ni in range(n):
                        for p in range(ho):
                            r = p * sh + i * dil_h - ph
                            for q in range(wo):
                                s = q * sw + j * dil_w - pw
                                acc += dy[ni, oi, p, q] * _padded_pixel(x, ni, ci, r, s)
                    dw[oi, i, j] = acc
    return dw
