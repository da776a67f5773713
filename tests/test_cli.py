"""The command line as a new user meets it, through real ``ghostnp`` processes: options
that contradict each other are errors, a resumed run trains on with a stretched
schedule and says so, ``--json`` prints one JSON document, ``--help`` shows every
default, GhostNetV2 gets an input size it can take."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from helpers import EPOCH_KEYS, one_line_error, run_cli

import ghostnp.train
from ghostnp.checkpoint import load_checkpoint
from ghostnp.cli import build_parser
from ghostnp.cli import train as train_job
from ghostnp.models import ghostnetv3
from ghostnp.viz import plot_history

QUICK = ["--width", "0.1", "--limit-batches", "2", "--no-progress"]
RESULT_KEYS = {
    "test_accuracy",
    "test_loss",
    "params",
    "macs",
    "seconds",
    "checkpoint",
    "best_checkpoint",
    "curves",
    "epochs",
    "config",
    "history",
}


@pytest.fixture(scope="module")
def two_epochs(tmp_path_factory):
    """``ghostnp train --epochs 2 --json`` (tiny and short): (folder, process, JSON)."""
    where = tmp_path_factory.mktemp("two_epochs")
    result = run_cli(["train", "--epochs", "2", "--json", *QUICK], cwd=where)
    assert result.returncode == 0, result.stderr[-3000:]
    return where, result, json.loads(result.stdout)


def test_json_is_the_only_thing_on_stdout(two_epochs):
    where, result, doc = two_epochs
    assert set(doc) == RESULT_KEYS
    assert [e["epoch"] for e in doc["history"]] == [1, 2]
    assert all(set(e) == EPOCH_KEYS for e in doc["history"])
    assert doc["epochs"] == 2 and doc["config"]["limit_batches"] == 2
    # the report went to stderr, the JSON document alone to stdout
    assert "test accuracy" in result.stderr and "test accuracy" not in result.stdout
    assert (where / doc["checkpoint"]).is_file() and (where / doc["curves"]).is_file()


def test_resume_past_the_end_stretches_the_schedule(two_epochs, tmp_path):
    where, _, first = two_epochs
    assert first["history"][-1]["lr"] > 0
    result = run_cli(
        [
            "train",
            "--resume",
            "runs/ghostnp/last.npz",
            "--epochs",
            "4",
            "--json",
            "--out",
            tmp_path,
        ],
        cwd=where,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    doc = json.loads(result.stdout)
    history = doc["history"]
    assert [e["epoch"] for e in history] == [1, 2, 3, 4]
    assert history[:2] == first["history"]  # the first two epochs are the checkpoint's
    assert history[2]["lr"] > history[3]["lr"] > 0  # the new epochs train, cosine down
    header = [line for line in result.stderr.splitlines() if line.startswith("resuming")]
    assert len(header) == 1, result.stderr
    assert "epochs 3-4 of 4" in header[0] and "stretched from 2 epochs" in header[0]
    assert f"lr {history[2]['lr']:.3g} now" in header[0]  # the lr the header names is true
    assert doc["config"]["epochs"] == 4 and doc["config"]["width"] == 0.1


def test_resume_with_a_contradicting_setting_is_an_error(two_epochs, tmp_path):
    where, _, _ = two_epochs
    result = run_cli(
        ["train", "--resume", "runs/ghostnp/last.npz", "--model", "ghostnetv2", "--out", tmp_path],
        cwd=where,
    )
    assert "--model ghostnetv2 disagrees with" in one_line_error(result, "train")
    assert not any(tmp_path.iterdir())


def test_data_dir_with_the_builtin_digits_is_an_error(tmp_path):
    result = run_cli(["train", "--data-dir", "/nonexistent"], cwd=tmp_path)
    line = one_line_error(result, "train")
    assert "data_dir" in line and "built in" in line
    assert not (tmp_path / "runs").exists()


def test_visualize_model_must_agree_with_the_checkpoint(two_epochs, tmp_path):
    from matplotlib import image as mpimg

    where, _, _ = two_epochs
    photo = tmp_path / "photo.png"
    mpimg.imsave(photo, np.random.default_rng(0).random((32, 32, 3)))
    ckpt = where / "runs/ghostnp/last.npz"  # ghostnet at width 0.1
    out = tmp_path / "maps.png"
    result = run_cli(
        ["visualize", photo, "--model", "ghostnet_050", "--checkpoint", ckpt, "--out", out],
        cwd=tmp_path,
    )
    line = one_line_error(result, "visualize")
    assert "ghostnet_050 disagrees with" in line and "ghostnet (width 0.1)" in line
    assert not out.exists()
    result = run_cli(["visualize", photo, "--checkpoint", ckpt, "--out", out], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert out.is_file()


@pytest.mark.slow
def test_ghostnetv2_trains_at_a_size_it_can_take(tmp_path):
    result = run_cli(
        ["train", "--model", "ghostnetv2", "--epochs", "1", "--json", *QUICK], cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "training at 64x64" in result.stderr
    assert json.loads(result.stdout)["config"]["image_size"] == 64
    # a size chosen by the user that is too small is refused, naming the smallest
    result = run_cli(
        ["train", "--model", "ghostnetv2", "--image-size", "32", *QUICK, "--out", "other"],
        cwd=tmp_path,
    )
    assert "at least 33" in one_line_error(result, "train")
    assert not (tmp_path / "other").exists()


def _options(parser: argparse.ArgumentParser):
    """(command, action) for every option of every subcommand."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        for action in p._actions:
            if not isinstance(action, argparse._HelpAction):
                yield name, p, action


def test_help_shows_every_default_and_choice():
    for command, parser, action in _options(build_parser()):
        text = parser.format_help()
        label = f"{command} {action.dest}"
        if not action.option_strings or action.nargs == 0:
            assert action.help, label  # arguments and on/off flags: described
            continue
        assert "default" in (action.help or "") or action.default is not None, label
        if action.default is not None:
            assert f"(default: {action.default})" in " ".join(text.split()), label
        if action.choices:
            assert "{" + ",".join(action.choices) + "}" in text, label
        elif action.dest == "model":
            assert "ghostnet_100" in action.help and "ghost_resnet56" in action.help, label


def test_train_help_through_the_command(tmp_path):
    result = run_cli(["train", "--help"], cwd=tmp_path)
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    for shown in (
        "(default: ghostnet",
        "(default: 10;",
        "(default: 64;",
        "(default: runs/ghostnp)",
        "{sgd,adam,adamw}",
        "{digits,mnist,fashion-mnist,cifar10}",
        "--limit-batches N",
    ):
        assert shown in text, shown


def test_validation_and_test_losses_are_computed_the_same_way(tmp_path, monkeypatch):
    real_get, real_evaluate = train_job.get_dataset, train_job.evaluate
    smoothing = []

    def small(name, root=None, train=True, size=None):
        x, y = real_get(name, root, train=train, size=size)
        return (x[:160], y[:160]) if train else (x[:64], y[:64])

    def spy(model, loader, criterion=None):
        smoothing.append(0.0 if criterion is None else criterion.label_smoothing)
        return real_evaluate(model, loader, criterion)

    monkeypatch.setattr(train_job, "get_dataset", small)
    monkeypatch.setattr(train_job, "evaluate", spy)  # the test
    monkeypatch.setattr(ghostnp.train, "evaluate", spy)  # the validations inside fit
    lines = []
    train_job.train_main(
        width=0.1, epochs=2, batch_size=32, progress=False, out=tmp_path, log=lines.append
    )
    assert smoothing == [0.0, 0.0, 0.0]  # two validations and the test: plain cross-entropy
    assert any("validation and test plain cross-entropy" in line for line in lines)
    assert any("label smoothing 0.1" in line for line in lines)


def test_loss_curves_survive_a_spike():
    history = {
        "train_loss": [2.3, 17.3, 0.9, 0.4, 0.3],
        "val_loss": [2.1, 5.0, 0.8, 0.5, 0.35],
        "train_acc": [0.1, 0.2, 0.7, 0.9, 0.95],
        "val_acc": [0.1, 0.3, 0.75, 0.9, 0.93],
    }
    fig = plot_history(history)
    ax_loss = fig.axes[0]
    assert ax_loss.get_yscale() == "log"
    low, high = ax_loss.get_ylim()
    # the late losses are not squeezed against the axis: at least a fifth of its height
    span = np.log(high) - np.log(low)
    assert (np.log(0.3) - np.log(low)) / span < 0.2 < (np.log(0.9) - np.log(low)) / span


def test_summary_of_ghostnetv3_gives_both_forms(tmp_path):
    """The train form is the table; the deploy form (after reparameterize()) is
    GhostNetV2's structure with conv biases instead of batch norms, so its multiply-adds
    are GhostNetV2's, counted here on a GhostNetV2."""
    from ghostnp.models import ghostnetv2_100
    from ghostnp.profile import summary

    result = run_cli(["summary", "ghostnetv3_100", "--format", "json"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    doc = json.loads(result.stdout)
    train, deploy = doc["forms"]["train"], doc["forms"]["deploy"]
    assert train == {"total_params": doc["total_params"], "total_macs": doc["total_macs"]}
    assert train["total_params"] == 8_129_028 and deploy["total_params"] == 6_147_588
    assert deploy["total_macs"] == summary(ghostnetv2_100(), (3, 224, 224)).total_macs
    assert train["total_macs"] > deploy["total_macs"]
    table = run_cli(["summary", "ghostnetv3_100"], cwd=tmp_path)
    assert table.returncode == 0, table.stderr[-3000:]
    rows = {line.split("  ")[0]: line.split() for line in table.stdout.splitlines()}
    assert rows["train (as built)"][-2:] == [
        f"{train['total_params']:,}",
        f"{train['total_macs']:,}",
    ]
    deploy_row = rows["deploy (after reparameterize())"]
    assert deploy_row[-2:] == [f"{deploy['total_params']:,}", f"{deploy['total_macs']:,}"]
    # a network without a deploy form has no such table
    plain = run_cli(["summary", "ghostnet_050", "--format", "json"], cwd=tmp_path)
    assert "forms" not in json.loads(plain.stdout)


@pytest.mark.slow
def test_ghostnetv3_trains_on_the_digits_and_its_maps_can_be_drawn(tmp_path):
    result = run_cli(
        ["train", "--model", "ghostnetv3", "--epochs", "1", "--json", *QUICK], cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    doc = json.loads(result.stdout)
    assert doc["config"]["model"] == "ghostnetv3" and doc["config"]["width"] == 0.1
    assert doc["config"]["image_size"] == 64  # DFC attention needs more than 32x32
    assert 0.0 <= doc["test_accuracy"] <= 1.0 and len(doc["history"]) == 1
    model = ghostnetv3(0.1, num_classes=10, in_chans=1)
    meta = load_checkpoint(tmp_path / doc["checkpoint"], model)  # the train form's keys
    assert meta["config"]["model"] == "ghostnetv3"
    from matplotlib import image as mpimg

    mpimg.imsave(tmp_path / "photo.png", np.random.default_rng(0).random((40, 40, 3)))
    drawn = run_cli(
        ["visualize", "photo.png", "--checkpoint", doc["checkpoint"], "--out", "v3.png"],
        cwd=tmp_path,
    )
    assert drawn.returncode == 0, drawn.stderr[-3000:]
    assert (tmp_path / "v3.png").read_bytes()[:4] == b"\x89PNG"
