"""Sphinx configuration of the ghostnp site: MyST Markdown pages, the notebooks through
MyST-NB, exercises with sphinx-exercise, the API reference from the docstrings (autodoc2)
and MathJax served from the site itself.

Build:  sphinx-build -n -W --keep-going -b html docs docs/_build/html
Student edition (solutions left out):  add `-t student`.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))

from ghostnp_docs import executed_notebooks_dir  # noqa: E402

project = "ghostnp"
author = "the ghostnp authors"
copyright = "ghostnp authors, MIT licence"
release = re.search(  # pyproject.toml, the one place the version is written
    r'^version = "([^"]+)"', (DOCS.parent / "pyproject.toml").read_text(), re.MULTILINE
)[1]
version = release

extensions = [
    "myst_nb",  # MyST Markdown pages and Jupyter notebooks
    "autodoc2",
    "sphinx_exercise",
    "sphinx_togglebutton",  # solutions fold away until the reader opens them
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax 3 copied into _static/mathjax: no CDN
    "ghostnp_docs",  # stages the notebooks, draws the figures (docs/_ext/)
]

exclude_patterns = ["_build", "_ext", "_tools", "**/.ipynb_checkpoints", "jupyter_execute"]
# benchmarks.md is written by benchmarks/run.py and starts its sections at level 3.
suppress_warnings = ["myst.header"]
# Toctree globs that may match nothing. The student edition leaves the solution pages
# out (below), so its toctree glob over them matches no page there.
ghostnp_optional_globs: list[str] = []

# -- MyST ---------------------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3  # links such as models.md#looking-inside

# -- Notebooks (MyST-NB) -------------------------------------------------------------------
# With GHOSTNP_EXECUTED_NOTEBOOKS set (as in CI, where the notebook tests have just run and
# saved them there) the executed copies are rendered as they are; otherwise MyST-NB
# executes the notebooks and keeps the results in a cache inside the build folder.
nb_execution_mode = "off" if executed_notebooks_dir() else "cache"
nb_execution_timeout = 600
nb_execution_raise_on_error = True
nb_merge_streams = True

# -- Exercises -----------------------------------------------------------------------------
# Solutions fold away until opened (`:class: dropdown`). `-t student` builds an edition
# without them: the solution directives render nothing and docs/solutions/ is left out.
STUDENT = tags.has("student")  # noqa: F821 - `tags` is provided by Sphinx
hide_solutions = STUDENT
if STUDENT:
    exclude_patterns.append("solutions/*")
    ghostnp_optional_globs.append("solutions/*")

# -- API reference (autodoc2, docstrings are Markdown) -------------------------------------
autodoc2_packages = [{"path": "../ghostnp", "auto_mode": False}]
autodoc2_render_plugin = "ghostnp_docs.ApiRenderer"
autodoc2_docstring_parser_regexes = [(r".*", "ghostnp_docs")]  # MyST, `a*b` kept
autodoc2_hidden_objects = ["private", "dunder", "inherited"]
autodoc2_docstrings = "all"  # a method without a docstring shows the one it overrides
autodoc2_class_docstring = "merge"

# -- HTML ----------------------------------------------------------------------------------
html_theme = "sphinx_book_theme"
html_title = f"ghostnp {release}"
html_static_path = ["_static"]
html_css_files = ["ghostnp.css"]
html_theme_options = {
    "home_page_in_toc": True,
    "show_toc_level": 2,
    "use_download_button": True,
}
# The build runs nitpicky (-n): every cross-reference to ghostnp must resolve. Types from
# other packages (numpy.ndarray, ...) cannot, since their inventories would have to be
# downloaded; private base classes are not documented.
nitpick_ignore_regex = [(r"py:.*", r"(?!ghostnp\.).*"), (r"py:.*", r"ghostnp\..*\._\w+")]
add_module_names = False  # `conv2d_forward(...)`, under its module's heading
toc_object_entries_show_parents = "hide"
python_use_unqualified_type_names = True
