"""Type names shared by the annotated modules: the arrays ghostnp computes on."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["FloatArray", "IntArray", "IntOrPair"]

FloatArray = NDArray[np.floating[Any]]
"""A float32 or float64 ndarray: every op follows its input's dtype."""

IntArray = NDArray[np.integer[Any]]
"""An integer ndarray (class indices, argmax positions)."""

IntOrPair = int | tuple[int, int]
"""A kernel size, stride, padding or dilation: one int for both axes, or (h, w)."""
