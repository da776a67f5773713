"""Batch normalisation over (N, H, W) for each channel, as ``torch.nn.BatchNorm2d``.

Training mode, per channel c with M = N*H*W values:

    mu    = mean(x)                    var = mean((x - mu)^2)        (biased, used to normalise)
    xhat  = (x - mu) / sqrt(var + eps)
    y     = gamma * xhat + beta
    running_mean <- (1 - momentum) * running_mean + momentum * mu
    running_var  <- (1 - momentum) * running_var  + momentum * var * M / (M - 1)   (unbiased)

Backward (mu and var depend on every x, which gives the two correction terms):

    dxhat  = dy * gamma
    dx     = (1 / sqrt(var + eps)) * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))
    dgamma = sum(dy * xhat)            dbeta = sum(dy)

Since dxhat = gamma * dy per channel, mean(dxhat) = gamma * dbeta / M and
mean(dxhat * xhat) = gamma * dgamma / M: the backward pass reuses the two parameter
gradients instead of forming dxhat, and needs two reductions over the batch in all.

The passes over the (N, C, H, W) arrays are kernels (``ghostnp.kernels``: the statistics,
the normalisation, the backward pass), in NumPy in ``reference.py`` and as Numba loops
parallel over channels; this file keeps the checks and the bookkeeping.

Eval mode uses the running statistics, which are constants, so dx = dy * gamma / sqrt(rv + eps).
The function never changes its inputs: the updated running statistics are returned in
the cache (``cache.running_mean``, ``cache.running_var``) for the caller to keep.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import LayerValueError
from ..kernels import dispatch as K
from .shape import check_float, check_rank, check_same_dtype

__all__ = ["BatchNormCache", "batch_norm2d_forward", "batch_norm2d_backward"]


class BatchNormCache(NamedTuple):
    xhat: np.ndarray  # (N, C, H, W) normalised input
    inv_std: np.ndarray  # (C,) 1 / sqrt(var + eps), batch or running
    weight: np.ndarray | None  # (C,) gamma, None when affine=False
    training: bool
    running_mean: np.ndarray | None  # (C,) updated copy (or the unchanged one in eval)
    running_var: np.ndarray | None


def batch_norm2d_forward(
    x, weight, bias, running_mean, running_var, training=True, momentum=0.1, eps=1e-5
):
    """Normalise x (N, C, H, W) per channel; weight, bias, running stats are (C,) or None.

    Returns (y (N, C, H, W), cache). With ``training=False`` the running statistics are
    required and used; with ``training=True`` batch statistics are used and, if running
    statistics are given, their updated copies are returned in the cache.
    """
    op = "batch_norm2d"
    check_float(op, "x", x)
    check_rank(op, "input", x, 4, "(N, C, H, W)")
    n, c, h, w = x.shape
    for name, a in (
        ("weight", weight),
        ("bias", bias),
        ("running_mean", running_mean),
        ("running_var", running_var),
    ):
        if a is not None:
            check_float(op, name, a)
            if a.shape != (c,):
                raise LayerValueError(
                    op,
                    f"expected {name} of shape ({c},) for an input with {c} channels, "
                    f"got {tuple(a.shape)} (input shape {tuple(x.shape)})",
                )
    check_same_dtype(op, x=x, weight=weight, bias=bias)
    if training:
        m = n * h * w
        if m < 2:
            raise LayerValueError(
                op,
                f"expected more than 1 value per channel in training, got input shape "
                f"{tuple(x.shape)}",
            )
        mu, var = K.batch_norm_stats(x)  # (C,), (C,) biased
        if running_mean is not None:
            running_mean = (1 - momentum) * running_mean + momentum * mu.astype(running_mean.dtype)
        if running_var is not None:
            unbiased = var * (m / (m - 1))
            running_var = (1 - momentum) * running_var + momentum * unbiased.astype(
                running_var.dtype
            )
    else:
        if running_mean is None or running_var is None:
            raise LayerValueError(op, "eval mode needs running_mean and running_var, got None")
        mu, var = running_mean.astype(x.dtype), running_var.astype(x.dtype)
    inv_std = (1.0 / np.sqrt(var + eps)).astype(x.dtype)  # (C,)
    affine = weight is not None or bias is not None
    g = np.ones(c, dtype=x.dtype) if weight is None else weight
    beta = np.zeros(c, dtype=x.dtype) if bias is None else bias
    xhat, y = K.batch_norm_normalize(x, mu.astype(x.dtype), inv_std, g, beta, affine)
    return y, BatchNormCache(xhat, inv_std, weight, bool(training), running_mean, running_var)


def batch_norm2d_backward(dy, cache: BatchNormCache):
    """Gradients: dy (N, C, H, W) -> (dx (N, C, H, W), dweight (C,) or None, dbias (C,) or None)."""
    op = "batch_norm2d_backward"
    check_float(op, "dy", dy)
    if dy.shape != cache.xhat.shape:
        raise LayerValueError(
            op, f"expected dy of shape {tuple(cache.xhat.shape)}, got {tuple(dy.shape)}"
        )
    c = dy.shape[1]
    g = np.ones(c, dtype=dy.dtype) if cache.weight is None else cache.weight
    scale = g * cache.inv_std  # (C,) d y / d xhat times d xhat / d x
    dx, dweight, dbias = K.batch_norm_backward(dy, cache.xhat, scale, cache.training)
    if cache.weight is None:
        return dx, None, None
    return dx, dweight, dbias
