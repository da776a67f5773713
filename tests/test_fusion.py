"""Conv-BN fusion: ``fuse_conv_bn_weights`` / ``fuse_conv_bn_eval`` against PyTorch's
functions of the same names, and ``fuse_model`` on every model family: the fused model
computes the unfused model's eval outputs (float64 to 1e-12), has no BN left that follows
a conv, and still runs backward.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_ghost import calibrate_bn, f64

import ghostnp
from ghostnp import nn
from ghostnp.models import create_model, ghostnetv3
from ghostnp.nn.utils.fusion import (
    FusionModeError,
    fuse_conv_bn_eval,
    fuse_conv_bn_weights,
    fuse_model,
)

RTOL = 1e-12


def rel(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(b)))


def random_bn(bn, rng, affine=True):
    """Random running statistics (and affine parameters) in float64, eval mode."""
    c = bn.num_features
    bn.running_mean = rng.uniform(-1, 1, c)
    bn.running_var = rng.uniform(0.2, 3.0, c)
    if affine:
        bn.weight.data = rng.uniform(0.5, 1.5, c) * rng.choice([-1.0, 1.0], c)
        bn.bias.data = rng.uniform(-1, 1, c)
    return bn.eval()


CONV_CASES = [
    # in, out, kernel, stride, padding, dilation, groups, bias, bn affine
    pytest.param(3, 5, 3, 1, 1, 1, 1, False, True, id="3x3"),
    pytest.param(4, 6, (3, 1), 2, (1, 0), 1, 2, True, True, id="groups-bias-stride2"),
    pytest.param(6, 6, 5, 1, 4, 2, 6, False, True, id="depthwise-dilated"),
    pytest.param(4, 8, 1, 1, 0, 1, 4, True, False, id="multiplier2-no-affine"),
]


@pytest.mark.parametrize("cin, cout, k, s, p, d, g, bias, affine", CONV_CASES)
def test_fuse_conv_bn_eval_matches_torch(cin, cout, k, s, p, d, g, bias, affine, torch, rng):
    from torch.nn.utils import fusion as tf

    conv = nn.Conv2d(cin, cout, k, s, p, d, g, bias=bias).astype(np.float64).eval()
    bn = random_bn(nn.BatchNorm2d(cout, affine=affine).astype(np.float64), rng, affine)
    tconv = torch.nn.Conv2d(cin, cout, k, s, p, d, g, bias=bias).double().eval()
    tbn = torch.nn.BatchNorm2d(cout, affine=affine).double().eval()
    tconv.load_state_dict({k_: torch.from_numpy(v) for k_, v in conv.state_dict().items()})
    tbn.load_state_dict({k_: torch.from_numpy(np.array(v)) for k_, v in bn.state_dict().items()})
    conv_before = {k_: v.copy() for k_, v in conv.state_dict().items()}

    fused = fuse_conv_bn_eval(conv, bn)
    tfused = tf.fuse_conv_bn_eval(tconv, tbn)
    assert isinstance(fused, nn.Conv2d) and fused is not conv and not fused.training
    assert fused.bias is not None and fused.weight.dtype == np.float64
    assert (fused.stride, fused.padding, fused.dilation, fused.groups) == (
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
    )
    assert rel(fused.weight.data, tfused.weight.detach().numpy()) < RTOL
    assert rel(fused.bias.data, tfused.bias.detach().numpy()) < RTOL
    for k_, v in conv.state_dict().items():  # the inputs are not changed
        assert np.array_equal(v, conv_before[k_])
    # and it computes the pair's eval output
    x = rng.standard_normal((2, cin, 7, 6))
    assert rel(fused(x), bn(conv(x))) < RTOL


def test_fuse_conv_bn_weights_matches_torch_transpose_and_dtypes(torch, rng):
    from torch.nn.utils import fusion as tf

    w = rng.standard_normal((4, 6, 3, 3))  # a transposed conv's layout: (in, out/groups, ...)
    rm, rv = rng.standard_normal(6), rng.uniform(0.5, 2, 6)
    g, b = rng.standard_normal(6), rng.standard_normal(6)
    ours = fuse_conv_bn_weights(w, None, rm, rv, 1e-3, g, b, transpose=True)
    theirs = tf.fuse_conv_bn_weights(
        *(torch.from_numpy(a) for a in (w,)),
        None,
        *(torch.from_numpy(a) for a in (rm, rv)),
        1e-3,
        torch.from_numpy(g),
        torch.from_numpy(b),
        transpose=True,
    )
    for a, t in zip(ours, theirs, strict=True):
        assert rel(a, t.detach().numpy()) < RTOL
    w32 = w.astype(np.float32)
    fw, fb = fuse_conv_bn_weights(w32, None, rm, rv, 1e-5, None, None, transpose=True)
    assert fw.dtype == np.float32 and fb.dtype == np.float32
    with pytest.raises(ValueError, match="output channels"):
        fuse_conv_bn_weights(w, None, rm[:3], rv[:3], 1e-5, None, None)


def test_fusion_in_train_mode_raises_like_torch(torch):
    from torch.nn.utils import fusion as tf

    with pytest.raises(AssertionError, match="Fusion only for eval!"):
        tf.fuse_conv_bn_eval(torch.nn.Conv2d(2, 3, 1), torch.nn.BatchNorm2d(3))
    seq = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3))
    for conv_mode, bn_mode in ((True, False), (False, True)):
        seq[0].train(conv_mode)
        seq[1].train(bn_mode)
        with pytest.raises(AssertionError, match="Fusion only for eval!") as info:
            fuse_conv_bn_eval(seq[0], seq[1])
        assert isinstance(info.value, FusionModeError)
        assert str(info.value).startswith("1 (BatchNorm2d)" if bn_mode else "0 (Conv2d)")
        assert "running statistics" in str(info.value)
    with pytest.raises(TypeError, match="Conv2d and a BatchNorm2d"):
        fuse_conv_bn_eval(nn.BatchNorm2d(3).eval(), nn.BatchNorm2d(3).eval())
    with pytest.raises(ValueError, match="3 output channels"):
        fuse_conv_bn_eval(nn.Conv2d(2, 3, 1).eval(), nn.BatchNorm2d(4).eval())


# ----------------------------------------------------------------------------------
# fuse_model
# ----------------------------------------------------------------------------------

MODELS = {
    # name: (builder, input shape, BNs left after fusion: those not fed by a conv)
    "ghostnet_v1": (lambda: create_model("ghostnet_050", num_classes=10), (2, 3, 64, 48), 0),
    "ghostnet_v2": (lambda: create_model("ghostnetv2_100", num_classes=10), (2, 3, 64, 48), 0),
    "ghostnet_v3": (lambda: ghostnetv3(0.25, num_classes=10), (2, 3, 64, 48), 0),
    "resnet56": (lambda: create_model("resnet56"), (2, 3, 32, 32), 0),
    "vgg16": (lambda: create_model("vgg16"), (2, 3, 32, 32), 0),
    # a Ghost module replaces the conv before each BN of the blocks: those 54 stay
    "ghost_resnet56": (lambda: create_model("ghost_resnet56"), (2, 3, 32, 32), 54),
}


SLOW_MODELS = {"ghostnet_v3", "ghost_resnet56"}  # 10-18 s each (pytest --durations)


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_MODELS else n for n in MODELS]
)
def test_fuse_model_keeps_eval_outputs(name, rng):
    build, shape, bns_left = MODELS[name]
    ghostnp.manual_seed(3)
    model = f64(build(), rng)
    calibrate_bn(model, rng.standard_normal((4, *shape[1:])))
    x = rng.standard_normal(shape)
    before = model(x)
    sd = model.state_dict()
    fused = fuse_model(model)
    assert fused is not model and all(
        np.array_equal(v, model.state_dict()[k]) for k, v in sd.items()
    )
    left = [p for p, m in fused.named_modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(left) == bns_left, left[:5]
    assert rel(fused(x), before) < RTOL
    assert not any(m.training for m in fused.modules())
    # fewer parameters: each folded BN's weight and bias become one conv bias
    assert fused.num_parameters() < model.num_parameters()
    # a working backward: plain convs
    y = fused(x)
    fused.zero_grad()
    dx = fused.backward(rng.standard_normal(y.shape))
    assert dx.shape == x.shape and all(p.grad is not None for p in fused.parameters())


def test_fuse_model_needs_eval_mode_and_can_work_in_place(rng):
    model = create_model("ghostnet_050", num_classes=10)
    with pytest.raises(FusionModeError, match="eval mode"):
        fuse_model(model)
    model.eval()
    same = fuse_model(model, inplace=True)
    assert same is model
    assert model.blocks[1][0].bn_dw.__class__ is nn.Identity
    assert "blocks.1.0.conv_dw.bias" in model.state_dict()
    assert not any(k.startswith("bn1.") for k in model.state_dict())
