"""The package's shape, read from its source: which module imports which (every import,
the ones inside functions included), how long a file is, where arguments are parsed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ghostnp"
MAX_LINES = 600
# what the models are built from, and the tools that work on any model: none of these
# may import ghostnp.models (a model is given to them, never looked up by them)
BELOW_MODELS = (
    "ghostnp._version",
    "ghostnp.checkpoint",
    "ghostnp.data",
    "ghostnp.errors",
    "ghostnp.files",
    "ghostnp.functional",
    "ghostnp.grad_mode",
    "ghostnp.gradcheck",
    "ghostnp.interop",
    "ghostnp.interrupts",
    "ghostnp.kernels",
    "ghostnp.nn",
    "ghostnp.optim",
    "ghostnp.profile",
    "ghostnp.rng",
    "ghostnp.train",
    "ghostnp.typing",
    "ghostnp.viz",
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def source_files() -> list[Path]:
    """Every module of the package; the assignments' material is a student's starter
    code, shipped as data, and is left out."""
    return sorted(p for p in PACKAGE.rglob("*.py") if "material" not in p.parts)


def imports_of(path: Path) -> set[str]:
    """The ghostnp modules ``path`` imports, as dotted names: ``from .x import y`` counts
    as importing ``pkg.x`` and ``pkg.x.y`` (y may be a module)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            found.add(origin)
            found.update(f"{origin}.{a.name}" for a in node.names)
    return {m for m in found if m == "ghostnp" or m.startswith("ghostnp.")}


def within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


GRAPH = {module_name(p): imports_of(p) for p in source_files()}


def test_the_import_reader_resolves_relative_imports():
    nn_ghost = GRAPH["ghostnp.nn.ghost"]
    assert "ghostnp.nn.module" in nn_ghost and "ghostnp.functional" in nn_ghost
    assert "ghostnp.nn.module" in GRAPH["ghostnp.nn"]  # from .module import ... in __init__
    assert "ghostnp.models" in GRAPH["ghostnp.cli.train"]


@pytest.mark.parametrize("below", BELOW_MODELS)
def test_nothing_below_models_imports_them(below):
    offenders = {
        m: sorted(i for i in deps if within(i, "ghostnp.models"))
        for m, deps in GRAPH.items()
        if within(m, below)
    }
    assert not {m: i for m, i in offenders.items() if i}


def test_profile_imports_only_nn():
    """Each composite module declares its own inline ops (``inline_ops``), so the profiler
    needs no table of model classes."""
    for m, deps in GRAPH.items():
        if within(m, "ghostnp.profile"):
            other = {i for i in deps if not within(i, "ghostnp.profile")}
            assert all(within(i, "ghostnp.nn") for i in other), (m, sorted(other))


def test_only_the_command_line_parses_arguments():
    for path in source_files():
        name = module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        uses = any(
            (isinstance(n, ast.Import) and any(a.name == "argparse" for a in n.names))
            or (isinstance(n, ast.ImportFrom) and n.module == "argparse")
            for n in ast.walk(tree)
        )
        assert not uses or within(name, "ghostnp.cli"), name


def test_no_file_is_longer_than_one_sitting():
    long = {
        str(p.relative_to(ROOT)): n
        for p in source_files()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, long
