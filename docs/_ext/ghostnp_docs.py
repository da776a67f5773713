"""Sphinx helpers for the ghostnp site: notebooks, figures and the API renderer.

- The notebooks live in the repository's top-level `notebooks/` folder, stored without
  outputs. Before the sources are read they are copied into `docs/notebooks/` (generated,
  not committed): the executed copies that the notebook tests saved in the folder named by
  GHOSTNP_EXECUTED_NOTEBOOKS when that variable is set, the clean ones otherwise (MyST-NB
  then executes them itself; see `nb_execution_mode` in conf.py).
- Every `docs/figures/NAME.py` defines `draw()`, which returns a matplotlib Figure; it is
  saved as `docs/figures/NAME.svg` (generated, not committed) before the sources are read.
- `ApiRenderer` and `Parser` shape the API reference (autodoc2): see their docstrings.
"""

from __future__ import annotations

import io
import json
import logging as logging_std
import os
import re
import runpy
import sys
from pathlib import Path

from autodoc2.render.myst_ import MystRenderer
from myst_parser.parsers.sphinx_ import MystParser
from sphinx.errors import ConfigError, ExtensionError
from sphinx.util import logging

DOCS = Path(__file__).resolve().parent.parent
ROOT = DOCS.parent
NOTEBOOKS_SRC = ROOT / "notebooks"
NOTEBOOKS_DEST = DOCS / "notebooks"
FIGURES = DOCS / "figures"
EXECUTED_ENV = "GHOSTNP_EXECUTED_NOTEBOOKS"

logger = logging.getLogger(__name__)
_BUILTIN_TYPE = re.compile(r"(?<![\w.~])type(?![\w.])")


def executed_notebooks_dir() -> Path | None:
    """The folder of executed notebooks named by GHOSTNP_EXECUTED_NOTEBOOKS, or None."""
    value = os.environ.get(EXECUTED_ENV, "").strip()
    return Path(value) if value else None


def _write_if_changed(path: Path, data: bytes) -> None:
    """Write only when the bytes differ, so that Sphinx's incremental build stays quiet."""
    if not path.exists() or path.read_bytes() != data:
        path.write_bytes(data)


def _cell_sources(path: Path) -> list[tuple[str, str]]:
    nb = json.loads(path.read_text(encoding="utf-8"))
    return [
        (
            cell["cell_type"],
            "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"],
        )
        for cell in nb["cells"]
    ]


def stage_notebooks(app, config) -> None:
    """Copy notebooks/*.ipynb (executed copies if available) to docs/notebooks/."""
    sources = sorted(NOTEBOOKS_SRC.glob("*.ipynb"))
    if not sources:
        raise ConfigError(f"no notebooks found in {NOTEBOOKS_SRC}")
    NOTEBOOKS_DEST.mkdir(exist_ok=True)
    names = {p.name for p in sources}
    for stale in NOTEBOOKS_DEST.glob("*.ipynb"):
        if stale.name not in names:
            stale.unlink()

    executed = executed_notebooks_dir()
    for src in sources:
        if executed is None:
            _write_if_changed(NOTEBOOKS_DEST / src.name, src.read_bytes())
            continue
        copy = executed / src.name
        if not copy.is_file():
            raise ConfigError(
                f"{EXECUTED_ENV}={executed} has no executed copy of {src.name}: run "
                f"`pytest tests/test_notebooks.py` with that variable set first, or unset it "
                f"to let the documentation build execute the notebooks"
            )
        if _cell_sources(copy) != _cell_sources(src):
            raise ConfigError(
                f"{copy} was executed from another version of {src.relative_to(ROOT)} "
                f"(the cells differ); execute the notebooks again"
            )
        _write_if_changed(NOTEBOOKS_DEST / src.name, copy.read_bytes())
    where = f"executed copies from {executed}" if executed else "executed by MyST-NB"
    logger.info(f"[ghostnp] {len(sources)} notebooks staged in docs/notebooks/ ({where})")


def _draw(script: Path, plt) -> bytes:
    """Run one figure script and return its figure as SVG bytes."""
    try:
        fig = runpy.run_path(str(script))["draw"]()
    except Exception as err:  # name the script: the traceback alone may not
        raise ExtensionError(f"figure script {script.relative_to(ROOT)} failed: {err}") from err
    buf = io.BytesIO()
    fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return buf.getvalue()


def make_figures(app, config) -> None:
    """Run every docs/figures/NAME.py and save its draw() as docs/figures/NAME.svg."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import ghostnp

    scripts = sorted(p for p in FIGURES.glob("*.py") if not p.name.startswith("_"))
    sys.path.insert(0, str(FIGURES))  # the scripts share docs/figures/_style.py
    try:
        # The figures compute with ghostnp; the NumPy kernels need no compilation.
        with (
            ghostnp.use_backend("numpy"),
            matplotlib.rc_context({"svg.hashsalt": "ghostnp", "svg.fonttype": "path"}),
        ):
            for script in scripts:
                _write_if_changed(script.with_suffix(".svg"), _draw(script, plt))
    finally:
        sys.path.remove(str(FIGURES))
    logger.info(f"[ghostnp] {len(scripts)} figures drawn in docs/figures/")


class ApiRenderer(MystRenderer):
    """autodoc2's MyST renderer, changed in five ways.

    - A module is its name as a plain heading, its docstring and its members, in source
      order. The stock renderer adds "Module Contents", "Classes", "Functions" and "API"
      headings and a summary table that repeats every first line.
    - Attributes (the fields of a cache, for instance) are left out of the page contents,
      which list the functions and classes.
    - A class whose `__init__` has no docstring gets no empty "Initialization" rubric.
    - An attribute that has only an annotation (a field of a NamedTuple cache) gets no
      `:value: None` line: the field has no value.
    - The builtin `type` in annotations points at the builtin (several classes here have a
      field named `type`, which Sphinx would otherwise offer as equally good targets).
    """

    def render_package(self, item):
        name = item["full_name"]
        yield from [f"## {name}", "", f"```{{py:module}} {name}", "```", ""]
        if self.show_docstring(item):
            yield f"```{{autodoc2-docstring}} {name}"
            if parser := self.get_doc_parser(name):
                yield f":parser: {parser}"
            yield from [":allowtitles:", "```", ""]
        for child in self.get_children(item):
            if child["type"] not in ("package", "module"):
                yield from self.render_item(child["full_name"])

    def render_class(self, item):
        lines = list(super().render_class(item))
        init = self.get_item(f"{item['full_name']}.__init__")
        if "```{rubric} Initialization" in lines and not (init and init.get("doc", "").strip()):
            # the rubric and the empty docstring of an __init__ that has none
            start = lines.index("```{rubric} Initialization")
            end = lines.index("```", lines.index(f"```{{autodoc2-docstring}} {init['full_name']}"))
            del lines[start : end + 2]
        yield from lines

    def format_annotation(self, annotation):
        return _BUILTIN_TYPE.sub("~builtins.type", super().format_annotation(annotation))

    def render_data(self, item):
        lines = list(super().render_data(item))
        if item.get("value") is None and ":value: >" in lines:
            i = lines.index(":value: >")
            del lines[i : i + 2]
        if item["type"] == "attribute":  # fields stay out of the page contents
            lines.insert(2, ":no-contents-entry:")
        yield from lines


_MULTIPLY = re.compile(r"(?<=[\w)\]])\*(?=[\w(\[])")
_FENCE = re.compile(r"^\s*(```|~~~)")


def escape_multiplication(text: str) -> str:
    """Escape each `*` that sits between two non-space characters outside code.

    The docstrings write formulas in plain text (`K = C/G*kh*kw`); Markdown would read two
    such stars as emphasis. `*word*` and `**word**` (a star next to a space or another
    star) stay emphasis. Code spans, fenced blocks and lines indented by four spaces or
    more (indented code) are left alone.
    """
    out, fenced = [], False
    for line in text.split("\n"):
        if _FENCE.match(line):
            fenced = not fenced
        if fenced or _FENCE.match(line) or line.startswith("    "):
            out.append(line)
            continue
        parts = re.split(r"(`+[^`]*`+)", line)
        out.append("".join(p if p.startswith("`") else _MULTIPLY.sub(r"\\*", p) for p in parts))
    return "\n".join(out)


class Parser(MystParser):
    """The MyST parser for docstrings (autodoc2_docstring_parser_regexes in conf.py),
    reading `a*b` as a product rather than the start of emphasis."""

    def parse(self, inputstring: str, document) -> None:
        super().parse(escape_multiplication(inputstring), document)


class _OptionalGlobs(logging_std.Filter):
    """Drops the "toctree glob pattern didn't match any documents" warning for the globs
    listed in `ghostnp_optional_globs` (sections that may be empty, such as the solution
    pages in the student edition). Sphinx gives that warning no type, so `suppress_warnings`
    cannot name it."""

    def __init__(self, app):
        super().__init__()
        self.app = app

    def filter(self, record) -> bool:
        return not (
            getattr(record, "subtype", None) == "empty_glob"
            and record.args
            and record.args[0] in self.app.config.ghostnp_optional_globs
        )


def setup(app):
    app.add_config_value("ghostnp_optional_globs", [], "env")
    logging_std.getLogger("sphinx.sphinx.directives.other").addFilter(_OptionalGlobs(app))
    app.connect("config-inited", stage_notebooks)
    app.connect("config-inited", make_figures)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
