"""Benchmark ghostnp against PyTorch on the CPU; optionally rewrite the benchmarks page.

    python benchmarks/run.py                      # quick run, tables printed (about a minute)
    python benchmarks/run.py --full               # everything, tables printed
    python benchmarks/run.py --full --write-docs  # and rewrite docs/benchmarks.md, its
                                                  # chart and the README's speed table
    python benchmarks/run.py --full --wait-quiet 30   # first wait up to 30 min for the
                                                  # other jobs on a shared machine to pause

The measuring is ``ghostnp.bench`` (also behind ``ghostnp bench``). With --write-docs the
page is ``benchmarks/page_template.md`` with this run's tables filled in, the chart is
docs/img/benchmarks.png, and the README's table between the markers
``<!-- bench:start -->`` and ``<!-- bench:end -->`` is replaced: all three always come
from one run. When the self-check fails, nothing is written and the exit code is 1.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ghostnp.bench import SelfCheckError, measure
from ghostnp.bench.report import markdown, plot, readme_table, replace_section
from ghostnp.bench.runner import BUSY_LIMIT
from ghostnp.bench.timing import wait_for_quiet

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = Path(__file__).resolve().parent / "page_template.md"
README_MARKERS = ("<!-- bench:start -->", "<!-- bench:end -->")


def write_docs(result, root: Path = ROOT) -> list[Path]:
    """Write the benchmarks page, its chart and the README's table under ``root``."""
    page = root / "docs" / "benchmarks.md"
    png = root / "docs" / "img" / "benchmarks.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    plot(result, png)
    text = TEMPLATE.read_text()
    text = text.replace("{{results}}", markdown(result, heading="###").rstrip())
    text = text.replace(
        "{{chart}}", f"![ghostnp / PyTorch, per layer and workload](img/{png.name})"
    )
    page.write_text(text)
    readme = root / "README.md"
    readme.write_text(replace_section(readme.read_text(), readme_table(result), *README_MARKERS))
    return [page, png, readme]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="every GhostNet layer, memory, compile")
    p.add_argument("--write-docs", action="store_true", help="rewrite the page, chart, README")
    p.add_argument("--rounds", type=int, default=None, help="rounds per row (default 3 / 5)")
    p.add_argument("--threads", type=int, default=None, help="threads each (default: Numba's)")
    p.add_argument(
        "--wait-budget",
        type=float,
        default=None,
        metavar="MINUTES",
        help="how long the run may wait in all for busy rounds to calm down (full: 20)",
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="MINUTES",
        help="first wait (at most this long) until other processes leave the cores free",
    )
    args = p.parse_args(argv)
    if args.write_docs and not args.full:
        p.error("--write-docs needs --full: the page shows the full run")
    if args.wait_quiet > 0:
        print("[bench] waiting for a quiet machine", file=sys.stderr, flush=True)
        waited = wait_for_quiet(BUSY_LIMIT, 60 * args.wait_quiet, window=5.0)
        print(f"[bench] waited {waited:.0f} s", file=sys.stderr, flush=True)
    try:
        result = measure(
            "full" if args.full else "quick",
            rounds=args.rounds,
            threads=args.threads,
            wait_budget=None if args.wait_budget is None else 60 * args.wait_budget,
            progress=lambda m: print(f"[bench] {m}", file=sys.stderr, flush=True),
        )
    except SelfCheckError as e:
        print(f"benchmarks/run.py: {e}", file=sys.stderr)
        return 1
    print(markdown(result))
    if args.write_docs:
        for path in write_docs(result):
            print(f"wrote {path.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
