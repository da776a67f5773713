"""The notebooks run top to bottom: every ``notebooks/*.ipynb`` is executed with nbclient and
a cell that raises (a failed ``assert`` included) fails the test with that cell's error.

New notebooks are picked up automatically. Executing them is slow (a kernel start and a
few seconds of work each), so those tests are marked ``slow`` and ``notebooks``. They are
skipped when nbclient, nbformat or ipykernel is missing, unless GHOSTNP_REQUIRE_NOTEBOOKS=1,
which turns the skip into a failure. The kernel is ipykernel's "python3" spec, which runs
the interpreter of this environment; ``test_kernel_runs_this_environment`` makes sure of it.

When GHOSTNP_EXECUTED_NOTEBOOKS names a folder, each notebook that ran is also saved there
with its outputs, under its own file name: the documentation build renders those copies
instead of executing the notebooks a second time (see docs/conf.py).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

import ghostnp

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
REQUIRE_NOTEBOOKS = os.environ.get("GHOSTNP_REQUIRE_NOTEBOOKS") == "1"
EXECUTED_DIR = os.environ.get("GHOSTNP_EXECUTED_NOTEBOOKS")
KERNEL_NAME = "python3"
TIMEOUT = 600  # seconds per cell
ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")  # IPython colours its tracebacks


@pytest.fixture(scope="module")
def nbtools():
    """(nbformat, NotebookClient, CellExecutionError); skips (or fails) when they are missing."""
    try:
        import ipykernel  # noqa: F401  - provides the "python3" kernel
        import nbformat
        from nbclient import NotebookClient
        from nbclient.exceptions import CellExecutionError
    except ImportError as e:
        missing = str(e)
    else:
        return nbformat, NotebookClient, CellExecutionError
    reason = (
        "executing notebooks needs nbclient, nbformat and ipykernel "
        f"(pip install -e '.[notebooks]'): {missing}"
    )
    if REQUIRE_NOTEBOOKS:
        pytest.fail(f"GHOSTNP_REQUIRE_NOTEBOOKS=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def _execute(nbtools, nb):
    """Run ``nb`` in place in a fresh kernel, with notebooks/ as the working directory."""
    _, notebook_client, _ = nbtools
    client = notebook_client(
        nb,
        timeout=TIMEOUT,
        kernel_name=KERNEL_NAME,
        resources={"metadata": {"path": str(NOTEBOOKS_DIR)}},
    )
    client.execute()
    return nb


@pytest.mark.slow
@pytest.mark.notebooks
def test_kernel_runs_this_environment(nbtools):
    """The "python3" kernel is this interpreter's environment, importing this ghostnp."""
    nbformat = nbtools[0]
    nb = nbformat.v4.new_notebook()
    nb.cells.append(
        nbformat.v4.new_code_cell("import sys, ghostnp\nprint(sys.prefix)\nprint(ghostnp.__file__)")
    )
    _execute(nbtools, nb)
    printed = "".join(o.get("text", "") for o in nb.cells[0].outputs).split()
    assert printed == [sys.prefix, ghostnp.__file__], (
        f"the {KERNEL_NAME!r} kernel runs {printed}, not this environment "
        f"({sys.prefix}, {ghostnp.__file__}); check `jupyter kernelspec list`"
    )


@pytest.mark.slow
@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(nbtools, path, record_property):
    nbformat, _, cell_execution_error = nbtools
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    try:
        _execute(nbtools, nb)
    except cell_execution_error as e:
        pytest.fail(f"{path.name}: a cell raised\n{ANSI_COLOUR.sub('', str(e))}", pytrace=False)
    record_property("seconds", round(time.perf_counter() - start, 1))
    if EXECUTED_DIR:
        out = Path(EXECUTED_DIR)
        out.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out / path.name)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path):
    """Notebooks are committed clean: no outputs, no execution counts."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb["nbformat"] == 4
    dirty = [
        i
        for i, cell in enumerate(nb["cells"])
        if cell["cell_type"] == "code" and (cell["outputs"] or cell["execution_count"] is not None)
    ]
    assert not dirty, (
        f"{path.name}: cells {dirty} have stored outputs; clear them before committing"
    )
