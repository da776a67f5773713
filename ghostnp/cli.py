"""The ``ghostnp`` command line: the library's main jobs.

    ghostnp train                     train a small GhostNet on the built-in digits
    ghostnp summary ghostnet_100      parameters and MACs per layer
    ghostnp gradcheck                 check every layer's backward pass numerically
    ghostnp bench                     time the kernels against PyTorch
    ghostnp visualize IMAGE           draw a Ghost module's intrinsic and ghost maps

Every error a user can cause (a bad option, a missing file, a malformed shape) ends
in a one-line message on stderr and exit code 2, never a traceback (set
GHOSTNP_DEBUG=1 to see one). Ctrl-C ends any command with a one-line message (for
``train``: where it stopped and the command that resumes it) and exit code 130, the
shell's convention for SIGINT.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

from . import __version__
from .errors import Interrupted

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a job stopped by Ctrl-C


class CliError(Exception):
    """A user error: printed as one line, exit code 2."""


def _parse_shape(text: str) -> tuple:
    """'3x224x224' -> (3, 224, 224); also accepts commas."""
    parts = text.lower().replace(",", "x").split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise CliError(f"--input: expected a shape like 3x224x224, got {text!r}") from None
    if len(dims) not in (3, 4) or min(dims) < 1:
        raise CliError(
            f"--input: expected C x H x W (or N x C x H x W) positive sizes, got {text!r}"
        )
    return dims


def _cmd_gradcheck(args) -> int:
    from .gradcheck import iter_layer_checks
    from .kernels import use_backend

    results = []
    with use_backend(args.backend):
        count, checks = iter_layer_checks(tol=args.tol, seed=args.seed)
        try:
            for name, report in checks:
                print(f"== {name}")
                print(report, flush=True)
                results.append((name, report))
        except KeyboardInterrupt:
            failed = sum(not r.passed for _, r in results)
            raise Interrupted(
                f"interrupted after {len(results)} of {count} layers ({failed} failed so far)"
            ) from None
    ok = all(r.passed for _, r in results)
    rows = [row for _, r in results for row in r.rows]
    by_rel = [row.rel_error for row in rows if row.rel_error <= args.tol]
    floor = sum(1 for row in rows if row.passed and row.rel_error > args.tol)
    print(
        f"\n{len(results)} layers, {len(rows)} arrays checked on the {args.backend} backend; "
        f"worst relative error {max(by_rel, default=0.0):.2e} (tolerance {args.tol:.0e}); "
        f"{floor} arrays with a true gradient of zero (e.g. a bias before BN) passed on the "
        f"absolute floor: {'PASS' if ok else 'FAIL'}"
    )
    return 0 if ok else 1


def _build_model(name: str, width, num_classes=None, in_chans=None):
    from .models import MODELS, ghostnet, ghostnetv2

    kwargs = {}
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if in_chans is not None:
        kwargs["in_chans"] = in_chans
    if name in ("ghostnet", "ghostnetv2"):
        return (ghostnet if name == "ghostnet" else ghostnetv2)(width or 1.0, **kwargs)
    if name not in MODELS:
        raise CliError(
            f"unknown model {name!r}; choose one of: ghostnet, ghostnetv2, {', '.join(MODELS)}"
        )
    if width is not None:
        if not name.startswith("ghostnet"):
            raise CliError(f"--width applies to GhostNet models, not {name!r}")
        builder = ghostnet if name.startswith("ghostnet_") else ghostnetv2
        return builder(width, **kwargs)
    return MODELS[name](**kwargs)


def _cmd_summary(args) -> int:
    from .profile import compare_conventions, summary

    shape = _parse_shape(args.input)
    model = _build_model(args.model, args.width, in_chans=shape[-3])
    s = summary(model, shape, convention=args.convention)
    if args.format == "table":
        print(s)
        if args.compare:
            print()
            print(compare_conventions(model, shape))
    elif args.format == "markdown":
        print(s.to_markdown())
    elif args.format == "csv":
        sys.stdout.write(s.to_csv())
    else:
        print(json.dumps(s.to_dict(), indent=2))
    return 0


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


def _cmd_train(args) -> int:
    from .train import TrainingInterrupted, train_main

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


def _cmd_bench(args) -> int:
    from .bench import run_bench

    print(run_bench(quick=not args.full, tiny=args.tiny))
    return 0


def _cmd_visualize(args) -> int:
    from .viz import visualize_main

    out = visualize_main(
        args.image, model=args.model, checkpoint=args.checkpoint, layer=args.layer, out=args.out
    )
    print(f"wrote {out}")
    return 0


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds "(default: ...)" to every option that has a default; an option whose
    default depends on others (None here) says so in its own help text."""

    def _get_help_string(self, action):
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


TRAIN_OUT = "runs/ghostnp"


def _model_choices() -> str:
    from .models import MODELS

    return ", ".join(["ghostnet", "ghostnetv2", *MODELS])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ghostnp",
        description="GhostNet from scratch in NumPy.",
        formatter_class=_HelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"ghostnp {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def command(name, help_text):
        return sub.add_parser(
            name, help=help_text, description=help_text, formatter_class=_HelpFormatter
        )

    models = _model_choices()
    g = command("gradcheck", "check every layer's backward pass by central differences")
    g.add_argument("--backend", choices=["numba", "numpy"], default="numba", help="kernels")
    g.add_argument("--tol", type=float, default=1e-7, help="relative tolerance")
    g.add_argument("--seed", type=int, default=0, help="random seed of inputs and gradients")
    g.set_defaults(func=_cmd_gradcheck)

    s = command("summary", "parameters and multiply-adds per layer")
    s.add_argument("model", metavar="MODEL", help=f"one of: {models}")
    s.add_argument(
        "--width",
        type=float,
        default=None,
        help="width multiplier of ghostnet / ghostnetv2 (default: 1.0)",
    )
    s.add_argument("--input", default="3x224x224", help="C x H x W (or N x C x H x W)")
    s.add_argument(
        "--convention",
        choices=["paper", "full"],
        default="paper",
        help="paper: conv + linear multiply-adds; full: every arithmetic operation",
    )
    s.add_argument(
        "--format", choices=["table", "markdown", "csv", "json"], default="table", help="output"
    )
    s.add_argument("--compare", action="store_true", help="also compare FLOP-counting conventions")
    s.set_defaults(func=_cmd_summary)

    t = command("train", "train a model (default: a small GhostNet on the built-in digits)")
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
        help=f"width multiplier of ghostnet / ghostnetv2 (default: 0.5{resumed})",
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
    t.set_defaults(func=_cmd_train)

    b = command("bench", "time ghostnp's kernels against PyTorch")
    b.add_argument("--full", action="store_true", help="every GhostNet shape (about 10 minutes)")
    b.add_argument(
        "--tiny",
        action="store_true",
        help="a few tiny layers, timed once in this process: checks the harness runs (seconds)",
    )
    b.set_defaults(func=_cmd_bench)

    v = command("visualize", "draw a Ghost module's intrinsic and ghost maps")
    v.add_argument("image", metavar="IMAGE", help="a PNG or JPEG file")
    v.add_argument(
        "--model",
        default=None,
        metavar="MODEL",
        help=f"one of: {models} (default: the model of --checkpoint, else ghostnet_100)",
    )
    v.add_argument(
        "--checkpoint",
        default=None,
        help="weights: a ghostnp checkpoint or a .npz/.pth/.pt state dict (default: random)",
    )
    v.add_argument(
        "--layer",
        default=None,
        help="path of a Ghost module (default: the first with at least 8 intrinsic maps)",
    )
    v.add_argument("--out", default="ghost_maps.png", help="PNG to write")
    v.set_defaults(func=_cmd_visualize)

    from .assignments.command import add_parser as add_assignment_parser

    add_assignment_parser(sub)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.func(args)
    except KeyboardInterrupt as e:
        return _interrupted(args.command, e)
    except (
        CliError,
        ValueError,
        TypeError,
        OSError,  # a missing or unreadable file
        ImportError,
        KeyError,
        FloatingPointError,  # training diverged: the message says which step
    ) as e:
        if os.environ.get("GHOSTNP_DEBUG") == "1":  # show the traceback when asked
            raise
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"ghostnp {args.command}: error: {msg}", file=sys.stderr)
        return EXIT_USAGE


def _interrupted(command: str, e: KeyboardInterrupt) -> int:
    """Report Ctrl-C in one line and return the exit status for it. Any command gets
    this; one that knows where it stopped raises `ghostnp.Interrupted` with the words."""
    if os.environ.get("GHOSTNP_DEBUG") == "1":
        raise e
    what = str(e) if isinstance(e, Interrupted) and str(e) else "interrupted"
    print(f"ghostnp {command}: {what}", file=sys.stderr)
    return EXIT_INTERRUPTED
