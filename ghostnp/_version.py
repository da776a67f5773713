"""ghostnp's version, written once: in pyproject.toml, read from the installed package's
metadata, or from pyproject.toml itself in a source checkout that was never installed."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

__all__ = ["__version__"]


def _from_source() -> str:
    """The version in the pyproject.toml beside this package, or "0+unknown"."""
    pyproject = Path(__file__).resolve().parent.parent / "pyproject.toml"
    try:
        found = re.search(r'^version\s*=\s*"([^"]+)"', pyproject.read_text(), re.MULTILINE)
    except OSError:
        found = None
    return found[1] if found else "0+unknown"


try:
    __version__ = metadata.version("ghostnp")
except metadata.PackageNotFoundError:
    __version__ = _from_source()
