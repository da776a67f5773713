"""Assignment batchnorm: batch normalisation's forward and backward pass, in training
and in eval mode.

Complete every gap that raises NotImplementedError (README.md has the derivation and
the shapes), then run

    ghostnp assignment grade .

x is (N, C, H, W); gamma, beta and the running statistics are (C,). Statistics are
taken per channel over the M = N*H*W values of that channel. Keep the dtype of x, and
do not change any input in place.
"""

import numpy as np


def batch_norm_forward(
    x, gamma, beta, running_mean, running_var, training=True, momentum=0.1, eps=1e-5
):
    """Normalise x per channel and scale and shift it: y = gamma * xhat + beta.

    Training: xhat = (x - mu) / sqrt(var + eps) with the batch mean mu and the biased
    batch variance var (C,); the running statistics are updated as

        running_mean' = (1 - momentum) * running_mean + momentum * mu
        running_var'  = (1 - momentum) * running_var  + momentum * var * M / (M - 1)

    Eval: xhat uses running_mean and running_var, which stay as they are.

    Returns (y (N, C, H, W), cache, running_mean', running_var'), where the cache is
    (xhat, gamma, inv_std, training) with inv_std = 1 / sqrt(var + eps) (C,).
    """
    ### HINT: reshape every (C,) vector to (1, C, 1, 1) to broadcast over x. Training: mu and var are
    ### HINT: x.mean / x.var over axes (0, 2, 3); M = N*H*W; return NEW running arrays (no in-place
    ### HINT: update). Eval: mu, var = running_mean, running_var. Then inv_std, xhat, y and the cache.
    ### BEGIN SOLUTION
    c = x.shape[1]
    if training:
        m = x.size // c
        mu = x.mean(axis=(0, 2, 3))
        var = x.var(axis=(0, 2, 3))
        running_mean = (1 - momentum) * running_mean + momentum * mu
        running_var = (1 - momentum) * running_var + momentum * var * (m / (m - 1))
    else:
        mu, var = running_mean, running_var
    inv_std = (1.0 / np.sqrt(var + eps)).astype(x.dtype)
    xhat = (x - mu.reshape(1, c, 1, 1)) * inv_std.reshape(1, c, 1, 1)
    y = gamma.reshape(1, c, 1, 1) * xhat + beta.reshape(1, c, 1, 1)
    return y, (xhat, gamma, inv_std, training), running_mean, running_var
    ### END SOLUTION


def batch_norm_backward(dy, cache):
    """Gradients for the upstream gradient dy (N, C, H, W): (dx (N, C, H, W),
    dgamma (C,), dbeta (C,)), in the mode the forward pass ran in."""
    xhat, gamma, inv_std, training = cache
    c = dy.shape[1]
    ### HINT: y = gamma * xhat + beta per channel: dbeta sums dy over (0, 2, 3), and dgamma sums
    ### HINT: dy * xhat over (0, 2, 3); both are (C,).
    ### BEGIN SOLUTION
    dbeta = dy.sum(axis=(0, 2, 3))
    dgamma = (dy * xhat).sum(axis=(0, 2, 3))
    ### END SOLUTION
    if not training:
        ### HINT: eval: mean and variance are constants, so y is an affine map of x per channel:
        ### HINT: dx = dy * gamma * inv_std (both reshaped to (1, C, 1, 1)).
        ### BEGIN SOLUTION
        dx = dy * (gamma * inv_std).reshape(1, c, 1, 1)
        ### END SOLUTION
    else:
        ### HINT: training: mu and var depend on every x of the channel. With dxhat = dy * gamma,
        ### HINT: dx = inv_std * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), means over
        ### HINT: (0, 2, 3) with keepdims=True, so each is (1, C, 1, 1).
        ### BEGIN SOLUTION
        dxhat = dy * gamma.reshape(1, c, 1, 1)
        mean_dxhat = dxhat.mean(axis=(0, 2, 3), keepdims=True)
        mean_dxhat_xhat = (dxhat * xhat).mean(axis=(0, 2, 3), keepdims=True)
        dx = inv_std.reshape(1, c, 1, 1) * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat)
        ### END SOLUTION
    return dx, dgamma, dbeta
