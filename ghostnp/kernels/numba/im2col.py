"""im2col and col2im in the phase layout (see ``phases.py``), for dense convolutions.

A work item is one (image, channel) plane ``plane = ni*C + ci``; ``threads.run_items``
hands ranges of planes to threads, and each range owns its planes of the result. Column (i, j) of a plane is a masked, shifted copy of one phase
(``_masked_copy``), and col2im sums the taps that land on each phase of dx
(``_mac_taps`` with the mask as the weights). A NaN or Inf outside a plane never reaches it: im2col
selects instead of multiplying by the mask, and a col2im plane that comes out non-finite
is recomputed by the exact loop ``_col2im_exact``.
"""

from __future__ import annotations

import numpy as np

from .fastmath import FASTMATH
from .jit import kernel
from .phases import _add_inside, _load_phases, _store_phases, _tap_table, _taps_by_phase
from .taps import _finite, _mac_taps, _masked_copy


@kernel(fastmath=FASTMATH, nogil=True)
def _im2col_items(x, sh, sw, dil_h, dil_w, ph, pw, mask, cols, lo, hi):
    """im2col of the (image, channel) planes [lo, hi)."""
    n, c, kh, kw, ho, wo = cols.shape
    length = ho * wo
    taps = kh * kw
    phase, shift, fr, fc = _tap_table(kh, kw, sh, sw, dil_h, dil_w, ph, pw, wo)
    sk = shift + phase * length
    direct = sh * sw == 1 and x.shape[2] == ho and x.shape[3] == wo
    cf = cols.reshape(n * c, taps, length)
    xf = x.reshape(x.size)
    buf = np.zeros(0 if direct else sh * sw * length, dtype=x.dtype)
    for plane in range(lo, hi):
        if not direct:
            _load_phases(x, plane // c, plane % c, 1, sh, sw, ho, wo, buf)
        for k in range(taps):  # cols[ni, ci, k] = masked, shifted copy of one phase
            if direct:
                _masked_copy(cf[plane, k], mask[k], xf, plane * length + shift[k], length)
            else:
                _masked_copy(cf[plane, k], mask[k], buf, sk[k], length)
    return cols


@kernel(fastmath=FASTMATH, nogil=True)
def _col2im_items(cols, sh, sw, dil_h, dil_w, ph, pw, mask, dx, lo, hi):
    """col2im into the (image, channel) planes [lo, hi) of dx."""
    n, c, kh, kw, ho, wo = cols.shape
    length = ho * wo
    taps = kh * kw
    nph = sh * sw
    phase, shift, fr, fc = _tap_table(kh, kw, sh, sw, dil_h, dil_w, ph, pw, wo)
    by_phase, count = _taps_by_phase(phase, nph)
    back = np.arange(taps) * length - shift  # tap k's plane, shifted back
    direct = nph == 1 and dx.shape[2] == ho and dx.shape[3] == wo
    cf = cols.reshape(n * c, taps * length)
    dxf = dx.reshape(n * c, dx.shape[2] * dx.shape[3])
    buf = np.empty(0 if direct else nph * length, dtype=cols.dtype)
    for plane in range(lo, hi):
        for uv in range(nph):  # phase uv of dx sums the (masked) taps that land on it
            out = dxf[plane] if direct else buf[uv * length : (uv + 1) * length]
            ks = by_phase[uv, : count[uv]]
            _mac_taps(out, mask, cf[plane], 0, back, ks, length, True)
        if not direct:
            _store_phases(buf, dx, plane // c, plane % c, 1, sh, sw, ho, wo)
        if not _finite(dxf[plane] if direct else buf):  # a NaN or Inf under a zero of the mask
            _col2im_exact(cols, sh, sw, dil_h, dil_w, ph, pw, dx, plane // c, plane % c)
    return dx


@kernel(helper=True)
def _col2im_exact(cols, sh, sw, dil_h, dil_w, ph, pw, dx, ni, ci):
    """The plane dx[ni, ci] by the definition: every column entry is added to the input
    pixel it was read from; entries that came from the padding are skipped."""
    kh, kw, ho, wo = cols.shape[2], cols.shape[3], cols.shape[4], cols.shape[5]
    dx[ni, ci] = 0
    for i in range(kh):
        for j in range(kw):
            for p in range(ho):
                r = p * sh + i * dil_h - ph
                for q in range(wo):
                    s = q * sw + j * dil_w - pw
                    _add_inside(dx, ni, ci, r, s, cols[ni, ci, i, j, p, q])
    return dx
