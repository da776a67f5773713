"""``ghostnp assignment``: list the assignments, start one in a folder, grade a folder.

    ghostnp assignment list                        name and title, one per line
    ghostnp assignment start NAME DIR [--solution] [--force]
    ghostnp assignment grade DIR [--json] [--time-limit SECONDS]

``grade`` exits with 0 whenever it graded, whatever the score; usage errors (an unknown
name, a missing folder, a folder in use) end with a one-line message and exit code 2.
``--json`` prints exactly one JSON document on stdout:
``{"assignment", "score", "max_score", "checks": [{"name", "passed", "points", "message"}]}``.
"""

from __future__ import annotations

import argparse
import json

from ..assignments.grader import DEFAULT_TIME_LIMIT
from .common import EXIT_USAGE

__all__ = ["add_parser", "run"]


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``assignment`` command and its actions to the command line; returns its parser."""
    about = "graded assignments: list them, start one, grade a folder"
    p = subparsers.add_parser("assignment", help=about, description=about)
    sub = p.add_subparsers(dest="assignment_action", metavar="ACTION", help="list, start or grade")
    sub.add_parser("list", help="the assignments, one per line: name, then title")
    s = sub.add_parser("start", help="write an assignment's files into a new folder")
    s.add_argument("name", help="an assignment name from 'ghostnp assignment list'")
    s.add_argument("dir", help="the folder to create (must be empty or new)")
    s.add_argument(
        "--solution", action="store_true", help="the instructor version (solutions marked)"
    )
    s.add_argument("--force", action="store_true", help="write into a folder that is not empty")
    g = sub.add_parser("grade", help="run the checks on a started folder and score them")
    g.add_argument("dir", help="a folder made by 'ghostnp assignment start'")
    g.add_argument("--json", action="store_true", help="print one JSON document")
    g.add_argument(
        "--time-limit",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"seconds allowed per check (default {DEFAULT_TIME_LIMIT:g})",
    )
    p.set_defaults(func=run, _assignment_parser=p)
    return p


def run(args) -> int:
    """Carry out ``ghostnp assignment ...``; returns the exit code."""
    from ..assignments import ASSIGNMENTS, grade, start

    action = getattr(args, "assignment_action", None)
    if action == "list":
        width = max(len(a.name) for a in ASSIGNMENTS)
        for a in ASSIGNMENTS:
            print(f"{a.name.ljust(width)}  {a.title}")
        return 0
    if action == "start":
        written = start(args.name, args.dir, solution=args.solution, force=args.force)
        kind = "instructor version" if args.solution else "student version"
        print(
            f"wrote the {kind} of '{args.name}' to {args.dir}: "
            + ", ".join(p.name for p in written)
        )
        return 0
    if action == "grade":
        limit = DEFAULT_TIME_LIMIT if args.time_limit is None else args.time_limit
        if not limit > 0:
            raise ValueError(f"--time-limit must be a positive number of seconds, got {limit}")
        report = grade(args.dir, time_limit=limit)
        if args.json:
            print(json.dumps(report.to_dict()))
        else:
            print(report)
        return 0
    args._assignment_parser.print_help()
    return EXIT_USAGE
