"""``ghostnp train``: train a model on a data set, test it, save checkpoints and curves.

    ghostnp train                                   # GhostNet 0.5x on the built-in digits
    ghostnp train --model ghostnetv3 --epochs 5     # any model of ghostnp.models
    ghostnp train --resume runs/ghostnp/last.npz    # continue where a run stopped

`train_main` is the job (it can be called from Python too): it reads the data, builds the
model with `ghostnp.models.create_model`, and runs `ghostnp.train.fit`. ``add_parser``
and ``run`` are its command line. Ctrl-C ends the command with one line that names the
checkpoint and the command which resumes the run (exit code 130).
"""

from __future__ import annotations

import json
import math
import numbers
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from ..checkpoint import CheckpointError, checkpoint_meta
from ..data import DATASETS, ArrayDataset, DataLoader, dataset_name, get_dataset
from ..data.transforms import RandomShift
from ..errors import Interrupted
from ..files import atomic_write
from ..grad_mode import no_grad
from ..models import WIDTH_MODELS, create_model, model_names, takes_option
from ..nn.layers import CrossEntropyLoss
from ..rng import generator, manual_seed
from ..train import TrainingInterrupted, check_positive_int, evaluate, fit, history_records
from .common import add_command, model_choices

__all__ = ["add_parser", "run", "train_main", "TRAIN_DEFAULTS", "TRAIN_OUT"]

TRAIN_OUT = "runs/ghostnp"


# -- the command line ----------------------------------------------------------------
def add_parser(subparsers) -> None:
    """Add ``train`` and its options to the command line."""
    models = model_choices()
    t = add_command(
        subparsers, "train", "train a model (default: a small GhostNet on the built-in digits)"
    )
    resumed = "; when resuming: the checkpoint's"
    t.add_argument(
        "--model",
        default=None,
        metavar="MODEL",
        help=f"one of: {models} (default: ghostnet{resumed})",
    )
    t.add_argument(
        "--width",
        type=float,
        default=None,
        help=f"width multiplier of ghostnet / ghostnetv2 / ghostnetv3 (default: 0.5{resumed})",
    )
    t.add_argument(
        "--dataset",
        default=None,
        choices=["digits", "mnist", "fashion-mnist", "cifar10"],
        help=f"data set; digits is built in, the others are read from --data-dir "
        f"(default: digits{resumed})",
    )
    t.add_argument(
        "--data-dir",
        default=None,
        help="folder with the MNIST IDX files or the CIFAR-10 python batches; not for the "
        "built-in digits (default: none; when resuming: the checkpoint's)",
    )
    t.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="number of epochs (default: 10; when resuming: the total the run was planned "
        "for, and a larger total stretches the learning-rate schedule)",
    )
    t.add_argument(
        "--batch-size", type=int, default=None, help=f"batch size (default: 64{resumed})"
    )
    t.add_argument(
        "--lr",
        type=float,
        default=None,
        help=f"peak learning rate (default: 0.1 for sgd, 1e-3 for adam and adamw{resumed})",
    )
    t.add_argument(
        "--optimizer",
        default=None,
        choices=["sgd", "adam", "adamw"],
        help=f"optimizer (default: sgd{resumed})",
    )
    t.add_argument(
        "--seed",
        type=int,
        default=None,
        help=f"seeds the split, shuffling, augmentation and initialisation (default: 0{resumed})",
    )
    t.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="side of the square input images (default: 32 for digits and cifar10, 28 for "
        "mnist and fashion-mnist, or the next multiple of 32 the model can take)",
    )
    t.add_argument(
        "--limit-batches",
        type=int,
        default=None,
        metavar="N",
        help=f"train on only the first N batches of each epoch, a quick try of a setting "
        f"(default: all{resumed})",
    )
    t.add_argument("--out", default=TRAIN_OUT, help="folder for checkpoints and curves")
    t.add_argument(
        "--resume",
        default=None,
        metavar="CHECKPOINT",
        help="continue the run saved in this checkpoint, e.g. runs/ghostnp/last.npz "
        "(default: none, a new run)",
    )
    t.add_argument(
        "--json",
        action="store_true",
        help="print one JSON document of results on stdout (the report goes to stderr)",
    )
    t.add_argument("--no-progress", action="store_true", help="no progress bars")
    t.set_defaults(func=run)


def _resume_command(args, checkpoint, epochs: int) -> str:
    """The ``ghostnp train`` command that continues an interrupted run: the settings
    are in the checkpoint, so only what is not (where to write, how to report) is
    repeated."""
    words = ["ghostnp", "train", "--resume", str(checkpoint), "--epochs", str(epochs)]
    if args.out != TRAIN_OUT:
        words += ["--out", args.out]
    words += [
        flag for flag, on in (("--json", args.json), ("--no-progress", args.no_progress)) if on
    ]
    return shlex.join(words)


def run(args) -> int:
    """Run `train_main` with the options; with ``--json`` print its result document."""
    # with --json, stdout carries the JSON document alone; everything else goes to stderr
    say = (lambda line: print(line, file=sys.stderr)) if args.json else print
    try:
        result = train_main(
            model=args.model,
            width=args.width,
            dataset=args.dataset,
            data_dir=args.data_dir,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            optimizer=args.optimizer,
            seed=args.seed,
            out=args.out,
            resume=args.resume,
            progress=not args.no_progress,
            log=say,
            image_size=args.image_size,
            limit_batches=args.limit_batches,
        )
    except TrainingInterrupted as e:
        if e.checkpoint is None:
            raise
        command = _resume_command(args, e.checkpoint, e.epochs)
        raise Interrupted(f"{e}; resume with: {command}") from None
    if args.json:
        print(json.dumps(result, default=str))
    return 0


# -- the job ------------------------------------------------------------------------

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


def _build_model(name: str, width, num_classes: int, in_chans: int, dropout: float):
    """The named model for ``in_chans``-channel images and ``num_classes`` classes, with
    ``dropout`` where the network has a dropout layer."""
    kwargs = {"num_classes": num_classes, "in_chans": in_chans}
    if takes_option(name, "dropout"):
        kwargs["dropout"] = dropout
    return create_model(name, width, **kwargs)


def _profile(model, input_shape: tuple) -> tuple[int, int | None]:
    """``(parameters, MACs)`` from ``ghostnp.profile.summary``; MACs None without it.

    The model's state and ghostnp's generator are restored afterwards, so profiling
    does not change the run (a forward pass would update BatchNorm's running stats).
    """
    try:
        from ..profile import summary
    except ImportError:
        return model.num_parameters(), None
    state, rng, was_training = model.state_dict(), generator().bit_generator.state, model.training
    try:
        s = summary(model, input_shape)
        return int(s.total_params), int(s.total_macs)
    finally:
        model.load_state_dict(state)
        generator().bit_generator.state = rng
        model.train(was_training)


def _dataset_key(dataset) -> str:
    """The registry name of a data set ("CIFAR-10" -> "cifar10"); ValueError if unknown."""
    if not isinstance(dataset, str):
        raise ValueError(f"dataset must be a name, got {dataset!r}")
    key = dataset_name(dataset)
    if key is None:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of: {', '.join(DATASETS)}")
    return key


def _validate(model, width, dataset, data_dir, epochs, batch_size, lr, optimizer, image_size):
    """Check the options of train_main; returns the normalised dataset name."""
    names = model_names()
    if model not in names:
        raise ValueError(f"unknown model {model!r}; choose one of: {', '.join(names)}")
    if width is not None:
        if model not in WIDTH_MODELS:
            families = ", ".join(map(repr, WIDTH_MODELS))
            raise ValueError(f"width applies to {families}; {model!r} has a fixed width")
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
        check_positive_int("epochs", epochs)
    if batch_size is not None:
        check_positive_int("batch_size", batch_size)
    if lr is not None and (
        isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not 0 < lr < math.inf
    ):
        raise ValueError(f"lr must be a number > 0, got {lr!r}")
    if optimizer not in _OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; choose one of: sgd, adam, adamw")
    if image_size is not None and check_positive_int("image_size", image_size) < 8:
        raise ValueError(f"image_size must be at least 8, got {image_size}")
    return key


def _make_optimizer(name: str, model, lr: float):
    from ..optim import SGD, Adam, AdamW, param_groups_no_decay

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
    from ..errors import LayerValueError

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

    ``model`` is "ghostnet", "ghostnetv2" or "ghostnetv3" (at ``width``) or any name in
    ``ghostnp.models.MODELS``, built by `ghostnp.models.create_model` for the data set's
    channels and 10 classes.
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
        check_positive_int("limit_batches", s["limit_batches"])
    width = s["width"]
    if model in WIDTH_MODELS and width is None:
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
    from ..optim import WarmupCosine

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

    from ..viz import plot_history

    fig = plot_history(history, title=f"{name} on {key}: test accuracy {test_acc:.4f}")
    curves = atomic_write(out / "curves.png", lambda tmp: fig.savefig(tmp, format="png", dpi=100))
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
