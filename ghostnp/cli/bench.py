"""``ghostnp bench``: ghostnp's kernels and networks timed against PyTorch in one run.

Only the options are read here; `ghostnp.bench.run_bench` does the work."""

from __future__ import annotations

from .common import add_command

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> None:
    """Add ``bench`` and its options to the command line."""
    b = add_command(subparsers, "bench", "time ghostnp's kernels against PyTorch")
    b.add_argument("--full", action="store_true", help="every GhostNet shape (about 10 minutes)")
    b.add_argument(
        "--tiny",
        action="store_true",
        help="a few tiny layers, timed once in this process: checks the harness runs (seconds)",
    )
    b.set_defaults(func=run)


def run(args) -> int:
    """Print the benchmark's tables; exit 1 without them when its self-check fails."""
    import sys

    from .. import bench

    try:
        print(bench.run_bench(quick=not args.full, tiny=args.tiny))
    except bench.SelfCheckError as e:  # timings the harness does not trust: no table
        print(f"ghostnp bench: error: {e}", file=sys.stderr)
        return 1
    return 0
