"""Ctrl-C: a guarded optimizer step is never cut in half, Numba's SystemError becomes
KeyboardInterrupt, fit leaves a consistent state and the history so far, and
``ghostnp train`` stopped by SIGINT prints one line, exits 130 and resumes exactly."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import run_cli

import ghostnp
from ghostnp import models
from ghostnp.checkpoint import load_checkpoint
from ghostnp.data import ArrayDataset, DataLoader, get_dataset
from ghostnp.interrupts import DeferredInterrupt, defer_interrupts
from ghostnp.kernels import dispatch
from ghostnp.nn import CrossEntropyLoss
from ghostnp.optim import SGD, WarmupCosine
from ghostnp.train import TrainingInterrupted, fit


def ctrl_c():
    """Deliver SIGINT to this process now (its handler runs at the next bytecode)."""
    os.kill(os.getpid(), signal.SIGINT)


# -- the guard -------------------------------------------------------------------------
def test_defer_interrupts_finishes_the_block_then_raises():
    done = []
    with pytest.raises(DeferredInterrupt):
        with defer_interrupts():
            ctrl_c()
            done.append("after the signal")  # still runs: the interrupt waits
    assert done == ["after the signal"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with defer_interrupts():  # no signal, no exception
        done.append("quiet")
    assert isinstance(DeferredInterrupt(), KeyboardInterrupt)


# -- Numba's SystemError ---------------------------------------------------------------
def test_interrupt_wrapped_in_system_errors_comes_out_as_keyboard_interrupt(monkeypatch):
    def kernel(x):
        try:
            try:
                raise KeyboardInterrupt
            except KeyboardInterrupt as e:
                raise SystemError("<function _numba_unpickle> returned a result") from e
        except SystemError as e:
            raise SystemError("CPUDispatcher(<function _bn_stats>) returned a result") from e

    def broken(x):
        raise SystemError("a real one")

    x = np.zeros((1, 1, 1, 1))
    monkeypatch.setattr(dispatch, "_backend", lambda: SimpleNamespace(batch_norm_stats=kernel))
    with pytest.raises(KeyboardInterrupt):
        dispatch.batch_norm_stats(x)
    monkeypatch.setattr(dispatch, "_backend", lambda: SimpleNamespace(batch_norm_stats=broken))
    with pytest.raises(SystemError, match="a real one"):
        dispatch.batch_norm_stats(x)


@pytest.mark.slow
def test_sigint_during_numba_kernels_is_a_keyboard_interrupt(tmp_path):
    """SIGINT while compiled kernels run in a loop, 12 times at different moments:
    every time the caller sees KeyboardInterrupt, never SystemError."""
    script = textwrap.dedent(
        """
        import os, signal, threading
        import numpy as np
        from ghostnp.kernels import dispatch
        x = np.random.default_rng(0).standard_normal((8, 32, 56, 56)).astype(np.float32)
        c = np.ones(32, np.float32)
        dispatch.batch_norm_normalize(x, 0 * c, c, c, 0 * c, True)
        seen = []
        for trial in range(12):
            timer = threading.Timer(0.05 + 0.011 * trial, os.kill, (os.getpid(), signal.SIGINT))
            try:
                timer.start()  # inside: on a busy machine the signal may come this early
                while True:
                    dispatch.batch_norm_normalize(x, 0 * c, c, c, 0 * c, True)
                    dispatch.batch_norm_stats(x)
            except BaseException as e:
                seen.append(type(e).__name__)
            timer.join()
        print(" ".join(seen))
        """
    )
    env = dict(os.environ, GHOSTNP_BACKEND="numba")
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["KeyboardInterrupt"] * 12


# -- fit in Python ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits():
    x, y = get_dataset("digits", train=True, size=16)
    return x[:96], y[:96]


def setup(digits, epochs=3):
    ghostnp.manual_seed(0)
    model = models.ghostnet(0.1, num_classes=10, in_chans=1, dropout=0.2)
    x, y = digits
    train = DataLoader(ArrayDataset(x[:64], y[:64]), 16, shuffle=True, seed=0)
    val = DataLoader(ArrayDataset(x[64:], y[64:]), 32)
    opt = SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    sched = WarmupCosine(opt, warmup_steps=2, total_steps=epochs * len(train))
    return model, train, val, opt, sched


def run(parts, epochs=3, **kw):
    model, train, val, opt, sched = parts
    return fit(
        model, train, val, opt, sched, epochs=epochs, criterion=CrossEntropyLoss(0.1),
        progress=False, log=None, seed=0, **kw,
    )  # fmt: skip


def state(parts):
    """Everything fit changes: model, optimizer and scheduler state, the generator."""
    model, _, _, opt, sched = parts
    flat = {f"model/{k}": v for k, v in model.state_dict().items()}
    for i, s in opt.state_dict()["state"].items():
        flat.update({f"opt/{i}/{k}": np.asarray(v) for k, v in s.items()})
    flat["sched"] = np.array(sched.last_epoch)
    flat["rng"] = np.array(str(ghostnp.rng.generator().bit_generator.state))
    return flat


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def interrupt_at(epoch, step, when):
    """An ``augment`` hook that presses Ctrl-C at (epoch, step), both from 1: "before"
    the step's forward pass, or "during" it (half-way through the network)."""
    seen = []

    def hook(x, rng):
        seen.append(1)
        if len(seen) == (epoch - 1) * 4 + step:
            if when == "before":
                ctrl_c()
            else:
                hook.arm = True
        return x

    hook.arm = False
    return hook


def test_an_interrupt_mid_forward_leaves_the_state_of_the_last_finished_step(digits, tmp_path):
    # reference: Ctrl-C before the forward of epoch 2, step 3 (steps 1-2 done)
    ref = setup(digits)
    with pytest.raises(TrainingInterrupted) as info:
        run(ref, augment=interrupt_at(2, 3, "before"), checkpoint_dir=tmp_path / "a")
    expected = state(ref)
    e = info.value
    assert (e.epoch, e.step, e.steps, e.epochs) == (2, 3, 4, 3)
    assert e.checkpoint == tmp_path / "a" / "last.npz" and e.checkpoint_epoch == 1
    assert len(e.history) == 1 and isinstance(e, KeyboardInterrupt)
    assert str(e) == (
        f"interrupted in epoch 2 (step 3 of 4); last checkpoint {e.checkpoint} (epoch 1)"
    )

    # Ctrl-C half-way through the same step's forward pass: batch-norm statistics of
    # the first half already moved, the generator drew dropout masks; all put back
    parts = setup(digits)
    hook = interrupt_at(2, 3, "during")
    middle = dict(parts[0].named_modules())["blocks.3"]
    middle.register_forward_hook(lambda *_: ctrl_c() if hook.arm else None)
    with pytest.raises(TrainingInterrupted) as info:
        run(parts, augment=hook, checkpoint_dir=tmp_path / "b")
    assert (info.value.epoch, info.value.step) == (2, 3)
    assert_same(state(parts), expected)


def test_an_interrupt_inside_the_optimizer_step_waits_for_it(digits, tmp_path, monkeypatch):
    """Ctrl-C after the first parameter of a step was updated: the step completes
    (every parameter and the schedule move), then the interrupt is raised."""
    ref = setup(digits)
    with pytest.raises(TrainingInterrupted):
        run(ref, augment=interrupt_at(2, 3, "before"))  # after step 2 finished
    expected = state(ref)

    parts = setup(digits)
    update, calls = SGD._update, []

    def update_then_ctrl_c(self, p, grad, st, group):
        update(self, p, grad, st, group)
        calls.append(1)
        if len(calls) == 5 * len(parts[0].parameters()) + 1:  # epoch 2 step 2, 1st param
            ctrl_c()

    monkeypatch.setattr(SGD, "_update", update_then_ctrl_c)
    with pytest.raises(TrainingInterrupted) as info:
        run(parts, augment=lambda x, rng: x)
    assert (info.value.epoch, info.value.step) == (2, 2)
    assert info.value.checkpoint is None  # no checkpoint_dir
    monkeypatch.undo()
    assert_same(state(parts), expected)


def test_after_an_interrupt_a_resume_gives_the_uninterrupted_run(digits, tmp_path):
    whole = run(setup(digits), checkpoint_dir=tmp_path / "whole")
    parts = setup(digits)
    with pytest.raises(TrainingInterrupted) as info:
        run(parts, augment=interrupt_at(3, 2, "before"), checkpoint_dir=tmp_path / "cut")
    so_far, want = info.value.history.to_dict(), whole.to_dict()
    for k in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
        assert so_far[k] == want[k][:2], k
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    resumed = run(setup(digits), resume=info.value.checkpoint, checkpoint_dir=tmp_path / "cut")
    got = resumed.to_dict()
    for k in ("train_loss", "train_acc", "val_loss", "val_acc", "lr"):
        assert got[k] == want[k], k


# -- `ghostnp train` in a terminal -----------------------------------------------------
def ctrl_c_when(args, cwd, ready, never_ready: str) -> tuple[int, str, str]:
    """Run ``ghostnp ARGS`` in ``cwd``, send it SIGINT (Ctrl-C) as soon as ``ready(stderr
    so far)`` holds, and return (exit code, stdout, stderr)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ghostnp", *args],
        cwd=cwd,
        env=dict(os.environ, MPLBACKEND="Agg"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    seen = b""
    try:
        while not ready(seen.decode(errors="replace")):
            chunk = os.read(proc.stderr.fileno(), 4096)
            assert chunk, f"{never_ready}: {seen.decode(errors='replace')[-2000:]}"
            seen += chunk
        proc.send_signal(signal.SIGINT)
        out, rest = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out.decode(errors="replace"), (seen + rest).decode(errors="replace")


PROGRESS = re.compile(r"epoch 2/3:.*?\| *(\d+)/(\d+) \[")


@pytest.mark.slow
def test_ctrl_c_in_ghostnp_train_prints_one_line_and_resumes_exactly(tmp_path):
    settings = ["--width", "0.1", "--batch-size", "16", "--limit-batches", "40"]
    full = run_cli(["train", "--epochs", "3", "--json", "--out", "full", *settings], cwd=tmp_path)
    assert full.returncode == 0, full.stderr[-3000:]
    want = json.loads(full.stdout)["history"]

    # wait until the progress bar shows a finished step of epoch 2, then press Ctrl-C
    code, _, err = ctrl_c_when(
        ["train", "--epochs", "3", "--out", "cut", *settings],
        tmp_path,
        lambda seen: any(int(m[1]) >= 1 for m in PROGRESS.finditer(seen)),
        "the run ended before epoch 2 showed progress",
    )
    assert code == 130, err[-3000:]
    assert "Traceback" not in err and "SystemError" not in err
    last = err.strip().splitlines()[-1]
    assert re.fullmatch(
        r"ghostnp train: interrupted in epoch 2 \(step \d+ of 40\); last checkpoint "
        r"cut/last\.npz \(epoch 1\); resume with: "
        r"ghostnp train --resume cut/last\.npz --epochs 3 --out cut",
        last,
    ), last
    assert (
        load_checkpoint(tmp_path / "cut/last.npz", models.ghostnet(0.1, 10, in_chans=1))["epoch"]
        == 1
    )

    # the command it printed continues the run to the same losses
    command = last.split("resume with: ")[1].split()
    assert command[:2] == ["ghostnp", "train"]
    resumed = run_cli([*command[1:], "--json", "--no-progress"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    got = json.loads(resumed.stdout)["history"]
    for a, b in zip(got, want, strict=True):
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr"):
            assert a[key] == b[key], (a["epoch"], key)


# -- other long commands ------------------------------------------------------------------
def test_every_command_turns_ctrl_c_into_one_line_and_130(monkeypatch, capsys):
    import ghostnp.bench
    import ghostnp.gradcheck
    from ghostnp.cli import main

    def bench(**kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(ghostnp.bench, "run_bench", bench)
    assert main(["bench"]) == 130
    assert capsys.readouterr().err == "ghostnp bench: interrupted\n"

    real = ghostnp.gradcheck.iter_layer_checks

    def two_then_ctrl_c(**kw):
        count, checks = real(**kw)

        def gen():
            for i, item in enumerate(checks):
                if i == 2:
                    raise KeyboardInterrupt
                yield item

        return count, gen()

    monkeypatch.setattr(ghostnp.gradcheck, "iter_layer_checks", two_then_ctrl_c)
    assert main(["gradcheck", "--backend", "numpy"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    count = real()[0]
    assert err == [f"ghostnp gradcheck: interrupted after 2 of {count} layers (0 failed so far)"]


def test_ctrl_c_while_grading_an_assignment_prints_one_line_and_exits_130(tmp_path):
    """`ghostnp assignment grade` stopped by SIGINT inside a student's endless loop (which
    the time limit would end only after 20 s) says in which check it stopped."""
    from ghostnp import assignments

    folder = tmp_path / "hw"
    assignments.start("im2col", folder)
    (folder / "conv.py").write_text(
        textwrap.dedent(
            """
            import sys

            def out_size(size, k, stride, padding):
                print("out_size is running", file=sys.stderr, flush=True)
                while True:
                    pass
            """
        )
    )
    code, out, err = ctrl_c_when(
        ["assignment", "grade", str(folder)],
        tmp_path,
        lambda seen: "out_size is running\n" in seen,  # the whole line: the loop has begun
        "grading ended before the loop started",
    )
    assert code == 130, err[-3000:]
    assert "Traceback" not in err and out == ""
    last = err.strip().splitlines()[-1]
    assert re.fullmatch(
        r"ghostnp assignment: interrupted in check 1 of \d+ "
        r"\(out_size: output length \(floor rule\)\); nothing was scored",
        last,
    ), last
