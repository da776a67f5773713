"""A NaN or an Inf stays in its own plane: the phase kernels read shifted runs that cross
into neighbouring planes (another channel, or another image) and cancel those reads
with a zero of a mask, so each kernel must make sure that 0 * NaN never reaches an
output that the definition does not connect to the bad value.

Every phase kernel (depthwise forward, both depthwise gradients, im2col, col2im) gets a
NaN or an Inf planted in one pixel of one (image, channel) plane; the result must equal
the NumPy reference (NaN and Inf in the same places), and every plane the bad value does
not feed must equal the result of the clean input.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers import out_size
from hypothesis import given, settings
from hypothesis import strategies as st
from test_kernels import PHASE_CASES, run_unpadded, unpadded_case

import ghostnp
from ghostnp import models
from ghostnp.kernels import numba as nbk
from ghostnp.kernels import reference, use_backend
from ghostnp.kernels.numba import threads

BAD = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}

# the plane that gets the bad value: (image, channel), and its pixel: a corner (read
# from the neighbouring plane by the shifted runs) or the last pixel
SPOTS = {"first plane, corner": (0, 0, 0, 0), "last plane, last pixel": (-1, -1, -1, -1)}


def planted(a, spot, bad):
    """A copy of a with one element of plane (image, channel) set to bad: row r and column
    s of spot (modulo the plane's size) for a 4-D array; for columns (N, C, kh, kw, ho,
    wo), r (modulo each size) picks the tap and the row, s the column."""
    a = a.copy()
    ni, ci, r, s = spot
    a[(ni, ci, *(r % d for d in a.shape[2:-1]), s % a.shape[-1])] = bad
    return a


def assert_same(got, want, what):
    """Equal to within float rounding, with NaN and +-Inf in the same places."""
    assert got.shape == want.shape, what
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=what)
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want), err_msg=what)
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want), err_msg=what)
    ok = np.isfinite(want)
    tol = 1e-12 if got.dtype == np.float64 else 1e-5
    np.testing.assert_allclose(got[ok], want[ok], rtol=tol, atol=tol, err_msg=what)


def check_isolated(case, spot, bad):
    """Plant ``bad`` in x, dy and cols at ``spot`` and compare the fast kernels with the
    reference and with the clean run."""
    x, w, dy, cols, geom = case
    n, c = x.shape[:2]
    ni, ci = spot[0] % n, spot[1] % c
    m = w.shape[0] // c
    clean = run_unpadded(nbk, x, w, dy, cols, geom)
    # the bad value in x (forward, weight gradient), in dy (input gradient) and in the
    # columns (col2im): each kernel sees it where it reads
    bad_x = planted(x, (ni, ci, *spot[2:]), bad)
    bad_dy = planted(dy, (ni, ci * m, *spot[2:]), bad)
    bad_cols = planted(cols, (ni, ci, *spot[2:]), bad)
    fast = run_unpadded(nbk, bad_x, w, bad_dy, bad_cols, geom)
    ref = run_unpadded(reference, bad_x, w, bad_dy, bad_cols, geom)
    for name in ref:
        assert_same(fast[name], ref[name], f"{name} {geom}")
        if name.endswith("dw") or name.endswith("weight"):
            # a weight gradient sums over images: only other channels stay clean
            keep = np.ones(w.shape[0], dtype=bool)
            keep[ci * m : (ci + 1) * m] = False
            rest, rest_clean = fast[name][keep], clean[name][keep]
        else:
            rest, rest_clean = np.delete(fast[name], ni, axis=0), np.delete(clean[name], ni, axis=0)
        assert np.isfinite(rest).all(), f"{name}: the bad value left its image/channel"
        assert_same(rest, rest_clean, f"{name}, other images/channels")


@pytest.mark.parametrize("bad", list(BAD))
@pytest.mark.parametrize("spot", list(SPOTS))
@pytest.mark.parametrize("name", list(PHASE_CASES))
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_non_finite_value_stays_in_its_plane(name, spot, bad, dtype):
    check_isolated(unpadded_case(*PHASE_CASES[name], dtype=dtype), SPOTS[spot], BAD[bad])


@pytest.mark.parametrize("stack", [1, 30, 4096])
@pytest.mark.parametrize("parallel", [False, True])
@pytest.mark.parametrize(
    "name", ["3x3 s1 same, 3 images", "3x3 s2 even", "5x5 s2 odd", "multiplier 3, s2"]
)
def test_non_finite_value_stays_in_its_plane_any_blocking_and_threading(
    monkeypatch, name, stack, parallel
):
    # one plane per work item (stack 1) or blocks of planes read as one run, on one
    # thread or on all
    monkeypatch.setattr(nbk, "STACK", stack)
    if parallel:
        monkeypatch.setattr(threads, "PARALLEL_MIN_WORK", 0)
        monkeypatch.setattr(threads, "WORKQUEUE_MIN_WORK", 0)
        monkeypatch.setattr(threads, "POOL_MIN_WORK", 0)
    case = unpadded_case(*PHASE_CASES[name], dtype=np.float32)
    for spot in SPOTS.values():
        for bad in BAD.values():
            check_isolated(case, spot, bad)


def test_non_finite_in_a_middle_channel_of_a_block():
    # 14x14 planes: blocks of 20 channels read as one run; the bad plane has block
    # neighbours on both sides, in its own image and in the images next to it
    case = unpadded_case(3, 40, 1, (3, 3), (1, 1), (1, 1), (1, 1), (14, 14), np.float32)
    for spot in [(1, 7, 0, 13), (1, 19, 13, 0), (2, 20, 6, 6)]:
        for bad in BAD.values():
            check_isolated(case, spot, bad)


@settings(max_examples=30, deadline=None)
@given(
    dims=st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 2)),
    kernel=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    pad=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    size=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    spot=st.tuples(st.integers(0, 8), st.integers(0, 8), st.integers(0, 8), st.integers(0, 8)),
    bad=st.sampled_from(list(BAD.values())),
)
def test_property_non_finite_value_stays_in_its_plane(dims, kernel, stride, pad, size, spot, bad):
    for i in range(2):  # only geometries with at least one output pixel
        if out_size(size[i], kernel[i], stride[i], pad[i], 1) < 1:
            return
    case = unpadded_case(*dims, kernel, stride, (1, 1), pad, size, dtype=np.float32)
    n, c, h, w = case[0].shape
    check_isolated(case, (spot[0] % n, spot[1] % c, spot[2] % h, spot[3] % w), bad)


def test_one_bad_image_leaves_a_models_other_logits_alone():
    # the reported failure: on Numba every image's logits came out NaN
    ghostnp.manual_seed(0)
    model = models.ghostnet(0.1, 10, in_chans=1).eval()
    x = np.random.default_rng(0).standard_normal((8, 1, 32, 32)).astype(np.float32)
    clean = model(x)
    x[0, 0, 5, 5] = np.nan
    with use_backend("numba"):
        fast = model(x)
    with use_backend("numpy"):
        slow = model(x)
    assert np.isnan(fast[0]).all() and np.isnan(slow[0]).all()
    assert np.isfinite(fast[1:]).all()
    np.testing.assert_allclose(fast[1:], clean[1:], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(fast[1:], slow[1:], rtol=1e-4, atol=1e-5)
