"""Where Numba keeps ghostnp's compiled kernels: never inside the installed package.

The first run compiles the kernels (tens of seconds) and Numba saves the machine code
(``*.nbi`` index and ``*.nbc`` data files) so that later runs load it in a moment. By
default Numba writes those files into ``__pycache__`` beside the source, that is,
into ``site-packages/ghostnp``: files that ``pip uninstall`` leaves behind and that
then shadow a later install. ghostnp's kernels are cached instead in

1. ``$GHOSTNP_CACHE_DIR`` if it is set;
2. else ``$NUMBA_CACHE_DIR`` if it is set (Numba's own setting, for every library);
3. else the user's cache directory: ``$XDG_CACHE_HOME/ghostnp`` or
   ``~/.cache/ghostnp`` (Linux and others), ``~/Library/Caches/ghostnp`` (macOS),
   ``%LOCALAPPDATA%\\ghostnp\\Cache`` (Windows);

and in a folder under the system's temporary directory if that one cannot be
written. The choice is made by a Numba cache locator that only answers for files of
the ghostnp package; it is installed when the compiled kernels are first imported
(``import ghostnp`` imports nothing of Numba), and functions of other libraries are
cached as they always were. A cached kernel is recompiled when any source file of its
folder changes, not only its own (see ``get_source_stamp``).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["cache_dir", "install_cache_locator"]

_PACKAGE = Path(__file__).resolve().parents[1]  # the ghostnp folder
_state = {"installed": False}


def _user_cache_root() -> Path:
    """The platform's per-user cache folder (not created)."""
    home = Path.home()
    if sys.platform == "win32":
        return (
            Path(os.environ.get("LOCALAPPDATA") or home / "AppData" / "Local") / "ghostnp" / "Cache"
        )
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / "ghostnp"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg and Path(xdg).is_absolute() else home / ".cache") / "ghostnp"


def cache_dir() -> Path:
    """The folder for ghostnp's compiled kernels, by the rules above (not created)."""
    for var in ("GHOSTNP_CACHE_DIR", "NUMBA_CACHE_DIR"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    return _user_cache_root()


def _fallback_dir() -> Path:
    """A per-user folder under the temporary directory, for a read-only home."""
    user = os.environ.get("USER") or os.environ.get("USERNAME") or str(os.getuid())
    return Path(tempfile.gettempdir()) / f"ghostnp-cache-{user}"


def _in_package(py_file: str) -> bool:
    try:
        Path(py_file).resolve().relative_to(_PACKAGE)
    except (ValueError, OSError):
        return False
    return True


def install_cache_locator() -> None:
    """Make Numba cache the functions of the ghostnp package in `cache_dir`; idempotent.

    Must run before the module that defines the kernels is imported (Numba picks a
    function's cache folder when its ``@njit(cache=True)`` decorator runs).
    """
    if _state["installed"]:
        return
    from numba.core import caching

    impl: Any = getattr(caching, "CacheImpl", None) or caching._CacheImpl
    base: Any = getattr(caching, "UserProvidedCacheLocator", None) or (
        caching._UserProvidedCacheLocator
    )

    class GhostnpCacheLocator(base):  # type: ignore[misc]  # numba is untyped
        """Numba's locator for a user-given folder, with ghostnp's folder as the root."""

        def __init__(self, py_func: Any, py_file: str, root: Path) -> None:
            self._py_file = py_file
            self._lineno = py_func.__code__.co_firstlineno
            self._cache_path = str(root / self.get_suitable_cache_subpath(py_file))

        def get_source_stamp(self) -> Any:
            """The name, mtime and size of every ``.py`` file beside the kernel's own.

            A kernel inlines helpers from the other files of its folder, and Numba checks
            only the stamp of the file that defines the kernel: an edit of a helper would
            leave stale machine code in the cache. Any change in the folder recompiles.
            """
            files = sorted(Path(self._py_file).parent.glob("*.py"))
            return tuple((f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in files)

        @classmethod
        def from_function(cls, py_func: Any, py_file: str) -> Any:
            if not _in_package(py_file) or not os.path.exists(py_file):
                return None  # another library's function: Numba's usual locators
            for root in (cache_dir(), _fallback_dir()):
                locator = cls(py_func, py_file, root)
                try:
                    locator.ensure_cache_path()
                except OSError:
                    continue
                return locator
            return None

    if not any(c.__name__ == GhostnpCacheLocator.__name__ for c in impl._locator_classes):
        impl._locator_classes.insert(0, GhostnpCacheLocator)
    _state["installed"] = True
