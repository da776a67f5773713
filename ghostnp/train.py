"""Training: one step, an epoch loop with checkpoints and resume, and evaluation.

    history = fit(model, train_loader, val_loader, optimizer, scheduler, epochs=10,
                  checkpoint_dir="runs/exp1")
    val_loss, val_acc = evaluate(model, val_loader)

One training step is the whole algorithm:

    logits = model(x)                        # (B, C, H, W) -> (B, K)
    loss = criterion(logits, y)              # mean over the batch, a float
    model.backward(criterion.backward())     # dlogits (B, K) -> every p.grad
    optimizer.step()                         # p <- p - lr * update(p.grad)

Everything else here is bookkeeping around it: metrics, a progress bar, the learning
rate schedule, checkpoints after every epoch, and a clear stop when the loss stops
being a finite number. Batches are processed as whole arrays; nothing loops over the
batch dimension in Python. ``ghostnp train`` (`ghostnp.cli.train`) runs this loop with
a recipe of defaults on a data set by name.
"""

from __future__ import annotations

import itertools
import math
import numbers
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .checkpoint import load_checkpoint, save_checkpoint
from .errors import Interrupted, NonFiniteInputError
from .grad_mode import no_grad
from .interrupts import defer_interrupts
from .nn.layers import CrossEntropyLoss
from .rng import generator, manual_seed

__all__ = [
    "History",
    "TrainingDiverged",
    "TrainingInterrupted",
    "train_step",
    "evaluate",
    "fit",
    "history_records",
    "check_positive_int",
]


class TrainingDiverged(FloatingPointError):
    """The training loss became NaN or infinite; the message says where and what was kept."""


class TrainingInterrupted(Interrupted):
    """Ctrl-C stopped `fit`. Model, optimizer and scheduler are as after the last
    finished step; ``history`` holds every finished epoch.

    ``epoch`` and ``step`` (from 1; ``step`` None between epochs' steps) say where it
    stopped, of ``epochs`` and ``steps``; ``checkpoint`` is the newest complete
    checkpoint of this run on disk (or the one it resumed from; None if neither) and
    ``checkpoint_epoch`` the number of epochs it holds.
    """

    def __init__(self, history, epoch, epochs, step, steps, checkpoint, checkpoint_epoch):
        self.history, self.epoch, self.epochs = history, epoch, epochs
        self.step, self.steps = step, steps
        self.checkpoint, self.checkpoint_epoch = checkpoint, checkpoint_epoch
        if epoch is None:
            where = "interrupted before the first epoch"
        elif step is None:
            where = f"interrupted in epoch {epoch} (after its {steps} steps)"
        else:
            where = f"interrupted in epoch {epoch} (step {step} of {steps})"
        if checkpoint is None:
            kept = "no checkpoint yet (one is written at the end of every epoch)"
        else:
            kept = f"last checkpoint {checkpoint} (epoch {checkpoint_epoch})"
        super().__init__(f"{where}; {kept}")


@dataclass
class History:
    """Per-epoch metrics of a run, one list entry per completed epoch.

    ``train_loss``/``train_acc`` are averaged over the epoch's training batches (as the
    weights changed during the epoch), ``val_loss``/``val_acc`` measured after it in
    eval mode, ``lr`` is the learning rate of the first param group at the epoch's
    first step, ``seconds`` the wall time of the epoch (training and validation).
    """

    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.train_loss)

    def append(self, **values: float) -> None:
        """Add one epoch: a value for every field."""
        names = [f.name for f in fields(self)]
        if sorted(values) != sorted(names):
            raise ValueError(f"History.append: expected values for {names}, got {sorted(values)}")
        for name in names:
            getattr(self, name).append(float(values[name]))

    def to_dict(self) -> dict[str, list[float]]:
        """``{field: list of per-epoch floats}`` (copies; JSON-serializable)."""
        return {f.name: list(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, d) -> History:
        """Rebuild a History from ``to_dict()``; every field must be present, equal lengths."""
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in d]
        if missing:
            raise ValueError(f"History.from_dict: missing {missing}")
        lengths = {len(d[n]) for n in names}
        if len(lengths) != 1:
            raise ValueError(f"History.from_dict: fields have different lengths {sorted(lengths)}")
        return cls(**{n: [float(v) for v in d[n]] for n in names})

    @property
    def best_epoch(self) -> int | None:
        """The epoch (from 1) with the highest val_acc (the first of ties), or None."""
        acc = np.asarray(self.val_acc, dtype=np.float64)
        if acc.size == 0 or np.all(np.isnan(acc)):
            return None
        return int(np.nanargmax(acc)) + 1


class _BeforeStep:
    """What a forward pass changes besides the gradients, kept so it can be put back:
    every buffer (BatchNorm replaces its running statistics with new arrays, so keeping
    references is enough) and the state of ghostnp's generator (dropout masks)."""

    def __init__(self, model):
        self.model = model
        self.buffers = [
            (m, name, b) for _, m in model.named_modules() for name, b in m._buffers.items()
        ]
        self.rng = _rng_state()

    def restore(self) -> None:
        for m, name, b in self.buffers:
            setattr(m, name, b)
        _set_rng_state(self.rng)
        self.model.zero_grad()


def train_step(model, x, y, optimizer, criterion, scheduler=None) -> tuple[float, np.ndarray]:
    """One optimisation step on a batch ``x (B, C, H, W)``, ``y (B,)``; returns ``(loss, logits)``.

    Clears the gradients, runs forward and backward, and updates the weights (then
    steps ``scheduler``, if given). ``logits`` is ``(B, K)``. The step is all or
    nothing: if the loss is NaN or infinite, or the forward or backward pass is
    interrupted (Ctrl-C) or fails, the model's buffers (batch-norm running statistics)
    and ghostnp's generator are put back as they were and nothing is updated; a NaN
    loss is returned for the caller to judge. Ctrl-C during the update itself waits
    for it to finish (see `ghostnp.interrupts.defer_interrupts`).
    """
    before = _BeforeStep(model)
    try:
        model.zero_grad()
        logits = model(x)
        loss = criterion(logits, y)
        if math.isfinite(loss):
            model.backward(criterion.backward())
    except BaseException:  # Ctrl-C or an error half-way: undo what the forward changed
        before.restore()
        raise
    if not math.isfinite(loss):
        before.restore()
        return loss, logits
    with defer_interrupts():  # every parameter and the schedule move together, or none
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return loss, logits


def evaluate(model, loader, criterion=None) -> tuple[float, float]:
    """``(mean loss, accuracy)`` of ``model`` over every sample of ``loader``, in eval mode.

    The loss is ``criterion`` (default: plain cross-entropy) averaged over samples, so
    a smaller last batch counts by its size; accuracy is the fraction of samples whose
    largest logit is the label. It runs under `ghostnp.no_grad`, so no layer keeps a
    backward cache (a fraction of the memory of a training forward). The model's
    train/eval mode is restored afterwards.
    """
    criterion = CrossEntropyLoss() if criterion is None else criterion
    was_training = model.training
    model.eval()
    total, loss_sum, correct = 0, 0.0, 0
    try:
        with no_grad():
            for x, y in loader:
                logits = model(x)
                loss_sum += criterion(logits, y) * len(y)
                correct += int(np.count_nonzero(logits.argmax(axis=1) == y))
                total += len(y)
    finally:
        model.train(was_training)
    if total == 0:
        raise ValueError("evaluate: the loader yielded no samples")
    return loss_sum / total, correct / total


def _rng_state() -> dict:
    """The state of ghostnp's generator (dropout masks), JSON-serializable."""
    return generator().bit_generator.state


def _set_rng_state(state: dict) -> None:
    generator().bit_generator.state = state


def fit(
    model,
    train_loader,
    val_loader,
    optimizer,
    scheduler=None,
    epochs: int = 10,
    criterion=None,
    checkpoint_dir=None,
    resume=None,
    progress: bool = True,
    seed: int | None = None,
    log=print,
    *,
    augment=None,
    scheduler_interval: str = "step",
    config: dict | None = None,
    eval_criterion=None,
    limit_batches: int | None = None,
) -> History:
    """Train ``model`` for ``epochs`` epochs; returns the `History` of every epoch.

    Each epoch: train mode, one `train_step` per batch of ``train_loader``
    (``x (B, C, H, W)``, ``y (B,)``; only the first ``limit_batches`` if given) under a
    tqdm bar showing running loss, accuracy and images/s, then `evaluate` on
    ``val_loader`` with ``eval_criterion`` (default: ``criterion``; ``val_loader`` may
    be None: val metrics are then NaN and no best checkpoint is kept), and a line
    through ``log`` (None: silent).

    Schedule: with ``scheduler_interval="step"`` (the default) ``scheduler.step()`` runs
    after every optimizer step, so a schedule is written in steps (``WarmupCosine(opt,
    warmup_steps, total_steps=epochs * len(train_loader))``); with ``"epoch"`` it runs
    once after each epoch (``StepLR(opt, step_size=30)`` in epochs).

    ``augment(x, rng) -> x``, if given, transforms each training batch with a generator
    seeded from ``(train_loader.seed, epoch, step)``, so augmentation repeats exactly
    and a resumed run continues as an uninterrupted one would.

    Checkpoints (``checkpoint_dir``): ``last.npz`` after every epoch and ``best.npz``
    whenever the val accuracy beats every earlier epoch. Their meta holds the epoch
    count, the history, the best val accuracy, the loader seed and the state of
    ghostnp's generator, and ``config`` (a JSON-serializable dict describing the run).
    ``resume`` (a checkpoint path) loads model, optimizer, scheduler and all of that,
    and continues at the next epoch: resuming gives the same history as not stopping.
    If the checkpoint was written for another number of ``epochs``, the schedule keeps
    the settings of the ``scheduler`` given (built for the new total) and takes only
    its position from the checkpoint: the schedule is stretched (or shrunk) to the new
    total from where it was.

    ``seed``: if given, ``manual_seed(seed)`` and ``train_loader.seed = seed`` first,
    so the same seed (and the same initial model) gives the same history.

    A NaN or infinite training loss stops the run with `TrainingDiverged`
    (a FloatingPointError) naming the epoch and step; the weights are not updated with
    it, and checkpoints already written are kept as they were. Non-finite input raises
    `ghostnp.NonFiniteInputError` (a ValueError) naming the epoch, step and model,
    before the model changes.

    Ctrl-C raises `TrainingInterrupted` (a KeyboardInterrupt) carrying the history so
    far and the newest checkpoint; model, optimizer and scheduler are left as after
    the last finished step, so a later call (or a resume) continues normally.
    """
    check_positive_int("fit: epochs", epochs)
    if scheduler_interval not in ("step", "epoch"):
        raise ValueError(
            f"fit: scheduler_interval must be 'step' or 'epoch', got {scheduler_interval!r}"
        )
    steps = len(train_loader)
    if limit_batches is not None:
        steps = min(steps, check_positive_int("fit: limit_batches", limit_batches))
    if steps == 0:
        raise ValueError("fit: train_loader yields no batches (empty data set, or drop_last)")
    log = log or (lambda *_: None)
    criterion = CrossEntropyLoss() if criterion is None else criterion
    eval_criterion = criterion if eval_criterion is None else eval_criterion
    ckpt_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
    if seed is not None:
        manual_seed(seed)
        train_loader.seed = int(seed)

    history, start, best = History(), 0, -math.inf
    if resume is not None:
        start, history, best = _resume(resume, model, optimizer, scheduler, train_loader, epochs)
        log(f"resumed from {resume} after epoch {start}")
        if start >= epochs:
            log(f"nothing to do: the checkpoint already has {start} of {epochs} epochs")

    last_path = None if ckpt_dir is None else ckpt_dir / "last.npz"
    # the newest complete checkpoint of this run: for the message of an interrupt
    kept = (None, None) if resume is None else (Path(resume), start)
    where = {"epoch": None, "step": None}
    step_scheduler = scheduler if scheduler_interval == "step" else None
    try:
        for epoch in range(start, epochs):
            where.update(epoch=epoch + 1, step=None)
            model.train()
            train_loader.set_epoch(epoch)
            lr = float(optimizer.param_groups[0]["lr"])
            t0 = time.perf_counter()
            seen, correct, loss_sum = 0, 0, 0.0
            bar = tqdm(
                itertools.islice(train_loader, steps),
                total=steps,
                desc=f"epoch {epoch + 1}/{epochs}",
                unit="batch",
                leave=False,
                disable=not progress,
            )
            with bar:
                for step, (x, y) in enumerate(bar):
                    where["step"] = step + 1
                    if augment is not None:
                        x = augment(x, np.random.default_rng([train_loader.seed, epoch, step]))
                    try:
                        loss, logits = train_step(model, x, y, optimizer, criterion, step_scheduler)
                    except NonFiniteInputError as e:
                        at = f"epoch {epoch + 1}/{epochs}, step {step + 1}/{steps}: {e.where}"
                        raise NonFiniteInputError(at, e.detail) from None
                    if not math.isfinite(loss):
                        raise TrainingDiverged(
                            _diverged_message(loss, epoch, epochs, step, steps, kept[0])
                        )
                    seen += len(y)
                    loss_sum += loss * len(y)
                    correct += int(np.count_nonzero(logits.argmax(axis=1) == y))
                    bar.set_postfix(
                        loss=f"{loss_sum / seen:.4f}",
                        acc=f"{correct / seen:.3f}",
                        img_s=f"{seen / (time.perf_counter() - t0):.0f}",
                    )
            where["step"] = None
            if scheduler is not None and scheduler_interval == "epoch":
                with defer_interrupts():
                    scheduler.step()
            train_seconds = time.perf_counter() - t0
            if val_loader is not None:
                val_loss, val_acc = evaluate(model, val_loader, eval_criterion)
            else:
                val_loss = val_acc = math.nan
            seconds = time.perf_counter() - t0
            history.append(
                train_loss=loss_sum / seen,
                train_acc=correct / seen,
                val_loss=val_loss,
                val_acc=val_acc,
                lr=lr,
                seconds=seconds,
            )
            improved = val_acc > best  # False for NaN
            best = val_acc if improved else best
            if ckpt_dir is not None:
                state = dict(
                    epoch=epoch + 1,
                    epochs=epochs,
                    history=history.to_dict(),
                    best_val_acc=best if math.isfinite(best) else None,
                    loader_seed=int(train_loader.seed),
                    rng_state=_rng_state(),
                    scheduler_interval=scheduler_interval,
                    config=config or {},
                )
                if improved:
                    save_checkpoint(ckpt_dir / "best.npz", model, optimizer, scheduler, **state)
                save_checkpoint(last_path, model, optimizer, scheduler, **state)
                kept = (last_path, epoch + 1)
            log(
                f"epoch {epoch + 1:>3}/{epochs}  train loss {loss_sum / seen:.4f} "
                f"acc {correct / seen:.4f}  val loss {val_loss:.4f} acc {val_acc:.4f}  "
                f"lr {lr:.2e}  {seconds:.1f}s ({seen / train_seconds:.0f} img/s)"
                + ("  *" if improved else "")
            )
    except KeyboardInterrupt:  # DeferredInterrupt too: that step had finished
        raise TrainingInterrupted(
            history, where["epoch"], epochs, where["step"], steps, *kept
        ) from None
    return history


def _resume(path, model, optimizer, scheduler, train_loader, epochs) -> tuple:
    """Load a checkpoint written by `fit`; returns ``(epochs done, History, best val acc)``.

    A checkpoint planned for another number of epochs keeps the settings of the
    ``scheduler`` given and takes only its position from the file (the schedule is
    stretched to the new total).
    """
    plan = None if scheduler is None else scheduler.state_dict()
    saved = load_checkpoint(path, model, optimizer, scheduler)
    try:
        start = int(saved["epoch"])
        history = History.from_dict(saved["history"])
        best = saved.get("best_val_acc")
        best = -math.inf if best is None else float(best)
        planned = int(saved.get("epochs", epochs))
        if "loader_seed" in saved:
            train_loader.seed = int(saved["loader_seed"])
        if "rng_state" in saved:
            _set_rng_state(saved["rng_state"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{path}: not a checkpoint written by fit ({e!r})") from None
    if plan is not None and planned != epochs:
        scheduler.load_state_dict({**plan, "last_epoch": scheduler.last_epoch})
    return start, history, best


def _diverged_message(loss, epoch, epochs, step, steps, checkpoint) -> str:
    msg = (
        f"training diverged: the loss is {loss} at epoch {epoch + 1}/{epochs}, "
        f"step {step + 1}/{steps}; the weights and running statistics were not updated "
        "with it. "
    )
    if checkpoint is not None:
        msg += f"The last good checkpoint is kept unchanged: {checkpoint}. "
    else:
        msg += "No checkpoint had been written yet. "
    return msg + "Try a smaller learning rate."


def history_records(history: History) -> list[dict]:
    """One dict per epoch: ``epoch`` (from 1), ``lr``, ``train_loss``, ``train_accuracy``,
    ``val_loss``, ``val_accuracy``, ``seconds``; NaN (no validation) becomes None."""
    h = history.to_dict()

    def num(v):
        return None if math.isnan(v) else v

    return [
        {
            "epoch": i + 1,
            "lr": h["lr"][i],
            "train_loss": num(h["train_loss"][i]),
            "train_accuracy": num(h["train_acc"][i]),
            "val_loss": num(h["val_loss"][i]),
            "val_accuracy": num(h["val_acc"][i]),
            "seconds": h["seconds"][i],
        }
        for i in range(len(history))
    ]


def check_positive_int(name: str, value) -> int:
    """``value`` as an int if it is an int >= 1 (not a bool); else ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)
