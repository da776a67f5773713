"""Assignment im2col: a 2-D convolution by im2col, and its backward pass through col2im.

Complete every function below (see README.md for the math and the shapes), then run

    ghostnp assignment grade .

Arrays are NCHW float arrays; weights use PyTorch's layout (O, C, kh, kw). ``stride``
and ``padding`` are ints (the same along H and W). Keep the dtype of the input, and do
not change any input in place.
"""

import numpy as np


def out_size(size, k, stride, padding):
    """Length of the output along one axis: a window of k, moved by ``stride`` over the
    input of length ``size`` padded by ``padding`` zeros on both sides. Returns an int."""
    ### HINT: count the window positions that fit inside the padded length size + 2*padding,
    ### HINT: rounding down as PyTorch does: floor((size + 2*padding - k) / stride) + 1.
    ### BEGIN SOLUTION
    return (size + 2 * padding - k) // stride + 1
    ### END SOLUTION


def im2col(x, kh, kw, stride=1, padding=0):
    """Unfold every kh x kw window of x (N, C, H, W) into a column: cols (N, C*kh*kw, ho*wo).

        cols[n, c*kh*kw + i*kw + j, a*wo + b] = xp[n, c, a*stride + i, b*stride + j]

    where xp is x zero-padded by ``padding`` on each side of H and W, and (ho, wo) come
    from ``out_size``. Row order (c, i, j) is the order of ``w.reshape(O, C*kh*kw)``.
    """
    ### HINT: xp = np.pad(x, ...) -> (N, C, H+2p, W+2p). For each kernel offset (i, j) the pixels
    ### HINT: that meet w[:, :, i, j] are one strided slice xp[:, :, i : i + stride*ho : stride,
    ### HINT: j : j + stride*wo : stride] of shape (N, C, ho, wo): store it in a (N, C, kh, kw, ho, wo)
    ### HINT: array and reshape that to (N, C*kh*kw, ho*wo).
    ### BEGIN SOLUTION
    n, c, h, w = x.shape
    ho, wo = out_size(h, kh, stride, padding), out_size(w, kw, stride, padding)
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    cols = np.empty((n, c, kh, kw, ho, wo), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, i, j] = xp[:, :, i : i + stride * ho : stride, j : j + stride * wo : stride]
    return cols.reshape(n, c * kh * kw, ho * wo)
    ### END SOLUTION


def col2im(cols, x_shape, kh, kw, stride=1, padding=0):
    """The adjoint of im2col: fold cols (N, C*kh*kw, ho*wo) back to dx of ``x_shape``
    (N, C, H, W). Every entry of cols goes back to the pixel it was read from; a pixel
    read by several windows receives the sum of their entries; entries that came from
    the zero padding are dropped."""
    ### HINT: reshape cols to (N, C, kh, kw, ho, wo); start from zeros of the padded shape
    ### HINT: (N, C, H+2p, W+2p); for each (i, j) ADD cols[:, :, i, j] (N, C, ho, wo) into the same
    ### HINT: strided slice im2col read from (windows overlap when stride < k); then crop the padding.
    ### BEGIN SOLUTION
    n, c, h, w = x_shape
    ho, wo = out_size(h, kh, stride, padding), out_size(w, kw, stride, padding)
    cols6 = cols.reshape(n, c, kh, kw, ho, wo)
    dxp = np.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i : i + stride * ho : stride, j : j + stride * wo : stride] += cols6[
                :, :, i, j
            ]
    return dxp[:, :, padding : padding + h, padding : padding + w].copy()
    ### END SOLUTION


def conv2d_forward(x, w, b=None, stride=1, padding=0):
    """Convolve x (N, C, H, W) with w (O, C, kh, kw), plus b (O,) if given.

    Returns (y, cache): y (N, O, ho, wo) and whatever conv2d_backward needs.
    """
    ### HINT: cols = im2col(x, ...) is (N, K, L) with K = C*kh*kw and L = ho*wo; the weight as a
    ### HINT: matrix is w.reshape(O, K); (O, K) @ (N, K, L) -> (N, O, L), reshaped to (N, O, ho, wo);
    ### HINT: add b.reshape(1, O, 1, 1). Keep cols, w, x.shape, stride and padding in the cache.
    ### BEGIN SOLUTION
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    ho, wo = out_size(h, kh, stride, padding), out_size(wd, kw, stride, padding)
    cols = im2col(x, kh, kw, stride, padding)  # (N, K, L)
    y = (w.reshape(o, -1) @ cols).reshape(n, o, ho, wo)
    if b is not None:
        y = y + b.reshape(1, o, 1, 1)
    cache = (cols, w, x.shape, b is not None, stride, padding)
    return y, cache
    ### END SOLUTION


def conv2d_backward(dy, cache):
    """Gradients of conv2d_forward for the upstream gradient dy (N, O, ho, wo).

    Returns (dx, dw, db): dx (N, C, H, W), dw (O, C, kh, kw), db (O,) or None when the
    forward pass had no bias.
    """
    ### HINT: with dy as (N, O, L): dw = sum over n of dy[n] @ cols[n].T -> (O, K), reshaped like w;
    ### HINT: dcols = w.reshape(O, K).T @ dy -> (N, K, L), and dx = col2im(dcols, ...);
    ### HINT: db = dy summed over n, h and w -> (O,).
    ### BEGIN SOLUTION
    cols, w, x_shape, has_bias, stride, padding = cache
    n, o = dy.shape[:2]
    _, _, kh, kw = w.shape
    dy3 = dy.reshape(n, o, -1)  # (N, O, L)
    dw = np.einsum("nol,nkl->ok", dy3, cols).reshape(w.shape)
    dcols = w.reshape(o, -1).T @ dy3  # (N, K, L)
    dx = col2im(dcols, x_shape, kh, kw, stride, padding)
    db = dy.sum(axis=(0, 2, 3)) if has_bias else None
    return dx, dw, db
    ### END SOLUTION
