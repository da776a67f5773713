"""Batch normalisation over (N, H, W) for each channel, as ``torch.nn.BatchNorm2d``.

Training mode, for each channel c over its count = N*H*W values (sum and mean over
those values; gamma, beta are the weight and bias):

    mean  = mean(x)                    var = mean((x - mean)^2)       (biased, used to normalise)
    xhat  = (x - mean) * inv_std       inv_std = 1 / sqrt(var + eps)
    y     = gamma * xhat + beta
    running_mean <- (1 - momentum) * running_mean + momentum * mean
    running_var  <- (1 - momentum) * running_var  + momentum * var * count / (count - 1)   (unbiased)

Backward. The parameter gradients are direct:

    dbeta  = sum(dy)                   dgamma = sum(dy * xhat)

For dx, mean and var depend on every x of the channel, which adds two correction terms
to the plain chain rule dxhat * inv_std:

    dxhat  = gamma * dy
    dx     = inv_std * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))

Since gamma is constant per channel, mean(dxhat) = gamma * dbeta / count and
mean(dxhat * xhat) = gamma * dgamma / count, so with scale = gamma * inv_std:

    dx     = scale * (dy - dbeta / count - xhat * dgamma / count)

which is what the kernels compute. In eval mode the running statistics are constants and
dx = scale * dy (with inv_std from the running variance).

The passes over the (N, C, H, W) arrays are kernels (``ghostnp.kernels``: the statistics,
the normalisation, the backward pass); this file keeps the checks and the bookkeeping.
The function never changes its inputs: the updated running statistics are returned in
the cache (``cache.running_mean``, ``cache.running_var``) for the caller to keep.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..errors import LayerValueError
from ..kernels import dispatch as kernels
from ..typing import FloatArray
from .shape import check_float, check_rank, check_same_dtype, check_same_shape

__all__ = ["BatchNormCache", "batch_norm2d_forward", "batch_norm2d_backward"]


class BatchNormCache(NamedTuple):
    xhat: FloatArray  # (N, C, H, W) normalised input
    inv_std: FloatArray  # (C,) 1 / sqrt(var + eps), batch or running
    weight: FloatArray | None  # (C,) gamma, None when affine=False
    training: bool
    running_mean: FloatArray | None  # (C,) updated copy (or the unchanged one in eval)
    running_var: FloatArray | None


def batch_norm2d_forward(
    x: FloatArray,
    weight: FloatArray | None,
    bias: FloatArray | None,
    running_mean: FloatArray | None,
    running_var: FloatArray | None,
    training: bool = True,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[FloatArray, BatchNormCache]:
    """Normalise x (N, C, H, W) per channel; weight, bias, running stats are (C,) or None.

    Returns (y (N, C, H, W), cache). With ``training=False`` the running statistics are
    required and used; with ``training=True`` batch statistics are used and, if running
    statistics are given, their updated copies are returned in the cache.
    """
    op = "batch_norm2d"
    check_float(op, "x", x)
    check_rank(op, "input", x, 4, "(N, C, H, W)")
    n, c, h, wd = x.shape
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
        count = n * h * wd
        if count < 2:
            raise LayerValueError(
                op,
                f"expected more than 1 value per channel in training, got input shape "
                f"{tuple(x.shape)}",
            )
        mean, var = kernels.batch_norm_stats(x)  # (C,), (C,) biased
        if running_mean is not None:
            running_mean = (1 - momentum) * running_mean + momentum * mean.astype(
                running_mean.dtype
            )
        if running_var is not None:
            unbiased = var * (count / (count - 1))
            running_var = (1 - momentum) * running_var + momentum * unbiased.astype(
                running_var.dtype
            )
    else:
        if running_mean is None or running_var is None:
            raise LayerValueError(op, "eval mode needs running_mean and running_var, got None")
        mean, var = running_mean.astype(x.dtype), running_var.astype(x.dtype)
    inv_std = (1.0 / np.sqrt(var + eps)).astype(x.dtype)  # (C,)
    affine = weight is not None or bias is not None
    gamma = np.ones(c, dtype=x.dtype) if weight is None else weight  # (C,)
    beta = np.zeros(c, dtype=x.dtype) if bias is None else bias  # (C,)
    xhat, y = kernels.batch_norm_normalize(x, mean.astype(x.dtype), inv_std, gamma, beta, affine)
    return y, BatchNormCache(xhat, inv_std, weight, bool(training), running_mean, running_var)


def batch_norm2d_backward(
    dy: FloatArray, cache: BatchNormCache
) -> tuple[FloatArray, FloatArray | None, FloatArray | None]:
    """Gradients: dy (N, C, H, W) -> (dx (N, C, H, W), dweight (C,) or None, dbias (C,) or None)."""
    op = "batch_norm2d_backward"
    check_float(op, "dy", dy)
    check_same_shape(op, "dy", dy, cache.xhat.shape)
    c = dy.shape[1]
    gamma = np.ones(c, dtype=dy.dtype) if cache.weight is None else cache.weight  # (C,)
    scale = gamma * cache.inv_std  # (C,): d y / d xhat times d xhat / d x
    dx, dgamma, dbeta = kernels.batch_norm_backward(dy, cache.xhat, scale, cache.training)
    if cache.weight is None:
        return dx, None, None
    return dx, dgamma, dbeta
