"""The library's random generator, used for weight initialisation and dropout masks.

``ghostnp.manual_seed(s)`` makes model construction and training repeatable.
"""

from __future__ import annotations

import numpy as np

_gen = [np.random.default_rng()]


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the global generator; returns it."""
    _gen[0] = np.random.default_rng(seed)
    return _gen[0]


def generator() -> np.random.Generator:
    """The global generator that layers draw from."""
    return _gen[0]
