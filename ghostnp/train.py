"""Training: one step, an epoch loop with checkpoints and resume, and ``ghostnp train``.

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
batch dimension in Python.
"""

from __future__ import annotations

import inspect
import itertools
import math
import numbers
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .checkpoint import CheckpointError, checkpoint_meta, load_checkpoint, save_checkpoint
from .data import DATASETS, ArrayDataset, DataLoader, get_dataset
from .errors import Interrupted, NonFiniteInputError
from .grad_mode import no_grad
from .interrupts import defer_interrupts
from .nn.layers import CrossEntropyLoss
from .rng import generator, manual_seed

__all__ = [
    "History",
    "TrainingDiverged",
    "TrainingInterrupted",
    "RandomShift",
    "train_step",
    "evaluate",
    "fit",
    "train_main",
    "history_records",
    "TRAIN_DEFAULTS",
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


class RandomShift:
    """Batch augmentation: shift each image by up to ``pad`` pixels, optionally mirror it.

    ``(N, C, H, W) -> (N, C, H, W)``. Each image is zero-padded by ``pad`` on every side
    and an ``H x W`` window is cut at an offset ``(dy, dx)`` drawn uniformly from
    ``0 .. 2 pad`` per image; with ``flip`` the window is also mirrored left-right with
    probability 1/2. All images are cut by one fancy-indexing gather:

        out[n, c, i, j] = padded[n, c, dy[n] + i, dx[n] + j']    j' = j, or W - 1 - j if flipped
    """

    def __init__(self, pad: int = 2, flip: bool = False):
        if not isinstance(pad, (int, np.integer)) or isinstance(pad, bool) or pad < 0:
            raise ValueError(f"RandomShift: pad must be an int >= 0, got {pad!r}")
        self.pad, self.flip = int(pad), bool(flip)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n, c, h, w = x.shape
        p = self.pad
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        dy = rng.integers(0, 2 * p + 1, size=n)
        dx = rng.integers(0, 2 * p + 1, size=n)
        rows = dy[:, None] + np.arange(h)  # (N, H)
        cols = dx[:, None] + np.arange(w)  # (N, W)
        if self.flip:
            mirror = rng.random(n) < 0.5
            cols = np.where(mirror[:, None], cols[:, ::-1], cols)
        out = xp[
            np.arange(n)[:, None, None, None],
            np.arange(c)[None, :, None, None],
            rows[:, None, :, None],
            cols[:, None, None, :],
        ]
        return np.ascontiguousarray(out, dtype=x.dtype)

    def __repr__(self) -> str:
        return f"RandomShift(pad={self.pad}, flip={self.flip})"


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
    if isinstance(epochs, bool) or not isinstance(epochs, numbers.Integral) or epochs < 1:
        raise ValueError(f"fit: epochs must be an int >= 1, got {epochs!r}")
    if scheduler_interval not in ("step", "epoch"):
        raise ValueError(
            f"fit: scheduler_interval must be 'step' or 'epoch', got {scheduler_interval!r}"
        )
    steps = len(train_loader)
    if limit_batches is not None:
        steps = min(steps, _positive_int("fit: limit_batches", limit_batches))
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


# -- the main job behind `ghostnp train` ---------------------------------------------

# `ghostnp train` with no options: GhostNet 0.5x at 32x32 on the built-in digits, about
# 45 s of CPU time on one core, test accuracy 0.97-0.99 (seeds 0, 1, 2). See train_main.
TRAIN_DEFAULTS = {
    "model": "ghostnet",
    "width": 0.5,
    "image_size": {"digits": 32, "mnist": 28, "fashion-mnist": 28, "cifar10": 32},
    "epochs": 10,
    "batch_size": 64,
    "lr": {"sgd": 0.1, "adam": 1e-3, "adamw": 1e-3},
    "weight_decay": {"sgd": 5e-4, "adam": 0.0, "adamw": 0.05},
    "label_smoothing": 0.1,
    "dropout": 0.1,
    "val_fraction": 0.1,
    "shift": {"digits": 2, "mnist": 2, "fashion-mnist": 2, "cifar10": 4},
}
_OPTIMIZERS = ("sgd", "adam", "adamw")
_FILE_DATASETS = ("mnist", "fashion-mnist", "cifar10")


def _model_names() -> list[str]:
    from .models import MODELS

    return ["ghostnet", "ghostnetv2", *MODELS]


def _build_model(name: str, width, num_classes: int, in_chans: int, dropout: float):
    """The named model for ``in_chans``-channel images and ``num_classes`` classes."""
    from .models import MODELS, ghostnet, ghostnetv2

    if name in ("ghostnet", "ghostnetv2"):
        builder = ghostnet if name == "ghostnet" else ghostnetv2
        return builder(width, num_classes=num_classes, dropout=dropout, in_chans=in_chans)
    builder = MODELS[name]
    kwargs = {"num_classes": num_classes, "in_chans": in_chans}
    params = inspect.signature(builder).parameters.values()
    if any(p.name == "dropout" or p.kind is p.VAR_KEYWORD for p in params):
        kwargs["dropout"] = dropout
    return builder(**kwargs)


def _profile(model, input_shape: tuple) -> tuple[int, int | None]:
    """``(parameters, MACs)`` from ``ghostnp.profile.summary``; MACs None without it.

    The model's state and ghostnp's generator are restored afterwards, so profiling
    does not change the run (a forward pass would update BatchNorm's running stats).
    """
    try:
        from .profile import summary
    except ImportError:
        return model.num_parameters(), None
    state, rng, was_training = model.state_dict(), _rng_state(), model.training
    try:
        s = summary(model, input_shape)
        return int(s.total_params), int(s.total_macs)
    finally:
        model.load_state_dict(state)
        _set_rng_state(rng)
        model.train(was_training)


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


def _dataset_key(dataset) -> str:
    """The registry name of a data set ("CIFAR-10" -> "cifar10"); ValueError if unknown."""
    if not isinstance(dataset, str):
        raise ValueError(f"dataset must be a name, got {dataset!r}")
    key = dataset.strip().lower().replace("_", "-")
    key = {"cifar-10": "cifar10", "fashionmnist": "fashion-mnist"}.get(key, key)
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of: {', '.join(DATASETS)}")
    return key


def _validate(model, width, dataset, data_dir, epochs, batch_size, lr, optimizer, image_size):
    """Check the options of train_main; returns the normalised dataset name."""
    names = _model_names()
    if model not in names:
        raise ValueError(f"unknown model {model!r}; choose one of: {', '.join(names)}")
    if width is not None:
        if model not in ("ghostnet", "ghostnetv2"):
            raise ValueError(
                f"width applies to 'ghostnet' and 'ghostnetv2'; {model!r} has a fixed width"
            )
        if isinstance(width, bool) or not isinstance(width, numbers.Real) or not width > 0:
            raise ValueError(f"width must be a number > 0, got {width!r}")
    key = _dataset_key(dataset)
    if key in _FILE_DATASETS:
        if data_dir is None:
            raise ValueError(f"dataset {key!r} is read from disk; give its folder as data_dir")
        if not Path(data_dir).is_dir():
            raise FileNotFoundError(f"data_dir {data_dir} is not an existing folder")
    elif data_dir is not None:
        raise ValueError(
            f"data_dir is for the data sets read from disk ({', '.join(_FILE_DATASETS)}); "
            f"{key!r} is built in and reads no folder (give dataset= with data_dir)"
        )
    if epochs is not None:
        _positive_int("epochs", epochs)
    if batch_size is not None:
        _positive_int("batch_size", batch_size)
    if lr is not None and (
        isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not 0 < lr < math.inf
    ):
        raise ValueError(f"lr must be a number > 0, got {lr!r}")
    if optimizer not in _OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of: sgd, adam, adamw")
    if image_size is not None and _positive_int("image_size", image_size) < 8:
        raise ValueError(f"image_size must be at least 8, got {image_size}")
    return key


def _make_optimizer(name: str, model, lr: float):
    from .optim import SGD, Adam, AdamW, param_groups_no_decay

    groups = param_groups_no_decay(model, TRAIN_DEFAULTS["weight_decay"][name])
    if name == "sgd":
        return SGD(groups, lr=lr, momentum=0.9, nesterov=True)
    return (Adam if name == "adam" else AdamW)(groups, lr=lr)


# settings a resumed run takes from its checkpoint (giving another value is an error)
_RUN_SETTINGS = (
    "model",
    "width",
    "dataset",
    "image_size",
    "batch_size",
    "lr",
    "optimizer",
    "seed",
    "limit_batches",
)


def _settings_for_resume(resume, given: dict) -> tuple[dict, dict]:
    """``(settings, meta)`` of a run resumed from ``resume``: every setting in
    ``_RUN_SETTINGS`` that was not given (None) comes from the checkpoint's config, one
    given must agree with it; ``epochs`` and ``data_dir`` may change (a later total
    stretches the schedule; the data may have moved)."""
    if not Path(resume).is_file():
        raise FileNotFoundError(f"no checkpoint to resume from at {resume}")
    meta = checkpoint_meta(resume)
    config = meta.get("config")
    if not isinstance(config, dict) or "model" not in config or "epoch" not in meta:
        raise CheckpointError(
            f"{resume}: not a checkpoint written by ghostnp train (it records no run settings)"
        )
    settings = dict(given)
    for key in _RUN_SETTINGS:
        saved, mine = config.get(key), given.get(key)
        if mine is None:
            settings[key] = saved
            continue
        same = _dataset_key(mine) == saved if key == "dataset" else mine == saved
        if not same:
            option = "--" + key.replace("_", "-")
            raise ValueError(
                f"{option} {mine} disagrees with {resume}, which was trained with {saved}; "
                f"leave {option} out to resume (only --epochs may change)"
            )
    if settings.get("data_dir") is None:
        settings["data_dir"] = config.get("data_dir")
    if settings.get("epochs") is None:
        settings["epochs"] = meta.get("epochs", config.get("epochs"))
    return settings, meta


def _input_size_fits(net, in_chans: int, size: int) -> bool:
    """Whether ``net`` runs on one ``size x size`` image (eval mode: nothing changes)."""
    from .errors import LayerValueError

    was_training = net.training
    net.eval()
    try:
        with no_grad():
            net(np.zeros((1, in_chans, size, size), dtype=np.float32))
        return True
    except LayerValueError:
        return False
    finally:
        net.train(was_training)


def _smallest_input(net, in_chans: int, too_small: int) -> int:
    """The smallest side ``net`` takes, above ``too_small`` (which it does not take)."""
    high = max(2 * too_small, 16)
    while not _input_size_fits(net, in_chans, high):
        if high > 4096:
            raise ValueError(f"{type(net).__name__}: no input size up to 4096 fits")
        high *= 2
    low = too_small  # does not fit; high fits
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if _input_size_fits(net, in_chans, mid) else (mid, high)
    return high


def _choose_input_size(net, in_chans: int, name: str, size: int, given: bool, log) -> int:
    """``size`` if ``net`` can take it; else, when the user did not choose it, the next
    multiple of 32 that it can take (with a note); else a ValueError naming the minimum."""
    if _input_size_fits(net, in_chans, size):
        return size
    smallest = _smallest_input(net, in_chans, size)
    if given:
        raise ValueError(
            f"{name} cannot take {size}x{size} images (a feature map shrinks below what a "
            f"layer needs); give an image_size (--image-size) of at least {smallest}"
        )
    chosen = -(-smallest // 32) * 32
    log(f"{name} needs images of at least {smallest}x{smallest}: training at {chosen}x{chosen}")
    return chosen


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


def train_main(
    model: str | None = None,
    width: float | None = None,
    dataset: str | None = None,
    data_dir=None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    optimizer: str | None = None,
    seed: int | None = None,
    out="runs/ghostnp",
    resume=None,
    progress: bool = True,
    log=print,
    image_size: int | None = None,
    limit_batches: int | None = None,
) -> dict:
    """Train a model on a data set, test it, and save the checkpoint and curves in ``out``.

    With no arguments: GhostNet at width 0.5 (dropout 0.1) on the built-in digits at
    32x32, 10 epochs of batches of 64 with SGD (momentum 0.9, Nesterov, lr 0.1, weight
    decay 5e-4 on conv and linear weights only), a WarmupCosine schedule stepped per
    batch (one epoch of warmup, then down to 0), label smoothing 0.1, and random shifts
    of up to 2 pixels. 10% of the training split is held out for validation; the test
    split is used once, on the final weights. See ``TRAIN_DEFAULTS``. The training loss
    is the label-smoothed one that is minimised; validation and test losses are both
    plain cross-entropy, so those two compare directly.

    ``model`` is "ghostnet" or "ghostnetv2" (at ``width``) or any name in
    ``ghostnp.models.MODELS``; it is built for the data set's channels and 10 classes.
    ``dataset`` is "digits" (built in), or "mnist", "fashion-mnist", "cifar10" read from
    ``data_dir`` (which is an error with the digits). ``optimizer`` is "sgd", "adam" or
    "adamw" (lr 1e-3 by default). ``image_size`` must be one the model can take; if not
    given and the data set's size is too small for the model (GhostNetV2's attention at
    32x32), the next multiple of 32 that fits is used. ``limit_batches`` trains on only
    the first N batches of each epoch (a quick try of a setting).

    ``resume`` continues from ``out/last.npz`` of an earlier run (see `fit`): the
    settings come from the checkpoint (one given that disagrees is an error), and
    ``epochs`` (default: the total the run was planned for) may be larger, which
    stretches the learning-rate schedule to the new total. Bad options raise ValueError
    (FileNotFoundError for a missing folder or checkpoint, CheckpointError for a file
    that is not one) with a one-line message, before any work is done. Ctrl-C raises
    `TrainingInterrupted` naming the checkpoint to resume from.

    Writes ``out/last.npz`` (final weights), ``out/best.npz`` (best val accuracy) and
    ``out/curves.png``. Returns a dict: ``test_accuracy``, ``test_loss``, ``params``,
    ``macs`` (None if the profiler is unavailable), ``seconds`` (wall time of the
    whole job), ``checkpoint`` and ``best_checkpoint`` and ``curves`` (paths as str),
    ``epochs`` (completed), ``history`` (`history_records`: one dict per epoch) and
    ``config``.
    """
    t_start = time.perf_counter()
    log = log or (lambda *_: None)
    d = TRAIN_DEFAULTS
    s = dict(
        model=model,
        width=width,
        dataset=dataset,
        data_dir=None if data_dir is None else str(data_dir),
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        optimizer=optimizer,
        seed=seed,
        image_size=image_size,
        limit_batches=limit_batches,
    )
    resumed = None
    if resume is not None:
        s, resumed = _settings_for_resume(resume, s)
    model = s["model"] or d["model"]
    optimizer = s["optimizer"] or "sgd"
    key = _validate(
        model,
        s["width"],
        s["dataset"] or "digits",
        s["data_dir"],
        s["epochs"],
        s["batch_size"],
        s["lr"],
        optimizer,
        s["image_size"],
    )
    if s["limit_batches"] is not None:
        _positive_int("limit_batches", s["limit_batches"])
    width = s["width"]
    if model in ("ghostnet", "ghostnetv2") and width is None:
        width = d["width"]
    seed = 0 if s["seed"] is None else int(s["seed"])
    epochs = d["epochs"] if s["epochs"] is None else int(s["epochs"])
    batch_size = d["batch_size"] if s["batch_size"] is None else int(s["batch_size"])
    lr = d["lr"][optimizer] if s["lr"] is None else float(s["lr"])
    data_dir, limit_batches = s["data_dir"], s["limit_batches"]
    name = model if width is None else f"{model} (width {width})"

    # data: a seeded 10% of the training split is held out for validation
    size = s["image_size"] or d["image_size"][key]
    train_x, train_y = get_dataset(key, data_dir, train=True, size=size)
    in_chans, num_classes = int(train_x.shape[1]), 10
    manual_seed(seed)
    net = _build_model(model, width, num_classes, in_chans, d["dropout"])
    fitting = _choose_input_size(net, in_chans, name, size, s["image_size"] is not None, log)
    if fitting != size:
        size = fitting
        train_x, train_y = get_dataset(key, data_dir, train=True, size=size)
    test_x, test_y = get_dataset(key, data_dir, train=False, size=size)
    order = np.random.default_rng([seed, 1]).permutation(len(train_y))
    n_val = max(1, int(round(d["val_fraction"] * len(train_y))))
    val_idx, fit_idx = order[:n_val], order[n_val:]
    train_ds = ArrayDataset(train_x[fit_idx], train_y[fit_idx])
    drop_last = len(train_ds) > batch_size  # no tiny last batch for BatchNorm
    train_loader = DataLoader(train_ds, batch_size, shuffle=True, drop_last=drop_last, seed=seed)
    eval_bs = max(batch_size, 256)
    val_loader = DataLoader(ArrayDataset(train_x[val_idx], train_y[val_idx]), eval_bs)
    test_loader = DataLoader(ArrayDataset(test_x, test_y), eval_bs)
    steps = len(train_loader) if limit_batches is None else min(len(train_loader), limit_batches)

    params, macs = _profile(net, (1, in_chans, size, size))
    config = dict(
        model=model,
        width=width,
        dataset=key,
        image_size=size,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        optimizer=optimizer,
        seed=seed,
        in_chans=in_chans,
        num_classes=num_classes,
        data_dir=data_dir,
        limit_batches=limit_batches,
    )
    macs_text = "MACs unknown" if macs is None else f"{macs / 1e6:.2f}M MACs"
    log(f"{name}: {params:,} parameters, {macs_text} at {in_chans}x{size}x{size}")

    opt = _make_optimizer(optimizer, net, lr)
    total = epochs * steps
    warmup = min(steps, total // 5)
    from .optim import WarmupCosine

    sched = WarmupCosine(opt, warmup_steps=warmup, total_steps=total)
    log(
        f"{key}: {len(train_ds)} train / {n_val} val / {len(test_y)} test images; "
        f"batches of {batch_size}, {steps} per epoch"
        + ("" if limit_batches is None else f" (limited to {limit_batches})")
    )
    done = 0 if resumed is None else int(resumed["epoch"])
    if done >= epochs:
        log(f"the checkpoint already has {done} of {epochs} epochs: nothing to train")
    elif done:
        planned = int(resumed.get("epochs", epochs))
        stretched = "" if planned == epochs else f" (schedule stretched from {planned} epochs)"
        log(
            f"resuming after epoch {done}: epochs {done + 1}-{epochs} of {epochs}, "
            f"{optimizer} lr {sched.lr_at(done * steps)[0]:.3g} now, cosine to 0 at epoch "
            f"{epochs}{stretched}"
        )
    else:
        log(
            f"{epochs} epochs, {optimizer} lr {lr:g} "
            f"(warmup {warmup} step{'s' * (warmup != 1)}, then cosine to 0)"
        )
    log(
        f"losses: train with label smoothing {d['label_smoothing']}; "
        "validation and test plain cross-entropy"
    )
    criterion = CrossEntropyLoss(label_smoothing=d["label_smoothing"])
    out = Path(out)
    history = fit(
        net,
        train_loader,
        val_loader,
        opt,
        sched,
        epochs=epochs,
        criterion=criterion,
        checkpoint_dir=out,
        resume=resume,
        progress=progress,
        seed=seed,
        log=log,
        augment=RandomShift(d["shift"][key], flip=key == "cifar10"),
        config=config,
        eval_criterion=CrossEntropyLoss(),
        limit_batches=limit_batches,
    )
    test_loss, test_acc = evaluate(net, test_loader)

    from .viz import plot_history

    curves = out / "curves.png"
    out.mkdir(parents=True, exist_ok=True)
    fig = plot_history(history, title=f"{name} on {key}: test accuracy {test_acc:.4f}")
    fig.savefig(curves, dpi=100)
    seconds = time.perf_counter() - t_start
    log(f"test accuracy {test_acc:.4f} (loss {test_loss:.4f}) after {len(history)} epochs")
    log(f"saved {out / 'last.npz'} and {curves}; {seconds:.1f}s in all")
    return {
        "test_accuracy": test_acc,
        "test_loss": test_loss,
        "params": params,
        "macs": macs,
        "seconds": seconds,
        "checkpoint": str(out / "last.npz"),
        "best_checkpoint": str(out / "best.npz"),
        "curves": str(curves),
        "epochs": len(history),
        "history": history_records(history),
        "config": config,
    }
