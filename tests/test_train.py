"""Checkpoints, the training loop, resume, divergence, PyTorch as a training oracle, and
the ``ghostnp train`` job."""

from __future__ import annotations

import math

import numpy as np
import pytest
from helpers import EPOCH_KEYS

import ghostnp
import ghostnp.cli.train as train_job
from ghostnp.checkpoint import CheckpointError, flatten_state, load_checkpoint, save_checkpoint
from ghostnp.cli.train import train_main
from ghostnp.data import ArrayDataset, DataLoader, RandomShift, load_digits
from ghostnp.models import GhostNet
from ghostnp.nn.layers import CrossEntropyLoss
from ghostnp.optim import SGD, WarmupCosine, param_groups_no_decay
from ghostnp.train import (
    History,
    TrainingDiverged,
    evaluate,
    fit,
    train_step,
)

SIZE = 16  # digits at 16x16: GhostNet's five stride-2 stages end at 1x1


def tiny(width=0.1, dropout=0.0, in_chans=1, seed=0):
    ghostnp.manual_seed(seed)
    return GhostNet(width=width, num_classes=10, dropout=dropout, in_chans=in_chans)


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits("train", size=SIZE)
    return x[:96], y[:96]


def make_opt(model, lr=0.1):
    opt = SGD(param_groups_no_decay(model, 5e-4), lr=lr, momentum=0.9, nesterov=True)
    return opt, WarmupCosine(opt, warmup_steps=2, total_steps=20)


def snapshot(model, opt=None, sched=None):
    """Copies of everything a load may change: model state, optimizer and scheduler state."""
    snap = {f"model/{k}": v for k, v in model.state_dict().items()}
    if opt is not None:
        snap.update(flatten_state(opt.state_dict(), prefix="opt/"))
    if sched is not None:
        snap.update(flatten_state(sched.state_dict(), prefix="sched/"))
    return snap


def assert_same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def steps(model, opt, sched, x, y, n, start=0):
    """``n`` train steps on fixed slices of (x, y); returns the losses."""
    crit = CrossEntropyLoss()
    losses = []
    for i in range(start, start + n):
        sl = slice((8 * i) % len(y), (8 * i) % len(y) + 8)
        loss, _ = train_step(model, x[sl], y[sl], opt, crit)
        sched.step()
        losses.append(loss)
    return losses


# -- checkpoints ---------------------------------------------------------------------
def test_checkpoint_round_trip_continues_identically(tmp_path, digits):
    x, y = digits
    model = tiny()
    opt, sched = make_opt(model)
    steps(model, opt, sched, x, y, 2)
    path = save_checkpoint(tmp_path / "ck.npz", model, opt, sched, epoch=2, note="é", h=[0.5])
    assert opt.state and all("momentum_buffer" in s for s in opt.state.values())
    expected = steps(model, opt, sched, x, y, 3, start=2)
    expected_state = snapshot(model, opt, sched)

    other = tiny(seed=1)  # different initial weights, fresh optimizer and schedule
    opt2, sched2 = make_opt(other, lr=0.5)
    meta = load_checkpoint(path, other, opt2, sched2)
    assert meta == {"epoch": 2, "note": "é", "h": [0.5]}
    assert sched2.last_epoch == 2
    assert opt2.param_groups[0]["lr"] == sched2.get_last_lr()[0]
    got = steps(other, opt2, sched2, x, y, 3, start=2)
    assert got == expected
    assert_same(snapshot(other, opt2, sched2), expected_state)


def test_checkpoint_is_plain_arrays(tmp_path):
    model = tiny()
    path = save_checkpoint(tmp_path / "m.npz", model, step=np.int64(3), acc=np.float32(0.5))
    with np.load(path, allow_pickle=False) as z:
        assert str(z["format"]) == "ghostnp-checkpoint"
        assert {k[len("model/") :] for k in z.files if k.startswith("model/")} == set(
            model.state_dict()
        )
    assert load_checkpoint(path, tiny(seed=3)) == {"step": 3, "acc": 0.5}
    with pytest.raises(TypeError, match="JSON"):
        save_checkpoint(tmp_path / "bad.npz", model, thing=object())
    assert not (tmp_path / "bad.npz").exists()


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    model = tiny()
    opt, sched = make_opt(model)
    path = save_checkpoint(tmp_path / "ck.npz", model, opt, sched, epoch=1)
    before = path.read_bytes()

    def failing_savez(file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("No space left on device")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(path, tiny(seed=5), opt, sched, epoch=2)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.npz"]  # no temp file left
    monkeypatch.undo()
    assert load_checkpoint(path, tiny(seed=6)) == {"epoch": 1}


@pytest.fixture
def trained(tmp_path, digits):
    """A model and optimizer with momentum state, and a good checkpoint of them."""
    x, y = digits
    model = tiny()
    opt, sched = make_opt(model)
    steps(model, opt, sched, x, y, 1)
    path = save_checkpoint(tmp_path / "good.npz", model, opt, sched, epoch=1)
    steps(model, opt, sched, x, y, 1, start=1)  # now differs from the file
    return model, opt, sched, path


def _bad_files(tmp_path, good):
    data = good.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(data[: len(data) // 2])
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.ones(3), labels=np.arange(3))
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    wider = tmp_path / "wider.npz"
    m = tiny(width=0.25)
    o, s = make_opt(m)
    save_checkpoint(wider, m, o, s)
    return {
        truncated: "truncated or corrupt",
        foreign: "not a ghostnp checkpoint",
        garbage: "not an .npz file",
        wider: "expected shape",
    }


def test_bad_checkpoints_raise_and_change_nothing(tmp_path, trained):
    model, opt, sched, good = trained
    before = snapshot(model, opt, sched)
    for path, reason in _bad_files(tmp_path, good).items():
        with pytest.raises(CheckpointError, match=reason) as info:
            load_checkpoint(path, model, opt, sched)
        assert str(path) in str(info.value)
        assert_same(snapshot(model, opt, sched), before)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.npz", model, opt, sched)
    load_checkpoint(good, model, opt, sched)  # the good one still loads
    assert sched.last_epoch == 1


def test_rejected_optimizer_state_rolls_back_the_model(trained, digits):
    model, opt, sched, good = trained
    # same model, but the optimizer has one param group instead of two
    one_group = SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = digits
    train_step(model, x[:8], y[:8], one_group, CrossEntropyLoss())
    before = snapshot(model, one_group)
    with pytest.raises(CheckpointError, match="param group") as info:
        load_checkpoint(good, model, one_group)
    assert str(good) in str(info.value)
    assert_same(snapshot(model, one_group), before)
    # a scheduler of another class, or asking for a state the file does not hold
    from ghostnp.optim import StepLR

    with pytest.raises(CheckpointError, match="WarmupCosine, not StepLR"):
        load_checkpoint(good, model, opt, StepLR(opt, 5))
    bare = save_checkpoint(good.with_name("bare.npz"), model)
    with pytest.raises(CheckpointError, match="no optimizer state"):
        load_checkpoint(bare, model, opt)
    assert_same(snapshot(model, one_group), before)


# -- fit -----------------------------------------------------------------------------
def loaders(digits, seed=0):
    x, y = digits
    train = DataLoader(ArrayDataset(x[:64], y[:64]), 16, shuffle=True, seed=seed)
    val = DataLoader(ArrayDataset(x[64:], y[64:]), 32)
    return train, val


def run_fit(digits, epochs=2, **kw):
    model = tiny(dropout=0.2)
    train, val = loaders(digits)
    opt = SGD(param_groups_no_decay(model, 5e-4), lr=0.05, momentum=0.9, nesterov=True)
    sched = WarmupCosine(opt, warmup_steps=2, total_steps=2 * len(train))
    kw.setdefault("seed", 0)
    history = fit(
        model,
        train,
        val,
        opt,
        sched,
        epochs=epochs,
        criterion=CrossEntropyLoss(label_smoothing=0.1),
        progress=False,
        log=None,
        augment=RandomShift(1),
        **kw,
    )
    return model, history


@pytest.fixture(scope="module")
def full_run(digits, tmp_path_factory):
    ckdir = tmp_path_factory.mktemp("full")
    model, history = run_fit(digits, checkpoint_dir=ckdir)
    return model, history, ckdir


def test_fit_history_and_checkpoints(full_run, digits):
    model, history, ckdir = full_run
    h = history.to_dict()
    assert set(h) == {"train_loss", "train_acc", "val_loss", "val_acc", "lr", "seconds"}
    assert all(len(v) == 2 for v in h.values())
    assert all(math.isfinite(v) for vals in h.values() for v in vals)
    assert all(0 <= a <= 1 for a in h["train_acc"] + h["val_acc"])
    assert History.from_dict(h) == history
    assert (ckdir / "last.npz").is_file() and (ckdir / "best.npz").is_file()
    meta = load_checkpoint(ckdir / "last.npz", tiny(dropout=0.2, seed=9))
    assert meta["epoch"] == 2 and meta["history"] == h
    best = load_checkpoint(ckdir / "best.npz", tiny(dropout=0.2, seed=9))
    assert best["epoch"] == history.best_epoch
    assert best["best_val_acc"] == max(h["val_acc"])
    # evaluate on the final model gives the last val numbers again, and keeps the mode
    _, val = loaders(digits)
    model.train()
    assert evaluate(model, val, CrossEntropyLoss(label_smoothing=0.1)) == (
        h["val_loss"][-1],
        h["val_acc"][-1],
    )
    assert model.training


def test_fit_is_deterministic_under_a_seed(digits, full_run):
    _, history, _ = full_run
    model, again = run_fit(digits)
    assert again.train_loss == history.train_loss
    assert again.val_loss == history.val_loss
    assert again.val_acc == history.val_acc


def test_resume_continues_as_if_never_stopped(digits, full_run, tmp_path):
    full_model, history, _ = full_run
    run_fit(digits, epochs=1, checkpoint_dir=tmp_path)
    assert load_checkpoint(tmp_path / "last.npz", tiny(dropout=0.2, seed=4))["epoch"] == 1
    # a new process would start from a fresh model: different weights, other seed
    model, resumed = run_fit(
        digits, epochs=2, checkpoint_dir=tmp_path, resume=tmp_path / "last.npz", seed=123
    )
    assert len(resumed) == 2
    assert resumed.train_loss == history.train_loss
    assert resumed.val_acc == history.val_acc
    assert_same(snapshot(model), snapshot(full_model))


class NanOnCall(CrossEntropyLoss):
    """Cross-entropy that returns NaN on its ``n``-th call (counting from 1)."""

    def __init__(self, n):
        super().__init__()
        self.n, self.calls = n, 0

    def forward(self, logits, target):
        self.calls += 1
        loss = super().forward(logits, target)
        return math.nan if self.calls == self.n else loss


def test_nan_loss_stops_with_a_clear_error_and_keeps_the_checkpoint(digits, tmp_path):
    model = tiny()
    train, val = loaders(digits)
    opt, sched = make_opt(model)
    # 4 train steps, then 1 val batch in epoch 1: call 7 is epoch 2, step 2
    crit = NanOnCall(7)
    with pytest.raises(TrainingDiverged, match=r"epoch 2/3, step 2/4") as info:
        fit(model, train, val, opt, sched, 3, crit, tmp_path, progress=False, log=None)
    msg = str(info.value)
    assert "nan" in msg and str(tmp_path / "last.npz") in msg and "kept" in msg
    assert isinstance(info.value, FloatingPointError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.npz", "last.npz"]
    assert load_checkpoint(tmp_path / "last.npz", tiny(seed=8))["epoch"] == 1
    assert all(np.isfinite(p.data).all() for p in model.parameters())


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
def test_huge_learning_rate_diverges(digits):
    model = tiny()
    train, val = loaders(digits)
    opt = SGD(model.parameters(), lr=1e30, momentum=0.9)
    with pytest.raises(TrainingDiverged, match="No checkpoint had been written"):
        fit(model, train, val, opt, epochs=3, progress=False, log=None)


def test_random_shift_is_a_batch_gather():
    rng = np.random.default_rng(0)
    x = np.zeros((32, 2, 12, 12), dtype=np.float32)
    x[:, :, 3:9, 3:9] = rng.random((32, 2, 6, 6))
    out = RandomShift(3)(x, np.random.default_rng(1))
    assert out.shape == x.shape and out.dtype == x.dtype
    np.testing.assert_allclose(out.sum(axis=(2, 3)), x.sum(axis=(2, 3)), rtol=1e-5)
    assert not np.array_equal(out, x)
    same = RandomShift(0, flip=True)(x, np.random.default_rng(2))
    plain = np.all(same == x, axis=(1, 2, 3))
    mirrored = np.all(same == x[..., ::-1], axis=(1, 2, 3))
    assert np.all(plain | mirrored) and plain.any() and mirrored.any()
    again = RandomShift(3)(x, np.random.default_rng(1))
    np.testing.assert_array_equal(again, out)


# -- PyTorch as the oracle of ten SGD steps --------------------------------------------
def test_ten_sgd_steps_follow_pytorch(torch):
    """Ten steps of SGD (momentum 0.9, weight decay 5e-4 on weights) in float64 match the
    twin's loss at every step and its final state to 1e-8 relative.

    The problem is kept well conditioned (batches of 16 at 32x32, lr 0.02): with batches
    of 8 at 16x16 the deep layers normalise over 8 numbers, and PyTorch run twice, once
    from weights perturbed by 1e-15, already drifts apart by 1e-5 within ten steps.
    """
    from torch_twins import ghostnet_twin

    model = tiny(width=0.2, in_chans=3).astype(np.float64)
    twin = ghostnet_twin(width=0.2, num_classes=10, dropout=0.0, in_chans=3, dtype=torch.float64)
    twin.load_state_dict({k: torch.from_numpy(v) for k, v in model.state_dict().items()})
    model.train()
    twin.train()

    lr, momentum, wd = 0.02, 0.9, 5e-4
    groups = param_groups_no_decay(model, wd)
    opt = SGD(groups, lr=lr, momentum=momentum)
    names = {id(p): n for n, p in model.named_parameters()}
    tp = dict(twin.named_parameters())
    torch_opt = torch.optim.SGD(
        [
            {"params": [tp[names[id(p)]] for p in g["params"]], "weight_decay": g["weight_decay"]}
            for g in groups
        ],
        lr=lr,
        momentum=momentum,
    )
    crit, torch_crit = CrossEntropyLoss(), torch.nn.CrossEntropyLoss()

    rng = np.random.default_rng(7)
    batches = [(rng.standard_normal((16, 3, 32, 32)), rng.integers(0, 10, 16)) for _ in range(10)]
    ours, theirs = [], []
    for x, y in batches:
        loss, _ = train_step(model, x, y, opt, crit)
        torch_opt.zero_grad()
        t_loss = torch_crit(twin(torch.from_numpy(x)), torch.from_numpy(y))
        t_loss.backward()
        torch_opt.step()
        ours.append(loss)
        theirs.append(t_loss.item())
    np.testing.assert_allclose(ours, theirs, rtol=1e-8, atol=0)

    final = {k: v.detach().numpy() for k, v in twin.state_dict().items()}
    assert final.keys() == model.state_dict().keys()
    for k, v in model.state_dict().items():
        scale = np.abs(final[k]).max()
        if scale < 1e-12:
            # the shift of a BatchNorm that feeds another BatchNorm through linear layers
            # has an exactly zero gradient: both sides hold only rounding noise
            assert np.abs(v).max() < 1e-12, k
        else:
            assert np.abs(v - final[k]).max() <= 1e-8 * scale, k


# -- the `ghostnp train` job -----------------------------------------------------------
def test_train_main_smoke(tmp_path, monkeypatch):
    real = train_job.get_dataset

    def small(name, root=None, train=True, size=None):  # a slice keeps the test quick
        x, y = real(name, root, train=train, size=size)
        return (x[:160], y[:160]) if train else (x[:64], y[:64])

    monkeypatch.setattr(train_job, "get_dataset", small)
    lines = []
    out = train_main(
        width=0.1, epochs=1, batch_size=32, progress=False, out=tmp_path, log=lines.append
    )
    for key in ("test_accuracy", "params", "macs", "seconds", "checkpoint", "curves", "epochs"):
        assert key in out
    assert 0 <= out["test_accuracy"] <= 1
    assert out["epochs"] == 1 and len(out["history"]) == 1
    assert set(out["history"][0]) == EPOCH_KEYS
    assert out["params"] == tiny().num_parameters()
    assert (tmp_path / "last.npz").is_file() and (tmp_path / "best.npz").is_file()
    png = (tmp_path / "curves.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    assert "parameters" in lines[0] and "test accuracy" in lines[-2]
    meta = load_checkpoint(out["checkpoint"], tiny(seed=3))
    assert meta["config"]["width"] == 0.1 and meta["config"]["dataset"] == "digits"


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(epochs=0), ValueError, "epochs must be an int >= 1"),
        (dict(batch_size=0), ValueError, "batch_size must be an int >= 1"),
        (dict(lr=0.0), ValueError, "lr must be a number > 0"),
        (dict(lr=float("nan")), ValueError, "lr must be a number > 0"),
        (dict(model="ghostnet_999"), ValueError, "unknown model 'ghostnet_999'"),
        (dict(model="resnet56", width=0.5), ValueError, "fixed width"),
        (dict(width=-1.0), ValueError, "width must be a number > 0"),
        (dict(dataset="imagenet"), ValueError, "unknown dataset 'imagenet'"),
        (dict(dataset="mnist"), ValueError, "give its folder as data_dir"),
        (dict(dataset="cifar10", data_dir="/no/such/dir"), FileNotFoundError, "/no/such/dir"),
        (dict(optimizer="lbfgs"), ValueError, "unknown optimizer 'lbfgs'"),
        (dict(image_size=4), ValueError, "at least 8"),
        (dict(resume="/no/such/ckpt.npz"), FileNotFoundError, "resume"),
    ],
)
def test_train_main_rejects_bad_options(kwargs, error, match, tmp_path):
    with pytest.raises(error, match=match) as info:
        train_main(progress=False, out=tmp_path, log=None, **kwargs)
    assert "\n" not in str(info.value)
    assert not any(tmp_path.iterdir())
