"""The Ghost blocks and whole GhostNets: float64 gradient checks, the fan-out of the
intrinsic maps, and what ``record`` shows of a Ghost module.

Rounding noise. Central differences with eps = 1e-6 carry an absolute error of about
1e-9 here (machine epsilon times |L| over eps), whatever the size of the gradient. Two
kinds of rows meet that floor:

- zero by construction: the bias of a BN followed by a 1x1 conv and another BN
  (``shortcut.1.bias``, ``bn_dw.bias`` before ``ghost2``) only adds a per-channel constant
  that the second BN subtracts again. The analytic gradient is ~1e-15 and the numerical
  one is pure noise, so the relative error of the row reads ~1.0;
- small real gradients (~1e-3), where 1e-9 of noise is a relative error of ~1e-6.

``check_module`` passes both through its absolute floor (tol times the largest gradient
of the whole check). ``assert_gradcheck`` also requires that, and on top of it holds every
row to the relative tolerance TOL unless its absolute error is below NOISE_FLOOR (2e-8, a
fixed bound on rounding noise, tighter than the floor of ``check_module``); a row whose
analytic gradient is zero must have a numerical one below NOISE_FLOOR, and only the
rows named above may be zero (anything else would be a dead branch, a useless check).
"Worst relative error" is reported over rows whose gradient is large enough for TOL,
not NOISE_FLOOR, to be the binding bound.

Whole nets cost ~15 ms per forward pass, so they are checked on selected entries (see
``check_selected``, which also explains how ReLU kinks are told apart from errors).
"""

from __future__ import annotations

import numpy as np
import pytest

import ghostnp
from ghostnp import nn
from ghostnp.gradcheck import check_module, numerical_gradient, rel_error
from ghostnp.models import GhostNet
from ghostnp.nn import (
    DFCAttention,
    GhostBottleneck,
    GhostModule,
    GhostModuleV2,
    SqueezeExcite,
    record,
)

TOL = 1e-7  # relative, the bar for smooth float64 ops
ZERO_GRAD = 1e-12  # an analytic gradient this small is "zero by construction"
NOISE_FLOOR = 2e-8  # absolute rounding noise of a central difference in these checks


# ----------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _seeded_init():
    """Weights come from ghostnp's global generator: seed it so that every test sees the
    same weights whatever ran before it."""
    ghostnp.manual_seed(2024)


def random_state(module, rng):
    """Random BN affine parameters and running statistics (float64); conv weights kept.

    BN weights are drawn away from zero so that no channel is switched off, and conv
    biases (only SE has them) are drawn positive so that the ReLU in SE is alive: with
    two images and four reduced channels, a random draw sometimes leaves every one of
    them negative and the SE branch without any gradient.
    """
    sd = {}
    current = module.state_dict()
    for k, v in current.items():
        if k.endswith("num_batches_tracked"):
            sd[k] = np.array(2, dtype=np.int64)
        elif k.endswith("running_var"):
            sd[k] = rng.uniform(0.5, 2.0, v.shape)
        elif k.endswith("running_mean"):
            sd[k] = rng.uniform(-0.5, 0.5, v.shape)
        elif v.ndim == 1 and k.rsplit(".", 1)[0] + ".running_mean" in current:
            lo, hi = (0.5, 1.5) if k.endswith("weight") else (0.0, 0.5)
            sd[k] = rng.uniform(lo, hi, v.shape) * rng.choice([-1.0, 1.0], v.shape)
        elif v.ndim == 1:  # a conv bias
            sd[k] = rng.uniform(0.1, 0.6, v.shape)
        else:
            sd[k] = v
    module.load_state_dict(sd, strict=True)
    return module


def f64(module, rng):
    """The module in float64 with random BN state."""
    return random_state(module.astype(np.float64), rng)


def calibrate_bn(model, x):
    """Running statistics = the batch statistics of ``x`` (one train-mode pass with
    momentum 1), so that eval mode normalises realistically; returns the model in eval."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.momentum = 1.0
    model.train()
    model(x)
    for bn, mom in zip(bns, saved, strict=True):
        bn.momentum = mom
    return model.eval()


def judge(name, rel, ab, analytic_max):
    """None if the row passes (see the module docstring), else a description."""
    if analytic_max <= ZERO_GRAD:
        return None if ab <= NOISE_FLOOR else f"{name}: zero gradient, numerical {ab:.2e}"
    if rel <= TOL or ab <= NOISE_FLOOR:
        return None
    return f"{name}: relative error {rel:.2e}, abs {ab:.2e}"


# max|gradient| from which TOL, not NOISE_FLOOR, is the binding bound; below it, a
# relative error mostly measures rounding noise and is not reported as "worst"
WELL_CONDITIONED = NOISE_FLOOR / TOL


def assert_gradcheck(report, module, zero_allowed=("shortcut.1.bias", "bn_dw.bias")):
    """report.assert_ok(), and every row within TOL or the fixed NOISE_FLOOR; only rows
    named in ``zero_allowed`` (suffixes) may have a zero gradient.

    Returns the worst relative error over rows whose gradient is at least
    WELL_CONDITIONED in size (the others are judged by NOISE_FLOOR)."""
    report.assert_ok()
    grads = {name: p.grad for name, p in module.named_parameters()}
    worst, zero, bad = 0.0, [], []
    for row in report.rows:
        g = grads.get(row.name)
        amax = np.inf if row.name == "x" else 0.0 if g is None else float(np.max(np.abs(g)))
        verdict = judge(row.name, row.rel_error, row.abs_error, amax)
        if verdict:
            bad.append(verdict)
        if amax <= ZERO_GRAD:
            zero.append(row.name)
        if amax >= WELL_CONDITIONED:
            worst = max(worst, row.rel_error)
    assert not bad, "gradient check failed:\n" + "\n".join(bad) + f"\n{report}"
    unexpected = [n for n in zero if not n.endswith(tuple(zero_allowed))]
    assert not unexpected, f"unexpected zero gradients (dead ReLUs?): {unexpected}\n{report}"
    return worst, zero


def run_check(module, x, **kw):
    report = check_module(module, x)
    worst, zero = assert_gradcheck(report, module, **kw)
    print(f"\n{type(module).__name__}: worst relative error {worst:.2e}; zero rows {zero}")
    return report


class WithSize(nn.Module):
    """Calls ``inner(x, size=size)``: lets check_module drive DFCAttention at any output size."""

    def __init__(self, inner, size):
        super().__init__()
        self.inner = inner
        self.size = size

    def forward(self, x):
        return self.inner(x, size=self.size)

    def backward(self, dy):
        return self.inner.backward(dy)


# ----------------------------------------------------------------------------------
# make_divisible
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "v, expected",
    [
        (16 * 0.5, 8),
        (16 * 0.1, 4),
        (4, 4),
        (6, 8),
        (5.9, 8),
        (4.4, 4),
        (37, 36),
        (38, 40),
        (960 * 1.3, 1248),
    ],
)
def test_make_divisible(v, expected):
    assert nn.make_divisible(v, 4) == expected


def test_make_divisible_never_loses_more_than_ten_percent():
    for v in np.linspace(1, 2000, 4001):
        d = nn.make_divisible(v, 8)
        assert d % 8 == 0 and d >= 8 and d >= 0.9 * v


# ----------------------------------------------------------------------------------
# GhostModule
# ----------------------------------------------------------------------------------

GHOST_CASES = [
    # inp, oup, kernel, ratio, dw, stride, relu, (H, W)
    pytest.param(4, 8, 1, 2, 3, 1, True, (6, 5), id="ratio2"),
    pytest.param(4, 8, 1, 2, 3, 1, False, (6, 5), id="ratio2-norelu"),
    pytest.param(5, 9, 1, 3, 3, 1, True, (5, 5), id="ratio3"),
    pytest.param(5, 7, 1, 3, 3, 1, False, (5, 4), id="ratio3-oup7-sliced"),
    pytest.param(3, 10, 1, 4, 3, 1, True, (4, 5), id="ratio4-oup10-sliced"),
    pytest.param(4, 7, 1, 2, 3, 1, True, (5, 6), id="odd-oup"),
    pytest.param(3, 6, 3, 2, 3, 2, True, (7, 6), id="3x3-primary-stride2"),
    pytest.param(4, 6, 1, 2, 5, 2, False, (7, 7), id="stride2-dw5"),
]


@pytest.mark.parametrize("inp, oup, k, ratio, dw, stride, relu, hw", GHOST_CASES)
def test_ghost_module_gradcheck(inp, oup, k, ratio, dw, stride, relu, hw, rng):
    m = f64(GhostModule(inp, oup, k, ratio, dw, stride, relu), rng)
    x = rng.standard_normal((2, inp, *hw))
    y = m(x)
    h = (hw[0] + 2 * (k // 2) - k) // stride + 1
    w = (hw[1] + 2 * (k // 2) - k) // stride + 1
    assert y.shape == (2, oup, h, w)
    assert m.init_channels == -(-oup // ratio)
    assert m.new_channels == m.init_channels * (ratio - 1)
    run_check(m, x)


def test_ghost_module_eval_mode_gradcheck(rng):
    m = f64(GhostModule(4, 7, 1, 3, 3, 1, True), rng)
    calibrate_bn(m, rng.standard_normal((4, 4, 5, 5)))
    run_check(m, rng.standard_normal((2, 4, 5, 5)), zero_allowed=())


def test_ghost_module_rejects_bad_ratio():
    with pytest.raises(ValueError, match="ratio"):
        GhostModule(4, 8, ratio=1)


def _dy_split(m, dy):
    """dy with the intrinsic channels only, and with the ghost channels only."""
    k = m.init_channels
    intrinsic, ghost = dy.copy(), dy.copy()
    intrinsic[:, k:] = 0.0
    ghost[:, :k] = 0.0
    return intrinsic, ghost


@pytest.mark.parametrize("ratio, oup", [(2, 8), (3, 7)])
def test_intrinsic_maps_sum_the_gradients_of_both_paths(ratio, oup, rng):
    """x1 feeds the output and the cheap op, so its gradient is the sum of both paths."""
    m = f64(GhostModule(4, oup, ratio=ratio), rng)
    x = rng.standard_normal((2, 4, 5, 6))
    m(x)
    dy = rng.standard_normal((2, oup, 5, 6))
    m.zero_grad()
    dx_full = m.backward(dy)
    full_grads = {n: p.grad.copy() for n, p in m.named_parameters()}

    dy_intrinsic, dy_ghost = _dy_split(m, dy)
    m.zero_grad()
    dx_intrinsic = m.backward(dy_intrinsic)  # only the direct path reaches x1
    dx_ghost = m.backward(dy_ghost)  # only the path through the cheap op
    # the cheap path changes the answer ...
    assert rel_error(dx_intrinsic, dx_full) > 1e-2
    assert rel_error(dx_ghost, dx_full) > 1e-2
    # ... and the two paths add up to the full gradient, parameter gradients included
    assert rel_error(dx_intrinsic + dx_ghost, dx_full) < 1e-13
    for n, p in m.named_parameters():
        assert rel_error(p.grad, full_grads[n]) < 1e-13, n
    # ghost-only upstream gradient leaves the primary conv a non-zero gradient: it flowed
    # through the cheap op into x1
    m.zero_grad()
    m.backward(dy_ghost)
    assert np.max(np.abs(m.primary_conv[0].weight.grad)) > 1e-3
    assert np.max(np.abs(dx_ghost)) > 1e-3


def test_dropping_the_cheap_path_fails_the_gradient_check(rng):
    """What a backward that forgot the fan-out would give, against central differences."""
    m = f64(GhostModule(3, 6), rng)
    x = rng.standard_normal((1, 3, 4, 5))
    y = m(x)
    g = rng.standard_normal(y.shape)
    k = m.init_channels

    def loss():
        return float(np.sum(m(x) * g))

    numeric = numerical_gradient(loss, x)
    m(x)
    dx = m.backward(g)
    m(x)
    only_direct = m.primary_conv.backward(g[:, :k].copy())
    assert rel_error(dx, numeric) < TOL
    assert rel_error(only_direct, numeric) > 1e-2


# ----------------------------------------------------------------------------------
# SqueezeExcite, DFC attention, GhostModuleV2
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("chans, hw", [(8, (5, 4)), (12, (3, 3)), (6, (1, 1))])
def test_squeeze_excite_gradcheck(chans, hw, rng):
    m = f64(SqueezeExcite(chans), rng)
    assert m.conv_reduce.out_channels == nn.make_divisible(chans * 0.25, 4)
    run_check(m, rng.standard_normal((2, chans, *hw)))


@pytest.mark.parametrize(
    "hw, size",
    [((7, 5), (7, 5)), ((6, 4), (6, 4)), ((9, 7), (5, 4)), ((4, 4), (2, 2))],
    ids=["7x5", "6x4", "9x7-to-5x4", "4x4-to-2x2"],
)
def test_dfc_attention_gradcheck(hw, size, rng):
    dfc = DFCAttention(5, 6)
    m = f64(WithSize(dfc, size), rng)
    x = rng.standard_normal((2, 5, *hw))
    g = m(x)
    assert g.shape == (2, 6, *size)
    assert np.all((g > 0) & (g < 1))
    run_check(m, x)


@pytest.mark.parametrize("hw", [(7, 5), (6, 6), (5, 9)])
def test_ghost_module_v2_gradcheck(hw, rng):
    m = f64(GhostModuleV2(5, 7), rng)
    x = rng.standard_normal((2, 5, *hw))
    assert m(x).shape == (2, 7, *hw)
    run_check(m, x)


def test_ghost_module_v2_eval_mode_gradcheck(rng):
    m = f64(GhostModuleV2(4, 6, ratio=3), rng)
    calibrate_bn(m, rng.standard_normal((4, 4, 7, 5)))
    run_check(m, rng.standard_normal((2, 4, 7, 5)), zero_allowed=())


# ----------------------------------------------------------------------------------
# GhostBottleneck
# ----------------------------------------------------------------------------------

BOTTLENECK_CASES = [
    # in, mid, out, k, stride, se, attention, (H, W)
    pytest.param(4, 8, 4, 3, 1, 0.0, False, (5, 4), id="identity"),
    pytest.param(4, 8, 4, 3, 1, 0.25, False, (5, 4), id="identity-se"),
    pytest.param(4, 8, 6, 3, 2, 0.0, False, (5, 4), id="conv-shortcut-stride2"),
    pytest.param(4, 8, 6, 5, 2, 0.25, False, (5, 5), id="conv-shortcut-stride2-k5-se"),
    pytest.param(4, 12, 6, 3, 1, 0.25, False, (4, 4), id="conv-shortcut-stride1-widen"),
    pytest.param(4, 8, 4, 3, 1, 0.0, True, (7, 5), id="attention-identity"),
    pytest.param(4, 8, 6, 5, 2, 0.25, True, (7, 5), id="attention-stride2-se"),
]


@pytest.mark.parametrize("cin, mid, cout, k, stride, se, attention, hw", BOTTLENECK_CASES)
def test_bottleneck_gradcheck(cin, mid, cout, k, stride, se, attention, hw, rng):
    m = f64(GhostBottleneck(cin, mid, cout, k, stride, se, attention=attention), rng)
    identity = cin == cout and stride == 1
    assert len(m.shortcut) == (0 if identity else 4)
    assert (m.se is not None) == (se > 0)
    assert (m.conv_dw is not None) == (stride > 1)
    assert isinstance(m.ghost1, GhostModuleV2) == attention
    x = rng.standard_normal((2, cin, *hw))
    y = m(x)
    assert y.shape == (2, cout, -(-hw[0] // stride), -(-hw[1] // stride))
    run_check(m, x)


def test_bottleneck_eval_mode_gradcheck(rng):
    m = f64(GhostBottleneck(4, 8, 6, 3, 2, 0.25, attention=True), rng)
    calibrate_bn(m, rng.standard_normal((4, 4, 7, 5)))
    run_check(m, rng.standard_normal((2, 4, 7, 5)), zero_allowed=())


# ----------------------------------------------------------------------------------
# Backward leaves dy alone; gradients accumulate
# ----------------------------------------------------------------------------------


def _block_zoo():
    return [
        (GhostModule(4, 7, ratio=3), (2, 4, 5, 5)),
        (GhostModuleV2(4, 6), (2, 4, 7, 5)),
        (WithSize(DFCAttention(4, 6), (7, 5)), (2, 4, 7, 5)),
        (SqueezeExcite(8), (2, 8, 3, 4)),
        (GhostBottleneck(4, 8, 6, 3, 2, 0.25, attention=True), (2, 4, 7, 5)),
        (GhostBottleneck(4, 8, 4, 3, 1, 0.0), (2, 4, 5, 5)),
        (nn.ConvBnAct(4, 6, 1), (2, 4, 3, 3)),
    ]


@pytest.mark.parametrize("i", range(len(_block_zoo())))
def test_backward_never_modifies_dy(i, rng, backend):
    m, shape = _block_zoo()[i]
    m = f64(m, rng)
    y = m(rng.standard_normal(shape))
    dy = rng.standard_normal(y.shape)
    dy_before = dy.copy()
    dx = m.backward(dy)
    assert np.array_equal(dy, dy_before)
    assert dx.shape == shape
    dx[...] = 0.0  # the returned gradient is not a view of dy either
    assert np.array_equal(dy, dy_before)


@pytest.mark.parametrize("i", range(len(_block_zoo())))
def test_parameter_gradients_accumulate(i, rng):
    m, shape = _block_zoo()[i]
    m = f64(m, rng)
    y = m(rng.standard_normal(shape))
    dy = rng.standard_normal(y.shape)
    m.zero_grad()
    m.backward(dy)
    once = {n: p.grad.copy() for n, p in m.named_parameters()}
    m.backward(dy)
    for n, p in m.named_parameters():
        np.testing.assert_allclose(p.grad, 2 * once[n], rtol=1e-13, atol=1e-300, err_msg=n)


# ----------------------------------------------------------------------------------
# record(): intrinsic and ghost maps, the DFC gate
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("ratio, oup", [(2, 8), (2, 7), (3, 7), (4, 10)])
def test_record_intrinsic_and_ghost_maps_make_the_output(ratio, oup, rng):
    m = f64(GhostModule(4, oup, ratio=ratio), rng)
    x = rng.standard_normal((2, 4, 5, 5))
    with record(m, ["primary_conv", "cheap_operation"]) as rec:
        y = m(x)
    intrinsic, ghost = rec["primary_conv"], rec["cheap_operation"]
    assert intrinsic.shape == (2, m.init_channels, 5, 5)
    assert ghost.shape == (2, m.new_channels, 5, 5)
    assert np.array_equal(np.concatenate([intrinsic, ghost], axis=1)[:, :oup], y)
    # ghost_forward shows the same two halves
    y2, x1, x2 = m.ghost_forward(x)
    assert np.array_equal(x1, intrinsic) and np.array_equal(x2, ghost) and np.array_equal(y2, y)


def test_record_inside_a_ghostnet_v2(rng):
    ghostnp.manual_seed(0)
    model = f64(GhostNet(0.25, 10, 0.0, version=2), rng)
    path = "blocks.3.0.ghost1"
    ghost1 = dict(model.named_modules())[path]
    assert isinstance(ghost1, GhostModuleV2)
    assert path in nn.ghost_paths(model)
    paths = [path, f"{path}.primary_conv", f"{path}.cheap_operation", f"{path}.short_conv"]
    with record(model, paths) as rec:
        model(rng.standard_normal((2, 3, 48, 40)))
    out = rec[path]
    ghost = np.concatenate([rec[f"{path}.primary_conv"], rec[f"{path}.cheap_operation"]], axis=1)
    ghost = ghost[:, : ghost1.oup]
    gate = rec[f"{path}.short_conv"]
    assert gate.shape == out.shape
    assert np.all((gate >= 0.0) & (gate <= 1.0))
    assert np.array_equal(gate, ghost1.attention_map())
    np.testing.assert_allclose(ghost * gate, out, rtol=0, atol=0)
    # the gate varies over space: a nearest upsample of a coarser map, not a constant
    assert np.ptp(gate) > 0
    # hooks are gone after the block
    model(rng.standard_normal((2, 3, 48, 40)))
    assert rec[path] is out


def test_record_rejects_unknown_paths(rng):
    m = GhostModule(4, 8)
    with pytest.raises(ValueError, match="no module at path"):
        with record(m, ["primary_conv", "nope"]):
            pass


# ----------------------------------------------------------------------------------
# Whole tiny GhostNets
# ----------------------------------------------------------------------------------


def check_selected(model, x, x_index, param_index, seed=0, eps=1e-6):
    """Central differences for selected entries of x and of each parameter.

    ``x_index``: flat indexes into x (None for all); ``param_index``: name -> flat indexes.
    Each selection is gathered into a small float64 vector ``v``, and the loss writes ``v``
    back into the array before every forward pass, so ``numerical_gradient(loss, v)``
    differentiates the real model with respect to exactly those entries. BN buffers are
    restored after every pass.

    Kinks. A whole net has thousands of ReLU inputs, and nudging a weight by eps moves
    all of them; now and then one lies within reach of zero and the two sides of the
    central difference straddle the kink, which spoils that one estimate (~1e-3 relative
    seen at eps=1e-6). An entry that fails is therefore estimated again with eps/10: a
    kink moves out of reach and the estimate converges to a correct analytic gradient,
    while a wrong analytic gradient stays wrong at every eps. Such entries are counted
    in ``kinks``.

    Returns name -> (relative error, abs error, max|analytic|, kinks), the relative error
    measured as in ``rel_error``: against the largest magnitude of the whole analytic
    array (or of the numerical estimates, if larger).
    """
    pnames = {n for n, _ in model.named_parameters()}
    buffers = {k: v for k, v in model.state_dict().items() if k not in pnames}
    params = dict(model.named_parameters())
    x = x.copy()
    y = model(x)
    model.load_state_dict(buffers, strict=False)
    g = np.random.default_rng(seed).standard_normal(y.shape)
    model.zero_grad()
    dx = model.backward(g)

    def numeric_for(target, flat_idx, step):
        flat = target.reshape(-1)
        original = flat[flat_idx].copy()
        v = original.copy()

        def loss():
            flat[flat_idx] = v
            try:
                return float(np.sum(model(x) * g))
            finally:
                model.load_state_dict(buffers, strict=False)

        try:
            return numerical_gradient(loss, v, step)
        finally:
            flat[flat_idx] = original

    def entry_ok(a, n, scale, floor):
        return (np.abs(a - n) <= TOL * scale) | (np.abs(a - n) <= floor)

    results = {}
    selections = [("x", x, dx, x_index)] + [
        (n, params[n].data, params[n].grad, idx) for n, idx in param_index.items()
    ]
    for name, arr, analytic, idx in selections:
        idx = np.arange(arr.size) if idx is None else np.asarray(idx)
        a = analytic.reshape(-1)[idx]
        amax = float(np.max(np.abs(analytic)))
        numeric = numeric_for(arr, idx, eps)
        retry = ~entry_ok(a, numeric, amax, NOISE_FLOOR)
        if retry.any():  # see "Kinks" above; rounding noise grows tenfold at eps/10
            finer = numeric_for(arr, idx[retry], eps / 10)
            settled = entry_ok(a[retry], finer, amax, 10 * NOISE_FLOOR)
            numeric[np.flatnonzero(retry)[settled]] = finer[settled]
        kinks = int(retry.sum())
        scale = max(amax, float(np.max(np.abs(numeric))))
        err = float(np.max(np.abs(a - numeric)))
        results[name] = (err / scale if scale > 0 else 0.0, err, amax, kinks)
    return results


def assert_selected(results, max_kinks=10):
    """Every selection within TOL, or NOISE_FLOOR (10x that for a re-estimated kink);
    at most ``max_kinks`` entries re-estimated. Returns (worst relative error over arrays
    whose gradient is at least WELL_CONDITIONED, names of arrays with a zero gradient,
    names of arrays with a smaller non-zero gradient, number of kinks)."""
    bad = []
    for n, (rel, ab, amax, kinks) in results.items():
        floor = 10 * NOISE_FLOOR if kinks else NOISE_FLOOR
        zero = n != "x" and amax <= ZERO_GRAD
        if (zero and ab > floor) or (not zero and rel > TOL and ab > floor):
            bad.append(f"{n}: relative error {rel:.2e}, abs {ab:.2e}, max|grad| {amax:.2e}")
    assert not bad, "gradient check failed:\n" + "\n".join(bad)
    kinks = sum(r[3] for r in results.values())
    assert kinks <= max_kinks, f"{kinks} estimates needed eps/10 (more than {max_kinks})"
    worst = max(r[0] for r in results.values() if r[2] >= WELL_CONDITIONED)
    zero = [str(n) for n, r in results.items() if r[2] <= ZERO_GRAD]
    small = [str(n) for n, r in results.items() if ZERO_GRAD < r[2] < WELL_CONDITIONED]
    return worst, zero, small, kinks


def check_net_entries(model, x, named, rng, others=64):
    """check_selected on 64 random entries of x and one random entry of each parameter
    tensor in ``named`` and of ``others`` more tensors drawn at random; returns what
    assert_selected returns."""
    names = [n for n, _ in model.named_parameters()]
    rest = [n for n in names if n not in named]
    chosen = list(named) + list(rng.choice(rest, others, replace=False))
    params = dict(model.named_parameters())
    picks = {n: rng.integers(0, params[n].size, 1) for n in chosen}
    results = check_selected(model, x, rng.choice(x.size, 64, replace=False), picks)
    return assert_selected(results)


def _tiny_net(version, rng):
    ghostnp.manual_seed(1)
    return f64(GhostNet(0.1, 5, 0.0, version=version), rng)


@pytest.mark.slow
def test_tiny_ghostnet_v1_gradcheck_end_to_end_eval(rng):
    """Eval mode (BN statistics calibrated on a batch), one 12x12 image: every entry of dx,
    and one random entry of each of the 272 parameter tensors (a forward pass costs
    ~15 ms, so every entry of every parameter would take an hour). In eval mode every BN
    is an affine map, so no gradient is zero by construction."""
    model = _tiny_net(1, rng)
    calibrate_bn(model, rng.standard_normal((4, 3, 12, 12)))
    x = rng.standard_normal((1, 3, 12, 12))
    assert model(x).shape == (1, 5)
    assert len(model.parameters()) == 272
    picks = {n: rng.integers(0, p.size, 1) for n, p in model.named_parameters()}
    results = check_selected(model, x, None, picks)
    worst, zero, small, kinks = assert_selected(results)
    print(f"\nGhostNet V1 0.1x eval: worst relative error {worst:.2e}; kinks {kinks}")
    print(f"small gradients: {small}")
    assert zero == []


@pytest.mark.slow
def test_tiny_ghostnet_v1_gradcheck_end_to_end_train(rng):
    """Train mode, batch 2 at 33x33 (the last stage is 2x2, so every BN normalises at
    least eight values per channel): 64 random entries of dx and one random entry of each
    of the 272 parameter tensors. BN biases followed by a conv and another BN have zero
    gradients by construction (listed)."""
    model = _tiny_net(1, rng)
    x = rng.standard_normal((2, 3, 33, 33))
    assert model(x).shape == (2, 5)
    picks = {n: rng.integers(0, p.size, 1) for n, p in model.named_parameters()}
    results = check_selected(model, x, rng.choice(x.size, 64, replace=False), picks)
    worst, zero, small, kinks = assert_selected(results)
    print(f"\nGhostNet V1 0.1x train: worst relative error {worst:.2e}; kinks {kinks}")
    print(f"zero gradients: {zero}\nsmall gradients: {small}")


@pytest.mark.slow
def test_tiny_ghostnet_v2_gradcheck_end_to_end_eval(rng):
    """Eval mode (BN statistics calibrated on a batch of four), one 33x33 image, the
    smallest size whose last stage is still 2x2 so that every DFC branch has a map to
    pool: 64 random entries of dx, one random entry of each of the 126 DFC tensors and of
    64 other random parameter tensors.

    Why not train mode: at any input small enough to check, the DFC branches of stages
    6-8 pool to 1x1, so their BNs normalise two values per channel in a batch of two.
    That map is nearly a step function of the inputs, and central differences through it
    are dominated by curvature (1e-5..1e-4 relative, at eps=1e-6 and at 1e-7 alike). The
    analytic train-mode gradients of whole V2 nets are instead checked element by
    element against PyTorch (test_models.py), and the train-mode DFC branch by the block
    checks above."""
    model = _tiny_net(2, rng)
    calibrate_bn(model, rng.standard_normal((4, 3, 33, 33)))
    x = rng.standard_normal((1, 3, 33, 33))
    assert model(x).shape == (1, 5)
    names = [n for n, _ in model.named_parameters()]
    dfc = [n for n in names if ".short_conv." in n]
    assert len(dfc) == 126 and len(names) == 398
    worst, zero, small, kinks = check_net_entries(model, x, dfc, rng)
    print(f"\nGhostNet V2 0.1x eval: worst relative error {worst:.2e}; kinks {kinks}")
    print(f"small gradients: {small}")
    assert zero == []


def test_check_selected_catches_a_wrong_gradient(rng):
    """The subset check is not vacuous: a parameter gradient off by 1% is reported."""
    m = f64(GhostBottleneck(4, 8, 6, 3, 2, 0.25), rng)
    x = rng.standard_normal((2, 4, 5, 5))
    original = m.backward

    def skewed(dy):
        dx = original(dy)
        m.ghost2.primary_conv[0].weight.grad *= 1.01
        return dx

    object.__setattr__(m, "backward", skewed)
    results = check_selected(m, x, None, {n: np.arange(p.size) for n, p in m.named_parameters()})
    assert results["ghost2.primary_conv.0.weight"][0] > 1e-3
    with pytest.raises(AssertionError, match="ghost2.primary_conv.0.weight"):
        assert_selected(results)
