"""Graded assignments: starter code for students, solutions for instructors, a grader.

Each assignment is a small folder (``material/<name>/``: a README with the task, the math
and the shapes, and one ``.py`` file to complete). The file is stored once, as the
solution, with the parts a student writes marked ``### BEGIN SOLUTION`` /
``### END SOLUTION`` (see `ghostnp.assignments.source`); the student version is made
from it when an assignment is started:

    from ghostnp import assignments
    assignments.start("im2col", "hw1")              # student version (stubs)
    assignments.start("im2col", "key", solution=True)
    print(assignments.grade("hw1"))                  # checks, points, messages

or from the command line: ``ghostnp assignment list | start NAME DIR [--solution] |
grade DIR [--json]``. A started folder holds a small manifest naming its assignment.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..files import atomic_write
from .grader import DEFAULT_TIME_LIMIT, GradeReport, run_checks
from .hiding import HIDDEN, HiddenError
from .source import student_version

__all__ = [
    "ASSIGNMENTS",
    "MANIFEST",
    "Assignment",
    "AssignmentError",
    "GradeReport",
    "HIDDEN",
    "HiddenError",
    "get_assignment",
    "grade",
    "material_files",
    "start",
]

MANIFEST = "ghostnp-assignment.json"


class AssignmentError(ValueError):
    """A usage error: unknown assignment, folder in use, folder without a manifest."""


@dataclass(frozen=True)
class Assignment:
    """An assignment: its name (as the CLI takes it), a short title, the file the
    student completes, and the module of its checks (``checks/<checks>.py``)."""

    name: str
    title: str
    filename: str
    checks: str

    def load_checks(self):
        """The assignment's CheckList."""
        return importlib.import_module(f"{__name__}.checks.{self.checks}").checks


ASSIGNMENTS = (
    Assignment(
        "im2col",
        "Convolution by im2col: the forward pass, and the backward pass through col2im",
        "conv.py",
        "im2col",
    ),
    Assignment(
        "depthwise",
        "Depthwise convolution, and a gradient checker to test it with",
        "depthwise.py",
        "depthwise",
    ),
    Assignment(
        "batchnorm",
        "Batch norm's backward pass, in training and in eval mode",
        "batchnorm.py",
        "batchnorm",
    ),
    Assignment(
        "ghost-module",
        "The Ghost module: channel bookkeeping, and the fan-out of the intrinsic maps",
        "ghost_module.py",
        "ghost_module",
    ),
    Assignment(
        "bottleneck",
        "The Ghost bottleneck with squeeze-and-excite, and GhostNet's whole backward pass",
        "bottleneck.py",
        "bottleneck",
    ),
    Assignment(
        "counting",
        "Parameters and MACs of GhostNet 0.5x/1.0x/1.3x, and the Ghost module's speed-up",
        "counting.py",
        "counting",
    ),
    Assignment(
        "ghostify",
        "Ghostify a network, ablate s and d, and train it with your own SGD",
        "ghostify.py",
        "ghostify",
    ),
)


def get_assignment(name: str) -> Assignment:
    """The assignment called ``name``; AssignmentError listing the names otherwise."""
    for a in ASSIGNMENTS:
        if a.name == name:
            return a
    names = ", ".join(a.name for a in ASSIGNMENTS)
    raise AssignmentError(f"unknown assignment {name!r}; choose one of: {names}")


def material_files(name: str) -> list:
    """The files of an assignment's folder as shipped (instructor versions), by name."""
    folder = resources.files(__name__).joinpath("material", get_assignment(name).name)
    return sorted(
        (f for f in folder.iterdir() if f.is_file() and not f.name.startswith(".")),
        key=lambda f: f.name,
    )


def start(name: str, directory, solution: bool = False, force: bool = False) -> list:
    """Write assignment ``name`` into ``directory``: the student version, or with
    ``solution=True`` the instructor version (solution regions marked). Refuses a
    directory that is not empty unless ``force`` (then only the assignment's own files
    are overwritten). Returns the paths written, the manifest last.
    """
    a = get_assignment(name)
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise AssignmentError(f"{directory} exists and is not a directory")
    if directory.is_dir() and any(directory.iterdir()) and not force:
        raise AssignmentError(
            f"{directory} is not empty; choose an empty or new directory (or pass --force "
            "to overwrite the assignment's files in it)"
        )
    files = material_files(name)
    written = []
    for f in files:
        data = f.read_bytes()
        if f.name.endswith(".py") and not solution:
            data = student_version(data.decode("utf-8"), f.name).encode("utf-8")
        written.append(
            atomic_write(directory / f.name, lambda tmp, d=data: Path(tmp).write_bytes(d))
        )
    from .. import __version__

    manifest = {
        "assignment": a.name,
        "title": a.title,
        "file": a.filename,
        "version": "solution" if solution else "student",
        "ghostnp": __version__,
    }
    text = json.dumps(manifest, indent=2) + "\n"
    written.append(
        atomic_write(directory / MANIFEST, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    )
    return written


def read_manifest(directory) -> tuple:
    """(Assignment, manifest dict) of a started folder; AssignmentError or
    FileNotFoundError (a usage error) when it is not one."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"no such directory: {directory}")
    path = directory / MANIFEST
    if not path.is_file():
        raise AssignmentError(
            f"{directory} has no {MANIFEST}, so it is not an assignment folder; make one with "
            "'ghostnp assignment start NAME DIR'"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        name = manifest["assignment"]
    except (ValueError, KeyError, TypeError):
        raise AssignmentError(f"{path} is not a valid manifest (no 'assignment' entry)") from None
    return get_assignment(name), manifest


def grade(directory, time_limit: float = DEFAULT_TIME_LIMIT) -> GradeReport:
    """Grade the assignment folder ``directory``; returns a GradeReport (``print`` it, or
    ``.to_dict()`` for grade's JSON). ``time_limit``: seconds allowed per check."""
    a, _ = read_manifest(directory)
    return run_checks(a.name, a.load_checks(), Path(directory) / a.filename, time_limit)
