"""The kernels: NumPy reference and Numba agree, with each other and with plain loops."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys

import numba
import numpy as np
import pytest
from helpers import assert_adjoint, inner, out_size
from hypothesis import given, settings
from hypothesis import strategies as st

from ghostnp.functional import (
    conv2d_backward,
    conv2d_forward,
    depthwise_conv2d_backward,
    depthwise_conv2d_forward,
)
from ghostnp.gradcheck import rel_error
from ghostnp.kernels import ConvGeometry, dispatch, get_backend, reference, set_backend, use_backend
from ghostnp.kernels import numba as nbk
from ghostnp.kernels.numba import threads

# (N, C, M, kh, kw, sh, sw, dil_h, dil_w, ho, wo), no padding: the input fits ho x wo
# windows plus one more row and column, which a stride above 1 never reaches
GEOMETRIES = {
    "3x3": (2, 3, 1, 3, 3, 1, 1, 1, 1, 4, 5),
    "stride2": (1, 2, 2, 3, 3, 2, 2, 1, 1, 3, 3),
    "nonsquare_dilated": (2, 2, 3, 2, 3, 1, 2, 2, 1, 3, 2),
    "1x1": (1, 4, 1, 1, 1, 2, 3, 1, 1, 2, 2),
    "5x5_stride3": (1, 3, 2, 5, 5, 3, 3, 1, 1, 2, 2),
    "one_output_pixel": (3, 2, 2, 3, 3, 2, 2, 1, 1, 1, 1),
}


def input_size(k, s, d, out, remainder=1):
    return d * (k - 1) + s * (out - 1) + 1 + remainder


def arrays(geom, dtype, seed=0):
    """The arguments of every kernel on one geometry (no padding), in one dtype."""
    n, c, m, kh, kw, sh, sw, dil_h, dil_w, ho, wo = geom
    h, wd = input_size(kh, sh, dil_h, ho), input_size(kw, sw, dil_w, wo)
    window = ConvGeometry.of((h, wd), (kh, kw), (sh, sw), (0, 0), (dil_h, dil_w))
    ho, wo = window.ho, window.wo  # at stride 1 the extra row and column are reached
    r = np.random.default_rng(seed)

    def draw(*shape, offset=0.0):
        return (offset + r.standard_normal(shape)).astype(dtype)

    x = draw(n, c, h, wd, offset=2.0)  # the offset tests batch norm's centring
    o, col_len, length = c * m, c * kh * kw, ho * wo
    mean, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
    inv_std = (1.0 / np.sqrt(var + 1e-5)).astype(dtype)
    gamma = draw(c)
    return dict(
        geom=window,
        x=x,
        w=draw(o, kh, kw),
        cols=draw(n, c, kh, kw, ho, wo),
        dy=draw(n, o, ho, wo),
        # a dense convolution's products, one group: W (1, O, K), cols (N, 1, K, L), dy (N, 1, O, L)
        wg=draw(1, o, col_len),
        cols_g=draw(n, 1, col_len, length),
        dy_g=draw(n, 1, o, length),
        # batch norm on x
        mean=mean.astype(dtype),
        inv_std=inv_std,
        gamma=gamma,
        beta=draw(c),
        xhat=((x - mean.reshape(1, -1, 1, 1)) * inv_std.reshape(1, -1, 1, 1)).astype(dtype),
        scale=(gamma * inv_std).astype(dtype),
        dy_x=draw(n, c, h, wd),
    )


def kernel_args(a):
    """The arguments of each kernel in ``dispatch.KERNELS``."""
    geom, c = a["geom"], a["x"].shape[1]
    return {
        "unfold": (a["x"], geom),
        "fold": (a["cols"], geom),
        "conv_matmul": (a["wg"], a["cols_g"]),
        "conv_backward_weight": (a["dy_g"], a["cols_g"]),
        "depthwise_forward": (a["x"], a["w"], geom),
        "depthwise_backward_input": (a["dy"], a["w"], c, geom),
        "depthwise_backward_weight": (a["dy"], a["x"], geom),
        "depthwise_backward": (a["dy"], a["x"], a["w"], geom),
        "batch_norm_stats": (a["x"],),
        "batch_norm_normalize": (a["x"], a["mean"], a["inv_std"], a["gamma"], a["beta"], True),
        "batch_norm_backward": (a["dy_x"], a["xhat"], a["scale"], True),
    }


def run_kernels(mod, a):
    """Every kernel of one implementation (a module, or ``dispatch``) on the arrays ``a``;
    a kernel returning a tuple gives one entry per element, ``name[i]``."""
    args = kernel_args(a)
    assert set(args) == set(dispatch.KERNELS)  # every kernel, and nothing else
    out = {}
    for name in dispatch.KERNELS:
        result = getattr(mod, name)(*args[name])
        if isinstance(result, tuple):
            out.update({f"{name}[{i}]": r for i, r in enumerate(result)})
        else:
            out[name] = result
    return out


def run_loops(a):
    """Every kernel written as plain loops straight from its definition, in float64."""
    geom, x, w, cols, dy = a["geom"], a["x"], a["w"], a["cols"], a["dy"]
    n, c, h, wd = x.shape
    o, kh, kw = w.shape
    m = o // c
    ho, wo = geom.ho, geom.wo
    unfold = np.zeros(cols.shape)
    fold = np.zeros(x.shape)
    y = np.zeros(dy.shape)
    dx = np.zeros(x.shape)
    dw = np.zeros(w.shape)
    for ni in range(n):
        for ci in range(c):
            for i in range(kh):
                for j in range(kw):
                    for p in range(ho):
                        for q in range(wo):
                            r, s = p * geom.sh + i * geom.dil_h, q * geom.sw + j * geom.dil_w
                            unfold[ni, ci, i, j, p, q] = x[ni, ci, r, s]
                            fold[ni, ci, r, s] += cols[ni, ci, i, j, p, q]
                            for mi in range(m):
                                oi = ci * m + mi
                                y[ni, oi, p, q] += w[oi, i, j] * x[ni, ci, r, s]
                                dx[ni, ci, r, s] += w[oi, i, j] * dy[ni, oi, p, q]
                                dw[oi, i, j] += dy[ni, oi, p, q] * x[ni, ci, r, s]
    wg, cols_g, dy_g = a["wg"], a["cols_g"], a["dy_g"]
    _, groups, col_len, length = cols_g.shape
    prod = np.zeros((n, groups, wg.shape[1], length))
    dwg = np.zeros(wg.shape)
    for ni in range(n):
        for g in range(groups):
            for oi in range(wg.shape[1]):
                for k in range(col_len):
                    for t in range(length):
                        prod[ni, g, oi, t] += wg[g, oi, k] * cols_g[ni, g, k, t]
                        dwg[g, oi, k] += dy_g[ni, g, oi, t] * cols_g[ni, g, k, t]
    count = n * h * wd
    mean, var = np.zeros(c), np.zeros(c)
    xhat_bn, y_bn, dx_bn = np.zeros(x.shape), np.zeros(x.shape), np.zeros(x.shape)
    dgamma, dbeta = np.zeros(c), np.zeros(c)
    for ci in range(c):
        v = x[:, ci].astype(np.float64)
        mean[ci] = v.sum() / count
        var[ci] = ((v - mean[ci]) ** 2).sum() / count
        xh = (v - a["mean"][ci]) * a["inv_std"][ci]
        xhat_bn[:, ci] = xh
        y_bn[:, ci] = a["gamma"][ci] * xh + a["beta"][ci]
        g, xhat_given = a["dy_x"][:, ci], a["xhat"][:, ci]
        dbeta[ci], dgamma[ci] = g.sum(), (g * xhat_given).sum()
        dx_bn[:, ci] = a["scale"][ci] * (g - dbeta[ci] / count - xhat_given * dgamma[ci] / count)
    return {
        "unfold": unfold,
        "fold": fold,
        "conv_matmul": prod,
        "conv_backward_weight": dwg,
        "depthwise_forward": y,
        "depthwise_backward_input": dx,
        "depthwise_backward_weight": dw,
        "depthwise_backward[0]": dx,
        "depthwise_backward[1]": dw,
        "batch_norm_stats[0]": mean,
        "batch_norm_stats[1]": var,
        "batch_norm_normalize[0]": xhat_bn,
        "batch_norm_normalize[1]": y_bn,
        "batch_norm_backward[0]": dx_bn,
        "batch_norm_backward[1]": dgamma,
        "batch_norm_backward[2]": dbeta,
    }


def test_every_kernel_has_one_signature():
    # the table lists every kernel the interface forwards; both backends implement each
    # one with the reference's signature, and so does dispatch
    public = {
        name
        for name, f in inspect.getmembers(dispatch, inspect.isfunction)
        if f.__module__ == dispatch.__name__ and not name.startswith("_")
    }
    assert public == set(dispatch.KERNELS) | {"get_backend", "set_backend"}
    assert set(nbk.__all__) == set(dispatch.KERNELS)
    for name in dispatch.KERNELS:
        spec = inspect.signature(getattr(reference, name))
        assert inspect.signature(getattr(nbk, name)) == spec, name
        assert inspect.signature(getattr(dispatch, name)) == spec, name


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_reference_equals_plain_loops(name):
    a = arrays(GEOMETRIES[name], np.float64)
    loops = run_loops(a)
    ref = run_kernels(reference, a)
    assert set(ref) == set(loops)
    for kname, out in ref.items():
        assert out.shape == loops[kname].shape, kname
        assert rel_error(out, loops[kname]) < 1e-13, kname


def batch_norm_backward_sizes(a):
    """The size of the terms each result of ``batch_norm_backward`` (training) is summed from.

    dbeta = sum(dy) and dgamma = sum(dy * xhat) over a channel, and dx = scale * (dy -
    dbeta/count - xhat * dgamma/count), can cancel to far below their terms; two correct
    summation orders then differ by rounding relative to the terms, not to the result.
    """
    dy = np.abs(a["dy_x"].astype(np.float64))
    xhat = np.abs(a["xhat"].astype(np.float64))
    scale = np.abs(a["scale"].astype(np.float64)).reshape(1, -1, 1, 1)
    count = dy.size // dy.shape[1]
    dbeta = dy.sum(axis=(0, 2, 3), keepdims=True)
    dgamma = (dy * xhat).sum(axis=(0, 2, 3), keepdims=True)
    dx = scale * (dy + dbeta / count + xhat * dgamma / count)
    return {
        "batch_norm_backward[0]": dx.max(),
        "batch_norm_backward[1]": dgamma.max(),
        "batch_norm_backward[2]": dbeta.max(),
    }


def assert_backends_equal(a, tol):
    ref = run_kernels(reference, a)
    fast = run_kernels(nbk, a)
    assert set(fast) == set(ref)
    sizes = batch_norm_backward_sizes(a)
    for kname, r in ref.items():
        assert fast[kname].dtype == r.dtype == a["x"].dtype, kname
        assert fast[kname].shape == r.shape, kname
        if kname in sizes:  # a sum that may cancel: the error relative to its terms
            diff = np.abs(fast[kname].astype(np.float64) - r).max(initial=0.0)
            assert diff <= tol * sizes[kname], (kname, diff, sizes[kname])
        else:
            assert rel_error(fast[kname], r) < tol, kname


@pytest.mark.parametrize("name", list(GEOMETRIES))
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_numba_equals_reference(name, dtype, tol):
    assert_backends_equal(arrays(GEOMETRIES[name], dtype), tol)


@settings(max_examples=30, deadline=None)
@given(
    dims=st.tuples(st.integers(1, 2), st.integers(1, 4), st.integers(1, 3)),
    kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    dilation=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    out=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_numba_equals_reference(dims, kernel, stride, dilation, out, seed):
    geom = (*dims, *kernel, *stride, *dilation, *out)
    assert_backends_equal(arrays(geom, np.float64, seed), 1e-12)


# (N, G, P, Q, L): a (G, P, Q) @ b (N, G, Q, L), and the weight gradient's routes
PRODUCTS = {
    "1x1 maps (one group, one pixel)": (3, 1, 5, 7, 1),
    "one group, N products summed": (2, 1, 4, 6, 9),
    "one group, one transposed product": (2, 1, 8, 9, 2),
    "three groups": (2, 3, 2, 4, 5),
}


@pytest.mark.parametrize("name", list(PRODUCTS))
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_conv_products_numba_equals_reference(name, dtype, tol):
    n, groups, p, q, length = PRODUCTS[name]
    r = np.random.default_rng(8)
    a = r.standard_normal((groups, p, q)).astype(dtype)
    b = r.standard_normal((n, groups, q, length)).astype(dtype)
    dy = r.standard_normal((n, groups, p, length)).astype(dtype)
    want_y = np.einsum("gpq,ngql->ngpl", a.astype(np.float64), b)
    want_dw = np.einsum("ngpl,ngql->gpq", dy.astype(np.float64), b)
    for mod in (reference, nbk):
        y, dw = mod.conv_matmul(a, b), mod.conv_backward_weight(dy, b)
        assert y.dtype == dw.dtype == dtype
        assert rel_error(y, want_y) < tol and rel_error(dw, want_dw) < tol, mod.__name__


# ----------------------------------------------------------------------------------
# adjoints: <unfold x, c> = <x, fold c>, and the depthwise and product kernels
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_unfold_fold_adjoint(backend, name):
    a = arrays(GEOMETRIES[name], np.float64, seed=1)
    x, cols, geom = a["x"], a["cols"], a["geom"]
    lhs = np.vdot(dispatch.unfold(x, geom), cols)
    rhs = np.vdot(x, dispatch.fold(cols, geom))
    assert abs(lhs - rhs) <= 1e-12 * np.sum(np.abs(cols)) * np.abs(x).max()


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_depthwise_kernels_adjoint(backend, name):
    # y = D(x; w) is linear in x and in w: <D x, g> = <x, D_x^T g> = <w, D_w^T g>
    a = arrays(GEOMETRIES[name], np.float64, seed=2)
    x, w, dy, geom = a["x"], a["w"], a["dy"], a["geom"]
    y = dispatch.depthwise_forward(x, w, geom)
    dx = dispatch.depthwise_backward_input(dy, w, x.shape[1], geom)
    dw = dispatch.depthwise_backward_weight(dy, x, geom)
    lhs = np.vdot(y, dy)
    scale = np.sum(np.abs(y * dy))
    assert abs(lhs - np.vdot(x, dx)) <= 1e-12 * scale
    assert abs(lhs - np.vdot(w, dw)) <= 1e-12 * scale


@pytest.mark.parametrize("name", list(PRODUCTS))
def test_conv_products_adjoint(backend, name):
    # Y = A @ B: <Y, G> = <B, A^T @ G> = <A, conv_backward_weight(G, B)>
    n, groups, p, q, length = PRODUCTS[name]
    r = np.random.default_rng(9)
    a, b = r.standard_normal((groups, p, q)), r.standard_normal((n, groups, q, length))
    g = r.standard_normal((n, groups, p, length))
    y = dispatch.conv_matmul(a, b)
    scale = float(np.sum(np.abs(y * g)))
    assert_adjoint(inner(y, g), inner(b, dispatch.conv_matmul(a.transpose(0, 2, 1), g)), scale)
    assert_adjoint(inner(y, g), inner(a, dispatch.conv_backward_weight(g, b)), scale)


def test_kernels_do_not_modify_inputs(backend):
    a = arrays(GEOMETRIES["stride2"], np.float64)
    before = {k: v.copy() for k, v in a.items() if isinstance(v, np.ndarray)}
    run_kernels(dispatch, a)
    for k, v in before.items():
        assert np.array_equal(a[k], v), k


def test_kernels_take_non_contiguous_arrays(backend):
    a = arrays(GEOMETRIES["3x3"], np.float64)
    strided = {k: np.asfortranarray(v) if isinstance(v, np.ndarray) else v for k, v in a.items()}
    assert not strided["x"].flags.c_contiguous
    plain, other = run_kernels(dispatch, a), run_kernels(dispatch, strided)
    for k, v in plain.items():
        if backend == "numba":  # the same contiguous copy goes into the compiled loops
            assert np.array_equal(other[k], v), k
        else:  # NumPy may sum a strided array in another order
            assert rel_error(other[k], v) < 1e-13, k


def test_pointwise_unfold_and_fold_copy_nothing():
    # a 1x1 window without padding at stride 1: the columns are x itself, and fold gives
    # the column gradient back as it is (the route the Numba backend takes for 1x1 convs)
    x = np.random.default_rng(3).standard_normal((2, 4, 5, 6))
    geom = ConvGeometry.of((5, 6), (1, 1))
    cols = nbk.unfold(x, geom)
    assert cols.shape == (2, 4, 1, 1, 5, 6) and np.shares_memory(cols, x)
    assert np.shares_memory(nbk.fold(cols, geom), cols)
    assert np.array_equal(cols, reference.unfold(x, geom))


# ----------------------------------------------------------------------------------
# the functional ops give the same numbers on both backends
# ----------------------------------------------------------------------------------

OPS = [
    ("conv", (2, 4, 7, 6), (6, 2, 3, 3), dict(stride=2, padding=1, groups=2)),
    ("conv", (1, 3, 6, 6), (4, 3, 2, 3), dict(dilation=(2, 1), padding=(1, 2))),
    ("conv", (3, 8, 1, 1), (5, 8, 1, 1), {}),  # squeeze-excite: 1x1 maps
    ("conv", (2, 4, 5, 6), (6, 4, 1, 1), dict(stride=2)),  # pointwise, strided
    ("depthwise", (2, 3, 7, 6), (6, 1, 3, 3), dict(stride=2, padding=1)),
    ("depthwise", (1, 4, 6, 9), (12, 1, 5, 3), dict(padding=(2, 1), dilation=(1, 2))),
]


def run_op(kind, x, w, b, dy_seed, geom):
    fwd, bwd = (
        (conv2d_forward, conv2d_backward)
        if kind == "conv"
        else (depthwise_conv2d_forward, depthwise_conv2d_backward)
    )
    y, cache = fwd(x, w, b, **geom)
    dy = np.random.default_rng(dy_seed).standard_normal(y.shape).astype(x.dtype)
    return (y, *bwd(dy, cache))


@pytest.mark.parametrize("kind, xs, ws, geom", OPS)
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_ops_equal_across_backends(kind, xs, ws, geom, dtype, tol):
    r = np.random.default_rng(3)
    x = r.standard_normal(xs).astype(dtype)
    w = r.standard_normal(ws).astype(dtype)
    b = r.standard_normal(ws[0]).astype(dtype)
    outs = {}
    for name in ("numpy", "numba"):
        with use_backend(name):
            outs[name] = run_op(kind, x, w, b, 4, geom)
    for i, (a, c) in enumerate(zip(outs["numpy"], outs["numba"], strict=True)):
        assert a.dtype == c.dtype == dtype, i
        assert rel_error(a, c) < tol, i


def test_backend_selection():
    before = get_backend()
    with use_backend("numpy"):
        assert get_backend() == "numpy"
        with use_backend("numba"):
            assert get_backend() == "numba"
        assert get_backend() == "numpy"
    assert get_backend() == before
    with pytest.raises(ValueError, match="expected one of"):
        set_backend("cuda")
    assert get_backend() == before


# ----------------------------------------------------------------------------------
# padding: the kernels take the unpadded x and the padding in the geometry, and the
# Numba kernels pad virtually. Every GhostNet layer takes the "phase" kernels this way
# (the input is no larger than the output times the stride); other geometries fall back
# to the plain loops on a padded copy.
# ----------------------------------------------------------------------------------


def unpadded_case(n, c, m, k, s, d, p, size, dtype=np.float64, seed=0):
    """(x, w, dy, cols, geometry) for a depthwise / dense problem on an unpadded input."""
    (kh, kw), (sh, sw), (dil_h, dil_w), (ph, pw), (h, wd) = k, s, d, p, size
    ho, wo = out_size(h, kh, sh, ph, dil_h), out_size(wd, kw, sw, pw, dil_w)
    r = np.random.default_rng(seed)
    x = r.standard_normal((n, c, h, wd)).astype(dtype)
    w = r.standard_normal((c * m, kh, kw)).astype(dtype)
    dy = r.standard_normal((n, c * m, ho, wo)).astype(dtype)
    cols = r.standard_normal((n, c, kh, kw, ho, wo)).astype(dtype)
    return x, w, dy, cols, ConvGeometry(kh, kw, sh, sw, ph, pw, dil_h, dil_w, h, wd, ho, wo)


def run_unpadded(mod, x, w, dy, cols, geom):
    """Every convolution kernel of one implementation on an unpadded input."""
    dx2, dw2 = mod.depthwise_backward(dy, x, w, geom)
    return {
        "unfold": mod.unfold(x, geom),
        "fold": mod.fold(cols, geom),
        "depthwise_forward": mod.depthwise_forward(x, w, geom),
        "depthwise_backward_input": mod.depthwise_backward_input(dy, w, x.shape[1], geom),
        "depthwise_backward_weight": mod.depthwise_backward_weight(dy, x, geom),
        "depthwise_backward.dx": dx2,
        "depthwise_backward.dw": dw2,
    }


def assert_unpadded_equal(case, tol=1e-12):
    x, w, dy, cols, geom = case
    ref = run_unpadded(reference, *case)
    fast = run_unpadded(nbk, *case)
    for name, r in ref.items():
        assert fast[name].shape == r.shape, name
        assert fast[name].dtype == r.dtype == x.dtype, name
        assert rel_error(fast[name], r) < tol, (name, geom)
    # gradients come back cropped to the unpadded input
    assert ref["fold"].shape == ref["depthwise_backward_input"].shape == x.shape


# (N, C, M, k, s, d, p, size): GhostNet's own geometries, small, plus the corner cases of
# the phase kernels (odd sizes at stride 2, a multiplier, one image, an odd batch)
PHASE_CASES = {
    "3x3 s1 same": (2, 5, 1, (3, 3), (1, 1), (1, 1), (1, 1), (7, 7)),
    "3x3 s1 same, 3 images": (3, 4, 1, (3, 3), (1, 1), (1, 1), (1, 1), (6, 5)),
    "3x3 s2 even": (2, 3, 1, (3, 3), (2, 2), (1, 1), (1, 1), (8, 8)),
    "3x3 s2 odd": (1, 3, 1, (3, 3), (2, 2), (1, 1), (1, 1), (7, 9)),
    "5x5 s2 even": (2, 4, 1, (5, 5), (2, 2), (1, 1), (2, 2), (8, 6)),
    "5x5 s2 odd": (3, 2, 1, (5, 5), (2, 2), (1, 1), (2, 2), (9, 7)),
    "5x5 s1 same": (2, 3, 1, (5, 5), (1, 1), (1, 1), (2, 2), (6, 6)),
    "multiplier 2": (2, 3, 2, (3, 3), (1, 1), (1, 1), (1, 1), (5, 6)),
    "multiplier 3, s2": (2, 2, 3, (3, 3), (2, 2), (1, 1), (1, 1), (6, 6)),
    "1x1 s2": (2, 3, 1, (1, 1), (2, 2), (1, 1), (0, 0), (6, 5)),
    "7x7 s1 (DFC-like)": (2, 2, 1, (1, 5), (1, 1), (1, 1), (0, 2), (4, 9)),
    "dilated": (2, 3, 1, (3, 3), (1, 1), (2, 2), (2, 2), (7, 6)),
    "no padding (falls back)": (2, 3, 1, (3, 3), (1, 1), (1, 1), (0, 0), (6, 6)),
    "1 pixel": (2, 3, 1, (3, 3), (1, 1), (1, 1), (1, 1), (1, 1)),
}


@pytest.mark.parametrize("name", list(PHASE_CASES))
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_unpadded_interface_numba_equals_reference(name, dtype, tol):
    assert_unpadded_equal(unpadded_case(*PHASE_CASES[name], dtype=dtype), tol)


@pytest.mark.parametrize("stack", [1, 30, 2048])
@pytest.mark.parametrize("name", ["3x3 s1 same, 3 images", "5x5 s2 odd", "multiplier 3, s2"])
def test_phase_kernels_any_blocking_and_threading(monkeypatch, name, stack):
    # channels per work item (STACK) and the parallel split must not change a single bit
    case = unpadded_case(*PHASE_CASES[name])
    monkeypatch.setattr(nbk, "STACK", stack)
    one = run_unpadded(nbk, *case)
    monkeypatch.setattr(threads, "PARALLEL_MIN_WORK", 0)
    monkeypatch.setattr(threads, "WORKQUEUE_MIN_WORK", 0)
    monkeypatch.setattr(threads, "POOL_MIN_WORK", 0)
    par = run_unpadded(nbk, *case)
    ref = run_unpadded(reference, *case)
    for k in ref:
        assert np.array_equal(one[k], par[k]), k
        assert rel_error(one[k], ref[k]) < 1e-12, k


@settings(max_examples=40, deadline=None)
@given(
    dims=st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 2)),
    kernel=st.tuples(st.integers(1, 5), st.integers(1, 5)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    pad=st.tuples(st.integers(0, 3), st.integers(0, 3)),
    size=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_unpadded_numba_equals_reference(dims, kernel, stride, dilation, pad, size, seed):
    k, s, d, p = kernel, stride, dilation, pad
    for i in range(2):  # only geometries with at least one output pixel
        if out_size(size[i], k[i], s[i], p[i], d[i]) < 1:
            return
    assert_unpadded_equal(unpadded_case(*dims, k, s, d, p, size, seed=seed))


def test_unpadded_adjoints():
    # <D x, g> = <x, D_x^T g> = <w, D_w^T g> and <unfold x, c> = <x, fold c>, padding
    # included, on a stride-2 odd-sized problem
    x, w, dy, cols, geom = unpadded_case(*PHASE_CASES["5x5 s2 odd"])
    y = nbk.depthwise_forward(x, w, geom)
    dx, dw = nbk.depthwise_backward(dy, x, w, geom)
    lhs = np.vdot(y, dy)
    scale = np.sum(np.abs(y * dy))
    assert abs(lhs - np.vdot(x, dx)) <= 1e-12 * scale
    assert abs(lhs - np.vdot(w, dw)) <= 1e-12 * scale
    c6 = nbk.unfold(x, geom)
    back = nbk.fold(cols, geom)
    assert abs(np.vdot(c6, cols) - np.vdot(x, back)) <= 1e-12 * np.sum(np.abs(c6 * cols))


# ----------------------------------------------------------------------------------
# batch norm kernels
# ----------------------------------------------------------------------------------


def bn_kernels(mod, x, dy, affine, training, seed=5):
    r = np.random.default_rng(seed)
    c = x.shape[1]
    gamma = r.standard_normal(c).astype(x.dtype)
    beta = r.standard_normal(c).astype(x.dtype)
    mean, var = mod.batch_norm_stats(x)
    inv_std = (1.0 / np.sqrt(var + 1e-5)).astype(x.dtype)
    xhat, y = mod.batch_norm_normalize(x, mean, inv_std, gamma, beta, affine)
    scale = gamma * inv_std
    dx, dgamma, dbeta = mod.batch_norm_backward(dy, xhat, scale, training)
    out = {"mean": mean, "var": var, "xhat": xhat, "y": y, "dx": dx}
    return out | {"dgamma": dgamma, "dbeta": dbeta, "scale": scale}


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 1, 1, 2), (3, 7, 1, 1), (4, 16, 9, 9)])
@pytest.mark.parametrize("affine, training", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 2e-6)])
def test_batch_norm_kernels_numba_equal_reference(shape, affine, training, dtype, tol):
    r = np.random.default_rng(6)
    x = (3 + 2 * r.standard_normal(shape)).astype(dtype)  # offset: tests the centring
    dy = r.standard_normal(shape).astype(dtype)
    ref = bn_kernels(reference, x, dy, affine, training)
    fast = bn_kernels(nbk, x, dy, affine, training)
    for k, a in ref.items():
        assert fast[k].dtype == a.dtype == dtype, k
        assert fast[k].shape == a.shape, k
        if k == "dx":
            # dx = scale * (dy - dbeta/M - xhat * dgamma/M): the terms can cancel almost
            # exactly (with 2 values per channel dx is ~0), so the bar is the terms' size
            m = x.size // x.shape[1]
            c4 = (1, -1, 1, 1)
            terms = np.abs(dy) + np.abs(ref["dbeta"] / m).reshape(c4)
            terms = terms + np.abs(ref["xhat"] * (ref["dgamma"] / m).reshape(c4))
            terms = terms * np.abs(ref["scale"]).reshape(c4)
            assert np.abs(fast[k] - a).max() <= tol * terms.max(), k
        else:
            assert rel_error(fast[k], a) < tol, k
    if not affine:
        assert ref["y"] is ref["xhat"] and fast["y"] is fast["xhat"]
    # the statistics themselves, against float64 NumPy
    x64 = x.astype(np.float64)
    assert rel_error(ref["mean"], x64.mean(axis=(0, 2, 3))) < tol
    assert rel_error(fast["var"], x64.var(axis=(0, 2, 3))) < tol


def test_batch_norm_kernels_independent_of_threads(monkeypatch):
    r = np.random.default_rng(7)
    x = r.standard_normal((3, 5, 6, 7)).astype(np.float32)
    dy = r.standard_normal(x.shape).astype(np.float32)
    one = bn_kernels(nbk, x, dy, True, True)
    monkeypatch.setattr(threads, "PARALLEL_MIN_WORK", 0)
    monkeypatch.setattr(threads, "WORKQUEUE_MIN_WORK", 0)
    monkeypatch.setattr(threads, "POOL_MIN_WORK", 0)
    par = bn_kernels(nbk, x, dy, True, True)
    for k in one:
        assert np.array_equal(one[k], par[k]), k


# ----------------------------------------------------------------------------------
# the threading layer: chosen on the first kernel call, never at import, never over
# the user's own choice
# ----------------------------------------------------------------------------------


def test_threading_layer_chosen_on_first_call_not_at_import():
    script = (
        "import os, numba\n"
        "import ghostnp, ghostnp.kernels.numba\n"
        "from ghostnp.kernels.numba import threads\n"
        "print('NUMBA_THREADING_LAYER' in os.environ, numba.config.THREADING_LAYER)\n"
        "threads.set_threads(1)\n"
        "print(numba.config.THREADING_LAYER, numba.threading_layer())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    run = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert run.stdout.split() == ["False", "default", "workqueue", "workqueue"]


@pytest.mark.parametrize("how", ["environment", "config"])
def test_threading_layer_keeps_the_users_choice(monkeypatch, how):
    monkeypatch.setitem(threads._state, "configured", False)
    if how == "environment":
        monkeypatch.setenv("NUMBA_THREADING_LAYER", "tbb")
        before = numba.config.THREADING_LAYER
    else:
        monkeypatch.delenv("NUMBA_THREADING_LAYER", raising=False)
        monkeypatch.setattr(numba.config, "THREADING_LAYER", "tbb")
        before = "tbb"
    threads.choose_threading_layer()
    assert numba.config.THREADING_LAYER == before


def test_phase_and_batch_norm_kernels_take_the_pool_bar(monkeypatch):
    """run_items kernels get a second thread from POOL_MIN_WORK multiply-adds on, not
    from Numba's own bars (their Python pool wakes much faster than workqueue's)."""
    calls: list[int] = []

    def record(kernel, args, items, count):
        calls.append(count)

    monkeypatch.setattr(nbk, "run_items", record)
    monkeypatch.setattr(threads, "PARALLEL_MIN_WORK", 0)  # Numba's bars do not apply
    monkeypatch.setattr(threads, "WORKQUEUE_MIN_WORK", 0)
    x = np.zeros((2, 3, 8, 8), dtype=np.float32)
    geom = ConvGeometry.of((8, 8), (3, 3), (1, 1), (1, 1), (1, 1))
    assert nbk.phases_fit(geom)
    monkeypatch.setattr(threads, "POOL_MIN_WORK", 1 << 40)
    nbk.depthwise_forward(x, np.zeros((3, 3, 3), dtype=np.float32), geom)
    nbk.unfold(x, geom)
    nbk.batch_norm_stats(x)
    assert calls == [1, 1, 1]
    monkeypatch.setattr(threads, "POOL_MIN_WORK", 0)
    nbk.depthwise_forward(x, np.zeros((3, 3, 3), dtype=np.float32), geom)
    nbk.unfold(x, geom)
    nbk.batch_norm_stats(x)
    assert calls[3:] == [numba.config.NUMBA_NUM_THREADS] * 3
