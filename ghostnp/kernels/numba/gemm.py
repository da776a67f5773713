"""The matrix products of a dense or grouped convolution, by the fastest BLAS route.

Both products keep NumPy's (that is, BLAS's) own arithmetic; what changes between
routes is the shape of the calls and the memory they move:

* 1x1 maps (squeeze-excite, the classifier head: ho*wo = 1, one group): the batched
  product of N matrix-vector products is one matrix-matrix product instead;
* the weight gradient sum_n dy[n] @ cols[n]^T is either N products into an (N, O, K)
  stack summed over n (extra memory N*O*K), or one (O, N*L) @ (N*L, K) product after
  transposing copies of both operands (extra memory (O + K)*N*L): the smaller wins.
"""

from __future__ import annotations

import numpy as np

from ...typing import FloatArray


def conv_matmul(a: FloatArray, b: FloatArray) -> FloatArray:
    """``reference.conv_matmul``: a (G, P, Q) @ b (N, G, Q, L) -> (N, G, P, L)."""
    groups, p, q = a.shape
    n, length = b.shape[0], b.shape[3]
    if groups == 1 and length == 1:  # one (N, Q) @ (Q, P) product
        return (b.reshape(n, q) @ a[0].T).reshape(n, 1, p, 1)
    return np.matmul(a, b)


def conv_backward_weight(dy: FloatArray, cols: FloatArray) -> FloatArray:
    """``reference.conv_backward_weight``: dy (N, G, O/G, L), cols (N, G, K, L) -> (G, O/G, K)."""
    n, groups, o, length = dy.shape
    k = cols.shape[2]
    if groups == 1 and length == 1:  # one (O, N) @ (N, K) product
        return (dy.reshape(n, o).T @ cols.reshape(n, k)).reshape(1, o, k)
    dw = np.empty((groups, o, k), dtype=dy.dtype)
    for gi in range(groups):
        dw[gi] = _weight_grad(dy[:, gi], cols[:, gi])
    return dw


def _weight_grad(dy: FloatArray, cols: FloatArray) -> FloatArray:
    """sum_n dy[n] @ cols[n]^T for dy (N, O, L), cols (N, K, L) -> (O, K), by the route
    that moves less memory."""
    o, length = dy.shape[1], dy.shape[2]
    k = cols.shape[1]
    if o * k <= (o + k) * length:
        return np.matmul(dy, cols.transpose(0, 2, 1)).sum(axis=0)  # (N, O, K) -> (O, K)
    return np.tensordot(dy, cols, axes=([0, 2], [0, 2]))  # (O, K)
