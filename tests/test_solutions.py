"""The solutions to the exercises are right, and a student opening an exercise does not
see its answer.

Exercises are sphinx-exercise blocks with a ``:label:``, in the notebooks' markdown cells
(labels ``nbNN-...``) and on the concept pages (``ex-...``). Their solutions are
``{solution} LABEL`` blocks on the pages of docs/solutions/: one page per notebook, named
after it, and ``concepts.md`` for the concept pages. The notebooks hold no solution.

Every solution holds Python code with assertions, and each one is run here: the page's
code blocks outside any solution (its imports) first, then the solution's blocks in
order, in a fresh namespace and a fresh working folder. A traceback names the line of
the Markdown page. The solutions that train networks for a while are marked ``slow``.
"""

from __future__ import annotations

import json
import re
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import ghostnp

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "docs" / "solutions"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CONCEPTS = sorted((ROOT / "docs" / "concepts").glob("*.md"))

# Solutions that train networks for tens of seconds or more.
SLOW = {
    "nb04-train-the-gate",
    "nb06-longer",
    "nb06-without-the-tricks",
    "nb06-budget",
    "nb06-ratio",
    "nb06-resume",
}

FENCE = re.compile(r"^(`{3,}|~{3,})\s*(\{[\w-]+\})?\s*(.*)$")
LABEL = re.compile(r"^:label:\s*(\S+)\s*$", re.MULTILINE)


@dataclass
class Block:
    """A Python code block: its first line's number on the page (1-based) and its code."""

    line: int
    code: str


@dataclass
class Solution:
    label: str
    page: Path
    line: int
    blocks: list[Block] = field(default_factory=list)


def read_page(path: Path) -> tuple[list[Block], list[Solution]]:
    """(code blocks outside any solution, solutions) of a Markdown page."""
    return parse_page(path.read_text(encoding="utf-8"), path)


def parse_page(text: str, path: Path) -> tuple[list[Block], list[Solution]]:
    """(Python blocks outside any solution, solutions with their Python blocks) of ``text``.

    A fence of three or more backticks opens a code block or, with `{name}`, a directive;
    a bare fence of the same character, at least as long, closes it. A code block inside
    a solution uses a shorter fence than the solution's, as MyST requires.
    """
    setup: list[Block] = []
    solutions: list[Solution] = []
    stack: list[tuple[str, str, int]] = []  # open fences: (fence, directive or language, line)
    code: list[str] = []
    for n, line in enumerate(text.split("\n"), 1):
        stripped = line.strip()
        if stack:
            fence, kind, start = stack[-1]
            if set(stripped) == {fence[0]} and len(stripped) >= len(fence):
                stack.pop()
                if kind == "python":
                    inside = [s for s in stack if s[1] == "{solution}"]
                    owner = solutions[-1].blocks if inside else setup
                    owner.append(Block(start + 1, "\n".join(code)))
                    code = []
                continue
            if kind == "python":
                code.append(line)
                continue
        m = FENCE.match(stripped)
        if m:
            fence, directive, rest = m.groups()
            if directive == "{solution}":
                solutions.append(Solution(rest.strip(), path, n))
            stack.append((fence, directive or rest.strip().lower(), n))
    assert not stack, f"{path}: the fence opened on line {stack[-1][2]} is never closed"
    return setup, solutions


def markdown_of_notebook(path: Path) -> str:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return "\n\n".join(
        "".join(c["source"]) if isinstance(c["source"], list) else c["source"]
        for c in nb["cells"]
        if c["cell_type"] == "markdown"
    )


def exercise_labels(text: str) -> list[str]:
    """Labels of the `{exercise}` and `{exercise-start}` blocks in Markdown text."""
    found = []
    for m in re.finditer(r"^`{3,}\{exercise(?:-start)?\}[^\n]*\n((?::[^\n]*\n)*)", text, re.M):
        label = LABEL.search(m.group(1))
        assert label, f"an exercise without a :label: near {m.group(0)!r}"
        found.append(label.group(1))
    return found


def all_solutions() -> list[Solution]:
    return [s for page in sorted(SOLUTIONS.glob("*.md")) for s in read_page(page)[1]]


def _param(solution: Solution):
    marks = [pytest.mark.slow] if solution.label in SLOW else []
    return pytest.param(solution, id=solution.label, marks=marks)


# -- where the exercises and the solutions are ---------------------------------------------


def test_every_exercise_has_exactly_one_solution_on_the_right_page():
    solutions = all_solutions()
    labels = [s.label for s in solutions]
    assert len(labels) == len(set(labels)), f"solved twice: {sorted(labels)}"
    where = {s.label: s.page.name for s in solutions}
    missing, misplaced = [], []
    for nb in NOTEBOOKS:
        found = exercise_labels(markdown_of_notebook(nb))
        prefix = f"nb{nb.name[:2]}-"
        assert all(label.startswith(prefix) for label in found), (nb.name, found)
        missing += [label for label in found if label not in where]
        misplaced += [
            (label, where[label])
            for label in found
            if where.get(label, f"{nb.stem}.md") != f"{nb.stem}.md"
        ]
    for page in CONCEPTS:
        found = exercise_labels(page.read_text(encoding="utf-8"))
        missing += [label for label in found if label not in where]
        misplaced += [
            (label, where[label])
            for label in found
            if where.get(label, "concepts.md") != "concepts.md"
        ]
    assert not missing, f"exercises without a solution: {missing}"
    assert not misplaced, f"solutions on the wrong page (label, page): {misplaced}"
    exercises = {
        label
        for text in [markdown_of_notebook(nb) for nb in NOTEBOOKS]
        + [p.read_text(encoding="utf-8") for p in CONCEPTS]
        for label in exercise_labels(text)
    }
    assert not set(labels) - exercises, f"solutions to no exercise: {set(labels) - exercises}"


def test_the_notebooks_hold_no_solutions():
    """A student opening a notebook in Jupyter sees the exercises and not their answers."""
    for nb in NOTEBOOKS:
        assert "{solution" not in nb.read_text(encoding="utf-8"), nb.name


def test_every_solution_has_code_with_assertions():
    for s in all_solutions():
        code = "\n".join(b.code for b in s.blocks)
        assert re.search(r"^\s*assert\b", code, re.M), f"{s.page.name}: {s.label} checks nothing"


def test_the_pages_are_read_as_written():
    setup, solutions = read_page(SOLUTIONS / "01_convolution_by_hand.md")
    assert "from ghostnp import functional as F" in setup[0].code
    assert [s.label for s in solutions][:2] == ["nb01-by-hand", "nb01-groups"]
    assert "def conv2d_naive" in solutions[1].blocks[0].code
    text = "````{solution} a\n```python\nx = 1\n```\n```\nnot python\n```\n````\n```python\ny = 2\n```\n"
    setup, solutions = parse_page(text, Path("example.md"))
    assert [b.code for b in setup] == ["y = 2"]
    assert solutions[0].label == "a" and [b.code for b in solutions[0].blocks] == ["x = 1"]
    assert solutions[0].blocks[0].line == 3


# -- every solution runs and its assertions hold -------------------------------------------


def _stand_in_for_timm():
    """timm cannot be installed beside torch 2.13 here. Its GhostNet is stood in for by
    the torch.nn twin of tests/torch_twins.py, which has timm's module names."""
    from torch_twins import ghostnet_twin

    widths = {"ghostnet_050": 0.5, "ghostnet_100": 1.0, "ghostnet_130": 1.3}
    timm = types.ModuleType("timm")

    def create_model(name, pretrained=False, num_classes=1000, in_chans=3, **kwargs):
        assert not pretrained, "nothing is downloaded"
        return ghostnet_twin(widths[name], num_classes=num_classes, in_chans=in_chans, **kwargs)

    timm.create_model = create_model
    return timm


@pytest.fixture
def clean_state(tmp_path, monkeypatch):
    """A fresh folder, the Agg backend, and ghostnp's backend restored afterwards."""
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    backend = ghostnp.get_backend()
    yield tmp_path
    ghostnp.set_backend(backend)
    import matplotlib.pyplot as plt

    plt.close("all")


def _run(block: Block, page: Path, namespace: dict) -> None:
    # pad with newlines so that a traceback's line numbers are the page's
    source = "\n" * (block.line - 1) + block.code
    exec(compile(source, str(page.relative_to(ROOT)), "exec"), namespace)


@pytest.mark.parametrize("solution", [_param(s) for s in all_solutions()])
def test_solution_runs_and_its_assertions_hold(solution, clean_state, request, monkeypatch):
    setup, _ = read_page(solution.page)
    if solution.label == "nb06-in-pytorch":
        request.getfixturevalue("torch")  # fails, not skips, under GHOSTNP_REQUIRE_TORCH=1
        try:
            import timm  # noqa: F401
        except ImportError:
            monkeypatch.setitem(sys.modules, "timm", _stand_in_for_timm())
    namespace = {"__name__": f"solution_{solution.label.replace('-', '_')}"}
    for block in [*setup, *solution.blocks]:
        _run(block, solution.page, namespace)
