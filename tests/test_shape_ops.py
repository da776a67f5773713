"""Argument helpers and the shape ops: channel concat, channel slice, residual add."""

from __future__ import annotations

import numpy as np
import pytest

from ghostnp.errors import LayerTypeError, LayerValueError
from ghostnp.functional import (
    channel_slice_backward,
    channel_slice_forward,
    concat_backward,
    concat_forward,
)
from ghostnp.functional.shape import (
    check_float,
    check_rank,
    check_same_shape,
    conv_out_size,
    pair,
)
from ghostnp.gradcheck import check_function

# ----------------------------------------------------------------------------------
# argument helpers
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "v, expected", [(3, (3, 3)), ((1, 2), (1, 2)), ([4, 5], (4, 5)), (np.int64(2), (2, 2))]
)
def test_pair(v, expected):
    out = pair(v)
    assert out == expected and all(type(a) is int for a in out)


@pytest.mark.parametrize("v", [True, (1, 2, 3), 1.5, "3", (1, 2.0), None])
def test_pair_rejects(v):
    with pytest.raises(LayerTypeError) as e:
        pair(v, "kernel_size", "max_pool2d")
    assert str(e.value).startswith("max_pool2d: kernel_size must be an int or a pair of ints")
    assert repr(v) in str(e.value)


def test_conv_out_size_by_hand():
    # floor((size + 2p - d(k-1) - 1) / s) + 1
    assert conv_out_size(5, 3, 1, 0, 1) == 3  # (5 - 2 - 1)/1 + 1
    assert conv_out_size(5, 3, 1, 1, 1) == 5  # "same"
    assert conv_out_size(7, 3, 2, 1, 1) == 4  # (7 + 2 - 3)/2 + 1 = 3 + 1
    assert conv_out_size(6, 3, 2, 1, 1) == 3  # (6 + 2 - 3)/2 = 2.5 -> 2, + 1
    assert conv_out_size(7, 3, 1, 0, 2) == 3  # dilated 3x3 spans 5 pixels
    assert conv_out_size(1, 1, 3, 0, 1) == 1
    assert conv_out_size(2, 3, 1, 0, 1) == 0  # too small: callers reject this


def test_conv_out_size_matches_torch(torch):
    for size in range(1, 9):
        for k in (1, 2, 3, 5):
            for s in (1, 2, 3):
                for p in (0, 1, 2):
                    for d in (1, 2):
                        if d * (k - 1) + 1 > size + 2 * p:
                            continue
                        x = torch.zeros(1, 1, size, 1, dtype=torch.float64)
                        w = torch.zeros(1, 1, k, 1, dtype=torch.float64)
                        y = torch.nn.functional.conv2d(x, w, None, (s, 1), (p, 0), (d, 1))
                        assert conv_out_size(size, k, s, p, d) == y.shape[2]


def test_checks_name_the_op_and_the_values():
    with pytest.raises(LayerTypeError, match=r"^linear: x must be a numpy.ndarray, got tuple$"):
        check_float("linear", "x", (1.0,))
    with pytest.raises(
        LayerTypeError, match="^relu: x must be float32 or float64, got dtype int8$"
    ):
        check_float("relu", "x", np.zeros(2, dtype=np.int8))
    with pytest.raises(LayerValueError, match=r"^bn: expected a 4-D input \(N, C, H, W\), got"):
        check_rank("bn", "input", np.zeros((2, 3)), 4, "(N, C, H, W)")
    with pytest.raises(LayerValueError, match=r"expected dy of shape \(2, 3\), got \(3, 2\)"):
        check_same_shape("relu_backward", "dy", np.zeros((3, 2)), (2, 3))
    assert check_float("op", "x", np.zeros(1, dtype=np.float32)) is not None


# ----------------------------------------------------------------------------------
# channel concat
# ----------------------------------------------------------------------------------


def test_concat_by_hand():
    a = np.full((1, 1, 2, 2), 1.0)
    b = np.stack([np.full((2, 2), 2.0), np.full((2, 2), 3.0)])[None]
    y, cache = concat_forward([a, b])
    assert y.shape == (1, 3, 2, 2)
    np.testing.assert_array_equal(y[0, :, 0, 0], [1, 2, 3])
    da, db = concat_backward(np.arange(12.0).reshape(1, 3, 2, 2), cache)
    np.testing.assert_array_equal(da, np.arange(4.0).reshape(1, 1, 2, 2))
    np.testing.assert_array_equal(db, np.arange(4.0, 12.0).reshape(1, 2, 2, 2))


@pytest.mark.parametrize("n", [1, 2])
def test_concat_adjoint_and_no_aliasing(rng, n):
    xs = [rng.standard_normal((n, c, 3, 4)) for c in (2, 1, 3)]
    before = [x.copy() for x in xs]
    y, cache = concat_forward(xs)
    g = rng.standard_normal(y.shape)
    g0 = g.copy()
    dxs = concat_backward(g, cache)
    lhs = np.vdot(y, g)
    rhs = sum(np.vdot(x, d) for x, d in zip(xs, dxs, strict=True))
    assert abs(lhs - rhs) <= 1e-12 * np.sum(np.abs(y * g))
    assert np.array_equal(g, g0)
    assert all(np.array_equal(x, x0) for x, x0 in zip(xs, before, strict=True))
    # the pieces are the caller's to keep: adding into one must not reach g or y
    for d in dxs:
        assert not np.shares_memory(d, g)
        assert d.flags.c_contiguous
    assert not any(np.shares_memory(y, x) for x in xs)


def test_concat_gradcheck(rng):
    a, b = rng.standard_normal((2, 2, 3, 3)), rng.standard_normal((2, 3, 3, 3))
    report = check_function(
        lambda a, b: concat_forward([a, b]),
        lambda dy, cache: tuple(concat_backward(dy, cache)),
        a,
        b,
    )
    report.assert_ok()


def test_concat_bad_input():
    with pytest.raises(LayerValueError, match="concat: expected at least one array"):
        concat_forward([])
    with pytest.raises(LayerValueError) as e:
        concat_forward([np.zeros((1, 2, 3, 3)), np.zeros((1, 2, 3, 4))])
    assert "concat: input 1 has shape (1, 2, 3, 4)" in str(e.value)
    assert "(1, 2, 3, 3)" in str(e.value)
    with pytest.raises(LayerValueError, match="float32"):
        concat_forward([np.zeros((1, 2, 3, 3)), np.zeros((1, 2, 3, 3), dtype=np.float32)])
    with pytest.raises(LayerTypeError, match="concat: input 0 must be float32 or float64"):
        concat_forward([np.zeros((1, 2, 3, 3), dtype=int)])


# ----------------------------------------------------------------------------------
# channel slice
# ----------------------------------------------------------------------------------


def test_channel_slice_by_hand():
    x = np.arange(8.0).reshape(1, 4, 1, 2)
    y, cache = channel_slice_forward(x, 1, 3)
    np.testing.assert_array_equal(y, [[[[2, 3]], [[4, 5]]]])
    dx = channel_slice_backward(np.ones_like(y), cache)
    np.testing.assert_array_equal(dx[0, :, 0, 0], [0, 1, 1, 0])


@pytest.mark.parametrize("n", [1, 2])
def test_channel_slice_adjoint_and_no_aliasing(rng, n):
    x = rng.standard_normal((n, 5, 3, 2))
    x0 = x.copy()
    y, cache = channel_slice_forward(x, 2, 5)
    g = rng.standard_normal(y.shape)
    g0 = g.copy()
    dx = channel_slice_backward(g, cache)
    assert abs(np.vdot(y, g) - np.vdot(x, dx)) <= 1e-12 * np.sum(np.abs(y * g))
    assert np.array_equal(x, x0) and np.array_equal(g, g0)
    assert not np.shares_memory(y, x)
    assert not np.shares_memory(dx, g)


def test_channel_slice_gradcheck(rng):
    x = rng.standard_normal((2, 4, 2, 3))
    check_function(
        channel_slice_forward, lambda dy, c: (channel_slice_backward(dy, c), None, None), x, 0, 3
    ).assert_ok()


@pytest.mark.parametrize("start, stop", [(2, 2), (3, 1), (-1, 2), (0, 5)])
def test_channel_slice_bad_range(start, stop):
    with pytest.raises(LayerValueError) as e:
        channel_slice_forward(np.zeros((1, 4, 2, 2)), start, stop)
    assert str(e.value) == (
        f"channel_slice: expected 0 <= start < stop <= 4 channels, got {start}:{stop}"
    )


def test_channel_slice_bad_rank():
    with pytest.raises(LayerValueError, match=r"channel_slice: expected a 4-D input"):
        channel_slice_forward(np.zeros((4, 2, 2)), 0, 1)
