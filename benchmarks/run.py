"""Benchmark ghostnp against PyTorch CPU and write docs/benchmarks.md.

    python benchmarks/run.py            # full: every GhostNet layer, network, memory, compile
    python benchmarks/run.py --quick    # a few representative layers, under a minute

The measuring code is ``ghostnp.bench`` (also behind ``ghostnp bench``); this script adds
the file around the tables. Time it on an otherwise idle machine: with other jobs
running, every multi-threaded implementation slows down erratically (threads that wait
at a barrier for a preempted partner), and the ratios stop meaning anything. The full
run takes about ten minutes on two cores.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ghostnp.bench import run_bench

ROOT = Path(__file__).resolve().parent.parent

PREAMBLE = """# Benchmarks

ghostnp (its Numba kernels, and its NumPy reference kernels) against PyTorch on the CPU,
measured in one run of `python benchmarks/run.py --full` with the same number of threads
for all three. Times are medians in milliseconds; a ratio below 1 means ghostnp is faster.
How it is measured, and why each implementation runs in its own worker processes, is
described in `ghostnp/bench.py`; `ghostnp bench` prints the quick version of these tables.

"""


def before_section(path: Path, title: str) -> str:
    """An earlier benchmarks file as one section: its tables, headings one level down."""
    text = path.read_text()
    start = text.find("Run on ")  # drop the earlier file's own title and preamble
    body = text[start:] if start >= 0 else text
    body = "\n".join("#" + line if line.startswith("#") else line for line in body.splitlines())
    return f"## {title}\n\n{body.strip()}\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="a few layers, small repeats (< 60 s)")
    mode.add_argument("--full", action="store_true", help="everything (the default)")
    p.add_argument("--out", default=None, help="markdown file to write (full: docs/benchmarks.md)")
    p.add_argument("--no-write", action="store_true", help="only print the tables")
    p.add_argument(
        "--before",
        default=None,
        metavar="FILE",
        help="an earlier run's markdown file, appended as a 'before' section",
    )
    p.add_argument(
        "--before-title",
        default="An earlier run",
        help="the heading of the --before section",
    )
    args = p.parse_args(argv)

    quick = args.quick
    t0 = time.perf_counter()
    table = run_bench(quick=quick, progress=lambda m: print(f"[bench] {m}", file=sys.stderr))
    print(table)
    out = args.out or (None if quick else str(ROOT / "docs" / "benchmarks.md"))
    if out and not args.no_write:
        stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime())
        text = PREAMBLE + f"Run on {stamp}; {time.perf_counter() - t0:.0f} s.\n\n" + table
        if args.before:
            text += "\n\n" + before_section(Path(args.before), args.before_title)
        Path(out).write_text(text)
        print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
