"""A NaN pixel must not poison a model: in train mode the model refuses non-finite input
before any layer runs, and fit stops at the first bad batch or loss, keeping the last
good checkpoint and the running statistics as they were."""

from __future__ import annotations

import numpy as np
import pytest

import ghostnp
from ghostnp import models
from ghostnp.checkpoint import load_checkpoint
from ghostnp.data import ArrayDataset, DataLoader, get_dataset
from ghostnp.errors import NonFiniteInputError
from ghostnp.nn import CrossEntropyLoss
from ghostnp.optim import SGD
from ghostnp.train import fit, train_step


def small():
    ghostnp.manual_seed(0)
    return models.ghostnet(0.1, num_classes=10, in_chans=1, dropout=0.2)


def batch(n=8, seed=0):
    return np.random.default_rng(seed).random((n, 1, 32, 32)).astype(np.float32)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_train_mode_refuses_non_finite_input_before_anything_changes(bad):
    model = small()
    model(batch())  # some state to keep: running statistics, caches, the generator
    before = model.state_dict()
    rng_before = ghostnp.rng.generator().bit_generator.state
    x = batch(seed=1)
    x[5, 0, 3, 4] = bad  # one pixel of one image
    with pytest.raises(ValueError, match="GhostNet") as info:
        model(x)
    assert isinstance(info.value, NonFiniteInputError)
    msg = str(info.value)
    assert "1 non-finite value(s) of 8192" in msg and "sample 5" in msg
    assert ("1 NaN" if np.isnan(bad) else "1 infinite") in msg
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)
    assert ghostnp.rng.generator().bit_generator.state == rng_before
    # the model still works: a clean batch in eval mode gives finite logits
    assert np.isfinite(model.eval()(batch(seed=2))).all()


def test_eval_mode_and_inner_layers_are_not_checked():
    """Only the outermost call in train mode checks (one reduction per batch): eval
    mode changes no state, so NaN in gives NaN out, as in PyTorch; so does a layer
    that holds no running statistics."""
    model = small().eval()
    x = batch()
    x[0, 0, 0, 0] = np.nan
    assert np.isnan(model(x)[0]).all()
    conv = ghostnp.nn.Conv2d(1, 2, 3)
    assert conv.training and np.isnan(conv(x)[0]).any()


def test_fit_stops_at_a_bad_batch_naming_epoch_and_step(tmp_path):
    x, y = get_dataset("digits", train=True, size=32)
    x, y = x[:96].copy(), y[:96]
    x[70, 0, 10, 10] = np.nan  # in the 2nd epoch's batches, wherever shuffling puts it
    model = small()
    loader = DataLoader(ArrayDataset(x, y), 16, shuffle=True, seed=0)
    opt = SGD(model.parameters(), lr=0.05, momentum=0.9)
    clean = DataLoader(ArrayDataset(x[:64], y[:64]), 32)
    with pytest.raises(ValueError, match=r"epoch 1/3, step \d/6: GhostNet: the input holds 1 "):
        fit(model, loader, clean, opt, epochs=3, checkpoint_dir=tmp_path, progress=False, log=None)
    assert not (tmp_path / "last.npz").exists()  # it was in the first epoch: nothing written
    assert all(np.isfinite(v).all() for v in model.state_dict().values())


def test_fit_keeps_the_last_good_checkpoint_when_the_input_goes_bad(tmp_path):
    x, y = get_dataset("digits", train=True, size=32)
    x, y = x[:64].copy(), y[:64]
    loader = DataLoader(ArrayDataset(x, y), 16, shuffle=True, seed=0)
    model = small()
    opt = SGD(model.parameters(), lr=0.05, momentum=0.9)

    def poison(batch_x, rng, calls=[]):  # noqa: B006 - counts the calls across epochs
        calls.append(1)
        if len(calls) == 6:  # epoch 2, step 2
            batch_x = batch_x.copy()
            batch_x[0, 0, 0, 0] = np.inf
        return batch_x

    with pytest.raises(NonFiniteInputError, match=r"epoch 2/3, step 2/4"):
        fit(
            model, loader, None, opt, epochs=3, checkpoint_dir=tmp_path, progress=False,
            log=None, augment=poison,
        )  # fmt: skip
    assert load_checkpoint(tmp_path / "last.npz", small())["epoch"] == 1


def test_a_nan_loss_leaves_the_running_statistics_as_they_were():
    model = small()
    model(batch())
    before = model.state_dict()
    opt = SGD(model.parameters(), lr=0.1)
    logits_nan = CrossEntropyLoss()

    class NanLoss(CrossEntropyLoss):
        def forward(self, logits, target):
            return float("nan") + 0 * logits_nan(logits, target)

    loss, _ = train_step(model, batch(seed=3), np.arange(8) % 10, opt, NanLoss())
    assert np.isnan(loss)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k], err_msg=k)
