"""The fast backend: a twin of every kernel in ``reference.py``, with the same name,
signature and numbers, and every shortcut the reference leaves out.

Each function below is the whole speed policy of one kernel: it makes its inputs
C-contiguous (compiled loops index raw memory), picks the route for the geometry and
the thread count, allocates the result with NumPy and runs the route. The measurements
behind these defaults are in docs/performance-notes.md.

Routes:

* ``unfold`` / ``fold`` (im2col / col2im): a 1x1 window without padding needs no copy
  per tap (its columns are the pixels the stride reaches); an input that fits the phase
  layout takes the phase kernels (padding never materialised); any other geometry is
  padded and runs the plain loops.
* ``depthwise_*``: the phase kernels, or the plain loops on a padded copy.
* ``conv_matmul`` / ``conv_backward_weight``: BLAS, with the call shapes of ``gemm.py``.
* ``batch_norm_*``: one compiled pass per step, threads splitting the channels.

The files, one idea each:

    loops.py       the plain loops, any geometry, on a padded input: read these first
    phases.py      the phase layout: tap tables, masks, moving planes in and out
    taps.py        the vectorised inner loops over shifted runs
    depthwise.py   depthwise convolution in the phase layout
    im2col.py      im2col / col2im in the phase layout
    batch_norm.py  the batch-norm kernels
    gemm.py        the BLAS routes of the convolution products
    threads.py     the threading policy: how many threads, which threading layer
    warmup.py      a first run compiles the backward kernels in a helper process
    fastmath.py    what the compiler may do to the arithmetic
"""

from __future__ import annotations

# ruff: noqa: E402 - the cache locator is installed before the kernel modules are imported
from ..cache import install_cache_locator

# before the first @njit(cache=True) of the modules below runs: it decides where Numba
# keeps their compiled code (never inside the installed package; see cache.py)
install_cache_locator()

import numpy as np

from ...typing import FloatArray
from ..geometry import ConvGeometry
from ..reference import crop, pad
from .batch_norm import _bn_backward, _bn_normalize, _bn_stats
from .depthwise import _dw_backward_items, _dw_forward_items
from .gemm import conv_backward_weight, conv_matmul
from .im2col import _col2im_items, _im2col_items
from .loops import (
    _col2im,
    _depthwise_backward_input,
    _depthwise_backward_weight,
    _depthwise_forward,
    _im2col,
)
from .phases import masks, phases_fit
from .threads import pool_threads, run_items, set_threads
from .warmup import join as _join_compile_helper
from .warmup import start as _start_compile_helper

__all__ = [
    "unfold",
    "fold",
    "conv_matmul",
    "conv_backward_weight",
    "depthwise_forward",
    "depthwise_backward_input",
    "depthwise_backward_weight",
    "depthwise_backward",
    "batch_norm_stats",
    "batch_norm_normalize",
    "batch_norm_backward",
]

# Elements per work item of the depthwise phase kernels: whole planes of consecutive
# channels adding up to about this many, so that the item's per-element weights stay in
# cache while every image of the batch streams through.
STACK = 4096

# On an empty cache, a helper process compiles the backward kernels meanwhile (warmup.py);
# each backward kernel below waits for it before its first call.
_start_compile_helper()


def _padded(x: FloatArray, geom: ConvGeometry) -> FloatArray:
    """x zero-padded for the plain loops (x itself when there is no padding)."""
    return x if geom.ph == 0 and geom.pw == 0 else pad(x, geom.ph, geom.pw)


def _cropped(xp: FloatArray, geom: ConvGeometry) -> FloatArray:
    """The padding cut off a gradient of the plain loops (xp itself when there is none)."""
    return xp if geom.ph == 0 and geom.pw == 0 else crop(xp, geom.ph, geom.pw)


def _pointwise(geom: ConvGeometry) -> bool:
    """A 1x1 window without padding: column (0, 0) is the input at the strided pixels."""
    return geom.kh == 1 and geom.kw == 1 and geom.ph == 0 and geom.pw == 0


# ----------------------------------------------------------------------------------------
# dense and grouped convolution
# ----------------------------------------------------------------------------------------


def unfold(x: FloatArray, geom: ConvGeometry) -> FloatArray:
    """``reference.unfold``: x (N, C, H, W) -> cols (N, C, kh, kw, ho, wo)."""
    x = np.ascontiguousarray(x)
    n, c = x.shape[:2]
    if _pointwise(geom):  # no copy at stride 1
        xs = x if (geom.sh, geom.sw) == (1, 1) else x[:, :, :: geom.sh, :: geom.sw]
        return np.ascontiguousarray(xs).reshape(n, c, 1, 1, geom.ho, geom.wo)
    work = n * c * geom.kh * geom.kw * geom.ho * geom.wo
    if phases_fit(geom):
        mask = masks(geom, x.dtype)[0]
        cols = np.empty((n, c, geom.kh, geom.kw, geom.ho, geom.wo), dtype=x.dtype)
        args = (x, geom.sh, geom.sw, geom.dil_h, geom.dil_w, geom.ph, geom.pw, mask, cols)
        run_items(_im2col_items, args, n * c, pool_threads(work))
        return cols
    set_threads(work)
    plain: FloatArray = _im2col(
        _padded(x, geom),
        geom.kh,
        geom.kw,
        geom.sh,
        geom.sw,
        geom.dil_h,
        geom.dil_w,
        geom.ho,
        geom.wo,
    )
    return plain


def fold(cols: FloatArray, geom: ConvGeometry) -> FloatArray:
    """``reference.fold``: cols (N, C, kh, kw, ho, wo) -> dx (N, C, H, W), overlaps summed."""
    _join_compile_helper(cols.dtype)
    cols = np.ascontiguousarray(cols)
    n, c, kh, kw, ho, wo = cols.shape
    if _pointwise(geom):  # each pixel the stride reaches gets its one entry back
        dxs = cols.reshape(n, c, ho, wo)
        if (geom.sh, geom.sw) == (1, 1):
            return dxs
        dx = np.zeros((n, c, geom.h, geom.wd), dtype=cols.dtype)  # pixels skipped by the stride: 0
        dx[:, :, :: geom.sh, :: geom.sw] = dxs
        return dx
    if phases_fit(geom):
        mask = masks(geom, cols.dtype)[1]
        dx = np.empty((n, c, geom.h, geom.wd), dtype=cols.dtype)
        args = (cols, geom.sh, geom.sw, geom.dil_h, geom.dil_w, geom.ph, geom.pw, mask, dx)
        run_items(_col2im_items, args, n * c, pool_threads(cols.size))
        return dx
    set_threads(cols.size)
    hp, wp = geom.padded_hw
    dxp: FloatArray = _col2im(cols, hp, wp, geom.sh, geom.sw, geom.dil_h, geom.dil_w)
    return _cropped(dxp, geom)


# ----------------------------------------------------------------------------------------
# depthwise convolution
# ----------------------------------------------------------------------------------------


def _items(c: int, geom: ConvGeometry) -> int:
    """Work items of the depthwise phase kernels: blocks of STACK // (ho*wo) channels."""
    return -(-c // max(1, min(c, STACK // (geom.ho * geom.wo))))


def depthwise_forward(x: FloatArray, w: FloatArray, geom: ConvGeometry) -> FloatArray:
    """``reference.depthwise_forward``: x (N, C, H, W), w (C*M, kh, kw) -> y (N, C*M, ho, wo)."""
    x, w = np.ascontiguousarray(x), np.ascontiguousarray(w)
    n, c = x.shape[:2]
    o = w.shape[0]
    work = n * w.size * geom.ho * geom.wo * geom.sh * geom.sw  # strided: a larger input
    if phases_fit(geom):
        mask = masks(geom, x.dtype)[0]
        y = np.empty((n, o, geom.ho, geom.wo), dtype=x.dtype)
        args = (x, w, geom.sh, geom.sw, geom.dil_h, geom.dil_w, geom.ph, geom.pw, mask, y, STACK)
        run_items(_dw_forward_items, args, _items(c, geom), pool_threads(work))
        return y
    set_threads(work)
    plain: FloatArray = _depthwise_forward(
        _padded(x, geom), w, geom.sh, geom.sw, geom.dil_h, geom.dil_w, geom.ho, geom.wo
    )
    return plain


def _depthwise_backward(
    dy: FloatArray,
    x: FloatArray,
    w: FloatArray,
    c: int,
    geom: ConvGeometry,
    want_dx: bool,
    want_dw: bool,
) -> tuple[FloatArray, FloatArray]:
    """Either or both depthwise gradients (dx, dw); one not wanted comes back empty."""
    _join_compile_helper(dy.dtype)
    dy, x, w = np.ascontiguousarray(dy), np.ascontiguousarray(x), np.ascontiguousarray(w)
    n, o = dy.shape[:2]
    work = (want_dx + want_dw) * dy.size * geom.kh * geom.kw * geom.sh * geom.sw
    dx = np.empty((n, c, geom.h, geom.wd) if want_dx else (0, 0, 0, 0), dtype=dy.dtype)
    dw = np.empty((o, geom.kh, geom.kw) if want_dw else (0, 0, 0), dtype=dy.dtype)
    if phases_fit(geom):
        mask_x, mask_dx = masks(geom, dy.dtype)
        args = (
            dy,
            x,
            w,
            geom.sh,
            geom.sw,
            geom.dil_h,
            geom.dil_w,
            geom.ph,
            geom.pw,
            mask_x,
            mask_dx,
            dx,
            dw,
            STACK,
        )
        run_items(_dw_backward_items, args, _items(c, geom), pool_threads(work))
        return dx, dw
    set_threads(work)
    if want_dx:
        hp, wp = geom.padded_hw
        dxp: FloatArray = _depthwise_backward_input(
            dy, w, c, hp, wp, geom.sh, geom.sw, geom.dil_h, geom.dil_w
        )
        dx = _cropped(dxp, geom)
    if want_dw:
        xp = _padded(x, geom)
        dw = _depthwise_backward_weight(
            dy, xp, geom.kh, geom.kw, geom.sh, geom.sw, geom.dil_h, geom.dil_w
        )
    return dx, dw


def depthwise_backward_input(
    dy: FloatArray, w: FloatArray, c: int, geom: ConvGeometry
) -> FloatArray:
    """``reference.depthwise_backward_input``: dy (N, C*M, ho, wo) -> dx (N, C, H, W)."""
    unread = np.empty((0, 0, 0, 0), dtype=dy.dtype)  # x is not read for dx
    return _depthwise_backward(dy, unread, w, c, geom, True, False)[0]


def depthwise_backward_weight(dy: FloatArray, x: FloatArray, geom: ConvGeometry) -> FloatArray:
    """``reference.depthwise_backward_weight``: dy and x -> dw (C*M, kh, kw)."""
    shape_only = np.empty((dy.shape[1], geom.kh, geom.kw), dtype=dy.dtype)  # w is not read
    return _depthwise_backward(dy, x, shape_only, x.shape[1], geom, False, True)[1]


def depthwise_backward(
    dy: FloatArray, x: FloatArray, w: FloatArray, geom: ConvGeometry
) -> tuple[FloatArray, FloatArray]:
    """``reference.depthwise_backward``: (dx like x, dw like w) from one pass over dy."""
    return _depthwise_backward(dy, x, w, x.shape[1], geom, True, True)


# ----------------------------------------------------------------------------------------
# batch norm
# ----------------------------------------------------------------------------------------


def _flat3(a: FloatArray) -> FloatArray:
    """(N, C, H, W) -> (N, C, H*W), without a copy."""
    return a.reshape(a.shape[0], a.shape[1], -1)


def batch_norm_stats(x: FloatArray) -> tuple[FloatArray, FloatArray]:
    """``reference.batch_norm_stats``: per-channel (mean, biased variance), each (C,)."""
    x = np.ascontiguousarray(x)
    c = x.shape[1]
    mean, var = np.empty(c, dtype=x.dtype), np.empty(c, dtype=x.dtype)
    run_items(_bn_stats, (_flat3(x), mean, var), c, pool_threads(x.size))
    return mean, var


def batch_norm_normalize(
    x: FloatArray,
    mean: FloatArray,
    inv_std: FloatArray,
    gamma: FloatArray,
    beta: FloatArray,
    affine: bool,
) -> tuple[FloatArray, FloatArray]:
    """``reference.batch_norm_normalize``: (xhat, y), both (N, C, H, W); y is xhat when
    not ``affine``."""
    x = np.ascontiguousarray(x)
    c = x.shape[1]
    xhat = np.empty_like(x)
    y = np.empty_like(x) if affine else xhat
    if not affine:
        gamma = beta = np.empty(c, dtype=x.dtype)  # not read
    args = (_flat3(x), mean, inv_std, gamma, beta, _flat3(xhat), _flat3(y), affine)
    run_items(_bn_normalize, args, c, pool_threads(x.size))
    return xhat, y


def batch_norm_backward(
    dy: FloatArray, xhat: FloatArray, scale: FloatArray, training: bool
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """``reference.batch_norm_backward``: (dx (N, C, H, W), dgamma (C,), dbeta (C,))."""
    _join_compile_helper(dy.dtype)
    dy, xhat = np.ascontiguousarray(dy), np.ascontiguousarray(xhat)
    c = dy.shape[1]
    dx = np.empty_like(dy)
    dgamma, dbeta = np.empty(c, dtype=dy.dtype), np.empty(c, dtype=dy.dtype)
    inv_count = np.full(1, c / dy.size, dtype=dy.dtype)  # 1 / (N*H*W)
    args = (_flat3(dy), _flat3(xhat), scale, inv_count, bool(training), _flat3(dx), dgamma, dbeta)
    run_items(_bn_backward, args, c, pool_threads(dy.size))
    return dx, dgamma, dbeta
