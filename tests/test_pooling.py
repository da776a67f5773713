"""Max, average and adaptive average pooling and nearest upsampling, checked from
hand-computed numbers through adjoints and gradient checks up to PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_adjoint, assert_close, inner, out_size
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from ghostnp.functional import (
    adaptive_avg_pool2d_backward,
    adaptive_avg_pool2d_forward,
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
    upsample_nearest2d_backward,
    upsample_nearest2d_forward,
)
from ghostnp.gradcheck import check_function
from ghostnp.kernels import use_backend


def distinct(rng, shape):
    """Values that are all different, any two at least 0.09 apart: no ties, no kinks."""
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.1 + rng.uniform(0, 0.01, n)).reshape(shape) - 0.05 * n


# ----------------------------------------------------------------------------------
# 1. hand-computed examples
# ----------------------------------------------------------------------------------

X4 = np.array(
    [
        [1.0, 6.0, 2.0, 3.0],
        [5.0, 4.0, 8.0, 7.0],
        [0.0, 9.0, 14.0, 12.0],
        [13.0, 10.0, 11.0, 15.0],
    ]
)
X3 = np.arange(1.0, 10.0).reshape(3, 3)  # [[1, 2, 3], [4, 5, 6], [7, 8, 9]]


def test_hand_max_pool_2x2_of_4x4(backend):
    # windows {1,6,5,4} -> 6 at (0,1); {2,3,8,7} -> 8 at (1,2);
    #         {0,9,13,10} -> 13 at (3,0); {14,12,11,15} -> 15 at (3,3)
    y, cache = max_pool2d_forward(X4.reshape(1, 1, 4, 4), 2)
    np.testing.assert_array_equal(y, [[[[6.0, 8.0], [13.0, 15.0]]]])
    dx = max_pool2d_backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), cache)
    expected = np.zeros((4, 4))
    expected[0, 1], expected[1, 2], expected[3, 0], expected[3, 3] = 1.0, 2.0, 3.0, 4.0
    np.testing.assert_array_equal(dx[0, 0], expected)


def test_hand_max_pool_ties_go_to_the_first_maximum(backend):
    # a constant window: the gradient goes to its first element (row-major), as PyTorch
    x = np.full((1, 1, 2, 2), 7.0)
    y, cache = max_pool2d_forward(x, 2)
    assert y.shape == (1, 1, 1, 1) and y[0, 0, 0, 0] == 7.0
    dx = max_pool2d_backward(np.full((1, 1, 1, 1), 5.0), cache)
    np.testing.assert_array_equal(dx[0, 0], [[5.0, 0.0], [0.0, 0.0]])


def test_hand_max_pool_padding_never_wins(backend):
    # all-negative input with padding 1: padded cells must not become the maximum
    x = -X3.reshape(1, 1, 3, 3)  # [[-1,-2,-3],[-4,-5,-6],[-7,-8,-9]]
    y, _ = max_pool2d_forward(x, 2, stride=2, padding=1)
    # windows: {-1}, {-2,-3}, {-4,-7}, {-5,-6,-8,-9}
    np.testing.assert_array_equal(y[0, 0], [[-1.0, -2.0], [-4.0, -5.0]])


@pytest.mark.parametrize(
    "count_include_pad, expected_y, expected_dx",
    [
        # kernel 2, stride 2, padding 1 on the 3x3 X3: the four windows hold
        #   {1}, {2, 3}, {4, 7}, {5, 6, 8, 9}  (sums 1, 5, 11, 28)
        # counting the padding every window divides by 4; not counting it, by 1, 2, 2, 4.
        # With dy = 1 each pixel lies in exactly one window and gets 1 / its divisor.
        (
            True,
            [[0.25, 1.25], [2.75, 7.0]],
            [[0.25, 0.25, 0.25], [0.25, 0.25, 0.25], [0.25, 0.25, 0.25]],
        ),
        (
            False,
            [[1.0, 2.5], [5.5, 7.0]],
            [[1.0, 0.5, 0.5], [0.5, 0.25, 0.25], [0.5, 0.25, 0.25]],
        ),
    ],
)
def test_hand_avg_pool_padding_stride2(backend, count_include_pad, expected_y, expected_dx):
    x = X3.reshape(1, 1, 3, 3)
    y, cache = avg_pool2d_forward(x, 2, stride=2, padding=1, count_include_pad=count_include_pad)
    np.testing.assert_allclose(y[0, 0], expected_y, rtol=0, atol=1e-15)
    dx = avg_pool2d_backward(np.ones((1, 1, 2, 2)), cache)
    np.testing.assert_allclose(dx[0, 0], expected_dx, rtol=0, atol=1e-15)


def test_hand_avg_pool_3x3_same_padding(backend):
    # kernel 3, stride 1, padding 1 on X3 (sum of all = 45):
    #   corner window = 1+2+4+5 = 12, top-middle = 1+..+6 = 21, centre = 45
    # counting padding: divide by 9; not counting: by 4 (corner), 6 (edge), 9 (centre)
    x = X3.reshape(1, 1, 3, 3)
    y_in, _ = avg_pool2d_forward(x, 3, stride=1, padding=1, count_include_pad=True)
    y_ex, cache = avg_pool2d_forward(x, 3, stride=1, padding=1, count_include_pad=False)
    np.testing.assert_allclose(y_in[0, 0, 0, :2], [12 / 9, 21 / 9], rtol=1e-15)
    np.testing.assert_allclose(y_in[0, 0, 1, 1], 5.0, rtol=1e-15)
    np.testing.assert_allclose(y_ex[0, 0, 0, :2], [3.0, 3.5], rtol=1e-15)
    np.testing.assert_allclose(y_ex[0, 0, 1, 1], 5.0, rtol=1e-15)
    # dy = 1: the centre pixel lies in all nine windows: 4 corners (1/4), 4 edges (1/6), centre (1/9)
    dx = avg_pool2d_backward(np.ones((1, 1, 3, 3)), cache)
    np.testing.assert_allclose(dx[0, 0, 1, 1], 4 / 4 + 4 / 6 + 1 / 9, rtol=1e-15)


def test_hand_upsample_2x2_by_2():
    x = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    expected = [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]
    for kwargs in ({"scale_factor": 2}, {"size": 4}, {"size": (4, 4)}):
        y, cache = upsample_nearest2d_forward(x, **kwargs)
        np.testing.assert_array_equal(y[0, 0], expected)
    # each input pixel sums the gradients of its 2x2 block of copies in dy = 0..15
    dy = np.arange(16.0).reshape(1, 1, 4, 4)
    dx = upsample_nearest2d_backward(dy, cache)
    np.testing.assert_array_equal(dx[0, 0], [[0 + 1 + 4 + 5, 2 + 3 + 6 + 7], [42.0, 50.0]])


def test_hand_adaptive_avg_pool_3_to_2():
    # 3 -> 2 cells: windows [0, 2) and [1, 3) in each axis (floor start, ceil end); they overlap
    x = X3.reshape(1, 1, 3, 3)
    y, cache = adaptive_avg_pool2d_forward(x, 2)
    np.testing.assert_allclose(y[0, 0], [[3.0, 4.0], [6.0, 7.0]], rtol=1e-15)
    dx = adaptive_avg_pool2d_backward(np.ones((1, 1, 2, 2)), cache)
    # the centre is in all four windows of 4 pixels; corners in one; edges in two
    np.testing.assert_allclose(dx[0, 0], [[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])
    y1, _ = adaptive_avg_pool2d_forward(x, 1)
    np.testing.assert_allclose(y1[0, 0], [[5.0]], rtol=1e-15)


# ----------------------------------------------------------------------------------
# 2. adjoint tests: <op(x), g> == <x, op^T(g)>
# ----------------------------------------------------------------------------------


def adjoint_check(rng, fwd, bwd, x):
    y, cache = fwd(x)
    g = rng.standard_normal(y.shape)
    dx = bwd(g, cache)
    assert dx.shape == x.shape
    scale = float(np.sum(np.abs(y * g)) + np.sum(np.abs(x * dx)))
    assert_adjoint(inner(y, g), inner(x, dx), scale)


@pytest.mark.parametrize(
    "shape, kwargs",
    [
        ((2, 3, 6, 6), {"kernel_size": 2}),
        ((2, 3, 7, 5), {"kernel_size": 3, "stride": 2, "padding": 1}),
        ((1, 2, 7, 6), {"kernel_size": (3, 2), "stride": (2, 3), "padding": (1, 0)}),
        ((1, 2, 5, 5), {"kernel_size": 3, "stride": 1, "padding": 1, "count_include_pad": False}),
        ((2, 1, 8, 7), {"kernel_size": 4, "stride": 3, "padding": 2, "count_include_pad": False}),
    ],
)
def test_adjoint_avg_pool(backend, rng, shape, kwargs):
    x = rng.standard_normal(shape)
    adjoint_check(rng, lambda a: avg_pool2d_forward(a, **kwargs), avg_pool2d_backward, x)


@pytest.mark.parametrize(
    "shape, out",
    [((2, 3, 6, 6), 1), ((2, 3, 6, 6), 3), ((1, 2, 7, 5), (3, 2)), ((1, 2, 5, 7), (4, 3)),
     ((1, 1, 3, 4), (5, 7)), ((1, 1, 7, 7), 7)],
)  # fmt: skip
def test_adjoint_adaptive_avg_pool(rng, shape, out):
    x = rng.standard_normal(shape)
    adjoint_check(
        rng, lambda a: adaptive_avg_pool2d_forward(a, out), adaptive_avg_pool2d_backward, x
    )


@pytest.mark.parametrize(
    "shape, kwargs",
    [
        ((2, 3, 2, 2), {"scale_factor": 2}),
        ((1, 2, 3, 3), {"scale_factor": 3}),
        ((1, 2, 3, 3), {"size": (7, 7)}),
        ((1, 2, 5, 7), {"size": (3, 4)}),
        ((1, 1, 4, 4), {"size": 9}),
        ((1, 1, 3, 5), {"scale_factor": (1.5, 2.5)}),
    ],
)
def test_adjoint_upsample(rng, shape, kwargs):
    x = rng.standard_normal(shape)
    adjoint_check(
        rng, lambda a: upsample_nearest2d_forward(a, **kwargs), upsample_nearest2d_backward, x
    )


# ----------------------------------------------------------------------------------
# 3. float64 gradient checks, every element
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, kwargs",
    [
        ((2, 2, 4, 4), {"kernel_size": 2}),
        ((1, 2, 5, 6), {"kernel_size": 3, "stride": 2, "padding": 1}),
        ((1, 2, 7, 7), {"kernel_size": 3, "stride": 1, "padding": 1, "dilation": 2}),
        ((2, 1, 5, 4), {"kernel_size": (2, 3), "stride": (1, 2), "padding": (1, 0)}),
    ],
)
def test_gradcheck_max_pool(backend, rng, shape, kwargs):
    x = distinct(rng, shape)
    report = check_function(max_pool2d_forward, max_pool2d_backward, x, **kwargs)
    report.assert_ok()


@pytest.mark.parametrize(
    "shape, kwargs",
    [
        ((2, 2, 4, 4), {"kernel_size": 2}),
        ((1, 2, 5, 6), {"kernel_size": 3, "stride": 2, "padding": 1}),
        ((1, 2, 5, 6), {"kernel_size": 3, "stride": 2, "padding": 1, "count_include_pad": False}),
        ((2, 1, 5, 4), {"kernel_size": (2, 3), "stride": (1, 2), "padding": (1, 0)}),
    ],
)
def test_gradcheck_avg_pool(backend, rng, shape, kwargs):
    x = rng.standard_normal(shape)
    check_function(avg_pool2d_forward, avg_pool2d_backward, x, **kwargs).assert_ok()


@pytest.mark.parametrize("shape, out", [((2, 2, 4, 4), 1), ((1, 2, 5, 7), (3, 2))])
def test_gradcheck_adaptive_avg_pool(rng, shape, out):
    x = rng.standard_normal(shape)
    check_function(
        adaptive_avg_pool2d_forward, adaptive_avg_pool2d_backward, x, output_size=out
    ).assert_ok()


@pytest.mark.parametrize(
    "shape, kwargs", [((1, 2, 2, 3), {"scale_factor": 2}), ((1, 2, 3, 3), {"size": (7, 5)})]
)
def test_gradcheck_upsample(rng, shape, kwargs):
    x = rng.standard_normal(shape)
    check_function(upsample_nearest2d_forward, upsample_nearest2d_backward, x, **kwargs).assert_ok()


# ----------------------------------------------------------------------------------
# 4. PyTorch as oracle (float64, assert_close with rtol 1e-10)
# ----------------------------------------------------------------------------------


def torch_run(torch, fn, x, dy, **kwargs):
    """PyTorch's output and input gradient for ``fn(x, **kwargs)``, as float64 ndarrays."""
    tx = torch.tensor(x, requires_grad=True)
    ty = fn(tx, **kwargs)
    ty.backward(torch.tensor(dy))
    return ty.detach().numpy(), tx.grad.numpy()


def compare_with_torch(torch, rng, ours_fwd, ours_bwd, torch_fn, x, ours_kw, torch_kw):
    y, cache = ours_fwd(x, **ours_kw)
    dy = rng.standard_normal(y.shape)
    ty, tdx = torch_run(torch, torch_fn, x, dy, **torch_kw)
    assert_close(y, ty)
    assert_close(ours_bwd(dy, cache), tdx)


MAX_CASES = [
    ((2, 3, 6, 6), {"kernel_size": 2}),
    ((2, 3, 7, 7), {"kernel_size": 3, "stride": 2, "padding": 1}),
    ((1, 2, 9, 8), {"kernel_size": 3, "stride": 2, "padding": 1, "dilation": 2}),
    (
        (1, 2, 8, 9),
        {"kernel_size": (3, 2), "stride": (1, 3), "padding": (1, 1), "dilation": (1, 2)},
    ),
    ((1, 1, 5, 5), {"kernel_size": 3, "stride": 1}),
    ((3, 2, 11, 10), {"kernel_size": 3, "stride": 3}),
]


@pytest.mark.parametrize("shape, kwargs", MAX_CASES)
def test_torch_max_pool(torch, backend, rng, shape, kwargs):
    x = rng.standard_normal(shape)
    compare_with_torch(
        torch, rng, max_pool2d_forward, max_pool2d_backward,
        torch.nn.functional.max_pool2d, x, kwargs, kwargs,
    )  # fmt: skip


def test_torch_max_pool_with_ties(torch, backend, rng):
    # integer values with many ties and overlapping windows: the first maximum takes dy
    x = rng.integers(0, 3, size=(2, 2, 7, 7)).astype(np.float64)
    kwargs = {"kernel_size": 3, "stride": 2, "padding": 1}
    compare_with_torch(
        torch, rng, max_pool2d_forward, max_pool2d_backward,
        torch.nn.functional.max_pool2d, x, kwargs, kwargs,
    )  # fmt: skip


AVG_CASES = [
    ((2, 3, 6, 6), {"kernel_size": 2}),
    ((2, 3, 7, 7), {"kernel_size": 3, "stride": 2, "padding": 1}),
    ((1, 2, 7, 8), {"kernel_size": (3, 2), "stride": (2, 1), "padding": (1, 1)}),
    ((1, 2, 9, 9), {"kernel_size": 4, "stride": 3, "padding": 2}),
    ((1, 1, 5, 5), {"kernel_size": 5}),
]


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("shape, kwargs", AVG_CASES)
def test_torch_avg_pool(torch, backend, rng, shape, kwargs, count_include_pad):
    x = rng.standard_normal(shape)
    kw = dict(kwargs, count_include_pad=count_include_pad)
    compare_with_torch(
        torch, rng, avg_pool2d_forward, avg_pool2d_backward,
        torch.nn.functional.avg_pool2d, x, kw, kw,
    )  # fmt: skip


@pytest.mark.parametrize(
    "shape, out",
    [((2, 3, 7, 7), 1), ((2, 3, 6, 6), 3), ((1, 2, 8, 6), (4, 2)),  # divisors
     ((1, 2, 7, 5), (3, 2)), ((1, 2, 5, 7), (4, 3)), ((1, 1, 10, 10), 7),  # non-divisors
     ((1, 1, 3, 4), (5, 7)), ((1, 1, 1, 1), 1)],  # output larger than input; 1x1
)  # fmt: skip
def test_torch_adaptive_avg_pool(torch, rng, shape, out):
    x = rng.standard_normal(shape)
    compare_with_torch(
        torch, rng, adaptive_avg_pool2d_forward, adaptive_avg_pool2d_backward,
        torch.nn.functional.adaptive_avg_pool2d, x, {"output_size": out}, {"output_size": out},
    )  # fmt: skip


@pytest.mark.parametrize(
    "shape, kwargs",
    [
        ((1, 2, 3, 3), {"size": (7, 7)}),
        ((2, 2, 4, 5), {"scale_factor": 2}),
        ((1, 2, 3, 4), {"scale_factor": 3}),
        ((1, 2, 5, 7), {"size": (3, 4)}),
        ((1, 1, 4, 4), {"size": (9, 9)}),
        ((1, 1, 2, 3), {"size": (4, 6)}),
        ((1, 1, 3, 5), {"scale_factor": (1.5, 2.5)}),
        ((1, 1, 6, 6), {"scale_factor": 0.5}),
        ((1, 1, 7, 7), {"size": (7, 7)}),
        # sizes where PyTorch's float32 scale, floor(i * float32(in / out)), picks a
        # different source row than exact arithmetic (26 -> 22 at i = 11: 11 * 26 / 22 = 13
        # exactly, but the float32 product falls just below 13 and PyTorch reads row 12)
        ((1, 1, 26, 30), {"size": (22, 26)}),
        ((1, 1, 14, 6), {"size": (46, 74)}),
    ],
)
def test_torch_upsample_nearest(torch, rng, shape, kwargs):
    x = rng.standard_normal(shape)
    torch_kw = {k: tuple(v) if isinstance(v, list) else v for k, v in kwargs.items()}
    compare_with_torch(
        torch, rng, upsample_nearest2d_forward, upsample_nearest2d_backward,
        torch.nn.functional.interpolate, x, kwargs, dict(torch_kw, mode="nearest"),
    )  # fmt: skip


# ----------------------------------------------------------------------------------
# 5. property tests over pooling geometry
# ----------------------------------------------------------------------------------


@st.composite
def pool_geometries(draw, dilation=True):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    dh, dw = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) if dilation else (1, 1)
    # the smallest input with at least one output row / column, then a few more
    min_h = max(1, dh * (kh - 1) + 1 - 2 * ph)
    min_w = max(1, dw * (kw - 1) + 1 - 2 * pw)
    h, w = draw(st.integers(min_h, min_h + 5)), draw(st.integers(min_w, min_w + 5))
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    return {
        "shape": (n, c, h, w),
        "kernel_size": (kh, kw),
        "stride": (sh, sw),
        "padding": (ph, pw),
        "dilation": (dh, dw),
        "backend": draw(st.sampled_from(["numpy", "numba"])),
        "seed": draw(st.integers(0, 2**31 - 1)),
    }


def expected_out_hw(case):
    (_, _, h, w), (kh, kw), (sh, sw) = case["shape"], case["kernel_size"], case["stride"]
    (ph, pw), (dh, dw) = case["padding"], case["dilation"]
    return out_size(h, kh, sh, ph, dh), out_size(w, kw, sw, pw, dw)


@settings(max_examples=25, deadline=None)
@given(case=pool_geometries(dilation=True))
def test_property_max_pool_matches_torch(torch, case):
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal(case["shape"])
    kw = {k: case[k] for k in ("kernel_size", "stride", "padding", "dilation")}
    tx = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.max_pool2d(tx, **kw)
    # a window made only of padding (possible with dilation) has no maximum to compare
    assume(bool(torch.isfinite(ty).all()))
    with use_backend(case["backend"]):
        y, cache = max_pool2d_forward(x, **kw)
        assert y.shape == (*case["shape"][:2], *expected_out_hw(case)) == tuple(ty.shape)
        dy = rng.standard_normal(y.shape)
        dx = max_pool2d_backward(dy, cache)
    ty.backward(torch.tensor(dy))
    assert_close(y, ty.detach().numpy())
    assert_close(dx, tx.grad.numpy())


@settings(max_examples=25, deadline=None)
@given(case=pool_geometries(dilation=False), include_pad=st.booleans())
def test_property_avg_pool_adjoint_and_torch(torch, case, include_pad):
    rng = np.random.default_rng(case["seed"])
    x = rng.standard_normal(case["shape"])
    kw = {k: case[k] for k in ("kernel_size", "stride", "padding")}
    kw["count_include_pad"] = include_pad
    with use_backend(case["backend"]):
        y, cache = avg_pool2d_forward(x, **kw)
        assert y.shape == (*case["shape"][:2], *expected_out_hw(case))
        g = rng.standard_normal(y.shape)
        dx = avg_pool2d_backward(g, cache)
    scale = float(np.sum(np.abs(y * g)) + np.sum(np.abs(x * dx)))
    assert_adjoint(inner(y, g), inner(x, dx), scale)
    ty, tdx = torch_run(torch, torch.nn.functional.avg_pool2d, x, g, **kw)
    assert_close(y, ty)
    assert_close(dx, tdx)


@settings(max_examples=25, deadline=None)
@given(
    h=st.integers(1, 9),
    w=st.integers(1, 9),
    oh=st.integers(1, 9),
    ow=st.integers(1, 9),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_adaptive_and_upsample_match_torch(torch, h, w, oh, ow, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((1, 2, h, w))
    F = torch.nn.functional
    for ours_f, ours_b, tfn, ours_kw, t_kw in (
        (adaptive_avg_pool2d_forward, adaptive_avg_pool2d_backward, F.adaptive_avg_pool2d,
         {"output_size": (oh, ow)}, {"output_size": (oh, ow)}),
        (upsample_nearest2d_forward, upsample_nearest2d_backward, F.interpolate,
         {"size": (oh, ow)}, {"size": (oh, ow), "mode": "nearest"}),
    ):  # fmt: skip
        y, cache = ours_f(x, **ours_kw)
        assert y.shape == (1, 2, oh, ow)
        g = rng.standard_normal(y.shape)
        dx = ours_b(g, cache)
        scale = float(np.sum(np.abs(y * g)) + np.sum(np.abs(x * dx)))
        assert_adjoint(inner(y, g), inner(x, dx), scale)
        ty, tdx = torch_run(torch, tfn, x, g, **t_kw)
        assert_close(y, ty)
        assert_close(dx, tdx)


# ----------------------------------------------------------------------------------
# 6. bad input, and no op changes its inputs
# ----------------------------------------------------------------------------------

POOL_FORWARDS = {
    "max_pool2d": lambda x: max_pool2d_forward(x, 2),
    "avg_pool2d": lambda x: avg_pool2d_forward(x, 2),
    "adaptive_avg_pool2d": lambda x: adaptive_avg_pool2d_forward(x, 2),
    "upsample_nearest2d": lambda x: upsample_nearest2d_forward(x, scale_factor=2),
}
POOL_BACKWARDS = {
    "max_pool2d": max_pool2d_backward,
    "avg_pool2d": avg_pool2d_backward,
    "adaptive_avg_pool2d": adaptive_avg_pool2d_backward,
    "upsample_nearest2d": upsample_nearest2d_backward,
}


@pytest.mark.parametrize("op", list(POOL_FORWARDS))
@pytest.mark.parametrize("shape", [(2, 4, 4), (1, 1, 2, 4, 4), (16,)])
def test_bad_rank(op, shape):
    x = np.zeros(shape)
    with pytest.raises(ValueError) as e:
        POOL_FORWARDS[op](x)
    msg = str(e.value)
    assert msg.startswith(op + ":"), msg
    assert "4-D input (N, C, H, W)" in msg and f"got shape {shape}" in msg, msg


@pytest.mark.parametrize("op", list(POOL_FORWARDS))
@pytest.mark.parametrize("dtype", [np.int64, np.int32, object, np.float16])
def test_bad_dtype(op, dtype):
    x = np.zeros((1, 1, 4, 4), dtype=dtype)
    with pytest.raises(TypeError) as e:
        POOL_FORWARDS[op](x)
    msg = str(e.value)
    assert msg.startswith(op + ":") and "float32 or float64" in msg, msg
    assert f"got dtype {np.dtype(dtype)}" in msg, msg


def test_bad_not_an_array():
    with pytest.raises(TypeError, match=r"max_pool2d: x must be a numpy\.ndarray, got list"):
        max_pool2d_forward([[[[1.0]]]], 1)


@pytest.mark.parametrize("op", list(POOL_FORWARDS))
def test_bad_dy_shape(backend, op):
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 4))
    y, cache = POOL_FORWARDS[op](x)
    bad = np.zeros((2, 3, y.shape[2] + 1, y.shape[3]))
    with pytest.raises(ValueError) as e:
        POOL_BACKWARDS[op](bad, cache)
    msg = str(e.value)
    assert msg.startswith(f"{op}_backward:"), msg
    assert f"expected dy of shape {y.shape}" in msg and f"got {bad.shape}" in msg, msg
    with pytest.raises(TypeError, match=f"{op}_backward: dy must be float32 or float64"):
        POOL_BACKWARDS[op](np.zeros(y.shape, dtype=np.int64), cache)


def test_bad_pool_geometry():
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"max_pool2d: .*too small for a 5x5 kernel"):
        max_pool2d_forward(x, 5)
    with pytest.raises(ValueError, match=r"avg_pool2d: padding should be at most half"):
        avg_pool2d_forward(x, 2, padding=2)
    with pytest.raises(ValueError, match=r"max_pool2d: expected kernel, stride .*>= 1"):
        max_pool2d_forward(x, 2, stride=0)
    with pytest.raises(TypeError, match=r"avg_pool2d: kernel_size must be an int or a pair"):
        avg_pool2d_forward(x, 2.5)
    with pytest.raises(ValueError, match=r"adaptive_avg_pool2d: output_size must be positive"):
        adaptive_avg_pool2d_forward(x, (0, 2))


def test_bad_upsample_arguments():
    x = np.zeros((1, 1, 3, 3))
    for kwargs in ({}, {"size": 6, "scale_factor": 2}):
        with pytest.raises(ValueError, match="upsample_nearest2d: give exactly one of size and"):
            upsample_nearest2d_forward(x, **kwargs)
    with pytest.raises(ValueError, match=r"upsample_nearest2d: scale_factor must be positive"):
        upsample_nearest2d_forward(x, scale_factor=-2)
    with pytest.raises(ValueError, match=r"upsample_nearest2d: output size must be positive"):
        upsample_nearest2d_forward(x, scale_factor=0.2)
    with pytest.raises(TypeError, match=r"upsample_nearest2d: size must be an int or a pair"):
        upsample_nearest2d_forward(x, size=(2, 3, 4))


@pytest.mark.parametrize("op", list(POOL_FORWARDS))
def test_inputs_not_modified(backend, op):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 4, 4))
    x0 = x.copy()
    y, cache = POOL_FORWARDS[op](x)
    dy = rng.standard_normal(y.shape)
    dy0 = dy.copy()
    dx = POOL_BACKWARDS[op](dy, cache)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(dy, dy0)
    # the results own their memory: writing to them leaves x and dy alone
    y[...] = 99.0
    dx[...] = 99.0
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(dy, dy0)


def test_float32_stays_float32(backend):
    x = np.random.default_rng(2).standard_normal((1, 2, 4, 4)).astype(np.float32)
    for op, fwd in POOL_FORWARDS.items():
        y, cache = fwd(x)
        assert y.dtype == np.float32, op
        assert POOL_BACKWARDS[op](np.ones_like(y), cache).dtype == np.float32, op
