"""Helpers for checks that say not only that a result is wrong but where, and so why.

``array(...)`` turns a student's return value into an ndarray or fails with a message
about its type, shape or dtype. ``compare(...)`` fails when two arrays differ, naming the
region where every wrong element lies (``where_wrong``). ``common_feature`` looks across
several cases (geometries, say) for the one property that all failing cases share and
no passing case has ("fails only when the stride is above 1").
"""

from __future__ import annotations

import numpy as np

from .grader import Fail

__all__ = [
    "RTOL",
    "array",
    "common_feature",
    "compare",
    "error_mask",
    "max_error",
    "where_wrong",
]

RTOL = 1e-9  # float64 results that follow the same math agree far closer than this


def array(name: str, value, shape=None, dtype=None) -> np.ndarray:
    """``value`` as an ndarray of ``shape`` and ``dtype`` (when given), else Fail."""
    if not isinstance(value, np.ndarray):
        raise Fail(f"{name} should be a numpy array, got {type(value).__name__}")
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise Fail(f"{name} has shape {tuple(value.shape)}, expected {tuple(shape)}")
    if dtype is not None and value.dtype != np.dtype(dtype):
        raise Fail(
            f"{name} has dtype {value.dtype}, expected {np.dtype(dtype)}: keep the dtype of "
            "the input (create new arrays with dtype=x.dtype or np.zeros_like)"
        )
    return value


def max_error(got, expected) -> float:
    """max|got - expected| relative to max(1, max|expected|): an absolute error for
    values of order one, a relative one for large values."""
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    if expected.size == 0:
        return 0.0
    diff = np.abs(got - expected)
    if not np.all(np.isfinite(diff)):
        return float("inf")
    return float(diff.max() / max(1.0, float(np.abs(expected).max())))


def error_mask(got, expected, rtol: float = RTOL) -> np.ndarray:
    """Boolean array: where ``got`` differs from ``expected`` by more than ``rtol`` times
    max(1, max|expected|) (NaN and infinity count as wrong)."""
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    scale = max(1.0, float(np.abs(expected).max())) if expected.size else 1.0
    with np.errstate(invalid="ignore"):
        return ~(np.abs(got - expected) <= rtol * scale)


def where_wrong(mask: np.ndarray, regions) -> str | None:
    """The message of the first ``(region, message)`` that holds every wrong element of
    ``mask`` and is a proper part of the array (a region that is everything or nothing
    says nothing about where), or None."""
    if not mask.any():
        return None
    for region, message in regions:
        region = np.broadcast_to(region, mask.shape)
        if region.all() or not region.any():
            continue
        if not np.any(mask & ~region):
            return message
    return None


def compare(name: str, got, expected, rtol: float = RTOL, regions=(), hint: str = "") -> None:
    """Fail unless ``got`` equals ``expected`` (same shape; values to ``rtol``).

    The message gives the error, the first wrong index, the region that holds all wrong
    elements (from ``regions``, see ``where_wrong``) and then ``hint``.
    """
    expected = np.asarray(expected)
    got = array(name, got, expected.shape)
    if (
        got.dtype.kind == "f"
        and expected.dtype.kind == "f"
        and got.dtype.itemsize < expected.dtype.itemsize
    ):
        raise Fail(
            f"{name} has dtype {got.dtype} for {expected.dtype} inputs: keep the input's dtype "
            "(create new arrays with dtype=x.dtype or np.zeros_like)"
        )
    mask = error_mask(got, expected, rtol)
    if not mask.any():
        return
    err = max_error(got, expected)
    first = tuple(int(i) for i in np.argwhere(mask)[0])
    msg = f"{name} is wrong (max error {err:.2e}, first at index {first})"
    detail = where_wrong(mask, regions)
    if detail is None and mask.all():
        ratio = _constant_ratio(got, expected)
        if ratio is not None:
            detail = f"every entry is {ratio:.6g} times the right one"
    if detail:
        msg += f": {detail}"
    if hint:
        msg += f"; {hint}"
    raise Fail(msg)


def _constant_ratio(got, expected):
    """got / expected when that is one constant (a factor like N or 1/2), else None."""
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    nz = np.abs(expected) > 1e-12
    if not nz.any() or np.any(np.abs(got[~nz]) > 1e-9):
        return None
    r = got[nz] / expected[nz]
    if np.all(np.isfinite(r)) and np.ptp(r) <= 1e-7 * max(1.0, abs(float(r[0]))):
        return float(r[0])
    return None


def common_feature(cases, features):
    """The name of the first feature true for every failing case and for no passing one.

    ``cases``: (case, passed) pairs; ``features``: (name, predicate(case)) pairs. Returns
    None when no case failed, every case failed, or no feature separates them.
    """
    failed = [c for c, ok in cases if not ok]
    passed = [c for c, ok in cases if ok]
    if not failed or not passed:
        return None
    for name, pred in features:
        if all(pred(c) for c in failed) and not any(pred(c) for c in passed):
            return name
    return None
