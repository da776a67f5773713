"""The hot-loop kernels: NumPy reference and Numba agree, with each other and with plain loops."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ghostnp.functional import (
    conv2d_backward,
    conv2d_forward,
    depthwise_conv2d_backward,
    depthwise_conv2d_forward,
)
from ghostnp.gradcheck import rel_error
from ghostnp.kernels import dispatch, get_backend, reference, set_backend, use_backend
from ghostnp.kernels import numba as nbk

# (N, C, M, kh, kw, sh, sw, dh, dw, ho, wo): the padded input is sized to fit exactly
# ho x wo windows plus a remainder row/column that the stride never reaches
GEOMETRIES = {
    "3x3": (2, 3, 1, 3, 3, 1, 1, 1, 1, 4, 5),
    "stride2": (1, 2, 2, 3, 3, 2, 2, 1, 1, 3, 3),
    "nonsquare_dilated": (2, 2, 3, 2, 3, 1, 2, 2, 1, 3, 2),
    "1x1": (1, 4, 1, 1, 1, 2, 3, 1, 1, 2, 2),
    "5x5_stride3": (1, 3, 2, 5, 5, 3, 3, 1, 1, 2, 2),
}


def padded_size(k, s, d, out, remainder=1):
    return d * (k - 1) + s * (out - 1) + 1 + remainder


def arrays(geom, dtype, seed=0):
    """Padded input, depthwise weight, columns and dy for one geometry."""
    n, c, m, kh, kw, sh, sw, dh, dw, ho, wo = geom
    hp, wp = padded_size(kh, sh, dh, ho), padded_size(kw, sw, dw, wo)
    r = np.random.default_rng(seed)
    return dict(
        xp=r.standard_normal((n, c, hp, wp)).astype(dtype),
        w=r.standard_normal((c * m, kh, kw)).astype(dtype),
        cols=r.standard_normal((n, c, kh, kw, ho, wo)).astype(dtype),
        dy=r.standard_normal((n, c * m, ho, wo)).astype(dtype),
        hp=hp,
        wp=wp,
    )


def run_kernels(mod, geom, a):
    """All five kernels of one implementation on one geometry."""
    n, c, m, kh, kw, sh, sw, dh, dw, ho, wo = geom
    return {
        "im2col": mod.im2col(a["xp"], kh, kw, sh, sw, dh, dw, ho, wo),
        "col2im": mod.col2im(a["cols"], a["hp"], a["wp"], sh, sw, dh, dw),
        "depthwise_forward": mod.depthwise_forward(a["xp"], a["w"], sh, sw, dh, dw, ho, wo),
        "depthwise_backward_input": mod.depthwise_backward_input(
            a["dy"], a["w"], c, a["hp"], a["wp"], sh, sw, dh, dw
        ),
        "depthwise_backward_weight": mod.depthwise_backward_weight(
            a["dy"], a["xp"], kh, kw, sh, sw, dh, dw
        ),
    }


def run_loops(geom, a):
    """The five kernels written as plain loops straight from their definitions."""
    n, c, m, kh, kw, sh, sw, dh, dw, ho, wo = geom
    xp, w, cols, dy = a["xp"], a["w"], a["cols"], a["dy"]
    im = np.zeros(cols.shape)
    ci = np.zeros(xp.shape)
    y = np.zeros(dy.shape)
    dxp = np.zeros(xp.shape)
    dwt = np.zeros(w.shape)
    for b in range(n):
        for ch in range(c):
            for i in range(kh):
                for j in range(kw):
                    for p in range(ho):
                        for q in range(wo):
                            r, s = p * sh + i * dh, q * sw + j * dw
                            im[b, ch, i, j, p, q] = xp[b, ch, r, s]
                            ci[b, ch, r, s] += cols[b, ch, i, j, p, q]
                            for mm in range(m):
                                o = ch * m + mm
                                y[b, o, p, q] += w[o, i, j] * xp[b, ch, r, s]
                                dxp[b, ch, r, s] += w[o, i, j] * dy[b, o, p, q]
                                dwt[o, i, j] += dy[b, o, p, q] * xp[b, ch, r, s]
    return {
        "im2col": im,
        "col2im": ci,
        "depthwise_forward": y,
        "depthwise_backward_input": dxp,
        "depthwise_backward_weight": dwt,
    }


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_reference_equals_plain_loops(name):
    geom = GEOMETRIES[name]
    a = arrays(geom, np.float64)
    loops = run_loops(geom, a)
    for kname, out in run_kernels(reference, geom, a).items():
        assert out.shape == loops[kname].shape, kname
        assert rel_error(out, loops[kname]) < 1e-13, kname


@pytest.mark.parametrize("name", list(GEOMETRIES))
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_numba_equals_reference(name, dtype, tol):
    geom = GEOMETRIES[name]
    a = arrays(geom, dtype)
    ref = run_kernels(reference, geom, a)
    fast = run_kernels(nbk, geom, a)
    for kname in dispatch.KERNELS:
        assert fast[kname].dtype == ref[kname].dtype == dtype, kname
        assert fast[kname].shape == ref[kname].shape, kname
        assert rel_error(fast[kname], ref[kname]) < tol, kname


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
    a = arrays(geom, np.float64, seed)
    ref = run_kernels(reference, geom, a)
    fast = run_kernels(nbk, geom, a)
    for kname in dispatch.KERNELS:
        assert rel_error(fast[kname], ref[kname]) < 1e-12, kname


# ----------------------------------------------------------------------------------
# im2col and col2im are adjoint: <im2col(x), c> = <x, col2im(c)>
# ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_im2col_col2im_adjoint(backend, name):
    geom = GEOMETRIES[name]
    n, c, m, kh, kw, sh, sw, dh, dw, ho, wo = geom
    a = arrays(geom, np.float64, seed=1)
    lhs = np.vdot(dispatch.im2col(a["xp"], kh, kw, sh, sw, dh, dw, ho, wo), a["cols"])
    rhs = np.vdot(a["xp"], dispatch.col2im(a["cols"], a["hp"], a["wp"], sh, sw, dh, dw))
    assert abs(lhs - rhs) <= 1e-12 * np.sum(np.abs(a["cols"])) * np.abs(a["xp"]).max()


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_depthwise_kernels_adjoint(backend, name):
    # y = D(x; w) is linear in x and in w: <D x, g> = <x, D_x^T g> = <w, D_w^T g>
    geom = GEOMETRIES[name]
    n, c, m, kh, kw, sh, sw, dh, dw, ho, wo = geom
    a = arrays(geom, np.float64, seed=2)
    y = dispatch.depthwise_forward(a["xp"], a["w"], sh, sw, dh, dw, ho, wo)
    dxp = dispatch.depthwise_backward_input(a["dy"], a["w"], c, a["hp"], a["wp"], sh, sw, dh, dw)
    dwt = dispatch.depthwise_backward_weight(a["dy"], a["xp"], kh, kw, sh, sw, dh, dw)
    lhs = np.vdot(y, a["dy"])
    scale = np.sum(np.abs(y * a["dy"]))
    assert abs(lhs - np.vdot(a["xp"], dxp)) <= 1e-12 * scale
    assert abs(lhs - np.vdot(a["w"], dwt)) <= 1e-12 * scale


def test_kernels_do_not_modify_inputs(backend):
    geom = GEOMETRIES["stride2"]
    a = arrays(geom, np.float64)
    before = {k: v.copy() for k, v in a.items() if isinstance(v, np.ndarray)}
    run_kernels(dispatch, geom, a)
    for k, v in before.items():
        assert np.array_equal(a[k], v), k


def test_dispatch_takes_non_contiguous_arrays():
    geom = GEOMETRIES["3x3"]
    n, c, m, kh, kw, sh, sw, dh, dw, ho, wo = geom
    a = arrays(geom, np.float64)
    xp_t = np.asfortranarray(a["xp"])
    with use_backend("numba"):
        fast = dispatch.im2col(xp_t, kh, kw, sh, sw, dh, dw, ho, wo)
    assert np.array_equal(fast, reference.im2col(a["xp"], kh, kw, sh, sw, dh, dw, ho, wo))


# ----------------------------------------------------------------------------------
# the functional ops give the same numbers on both backends
# ----------------------------------------------------------------------------------

OPS = [
    ("conv", (2, 4, 7, 6), (6, 2, 3, 3), dict(stride=2, padding=1, groups=2)),
    ("conv", (1, 3, 6, 6), (4, 3, 2, 3), dict(dilation=(2, 1), padding=(1, 2))),
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
# the unpadded interface: x plus (ph, pw), which the Numba kernels pad virtually.
# Every GhostNet layer takes the "phase" kernels this way (the input is no larger
# than the output times the stride); other geometries fall back to the plain loops.
# ----------------------------------------------------------------------------------


def out_size(size, k, s, d, p):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def unpadded_case(n, c, m, k, s, d, p, size, dtype=np.float64, seed=0):
    """(args, x, w, dy, geometry) for a depthwise / dense problem on an unpadded input."""
    (kh, kw), (sh, sw), (dh, dw), (ph, pw), (h, wd) = k, s, d, p, size
    ho, wo = out_size(h, kh, sh, dh, ph), out_size(wd, kw, sw, dw, pw)
    r = np.random.default_rng(seed)
    x = r.standard_normal((n, c, h, wd)).astype(dtype)
    w = r.standard_normal((c * m, kh, kw)).astype(dtype)
    dy = r.standard_normal((n, c * m, ho, wo)).astype(dtype)
    cols = r.standard_normal((n, c, kh, kw, ho, wo)).astype(dtype)
    return x, w, dy, cols, (kh, kw, sh, sw, dh, dw, ho, wo, ph, pw)


def run_unpadded(mod, x, w, dy, cols, geom):
    """Every kernel of one implementation through the unpadded interface."""
    kh, kw, sh, sw, dh, dw, ho, wo, ph, pw = geom
    n, c, h, wd = x.shape
    hp, wp = h + 2 * ph, wd + 2 * pw
    dx2, dw2 = mod.depthwise_backward(dy, x, w, sh, sw, dh, dw, ph, pw)
    return {
        "im2col": mod.im2col(x, kh, kw, sh, sw, dh, dw, ho, wo, ph, pw),
        "col2im": mod.col2im(cols, hp, wp, sh, sw, dh, dw, ph, pw),
        "depthwise_forward": mod.depthwise_forward(x, w, sh, sw, dh, dw, ho, wo, ph, pw),
        "depthwise_backward_input": mod.depthwise_backward_input(
            dy, w, c, hp, wp, sh, sw, dh, dw, ph, pw
        ),
        "depthwise_backward_weight": mod.depthwise_backward_weight(
            dy, x, kh, kw, sh, sw, dh, dw, ph, pw
        ),
        "depthwise_backward.dx": dx2,
        "depthwise_backward.dw": dw2,
    }


def assert_unpadded_equal(case, tol=1e-12):
    x, w, dy, cols, geom = case
    ref = run_unpadded(reference, *case)
    fast = run_unpadded(nbk, *case)
    n, c, h, wd = x.shape
    for name, r in ref.items():
        assert fast[name].shape == r.shape, name
        assert fast[name].dtype == r.dtype == x.dtype, name
        assert rel_error(fast[name], r) < tol, (name, geom)
    # gradients come back cropped to the unpadded input
    assert ref["col2im"].shape == ref["depthwise_backward_input"].shape == x.shape


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
    monkeypatch.setattr(nbk, "PARALLEL_MIN_WORK", 0)
    monkeypatch.setattr(nbk, "WORKQUEUE_MIN_WORK", 0)
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
        if out_size(size[i], k[i], s[i], d[i], p[i]) < 1:
            return
    assert_unpadded_equal(unpadded_case(*dims, k, s, d, p, size, seed=seed))


def test_unpadded_adjoints():
    # <D x, g> = <x, D_x^T g> = <w, D_w^T g> and <im2col x, c> = <x, col2im c>, padding
    # included, on a stride-2 odd-sized problem
    x, w, dy, cols, geom = unpadded_case(*PHASE_CASES["5x5 s2 odd"])
    kh, kw, sh, sw, dh, dw, ho, wo, ph, pw = geom
    h, wd = x.shape[2:]
    y = nbk.depthwise_forward(x, w, sh, sw, dh, dw, ho, wo, ph, pw)
    dx, dwt = nbk.depthwise_backward(dy, x, w, sh, sw, dh, dw, ph, pw)
    lhs = np.vdot(y, dy)
    scale = np.sum(np.abs(y * dy))
    assert abs(lhs - np.vdot(x, dx)) <= 1e-12 * scale
    assert abs(lhs - np.vdot(w, dwt)) <= 1e-12 * scale
    c6 = nbk.im2col(x, kh, kw, sh, sw, dh, dw, ho, wo, ph, pw)
    back = nbk.col2im(cols, h + 2 * ph, wd + 2 * pw, sh, sw, dh, dw, ph, pw)
    assert abs(np.vdot(c6, cols) - np.vdot(x, back)) <= 1e-12 * np.sum(np.abs(c6 * cols))


# ----------------------------------------------------------------------------------
# batch norm kernels
# ----------------------------------------------------------------------------------


def bn_kernels(mod, x, dy, affine, training, seed=5):
    r = np.random.default_rng(seed)
    c = x.shape[1]
    weight = r.standard_normal(c).astype(x.dtype)
    bias = r.standard_normal(c).astype(x.dtype)
    mu, var = mod.batch_norm_stats(x)
    inv_std = (1.0 / np.sqrt(var + 1e-5)).astype(x.dtype)
    xhat, y = mod.batch_norm_normalize(x, mu, inv_std, weight, bias, affine)
    scale = weight * inv_std
    dx, dw, db = mod.batch_norm_backward(dy, xhat, scale, training)
    out = {"mu": mu, "var": var, "xhat": xhat, "y": y, "dx": dx, "dweight": dw, "dbias": db}
    return out | {"scale": scale}


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
            # dx = scale * (dy - dbias/M - xhat * dweight/M): the terms can cancel almost
            # exactly (with 2 values per channel dx is ~0), so the bar is the terms' size
            m = x.size // x.shape[1]
            c4 = (1, -1, 1, 1)
            terms = np.abs(dy) + np.abs(ref["dbias"] / m).reshape(c4)
            terms = terms + np.abs(ref["xhat"] * (ref["dweight"] / m).reshape(c4))
            terms = terms * np.abs(ref["scale"]).reshape(c4)
            assert np.abs(fast[k] - a).max() <= tol * terms.max(), k
        else:
            assert rel_error(fast[k], a) < tol, k
    if not affine:
        assert ref["y"] is ref["xhat"] and fast["y"] is fast["xhat"]
    # the statistics themselves, against float64 NumPy
    x64 = x.astype(np.float64)
    assert rel_error(ref["mu"], x64.mean(axis=(0, 2, 3))) < tol
    assert rel_error(fast["var"], x64.var(axis=(0, 2, 3))) < tol


def test_batch_norm_kernels_independent_of_threads(monkeypatch):
    r = np.random.default_rng(7)
    x = r.standard_normal((3, 5, 6, 7)).astype(np.float32)
    dy = r.standard_normal(x.shape).astype(np.float32)
    one = bn_kernels(nbk, x, dy, True, True)
    monkeypatch.setattr(nbk, "PARALLEL_MIN_WORK", 0)
    monkeypatch.setattr(nbk, "WORKQUEUE_MIN_WORK", 0)
    par = bn_kernels(nbk, x, dy, True, True)
    for k in one:
        assert np.array_equal(one[k], par[k]), k
