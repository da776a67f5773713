"""The hot loops, twice: ``reference`` (NumPy, readable) and ``numba`` (compiled)."""

from .dispatch import BACKENDS, get_backend, set_backend, use_backend

__all__ = ["BACKENDS", "get_backend", "set_backend", "use_backend"]
