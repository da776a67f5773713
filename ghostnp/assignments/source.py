"""Instructor sources and the student versions made from them.

An assignment's ``.py`` file is written once, as the solution, with every part a student
must write between two marker lines (the convention of nbgrader, so the same sources
serve instructors who grade with it):

    def col2im(cols, x_shape, kh, kw, stride=1, padding=0):
        ### HINT: fold each column back onto the kh x kw window it came from ...
        ### BEGIN SOLUTION
        ...
        ### END SOLUTION

The student version keeps everything else, the ``### HINT`` lines included, and replaces
each region by a stub that raises ``NotImplementedError`` naming the function:

        ### HINT: fold each column back onto the kh x kw window it came from ...
        # YOUR CODE HERE
        raise NotImplementedError("col2im: not written yet (see the HINT above)")

A region must sit inside a function (so that the starter file still imports), must be
preceded by at least one ``### HINT`` line saying what to compute and the shapes
involved, and regions do not nest.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass

__all__ = ["BEGIN", "END", "HINT", "Region", "solution_regions", "student_version"]

BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
HINT = "### HINT"


@dataclass(frozen=True)
class Region:
    """One solution region: its marker lines (1-based), indentation, the function it is
    in (``Class.method`` for a method) and its hint lines (text after ``### HINT``)."""

    begin: int
    end: int
    indent: str
    function: str
    hints: tuple


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


def _functions(text: str) -> list:
    """(first line, last line, qualified name) of every def in ``text``, outermost first."""
    found = []

    def visit(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                found.append((child.lineno, child.end_lineno, name))
                visit(child, f"{name}.<locals>.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(ast.parse(text), "")
    return found


def _enclosing_function(functions, line: int) -> str | None:
    """The qualified name of the innermost def whose body holds ``line`` (1-based)."""
    inside = [f for f in functions if f[0] < line <= f[1]]
    return max(inside, key=lambda f: f[0])[2] if inside else None


def solution_regions(text: str, filename: str = "<source>") -> list:
    """The solution regions of ``text`` in order, as a list of `Region`.

    Raises ValueError naming ``filename`` and the line for an unmatched or nested marker,
    a region outside a function, a region with no ``### HINT`` line just above it, or
    begin and end markers at different indentations.
    """
    lines = text.splitlines()
    try:
        functions = _functions(text)
    except SyntaxError as e:
        raise ValueError(f"{filename}:{e.lineno}: not valid Python: {e.msg}") from None
    regions, open_at = [], None
    for i, line in enumerate(lines):
        marker = line.strip()
        if marker == BEGIN:
            if open_at is not None:
                raise ValueError(
                    f"{filename}:{i + 1}: {BEGIN} inside the region opened at line {open_at + 1}"
                )
            open_at = i
        elif marker == END:
            if open_at is None:
                raise ValueError(f"{filename}:{i + 1}: {END} without a {BEGIN}")
            indent = _indent(lines[open_at])
            if _indent(line) != indent:
                raise ValueError(
                    f"{filename}:{i + 1}: {END} is not indented like its {BEGIN} "
                    f"at line {open_at + 1}"
                )
            function = _enclosing_function(functions, open_at + 1)
            if function is None:
                raise ValueError(
                    f"{filename}:{open_at + 1}: a solution region must be inside a function "
                    "(the student version must still import)"
                )
            hints, j = [], open_at - 1
            while j >= 0 and lines[j].strip().startswith(HINT):
                hints.insert(0, lines[j].strip()[len(HINT) :].lstrip(" :"))
                j -= 1
            if not hints:
                raise ValueError(
                    f"{filename}:{open_at + 1}: the region has no {HINT} line above it saying "
                    "what to compute and the shapes involved"
                )
            regions.append(Region(open_at + 1, i + 1, indent, function, tuple(hints)))
            open_at = None
        elif BEGIN in line or END in line:
            raise ValueError(f"{filename}:{i + 1}: a marker must stand alone on its line")
    if open_at is not None:
        raise ValueError(f"{filename}:{open_at + 1}: {BEGIN} is never closed")
    return regions


def student_version(text: str, filename: str = "<source>") -> str:
    """``text`` with each solution region replaced by a stub raising NotImplementedError."""
    lines = text.splitlines(keepends=True)
    out, pos = [], 0
    for r in solution_regions(text, filename):
        out.extend(lines[pos : r.begin - 1])
        out.append(f"{r.indent}# YOUR CODE HERE\n")
        out.append(
            f'{r.indent}raise NotImplementedError("{r.function}: not written yet (see the HINT above)")\n'
        )
        pos = r.end
    out.extend(lines[pos:])
    return "".join(out)
