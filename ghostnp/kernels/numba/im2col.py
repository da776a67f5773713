"""im2col and col2im in the phase layout (see ``phases.py``), for dense convolutions.

A work item is one (image, channel) plane ``plane = ni*C + ci``; ``threads.run_items``
hands ranges of planes to threads, and each range owns its planes of the result. Column (i, j) of a plane is a masked, shifted copy of one phase, and col2im sums
the taps that land on each phase of dx, so both are ``_mac_taps`` with unit weights.
"""

from __future__ import annotations

import numpy as np

from .fastmath import FASTMATH
from .jit import kernel
from .phases import _load_phases, _store_phases, _tap_table, _taps_by_phase
from .taps import _mac_taps


@kernel(fastmath=FASTMATH, nogil=True)
def _im2col_items(x, sh, sw, dil_h, dil_w, ph, pw, mask, cols, lo, hi):
    """im2col of the (image, channel) planes [lo, hi)."""
    n, c, kh, kw, ho, wo = cols.shape
    length = ho * wo
    taps = kh * kw
    phase, shift, fr, fc = _tap_table(kh, kw, sh, sw, dil_h, dil_w, ph, pw, wo)
    ones = np.ones(taps, dtype=x.dtype)
    sk = shift + phase * length
    direct = sh * sw == 1 and x.shape[2] == ho and x.shape[3] == wo
    cf = cols.reshape(n * c, taps, length)
    xf = x.reshape(x.size)
    buf = np.zeros(0 if direct else sh * sw * length, dtype=x.dtype)
    one = np.empty(1, dtype=np.int64)
    for plane in range(lo, hi):
        if not direct:
            _load_phases(x, plane // c, plane % c, 1, sh, sw, ho, wo, buf)
        for k in range(taps):  # cols[ni, ci, k] = masked, shifted copy of one phase
            one[0] = k
            if direct:
                _mac_taps(cf[plane, k], mask, ones, xf, plane * length, shift, one, length, True)
            else:
                _mac_taps(cf[plane, k], mask, ones, buf, 0, sk, one, length, True)
    return cols


@kernel(fastmath=FASTMATH, nogil=True)
def _col2im_items(cols, sh, sw, dil_h, dil_w, ph, pw, mask, dx, lo, hi):
    """col2im into the (image, channel) planes [lo, hi) of dx."""
    n, c, kh, kw, ho, wo = cols.shape
    length = ho * wo
    taps = kh * kw
    nph = sh * sw
    phase, shift, fr, fc = _tap_table(kh, kw, sh, sw, dil_h, dil_w, ph, pw, wo)
    ones = np.ones(taps, dtype=cols.dtype)
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
            _mac_taps(out, mask, ones, cf[plane], 0, back, ks, length, True)
        if not direct:
            _store_phases(buf, dx, plane // c, plane % c, 1, sh, sw, ho, wo)
    return dx
