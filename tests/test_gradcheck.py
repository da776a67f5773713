"""ghostnp.gradcheck: it passes correct backward passes, catches wrong ones, and reports clearly."""

from __future__ import annotations

import re

import numpy as np
import pytest

from ghostnp.functional import conv2d_backward, conv2d_forward
from ghostnp.gradcheck import (
    GradcheckReport,
    GradcheckRow,
    check_function,
    check_module,
    numerical_gradient,
    rel_error,
    upstream_gradient,
)
from ghostnp.kernels import use_backend
from ghostnp.nn.module import Module, Parameter

# ----------------------------------------------------------------------------------
# A small differentiable op used throughout: y = a * b + a  (elementwise)
# ----------------------------------------------------------------------------------


def muladd_forward(a, b):
    return a * b + a, (a, b)


def muladd_backward(dy, cache):
    a, b = cache
    return dy * (b + 1.0), dy * a


def muladd_backward_doubled(dy, cache):
    da, db = muladd_backward(dy, cache)
    return 2.0 * da, db


def muladd_backward_forgets_term(dy, cache):
    a, b = cache
    return dy * b, dy * a  # drops the "+ a" term's contribution to da


def muladd_backward_ones(dy, cache):
    # right only when dy is all ones: uses sum(dy) spread evenly instead of dy itself
    a, b = cache
    spread = np.full_like(dy, dy.mean())
    return spread * (b + 1.0), spread * a


@pytest.fixture
def ab(rng):
    return rng.standard_normal((3, 4)), rng.standard_normal((3, 4))


# ----------------------------------------------------------------------------------
# numerical_gradient and rel_error
# ----------------------------------------------------------------------------------


def test_numerical_gradient_of_a_quadratic(rng):
    x = rng.standard_normal((2, 3, 4))
    x_before = x.copy()
    grad = numerical_gradient(lambda: float(np.sum(x**2)), x)
    assert grad.shape == x.shape and grad.dtype == np.float64
    np.testing.assert_allclose(grad, 2 * x, rtol=1e-8, atol=1e-9)
    assert np.array_equal(x, x_before)  # restored bit for bit


def test_numerical_gradient_restores_x_when_f_raises(rng):
    x = rng.standard_normal(5)
    x_before = x.copy()

    def f():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        numerical_gradient(f, x)
    assert np.array_equal(x, x_before)


def test_numerical_gradient_rejects_float32():
    x = np.ones(3, dtype=np.float32)
    with pytest.raises(TypeError, match="float64"):
        numerical_gradient(lambda: float(x.sum()), x)


def test_rel_error_properties(rng):
    a = rng.standard_normal((4, 5))
    b = a + 1e-3 * rng.standard_normal((4, 5))
    assert rel_error(a, a) == 0.0
    assert rel_error(a, b) == rel_error(b, a)  # symmetric
    assert rel_error(1e6 * a, 1e6 * b) == pytest.approx(rel_error(a, b), rel=1e-12)  # scale-free
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert rel_error(2 * a, a) == pytest.approx(0.5)
    assert rel_error(a, -a) == pytest.approx(2.0)  # a sign error is the largest possible
    assert rel_error(np.zeros(0), np.zeros(0)) == 0.0
    # one element differs: the max-normalised error sees it
    c = a.copy()
    c[1, 2] += 1.0
    assert rel_error(a, c) == pytest.approx(1.0 / max(np.abs(a).max(), np.abs(c).max()))


def test_rel_error_shape_mismatch():
    with pytest.raises(ValueError, match="shapes differ"):
        rel_error(np.zeros((2, 3)), np.zeros((3, 2)))


# ----------------------------------------------------------------------------------
# check_function
# ----------------------------------------------------------------------------------


def test_check_function_passes_the_right_backward(ab):
    a, b = ab
    report = check_function(muladd_forward, muladd_backward, a, b)
    assert isinstance(report, GradcheckReport)
    assert report.passed
    assert [r.name for r in report.rows] == ["input 0", "input 1"]
    assert [r.shape for r in report.rows] == [(3, 4), (3, 4)]
    assert report.max_error < 1e-8
    assert report.tol == 1e-7
    report.assert_ok()


@pytest.mark.parametrize(
    "bad", [muladd_backward_doubled, muladd_backward_forgets_term, muladd_backward_ones]
)
def test_check_function_catches_a_wrong_backward(ab, bad):
    a, b = ab
    report = check_function(muladd_forward, bad, a, b)
    assert not report.passed
    assert not report.rows[0].passed  # da is the wrong one
    assert report.max_error > 1e-2
    with pytest.raises(AssertionError, match="FAIL"):
        report.assert_ok()


def test_a_ones_upstream_gradient_would_hide_the_error(ab):
    # The reason for a random g: with g = ones, muladd_backward_ones is indistinguishable.
    a, b = ab
    dy = np.ones_like(a)
    _, cache = muladd_forward(a, b)
    np.testing.assert_allclose(
        muladd_backward_ones(dy, cache)[0], muladd_backward(dy, cache)[0], rtol=1e-15
    )


@pytest.fixture
def numpy_backend():
    with use_backend("numpy"):
        yield


def test_check_function_wrt_and_missing_gradients(rng, numpy_backend):
    x = rng.standard_normal((1, 2, 4, 4))
    w = rng.standard_normal((3, 2, 2, 2))
    # b=None: conv2d_backward returns db=None, which is skipped
    report = check_function(conv2d_forward, conv2d_backward, x, w, None, stride=2)
    assert [r.name for r in report.rows] == ["input 0", "input 1"]
    report.assert_ok()
    # only the weight
    report = check_function(conv2d_forward, conv2d_backward, x, w, wrt=[1], padding=1)
    assert [r.name for r in report.rows] == ["input 1"]
    report.assert_ok()


def test_check_function_leaves_callers_arrays_alone(ab):
    a, b = ab
    a0, b0 = a.copy(), b.copy()
    check_function(muladd_forward, muladd_backward, a, b)
    assert np.array_equal(a, a0) and np.array_equal(b, b0)


def test_check_function_is_seeded(ab):
    a, b = ab
    r1 = check_function(muladd_forward, muladd_backward_doubled, a, b, seed=3)
    r2 = check_function(muladd_forward, muladd_backward_doubled, a, b, seed=3)
    assert r1 == r2


def test_check_function_rejects_float32_with_a_reason(ab):
    a, b = ab
    with pytest.raises(TypeError, match=r"input 1 must be a float64.*float32.*rounding"):
        check_function(muladd_forward, muladd_backward, a, b.astype(np.float32))


def test_check_function_ignores_integer_inputs(rng):
    x = rng.standard_normal((4, 3))
    idx = np.array([2, 0, 1, 1])

    def pick_forward(x, idx):
        return x[np.arange(len(idx)), idx], (x.shape, idx)

    def pick_backward(dy, cache):
        shape, idx = cache
        dx = np.zeros(shape)
        dx[np.arange(len(idx)), idx] = dy
        return dx, None

    report = check_function(pick_forward, pick_backward, x, idx)
    assert [r.name for r in report.rows] == ["input 0"]
    report.assert_ok()


def test_check_function_detects_in_place_changes(ab):
    a, b = ab

    def bwd_scribbles_on_dy(dy, cache):
        grads = muladd_backward(dy, cache)
        dy *= 0.0
        return grads

    def fwd_scribbles_on_input(a, b):
        y, cache = muladd_forward(a, b)
        b += 1.0
        return y, cache

    with pytest.raises(AssertionError, match="upstream gradient in place"):
        check_function(muladd_forward, bwd_scribbles_on_dy, a, b)
    with pytest.raises(AssertionError, match="changed input 1 in place"):
        check_function(fwd_scribbles_on_input, muladd_backward, a, b)


def test_check_function_wrong_gradient_shape_or_count(ab):
    a, b = ab
    with pytest.raises(ValueError, match=r"gradient for input 0 has shape \(4, 3\)"):
        check_function(muladd_forward, lambda dy, c: (dy.T, dy), a, b)
    with pytest.raises(ValueError, match="returned 1 gradients for 2 inputs"):
        check_function(muladd_forward, lambda dy, c: (dy,), a, b)


# ----------------------------------------------------------------------------------
# the report
# ----------------------------------------------------------------------------------


def test_report_table_format():
    rows = (
        GradcheckRow("x", (2, 3, 8, 8), 1.5e-10, 2.0e-11, True),
        GradcheckRow("features.0.weight", (4, 3, 3, 3), 0.25, 1.0, False),
    )
    report = GradcheckReport(rows, 1e-7)
    text = str(report)
    lines = text.splitlines()
    assert "1.0e-07" in lines[0] and "FAIL" in lines[0]
    assert lines[1].split() == ["name", "shape", "rel", "error", "abs", "error", "result"]
    assert len(lines) == 4
    # columns are aligned: each header word starts at the same place as its column
    for col, word in [("shape", "(2,"), ("rel error", "1.500e-10"), ("result", "PASS")]:
        assert lines[1].index(col) == lines[2].index(word)
    assert lines[3].index("(4, 3, 3, 3)") == lines[1].index("shape")
    assert lines[2].endswith("PASS") and lines[3].endswith("FAIL")
    assert report.max_error == 0.25
    assert not report.passed
    with pytest.raises(AssertionError) as e:
        report.assert_ok()
    assert "features.0.weight" in str(e.value) and "2.500e-01" in str(e.value)


def test_report_empty_and_nan():
    assert GradcheckReport((), 1e-7).passed
    assert GradcheckReport((), 1e-7).max_error == 0.0
    nan_row = GradcheckRow("x", (1,), float("nan"), float("nan"), False)
    assert np.isnan(GradcheckReport((nan_row,), 1e-7).max_error)


def test_nan_gradient_fails(ab):
    a, b = ab
    report = check_function(muladd_forward, lambda dy, c: (dy * np.nan, dy * c[0]), a, b)
    assert not report.rows[0].passed and report.rows[1].passed
    assert re.search(r"input 0 .* nan .*FAIL", str(report))


# ----------------------------------------------------------------------------------
# check_module
# ----------------------------------------------------------------------------------


class ChannelScale(Module):
    """y = x * weight[c] + bias[c] on (N, C, H, W), with a running mean of x like BatchNorm."""

    def __init__(self, c, rng, wrong=None):
        super().__init__()
        self.weight = Parameter(rng.standard_normal(c))
        self.bias = Parameter(rng.standard_normal(c))
        self.register_buffer("running_mean", np.zeros(c))
        self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        self.wrong = wrong
        self._x = None

    def forward(self, x):
        if self.training:
            self.running_mean = 0.9 * self.running_mean + 0.1 * x.mean(axis=(0, 2, 3))
            self.num_batches_tracked = self.num_batches_tracked + 1
        self._x = x
        return x * self.weight.data[None, :, None, None] + self.bias.data[None, :, None, None]

    def backward(self, dy):
        x = self._need(self._x)
        dw = (dy * x).sum(axis=(0, 2, 3))
        if self.wrong == "weight":
            dw = dw[::-1].copy()  # channels swapped
        self.weight.accumulate(dw)
        self.bias.accumulate(dy.sum(axis=(0, 2, 3)))
        dx = dy * self.weight.data[None, :, None, None]
        return dx + 1e-3 * dy if self.wrong == "x" else dx


class Chain(Module):
    def __init__(self, *mods):
        super().__init__()
        for i, m in enumerate(mods):
            setattr(self, f"m{i}", m)

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x

    def backward(self, dy):
        for m in reversed(self._modules.values()):
            dy = m.backward(dy)
        return dy


def test_check_module_passes_and_restores_state(rng):
    mod = Chain(ChannelScale(3, rng), ChannelScale(3, rng))
    x = rng.standard_normal((2, 3, 2, 2))
    x0 = x.copy()
    sd0 = mod.state_dict()
    report = check_module(mod, x)
    assert [r.name for r in report.rows] == ["x", "m0.weight", "m0.bias", "m1.weight", "m1.bias"]
    report.assert_ok()
    assert report.max_error < 1e-8
    assert np.array_equal(x, x0)
    sd1 = mod.state_dict()
    assert sd1.keys() == sd0.keys()
    for k in sd0:
        assert np.array_equal(sd0[k], sd1[k]), k  # running stats and counters restored


def test_check_module_leaves_the_analytic_gradient(rng):
    mod = ChannelScale(3, rng)
    x = rng.standard_normal((2, 3, 2, 2))
    mod.weight.grad = np.full(3, 99.0)  # stale gradient: check_module starts from zero_grad
    check_module(mod, x, seed=7).assert_ok()
    g = upstream_gradient((2, 3, 2, 2), seed=7)
    np.testing.assert_allclose(mod.weight.grad, (g * x).sum(axis=(0, 2, 3)), rtol=1e-14)
    np.testing.assert_allclose(mod.bias.grad, g.sum(axis=(0, 2, 3)), rtol=1e-14)
    # and the module's cache is that of a forward pass on x, so backward still works
    np.testing.assert_allclose(mod.backward(g), g * mod.weight.data[None, :, None, None])


class CenterChannels(Module):
    """y = x - mean of x over (N, H, W), per channel: what BatchNorm does first."""

    def __init__(self, wrong=False):
        super().__init__()
        self.wrong = wrong

    def forward(self, x):
        return x - x.mean(axis=(0, 2, 3), keepdims=True)

    def backward(self, dy):
        return dy if self.wrong else dy - dy.mean(axis=(0, 2, 3), keepdims=True)


def test_a_zero_gradient_is_judged_at_the_scale_of_the_check(rng):
    # Centering removes any per-channel constant, so the bias in front of it has a true
    # gradient of exactly zero and its finite differences are pure rounding noise.
    x = rng.standard_normal((2, 3, 3, 3))
    report = check_module(Chain(ChannelScale(3, rng), CenterChannels()), x)
    bias = report.rows[[r.name for r in report.rows].index("m0.bias")]
    assert bias.abs_error < 1e-9
    assert bias.passed
    report.assert_ok()
    assert bias.rel_error > report.tol  # relative to itself, noise looks like a 100% error
    assert report.atol > 0
    assert f"{report.atol:.1e}" in str(report).splitlines()[0]
    # forgetting the mean term gives the bias an O(1) gradient: far above atol
    broken = check_module(Chain(ChannelScale(3, rng), CenterChannels(wrong=True)), x)
    assert [r.name for r in broken.rows if not r.passed] == ["x", "m0.weight", "m0.bias"]


def test_atol_is_tol_times_the_largest_gradient(ab):
    a, b = ab
    report = check_function(muladd_forward, muladd_backward, a, b, tol=1e-6)
    g = upstream_gradient(a.shape, seed=0)
    largest = max(np.abs(g * (b + 1)).max(), np.abs(g * a).max())
    assert report.atol == pytest.approx(1e-6 * largest, rel=1e-6)


@pytest.mark.parametrize("wrong", ["x", "weight"])
def test_check_module_catches_a_broken_module(rng, wrong):
    mod = ChannelScale(3, rng, wrong=wrong)
    report = check_module(mod, rng.standard_normal((2, 3, 2, 2)))
    assert not report.passed
    failed = [r.name for r in report.rows if not r.passed]
    assert failed == [wrong]
    with pytest.raises(AssertionError, match=wrong):
        report.assert_ok()


def test_check_module_requires_float64(rng):
    mod = ChannelScale(2, rng)
    x = rng.standard_normal((1, 2, 2, 2))
    with pytest.raises(TypeError, match="x must be a float64"):
        check_module(mod, x.astype(np.float32))
    mod.astype(np.float32)
    with pytest.raises(TypeError, match="parameter 'weight' must be a float64"):
        check_module(mod, x)
