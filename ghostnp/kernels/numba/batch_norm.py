"""Batch-norm kernels: the statistics, the normalisation and the backward pass.

Each kernel runs over the channels [lo, hi) (``threads.run_items`` gives each thread a
range); a channel's statistics and planes belong to it alone, so nothing is shared
between threads. Arrays come flattened to
(N, C, H*W). Sums are kept in float64 and run in an order that does not depend on the
thread count; the elementwise passes run in the arrays' own precision.
"""

from __future__ import annotations

from .fastmath import FASTMATH, REDUCE
from .jit import kernel


@kernel(fastmath=REDUCE, nogil=True)
def _bn_stats(x, mean, var, lo, hi):
    """mean[c] and the biased var[c] of x (N, C, L) over (N, L), in two passes."""
    n, c, length = x.shape
    count = n * length
    for ci in range(lo, hi):
        s = 0.0
        for ni in range(n):
            xs = x[ni, ci]
            for t in range(length):
                s += xs[t]
        mean_c = s / count
        s = 0.0
        for ni in range(n):
            xs = x[ni, ci]
            for t in range(length):
                d = xs[t] - mean_c
                s += d * d
        mean[ci] = mean_c
        var[ci] = s / count
    return mean, var


@kernel(fastmath=FASTMATH, nogil=True)
def _bn_normalize(x, mean, inv_std, gamma, beta, xhat, y, affine, lo, hi):
    """xhat = (x - mean) * inv_std and, if ``affine``, y = xhat * gamma + beta, per channel."""
    n, c, length = x.shape
    for ci in range(lo, hi):
        mean_c, inv, gamma_c, beta_c = mean[ci], inv_std[ci], gamma[ci], beta[ci]
        for ni in range(n):
            xs, xhs = x[ni, ci], xhat[ni, ci]
            if affine:
                ys = y[ni, ci]
                for t in range(length):
                    v = (xs[t] - mean_c) * inv
                    xhs[t] = v
                    ys[t] = v * gamma_c + beta_c
            else:
                for t in range(length):
                    xhs[t] = (xs[t] - mean_c) * inv
    return xhat, y


@kernel(fastmath=REDUCE, nogil=True)
def _bn_backward(dy, xhat, scale, inv_count, training, dx, dgamma, dbeta, lo, hi):
    """dbeta = sum dy, dgamma = sum dy * xhat, and dx = scale * (dy - dbeta/count -
    xhat * dgamma/count) in training (scale * dy in eval), per channel."""
    n, c, length = dy.shape
    for ci in range(lo, hi):
        sum_dy, sum_dy_xhat = 0.0, 0.0
        for ni in range(n):
            dys, xhs = dy[ni, ci], xhat[ni, ci]
            for t in range(length):
                sum_dy += dys[t]
                sum_dy_xhat += dys[t] * xhs[t]
        dbeta[ci], dgamma[ci] = sum_dy, sum_dy_xhat
        sc = scale[ci]
        # the means are read back from the stored sums times inv_count[0], so that the
        # loop below runs in the arrays' own precision (float64 scalars would widen every
        # float32 operation)
        zero = inv_count[0] * 0  # a zero of the arrays' type
        mean_dy, mean_dy_xhat = (
            (dbeta[ci] * inv_count[0], dgamma[ci] * inv_count[0]) if training else (zero, zero)
        )
        for ni in range(n):
            dys, xhs, dxs = dy[ni, ci], xhat[ni, ci], dx[ni, ci]
            for t in range(length):
                dxs[t] = sc * (dys[t] - mean_dy - xhs[t] * mean_dy_xhat)
    return dx, dgamma, dbeta
