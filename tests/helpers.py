"""Comparison helpers shared by the test modules."""

from __future__ import annotations

import numpy as np


def assert_close(a, b, rtol=1e-10):
    """max|a - b| <= rtol * max(1, max|b|): relative to the reference's scale, absolute near 0."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    if b.size == 0:
        return
    err = float(np.max(np.abs(a - b)))
    bound = rtol * max(1.0, float(np.max(np.abs(b))))
    assert err <= bound, f"max|a - b| = {err:.3e} > {bound:.3e}"


def assert_adjoint(lhs: float, rhs: float, scale: float, tol: float = 1e-12) -> None:
    """lhs == rhs up to rounding, measured against ``scale`` (a sum of |terms|)."""
    assert abs(lhs - rhs) <= tol * max(scale, 1e-300), (lhs, rhs, scale)


def inner(a, b) -> float:
    """The Euclidean inner product <a, b> of two arrays of one shape."""
    return float(np.vdot(a, b))
