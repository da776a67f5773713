"""The hot loops, twice: ``reference`` (NumPy, readable) and ``numba`` (compiled)."""

import os
import sys

# Numba's OpenMP threading layer spin-waits between parallel regions, which makes every
# kernel call 5-20x slower as soon as another process competes for the cores. The
# workqueue layer sleeps instead and is as fast on an idle machine. Users who set
# NUMBA_THREADING_LAYER, or imported numba first, keep their choice.
if "numba" not in sys.modules:
    os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")

from .dispatch import BACKENDS, get_backend, set_backend, use_backend  # noqa: E402

__all__ = ["BACKENDS", "get_backend", "set_backend", "use_backend"]

# modules whose @njit(cache=True) functions must be cached outside the package
_COMPILED = ("numba",)


def __getattr__(name):
    """Import the compiled kernels on first use, after pointing Numba's cache for them
    at the user's cache folder (see ``cache.py``). ``from . import numba`` and
    ``from ghostnp.kernels import numba`` both come here while the module is not loaded
    yet; nothing of Numba is imported by ``import ghostnp``."""
    if name in _COMPILED:
        import importlib

        from .cache import install_cache_locator

        install_cache_locator()
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
