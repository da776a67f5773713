"""ghostnp.nn.Module mechanics: registration and names, paths in errors, gradient
accumulation, hooks, modes, dtype, and load_state_dict's all-or-nothing checking."""

from __future__ import annotations

import numpy as np
import pytest

import ghostnp
from ghostnp import nn
from ghostnp.errors import StateDictError
from ghostnp.gradcheck import check_module


def nested(lib):
    """conv, BN, then a nested Sequential: keys "0.weight", "1.running_mean", "2.1.weight"."""
    return lib.Sequential(
        lib.Conv2d(3, 4, 3, padding=1),
        lib.BatchNorm2d(4),
        lib.Sequential(lib.ReLU(), lib.Conv2d(4, 2, 1)),
    )


NESTED_KEYS = [
    "0.weight",
    "0.bias",
    "1.weight",
    "1.bias",
    "1.running_mean",
    "1.running_var",
    "1.num_batches_tracked",
    "2.1.weight",
    "2.1.bias",
]


def snapshot(model):
    """Everything load_state_dict could change: values, dtypes and array identities."""
    sd = model.state_dict()
    ids = {k: id(p.data) for k, p in model.named_parameters()}
    return sd, ids


def assert_unchanged(model, snap):
    sd, ids = snap
    now = model.state_dict()
    assert list(now) == list(sd)
    for k, v in sd.items():
        assert now[k].dtype == v.dtype and np.array_equal(now[k], v), k
    assert {k: id(p.data) for k, p in model.named_parameters()} == ids


def f32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


# ----------------------------------------------------------------------------------
# Registration, names, traversal
# ----------------------------------------------------------------------------------


def test_state_dict_keys_are_pytorch_paths():
    m = nested(nn)
    assert list(m.state_dict()) == NESTED_KEYS
    assert [k for k, _ in m.named_parameters()] == [
        k for k in NESTED_KEYS if "running" not in k and "num_batches" not in k
    ]
    assert [k for k, _ in m.named_buffers()] == [
        "1.running_mean",
        "1.running_var",
        "1.num_batches_tracked",
    ]
    assert len(m.parameters()) == 6
    assert m.num_parameters() == 4 * 3 * 9 + 4 + 4 + 4 + 2 * 4 + 2


def test_names_and_order_match_torch(torch):
    ours, theirs = nested(nn), nested(torch.nn)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [k for k, _ in ours.named_parameters()] == [k for k, _ in theirs.named_parameters()]
    assert [k for k, _ in ours.named_buffers()] == [k for k, _ in theirs.named_buffers()]
    assert [k for k, _ in ours.named_modules()] == [k for k, _ in theirs.named_modules()]
    assert [type(m).__name__ for _, m in ours.named_modules()] == [
        type(m).__name__ for _, m in theirs.named_modules()
    ]


def test_named_modules_order_and_paths():
    m = nested(nn)
    names = [k for k, _ in m.named_modules()]
    assert names == ["", "0", "1", "2", "2.0", "2.1"]
    for name, mod in m.named_modules():
        assert mod.path == name
    assert m.where == "Sequential"
    assert m[2][1].where == "2.1 (Conv2d)"
    assert [type(c).__name__ for c in m.children()] == ["Conv2d", "BatchNorm2d", "Sequential"]
    # a model put inside another one re-roots every path below it
    outer = nn.Sequential(nn.Identity(), m)
    assert m[2][1].path == "1.2.1"
    assert "1.2.1.weight" in outer.state_dict()


class Block(nn.Module):
    """A custom module with attributes of every kind."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1, bias=False)
        self.scale = nn.Parameter(np.ones(2, dtype=np.float32))
        self.register_buffer("counter", np.zeros(2, dtype=np.float32))
        self.not_state = np.zeros(3)  # plain attributes are not state
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 3))


def test_custom_module_registration():
    b = Block()
    assert list(b.state_dict()) == [
        "scale",
        "counter",
        "conv.weight",
        "head.1.weight",
        "head.1.bias",
    ]
    assert [k for k, _ in b.named_parameters()] == [
        "scale",
        "conv.weight",
        "head.1.weight",
        "head.1.bias",
    ]
    assert b.head[1].path == "head.1"
    b.conv = nn.Conv2d(2, 2, 1)  # replacing a child re-registers it
    assert "conv.bias" in b.state_dict() and b.conv.path == "conv"
    with pytest.raises(TypeError, match="scale"):
        b.scale = np.ones(2)  # a parameter cannot silently turn into a plain array


def test_shared_parameter_listed_once():
    lin = nn.Linear(3, 3)
    m = nn.Sequential(lin, nn.ReLU())
    m.other = nn.Linear(3, 3)
    m.other.weight = lin.weight
    assert [k for k, _ in m.named_parameters()] == ["0.weight", "0.bias", "other.bias"]


# ----------------------------------------------------------------------------------
# Errors name the module's path
# ----------------------------------------------------------------------------------


def test_channel_error_names_the_nested_path(rng):
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.Sequential(nn.Conv2d(3, 5, 3), nn.ReLU())
    )
    with pytest.raises(ValueError) as e:
        model(f32(rng, 2, 3, 8, 8))
    msg = str(e.value)
    assert msg.startswith("1.0 (Conv2d): expected 3 input channels"), msg
    assert "got 4" in msg


def test_depthwise_and_bn_errors_name_the_nested_path(rng):
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Sequential(nn.Conv2d(5, 5, 3, groups=5)))
    with pytest.raises(ValueError, match=r"^1\.0 \(Conv2d\): expected 5 input channels, got 4"):
        model(f32(rng, 1, 3, 6, 6))
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Sequential(nn.ReLU(), nn.BatchNorm2d(6)))
    with pytest.raises(
        ValueError, match=r"^1\.1 \(BatchNorm2d\): expected 6 input channels, got 4"
    ):
        model(f32(rng, 1, 3, 6, 6))


def test_linear_error_in_sequential_names_the_path(rng):
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    with pytest.raises(ValueError, match=r"^1 \(Linear\): expected 12 input features, got 20"):
        model(f32(rng, 2, 5, 2, 2))


def test_backward_error_names_the_nested_path(rng):
    model = nested(nn)
    y = model(f32(rng, 2, 3, 5, 5))
    with pytest.raises(ValueError, match=r"^2\.1 \(Conv2d\): expected dy of shape"):
        model.backward(np.zeros((2, 3, 5, 5), np.float32))
    model.backward(np.ones_like(y))  # the right shape still works


# ----------------------------------------------------------------------------------
# Gradients: accumulation, zero_grad, a module used twice
# ----------------------------------------------------------------------------------


def grads(model):
    return {k: None if p.grad is None else p.grad.copy() for k, p in model.named_parameters()}


def test_gradients_accumulate_until_zero_grad(rng):
    model = nested(nn).astype(np.float64)
    x1, x2 = rng.standard_normal((2, 2, 3, 4, 4))
    g1, g2 = rng.standard_normal((2, 2, 2, 4, 4))
    assert all(p.grad is None for p in model.parameters())

    def step(x, g):
        model(x)
        return model.backward(g)

    step(x1, g1)
    first = grads(model)
    model.zero_grad()
    step(x2, g2)
    second = grads(model)
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())

    step(x1, g1)
    step(x2, g2)
    for k, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, first[k] + second[k], rtol=1e-12, atol=1e-12)
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


class TwiceLinear(nn.Module):
    """y = lin(x) + lin(2 x): one Linear used on two inputs.

    A layer keeps the cache of its last forward only, so backward handles the second use
    first and then recomputes the first use (forward is deterministic) to get its cache.
    Both backward calls accumulate into lin.weight.grad and lin.bias.grad.
    """

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 4)

    def forward(self, x):
        self._x = x
        return self.lin(x) + self.lin(2.0 * x)

    def backward(self, dy):
        dx = 2.0 * self.lin.backward(dy)  # the second use: lin(2 x)
        self.lin(self._x)  # recompute the first use
        return dx + self.lin.backward(dy)


def test_module_used_twice_sums_its_gradients(rng):
    m = TwiceLinear().astype(np.float64)
    x = rng.standard_normal((3, 4))
    report = check_module(m, x)
    report.assert_ok()
    # and the sum is what it should be: dW = dy^T x + dy^T (2x) = 3 dy^T x, db = 2 sum(dy)
    g = rng.standard_normal((3, 4))
    m.zero_grad()
    m(x)
    dx = m.backward(g)
    np.testing.assert_allclose(m.lin.weight.grad, 3.0 * g.T @ x, rtol=1e-12)
    np.testing.assert_allclose(m.lin.bias.grad, 2.0 * g.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(dx, 3.0 * g @ m.lin.weight.data, rtol=1e-12)


def test_module_used_twice_on_the_same_input(rng):
    # y = lin(x) + lin(x): both uses share one cache, so two backward calls suffice
    class Same(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 2)

        def forward(self, x):
            return self.lin(x) + self.lin(x)

        def backward(self, dy):
            return self.lin.backward(dy) + self.lin.backward(dy)

    check_module(Same().astype(np.float64), rng.standard_normal((4, 3))).assert_ok()


# ----------------------------------------------------------------------------------
# backward's contract for every layer
# ----------------------------------------------------------------------------------

# (id, factory, input shape): every layer in ghostnp.nn, and a Sequential
EVERY_LAYER = [
    ("Conv2d", lambda: nn.Conv2d(3, 4, 3, padding=1), (2, 3, 5, 5)),
    ("Conv2d-depthwise", lambda: nn.Conv2d(3, 6, 3, groups=3), (2, 3, 5, 5)),
    ("Conv2d-1x1-stride-2", lambda: nn.Conv2d(3, 4, 1, stride=2), (2, 3, 5, 5)),
    ("BatchNorm2d-train", lambda: nn.BatchNorm2d(3), (2, 3, 5, 5)),
    ("BatchNorm2d-eval", lambda: nn.BatchNorm2d(3).eval(), (2, 3, 5, 5)),
    ("Linear", lambda: nn.Linear(5, 4), (3, 5)),
    ("ReLU", lambda: nn.ReLU(), (2, 3, 5, 5)),
    ("ReLU6", lambda: nn.ReLU6(), (2, 3, 5, 5)),
    ("Hardsigmoid", lambda: nn.Hardsigmoid(), (2, 3, 5, 5)),
    ("Hardswish", lambda: nn.Hardswish(), (2, 3, 5, 5)),
    ("Sigmoid", lambda: nn.Sigmoid(), (2, 3, 5, 5)),
    ("MaxPool2d", lambda: nn.MaxPool2d(3, 2, 1), (2, 3, 5, 5)),
    ("AvgPool2d", lambda: nn.AvgPool2d(2), (2, 3, 5, 5)),
    ("AdaptiveAvgPool2d", lambda: nn.AdaptiveAvgPool2d((2, 3)), (2, 3, 5, 5)),
    ("Upsample", lambda: nn.Upsample(scale_factor=2), (2, 3, 5, 5)),
    ("Dropout-train", lambda: nn.Dropout(0.3), (2, 3, 5, 5)),
    ("Dropout-eval", lambda: nn.Dropout(0.3).eval(), (2, 3, 5, 5)),
    ("Flatten", lambda: nn.Flatten(), (2, 3, 5, 5)),
    ("Identity", lambda: nn.Identity(), (2, 3, 5, 5)),
    ("Sequential", lambda: nested(nn), (2, 3, 5, 5)),
]
LAYER_IDS = [c[0] for c in EVERY_LAYER]


@pytest.mark.parametrize("case", EVERY_LAYER, ids=LAYER_IDS)
def test_backward_leaves_dy_unchanged(case, rng):
    _, make, shape = case
    m = make()
    x = f32(rng, *shape)
    x_before = x.copy()
    y = m(x)
    assert np.array_equal(x, x_before), "forward changed x"
    dy = f32(rng, *y.shape)
    dy_before = dy.copy()
    dx = m.backward(dy)
    assert np.array_equal(dy, dy_before), "backward changed dy"
    assert dx.shape == x.shape and dx.dtype == np.float32
    m.backward(dy)  # twice, to catch a second-call in-place update as well
    assert np.array_equal(dy, dy_before), "second backward changed dy"


def test_cross_entropy_backward_leaves_logits_unchanged(rng):
    crit = nn.CrossEntropyLoss(label_smoothing=0.1)
    z = rng.standard_normal((4, 3))
    z_before = z.copy()
    crit(z, np.array([0, 1, 2, 0]))
    dz = crit.backward()
    dz[...] = 0  # the returned gradient is the caller's to change
    assert np.array_equal(z, z_before)
    assert crit.backward().any()


@pytest.mark.parametrize("case", EVERY_LAYER, ids=LAYER_IDS)
def test_backward_before_forward_is_a_runtime_error(case):
    name, make, _ = case
    m = make()
    with pytest.raises(RuntimeError) as e:
        m.backward(np.ones((2, 2), np.float32))
    msg = str(e.value)
    assert "before forward" in msg
    if name == "Sequential":  # the last layer runs backward first and names itself
        assert msg.startswith("2.1 (Conv2d):"), msg
    else:
        assert msg.startswith(name.split("-")[0] + ":"), msg


def test_backward_before_forward_in_a_nested_model():
    model = nn.Sequential(nn.Linear(3, 3), nn.Sequential(nn.ReLU(), nn.Linear(3, 2)))
    with pytest.raises(RuntimeError, match=r"^1\.1 \(Linear\): backward called before forward"):
        model.backward(np.ones((1, 2), np.float32))
    with pytest.raises(RuntimeError, match=r"^CrossEntropyLoss: backward called before forward"):
        nn.CrossEntropyLoss().backward()


@pytest.mark.parametrize("case", EVERY_LAYER, ids=LAYER_IDS)
def test_dy_of_the_wrong_shape_is_a_value_error(case, rng):
    name, make, shape = case
    m = make()
    y = m(f32(rng, *shape))
    # same number of elements, different shape: a reshape would hide the mistake
    for bad in (y.shape[:-1] + (y.shape[-1] + 1,), (y.size,), y.shape[::-1]):
        if bad == y.shape:
            continue
        with pytest.raises(ValueError) as e:
            m.backward(np.ones(bad, np.float32))
        msg = str(e.value)
        assert "dy" in msg and str(tuple(bad)) in msg, msg
    m.backward(np.ones(y.shape, np.float32))  # the right shape works afterwards


# ----------------------------------------------------------------------------------
# Modes, dtype, hooks
# ----------------------------------------------------------------------------------


def test_train_eval_are_recursive():
    m = nested(nn)
    m.add_module("drop", nn.Dropout())
    assert all(mod.training for mod in m.modules())
    assert m.eval() is m
    assert not any(mod.training for mod in m.modules())
    m.train()
    assert all(mod.training for mod in m.modules())
    m.train(False)
    assert not any(mod.training for mod in m.modules())
    m[2].train()  # a subtree alone
    assert m[2][0].training and m[2][1].training and not m[1].training


def test_astype_converts_params_grads_and_float_buffers(rng):
    m = nested(nn)
    m(f32(rng, 2, 3, 4, 4))
    m.backward(f32(rng, 2, 2, 4, 4))
    assert m.astype(np.float64) is m
    for k, p in m.named_parameters():
        assert p.dtype == np.float64 and p.grad.dtype == np.float64, k
    assert m[1].running_mean.dtype == np.float64 and m[1].running_var.dtype == np.float64
    assert m[1].num_batches_tracked.dtype == np.int64
    sd = m.state_dict()
    assert sd["1.num_batches_tracked"].dtype == np.int64 and int(sd["1.num_batches_tracked"]) == 1
    assert m(rng.standard_normal((1, 3, 4, 4))).dtype == np.float64
    m.astype(np.float32)
    assert all(p.dtype == np.float32 for p in m.parameters())
    with pytest.raises(TypeError, match="float16"):
        m.astype(np.float16)


def test_forward_hooks_fire_and_remove(rng):
    model = nested(nn)
    calls = []
    h1 = model[2][1].register_forward_hook(
        lambda mod, inputs, out: calls.append((mod.path, inputs[0].shape, out.shape))
    )
    h2 = model.register_forward_hook(
        lambda mod, inputs, out: calls.append(("root", None, out.shape))
    )
    model(f32(rng, 2, 3, 5, 5))
    assert calls == [("2.1", (2, 4, 5, 5), (2, 2, 5, 5)), ("root", None, (2, 2, 5, 5))]
    h1.remove()
    calls.clear()
    model(f32(rng, 1, 3, 5, 5))
    assert calls == [("root", None, (1, 2, 5, 5))]
    h2.remove()
    h2.remove()  # removing twice is harmless
    calls.clear()
    model(f32(rng, 1, 3, 5, 5))
    assert calls == []


# ----------------------------------------------------------------------------------
# state_dict / load_state_dict
# ----------------------------------------------------------------------------------


def test_state_dict_returns_copies():
    m = nested(nn)
    sd = m.state_dict()
    sd["0.weight"][...] = 0
    sd["1.running_mean"][...] = 5
    assert m[0].weight.data.any()
    assert not m[1].running_mean.any()


def test_load_state_dict_round_trip_copies_values():
    ghostnp.manual_seed(1)
    a = nested(nn)
    ghostnp.manual_seed(2)
    b = nested(nn)
    sd = a.state_dict()
    sd["1.running_var"] = np.full(4, 3.0, np.float32)
    sd["1.num_batches_tracked"] = np.array(9, dtype=np.int64)
    b.load_state_dict(sd)
    for k, v in b.state_dict().items():
        assert np.array_equal(v, sd[k]) and v.dtype == sd[k].dtype, k
    sd["0.weight"][...] = 0  # the module owns its arrays
    assert b[0].weight.data.any()


def test_load_state_dict_reports_every_problem_at_once_and_changes_nothing():
    m = nested(nn)
    before = snapshot(m)
    sd = m.state_dict()
    good = {k: v + 1 for k, v in sd.items()}  # everything that would load, changed
    bad = dict(good)
    del bad["0.bias"]  # missing
    del bad["2.1.weight"]  # missing
    bad["3.weight"] = np.zeros(3, np.float32)  # unexpected
    bad["1.weight"] = np.zeros((5,), np.float32)  # mis-shaped
    bad["2.1.bias"] = np.zeros((2, 1), np.float32)  # mis-shaped
    with pytest.raises(StateDictError) as e:
        m.load_state_dict(bad)
    assert isinstance(e.value, ValueError)
    msg = str(e.value)
    for key in ("0.bias", "2.1.weight", "3.weight", "1.weight", "2.1.bias"):
        assert key in msg, key
    assert "missing key: 0.bias" in msg and "missing key: 2.1.weight" in msg
    assert "unexpected key: 3.weight" in msg
    assert "1.weight: expected shape (4,), got (5,)" in msg
    assert "2.1.bias: expected shape (2,), got (2, 1)" in msg
    assert "5 problem" in msg
    assert_unchanged(m, before)


def test_load_state_dict_non_strict():
    m = nested(nn)
    sd = m.state_dict()
    partial = {"0.weight": sd["0.weight"] + 1, "extra.weight": np.zeros(3)}
    m.load_state_dict(partial, strict=False)  # missing and unexpected keys are ignored
    assert np.array_equal(m[0].weight.data, sd["0.weight"] + 1)
    assert np.array_equal(m[0].bias.data, sd["0.bias"])
    with pytest.raises(StateDictError, match="missing key: 0.bias"):
        m.load_state_dict(partial, strict=True)
    # a shape mismatch is an error even when not strict, and nothing loads
    before = snapshot(m)
    wrong = {"0.bias": sd["0.bias"] + 1, "1.weight": np.zeros(3, np.float32)}
    with pytest.raises(StateDictError) as e:
        m.load_state_dict(wrong, strict=False)
    assert "1.weight: expected shape (4,), got (3,)" in str(e.value)
    assert "0.bias" not in str(e.value)
    assert_unchanged(m, before)


def test_num_batches_tracked_may_be_absent():
    m = nested(nn)
    m[1].num_batches_tracked = np.array(4, dtype=np.int64)
    sd = m.state_dict()
    del sd["1.num_batches_tracked"]
    sd["1.running_mean"] = sd["1.running_mean"] + 2
    m.load_state_dict(sd, strict=True)
    assert int(m[1].num_batches_tracked) == 4
    assert np.array_equal(m[1].running_mean, np.full(4, 2, np.float32))


def test_load_state_dict_casts_to_the_module_dtype(rng):
    m = nested(nn)
    sd64 = {
        k: (v.astype(np.float64) + 0.1 if v.dtype == np.float32 else v)
        for k, v in m.state_dict().items()
    }
    sd64["1.num_batches_tracked"] = np.array(7)  # a plain Python-int-like array
    m.load_state_dict(sd64, strict=True)
    for k, v in m.state_dict().items():
        expected = np.float32 if "num_batches" not in k else np.int64
        assert v.dtype == expected, k
        np.testing.assert_array_equal(v, sd64[k].astype(expected))
    m(f32(rng, 1, 3, 4, 4))  # still a working float32 model


def test_load_state_dict_rejects_non_numeric():
    m = nn.Linear(2, 2)
    with pytest.raises(StateDictError, match="weight"):
        m.load_state_dict({"weight": np.array([["a", "b"], ["c", "d"]]), "bias": np.zeros(2)})


def test_torch_state_dict_loads_strictly_both_ways(torch, rng):
    theirs = nested(torch.nn)
    with torch.no_grad():
        for p in theirs.parameters():
            p.uniform_(-1, 1)
        theirs[1].running_mean.uniform_(-1, 1)
        theirs[1].running_var.uniform_(0.5, 2)
        theirs[1].num_batches_tracked.fill_(11)
    ours = nested(nn)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()}, strict=True)
    for k, v in theirs.state_dict().items():
        assert np.array_equal(ours.state_dict()[k], v.numpy()), k
        assert ours.state_dict()[k].dtype == v.numpy().dtype, k
    # and back: a fresh torch model takes ours strictly and computes the same thing
    fresh = nested(torch.nn)
    fresh.load_state_dict({k: torch.from_numpy(v) for k, v in ours.state_dict().items()})
    ours.eval()
    fresh.eval()
    x = f32(rng, 2, 3, 5, 5)
    with torch.no_grad():
        y_t = fresh(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(ours(x), y_t, rtol=1e-5, atol=1e-5)
