"""linear, softmax cross-entropy, and the channel concat / slice ops."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_adjoint, assert_close, inner

from ghostnp.functional import (
    channel_slice_backward,
    channel_slice_forward,
    concat_backward,
    concat_forward,
    linear_backward,
    linear_forward,
    log_softmax,
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
)
from ghostnp.gradcheck import check_function


def ce_backward_aligned(dloss, cache):
    """Gradients aligned with (logits, target): the integer target has none."""
    return softmax_cross_entropy_backward(dloss, cache), None


# ----------------------------------------------------------------------------------
# 1. hand-computed examples
# ----------------------------------------------------------------------------------


def test_hand_linear():
    # y = x @ W^T + b:  [1, 2] . [1, 0] = 1, [1, 2] . [2, -1] = 0, [1, 2] . [0.5, 0.5] = 1.5
    x = np.array([[1.0, 2.0]])
    w = np.array([[1.0, 0.0], [2.0, -1.0], [0.5, 0.5]])
    b = np.array([0.0, 1.0, -1.0])
    y, cache = linear_forward(x, w, b)
    np.testing.assert_array_equal(y, [[1.0, 1.0, 0.5]])
    dx, dw, db = linear_backward(np.array([[1.0, 0.0, 2.0]]), cache)
    np.testing.assert_array_equal(dx, [[1.0 + 1.0, 0.0 + 1.0]])  # row0 + 2 * row2 of W
    np.testing.assert_array_equal(dw, [[1.0, 2.0], [0.0, 0.0], [2.0, 4.0]])  # dy^T x
    np.testing.assert_array_equal(db, [1.0, 0.0, 2.0])


def test_hand_cross_entropy_two_classes():
    # row 0: logits [0, ln 3] -> softmax [1/4, 3/4]; target 1: loss -ln(3/4) = ln(4/3)
    # row 1: logits [0, 0]    -> softmax [1/2, 1/2]; target 0: loss ln 2
    # mean = (ln(4/3) + ln 2) / 2 = ln(8/3) / 2
    logits = np.array([[0.0, np.log(3.0)], [0.0, 0.0]])
    target = np.array([1, 0])
    loss, cache = softmax_cross_entropy_forward(logits, target)
    assert isinstance(loss, float)
    assert abs(loss - np.log(8.0 / 3.0) / 2) < 1e-15
    # dlogits = (softmax - onehot) / N
    dz = softmax_cross_entropy_backward(1.0, cache)
    np.testing.assert_allclose(dz, [[0.125, -0.125], [-0.25, 0.25]], rtol=1e-15)
    np.testing.assert_allclose(softmax_cross_entropy_backward(3.0, cache), 3 * dz, rtol=1e-15)
    np.testing.assert_allclose(log_softmax(logits), np.log([[0.25, 0.75], [0.5, 0.5]]), rtol=1e-15)


def test_hand_cross_entropy_label_smoothing():
    # smoothing 0.2 over K = 2 classes: q = 0.8 * onehot + 0.1
    # row 0: q = [0.1, 0.9], log p = [ln 1/4, ln 3/4]: loss = 0.1 ln 4 + 0.9 ln(4/3)
    # row 1: q = [0.9, 0.1], log p = [ln 1/2, ln 1/2]: loss = ln 2
    logits = np.array([[0.0, np.log(3.0)], [0.0, 0.0]])
    loss, cache = softmax_cross_entropy_forward(logits, np.array([1, 0]), label_smoothing=0.2)
    expected = (0.1 * np.log(4.0) + 0.9 * np.log(4.0 / 3.0) + np.log(2.0)) / 2
    assert abs(loss - expected) < 1e-15
    # (p - q) / N: row 0 [0.25 - 0.1, 0.75 - 0.9] / 2, row 1 [0.5 - 0.9, 0.5 - 0.1] / 2
    dz = softmax_cross_entropy_backward(1.0, cache)
    np.testing.assert_allclose(dz, [[0.075, -0.075], [-0.2, 0.2]], rtol=1e-14)


# ----------------------------------------------------------------------------------
# 2. adjoint tests
# ----------------------------------------------------------------------------------


def test_adjoint_linear_in_x_and_w(rng):
    x, w = rng.standard_normal((5, 7)), rng.standard_normal((4, 7))
    y, cache = linear_forward(x, w)
    g = rng.standard_normal(y.shape)
    dx, dw, db = linear_backward(g, cache)
    assert db is None
    scale = float(np.sum(np.abs(y * g)))
    # x -> x W^T has adjoint g -> g W;  w -> x w^T has adjoint g -> g^T x
    assert_adjoint(inner(y, g), inner(x, dx), scale + float(np.sum(np.abs(x * dx))))
    assert_adjoint(inner(y, g), inner(w, dw), scale + float(np.sum(np.abs(w * dw))))


@pytest.mark.parametrize("sizes", [(1, 2), (3, 1, 4), (5,)])
@pytest.mark.parametrize("n", [1, 2])
def test_adjoint_concat(rng, sizes, n):
    xs = [rng.standard_normal((n, c, 3, 2)) for c in sizes]
    y, cache = concat_forward(xs)
    assert y.shape == (n, sum(sizes), 3, 2)
    g = rng.standard_normal(y.shape)
    gs = concat_backward(g, cache)
    assert [a.shape for a in gs] == [a.shape for a in xs]
    rhs = sum(inner(a, b) for a, b in zip(xs, gs, strict=True))
    scale = float(np.sum(np.abs(y * g)))
    assert_adjoint(inner(y, g), rhs, 2 * scale)


@pytest.mark.parametrize("start, stop", [(0, 2), (1, 4), (4, 5), (0, 5)])
@pytest.mark.parametrize("n", [1, 2])
def test_adjoint_channel_slice(rng, start, stop, n):
    x = rng.standard_normal((n, 5, 3, 3))
    y, cache = channel_slice_forward(x, start, stop)
    np.testing.assert_array_equal(y, x[:, start:stop])
    g = rng.standard_normal(y.shape)
    dx = channel_slice_backward(g, cache)
    assert dx.shape == x.shape
    np.testing.assert_array_equal(np.delete(dx, np.s_[start:stop], axis=1), 0.0)
    scale = float(np.sum(np.abs(y * g)))
    assert_adjoint(inner(y, g), inner(x, dx), 2 * scale)


# ----------------------------------------------------------------------------------
# 3. float64 gradient checks
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck_linear(rng, bias):
    x, w = rng.standard_normal((4, 6)), rng.standard_normal((3, 6))
    b = rng.standard_normal(3) if bias else None
    args = (x, w, b) if bias else (x, w)
    check_function(linear_forward, linear_backward, *args).assert_ok()


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("n, k", [(4, 5), (1, 2), (6, 3)])
def test_gradcheck_cross_entropy(rng, smoothing, n, k):
    logits = rng.standard_normal((n, k)) * 3.0
    target = rng.integers(0, k, n)
    report = check_function(
        softmax_cross_entropy_forward, ce_backward_aligned, logits, target,
        label_smoothing=smoothing,
    )  # fmt: skip
    report.assert_ok()


# ----------------------------------------------------------------------------------
# 4. PyTorch as oracle
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("n, fin, fout", [(8, 16, 10), (1, 3, 1), (5, 1, 7)])
def test_torch_linear(torch, rng, n, fin, fout, bias):
    x, w = rng.standard_normal((n, fin)), rng.standard_normal((fout, fin))
    b = rng.standard_normal(fout) if bias else None
    y, cache = linear_forward(x, w, b)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = linear_backward(dy, cache)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    tb = torch.tensor(b, requires_grad=True) if bias else None
    ty = torch.nn.functional.linear(tx, tw, tb)
    ty.backward(torch.tensor(dy))
    assert_close(y, ty.detach().numpy())
    assert_close(dx, tx.grad.numpy())
    assert_close(dw, tw.grad.numpy())
    if bias:
        assert_close(db, tb.grad.numpy())
    else:
        assert db is None


def torch_ce(torch, logits, target, smoothing, dloss=1.0):
    tz = torch.tensor(logits, requires_grad=True)
    loss = torch.nn.functional.cross_entropy(tz, torch.tensor(target), label_smoothing=smoothing)
    (loss * dloss).backward()
    return loss.item(), tz.grad.numpy()


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.35, 1.0])
@pytest.mark.parametrize("n, k", [(16, 10), (1, 2), (7, 3)])
def test_torch_cross_entropy(torch, rng, n, k, smoothing):
    logits = rng.standard_normal((n, k)) * 4.0
    target = rng.integers(0, k, n)
    loss, cache = softmax_cross_entropy_forward(logits, target, label_smoothing=smoothing)
    dz = softmax_cross_entropy_backward(0.7, cache)
    tloss, tdz = torch_ce(torch, logits, target, smoothing, dloss=0.7)
    assert_close(loss, tloss)
    assert_close(dz, tdz)
    assert_close(log_softmax(logits), torch.log_softmax(torch.tensor(logits), 1).numpy())


# ----------------------------------------------------------------------------------
# 6. bad input, and no in-place changes
# ----------------------------------------------------------------------------------


def test_bad_linear_rank_and_shape():
    w = np.zeros((3, 4))
    with pytest.raises(ValueError) as e:
        linear_forward(np.zeros((2, 1, 4)), w)
    msg = str(e.value)
    assert msg.startswith("linear:") and "2-D input (N, in_features)" in msg, msg
    assert "got shape (2, 1, 4)" in msg, msg
    with pytest.raises(ValueError, match=r"linear: expected a 2-D weight .*got shape \(4,\)"):
        linear_forward(np.zeros((2, 4)), np.zeros(4))
    with pytest.raises(ValueError, match=r"linear: expected 4 input features, got 5"):
        linear_forward(np.zeros((2, 5)), w)
    with pytest.raises(ValueError, match=r"linear: expected bias of shape \(3,\), got \(4,\)"):
        linear_forward(np.zeros((2, 4)), w, np.zeros(4))


@pytest.mark.parametrize("dtype", [np.int64, object])
def test_bad_linear_dtype(dtype):
    with pytest.raises(
        TypeError, match=f"linear: x must be float32 or float64, got dtype {np.dtype(dtype)}"
    ):
        linear_forward(np.zeros((2, 4), dtype=dtype), np.zeros((3, 4)))
    with pytest.raises(TypeError, match=r"linear: weight must be float32 or float64"):
        linear_forward(np.zeros((2, 4)), np.zeros((3, 4), dtype=dtype))
    with pytest.raises(TypeError, match=r"linear: all arrays must share one dtype"):
        linear_forward(np.zeros((2, 4), dtype=np.float32), np.zeros((3, 4)))


def test_bad_linear_dy():
    _, cache = linear_forward(np.zeros((2, 4)), np.zeros((3, 4)))
    with pytest.raises(ValueError) as e:
        linear_backward(np.zeros((3, 2)), cache)
    msg = str(e.value)
    assert msg.startswith("linear_backward:"), msg
    assert "expected dy of shape (2, 3)" in msg and "got (3, 2)" in msg, msg
    with pytest.raises(TypeError, match=r"linear_backward: dy must be float32 or float64"):
        linear_backward(np.zeros((2, 3), dtype=np.int64), cache)


def test_bad_cross_entropy_logits():
    with pytest.raises(
        ValueError, match=r"cross_entropy: expected a 2-D logits .*got shape \(5,\)"
    ):
        softmax_cross_entropy_forward(np.zeros(5), np.array([0]))
    with pytest.raises(
        TypeError, match=r"cross_entropy: logits must be float32 or float64, got dtype int64"
    ):
        softmax_cross_entropy_forward(np.zeros((2, 3), dtype=np.int64), np.array([0, 1]))


@pytest.mark.parametrize(
    "target, exc, parts",
    [
        (np.array([0, 3]), ValueError, ["target classes must lie in [0, 3)", "from 0 to 3"]),
        (np.array([-1, 2]), ValueError, ["target classes must lie in [0, 3)", "from -1 to 2"]),
        (np.array([0.0, 1.0]), TypeError, ["integer class indices", "got dtype float64"]),
        (np.array([0.5, 1.0]), TypeError, ["integer class indices", "got dtype float64"]),
        (np.array([True, False]), TypeError, ["integer class indices", "got dtype bool"]),
        (np.array(["0", "1"]), TypeError, ["integer class indices", "got dtype <U1"]),
        (np.array([0, 1, 2]), ValueError, ["expected target of shape (2,)", "got (3,)"]),
        (np.array([[0], [1]]), ValueError, ["expected target of shape (2,)", "got (2, 1)"]),
        (np.array(1), ValueError, ["expected target of shape (2,)", "got ()"]),
    ],
)
def test_bad_cross_entropy_target(target, exc, parts):
    with pytest.raises(exc) as e:
        softmax_cross_entropy_forward(np.zeros((2, 3)), target)
    msg = str(e.value)
    assert msg.startswith("cross_entropy:"), msg
    for part in parts:
        assert part in msg, msg


@pytest.mark.parametrize("smoothing", [-0.1, 1.5])
def test_bad_label_smoothing(smoothing):
    with pytest.raises(ValueError, match=r"cross_entropy: label_smoothing must lie in \[0, 1\]"):
        softmax_cross_entropy_forward(np.zeros((2, 3)), np.array([0, 1]), label_smoothing=smoothing)


def test_bad_concat_and_slice():
    a, b = np.zeros((2, 1, 3, 3)), np.zeros((2, 2, 3, 4))
    with pytest.raises(ValueError, match=r"concat: input 1 has shape \(2, 2, 3, 4\)"):
        concat_forward([a, b])
    with pytest.raises(ValueError, match=r"concat: expected at least one array"):
        concat_forward([])
    with pytest.raises(TypeError, match=r"concat: input 0 must be float32 or float64"):
        concat_forward([a.astype(np.int64)])
    with pytest.raises(ValueError, match=r"channel_slice: expected 0 <= start < stop <= 1"):
        channel_slice_forward(a, 0, 2)
    with pytest.raises(ValueError, match=r"channel_slice: expected a 4-D input"):
        channel_slice_forward(np.zeros((2, 3)), 0, 1)


def test_bad_concat_and_slice_dy():
    xs = [np.zeros((2, 1, 3, 3)), np.zeros((2, 2, 3, 3))]
    _, cache = concat_forward(xs)
    with pytest.raises(ValueError) as e:
        concat_backward(np.zeros((2, 4, 3, 3)), cache)
    msg = str(e.value)
    assert msg.startswith("concat_backward:"), msg
    assert "expected dy with 3 entries along axis 1" in msg and "(2, 4, 3, 3)" in msg, msg
    with pytest.raises(TypeError, match=r"concat_backward: dy must be float32 or float64"):
        concat_backward(np.zeros((2, 3, 3, 3), dtype=np.int64), cache)
    _, cache = channel_slice_forward(np.zeros((2, 5, 3, 3)), 1, 3)
    # one channel where two are expected: must not be broadcast into both
    with pytest.raises(ValueError) as e:
        channel_slice_backward(np.zeros((2, 1, 3, 3)), cache)
    msg = str(e.value)
    assert msg.startswith("channel_slice_backward:"), msg
    assert "expected dy with 2 channels" in msg and "(2, 1, 3, 3)" in msg, msg
    with pytest.raises(ValueError, match=r"channel_slice_backward: expected a 4-D dy"):
        channel_slice_backward(np.zeros((2, 2, 3)), cache)


@pytest.mark.parametrize("dloss", [np.ones(2), np.ones(1), np.ones((2, 3))])
def test_bad_cross_entropy_dloss(dloss):
    _, cache = softmax_cross_entropy_forward(np.zeros((2, 3)), np.array([0, 1]))
    with pytest.raises(ValueError) as e:
        softmax_cross_entropy_backward(dloss, cache)
    msg = str(e.value)
    assert msg.startswith("cross_entropy_backward:"), msg
    assert "expected a scalar upstream gradient" in msg and f"got shape {dloss.shape}" in msg, msg
    # a 0-d array or a Python number is a scalar
    np.testing.assert_array_equal(
        softmax_cross_entropy_backward(np.array(2.0), cache),
        softmax_cross_entropy_backward(2.0, cache),
    )


def test_inputs_not_modified(rng):
    x, w, b = rng.standard_normal((3, 4)), rng.standard_normal((2, 4)), rng.standard_normal(2)
    logits, target = rng.standard_normal((3, 5)), np.array([0, 4, 2])
    feats = [rng.standard_normal((1, 2, 3, 3)), rng.standard_normal((1, 3, 3, 3))]
    inputs = [x, w, b, logits, target, *feats]
    copies = [a.copy() for a in inputs]

    y, cache = linear_forward(x, w, b)
    dy = rng.standard_normal(y.shape)
    dy0 = dy.copy()
    outs = [y, *linear_backward(dy, cache)]
    loss, ce_cache = softmax_cross_entropy_forward(logits, target, label_smoothing=0.1)
    outs.append(softmax_cross_entropy_backward(1.0, ce_cache))
    outs.append(log_softmax(logits))
    cat, cat_cache = concat_forward(feats)
    dcat = rng.standard_normal(cat.shape)
    dcat0 = dcat.copy()
    outs += [cat, *concat_backward(dcat, cat_cache)]
    sl, sl_cache = channel_slice_forward(feats[1], 1, 3)
    dsl = rng.standard_normal(sl.shape)
    dsl0 = dsl.copy()
    outs += [sl, channel_slice_backward(dsl, sl_cache)]

    for out in outs:  # results own their memory: writing to them touches no input
        out[...] = 99.0
    for a, a0 in zip(inputs, copies, strict=True):
        np.testing.assert_array_equal(a, a0)
    for d, d0 in ((dy, dy0), (dcat, dcat0), (dsl, dsl0)):
        np.testing.assert_array_equal(d, d0)


def test_float32_stays_float32(rng):
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((3, 4), (2, 4), (2,)))
    y, cache = linear_forward(x, w, b)
    assert {a.dtype for a in (y, *linear_backward(np.ones_like(y), cache))} == {np.dtype("float32")}
    logits = rng.standard_normal((3, 5)).astype(np.float32)
    _, cache = softmax_cross_entropy_forward(logits, np.array([0, 1, 2]), label_smoothing=0.1)
    assert softmax_cross_entropy_backward(1.0, cache).dtype == np.float32


# ----------------------------------------------------------------------------------
# 8. stability at extreme logits
# ----------------------------------------------------------------------------------


def test_cross_entropy_extreme_logits(torch):
    # row 0 is confidently right (loss ~ e^-2000 = 0), row 1 confidently wrong (loss 2000),
    # row 2 a tie between two huge logits (loss ln 2): mean = (0 + 2000 + ln 2) / 3
    logits = np.array([[1000.0, -1000.0], [-1000.0, 1000.0], [1000.0, 1000.0]])
    target = np.array([0, 0, 1])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        loss, cache = softmax_cross_entropy_forward(logits, target)
        dz = softmax_cross_entropy_backward(1.0, cache)
    assert np.isfinite(loss) and np.all(np.isfinite(dz))
    assert abs(loss - (2000.0 + np.log(2.0)) / 3) < 1e-12
    # (softmax - onehot) / 3 with softmax rows [1, 0], [0, 1], [1/2, 1/2]
    np.testing.assert_allclose(dz, np.array([[0, 0], [-1, 1], [0.5, -0.5]]) / 3, atol=1e-300)
    tloss, tdz = torch_ce(torch, logits, target, 0.0)
    assert_close(loss, tloss)
    assert_close(dz, tdz)
    # with smoothing, the log of the vanishing class enters the loss (log p = -2000), finite
    loss_s, cache_s = softmax_cross_entropy_forward(logits, target, label_smoothing=0.1)
    tloss_s, tdz_s = torch_ce(torch, logits, target, 0.1)
    assert np.isfinite(loss_s)
    assert_close(loss_s, tloss_s)
    assert_close(softmax_cross_entropy_backward(1.0, cache_s), tdz_s)


def test_gradcheck_cross_entropy_large_logits(rng):
    # logits in the hundreds: the shifted log-softmax keeps the gradient accurate
    logits = rng.standard_normal((3, 4)) * 2.0 + np.array([[300.0], [-300.0], [0.0]])
    target = np.array([1, 3, 0])
    report = check_function(
        softmax_cross_entropy_forward, ce_backward_aligned, logits, target, label_smoothing=0.1
    )
    report.assert_ok()
