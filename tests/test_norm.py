"""batch_norm2d_forward / batch_norm2d_backward, checked from hand-computed numbers up to
PyTorch (outputs, gradients and the running-statistics update)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import assert_close

from ghostnp.functional import batch_norm2d_backward, batch_norm2d_forward
from ghostnp.gradcheck import check_function


def bn_backward_aligned(dy, cache):
    """Gradients aligned with (x, weight, bias, running_mean, running_var): the running
    statistics are buffers, not parameters, and get no gradient."""
    return (*batch_norm2d_backward(dy, cache), None, None)


def make_bn(rng, n=2, c=3, h=3, w=2):
    x = rng.standard_normal((n, c, h, w)) * 2.0 + rng.standard_normal((1, c, 1, 1))
    weight = rng.uniform(0.5, 2.0, c)
    bias = rng.standard_normal(c)
    rm = rng.standard_normal(c) * 0.5
    rv = rng.uniform(0.5, 2.0, c)
    return x, weight, bias, rm, rv


# ----------------------------------------------------------------------------------
# 1. hand-computed examples
# ----------------------------------------------------------------------------------

# one image, two channels of 2x2 (M = 4 values per channel)
#   channel 0: [2, 2, 6, 6]  mean 4, deviations -2 -2 2 2, biased var 16/4 = 4, std 2
#   channel 1: [-1, 1, -1, 1] mean 0, biased var 1, std 1
X_HAND = np.array([[[[2.0, 2.0], [6.0, 6.0]], [[-1.0, 1.0], [-1.0, 1.0]]]])
GAMMA = np.array([3.0, 0.5])
BETA = np.array([0.5, -1.0])


def test_hand_train_forward_and_running_stats():
    y, cache = batch_norm2d_forward(
        X_HAND, GAMMA, BETA, np.zeros(2), np.ones(2), training=True, momentum=0.1, eps=0.0
    )
    # xhat0 = [-1, -1, 1, 1] -> 3 * xhat0 + 0.5;  xhat1 = [-1, 1, -1, 1] -> 0.5 * xhat1 - 1
    np.testing.assert_allclose(y[0, 0], [[-2.5, -2.5], [3.5, 3.5]], rtol=1e-15)
    np.testing.assert_allclose(y[0, 1], [[-1.5, -0.5], [-1.5, -0.5]], rtol=1e-15)
    # running_mean = 0.9 * 0 + 0.1 * mean;  running_var = 0.9 * 1 + 0.1 * var * M/(M-1)
    #   channel 0: 0.1 * 4 = 0.4;  0.9 + 0.1 * 4 * 4/3 = 0.9 + 1.6/3
    #   channel 1: 0.0;            0.9 + 0.1 * 1 * 4/3 = 0.9 + 0.4/3
    np.testing.assert_allclose(cache.running_mean, [0.4, 0.0], rtol=1e-15, atol=1e-17)
    np.testing.assert_allclose(cache.running_var, [0.9 + 1.6 / 3, 0.9 + 0.4 / 3], rtol=1e-15)
    np.testing.assert_allclose(cache.inv_std, [0.5, 1.0], rtol=1e-15)


def test_hand_train_backward():
    _, cache = batch_norm2d_forward(X_HAND, GAMMA, BETA, None, None, training=True, eps=0.0)
    # channel 0: dy = [1, 0, 0, 0], xhat = [-1, -1, 1, 1], gamma = 3, 1/std = 1/2
    #   dxhat = [3, 0, 0, 0], mean(dxhat) = 3/4, mean(dxhat * xhat) = -3/4
    #   dx = 1/2 * ([3, 0, 0, 0] - 3/4 - xhat * (-3/4)) = 1/2 * [1.5, -1.5, 0, 0]
    #   dgamma = sum(dy * xhat) = -1,  dbeta = sum(dy) = 1
    # channel 1: dy = xhat = [-1, 1, -1, 1]: scaling the centred input does not change
    #   the output, so dx = 0; dgamma = sum(xhat^2) = 4, dbeta = 0
    dy = np.array([[[[1.0, 0.0], [0.0, 0.0]], [[-1.0, 1.0], [-1.0, 1.0]]]])
    dx, dgamma, dbeta = batch_norm2d_backward(dy, cache)
    np.testing.assert_allclose(dx[0, 0], [[0.75, -0.75], [0.0, 0.0]], rtol=1e-15, atol=1e-16)
    np.testing.assert_allclose(dx[0, 1], np.zeros((2, 2)), atol=1e-16)
    np.testing.assert_allclose(dgamma, [-1.0, 4.0], rtol=1e-15)
    np.testing.assert_allclose(dbeta, [1.0, 0.0], rtol=1e-15)
    # a constant dy is removed entirely by the mean subtraction
    dx_const, _, _ = batch_norm2d_backward(np.full_like(dy, 2.5), cache)
    np.testing.assert_allclose(dx_const, 0.0, atol=1e-15)


def test_hand_eval_uses_running_stats():
    rm, rv = np.array([1.0, -1.0]), np.array([4.0, 0.25])
    y, cache = batch_norm2d_forward(X_HAND, GAMMA, BETA, rm, rv, training=False, eps=0.0)
    # channel 0: 3 * (x - 1) / 2 + 0.5  -> x = 2: 2.0, x = 6: 8.0
    # channel 1: 0.5 * (x + 1) / 0.5 - 1 = x  -> unchanged
    np.testing.assert_allclose(y[0, 0], [[2.0, 2.0], [8.0, 8.0]], rtol=1e-15)
    np.testing.assert_allclose(y[0, 1], X_HAND[0, 1], rtol=1e-15)
    # eval leaves the running statistics as they were
    np.testing.assert_array_equal(cache.running_mean, rm)
    np.testing.assert_array_equal(cache.running_var, rv)
    # eval backward: dx = dy * gamma / std = dy * [1.5, 1.0]
    dx, dgamma, dbeta = batch_norm2d_backward(np.ones_like(X_HAND), cache)
    np.testing.assert_allclose(dx[0, 0], 1.5, rtol=1e-15)
    np.testing.assert_allclose(dx[0, 1], 1.0, rtol=1e-15)
    # dgamma = sum((x - rm) / std): channel 0: (1 + 1 + 5 + 5) / 2 = 6; channel 1: (0+2+0+2)/0.5
    np.testing.assert_allclose(dgamma, [6.0, 8.0], rtol=1e-15)
    np.testing.assert_allclose(dbeta, [4.0, 4.0], rtol=1e-15)


def test_hand_no_affine():
    y, cache = batch_norm2d_forward(X_HAND, None, None, None, None, training=True, eps=0.0)
    np.testing.assert_allclose(y[0, 0], [[-1.0, -1.0], [1.0, 1.0]], rtol=1e-15)
    dx, dgamma, dbeta = batch_norm2d_backward(np.ones_like(X_HAND), cache)
    assert dgamma is None and dbeta is None
    np.testing.assert_allclose(dx, 0.0, atol=1e-15)
    assert cache.running_mean is None and cache.running_var is None


# ----------------------------------------------------------------------------------
# 3. float64 gradient checks
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(2, 3, 3, 2), (4, 2, 1, 1), (1, 2, 3, 3)])
def test_gradcheck_train(rng, shape):
    x, weight, bias, rm, rv = make_bn(rng, *shape)
    # every input is checked: the running statistics must come out with zero gradient
    report = check_function(
        batch_norm2d_forward, bn_backward_aligned, x, weight, bias, rm, rv,
        training=True, momentum=0.1,
    )  # fmt: skip
    report.assert_ok()
    assert len(report.rows) == 5


def test_gradcheck_eval(rng):
    x, weight, bias, rm, rv = make_bn(rng)
    # in eval the output depends on the running statistics, but they are buffers: only
    # x, weight and bias are trained, so only those are checked
    report = check_function(
        batch_norm2d_forward, bn_backward_aligned, x, weight, bias, rm, rv,
        training=False, wrt=[0, 1, 2],
    )  # fmt: skip
    report.assert_ok()


@pytest.mark.parametrize("training", [True, False])
def test_gradcheck_no_affine(rng, training):
    x, _, _, rm, rv = make_bn(rng)
    report = check_function(
        lambda a: batch_norm2d_forward(a, None, None, rm, rv, training=training),
        lambda dy, c: batch_norm2d_backward(dy, c)[0],
        x,
    )
    report.assert_ok()


# ----------------------------------------------------------------------------------
# 4. PyTorch as oracle
# ----------------------------------------------------------------------------------


def torch_bn(torch, x, weight, bias, rm, rv, dy, training, momentum, eps):
    """PyTorch's y, dx, dweight, dbias and updated running stats, as float64 ndarrays."""
    tx = torch.tensor(x, requires_grad=True)
    tw = None if weight is None else torch.tensor(weight, requires_grad=True)
    tb = None if bias is None else torch.tensor(bias, requires_grad=True)
    trm = None if rm is None else torch.tensor(rm.copy())
    trv = None if rv is None else torch.tensor(rv.copy())
    ty = torch.nn.functional.batch_norm(tx, trm, trv, tw, tb, training, momentum, eps)
    ty.backward(torch.tensor(dy))
    return (
        ty.detach().numpy(),
        tx.grad.numpy(),
        None if tw is None else tw.grad.numpy(),
        None if tb is None else tb.grad.numpy(),
        None if trm is None else trm.numpy(),
        None if trv is None else trv.numpy(),
    )


@pytest.mark.parametrize("momentum", [0.1, 0.3])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", [(4, 3, 5, 5), (2, 5, 1, 3), (1, 2, 2, 1)])
def test_torch_batch_norm(torch, rng, shape, training, momentum):
    x, weight, bias, rm, rv = make_bn(rng, *shape)
    y, cache = batch_norm2d_forward(x, weight, bias, rm, rv, training, momentum, 1e-5)
    dy = rng.standard_normal(y.shape)
    dx, dw, db = batch_norm2d_backward(dy, cache)
    ty, tdx, tdw, tdb, trm, trv = torch_bn(
        torch, x, weight, bias, rm, rv, dy, training, momentum, 1e-5
    )
    for ours, theirs in ((y, ty), (dx, tdx), (dw, tdw), (db, tdb)):
        assert_close(ours, theirs)
    # running statistics: torch updates its buffers in place; ours come back in the cache
    # (the running variance uses the unbiased batch variance, var * M / (M - 1))
    assert_close(cache.running_mean, trm)
    assert_close(cache.running_var, trv)


def test_torch_batch_norm_unbiased_running_var(torch, rng):
    # M = 2 values per channel: unbiased = 2 * biased, so a biased update would be far off
    x = rng.standard_normal((2, 3, 1, 1))
    rm, rv = np.zeros(3), np.ones(3)
    _, cache = batch_norm2d_forward(x, None, None, rm, rv, training=True, momentum=0.3)
    unbiased = x.var(axis=(0, 2, 3), ddof=1)
    assert_close(cache.running_var, 0.7 + 0.3 * unbiased, rtol=1e-14)
    *_, trv = torch_bn(torch, x, None, None, rm, rv, np.ones_like(x), True, 0.3, 1e-5)
    assert_close(cache.running_var, trv)


@pytest.mark.parametrize("training", [True, False])
def test_torch_batch_norm_no_affine_eps(torch, rng, training):
    x, _, _, rm, rv = make_bn(rng, 3, 2, 4, 4)
    y, cache = batch_norm2d_forward(x, None, None, rm, rv, training, 0.1, 1e-3)
    dy = rng.standard_normal(y.shape)
    dx, _, _ = batch_norm2d_backward(dy, cache)
    ty, tdx, *_ = torch_bn(torch, x, None, None, rm, rv, dy, training, 0.1, 1e-3)
    assert_close(y, ty)
    assert_close(dx, tdx)


# ----------------------------------------------------------------------------------
# 6. bad input, and no in-place changes
# ----------------------------------------------------------------------------------


def test_bad_rank():
    with pytest.raises(ValueError) as e:
        batch_norm2d_forward(np.zeros((2, 3, 4)), None, None, None, None)
    msg = str(e.value)
    assert msg.startswith("batch_norm2d:") and "4-D input (N, C, H, W)" in msg, msg
    assert "got shape (2, 3, 4)" in msg, msg


@pytest.mark.parametrize("dtype", [np.int64, object])
def test_bad_dtype(dtype):
    with pytest.raises(TypeError) as e:
        batch_norm2d_forward(np.zeros((2, 3, 2, 2), dtype=dtype), None, None, None, None)
    msg = str(e.value)
    assert msg.startswith("batch_norm2d:") and "float32 or float64" in msg, msg
    assert f"got dtype {np.dtype(dtype)}" in msg, msg


def test_bad_mixed_precision():
    x = np.zeros((2, 3, 2, 2), dtype=np.float32)
    with pytest.raises(TypeError, match=r"batch_norm2d: all arrays must share one dtype"):
        batch_norm2d_forward(x, np.ones(3), np.zeros(3), None, None)


@pytest.mark.parametrize("name", ["weight", "bias", "running_mean", "running_var"])
def test_bad_channel_count(name):
    args = {n: np.ones(3) for n in ("weight", "bias", "running_mean", "running_var")}
    args[name] = np.ones(4)
    with pytest.raises(ValueError) as e:
        batch_norm2d_forward(np.zeros((2, 3, 2, 2)), **args)
    msg = str(e.value)
    assert msg.startswith("batch_norm2d:"), msg
    assert f"expected {name} of shape (3,)" in msg and "got (4,)" in msg, msg


@pytest.mark.parametrize("missing", ["running_mean", "running_var"])
def test_bad_eval_without_running_stats(missing):
    args = {"running_mean": np.zeros(3), "running_var": np.ones(3)}
    args[missing] = None
    with pytest.raises(ValueError, match=r"batch_norm2d: eval mode needs running_mean and"):
        batch_norm2d_forward(np.zeros((2, 3, 2, 2)), None, None, training=False, **args)


def test_bad_one_value_per_channel_in_training():
    x = np.ones((1, 3, 1, 1))
    with pytest.raises(ValueError) as e:
        batch_norm2d_forward(x, None, None, None, None, training=True)
    msg = str(e.value)
    assert msg.startswith("batch_norm2d:") and "more than 1 value per channel" in msg, msg
    assert "(1, 3, 1, 1)" in msg, msg
    # eval mode is fine with one value
    y, _ = batch_norm2d_forward(x, None, None, np.zeros(3), np.ones(3), training=False, eps=0.0)
    np.testing.assert_array_equal(y, x)


def test_bad_dy():
    x = np.random.default_rng(0).standard_normal((2, 3, 2, 2))
    _, cache = batch_norm2d_forward(x, np.ones(3), np.zeros(3), None, None)
    with pytest.raises(ValueError) as e:
        batch_norm2d_backward(np.zeros((2, 3, 2, 3)), cache)
    msg = str(e.value)
    assert msg.startswith("batch_norm2d_backward:"), msg
    assert "expected dy of shape (2, 3, 2, 2)" in msg and "got (2, 3, 2, 3)" in msg, msg
    with pytest.raises(TypeError, match=r"batch_norm2d_backward: dy must be float32 or float64"):
        batch_norm2d_backward(np.zeros((2, 3, 2, 2), dtype=np.int32), cache)


@pytest.mark.parametrize("training", [True, False])
def test_inputs_not_modified(rng, training):
    arrays = make_bn(rng)
    copies = [a.copy() for a in arrays]
    y, cache = batch_norm2d_forward(*arrays, training=training, momentum=0.3)
    dy = rng.standard_normal(y.shape)
    dy0 = dy.copy()
    batch_norm2d_backward(dy, cache)
    for a, a0 in zip(arrays, copies, strict=True):
        np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(dy, dy0)
    if training:  # the updated statistics are new arrays, not the caller's buffers
        assert cache.running_mean is not arrays[3] and cache.running_var is not arrays[4]
        assert not np.array_equal(cache.running_mean, arrays[3])


def test_float32_stays_float32(rng):
    x, weight, bias, rm, rv = (a.astype(np.float32) for a in make_bn(rng))
    for training in (True, False):
        y, cache = batch_norm2d_forward(x, weight, bias, rm, rv, training=training)
        dx, dw, db = batch_norm2d_backward(np.ones_like(y), cache)
        assert {a.dtype for a in (y, dx, dw, db, cache.running_mean, cache.running_var)} == {
            np.dtype(np.float32)
        }
