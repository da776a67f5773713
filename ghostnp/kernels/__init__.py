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
