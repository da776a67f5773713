"""conv2d_forward / conv2d_backward, checked from hand-computed numbers up to PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import (
    check_adjoint,
    check_conv_matches_torch,
    check_conv_shape_and_adjoint,
    check_float32_matches_torch,
    check_gradcheck,
    conv_vs_torch,
    draw_window,
    torch_conv,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from ghostnp.functional import conv2d_backward, conv2d_forward

X9 = np.arange(1.0, 10.0).reshape(3, 3)  # [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
W4 = np.array([[1.0, 2.0], [3.0, 4.0]])


# ----------------------------------------------------------------------------------
# 1. hand-computed examples
# ----------------------------------------------------------------------------------


def test_hand_3x3_input_2x2_kernel(backend):
    # y[a, b] = sum_ij W4[i, j] * X9[a+i, b+j]  (cross-correlation, no kernel flip)
    #   y[0,0] = 1*1 + 2*2 + 3*4 + 4*5 = 37     y[0,1] = 1*2 + 2*3 + 3*5 + 4*6 = 47
    #   y[1,0] = 1*4 + 2*5 + 3*7 + 4*8 = 67     y[1,1] = 1*5 + 2*6 + 3*8 + 4*9 = 77
    x = X9.reshape(1, 1, 3, 3)
    w = W4.reshape(1, 1, 2, 2)
    b = np.array([0.5])
    y, cache = conv2d_forward(x, w, b)
    np.testing.assert_array_equal(y, [[[[37.5, 47.5], [67.5, 77.5]]]])

    # with dy = 1 everywhere, each input pixel collects the weights of every window
    # covering it:  dx = [[1, 1+2, 2], [1+3, 1+2+3+4, 2+4], [3, 3+4, 4]]
    # dw[i, j] = sum of the 2x2 block of X9 starting at (i, j): 1+2+4+5, 2+3+5+6, ...
    # db = number of output pixels = 4
    dx, dw, db = conv2d_backward(np.ones((1, 1, 2, 2)), cache)
    np.testing.assert_array_equal(dx, [[[[1, 3, 2], [4, 10, 6], [3, 7, 4]]]])
    np.testing.assert_array_equal(dw, [[[[12, 16], [24, 28]]]])
    np.testing.assert_array_equal(db, [4])


def test_hand_two_input_channels_add_up(backend):
    # channel 1 is all ones and its kernel all ones: every window adds 4 to channel 0's result
    x = np.stack([X9, np.ones((3, 3))])[None]
    w = np.stack([W4, np.ones((2, 2))])[None]  # (1, 2, 2, 2)
    y, _ = conv2d_forward(x, w)
    np.testing.assert_array_equal(y, [[[[41, 51], [71, 81]]]])


def test_hand_stride_and_padding(backend):
    # padding 1 gives the 5x5 grid below; stride 2 puts windows at rows/cols 0 and 2,
    # and the last padded row and column are never reached (floor((3+2-1-1)/2)+1 = 2):
    #     0 0 0 0 0
    #     0 1 2 3 0        y[0,0] = 4*1            = 4
    #     0 4 5 6 0        y[0,1] = 3*2 + 4*3      = 18
    #     0 7 8 9 0        y[1,0] = 2*4 + 4*7      = 36
    #     0 0 0 0 0        y[1,1] = 1*5+2*6+3*8+4*9 = 77
    x = X9.reshape(1, 1, 3, 3)
    w = W4.reshape(1, 1, 2, 2)
    y, cache = conv2d_forward(x, w, stride=2, padding=1)
    np.testing.assert_array_equal(y, [[[[4, 18], [36, 77]]]])
    # windows do not overlap, so with dy = 1 each pixel gets the one weight that met it
    dx, dw, db = conv2d_backward(np.ones((1, 1, 2, 2)), cache)
    assert db is None
    np.testing.assert_array_equal(dx, [[[[4, 3, 4], [2, 1, 2], [4, 3, 4]]]])
    # dw[i, j] sums the padded pixels at (2a+i, 2b+j): e.g. dw[1,1] = 1+3+7+9
    np.testing.assert_array_equal(dw, [[[[5, 10], [10, 20]]]])


def test_hand_pointwise_with_stride(backend):
    # 1x1 kernel [2, -1] over channels (X9, ones), stride 2 keeps pixels (0,0),(0,2),(2,0),(2,2)
    x = np.stack([X9, np.ones((3, 3))])[None]
    w = np.array([2.0, -1.0]).reshape(1, 2, 1, 1)
    y, cache = conv2d_forward(x, w, stride=2)
    np.testing.assert_array_equal(y, [[[[2 * 1 - 1, 2 * 3 - 1], [2 * 7 - 1, 2 * 9 - 1]]]])
    dx, dw, _ = conv2d_backward(np.ones((1, 1, 2, 2)), cache)
    corners = np.array([[1.0, 0, 1], [0, 0, 0], [1, 0, 1]])
    np.testing.assert_array_equal(dx, np.stack([2 * corners, -corners])[None])
    np.testing.assert_array_equal(dw, [[[[1 + 3 + 7 + 9]], [[4]]]])


def test_hand_groups(backend):
    # groups=2: output 0 sees only input channel 0, output 1 only input channel 1
    x = np.stack([X9, 10 * X9])[None]
    w = np.stack([np.ones((1, 2, 2)), np.ones((1, 2, 2))])  # (2, 1, 2, 2)
    y, _ = conv2d_forward(x, w, groups=2)
    sums = np.array([[12.0, 16.0], [24.0, 28.0]])  # 2x2 block sums of X9
    np.testing.assert_array_equal(y, np.stack([sums, 10 * sums])[None])


# ----------------------------------------------------------------------------------
# configurations shared by the adjoint, gradient and oracle tests
# (x shape, w shape, bias?, geometry)
# ----------------------------------------------------------------------------------

CONFIGS = {
    "basic": ((2, 3, 5, 5), (4, 3, 3, 3), True, {}),
    "no_bias": ((2, 3, 5, 5), (4, 3, 3, 3), False, {}),
    "stride2_pad1": ((2, 3, 6, 7), (4, 3, 3, 3), True, dict(stride=2, padding=1)),
    "stride_remainder": ((1, 2, 6, 7), (2, 2, 3, 3), True, dict(stride=(2, 3))),
    "groups2": ((2, 4, 5, 5), (6, 2, 3, 3), True, dict(groups=2, padding=1)),
    "dilation": ((1, 2, 7, 6), (3, 2, 3, 2), True, dict(dilation=(2, 1), padding=(2, 0))),
    "nonsquare": ((2, 3, 5, 6), (2, 3, 2, 3), False, dict(stride=(1, 2), padding=(1, 0))),
    "pointwise_stride2": ((2, 4, 5, 5), (3, 4, 1, 1), True, dict(stride=2)),
    "pointwise_groups": ((2, 4, 3, 3), (6, 2, 1, 1), False, dict(groups=2)),
    "1x1_padded": ((1, 2, 3, 3), (2, 2, 1, 1), True, dict(padding=1)),
    "depthwise_mult2": ((2, 3, 5, 5), (6, 1, 3, 3), True, dict(groups=3, padding=1, stride=2)),
    "1x1_spatial": ((2, 3, 1, 1), (2, 3, 3, 3), True, dict(padding=1)),
}


def make(rng, name):
    xs, ws, bias, geom = CONFIGS[name]
    x = rng.standard_normal(xs)
    w = rng.standard_normal(ws)
    b = rng.standard_normal(ws[0]) if bias else None
    return x, w, b, geom


# ----------------------------------------------------------------------------------
# 2. adjoint identities
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CONFIGS))
def test_adjoint(backend, rng, name):
    check_adjoint(conv2d_forward, conv2d_backward, *make(rng, name), rng)


# ----------------------------------------------------------------------------------
# 3. central-difference gradient checks (float64)
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CONFIGS))
def test_gradcheck(rng, name):
    check_gradcheck(conv2d_forward, conv2d_backward, *make(rng, name))


def test_gradcheck_numba(rng):
    # tiny, as every one of its ~80 forward passes launches the parallel kernels
    x, w, b = (rng.standard_normal(s) for s in ((1, 2, 3, 3), (4, 1, 2, 2), (4,)))
    geom = dict(stride=2, padding=1, groups=2)
    check_gradcheck(conv2d_forward, conv2d_backward, x, w, b, geom, backend="numba")


# ----------------------------------------------------------------------------------
# 6. PyTorch as oracle: output and every gradient, float64, 1e-10 relative
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CONFIGS))
def test_matches_torch(torch, backend, rng, name):
    x, w, b, geom = make(rng, name)
    y, dx, dw = conv_vs_torch(
        conv2d_forward, conv2d_backward, torch_conv, torch, x, w, b, geom, rng
    )
    assert y.dtype == dx.dtype == dw.dtype == np.float64


def test_float32_follows_dtype_and_matches_torch(torch, backend, rng):
    x, w, b, geom = make(rng, "groups2")
    check_float32_matches_torch(
        conv2d_forward, conv2d_backward, torch_conv, torch, x, w, b, geom, rng
    )


# ----------------------------------------------------------------------------------
# 5. property tests over geometry
# ----------------------------------------------------------------------------------


@st.composite
def geometries(draw):
    groups = draw(st.integers(1, 3))
    cin = groups * draw(st.integers(1, 3))
    cout = groups * draw(st.integers(1, 3))
    window = draw_window(draw, st, kmax=4)
    return dict(
        x_shape=(draw(st.integers(1, 2)), cin, *window["hw"]),
        w_shape=(cout, cin // groups, *window["kernel"]),
        bias=draw(st.booleans()),
        geom=dict(**window["geom"], groups=groups),
        seed=draw(st.integers(0, 2**31 - 1)),
        backend=draw(st.sampled_from(["numpy", "numba"])),
    )


@settings(max_examples=30, deadline=None)
@given(case=geometries())
def test_property_shape_and_adjoint(case):
    check_conv_shape_and_adjoint(conv2d_forward, conv2d_backward, case)


@settings(max_examples=30, deadline=None)
@given(case=geometries())
def test_property_matches_torch(torch, case):
    check_conv_matches_torch(conv2d_forward, conv2d_backward, torch_conv, torch, case)


# ----------------------------------------------------------------------------------
# 7. bad input, and no input changed in place
# ----------------------------------------------------------------------------------

F64 = np.float64


def _x(*shape, dtype=F64):
    return np.zeros(shape, dtype=dtype)


BAD_FORWARD = [
    ("rank", dict(x=_x(3, 5, 5), w=_x(2, 3, 3, 3)), ValueError, ["conv2d", "4-D", "(3, 5, 5)"]),
    ("wrank", dict(x=_x(1, 3, 5, 5), w=_x(2, 3, 3)), ValueError, ["conv2d", "4-D weight"]),
    (
        "int",
        dict(x=np.zeros((1, 3, 5, 5), dtype=np.int64), w=_x(2, 3, 3, 3)),
        TypeError,
        ["conv2d", "float32 or float64", "int64"],
    ),
    (
        "object",
        dict(x=np.zeros((1, 3, 5, 5), dtype=object), w=_x(2, 3, 3, 3)),
        TypeError,
        ["conv2d", "object"],
    ),
    ("list", dict(x=[[1.0]], w=_x(2, 3, 3, 3)), TypeError, ["conv2d", "ndarray", "list"]),
    (
        "mixed",
        dict(x=_x(1, 3, 5, 5, dtype=np.float32), w=_x(2, 3, 3, 3)),
        TypeError,
        ["conv2d", "float32", "float64"],
    ),
    (
        "channels",
        dict(x=_x(1, 3, 5, 5), w=_x(2, 4, 3, 3)),
        ValueError,
        ["conv2d", "expected 4 input channels", "got 3"],
    ),
    (
        "too_small",
        dict(x=_x(1, 3, 2, 2), w=_x(2, 3, 3, 3), padding=0),
        ValueError,
        ["conv2d", "too small", "2x2", "3x3"],
    ),
    (
        "too_small_dilated",
        dict(x=_x(1, 3, 4, 4), w=_x(2, 3, 3, 3), dilation=2),
        ValueError,
        ["conv2d", "too small"],
    ),
    (
        "groups",
        dict(x=_x(1, 4, 5, 5), w=_x(3, 4, 3, 3), groups=3),
        ValueError,
        ["conv2d", "groups=3", "in_channels 4"],
    ),
    (
        "bias",
        dict(x=_x(1, 3, 5, 5), w=_x(2, 3, 3, 3), b=_x(3)),
        ValueError,
        ["conv2d", "bias of shape (2,)", "got (3,)"],
    ),
    ("stride0", dict(x=_x(1, 3, 5, 5), w=_x(2, 3, 3, 3), stride=0), ValueError, ["stride (0, 0)"]),
    ("padneg", dict(x=_x(1, 3, 5, 5), w=_x(2, 3, 3, 3), padding=-1), ValueError, ["padding"]),
    (
        "stride_type",
        dict(x=_x(1, 3, 5, 5), w=_x(2, 3, 3, 3), stride=(1, 2, 3)),
        TypeError,
        ["stride must be an int or a pair"],
    ),
]


@pytest.mark.parametrize("case", BAD_FORWARD, ids=[c[0] for c in BAD_FORWARD])
def test_bad_input(case):
    _, kwargs, exc, parts = case
    with pytest.raises(exc) as e:
        conv2d_forward(**kwargs)
    assert str(e.value).startswith("conv2d:")
    for part in parts:
        assert part in str(e.value)


def test_bad_dy(rng):
    _, cache = conv2d_forward(rng.standard_normal((1, 3, 5, 5)), rng.standard_normal((2, 3, 3, 3)))
    with pytest.raises(ValueError) as e:
        conv2d_backward(np.zeros((1, 2, 3, 4)), cache)
    assert "conv2d_backward" in str(e.value)
    assert "expected dy of shape (1, 2, 3, 3), got (1, 2, 3, 4)" in str(e.value)
    with pytest.raises(TypeError, match="conv2d_backward: dy must be float32 or float64"):
        conv2d_backward(np.zeros((1, 2, 3, 3), dtype=np.int32), cache)
    # a float32 dy for a float64 forward would give gradients of mixed precision
    with pytest.raises(TypeError) as e:
        conv2d_backward(np.zeros((1, 2, 3, 3), dtype=np.float32), cache)
    assert str(e.value).startswith("conv2d_backward:")
    assert "dy float32" in str(e.value) and "weight float64" in str(e.value)


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("name", ["basic", "pointwise_stride2", "pointwise_groups", "groups2"])
def test_inputs_not_modified(backend, rng, name, batch):
    x, w, b, geom = make(rng, name)
    x = x[:batch].copy()
    b = rng.standard_normal(w.shape[0])
    x0, w0, b0 = x.copy(), w.copy(), b.copy()
    y, cache = conv2d_forward(x, w, b, **geom)
    dy = rng.standard_normal(y.shape)
    dy0 = dy.copy()
    dx, dw, db = conv2d_backward(dy, cache)
    for a, a0 in [(x, x0), (w, w0), (b, b0), (dy, dy0)]:
        assert np.array_equal(a, a0)
    for out in (y, dx, dw, db):  # results never alias the arguments
        for arg in (x, w, b, dy):
            assert not np.shares_memory(out, arg)
    # changing a result afterwards does not reach the inputs either
    y += 1.0
    dx += 1.0
    assert np.array_equal(x, x0) and np.array_equal(dy, dy0)


def test_non_contiguous_inputs(backend, rng):
    x = rng.standard_normal((2, 3, 6, 5)).transpose(0, 1, 3, 2)  # (2, 3, 5, 6), F-ordered tail
    w = rng.standard_normal((4, 3, 3, 2))[:, :, ::-1]  # negative strides
    y, cache = conv2d_forward(x, w, padding=1)
    y_ref, _ = conv2d_forward(np.ascontiguousarray(x), np.ascontiguousarray(w), padding=1)
    np.testing.assert_array_equal(y, y_ref)
    dy = rng.standard_normal(y.shape[::-1]).T  # non-contiguous dy
    dx, dw, _ = conv2d_backward(dy, cache)
    _, cache_ref = conv2d_forward(np.ascontiguousarray(x), np.ascontiguousarray(w), padding=1)
    dx_ref, dw_ref, _ = conv2d_backward(np.ascontiguousarray(dy), cache_ref)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(dw, dw_ref, rtol=1e-13, atol=1e-13)
