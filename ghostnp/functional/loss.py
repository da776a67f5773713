"""Softmax cross-entropy with mean reduction and optional label smoothing.

For logits z (N, J) over J classes and integer targets t (N,), with smoothing eps the
target distribution is q = (1 - eps) * onehot(t) + eps / J (PyTorch's definition), and

    log p = z - logsumexp(z)            (shifted by max z first: no overflow)
    loss  = -(1/N) * sum_n sum_j q[n, j] * log p[n, j]
    dz    = (softmax(z) - q) / N        (times the upstream scalar)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ..errors import LayerStateError, LayerTypeError, LayerValueError
from ..typing import FloatArray
from .shape import check_float, check_rank

__all__ = [
    "CrossEntropyCache",
    "log_softmax",
    "softmax_cross_entropy_forward",
    "softmax_cross_entropy_backward",
]


class CrossEntropyCache(NamedTuple):
    """What softmax_cross_entropy_backward needs: the softmax probabilities (N, J) and the
    target distribution q (N, J), label smoothing included."""

    probs: FloatArray  # (N, J) softmax of the logits
    q: FloatArray  # (N, J) target distribution


def log_softmax(z: FloatArray) -> FloatArray:
    """Row-wise log-softmax of (N, J), stable for large logits."""
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax_cross_entropy_forward(
    logits: FloatArray, target: ArrayLike, label_smoothing: float = 0.0
) -> tuple[float, CrossEntropyCache]:
    """Mean cross-entropy of logits (N, J) against class indices (N,) -> (loss float, cache)."""
    op = "cross_entropy"
    check_float(op, "logits", logits)
    check_rank(op, "logits", logits, 2, "(N, num_classes)")
    target = np.asarray(target)
    if not np.issubdtype(target.dtype, np.integer):
        raise LayerTypeError(
            op, f"target must hold integer class indices, got dtype {target.dtype}"
        )
    n, classes = logits.shape
    if target.shape != (n,):
        raise LayerValueError(
            op,
            f"expected target of shape ({n},) for logits {tuple(logits.shape)}, got "
            f"{tuple(target.shape)}",
        )
    if n and (target.min() < 0 or target.max() >= classes):
        raise LayerValueError(
            op,
            f"target classes must lie in [0, {classes}), got values from {target.min()} to "
            f"{target.max()}",
        )
    if not 0.0 <= label_smoothing <= 1.0:
        raise LayerValueError(op, f"label_smoothing must lie in [0, 1], got {label_smoothing}")
    logp = log_softmax(logits)
    q = np.full((n, classes), label_smoothing / classes, dtype=logits.dtype)
    q[np.arange(n), target] += 1.0 - label_smoothing
    loss = float(-(q * logp).sum() / n)
    return loss, CrossEntropyCache(np.exp(logp), q)


def softmax_cross_entropy_backward(
    dloss: float = 1.0, cache: CrossEntropyCache | None = None
) -> FloatArray:
    """Gradient of the mean loss w.r.t. the logits, scaled by the upstream scalar: (N, J)."""
    if cache is None:
        raise LayerStateError(
            "cross_entropy_backward", "needs the cache of softmax_cross_entropy_forward, got None"
        )
    if np.ndim(dloss) != 0:
        raise LayerValueError(
            "cross_entropy_backward",
            f"expected a scalar upstream gradient (the loss is a scalar), got shape "
            f"{np.shape(dloss)}",
        )
    n = cache.probs.shape[0]
    return (cache.probs - cache.q) * (float(dloss) / n)
