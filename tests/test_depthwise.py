"""depthwise_conv2d_forward / _backward: by hand, adjoint, gradcheck, geometry, PyTorch."""

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

from ghostnp.functional import (
    conv2d_backward,
    conv2d_forward,
    depthwise_conv2d_backward,
    depthwise_conv2d_forward,
)
from ghostnp.gradcheck import rel_error

X9 = np.arange(1.0, 10.0).reshape(3, 3)  # [[1, 2, 3], [4, 5, 6], [7, 8, 9]]

CHECKER = np.array([[1.0, 0, 1], [0, 1, 0], [1, 0, 1]])


def torch_depthwise(torch, x, w, b, dy, **geom):
    """PyTorch's depthwise convolution (groups = input channels) and its gradients."""
    return torch_conv(torch, x, w, b, dy, groups=x.shape[1], **geom)


# ----------------------------------------------------------------------------------
# 1. hand-computed example: 2 channels, multiplier 2
# ----------------------------------------------------------------------------------


def test_hand_multiplier_2(backend):
    # output channel o reads input channel o // 2:
    #   o=0: top-left tap on X9        -> X9[:2, :2]              = [[1, 2], [4, 5]]
    #   o=1: all-ones 2x2 on X9        -> 2x2 block sums of X9    = [[12, 16], [24, 28]]
    #   o=2: bottom-right tap on CHECKER -> CHECKER[1:, 1:]        = [[1, 0], [0, 1]]
    #   o=3: [[1, -1], [0, 0]] on CHECKER -> CHECKER[a,b] - CHECKER[a,b+1] = [[1, -1], [-1, 1]]
    x = np.stack([X9, CHECKER])[None]  # (1, 2, 3, 3)
    w = np.array(
        [
            [[1.0, 0.0], [0.0, 0.0]],
            [[1.0, 1.0], [1.0, 1.0]],
            [[0.0, 0.0], [0.0, 1.0]],
            [[1.0, -1.0], [0.0, 0.0]],
        ]
    )[:, None]  # (4, 1, 2, 2)
    b = np.array([0.0, 0.0, 10.0, 0.0])
    y, cache = depthwise_conv2d_forward(x, w, b)
    expected = np.array(
        [
            [[1, 2], [4, 5]],
            [[12, 16], [24, 28]],
            [[11, 10], [10, 11]],
            [[1, -1], [-1, 1]],
        ]
    )
    np.testing.assert_array_equal(y, expected[None])

    # dy = 1: input channel c collects the summed kernels of its two outputs, placed at
    # every window covering the pixel. Channel 0: w0 + w1 = [[2, 1], [1, 1]];
    # channel 1: w2 + w3 = [[1, -1], [0, 1]].
    dx, dw, db = depthwise_conv2d_backward(np.ones((1, 4, 2, 2)), cache)
    np.testing.assert_array_equal(dx[0, 0], [[2, 3, 1], [3, 5, 2], [1, 2, 1]])
    np.testing.assert_array_equal(dx[0, 1], [[1, 0, -1], [1, 1, 0], [0, 1, 1]])
    # dw[o, i, j] = sum of input channel o//2 over the window offset (i, j)
    np.testing.assert_array_equal(dw[:2, 0], [[[12, 16], [24, 28]]] * 2)
    np.testing.assert_array_equal(dw[2:, 0], np.full((2, 2, 2), 2.0))
    np.testing.assert_array_equal(db, [4, 4, 4, 4])


def test_hand_stride_and_padding(backend):
    # one channel, multiplier 1, 2x2 kernel [[1, 2], [3, 4]], padding 1, stride 2: the same
    # numbers as the dense conv example, since a 1-channel depthwise conv is a dense conv
    x = X9.reshape(1, 1, 3, 3)
    w = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    y, cache = depthwise_conv2d_forward(x, w, stride=2, padding=1)
    np.testing.assert_array_equal(y, [[[[4, 18], [36, 77]]]])
    dx, dw, db = depthwise_conv2d_backward(np.ones((1, 1, 2, 2)), cache)
    assert db is None
    np.testing.assert_array_equal(dx, [[[[4, 3, 4], [2, 1, 2], [4, 3, 4]]]])
    np.testing.assert_array_equal(dw, [[[[5, 10], [10, 20]]]])


# ----------------------------------------------------------------------------------
# shared configurations: (x shape, multiplier, kernel, bias?, geometry)
# ----------------------------------------------------------------------------------

CONFIGS = {
    "m1": ((2, 3, 5, 5), 1, (3, 3), True, dict(padding=1)),
    "m2": ((2, 3, 5, 5), 2, (3, 3), True, dict(padding=1, stride=2)),
    "m3": ((1, 2, 6, 5), 3, (3, 3), False, dict(padding=1)),
    "m2_nonsquare": ((2, 2, 6, 7), 2, (2, 3), True, dict(stride=(2, 1), padding=(0, 1))),
    "m1_dilation": ((1, 3, 7, 7), 1, (3, 3), True, dict(dilation=2, padding=2)),
    "m1_5x5_stride2": ((2, 2, 7, 7), 1, (5, 5), False, dict(stride=2, padding=2)),
    "m2_remainder": ((1, 3, 7, 8), 2, (3, 2), True, dict(stride=(3, 2))),
    "m1_1x1_spatial": ((2, 3, 1, 1), 1, (3, 3), True, dict(padding=1)),
    "m2_1x1_kernel": ((2, 3, 4, 4), 2, (1, 1), True, dict(stride=2)),
}


def make(rng, name):
    xs, m, (kh, kw), bias, geom = CONFIGS[name]
    x = rng.standard_normal(xs)
    w = rng.standard_normal((xs[1] * m, 1, kh, kw))
    b = rng.standard_normal(xs[1] * m) if bias else None
    return x, w, b, geom


# ----------------------------------------------------------------------------------
# 2. adjoint identities, and equality with a grouped dense conv
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CONFIGS))
def test_adjoint(backend, rng, name):
    check_adjoint(depthwise_conv2d_forward, depthwise_conv2d_backward, *make(rng, name), rng)


@pytest.mark.parametrize("name", list(CONFIGS))
def test_equals_grouped_conv(backend, rng, name):
    x, w, b, geom = make(rng, name)
    y, cache = depthwise_conv2d_forward(x, w, b, **geom)
    y2, cache2 = conv2d_forward(x, w, b, groups=x.shape[1], **geom)
    dy = rng.standard_normal(y.shape)
    assert rel_error(y, y2) < 1e-12
    for a, c in zip(depthwise_conv2d_backward(dy, cache), conv2d_backward(dy, cache2), strict=True):
        assert (a is None) == (c is None)
        if a is not None:
            assert rel_error(a, c) < 1e-12


# ----------------------------------------------------------------------------------
# 3. central-difference gradient checks (float64)
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CONFIGS))
def test_gradcheck(rng, name):
    check_gradcheck(depthwise_conv2d_forward, depthwise_conv2d_backward, *make(rng, name))


def test_gradcheck_numba(rng):
    # tiny, as every one of its ~80 forward passes launches the parallel kernels
    x, w, b = (rng.standard_normal(s) for s in ((1, 2, 3, 3), (4, 1, 2, 2), (4,)))
    geom = dict(stride=2, padding=1)
    fwd, bwd = depthwise_conv2d_forward, depthwise_conv2d_backward
    check_gradcheck(fwd, bwd, x, w, b, geom, backend="numba")


# ----------------------------------------------------------------------------------
# 6. PyTorch as oracle
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CONFIGS))
def test_matches_torch(torch, backend, rng, name):
    x, w, b, geom = make(rng, name)
    y, dx, dw = conv_vs_torch(
        depthwise_conv2d_forward,
        depthwise_conv2d_backward,
        torch_depthwise,
        torch,
        x,
        w,
        b,
        geom,
        rng,
    )


def test_float32_follows_dtype_and_matches_torch(torch, backend, rng):
    x, w, b, geom = make(rng, "m2")
    fwd, bwd = depthwise_conv2d_forward, depthwise_conv2d_backward
    check_float32_matches_torch(fwd, bwd, torch_depthwise, torch, x, w, b, geom, rng)


# ----------------------------------------------------------------------------------
# 5. property tests over geometry
# ----------------------------------------------------------------------------------


@st.composite
def geometries(draw):
    c, m = draw(st.integers(1, 5)), draw(st.integers(1, 3))
    window = draw_window(draw, st, kmax=5)
    return dict(
        x_shape=(draw(st.integers(1, 2)), c, *window["hw"]),
        w_shape=(c * m, 1, *window["kernel"]),
        bias=draw(st.booleans()),
        geom=window["geom"],
        seed=draw(st.integers(0, 2**31 - 1)),
        backend=draw(st.sampled_from(["numpy", "numba"])),
    )


@settings(max_examples=30, deadline=None)
@given(case=geometries())
def test_property_shape_and_adjoint(case):
    check_conv_shape_and_adjoint(depthwise_conv2d_forward, depthwise_conv2d_backward, case)


@settings(max_examples=30, deadline=None)
@given(case=geometries())
def test_property_matches_torch(torch, case):
    check_conv_matches_torch(
        depthwise_conv2d_forward, depthwise_conv2d_backward, torch_depthwise, torch, case
    )


# ----------------------------------------------------------------------------------
# 7. bad input, and no input changed in place
# ----------------------------------------------------------------------------------


def _z(*shape, dtype=np.float64):
    return np.zeros(shape, dtype=dtype)


BAD_FORWARD = [
    ("rank", dict(x=_z(2, 5, 5), w=_z(2, 1, 3, 3)), ValueError, ["4-D input", "(2, 5, 5)"]),
    (
        "int",
        dict(x=_z(1, 2, 5, 5, dtype=np.int32), w=_z(2, 1, 3, 3)),
        TypeError,
        ["float32 or float64", "int32"],
    ),
    (
        "object",
        dict(x=_z(1, 2, 5, 5), w=_z(2, 1, 3, 3, dtype=object)),
        TypeError,
        ["weight must be float32 or float64", "object"],
    ),
    (
        "mixed",
        dict(x=_z(1, 2, 5, 5), w=_z(2, 1, 3, 3, dtype=np.float32)),
        TypeError,
        ["one dtype", "float32"],
    ),
    (
        "multiplier",
        dict(x=_z(1, 2, 5, 5), w=_z(3, 1, 3, 3)),
        ValueError,
        ["(C*M, 1, kh, kw)", "C = 2", "got (3, 1, 3, 3)"],
    ),
    (
        "dense_weight",
        dict(x=_z(1, 2, 5, 5), w=_z(2, 2, 3, 3)),
        ValueError,
        ["C = 2", "got (2, 2, 3, 3)"],
    ),
    (
        "too_small",
        dict(x=_z(1, 2, 3, 3), w=_z(2, 1, 5, 5), padding=(1, 0)),
        ValueError,
        ["too small", "3x3", "5x5", "(1, 0)"],
    ),
    (
        "bias",
        dict(x=_z(1, 2, 5, 5), w=_z(4, 1, 3, 3), b=_z(2)),
        ValueError,
        ["bias of shape (4,)", "got (2,)"],
    ),
    (
        "dilation0",
        dict(x=_z(1, 2, 5, 5), w=_z(2, 1, 3, 3), dilation=0),
        ValueError,
        ["dilation (0, 0)"],
    ),
]


@pytest.mark.parametrize("case", BAD_FORWARD, ids=[c[0] for c in BAD_FORWARD])
def test_bad_input(case):
    _, kwargs, exc, parts = case
    with pytest.raises(exc) as e:
        depthwise_conv2d_forward(**kwargs)
    assert str(e.value).startswith("depthwise_conv2d:")
    for part in parts:
        assert part in str(e.value)


def test_bad_dy(rng):
    _, cache = depthwise_conv2d_forward(
        rng.standard_normal((1, 2, 5, 5)), rng.standard_normal((4, 1, 3, 3))
    )
    with pytest.raises(ValueError) as e:
        depthwise_conv2d_backward(np.zeros((1, 2, 3, 3)), cache)
    assert "depthwise_conv2d_backward" in str(e.value)
    assert "expected dy of shape (1, 4, 3, 3), got (1, 2, 3, 3)" in str(e.value)
    with pytest.raises(TypeError, match="depthwise_conv2d_backward: dy must be float32"):
        depthwise_conv2d_backward(np.zeros((1, 4, 3, 3), dtype=object), cache)
    with pytest.raises(TypeError) as e:
        depthwise_conv2d_backward(np.zeros((1, 4, 3, 3), dtype=np.float32), cache)
    assert str(e.value).startswith("depthwise_conv2d_backward:")
    assert "dy float32" in str(e.value) and "weight float64" in str(e.value)


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("name", ["m1", "m2", "m2_1x1_kernel"])
def test_inputs_not_modified(backend, rng, name, batch):
    x, w, _, geom = make(rng, name)
    x = x[:batch].copy()
    b = rng.standard_normal(w.shape[0])
    x0, w0, b0 = x.copy(), w.copy(), b.copy()
    y, cache = depthwise_conv2d_forward(x, w, b, **geom)
    dy = rng.standard_normal(y.shape)
    dy0 = dy.copy()
    dx, dw, db = depthwise_conv2d_backward(dy, cache)
    for a, a0 in [(x, x0), (w, w0), (b, b0), (dy, dy0)]:
        assert np.array_equal(a, a0)
    for out in (y, dx, dw, db):
        for arg in (x, w, b, dy):
            assert not np.shares_memory(out, arg)
