"""Assignment depthwise: a depthwise convolution, and a gradient checker to test it.

Complete every function that raises NotImplementedError (README.md has the math and
the shapes), then run

    ghostnp assignment grade .

Arrays are NCHW float arrays. ``stride`` and ``padding`` are ints. Keep the dtype of
the input, and do not change any input in place.
"""

import numpy as np


def out_size(size, k, stride, padding):
    """PyTorch's output length: floor((size + 2*padding - k) / stride) + 1."""
    return (size + 2 * padding - k) // stride + 1


def rel_error(a, b):
    """max|a - b| / max(max|a|, max|b|): 0 for equal arrays, about 1 for unrelated ones."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.abs(a).max(initial=0.0), np.abs(b).max(initial=0.0), 1e-300)
    return float(np.abs(a - b).max(initial=0.0) / scale)


def depthwise_conv2d_forward(x, w, b=None, stride=1, padding=0):
    """Depthwise convolution of x (N, C, H, W) with w (C*M, 1, kh, kw), plus b (C*M,).

    Output channel o = c*M + m is input channel c convolved with filter w[o, 0]:

        y[n, o, a, q] = sum_{i,j} w[o, 0, i, j] * xp[n, o // M, a*stride + i, q*stride + j]

    (xp: x zero-padded by ``padding``). Returns (y (N, C*M, ho, wo), cache).
    """
    ### HINT: pad x to xp (N, C, H+2p, W+2p); view w as (C, M, kh, kw). For each offset (i, j) the
    ### HINT: slice xp[:, :, i : i + s*ho : s, j : j + s*wo : s] is (N, C, ho, wo); times w[:, :, i, j]
    ### HINT: (C, M) it adds to y viewed as (N, C, M, ho, wo) (broadcast with None axes). Then
    ### HINT: reshape y to (N, C*M, ho, wo), add the bias, and keep xp, w, x.shape, stride, padding.
    ### BEGIN SOLUTION
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    m = o // c
    ho, wo = out_size(h, kh, stride, padding), out_size(wd, kw, stride, padding)
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    wv = w.reshape(c, m, kh, kw)
    y = np.zeros((n, c, m, ho, wo), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, None, i : i + stride * ho : stride, j : j + stride * wo : stride]
            y += patch * wv[:, :, i, j][None, :, :, None, None]
    y = y.reshape(n, o, ho, wo)
    if b is not None:
        y = y + b.reshape(1, o, 1, 1)
    return y, (xp, w, x.shape, b is not None, stride, padding)
    ### END SOLUTION


def depthwise_conv2d_backward(dy, cache):
    """Gradients for the upstream gradient dy (N, C*M, ho, wo): (dx, dw, db) with
    dx (N, C, H, W), dw (C*M, 1, kh, kw), db (C*M,) or None without a bias."""
    ### HINT: view dy as (N, C, M, ho, wo) and w as (C, M, kh, kw). For each offset (i, j), with the
    ### HINT: same slice S of the padded input: dxp[S] += sum over m of dy * w[:, :, i, j] -> (N, C, ho, wo)
    ### HINT: (the M outputs of channel c all send gradient back to it), and dw[:, :, i, j] = sum over
    ### HINT: n, a, q of dy * xp[S] -> (C, M). Crop the padding off dxp; db sums dy over n, h, w.
    ### BEGIN SOLUTION
    xp, w, x_shape, has_bias, stride, padding = cache
    n, c, h, wd = x_shape
    o, _, kh, kw = w.shape
    m = o // c
    ho, wo = dy.shape[2:]
    dyv = dy.reshape(n, c, m, ho, wo)
    wv = w.reshape(c, m, kh, kw)
    dxp = np.zeros_like(xp)
    dw = np.zeros((c, m, kh, kw), dtype=dy.dtype)
    for i in range(kh):
        for j in range(kw):
            rows = slice(i, i + stride * ho, stride)
            cols = slice(j, j + stride * wo, stride)
            dxp[:, :, rows, cols] += np.einsum("ncmab,cm->ncab", dyv, wv[:, :, i, j])
            dw[:, :, i, j] = np.einsum("ncmab,ncab->cm", dyv, xp[:, :, rows, cols])
    dx = dxp[:, :, padding : padding + h, padding : padding + wd].copy()
    db = dy.sum(axis=(0, 2, 3)) if has_bias else None
    return dx, dw.reshape(o, 1, kh, kw), db
    ### END SOLUTION


def numerical_gradient(f, x, eps=1e-6):
    """dL/dx by central differences, where L = f() is a scalar computed from x.

    Nudge one element of x (float64, any shape) at a time, in place, both ways:
    dL/dx[i] ~ (f() with x[i] + eps  -  f() with x[i] - eps) / (2 eps), and put each
    element back exactly as it was. Returns an array shaped like x.
    """
    ### HINT: grad = np.zeros_like(x); for idx in np.ndindex(x.shape): remember x[idx], set it to
    ### HINT: old + eps and evaluate f(), then old - eps and evaluate f(), restore x[idx] = old, and
    ### HINT: store the central difference (up - down) / (2 * eps).
    ### BEGIN SOLUTION
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        try:
            x[idx] = old + eps
            up = float(f())
            x[idx] = old - eps
            down = float(f())
        finally:
            x[idx] = old
        grad[idx] = (up - down) / (2.0 * eps)
    return grad
    ### END SOLUTION


def check_gradients(forward, backward, inputs, seed=0, eps=1e-6):
    """Check ``backward`` against central differences of ``forward``.

    ``y, cache = forward(*inputs)``; ``grads = backward(g, cache)`` returns one gradient
    per input. The scalar checked is L = sum(y * g) for an upstream gradient g drawn
    from N(0, 1) with ``np.random.default_rng(seed)``, so dL/dy = g. Returns a list with
    the relative error (``rel_error``) between the analytic and the numerical gradient
    of each input. Leaves the caller's arrays unchanged.
    """
    ### HINT: work on copies xs of the inputs; y, cache = forward(*xs); g of y's shape at random;
    ### HINT: grads = backward(g, cache); for each k, the numerical gradient of
    ### HINT: lambda: np.sum(forward(*xs)[0] * g) with respect to xs[k], and rel_error(grads[k], it).
    ### BEGIN SOLUTION
    xs = [np.array(a, dtype=np.float64) for a in inputs]
    y, cache = forward(*xs)
    g = np.random.default_rng(seed).standard_normal(y.shape)
    grads = backward(g.copy(), cache)

    def loss():
        return np.sum(forward(*xs)[0] * g)

    return [rel_error(grads[k], numerical_gradient(loss, xs[k], eps)) for k in range(len(xs))]
    ### END SOLUTION
