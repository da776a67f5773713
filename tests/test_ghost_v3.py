"""GhostNetV3: counts and state-dict layout (train and deploy form), float64 gradient
checks of every member, PyTorch twins in float64 (train and eval, before and after
folding), strict loading of twin-written state dicts, and what ``reparameterize()``
guarantees: the deploy form computes the train form's eval outputs.

The twins (tests/torch_twins.py) are built from ``torch.nn`` and fold their branches
with ``torch.nn.utils.fusion.fuse_conv_bn_eval`` and ``torch.nn.functional.pad``, so
the deploy weights are checked against an independent computation, not only against
the train form's outputs.

Zero gradients by construction (train mode): the BN biases of the stride-2 depthwise
branches add a per-channel constant to ghost2's input; ghost2's 1x1 convs turn it into a
per-channel constant of their outputs, which their BNs subtract again. Such rows are
allowed to be zero (and then must be, to rounding), as ``shortcut.1.bias`` in V1.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch_twins as tt
from helpers import assert_close
from hypothesis import given, settings
from hypothesis import strategies as st
from test_ghost import calibrate_bn, check_net_entries, f64, run_check
from test_models import RTOL, _print_worst, compare, paired  # noqa: F401

import ghostnp
from ghostnp import nn
from ghostnp.errors import LayerStateError
from ghostnp.gradcheck import rel_error
from ghostnp.models import (
    GhostNet,
    create_model,
    ghostnetv2,
    ghostnetv3,
    ghostnetv3_050,
    ghostnetv3_100,
    ghostnetv3_130,
    ghostnetv3_160,
)
from ghostnp.nn import GhostBottleneckV3, GhostModuleV3
from ghostnp.nn.ghost_v3 import BranchSum, fold_branches, identity_kernel, pad_kernel

FOLD_RTOL64 = 1e-12  # deploy form against train form (eval), float64, relative to max|y|
FOLD_RTOL32 = 1e-5  # the same in float32
DW_ZERO = tuple(f"dw_rpr_conv.{i}.bn1.bias" for i in range(3)) + (
    "dw_rpr_scale.bn1.bias",
    "shortcut.1.bias",
)


@pytest.fixture(autouse=True)
def _seeded_init():
    ghostnp.manual_seed(2024)


def rel(a, b) -> float:
    """max|a - b| / max|b|: the relative error used for the folding equalities."""
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


def deploy_twin(twin):
    """Fold every re-parameterizable member of a twin (torch's own folding)."""
    for m in list(twin.modules()):
        if hasattr(m, "switch_to_deploy"):
            m.switch_to_deploy()
    return twin


# ----------------------------------------------------------------------------------
# Counts, keys, structure
# ----------------------------------------------------------------------------------

COUNTS = [
    # builder, params (train form), params (deploy form)
    (ghostnetv3_050, 3_395_384, 2_853_176),
    (ghostnetv3_100, 8_129_028, 6_147_588),
    (ghostnetv3_130, 12_217_720, 8_948_296),
    (ghostnetv3_160, 17_275_700, 12_377_778),
]


@pytest.mark.parametrize("builder, train_params, deploy_params", COUNTS)
def test_parameter_and_key_counts(builder, train_params, deploy_params):
    model = builder()
    assert model.num_parameters() == train_params
    assert len(model.state_dict()) == 1956
    model.eval().reparameterize()
    assert model.num_parameters() == deploy_params
    sd = model.state_dict()
    assert len(sd) == 492
    print(f"\n{builder.__name__}: {train_params:,} -> {deploy_params:,} parameters")


def test_ghostnetv3_100_structure_and_deploy_keys():
    model = ghostnetv3_100()
    blocks = [b for stage in list(model.blocks)[:9] for b in stage]
    assert all(isinstance(b, GhostBottleneckV3) for b in blocks) and len(blocks) == 16
    assert [b.mode for b in blocks] == ["original"] * 2 + ["shortcut"] * 14
    assert all(b.ghost2.mode == "original" and b.ghost2.short_conv is None for b in blocks)
    assert all((b.ghost1.short_conv is not None) == (i > 1) for i, b in enumerate(blocks))
    sd = model.state_dict()
    for key, shape in [
        ("blocks.0.0.ghost1.primary_rpr_conv.2.conv.weight", (8, 16, 1, 1)),
        ("blocks.0.0.ghost1.cheap_rpr_skip.running_var", (8,)),
        ("blocks.0.0.ghost1.cheap_rpr_conv.0.conv.weight", (8, 1, 3, 3)),
        ("blocks.0.0.ghost1.cheap_rpr_scale.conv.weight", (8, 1, 1, 1)),
        ("blocks.1.0.dw_rpr_conv.2.bn1.weight", (48,)),
        ("blocks.1.0.dw_rpr_scale.conv.weight", (48, 1, 1, 1)),
        ("blocks.3.0.dw_rpr_conv.0.conv.weight", (72, 1, 5, 5)),
        ("blocks.3.0.ghost1.short_conv.4.weight", (72, 1, 5, 1)),
    ]:
        assert sd[key].shape == shape, key
    assert not any(".primary_conv." in k or ".conv_dw" in k for k in sd)
    model.eval().reparameterize()
    sd = model.state_dict()
    for key, shape in [
        ("blocks.1.0.conv_dw.weight", (48, 1, 3, 3)),
        ("blocks.1.0.conv_dw.bias", (48,)),
        ("blocks.1.0.ghost1.primary_conv.0.weight", (24, 16, 1, 1)),
        ("blocks.1.0.ghost1.primary_conv.0.bias", (24,)),
        ("blocks.1.0.ghost1.cheap_operation.0.weight", (24, 1, 3, 3)),
        ("blocks.1.0.ghost1.cheap_operation.0.bias", (24,)),
        ("blocks.3.0.conv_dw.weight", (72, 1, 5, 5)),
        ("blocks.3.0.ghost1.short_conv.5.running_mean", (72,)),  # DFC keeps its BNs
    ]:
        assert sd[key].shape == shape, key
    assert not any("_rpr_" in k or "bn_dw" in k for k in sd)


@pytest.mark.parametrize("width", [0.5, 1.0])
def test_state_dict_layout_equals_the_torch_twin(width, torch):
    model = ghostnetv3(width)
    twin = tt.ghostnet_twin(width, version=3)
    for form in ("train", "deploy"):
        if form == "deploy":
            model.eval().reparameterize()
            twin.eval().convert_to_deploy()
        ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        theirs = {k: tuple(v.shape) for k, v in twin.state_dict().items()}
        assert ours == theirs, (form, sorted(set(ours) ^ set(theirs))[:6])
        names = [n for n, _ in model.named_parameters()]
        assert names == [n for n, _ in twin.named_parameters()], form
        assert model.num_parameters() == sum(p.numel() for p in twin.parameters())


def test_registry_builds_v3():
    m = create_model("ghostnetv3_050", num_classes=7)
    assert isinstance(m, GhostNet) and m.version == 3 and m.classifier.out_features == 7


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: GhostModuleV3(4, 8, ratio=3), "ratio must be 2"),
        (lambda: GhostModuleV3(4, 8, dw_size=4), "dw_size must be an odd"),
        (lambda: GhostModuleV3(4, 8, mode="attn"), "mode must be one of"),
        (lambda: GhostBottleneckV3(4, 8, 4, 4, 2), "dw_kernel_size must be an odd"),
        (lambda: GhostBottleneckV3(4, 8, 4, mode="v2"), "mode must be one of"),
        (lambda: GhostNet(0.5, version=4), "version must be 1, 2 or 3"),
    ],
)
def test_bad_configuration_is_a_clear_error(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# ----------------------------------------------------------------------------------
# Float64 gradient checks (random upstream gradient), train, eval and deploy form
# ----------------------------------------------------------------------------------

MODULE_CASES = [
    # inp, oup, kernel, stride, relu, mode, (H, W)
    pytest.param(4, 8, 1, 1, True, "original", (5, 6), id="relu"),
    pytest.param(4, 8, 1, 1, False, "original", (5, 6), id="no-relu"),
    pytest.param(5, 7, 1, 1, True, "original", (4, 5), id="odd-oup-sliced"),
    pytest.param(4, 6, 1, 1, True, "shortcut", (7, 5), id="dfc-gate"),
    pytest.param(3, 6, 3, 2, True, "shortcut", (8, 7), id="3x3-stride2-gate"),
]


@pytest.mark.parametrize("inp, oup, k, stride, relu, mode, hw", MODULE_CASES)
def test_ghost_module_v3_gradcheck(inp, oup, k, stride, relu, mode, hw, rng):
    m = f64(GhostModuleV3(inp, oup, k, 2, 3, stride, relu, mode), rng)
    x = rng.standard_normal((2, inp, *hw))
    y = m(x)
    assert y.shape == (2, oup, -(-hw[0] // stride), -(-hw[1] // stride))
    run_check(m, x)


@pytest.mark.parametrize("mode", ["original", "shortcut"])
def test_ghost_module_v3_eval_and_deploy_gradcheck(mode, rng):
    m = f64(GhostModuleV3(4, 6, mode=mode), rng)
    calibrate_bn(m, rng.standard_normal((4, 4, 7, 5)))
    x = rng.standard_normal((2, 4, 7, 5))
    run_check(m, x, zero_allowed=())
    m.reparameterize()
    assert m.deployed and m.primary_conv[0].bias is not None
    run_check(m, x, zero_allowed=())  # the deploy form: plain convs with biases


BOTTLENECK_CASES = [
    # in, mid, out, k, stride, se, mode, (H, W)
    pytest.param(4, 8, 4, 3, 1, 0.0, "original", (5, 4), id="identity"),
    # over 10 s each (pytest --durations): marked slow
    pytest.param(4, 8, 6, 3, 2, 0.0, "original", (6, 5), id="stride2", marks=pytest.mark.slow),
    pytest.param(
        4, 8, 6, 5, 2, 0.25, "shortcut", (7, 5), id="stride2-k5-se-gate", marks=pytest.mark.slow
    ),
    pytest.param(
        4, 12, 6, 3, 1, 0.25, "shortcut", (6, 6), id="stride1-widen-se-gate", marks=pytest.mark.slow
    ),
]


@pytest.mark.parametrize("cin, mid, cout, k, stride, se, mode, hw", BOTTLENECK_CASES)
def test_bottleneck_v3_gradcheck(cin, mid, cout, k, stride, se, mode, hw, rng):
    m = f64(GhostBottleneckV3(cin, mid, cout, k, stride, se, mode), rng)
    assert (m.dw_rpr_conv is not None) == (stride > 1)
    assert m.conv_dw is None and m.bn_dw is None
    x = rng.standard_normal((2, cin, *hw))
    assert m(x).shape == (2, cout, -(-hw[0] // stride), -(-hw[1] // stride))
    run_check(m, x, zero_allowed=DW_ZERO)


@pytest.mark.slow
def test_bottleneck_v3_eval_and_deploy_gradcheck(rng):
    m = f64(GhostBottleneckV3(4, 8, 6, 3, 2, 0.25, "shortcut"), rng)
    calibrate_bn(m, rng.standard_normal((4, 4, 7, 5)))
    x = rng.standard_normal((2, 4, 7, 5))
    run_check(m, x, zero_allowed=())
    m.reparameterize()
    assert m.conv_dw.bias is not None and m.bn_dw is None and m.dw_rpr_conv is None
    assert m.ghost1.deployed and m.ghost2.deployed  # the block folds its modules too
    run_check(m, x, zero_allowed=())


def test_every_branch_gets_the_gradient_of_the_sum(rng):
    """x fans out to the branches: each branch's BN bias gets the same gradient, the sum
    of the upstream gradient of the sum, and dx is the sum of the branches' dx."""
    m = f64(GhostModuleV3(4, 8, relu=False), rng)
    x = rng.standard_normal((2, 4, 5, 5))
    y = m(x)
    g = rng.standard_normal(y.shape)
    m.zero_grad()
    dx = m.backward(g)
    k = m.init_channels
    # relu=False: the primary sum's gradient is the direct part of g plus what comes back
    # through the cheap branches; every primary BN bias sees all of it
    biases = [b.bn1.bias.grad for b in m.primary_rpr_conv]
    assert all(np.array_equal(biases[0], b) for b in biases[1:])
    # the cheap branches: their BN biases get the sum over (N, H, W) of the ghost half of g
    ghost_sum = g[:, k:].sum(axis=(0, 2, 3))
    for branch in [*m.cheap_rpr_conv, m.cheap_rpr_scale]:
        np.testing.assert_allclose(branch.bn1.bias.grad, ghost_sum, rtol=1e-13)
    np.testing.assert_allclose(m.cheap_rpr_skip.bias.grad, ghost_sum, rtol=1e-13)
    # a backward that forgot all branches but the first is wrong (and gradcheck sees it)
    m(x)
    path = m._primary_path()
    only_first = BranchSum(path.branches[:1], path.act)
    m(x)
    dx1 = g[:, :k] + m._cheap_path().backward(g[:, k:])
    assert rel_error(path.backward(dx1), dx) < 1e-13
    m(x)
    dx1 = g[:, :k] + m._cheap_path().backward(g[:, k:])
    assert rel_error(only_first.backward(dx1), dx) > 0.1


@pytest.mark.slow
def test_tiny_ghostnet_v3_gradcheck_end_to_end_eval(rng):
    """Eval mode (BN calibrated on a batch), one 33x33 image: 64 entries of dx, one entry
    of every branch tensor of two blocks and of 64 other random parameter tensors (see
    test_ghost.check_selected for the method)."""
    ghostnp.manual_seed(1)
    model = f64(GhostNet(0.1, 5, 0.0, version=3), rng)
    calibrate_bn(model, rng.standard_normal((4, 3, 33, 33)))
    x = rng.standard_normal((1, 3, 33, 33))
    names = [n for n, _ in model.named_parameters()]
    branch = [n for n in names if n.startswith(("blocks.1.0.", "blocks.3.0.")) and "_rpr_" in n]
    worst, zero, small, kinks = check_net_entries(model, x, branch, rng)
    print(f"\nGhostNet V3 0.1x eval: worst relative error {worst:.2e}; kinks {kinks}")
    assert zero == []


# ----------------------------------------------------------------------------------
# PyTorch twins, float64: train form, eval form, deploy form
# ----------------------------------------------------------------------------------

BLOCKS = {
    # id: (ghostnp builder, twin name, twin args, input shape)
    "module-relu": (lambda: GhostModuleV3(6, 8), "GhostModuleV3", (6, 8), (2, 6, 5, 7)),
    "module-norelu-odd": (
        lambda: GhostModuleV3(5, 7, relu=False),
        "GhostModuleV3",
        (5, 7, 1, 2, 3, 1, False),
        (2, 5, 6, 5),
    ),
    "module-gate-3x3-stride2": (
        lambda: GhostModuleV3(4, 6, 3, 2, 3, 2, True, "shortcut"),
        "GhostModuleV3",
        (4, 6, 3, 2, 3, 2, True, "shortcut"),
        (2, 4, 9, 7),
    ),
    "bottleneck-identity": (
        lambda: GhostBottleneckV3(8, 16, 8, 3, 1, 0.0),
        "GhostBottleneckV3",
        (8, 16, 8, 3, 1, 0.0),
        (2, 8, 6, 5),
    ),
    "bottleneck-stride2-se-gate": (
        lambda: GhostBottleneckV3(8, 24, 12, 5, 2, 0.25, "shortcut"),
        "GhostBottleneckV3",
        (8, 24, 12, 5, 2, 0.25, "shortcut"),
        (2, 8, 9, 7),
    ),
    "bottleneck-widen-gate": (
        lambda: GhostBottleneckV3(8, 16, 12, 3, 1, 0.0, "shortcut"),
        "GhostBottleneckV3",
        (8, 16, 12, 3, 1, 0.0, "shortcut"),
        (2, 8, 7, 5),
    ),
}


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("kind", list(BLOCKS))
def test_block_matches_torch(kind, train, torch, backend, rng):
    build, name, args, shape = BLOCKS[kind]
    ours, twin = paired(torch, build(), tt.build(name, *args, dtype=torch.float64), rng)
    compare(torch, ours, twin, rng.standard_normal(shape), rng, f"v3-{kind}", train)
    if train:  # a second step: running statistics keep agreeing
        compare(torch, ours, twin, rng.standard_normal(shape), rng, f"v3-{kind}", train)


@pytest.mark.parametrize("kind", list(BLOCKS))
def test_block_deploy_form_matches_torch(kind, torch, rng):
    """Both folded independently (ghostnp's fold_branches, torch's fuse_conv_bn_eval + pad):
    the same deploy weights, then the same outputs and gradients in eval and train mode."""
    build, name, args, shape = BLOCKS[kind]
    ours, twin = paired(torch, build(), tt.build(name, *args, dtype=torch.float64), rng)
    compare(torch, ours, twin, rng.standard_normal(shape), rng, f"v3-{kind}", True)  # stats
    ours.eval().reparameterize()
    deploy_twin(twin.eval())
    tsd = twin.state_dict()
    sd = ours.state_dict()
    assert list(sd) == list(tsd)
    for k, v in sd.items():
        assert_close(v, tsd[k].numpy(), f"deploy {k}", rtol=1e-12, kind=f"v3-deploy-weights-{kind}")
    for train in (False, True):
        x = rng.standard_normal(shape)
        compare(torch, ours, twin, x, rng, f"v3-deploy-{kind}", train)


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_tiny_ghostnet_v3_matches_torch(train, torch, backend, rng):
    ghostnp.manual_seed(0)
    ours = GhostNet(0.25, 10, 0.0, version=3)
    twin = tt.ghostnet_twin(0.25, 10, 0.0, version=3, dtype=torch.float64)
    paired(torch, ours, twin, rng)
    y = compare(torch, ours, twin, rng.standard_normal((2, 3, 48, 40)), rng, "ghostnet-v3", train)
    assert y.shape == (2, 10)


def test_torch_written_state_dicts_load_strictly(torch, rng):
    """A checkpoint made by the twin (torch's init, running statistics, batch counters)
    loads with strict=True, in train form and, after the twin's own folding, in deploy
    form; both give the twin's outputs, and the deploy form's backward is the twin's."""
    torch.manual_seed(0)
    twin = tt.scramble_buffers(tt.ghostnet_twin(0.25, 10, 0.0, version=3).double())
    sd = {k: v.numpy() for k, v in twin.state_dict().items()}
    ours = ghostnetv3(0.25, 10, 0.0).astype(np.float64).load_state_dict(sd, strict=True)
    assert ours.state_dict()["blocks.1.0.dw_rpr_scale.bn1.num_batches_tracked"] == 7
    x = rng.standard_normal((2, 3, 48, 40))
    twin.eval()
    ours.eval()
    with torch.no_grad():
        y_train_form = twin(torch.from_numpy(x)).numpy()
    assert_close(ours(x), y_train_form, "train-form eval output", rtol=RTOL, kind="v3 from torch")

    twin.convert_to_deploy()
    deploy_sd = {k: v.numpy() for k, v in twin.state_dict().items()}
    assert len(deploy_sd) < len(sd)
    fresh = ghostnetv3(0.25, 10, 0.0).astype(np.float64).eval().reparameterize()
    fresh.load_state_dict(deploy_sd, strict=True)
    with pytest.raises(ValueError, match="unexpected key"):
        fresh.load_state_dict(sd, strict=True)  # a train-form dict does not fit
    compare(torch, fresh, twin, x, rng, "v3 deploy from torch", train=False)
    assert rel(fresh(x), y_train_form) < FOLD_RTOL64


# ----------------------------------------------------------------------------------
# reparameterize(): eval outputs unchanged, errors, idempotence
# ----------------------------------------------------------------------------------


def calibrated(width, dtype, rng, size=64, batch=4):
    """A V3 net with BN statistics from a batch (realistic eval-mode scales), in eval mode."""
    ghostnp.manual_seed(7)
    model = ghostnetv3(width, num_classes=100).astype(dtype)
    return calibrate_bn(model, rng.standard_normal((batch, 3, size, size)).astype(dtype))


@pytest.mark.parametrize("width", [0.5, 1.0, 1.3, 1.6])
def test_reparameterize_keeps_eval_outputs_float64(width, rng):
    model = calibrated(width, np.float64, rng)
    x = rng.standard_normal((2, 3, 64, 64))
    before = model(x)
    assert model.reparameterize() is model
    assert not any(
        isinstance(m, nn.BatchNorm2d) and ("_rpr_" in p or p.endswith("bn_dw"))
        for p, m in model.named_modules()
    )
    after = model(x)
    err = rel(after, before)
    print(f"\nghostnetv3 {width}x float64: deploy vs train-form eval {err:.2e}")
    assert err < FOLD_RTOL64
    assert np.abs(before).max() > 0.1  # not a vacuous comparison of near-zero logits


@pytest.mark.parametrize("width", [0.5, pytest.param(1.0, marks=pytest.mark.slow)])  # 10-15 s
def test_reparameterize_keeps_eval_outputs_float32(width, rng):
    """In float32 the two forms differ by the rounding of each: both lie ~1e-6 from the
    float64 result of the same weights (printed). Calibrated on 8 images at 128x128: with
    4 images at 64x64 the last stages' BN statistics rest on 16 values per channel, and
    the float32 train form alone already lies ~4e-6 from the float64 result."""
    model = calibrated(width, np.float32, rng, size=128, batch=8)
    x = rng.standard_normal((2, 3, 128, 128))
    exact = ghostnetv3(width, num_classes=100).astype(np.float64)
    exact = exact.load_state_dict(model.state_dict()).eval()(x)
    before = model(x.astype(np.float32))
    model.convert_to_deploy()  # the alias
    after = model(x.astype(np.float32))
    assert after.dtype == np.float32 and model.conv_stem.weight.dtype == np.float32
    err = rel(after, before)
    print(
        f"\nghostnetv3 {width}x float32: deploy vs train-form eval {err:.2e} "
        f"(vs float64: train form {rel(before, exact):.2e}, deploy form {rel(after, exact):.2e})"
    )
    assert err < FOLD_RTOL32


def test_reparameterize_in_train_mode_is_an_error_that_says_why():
    model = ghostnetv3_050()
    sd = model.state_dict()
    with pytest.raises(LayerStateError) as info:
        model.reparameterize()
    msg = str(info.value)
    assert "eval" in msg and "running" in msg and "batch" in msg, msg
    assert model.state_dict().keys() == sd.keys()  # nothing was folded
    block = GhostBottleneckV3(4, 8, 6, 3, 2)
    block.eval()
    block.ghost1.cheap_rpr_skip.train()
    with pytest.raises(LayerStateError, match="ghost1.cheap_rpr_skip"):
        block.reparameterize()


def test_reparameterize_twice_and_on_v1_v2_changes_nothing(rng):
    model = calibrated(0.25, np.float64, rng)
    model.reparameterize()
    sd = model.state_dict()
    model.reparameterize()
    after = model.state_dict()
    assert list(sd) == list(after) and all(np.array_equal(sd[k], after[k]) for k in sd)
    v2 = ghostnetv2(0.25).eval()
    sd = v2.state_dict()
    assert v2.reparameterize() is v2 and list(v2.state_dict()) == list(sd)


def test_deploy_form_trains_as_plain_convs(rng):
    """After folding, back in train mode, the model still runs forward and backward."""
    model = calibrated(0.25, np.float64, rng).reparameterize().train()
    x = rng.standard_normal((2, 3, 64, 64))
    y = model(x)
    model.zero_grad()
    dx = model.backward(rng.standard_normal(y.shape))
    assert dx.shape == x.shape
    assert all(p.grad is not None for p in model.parameters())
    assert model.blocks[1][0].conv_dw.bias.grad is not None


# ----------------------------------------------------------------------------------
# The folding pieces
# ----------------------------------------------------------------------------------


def test_pad_kernel_and_identity_kernel_by_hand():
    w = np.arange(6.0).reshape(3, 2, 1, 1)
    p = pad_kernel(w, (3, 3))
    assert p.shape == (3, 2, 3, 3) and p.sum() == w.sum()
    assert np.array_equal(p[:, :, 1, 1], w[:, :, 0, 0])
    with pytest.raises(ValueError, match="cannot centre"):
        pad_kernel(np.ones((1, 1, 2, 2)), (3, 3))
    ident = identity_kernel(2, (3, 3))
    assert ident.shape == (2, 1, 3, 3)
    assert ident[:, 0, 1, 1].tolist() == [1.0, 1.0] and ident.sum() == 2.0
    # the identity kernel is the identity: a depthwise conv with it returns x
    conv = nn.Conv2d(2, 2, 3, 1, 1, groups=2, bias=False).astype(np.float64)
    conv.weight.data = ident
    x = np.random.default_rng(0).standard_normal((1, 2, 4, 5))
    assert np.array_equal(conv(x), x)


def test_fold_branches_with_a_scale_and_a_skip_branch(rng):
    """Three 3x3 depthwise conv-BN branches, a 1x1 one and a BN-only one, summed, equal one
    3x3 conv with bias, at stride 1; and without the skip at stride 2."""
    for stride, skip in ((1, True), (2, False)):
        branches = [nn.ConvBnAct(5, 5, 3, stride, groups=5, act=False) for _ in range(3)]
        branches.append(nn.ConvBnAct(5, 5, 1, stride, groups=5, act=False))
        bn = nn.BatchNorm2d(5) if skip else None
        parts = nn.Sequential(*branches, *([bn] if skip else []))
        f64(parts, rng).eval()
        x = rng.standard_normal((2, 5, 7, 6))
        want = sum(b(x) for b in branches) + (bn(x) if skip else 0.0)
        folded = fold_branches(branches, bn)
        assert folded.kernel_size == (3, 3) and folded.stride == (stride, stride)
        assert rel(folded(x), want) < 1e-13


@settings(max_examples=40, deadline=None)
@given(
    k=st.sampled_from([1, 3, 5, 7]),
    stride=st.integers(1, 3),
    channels=st.integers(1, 5),
    multiplier=st.integers(1, 2),
    n_conv=st.integers(1, 3),
    hw=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    seed=st.integers(0, 2**16),
)
def test_fold_branches_property(k, stride, channels, multiplier, n_conv, hw, seed):
    """Any number of k x k depthwise conv-BN branches, a 1x1 one at the same stride, and
    (depthwise, stride 1) a BN-only one: in eval mode their sum is the folded conv, on
    inputs down to 1x1, odd sizes and strides that leave a remainder."""
    rng = np.random.default_rng(seed)
    out = channels * multiplier
    groups = channels
    branches = [
        nn.ConvBnAct(channels, out, k, stride, groups=groups, act=False) for _ in range(n_conv)
    ]
    branches.append(nn.ConvBnAct(channels, out, 1, stride, groups=groups, act=False))
    skip = nn.BatchNorm2d(out) if (multiplier == 1 and stride == 1) else None
    parts = nn.Sequential(*branches, *([skip] if skip is not None else []))
    f64(parts, rng).eval()
    for b in branches:  # random kernels of a visible size
        b.conv.weight.data = rng.standard_normal(b.conv.weight.shape)
    x = rng.standard_normal((2, channels, *hw))
    want = sum(b(x) for b in branches) + (skip(x) if skip is not None else 0.0)
    folded = fold_branches(branches, skip)
    assert folded.kernel_size == (k, k) and folded.bias is not None
    assert rel(folded(x), want) < 1e-12


def test_fold_branches_rejects_branches_that_do_not_line_up(rng):
    a = nn.ConvBnAct(4, 4, 3, 1, groups=4, act=False)
    b = nn.ConvBnAct(4, 4, 3, 2, groups=4, act=False)  # another stride
    nn.Sequential(a, b).eval()
    with pytest.raises(ValueError, match="does not line up"):
        fold_branches([a, b])


# ----------------------------------------------------------------------------------
# Profiling the two forms
# ----------------------------------------------------------------------------------


def test_profile_counts_train_and_deploy_forms():
    """Deploy form = GhostNetV2's structure with biases instead of BNs, so its paper MACs
    and full ops equal V2's. The train form adds, per Ghost module, two more primary
    convs, two more d x d cheap convs and a 1x1 one (1/9 of a 3x3), and per stride-2 block
    two more k x k depthwise convs and a 1x1 one; those are read off V2's rows."""
    from ghostnp.profile import summary

    v2 = {conv: summary(ghostnetv2(1.0), (3, 224, 224), conv) for conv in ("paper", "full")}
    macs = {r.name: r.macs for r in v2["paper"].rows}
    extra = 0
    for name, m in macs.items():
        if name.endswith(".primary_conv.0"):
            extra += 2 * m
        elif name.endswith(".cheap_operation.0"):
            extra += 2 * m + m // 9
        elif name.endswith(".conv_dw"):
            k = 5 if name.startswith(("blocks.3.", "blocks.7.")) else 3
            extra += 2 * m + m // (k * k)
    model = ghostnetv3_100()
    train = summary(model, (3, 224, 224))
    assert train.total_params == 8_129_028
    assert train.total_macs == v2["paper"].total_macs + extra
    rows = summary(model, (3, 224, 224), "full").rows  # "paper" lists no inline ops
    adds = sum(r.type == "add" for r in rows)
    # per Ghost module 2 + 4 branch adds (32 modules), 3 per stride-2 block (4), 16 residuals
    assert adds == 32 * 6 + 4 * 3 + 16
    assert sum(r.type == "concat" for r in rows) == 32
    assert sum(r.type == "mul" and "ghost1:" in r.name for r in rows) == 14
    names = [r.name for r in rows]
    cheap_adds = [i for i, n in enumerate(names) if n == "blocks.0.0.ghost1:add"][2:]
    assert names.index("blocks.0.0.ghost1.cheap_rpr_conv.2.bn1") < cheap_adds[0]
    assert cheap_adds[-1] < names.index("blocks.0.0.ghost1.cheap_activation")
    last_add = max(i for i, n in enumerate(names) if n == "blocks.0.0.ghost2:add")
    assert names.index("blocks.0.0.ghost2:concat") == last_add + 1  # no activation there
    model.eval().reparameterize()
    deploy = {conv: summary(model, (3, 224, 224), conv) for conv in ("paper", "full")}
    for conv, s in deploy.items():
        assert s.total_params == 6_147_588
        assert s.total_macs == v2[conv].total_macs, conv
    print(
        f"\nghostnetv3_100 paper MACs: train {train.total_macs:,}, "
        f"deploy {deploy['paper'].total_macs:,}"
    )
