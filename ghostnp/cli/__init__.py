"""The ``ghostnp`` command line: the library's main jobs, one file per command.

    ghostnp train                     train a small GhostNet on the built-in digits
    ghostnp summary ghostnet_100      parameters and MACs per layer
    ghostnp gradcheck                 check every layer's backward pass numerically
    ghostnp bench                     time the kernels against PyTorch
    ghostnp visualize IMAGE           draw a Ghost module's intrinsic and ghost maps
    ghostnp assignment list           the graded assignments (start, grade)

Each command's file (``train.py``, ``summary.py``, ...) adds its options with
``add_parser`` and carries it out with ``run``; this package is the only place that
reads command-line arguments.

Every error a user can cause (a bad option, a missing file, a malformed shape) ends
in a one-line message on stderr and exit code 2, never a traceback (set
GHOSTNP_DEBUG=1 to see one). Ctrl-C ends any command with a one-line message (for
``train``: where it stopped and the command that resumes it) and exit code 130, the
shell's convention for SIGINT.
"""

from __future__ import annotations

import argparse
import os
import sys

from .._version import __version__
from ..errors import Interrupted
from . import assignment, bench, gradcheck, summary, train, visualize
from .common import EXIT_INTERRUPTED, EXIT_USAGE, CliError, HelpFormatter

__all__ = ["main", "build_parser", "CliError", "EXIT_USAGE", "EXIT_INTERRUPTED"]

COMMANDS = (gradcheck, summary, train, bench, visualize, assignment)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``ghostnp`` and every command's options."""
    p = argparse.ArgumentParser(
        prog="ghostnp",
        description="GhostNet from scratch in NumPy.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"ghostnp {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return p


def main(argv=None) -> int:
    """Run ``ghostnp ARGV``; returns the exit code (0 done, 1 a check failed, 2 a usage
    error, 130 interrupted)."""
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
