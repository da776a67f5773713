"""ghostnp: GhostNet from scratch in NumPy, with hand-written backward passes.

import ghostnp
from ghostnp import functional as F, nn
ghostnp.set_backend("numpy")    # or "numba" (default): which kernels run
"""

from __future__ import annotations

from . import data, functional, gradcheck, interop, models, nn, optim, profile
from ._version import __version__
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .errors import (
    Interrupted,
    LayerError,
    LayerStateError,
    LayerTypeError,
    LayerValueError,
    NonFiniteInputError,
    StateDictError,
    WeightsFileError,
)
from .grad_mode import is_grad_enabled, no_grad
from .kernels import get_backend, set_backend, use_backend
from .rng import manual_seed

__all__ = [
    "__version__",
    "functional",
    "nn",
    "models",
    "data",
    "optim",
    "gradcheck",
    "interop",
    "profile",
    "get_backend",
    "set_backend",
    "use_backend",
    "manual_seed",
    "no_grad",
    "is_grad_enabled",
    "save_checkpoint",
    "load_checkpoint",
    "CheckpointError",
    "LayerError",
    "LayerValueError",
    "LayerTypeError",
    "LayerStateError",
    "StateDictError",
    "NonFiniteInputError",
    "WeightsFileError",
    "Interrupted",
]
