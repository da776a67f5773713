"""Element-wise ops: relu, relu6, hard_sigmoid, hard_swish, sigmoid and dropout."""

from __future__ import annotations

import numpy as np
import pytest

# name -> (forward, backward, kinks)
from helpers import assert_close

from ghostnp.functional import (
    dropout_backward,
    dropout_forward,
    hard_sigmoid_backward,
    hard_sigmoid_forward,
    hard_swish_backward,
    hard_swish_forward,
    relu6_backward,
    relu6_forward,
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
)
from ghostnp.gradcheck import check_function

ACTIVATIONS = {
    "relu": (relu_forward, relu_backward, (0.0,)),
    "relu6": (relu6_forward, relu6_backward, (0.0, 6.0)),
    "hard_sigmoid": (hard_sigmoid_forward, hard_sigmoid_backward, (-3.0, 3.0)),
    "hard_swish": (hard_swish_forward, hard_swish_backward, (-3.0, 3.0)),
    "sigmoid": (sigmoid_forward, sigmoid_backward, ()),
}


def off_kinks(x, kinks, margin=1e-3):
    """Move every value closer than ``margin`` to a kink out to 2*margin on its own side."""
    x = x.copy()
    for k in kinks:
        near = np.abs(x - k) < margin
        x[near] = k + np.where(x[near] >= k, 2 * margin, -2 * margin)
    return x


def sample(rng, shape, kinks):
    """Uniform over [-8, 8] (every region of every activation), kept off the kinks."""
    return off_kinks(rng.uniform(-8.0, 8.0, shape), kinks)


# ----------------------------------------------------------------------------------
# 1. hand-computed examples
# ----------------------------------------------------------------------------------

POINTS = np.array([-4.0, -3.0, -1.5, 0.0, 1.5, 3.0, 4.5])


def test_hand_hard_sigmoid():
    # relu6(x + 3) / 6:  x + 3 = [-1, 0, 1.5, 3, 4.5, 6, 7.5] -> clip to [0, 6] -> / 6
    y, cache = hard_sigmoid_forward(POINTS)
    np.testing.assert_allclose(y, [0.0, 0.0, 0.25, 0.5, 0.75, 1.0, 1.0], rtol=1e-15)
    # slope 1/6 strictly inside (-3, 3); 0 outside and at the kinks (PyTorch's choice)
    dx = hard_sigmoid_backward(np.ones_like(POINTS), cache)
    np.testing.assert_allclose(dx, [0, 0, 1 / 6, 1 / 6, 1 / 6, 0, 0], rtol=1e-15)


def test_hand_hard_swish():
    # x * hard_sigmoid(x) = [-4*0, -3*0, -1.5*0.25, 0, 1.5*0.75, 3*1, 4.5*1]
    y, cache = hard_swish_forward(POINTS)
    np.testing.assert_allclose(y, [0.0, 0.0, -0.375, 0.0, 1.125, 3.0, 4.5], rtol=1e-15)
    # slope: 0 below -3; x/3 + 1/2 inside (-3, 3); 1 above 3. At the kinks x = -3 and
    # x = 3 PyTorch takes the outer side's slope (0 and 1), not the inner one (-1/2, 3/2)
    dx = hard_swish_backward(np.ones_like(POINTS), cache)
    np.testing.assert_allclose(dx, [0.0, 0.0, 0.0, 0.5, 1.0, 1.0, 1.0], rtol=1e-15)


def test_hand_relu_relu6_sigmoid():
    x = np.array([-2.0, 0.0, 0.5, 6.0, 7.0])
    y, c = relu_forward(x)
    np.testing.assert_array_equal(y, [0.0, 0.0, 0.5, 6.0, 7.0])
    np.testing.assert_array_equal(relu_backward(np.full(5, 2.0), c), [0, 0, 2, 2, 2])
    y, c = relu6_forward(x)
    np.testing.assert_array_equal(y, [0.0, 0.0, 0.5, 6.0, 6.0])
    np.testing.assert_array_equal(relu6_backward(np.full(5, 2.0), c), [0, 0, 2, 0, 0])
    # sigmoid(0) = 1/2, sigmoid(ln 3) = 3/4, sigmoid(-ln 3) = 1/4; slope y(1-y)
    y, c = sigmoid_forward(np.array([0.0, np.log(3.0), -np.log(3.0)]))
    np.testing.assert_allclose(y, [0.5, 0.75, 0.25], rtol=1e-15)
    np.testing.assert_allclose(sigmoid_backward(np.ones(3), c), [0.25, 3 / 16, 3 / 16], rtol=1e-15)


# ----------------------------------------------------------------------------------
# 3. float64 gradient checks
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ACTIVATIONS))
@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (5, 7)])
def test_gradcheck_activation(rng, name, shape):
    fwd, bwd, kinks = ACTIVATIONS[name]
    x = sample(rng, shape, kinks)
    check_function(fwd, bwd, x).assert_ok()


@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 0.9])
def test_gradcheck_dropout(rng, p):
    x = rng.standard_normal((2, 3, 4, 4))
    # a seed (not a generator) makes every forward draw the same mask
    report = check_function(
        lambda a: dropout_forward(a, p=p, training=True, rng=7), dropout_backward, x
    )
    report.assert_ok()


# ----------------------------------------------------------------------------------
# 4. PyTorch as oracle
# ----------------------------------------------------------------------------------


def torch_pair(torch, fn, x, dy):
    tx = torch.tensor(x, requires_grad=True)
    ty = fn(tx)
    ty.backward(torch.tensor(dy))
    return ty.detach().numpy(), tx.grad.numpy()


def torch_functions(torch):
    F = torch.nn.functional
    return {
        "relu": F.relu,
        "relu6": F.relu6,
        # torch's F.hardsigmoid backward multiplies by a float32 constant 1/6 even for
        # float64 tensors (an error of ~1e-8), so the oracle is GhostNet's own definition
        # relu6(x + 3) / 6, whose float64 forward and backward are exact
        "hard_sigmoid": lambda t: F.relu6(t + 3.0) / 6.0,
        "hard_swish": F.hardswish,
        "sigmoid": torch.sigmoid,
    }


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_torch_activation(torch, rng, name):
    fwd, bwd, kinks = ACTIVATIONS[name]
    x = sample(rng, (4, 3, 8, 8), kinks)
    y, cache = fwd(x)
    dy = rng.standard_normal(y.shape)
    ty, tdx = torch_pair(torch, torch_functions(torch)[name], x, dy)
    assert_close(y, ty)
    assert_close(bwd(dy, cache), tdx)


@pytest.mark.parametrize("name", ["relu", "relu6", "hard_sigmoid", "hard_swish"])
def test_torch_activation_at_kinks(torch, name):
    # exactly at the kinks the derivative follows PyTorch's choice
    fwd, bwd, _ = ACTIVATIONS[name]
    x = np.array([-6.0, -3.0, 0.0, 3.0, 6.0, -3.5, 2.0, 7.0])
    y, cache = fwd(x)
    dy = np.linspace(0.5, 2.0, x.size)
    ty, tdx = torch_pair(torch, torch_functions(torch)[name], x, dy)
    assert_close(y, ty)
    assert_close(bwd(dy, cache), tdx)


# ----------------------------------------------------------------------------------
# 6. bad input, and no in-place changes
# ----------------------------------------------------------------------------------

ALL_FORWARDS = {name: f for name, (f, _, _) in ACTIVATIONS.items()}
ALL_FORWARDS["dropout"] = lambda x: dropout_forward(x, 0.5, rng=0)
ALL_BACKWARDS = {name: b for name, (_, b, _) in ACTIVATIONS.items()}
ALL_BACKWARDS["dropout"] = dropout_backward


@pytest.mark.parametrize("name", list(ALL_FORWARDS))
@pytest.mark.parametrize("dtype", [np.int64, object, bool])
def test_bad_dtype(name, dtype):
    with pytest.raises(TypeError) as e:
        ALL_FORWARDS[name](np.zeros((2, 3), dtype=dtype))
    msg = str(e.value)
    assert msg.startswith(name + ":") and "float32 or float64" in msg, msg
    assert f"got dtype {np.dtype(dtype)}" in msg, msg


@pytest.mark.parametrize("name", list(ALL_FORWARDS))
def test_bad_dy(name):
    x = np.random.default_rng(0).standard_normal((2, 3))
    _, cache = ALL_FORWARDS[name](x)
    with pytest.raises(ValueError) as e:
        ALL_BACKWARDS[name](np.zeros((3, 2)), cache)
    msg = str(e.value)
    assert msg.startswith(f"{name}_backward:"), msg
    assert "expected dy of shape (2, 3)" in msg and "got (3, 2)" in msg, msg
    with pytest.raises(TypeError, match=f"{name}_backward: dy must be float32 or float64"):
        ALL_BACKWARDS[name](np.zeros((2, 3), dtype=np.int64), cache)


@pytest.mark.parametrize("training, p", [(False, 0.5), (True, 0.0), (True, 1.0)])
def test_bad_dy_dropout_identity_paths(training, p):
    # eval and p = 0 keep no mask, but dy must still have x's shape
    _, cache = dropout_forward(np.zeros((2, 3)), p=p, training=training, rng=0)
    with pytest.raises(
        ValueError, match=r"dropout_backward: expected dy of shape \(2, 3\), got \(2, 4\)"
    ):
        dropout_backward(np.zeros((2, 4)), cache)


@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan")])
def test_bad_dropout_p(p):
    with pytest.raises(ValueError, match=r"dropout: p must lie in \[0, 1\], got"):
        dropout_forward(np.zeros(4), p=p)


@pytest.mark.parametrize("name", list(ALL_FORWARDS))
def test_inputs_not_modified(rng, name):
    x = rng.uniform(-8.0, 8.0, (2, 3, 4, 4))
    x0 = x.copy()
    y, cache = ALL_FORWARDS[name](x)
    dy = rng.standard_normal(y.shape)
    dy0 = dy.copy()
    dx = ALL_BACKWARDS[name](dy, cache)
    y[...] = 99.0  # the outputs own their memory
    dx[...] = 99.0
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(dy, dy0)


@pytest.mark.parametrize("name", list(ALL_FORWARDS))
def test_float32_stays_float32(rng, name):
    x = rng.uniform(-8.0, 8.0, (2, 5)).astype(np.float32)
    y, cache = ALL_FORWARDS[name](x)
    assert y.dtype == np.float32
    assert ALL_BACKWARDS[name](np.ones_like(y), cache).dtype == np.float32


# ----------------------------------------------------------------------------------
# 7. dropout
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
def test_dropout_eval_is_identity(rng, p):
    x = rng.standard_normal((3, 4, 5))
    y, cache = dropout_forward(x, p=p, training=False, rng=0)
    np.testing.assert_array_equal(y, x)
    assert y is not x
    dy = rng.standard_normal(x.shape)
    np.testing.assert_array_equal(dropout_backward(dy, cache), dy)


def test_dropout_p0_is_identity(rng):
    x = rng.standard_normal((3, 4, 5))
    y, cache = dropout_forward(x, p=0.0, training=True)
    np.testing.assert_array_equal(y, x)
    dy = rng.standard_normal(x.shape)
    np.testing.assert_array_equal(dropout_backward(dy, cache), dy)


def test_dropout_p1_drops_everything(rng):
    x = rng.standard_normal((3, 4))
    y, cache = dropout_forward(x, p=1.0, training=True, rng=0)
    np.testing.assert_array_equal(y, 0.0)
    np.testing.assert_array_equal(dropout_backward(np.ones_like(x), cache), 0.0)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_dropout_statistics(p):
    # y = x * keep / (1 - p), keep ~ Bernoulli(1 - p): E[y] = x. With x = 1 and 10^6 values
    # the sample mean has standard deviation sqrt(p / (1 - p) / 10^6) <= 2e-3; allow 1e-2.
    x = np.ones((1000, 1000))
    y, cache = dropout_forward(x, p=p, training=True, rng=2024)
    assert abs(y.mean() - 1.0) < 1e-2
    # the survivors are scaled by exactly 1 / (1 - p); the rest are exactly zero
    kept = y != 0
    assert abs(kept.mean() - (1 - p)) < 5e-3
    np.testing.assert_allclose(y[kept], 1.0 / (1.0 - p), rtol=1e-15)
    # the gradient uses the same mask
    np.testing.assert_array_equal(dropout_backward(x, cache), y)


def test_dropout_reproducible(rng):
    x = rng.standard_normal((4, 8, 8))
    y1, _ = dropout_forward(x, p=0.5, rng=11)
    y2, _ = dropout_forward(x, p=0.5, rng=11)
    y3, _ = dropout_forward(x, p=0.5, rng=12)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(y1, y3)
    g1, g2 = np.random.default_rng(5), np.random.default_rng(5)
    np.testing.assert_array_equal(
        dropout_forward(x, 0.5, rng=g1)[0], dropout_forward(x, 0.5, rng=g2)[0]
    )


# ----------------------------------------------------------------------------------
# 8. stability at extreme inputs
# ----------------------------------------------------------------------------------


def test_sigmoid_extreme_logits(torch):
    x = np.array([-1000.0, -745.0, -50.0, -30.0, 0.0, 30.0, 50.0, 745.0, 1000.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # no overflow, no nan
        y, cache = sigmoid_forward(x)
        dx = sigmoid_backward(np.ones_like(x), cache)
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(dx))
    assert y[0] == 0.0 and y[-1] == 1.0 and y[4] == 0.5
    # exact derivative: e^-|x| / (1 + e^-|x|)^2
    e = np.exp(-np.abs(x))
    assert_close(dx, e / (1 + e) ** 2, rtol=1e-12)
    # small outputs keep their relative precision (no 1 - (1 - tiny))
    np.testing.assert_allclose(y[:4], e[:4] / (1 + e[:4]), rtol=1e-15)
    ty, tdx = torch_pair(torch, torch.sigmoid, x, np.ones_like(x))
    assert_close(y, ty)
    assert_close(dx, tdx)
