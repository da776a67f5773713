"""The inner loops of the phase kernels: multiply-adds over shifted runs of a flat array.

``_mac_taps`` sums the taps of a kernel into an output run (forward, input gradient,
col2im); ``_acc_products`` and ``_acc_products2`` accumulate the per-pixel products of a
weight gradient and ``_masked_sum`` reduces them; ``_masked_copy`` makes one column of
im2col; ``_finite`` finds a block whose output a NaN or Inf read from outside its planes
may have reached. Each loop runs over t, the flat pixel index of a block of planes, and
is written so that the compiler vectorises it: slices start at index 0 and the few reads
that would leave the source array are done one by one at the ends.
"""

from __future__ import annotations

from .fastmath import FASTMATH, REDUCE
from .jit import kernel


@kernel(fastmath=FASTMATH, helper=True)
def _mac_taps(out, wm, src, s0, shift, ks, n, assign):
    """out[t] (= if assign, else +=) sum over k in ks of wm[k, t] * src[s0 + t + shift[k]].

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
    seg = out[lo:hi]
    span = seg.size
    d = s0 + lo
    done = 0
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
        x0, x1, x2 = (
            src[d + shift[k0] :][:span],
            src[d + shift[k1] :][:span],
            src[d + shift[k2] :][:span],
        )
        x3, x4, x5 = (
            src[d + shift[k3] :][:span],
            src[d + shift[k4] :][:span],
            src[d + shift[k5] :][:span],
        )
        x6, x7, x8 = (
            src[d + shift[k6] :][:span],
            src[d + shift[k7] :][:span],
            src[d + shift[k8] :][:span],
        )
        for t in range(span):
            acc = (
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
            seg[t] = acc if assign else seg[t] + acc
        done = 9
    while done < ks.size:
        first = assign and done == 0
        if ks.size - done >= 3:
            k0, k1, k2 = ks[done], ks[done + 1], ks[done + 2]
            a0, a1, a2 = wm[k0, lo:hi], wm[k1, lo:hi], wm[k2, lo:hi]
            x0, x1, x2 = (
                src[d + shift[k0] :][:span],
                src[d + shift[k1] :][:span],
                src[d + shift[k2] :][:span],
            )
            for t in range(span):
                acc = a0[t] * x0[t] + a1[t] * x1[t] + a2[t] * x2[t]
                seg[t] = acc if first else seg[t] + acc
            done += 3
        else:
            k0 = ks[done]
            a0 = wm[k0, lo:hi]
            x0 = src[d + shift[k0] :][:span]
            for t in range(span):
                acc = a0[t] * x0[t]
                seg[t] = acc if first else seg[t] + acc
            done += 1
    if ks.size == 0 and assign:
        seg[:] = 0
    for e in range(n - (hi - lo)):  # the few elements next to the ends of src, tap by tap
        t = e if e < lo else e + hi - lo
        acc = 0.0 if assign else out[t]
        for k in ks:
            idx = s0 + t + shift[k]
            if 0 <= idx < size:
                acc += wm[k, t] * src[idx]
        out[t] = acc


@kernel(fastmath=FASTMATH, helper=True)
def _acc_products(part, gy, src, s0, shift, n):
    """part[k, t] += gy[t] * src[s0 + t + shift[k]] for every tap k and t in [0, n).

    Reads outside ``src`` are skipped (they meet a zero of the mask later). Taps go three
    at a time, sharing the loads of gy.
    """
    size = src.size
    lo, hi = 0, n
    for k in range(shift.size):
        lo = max(lo, -(s0 + shift[k]))
        hi = min(hi, size - s0 - shift[k])
    lo = min(lo, n)
    hi = max(hi, lo)
    gy_seg = gy[lo:hi]
    span = gy_seg.size
    d = s0 + lo
    k = 0
    while k < shift.size:
        if shift.size - k >= 3:
            p0, p1, p2 = part[k, lo:hi], part[k + 1, lo:hi], part[k + 2, lo:hi]
            x0 = src[d + shift[k] :][:span]
            x1 = src[d + shift[k + 1] :][:span]
            x2 = src[d + shift[k + 2] :][:span]
            for t in range(span):
                gy_t = gy_seg[t]
                p0[t] += gy_t * x0[t]
                p1[t] += gy_t * x1[t]
                p2[t] += gy_t * x2[t]
            k += 3
        else:
            p0 = part[k, lo:hi]
            x0 = src[d + shift[k] :][:span]
            for t in range(span):
                p0[t] += gy_seg[t] * x0[t]
            k += 1
    for e in range(n - (hi - lo)):  # the few elements next to the ends of src
        t = e if e < lo else e + hi - lo
        for k in range(shift.size):
            idx = s0 + t + shift[k]
            if 0 <= idx < size:
                part[k, t] += gy[t] * src[idx]


@kernel(fastmath=FASTMATH, helper=True)
def _acc_products2(part, gy0, gy1, src, s0, s1, shift, n):
    """Two images at once: part[k, t] += gy0[t] * src[s0 + t + shift[k]]
    + gy1[t] * src[s1 + t + shift[k]] (each load and store of ``part`` serves both)."""
    size = src.size
    lo, hi = 0, n
    for k in range(shift.size):
        lo = max(lo, -(s0 + shift[k]), -(s1 + shift[k]))
        hi = min(hi, size - s0 - shift[k], size - s1 - shift[k])
    lo = min(lo, n)
    hi = max(hi, lo)
    gy0_seg, gy1_seg = gy0[lo:hi], gy1[lo:hi]
    span = gy0_seg.size
    d0, d1 = s0 + lo, s1 + lo
    k = 0
    while k < shift.size:
        if shift.size - k >= 3:
            p0, p1, p2 = part[k, lo:hi], part[k + 1, lo:hi], part[k + 2, lo:hi]
            x0, y0 = src[d0 + shift[k] :][:span], src[d1 + shift[k] :][:span]
            x1, y1 = src[d0 + shift[k + 1] :][:span], src[d1 + shift[k + 1] :][:span]
            x2, y2 = src[d0 + shift[k + 2] :][:span], src[d1 + shift[k + 2] :][:span]
            for t in range(span):
                u, v = gy0_seg[t], gy1_seg[t]
                p0[t] += u * x0[t] + v * y0[t]
                p1[t] += u * x1[t] + v * y1[t]
                p2[t] += u * x2[t] + v * y2[t]
            k += 3
        else:
            p0 = part[k, lo:hi]
            x0, y0 = src[d0 + shift[k] :][:span], src[d1 + shift[k] :][:span]
            for t in range(span):
                p0[t] += gy0_seg[t] * x0[t] + gy1_seg[t] * y0[t]
            k += 1
    for e in range(n - (hi - lo)):  # the few elements next to the ends of src
        t = e if e < lo else e + hi - lo
        for k in range(shift.size):
            i0, i1 = s0 + t + shift[k], s1 + t + shift[k]
            if 0 <= i0 < size:
                part[k, t] += gy0[t] * src[i0]
            if 0 <= i1 < size:
                part[k, t] += gy1[t] * src[i1]


@kernel(fastmath=REDUCE, helper=True)
def _masked_sum(a, mask):
    """sum of a[t] over the t where mask[t] != 0, vectorised (the compiler picks the order
    of the additions). Entries under a zero of the mask are skipped, not multiplied by 0,
    so a NaN or Inf there (a read from a neighbouring plane) does not reach the sum."""
    acc = mask[0] - mask[0]  # 0 in a's type (a[0] itself may be NaN)
    for t in range(a.size):
        acc += a[t] if mask[t] != 0 else mask[t]  # mask[t] is a zero of a's type
    return acc


@kernel(helper=True)
def _masked_copy(dst, mask, src, s0, n):
    """dst[t] = src[s0 + t] where mask[t] != 0, else 0, for t in [0, n).

    A select, not a product with the mask: a NaN or Inf read from a neighbouring plane
    lands under a zero of the mask and is dropped. Reads outside ``src`` (always under a
    zero of the mask) are not made.
    """
    lo = min(max(0, -s0), n)
    hi = max(min(n, src.size - s0), lo)
    seg, mk = dst[lo:hi], mask[lo:hi]
    xs = src[s0 + lo :][: hi - lo]
    for t in range(seg.size):
        seg[t] = xs[t] if mk[t] != 0 else mk[t]  # mk[t] is a zero of dst's type
    for t in range(lo):
        dst[t] = 0
    for t in range(hi, n):
        dst[t] = 0


@kernel(helper=True)
def _finite(a):
    """True when every element of the 1-D array ``a`` is finite (no NaN, no Inf).

    The phase kernels multiply reads that leave a plane by a zero of the mask; that is
    exact unless the read is a NaN or an Inf, and then the output is not finite. Checking
    the output therefore tells when a block must be recomputed by the exact loops.
    """
    bad = 0
    for t in range(a.size):
        v = a[t]
        bad += not (v - v == 0)  # NaN for NaN and for +-Inf
    return bad == 0
