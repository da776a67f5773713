"""The hot loops, twice: ``reference`` (NumPy, readable) and ``numba`` (compiled, fast).

``dispatch`` is the kernel interface that ``functional/`` calls; it runs the active
backend, chosen with ``set_backend`` / ``use_backend`` or ``GHOSTNP_BACKEND``.
Convolution kernels take a ``ConvGeometry`` (``geometry.py``).
"""

from .dispatch import BACKENDS, get_backend, set_backend, use_backend
from .geometry import ConvGeometry

__all__ = ["BACKENDS", "ConvGeometry", "get_backend", "set_backend", "use_backend"]
