"""ghostnp.nn layers: PyTorch as oracle, torch's initialisation, gradient checks, bad input.

Every layer is run next to its ``torch.nn`` namesake in float64, in train and eval mode,
with the weights copied through state dicts in both directions; outputs, input
gradients, parameter gradients and buffers must agree to 1e-10 relative.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import assert_close

import ghostnp
from ghostnp import nn
from ghostnp.gradcheck import check_module, numerical_gradient
from ghostnp.kernels import use_backend

GRADCHECK_TOL = 1e-7


# ----------------------------------------------------------------------------------
# Driving a ghostnp layer and its torch twin side by side
# ----------------------------------------------------------------------------------


def random_state(sd, rng):
    """A state dict like ``sd`` with random contents (positive variances, a few batches seen)."""
    out = {}
    for k, v in sd.items():
        if k.endswith("num_batches_tracked"):
            out[k] = np.array(3, dtype=np.int64)  # so momentum=None averages over 1/4
        elif k.endswith("running_var"):
            out[k] = rng.uniform(0.5, 2.0, v.shape)
        else:
            out[k] = rng.uniform(-1.0, 1.0, v.shape)
    return out


def copy_weights(torch, ours, theirs, direction, rng):
    """Give both layers one random state, copied ours -> torch or torch -> ours."""
    assert list(ours.state_dict()) == list(theirs.state_dict())
    sd = random_state(ours.state_dict(), rng)
    if direction == "ours_to_torch":
        ours.load_state_dict(sd, strict=True)
        theirs.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    else:
        theirs.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()})
        ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()}, strict=True)
    for k, v in ours.state_dict().items():
        assert_close(v, theirs.state_dict()[k].numpy(), f"copied {k}")


def torch_step(torch, theirs, x, g):
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    yt = theirs(xt)
    yt.backward(torch.from_numpy(g.copy()))
    return yt.detach().numpy(), xt.grad.numpy()


def compare_state(ours, theirs, when):
    """Every parameter gradient and every state-dict entry (BN buffers included)."""
    t_params = dict(theirs.named_parameters())
    assert [k for k, _ in ours.named_parameters()] == list(t_params)
    for k, p in ours.named_parameters():
        assert p.grad is not None, f"{when}: {k}.grad is None"
        assert p.grad.dtype == np.float64
        assert_close(p.grad, t_params[k].grad.numpy(), f"{when}: grad of {k}")
    t_sd = theirs.state_dict()
    o_sd = ours.state_dict()
    assert list(o_sd) == list(t_sd)
    for k, v in o_sd.items():
        if k.endswith("num_batches_tracked"):
            assert v.dtype == np.int64 and int(v) == int(t_sd[k]), f"{when}: {k}"
        else:
            assert_close(v, t_sd[k].numpy(), f"{when}: {k}")


def run_pair(torch, ours, theirs, x_shape, mode, direction, rng, make_x=None, steps=2):
    """Two forward/backward steps on both layers (gradients accumulate in both)."""
    ours.astype(np.float64)
    theirs.double()
    copy_weights(torch, ours, theirs, direction, rng)
    ours.train(mode == "train")
    theirs.train(mode == "train")
    make_x = make_x or (lambda: rng.standard_normal(x_shape) * 2.0)
    for step in range(steps):
        x = make_x()
        x_before = x.copy()
        y = ours(x)
        assert np.array_equal(x, x_before), "forward changed its input"
        g = rng.standard_normal(y.shape)
        dx = ours.backward(g)
        y_t, dx_t = torch_step(torch, theirs, x, g)
        when = f"{mode}, step {step}"
        assert y.dtype == np.float64 and dx.dtype == np.float64
        assert_close(y, y_t, f"{when}: output")
        assert_close(dx, dx_t, f"{when}: dx")
        compare_state(ours, theirs, when)


MODES = ["train", "eval"]
DIRECTIONS = ["ours_to_torch", "torch_to_ours"]

# (id, class name, args, kwargs, input shape); the same arguments build both layers.
LAYER_CASES = [
    ("bn", "BatchNorm2d", (3,), {}, (4, 3, 5, 6)),
    ("bn-momentum-none", "BatchNorm2d", (3,), {"momentum": None}, (4, 3, 5, 6)),
    ("bn-eps-momentum", "BatchNorm2d", (3,), {"eps": 1e-3, "momentum": 0.3}, (2, 3, 4, 4)),
    ("bn-no-affine", "BatchNorm2d", (3,), {"affine": False}, (4, 3, 5, 6)),
    ("bn-no-stats", "BatchNorm2d", (3,), {"track_running_stats": False}, (4, 3, 5, 6)),
    ("bn-batch1", "BatchNorm2d", (2,), {}, (1, 2, 3, 3)),
    ("linear", "Linear", (6, 4), {}, (5, 6)),
    ("linear-no-bias", "Linear", (6, 4), {"bias": False}, (5, 6)),
    ("relu", "ReLU", (), {}, (2, 3, 4, 5)),
    ("relu6", "ReLU6", (), {}, (2, 3, 4, 5)),
    ("hardswish", "Hardswish", (), {}, (2, 3, 4, 5)),
    ("sigmoid", "Sigmoid", (), {}, (2, 3, 4, 5)),
    ("maxpool-2", "MaxPool2d", (2,), {}, (2, 3, 7, 6)),
    ("maxpool-3s2p1", "MaxPool2d", (3,), {"stride": 2, "padding": 1}, (2, 3, 7, 6)),
    (
        "maxpool-nonsquare-dilated",
        "MaxPool2d",
        ((3, 2),),
        {"stride": (2, 1), "padding": (1, 0), "dilation": (1, 2)},
        (2, 2, 9, 8),
    ),
    ("avgpool-2", "AvgPool2d", (2,), {}, (2, 3, 7, 6)),
    ("avgpool-3s2p1", "AvgPool2d", (3,), {"stride": 2, "padding": 1}, (2, 3, 7, 6)),
    (
        "avgpool-exclude-pad",
        "AvgPool2d",
        (3,),
        {"stride": 2, "padding": 1, "count_include_pad": False},
        (2, 3, 7, 6),
    ),
    ("avgpool-nonsquare", "AvgPool2d", ((3, 2),), {"stride": (1, 2)}, (2, 2, 6, 7)),
    ("adaptive-1", "AdaptiveAvgPool2d", (1,), {}, (2, 3, 5, 4)),
    ("adaptive-3x2", "AdaptiveAvgPool2d", ((3, 2),), {}, (2, 3, 7, 5)),
    ("adaptive-up", "AdaptiveAvgPool2d", (4,), {}, (2, 2, 3, 3)),
    ("upsample-x2", "Upsample", (), {"scale_factor": 2}, (2, 3, 3, 4)),
    ("upsample-x1.5", "Upsample", (), {"scale_factor": 1.5}, (2, 3, 3, 5)),
    ("upsample-size", "Upsample", (), {"size": (7, 5)}, (2, 3, 3, 4)),
    ("upsample-down", "Upsample", (), {"size": (2, 3)}, (2, 3, 5, 7)),
    ("flatten", "Flatten", (), {}, (2, 3, 4, 5)),
    ("flatten-1-2", "Flatten", (1, 2), {}, (2, 3, 4, 5)),
    ("identity", "Identity", (), {}, (2, 3, 4, 5)),
    ("dropout-p0", "Dropout", (0.0,), {}, (2, 3, 4, 5)),
]

CONV_CASES = [
    ("3x3", (3, 4, 3), {}),
    ("no-bias", (3, 4, 3), {"bias": False}),
    ("stride-2", (3, 4, 3), {"stride": 2}),
    ("padding", (3, 4, 3), {"padding": 1}),
    ("padding-pair", (3, 4, 3), {"padding": (2, 0)}),
    ("dilation", (3, 4, 3), {"dilation": 2, "padding": 1}),
    ("groups-2", (4, 6, 3), {"groups": 2, "padding": 1}),
    ("depthwise", (4, 4, 3), {"groups": 4, "padding": 1}),
    ("depthwise-no-bias-stride-2", (4, 4, 3), {"groups": 4, "stride": 2, "bias": False}),
    ("depthwise-mult-2", (3, 6, 3), {"groups": 3, "stride": 2, "padding": 1}),
    ("depthwise-nonsquare-dilated", (3, 6, (3, 1)), {"groups": 3, "dilation": (2, 1)}),
    ("nonsquare", (3, 5, (3, 2)), {"stride": (2, 1), "padding": (1, 0)}),
    ("1x1", (3, 5, 1), {}),
    ("1x1-stride-2", (3, 5, 1), {"stride": 2}),
    ("1x1-stride-2-padding", (3, 5, 1), {"stride": 2, "padding": 1, "bias": False}),
]


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
def test_layer_matches_torch(torch, case, mode, direction, rng):
    _, name, args, kwargs, x_shape = case
    ours = getattr(nn, name)(*args, **kwargs)
    theirs = getattr(torch.nn, name)(*args, **kwargs)
    run_pair(torch, ours, theirs, x_shape, mode, direction, rng)


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CONV_CASES, ids=[c[0] for c in CONV_CASES])
def test_conv2d_matches_torch(torch, backend, case, mode, direction, rng):
    _, args, kwargs = case
    ours = nn.Conv2d(*args, **kwargs)
    theirs = torch.nn.Conv2d(*args, **kwargs)
    assert ours.depthwise == (kwargs.get("groups", 1) == args[0] > 1)
    run_pair(torch, ours, theirs, (2, args[0], 7, 8), mode, direction, rng)


@pytest.mark.parametrize(
    "name, args, kwargs",
    [
        ("MaxPool2d", (3,), {"stride": 2, "padding": 1}),
        ("AvgPool2d", (3,), {"stride": 2, "padding": 1}),
        ("MaxPool2d", ((2, 3),), {"stride": 1, "dilation": 2}),
    ],
)
def test_pooling_matches_torch_on_both_backends(torch, backend, name, args, kwargs, rng):
    # pooling unfolds windows with the same im2col/col2im kernels as the convolution
    ours = getattr(nn, name)(*args, **kwargs)
    theirs = getattr(torch.nn, name)(*args, **kwargs)
    run_pair(torch, ours, theirs, (2, 3, 8, 9), "train", "ours_to_torch", rng)


@pytest.mark.parametrize("mode", MODES)
def test_hardsigmoid_matches_torch(torch, mode, rng):
    # torch's hardsigmoid backward multiplies by a float32 constant 1/6 even for float64
    # tensors, so its gradient is off by ~1e-8 relative; the exact float64 function
    # relu6(x + 3) / 6, differentiated by autograd, is the oracle instead. Its forward
    # is also checked against torch.nn.Hardsigmoid itself.
    ours = nn.Hardsigmoid().train(mode == "train")
    x = rng.uniform(-5.0, 5.0, (2, 3, 4, 5))
    g = rng.standard_normal(x.shape)
    y = ours(x)
    dx = ours.backward(g)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    yt = torch.nn.functional.relu6(xt + 3) / 6
    yt.backward(torch.from_numpy(g))
    assert_close(y, yt.detach().numpy(), "output")
    assert_close(dx, xt.grad.numpy(), "dx")
    assert_close(y, torch.nn.Hardsigmoid()(torch.from_numpy(x)).numpy(), "torch.nn.Hardsigmoid")


@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_cross_entropy_matches_torch(torch, label_smoothing, rng):
    ours = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    theirs = torch.nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    z = rng.standard_normal((6, 5)) * 3.0
    t = rng.integers(0, 5, 6)
    loss = ours(z, t)
    dz = ours.backward()
    assert isinstance(loss, float)
    zt = torch.from_numpy(z.copy()).requires_grad_(True)
    lt = theirs(zt, torch.from_numpy(t))
    lt.backward()
    assert_close(loss, lt.item(), "loss")
    assert_close(dz, zt.grad.numpy(), "dlogits")
    assert_close(ours.backward(0.5), 0.5 * zt.grad.numpy(), "dlogits scaled by dloss")


def test_dropout_matches_torch(torch, rng):
    p = 0.4
    ours = nn.Dropout(p)
    x = rng.standard_normal((4, 3, 5, 5))
    g = rng.standard_normal(x.shape)
    # eval: identity, like torch
    ours.eval()
    assert_close(ours(x), torch.nn.Dropout(p).eval()(torch.from_numpy(x)).numpy(), "eval")
    assert_close(ours.backward(g), g, "eval dx")
    # train: the masks come from different generators, so feed ours's mask to torch's
    # definition (x * mask / (1 - p)) and compare value and gradient
    ours.train()
    y = ours(x)
    dx = ours.backward(g)
    keep = y != 0
    assert 0.3 < 1 - keep.mean() < 0.5
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    yt = xt * torch.from_numpy(keep.astype(np.float64)) / (1 - p)
    yt.backward(torch.from_numpy(g))
    assert_close(y, yt.detach().numpy(), "train output")
    assert_close(dx, xt.grad.numpy(), "train dx")
    # p = 1 drops everything
    one = nn.Dropout(1.0)
    assert not one(x).any() and not one.backward(g).any()


def make_net(lib):
    return lib.Sequential(
        lib.Conv2d(3, 6, 3, padding=1),
        lib.BatchNorm2d(6),
        lib.ReLU(),
        lib.MaxPool2d(2),
        lib.Flatten(),
        lib.Linear(6 * 4 * 4, 5),
    )


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("mode", MODES)
def test_sequential_with_loss_matches_torch(torch, mode, direction, rng):
    ours = make_net(nn).astype(np.float64)
    theirs = make_net(torch.nn).double()
    copy_weights(torch, ours, theirs, direction, rng)
    ours.train(mode == "train")
    theirs.train(mode == "train")
    crit, crit_t = nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    for step in range(2):
        x = rng.standard_normal((4, 3, 8, 8))
        t = rng.integers(0, 5, 4)
        logits = ours(x)
        loss = crit(logits, t)
        dlogits = crit.backward()
        dx = ours.backward(dlogits)

        xt = torch.from_numpy(x.copy()).requires_grad_(True)
        logits_t = theirs(xt)
        logits_t.retain_grad()
        loss_t = crit_t(logits_t, torch.from_numpy(t))
        loss_t.backward()

        when = f"{mode}, step {step}"
        assert_close(logits, logits_t.detach().numpy(), f"{when}: logits")
        assert_close(loss, loss_t.item(), f"{when}: loss")
        assert_close(dlogits, logits_t.grad.numpy(), f"{when}: dlogits")
        assert_close(dx, xt.grad.numpy(), f"{when}: dx")
        compare_state(ours, theirs, when)


# ----------------------------------------------------------------------------------
# Initialisation: torch's defaults
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, args, kwargs, fan_in",
    [
        ("Conv2d", (64, 128, 3), {}, 64 * 9),
        ("Conv2d", (64, 96, (3, 1)), {"groups": 2}, 32 * 3),
        ("Conv2d", (256, 512, 5), {"groups": 256}, 25),  # depthwise, multiplier 2
        ("Linear", (300, 400), {}, 300),
    ],
)
def test_weight_init_matches_torch(torch, name, args, kwargs, fan_in):
    ghostnp.manual_seed(0)
    torch.manual_seed(0)
    ours = getattr(nn, name)(*args, **kwargs)
    theirs = getattr(torch.nn, name)(*args, **kwargs)
    bound = 1.0 / math.sqrt(fan_in)  # kaiming_uniform(a=sqrt(5)) and torch's bias rule
    w, w_t = ours.weight.data, theirs.weight.detach().numpy()
    assert w.shape == w_t.shape and w.dtype == np.float32
    # torch's own weights satisfy the same bound, so the bound is torch's
    assert np.abs(w_t).max() <= bound * (1 + 1e-6)
    assert np.abs(w).max() <= bound * (1 + 1e-6)
    assert np.abs(w).max() > 0.99 * bound
    # uniform(-b, b) has std b / sqrt(3); tens of thousands of samples pin it to ~1%
    assert abs(w.std() / (bound / math.sqrt(3)) - 1) < 0.03
    assert abs(w.std() / w_t.std() - 1) < 0.03
    assert abs(w.mean()) < 0.03 * bound
    b, b_t = ours.bias.data, theirs.bias.detach().numpy()
    assert b.shape == b_t.shape and b.dtype == np.float32
    assert np.abs(b).max() <= bound * (1 + 1e-6) and np.abs(b_t).max() <= bound * (1 + 1e-6)
    assert abs(b.std() / (bound / math.sqrt(3)) - 1) < 0.25  # only a few hundred samples


def test_bias_distribution_on_a_large_layer():
    ours = nn.Linear(100, 40000)
    bound = 0.1
    b = ours.bias.data
    assert np.abs(b).max() <= bound * (1 + 1e-6)
    assert abs(b.std() / (bound / math.sqrt(3)) - 1) < 0.03
    assert abs(b.mean()) < 0.02 * bound


def test_batchnorm_init_matches_torch(torch):
    ours = nn.BatchNorm2d(7)
    sd = ours.state_dict()
    sd_t = torch.nn.BatchNorm2d(7).state_dict()
    assert list(sd) == list(sd_t)
    for k, v in sd.items():
        assert np.array_equal(v, sd_t[k].numpy()), k
    assert np.array_equal(ours.weight.data, np.ones(7)) and ours.weight.dtype == np.float32
    assert np.array_equal(ours.bias.data, np.zeros(7)) and ours.bias.dtype == np.float32
    assert ours.running_mean.dtype == np.float32 and ours.running_var.dtype == np.float32
    assert ours.num_batches_tracked.dtype == np.int64 and ours.num_batches_tracked.shape == ()


def test_default_dtype_is_float32_and_dtype_argument():
    for m in (nn.Conv2d(2, 4, 3), nn.Conv2d(4, 4, 3, groups=4), nn.Linear(3, 2), nn.BatchNorm2d(3)):
        assert all(p.dtype == np.float32 for p in m.parameters()), m
    for m in (nn.Conv2d(2, 4, 3, dtype=np.float64), nn.Linear(3, 2, dtype=np.float64)):
        assert all(p.dtype == np.float64 for p in m.parameters()), m
    assert nn.Conv2d(2, 4, 3)(np.ones((1, 2, 5, 5), np.float32)).dtype == np.float32


def test_manual_seed_makes_construction_reproducible():
    def build():
        return nn.Sequential(nn.Conv2d(3, 8, 3), nn.Conv2d(8, 8, 3, groups=8), nn.Linear(8, 4))

    ghostnp.manual_seed(123)
    a = build().state_dict()
    ghostnp.manual_seed(123)
    b = build().state_dict()
    ghostnp.manual_seed(124)
    c = build().state_dict()
    assert list(a) == list(b)
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    assert not np.array_equal(a["0.weight"], c["0.weight"])


# ----------------------------------------------------------------------------------
# Gradient checks (float64 central differences, tolerance 1e-7)
#
# They run on the NumPy reference kernels: a check makes hundreds of tiny forward calls,
# which is where Numba's thread pool costs the most, and the Numba kernels are already
# held to PyTorch at 1e-10 on every convolution and pooling geometry above.
# ----------------------------------------------------------------------------------


def off_kinks(rng, shape, kinks=(), scale=1.0, margin=0.05):
    """Normal samples times ``scale``, none within ``margin`` of a kink."""
    x = rng.standard_normal(shape) * scale
    for k in kinks:
        near = np.abs(x - k) < margin
        x[near] = k + np.where(x[near] >= k, margin, -margin)
    return x


def distinct(rng, shape):
    """Values at least 0.01 apart, so no max-pool window has a (near) tie."""
    n = int(np.prod(shape))
    return (rng.permutation(n).reshape(shape) - n / 2) * 0.01


GRAD_CASES = [
    # (id, module factory, input factory)
    ("conv", lambda: nn.Conv2d(2, 3, 3), lambda r: r.standard_normal((2, 2, 5, 5))),
    (
        "conv-stride-pad-dilation",
        lambda: nn.Conv2d(2, 3, (3, 2), stride=2, padding=(2, 1), dilation=(2, 1)),
        lambda r: r.standard_normal((2, 2, 6, 5)),
    ),
    (
        "conv-groups-2-no-bias",
        lambda: nn.Conv2d(4, 2, 3, groups=2, padding=1, bias=False),
        lambda r: r.standard_normal((1, 4, 4, 4)),
    ),
    (
        "depthwise-mult-2",
        lambda: nn.Conv2d(2, 4, 3, groups=2, stride=2, padding=1),
        lambda r: r.standard_normal((2, 2, 5, 5)),
    ),
    (
        "conv-1x1-stride-2",
        lambda: nn.Conv2d(3, 2, 1, stride=2),
        lambda r: r.standard_normal((2, 3, 5, 5)),
    ),
    ("bn-train", lambda: nn.BatchNorm2d(3), lambda r: r.standard_normal((3, 3, 3, 3))),
    (
        "bn-train-momentum-none",
        lambda: nn.BatchNorm2d(2, momentum=None),
        lambda r: r.standard_normal((2, 2, 3, 3)),
    ),
    (
        "bn-train-no-affine",
        lambda: nn.BatchNorm2d(2, affine=False),
        lambda r: r.standard_normal((2, 2, 3, 3)),
    ),
    ("bn-eval", lambda: nn.BatchNorm2d(3).eval(), lambda r: r.standard_normal((2, 3, 3, 3))),
    ("linear", lambda: nn.Linear(5, 4), lambda r: r.standard_normal((3, 5))),
    ("linear-no-bias", lambda: nn.Linear(5, 4, bias=False), lambda r: r.standard_normal((3, 5))),
    ("relu", lambda: nn.ReLU(), lambda r: off_kinks(r, (2, 3, 4, 4), (0.0,))),
    ("relu6", lambda: nn.ReLU6(), lambda r: off_kinks(r, (2, 3, 4, 4), (0.0, 6.0), scale=4.0)),
    (
        "hardsigmoid",
        lambda: nn.Hardsigmoid(),
        lambda r: off_kinks(r, (2, 3, 4, 4), (-3.0, 3.0), 3.0),
    ),
    ("hardswish", lambda: nn.Hardswish(), lambda r: off_kinks(r, (2, 3, 4, 4), (-3.0, 3.0), 3.0)),
    ("sigmoid", lambda: nn.Sigmoid(), lambda r: r.standard_normal((2, 3, 4, 4)) * 3),
    ("maxpool", lambda: nn.MaxPool2d(2), lambda r: distinct(r, (2, 2, 5, 4))),
    ("maxpool-3s2p1", lambda: nn.MaxPool2d(3, 2, 1), lambda r: distinct(r, (2, 2, 5, 6))),
    (
        "maxpool-dilated",
        lambda: nn.MaxPool2d((2, 3), 1, dilation=2),
        lambda r: distinct(r, (1, 2, 5, 6)),
    ),
    ("avgpool", lambda: nn.AvgPool2d(3, 2, 1), lambda r: r.standard_normal((2, 2, 5, 6))),
    (
        "avgpool-exclude-pad",
        lambda: nn.AvgPool2d(3, 2, 1, count_include_pad=False),
        lambda r: r.standard_normal((2, 2, 5, 6)),
    ),
    ("adaptive-1", lambda: nn.AdaptiveAvgPool2d(1), lambda r: r.standard_normal((2, 3, 4, 5))),
    (
        "adaptive-3x2",
        lambda: nn.AdaptiveAvgPool2d((3, 2)),
        lambda r: r.standard_normal((2, 2, 7, 5)),
    ),
    ("upsample-x2", lambda: nn.Upsample(scale_factor=2), lambda r: r.standard_normal((2, 2, 3, 3))),
    ("upsample-size", lambda: nn.Upsample(size=(5, 7)), lambda r: r.standard_normal((1, 2, 3, 4))),
    ("flatten", lambda: nn.Flatten(), lambda r: r.standard_normal((2, 3, 2, 2))),
    ("identity", lambda: nn.Identity(), lambda r: r.standard_normal((2, 3))),
    ("dropout-eval", lambda: nn.Dropout(0.5).eval(), lambda r: r.standard_normal((2, 3, 2, 2))),
    ("dropout-p0-train", lambda: nn.Dropout(0.0), lambda r: r.standard_normal((2, 3, 2, 2))),
    (
        "sequential",
        lambda: nn.Sequential(
            # no bias before BN: BN removes it, its true gradient is 0 and a relative
            # error against finite-difference noise would be meaningless
            nn.Conv2d(2, 3, 3, padding=1, bias=False),
            nn.BatchNorm2d(3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(3, 3, 3, groups=3, padding=1),
            nn.Hardswish(),
            nn.Flatten(),
            nn.Linear(3 * 2 * 2, 4),
        ),
        lambda r: r.standard_normal((3, 2, 4, 4)),
    ),
]


@pytest.mark.parametrize("case", GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_gradcheck_layer(case, rng):
    _, make, make_x = case
    ghostnp.manual_seed(7)
    module = make().astype(np.float64)
    sd_before = module.state_dict()
    with use_backend("numpy"):
        report = check_module(module, make_x(rng), tol=GRADCHECK_TOL)
    report.assert_ok()
    assert report.rows[0].name == "x"
    assert [r.name for r in report.rows[1:]] == [k for k, _ in module.named_parameters()]
    for k, v in module.state_dict().items():  # buffers restored, parameters untouched
        assert np.array_equal(v, sd_before[k]), k


@pytest.mark.parametrize("case", CONV_CASES, ids=[c[0] for c in CONV_CASES])
def test_gradcheck_conv2d(case, rng):
    _, args, kwargs = case
    ghostnp.manual_seed(3)
    module = nn.Conv2d(*args, **kwargs).astype(np.float64)
    with use_backend("numpy"):
        report = check_module(module, rng.standard_normal((1, args[0], 5, 6)), tol=GRADCHECK_TOL)
    report.assert_ok()


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_gradcheck_cross_entropy(label_smoothing, rng):
    crit = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
    z = rng.standard_normal((4, 6)) * 2
    t = rng.integers(0, 6, 4)
    crit(z, t)
    dz = crit.backward()
    num = numerical_gradient(lambda: crit(z, t), z)
    err = np.max(np.abs(dz - num)) / np.max(np.abs(num))
    assert err < GRADCHECK_TOL, err


# ----------------------------------------------------------------------------------
# Bad input: clear errors naming the layer, what it expected and what it got
# ----------------------------------------------------------------------------------


def f32(*shape):
    return np.ones(shape, dtype=np.float32)


@pytest.mark.parametrize(
    "module, x, words",
    [
        (nn.Conv2d(3, 4, 3), f32(3, 8, 8), ["Conv2d", "4-D", "(3, 8, 8)"]),
        (nn.Conv2d(3, 3, 3, groups=3), f32(3, 8, 8), ["Conv2d", "4-D", "(3, 8, 8)"]),
        (nn.BatchNorm2d(3), f32(2, 3), ["BatchNorm2d", "4-D", "(2, 3)"]),
        (nn.Linear(4, 2), f32(2, 4, 1, 1), ["Linear", "2-D", "(2, 4, 1, 1)"]),
        (nn.MaxPool2d(2), f32(3, 8, 8), ["MaxPool2d", "4-D", "(3, 8, 8)"]),
        (nn.AvgPool2d(2), f32(8, 8), ["AvgPool2d", "4-D", "(8, 8)"]),
        (nn.AdaptiveAvgPool2d(1), f32(3, 8, 8), ["AdaptiveAvgPool2d", "4-D", "(3, 8, 8)"]),
        (nn.Upsample(scale_factor=2), f32(3, 8, 8), ["Upsample", "4-D", "(3, 8, 8)"]),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else None,
)
def test_wrong_rank(module, x, words):
    with pytest.raises(ValueError) as e:
        module(x)
    for w in words:
        assert w in str(e.value)


@pytest.mark.parametrize(
    "module",
    [
        nn.Conv2d(3, 4, 3),
        nn.Conv2d(3, 3, 3, groups=3),
        nn.BatchNorm2d(3),
        nn.ReLU(),
        nn.Hardswish(),
        nn.MaxPool2d(2),
        nn.Dropout(),
        nn.Flatten(),
    ],
    ids=lambda m: type(m).__name__,
)
def test_integer_input_is_a_type_error(module):
    with pytest.raises(TypeError) as e:
        module(np.ones((2, 3, 8, 8), dtype=np.int64))
    msg = str(e.value)
    assert type(module).__name__ in msg and "int64" in msg and "float" in msg


@pytest.mark.parametrize(
    "module, shape",
    [
        (nn.Conv2d(3, 4, 3), (1, 3, 5, 5)),
        (nn.Conv2d(3, 3, 3, groups=3), (1, 3, 5, 5)),
        (nn.BatchNorm2d(3), (2, 3, 2, 2)),
        (nn.Linear(3, 2), (2, 3)),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, nn.Module) else None,
)
def test_float64_input_into_float32_layer(module, shape):
    with pytest.raises(TypeError) as e:
        module(np.ones(shape, dtype=np.float64))
    msg = str(e.value)
    assert type(module).__name__ in msg
    assert "float64" in msg and "float32" in msg
    assert "astype" in msg  # the hint: cast the input or the module
    module.astype(np.float64)(np.ones(shape, dtype=np.float64))  # and the hint works


def test_linear_wrong_feature_count():
    with pytest.raises(ValueError, match=r"Linear.*expected 8 input features, got 6"):
        nn.Linear(8, 2)(f32(3, 6))


@pytest.mark.parametrize("kwargs", [{}, {"affine": False}, {"track_running_stats": False}])
def test_batchnorm_wrong_channel_count(kwargs):
    bn = nn.BatchNorm2d(4, **kwargs)
    with pytest.raises(ValueError) as e:
        bn(f32(2, 3, 5, 5))
    msg = str(e.value)
    assert msg.startswith("BatchNorm2d:")
    assert "expected 4" in msg and "got 3" in msg, msg


@pytest.mark.parametrize(
    "module, shape, expected",
    [
        (nn.Conv2d(3, 4, 3), (1, 2, 5, 5), "expected 3 input channels"),
        (nn.Conv2d(4, 4, 3, groups=4), (1, 3, 5, 5), "expected 4 input channels"),
        (nn.Conv2d(4, 6, 3, groups=2), (1, 6, 5, 5), "expected 4 input channels"),
    ],
)
def test_conv_wrong_channel_count(module, shape, expected):
    with pytest.raises(ValueError) as e:
        module(f32(*shape))
    msg = str(e.value)
    assert msg.startswith("Conv2d:") and expected in msg and f"got {shape[1]}" in msg, msg


@pytest.mark.parametrize(
    "module, shape",
    [
        (nn.MaxPool2d(5), (1, 2, 4, 6)),
        (nn.AvgPool2d((2, 7)), (1, 2, 4, 6)),
        (nn.Conv2d(2, 2, 5), (1, 2, 4, 6)),
        (nn.Conv2d(2, 2, 3, dilation=3, groups=2), (1, 2, 6, 6)),
    ],
)
def test_input_too_small_for_kernel(module, shape):
    with pytest.raises(ValueError) as e:
        module(f32(*shape))
    msg = str(e.value)
    assert msg.startswith(type(module).__name__) and "too small" in msg
    assert f"{shape[2]}x{shape[3]}" in msg


@pytest.mark.parametrize(
    "build, words",
    [
        pytest.param(
            lambda: nn.Conv2d(4, 6, 3, groups=4), ["Conv2d", "groups=4", "6"], id="groups-vs-out"
        ),
        pytest.param(
            lambda: nn.Conv2d(6, 4, 3, groups=4), ["Conv2d", "groups=4", "6"], id="groups-vs-in"
        ),
        pytest.param(
            lambda: nn.Conv2d(0, 4, 3), ["Conv2d", "in_channels", "0"], id="zero-in-channels"
        ),
        pytest.param(
            lambda: nn.Conv2d(3, 0, 3), ["Conv2d", "out_channels", "0"], id="zero-out-channels"
        ),
        pytest.param(lambda: nn.Conv2d(3, 4, 0), ["Conv2d", "kernel_size", "0"], id="zero-kernel"),
        pytest.param(
            lambda: nn.Conv2d(3, 4, 3, stride=0), ["Conv2d", "stride", "0"], id="zero-stride"
        ),
        pytest.param(
            lambda: nn.Conv2d(3, 4, 3, padding=-1),
            ["Conv2d", "padding", "-1"],
            id="negative-padding",
        ),
        pytest.param(
            lambda: nn.BatchNorm2d(0), ["BatchNorm2d", "num_features", "0"], id="zero-bn-features"
        ),
        pytest.param(
            lambda: nn.Linear(0, 3), ["Linear", "in_features", "0"], id="zero-in-features"
        ),
        pytest.param(
            lambda: nn.Linear(3, -2), ["Linear", "out_features", "-2"], id="negative-out-features"
        ),
        pytest.param(
            lambda: nn.MaxPool2d(2, ceil_mode=True),
            ["MaxPool2d", "ceil_mode"],
            id="maxpool-ceil-mode",
        ),
        pytest.param(
            lambda: nn.AvgPool2d(2, ceil_mode=True),
            ["AvgPool2d", "ceil_mode"],
            id="avgpool-ceil-mode",
        ),
        pytest.param(
            lambda: nn.Upsample(scale_factor=2, mode="bilinear"),
            ["Upsample", "nearest", "bilinear"],
            id="upsample-bilinear",
        ),
        pytest.param(lambda: nn.Dropout(p=2), ["Dropout", "p", "2"], id="dropout-p-2"),
        pytest.param(lambda: nn.Dropout(p=-0.1), ["Dropout", "p", "-0.1"], id="dropout-p-negative"),
        pytest.param(
            lambda: nn.CrossEntropyLoss(reduction="sum"),
            ["CrossEntropyLoss", "sum"],
            id="loss-reduction-sum",
        ),
    ],
)
def test_invalid_constructor_arguments(build, words):
    with pytest.raises((ValueError, TypeError)) as e:
        build()
    for w in words:
        assert w in str(e.value), str(e.value)


def test_cross_entropy_bad_targets():
    crit = nn.CrossEntropyLoss()
    z = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"CrossEntropyLoss.*\[0, 4\)"):
        crit(z, np.array([0, 1, 4]))
    with pytest.raises(TypeError, match="CrossEntropyLoss.*integer"):
        crit(z, np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"CrossEntropyLoss.*\(3,\)"):
        crit(z, np.array([0, 1]))
