"""Checks of the im2col assignment: output size, im2col, the convolution, col2im as the
adjoint of im2col, the gradient check, and agreement with ghostnp's conv2d."""

from __future__ import annotations

import numpy as np

from ... import functional as F
from ..diagnose import array, compare, error_mask, where_wrong
from ..grader import CheckList, Fail
from . import gradient_check, judge, op_runs, out_size, pattern, rng

checks = CheckList()

# (H, k, stride, padding) -> output length, worked out by hand
OUT_SIZES = [
    ((5, 3, 1, 0), 3),
    ((5, 3, 2, 1), 3),
    ((6, 3, 2, 0), 2),
    ((7, 3, 2, 1), 4),
    ((4, 1, 1, 0), 4),
    ((3, 3, 1, 1), 3),
    ((8, 2, 3, 0), 3),
]

# geometries: batch, channels in/out, H, W, kernel (kh, kw), stride, padding
GEOMETRIES = [
    dict(n=2, c=3, o=4, h=7, w=8, k=(3, 3), s=2, p=0),  # windows overlap; column 7 unread
    dict(n=1, c=2, o=3, h=5, w=5, k=(3, 3), s=1, p=1),  # 'same' padding
    dict(n=2, c=1, o=2, h=6, w=4, k=(2, 3), s=2, p=1),  # non-square kernel, remainder
    dict(n=1, c=2, o=2, h=4, w=6, k=(2, 2), s=2, p=0),  # windows tile the input exactly
    dict(n=3, c=2, o=1, h=5, w=7, k=(1, 3), s=1, p=2),  # wide padding
]

FEATURES = [
    ("the windows overlap (stride < kernel)", lambda g: g["s"] < max(g["k"])),
    ("there is padding", lambda g: g["p"] > 0),
    ("the stride is above 1", lambda g: g["s"] > 1),
    ("the kernel is not square", lambda g: g["k"][0] != g["k"][1]),
    ("the batch has more than one image", lambda g: g["n"] > 1),
    ("there is more than one input channel", lambda g: g["c"] > 1),
]


def _describe(g) -> str:
    kh, kw = g["k"]
    return (
        f"x {(g['n'], g['c'], g['h'], g['w'])}, kernel {kh}x{kw}, stride {g['s']}, padding {g['p']}"
    )


# what a failure confined to one feature suggests
FEATURE_HINTS = {
    "the windows overlap (stride < kernel)": "pixels read by several windows must sum them",
    "there is padding": (
        "with padding, im2col reads the zero-padded input and col2im folds onto the padded "
        "shape and then crops `padding` rows and columns from every side"
    ),
    "the stride is above 1": "window (a, b) starts at row a*stride and column b*stride",
    "the kernel is not square": "kh runs along H and kw along W",
}


def _pattern(cases) -> str:
    return pattern(cases, FEATURES, _describe, FEATURE_HINTS)


def coverage(g) -> np.ndarray:
    """How many windows read each input pixel: (H, W), counted window by window."""
    kh, kw = g["k"]
    s, p = g["s"], g["p"]
    ho, wo = out_size(g["h"], kh, s, p), out_size(g["w"], kw, s, p)
    cov = np.zeros((g["h"] + 2 * p, g["w"] + 2 * p))
    for a in range(ho):
        for b in range(wo):
            cov[a * s : a * s + kh, b * s : b * s + kw] += 1
    return cov[p : p + g["h"], p : p + g["w"]]


def dx_regions(g):
    """Where a wrong dx can lie, and what each place says about the mistake."""
    cov = coverage(g)[None, None]
    return [
        (
            cov > 1,
            "only pixels read by several windows are wrong: col2im must ADD (+=) every "
            "window's entries onto a pixel, not overwrite them (=)",
        ),
        (
            cov < cov.max(),
            "only pixels near the border are wrong: check the padding (fold onto the "
            "padded array, then crop `padding` rows and columns on every side)",
        ),
        (cov == 0, "only pixels that no window reads are wrong: their gradient is zero"),
    ]


def _draw(g, r, bias=True):
    kh, kw = g["k"]
    x = r.standard_normal((g["n"], g["c"], g["h"], g["w"]))
    w = r.standard_normal((g["o"], g["c"], kh, kw))
    b = r.standard_normal(g["o"]) if bias else None
    return x, w, b


def _identity_weight(c, kh, kw):
    """The weight whose conv output is im2col itself: one output channel per row (c, i, j)."""
    k = c * kh * kw
    return np.eye(k).reshape(k, c, kh, kw)


def reference_im2col(x, kh, kw, s, p):
    """im2col by ghostnp's conv2d with an identity weight: (N, C*kh*kw, ho*wo)."""
    y, _ = F.conv2d_forward(x, _identity_weight(x.shape[1], kh, kw), None, s, p)
    return y.reshape(y.shape[0], y.shape[1], -1)


def reference_col2im(cols, x_shape, kh, kw, s, p):
    """col2im by ghostnp's conv2d backward with an identity weight (dcols = dy)."""
    n, c, h, w = x_shape
    ho, wo = out_size(h, kh, s, p), out_size(w, kw, s, p)
    x = np.zeros(x_shape)
    _, cache = F.conv2d_forward(x, _identity_weight(c, kh, kw), None, s, p)
    dx, _, _ = F.conv2d_backward(cols.reshape(n, c * kh * kw, ho, wo), cache)
    return dx


@checks.add("out_size: output length (floor rule)", points=1)
def out_size_rule(ctx):
    out_size = ctx.get("out_size")
    for (size, k, s, p), expected in OUT_SIZES:
        got = out_size(size, k, s, p)
        if got != expected:
            hint = ""
            if got == -(-(size + 2 * p - k) // s) + 1:
                hint = ": round down (floor), not up: a window that does not fit is dropped"
            elif got == expected - 1:
                hint = ": count the first window too (the + 1)"
            elif got == (size - k) // s + 1:
                hint = ": the padding adds 2*padding to the length"
            raise Fail(
                f"out_size({size}, k={k}, stride={s}, padding={p}) is {got!r}, expected "
                f"{expected}{hint}"
            )
    return f"{len(OUT_SIZES)} hand cases"


@checks.add("im2col: hand examples", points=1)
def im2col_hand(ctx):
    im2col = ctx.get("im2col")
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    expected = np.array([[1, 2, 4, 5], [2, 3, 5, 6], [4, 5, 7, 8], [5, 6, 8, 9]], float)[None]
    got = array("im2col of a 3x3 input, 2x2 kernel", im2col(x, 2, 2, 1, 0), (1, 4, 4))
    if np.allclose(got[0][[0, 2, 1, 3]], expected[0]) and not np.allclose(got, expected):
        raise Fail(
            "im2col rows come in (j, i) order: row c*kh*kw + i*kw + j must hold the pixels "
            "that meet w[:, c, i, j] (i along H, j along W)"
        )
    compare("im2col of [[1,2,3],[4,5,6],[7,8,9]] with a 2x2 kernel", got, expected)
    # padding 1 around [[1, 2], [3, 4]], 2x2 kernel: nine windows, zeros from the padding
    x = np.array([[1.0, 2.0], [3.0, 4.0]]).reshape(1, 1, 2, 2)
    expected = np.array(
        [
            [0, 0, 0, 0, 1, 2, 0, 3, 4],
            [0, 0, 0, 1, 2, 0, 3, 4, 0],
            [0, 1, 2, 0, 3, 4, 0, 0, 0],
            [1, 2, 0, 3, 4, 0, 0, 0, 0],
        ],
        float,
    )[None]
    got = im2col(x, 2, 2, 1, 1)
    compare("im2col of [[1,2],[3,4]], 2x2 kernel, padding 1", got, expected)
    # two channels: the second channel's rows follow the first channel's
    x2 = np.concatenate([x, 10 * x], axis=1)
    expected2 = np.concatenate([expected, 10 * expected], axis=1)
    compare(
        "im2col of a 2-channel input (rows ordered channel, then i, then j)",
        im2col(x2, 2, 2, 1, 1),
        expected2,
    )
    return "3 examples"


@checks.add("im2col: shapes", points=1, needs="out_size: output length (floor rule)")
def im2col_shapes(ctx):
    im2col = ctx.get("im2col")
    r = rng(1)
    for g in GEOMETRIES:
        kh, kw = g["k"]
        x, _, _ = _draw(g, r)
        ho, wo = out_size(g["h"], kh, g["s"], g["p"]), out_size(g["w"], kw, g["s"], g["p"])
        cols = im2col(x, kh, kw, g["s"], g["p"])
        array(f"im2col for {_describe(g)}", cols, (g["n"], g["c"] * kh * kw, ho * wo), x.dtype)
    return f"{len(GEOMETRIES)} geometries"


@checks.add("conv2d_forward: hand examples", points=1)
def conv_hand(ctx):
    forward = ctx.get("conv2d_forward")
    # a 3x3 box of ones over ones with padding 1 counts the real pixels under each window
    y, _ = forward(np.ones((1, 1, 3, 3)), np.ones((1, 1, 3, 3)), None, 1, 1)
    compare(
        "conv of ones (3x3) with a 3x3 box of ones, padding 1",
        y,
        np.array([[4.0, 6, 4], [6, 9, 6], [4, 6, 4]])[None, None],
    )
    # [[1, 0], [0, -1]] takes each pixel minus its lower-right neighbour: always -4 here
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    w = np.stack([np.array([[1.0, 0], [0, -1]]), np.array([[0.0, 1], [0, 0]])])[:, None]
    y, _ = forward(x, w, np.array([0.5, -1.0]), 1, 0)
    expected = np.array([[[-3.5, -3.5], [-3.5, -3.5]], [[1.0, 2.0], [4.0, 5.0]]])[None]
    compare("conv of [[1,2,3],[4,5,6],[7,8,9]] with two 2x2 filters plus a bias", y, expected)
    # stride 2: only the windows at even positions
    y, _ = forward(np.arange(16.0).reshape(1, 1, 4, 4), np.ones((1, 1, 1, 1)), None, 2, 0)
    compare("a 1x1 conv with stride 2 of a 4x4 input", y, np.array([[0.0, 2], [8, 10]])[None, None])
    return "3 examples"


@checks.add(
    "col2im: the adjoint of im2col", points=2, needs=("im2col: hand examples", "im2col: shapes")
)
def col2im_adjoint(ctx):
    im2col, col2im = ctx.get("im2col"), ctx.get("col2im")
    r = rng(2)
    cases, first = [], None
    for g in GEOMETRIES:
        kh, kw = g["k"]
        x, _, _ = _draw(g, r)
        cols = im2col(x, kh, kw, g["s"], g["p"])
        gc = r.standard_normal(cols.shape)
        dx = col2im(gc, x.shape, kh, kw, g["s"], g["p"])
        if g["p"] == 0 and isinstance(dx, np.ndarray) and 0 in dx.shape:
            raise Fail(
                f"col2im returns an empty array of shape {dx.shape} for padding 0: a[p:-p] is "
                "empty when p = 0; crop with a[p : p + H] instead"
            )
        dx = array(f"col2im for {_describe(g)}", dx, x.shape)
        lhs, rhs = float(np.vdot(cols, gc)), float(np.vdot(x, dx))
        ok = abs(lhs - rhs) <= 1e-10 * float(np.sum(np.abs(cols * gc)) + 1.0)
        cases.append((g, ok))
        if not ok and first is None:
            first = (g, gc, x.shape, dx, lhs, rhs)
    if first is None:
        return f"<im2col(x), g> = <x, col2im(g)> for {len(GEOMETRIES)} geometries"
    g, gc, shape, dx, lhs, rhs = first
    kh, kw = g["k"]
    with ctx.reference():
        expected = reference_col2im(gc, shape, kh, kw, g["s"], g["p"])
    where = where_wrong(error_mask(dx, expected), dx_regions(g))
    raise Fail(
        f"col2im is not the adjoint of im2col: <im2col(x), g> = {lhs:.6g} but "
        f"<x, col2im(g)> = {rhs:.6g} for {_describe(g)}; {_pattern(cases)}"
        + (f"; {where}" if where else "")
    )


CONV_HINTS = {
    "dx": "dx = col2im(w.reshape(O, K).T @ dy) (the adjoint of im2col folds the columns back)",
    "dw": "dw = sum over the batch of dy[n] @ cols[n].T, reshaped to (O, C, kh, kw)",
    "db": "db = dy summed over n, h and w: each bias entry is added to every output pixel",
}


@checks.add(
    "conv2d_backward: gradient check",
    points=2,
    needs=("conv2d_forward: hand examples", "im2col: shapes"),
)
def conv_gradcheck(ctx):
    forward, backward = ctx.get("conv2d_forward"), ctx.get("conv2d_backward")
    r = rng(3)
    cases = [(_draw(g, r), dict(stride=g["s"], padding=g["p"])) for g in GEOMETRIES[0:3:2]]
    return gradient_check(forward, backward, cases, ["dx", "dw", "db"], CONV_HINTS)


@checks.add(
    "conv2d: matches ghostnp's conv2d on random inputs",
    points=2,
    needs=("conv2d_forward: hand examples", "im2col: shapes"),
)
def conv_reference(ctx):
    student = (ctx.get("conv2d_forward"), ctx.get("conv2d_backward"))
    r = rng(4)
    cases = []
    for g in GEOMETRIES + [dict(GEOMETRIES[1], p=0)]:
        for bias in (True, False):
            cases.append((g, _draw(g, r, bias), dict(stride=g["s"], padding=g["p"])))
    runs = op_runs(ctx, cases, student, lambda: (F.conv2d_forward, F.conv2d_backward), r)
    return judge(
        runs,
        ("y", "dx", "dw", "db"),
        _describe,
        FEATURES,
        FEATURE_HINTS,
        CONV_HINTS,
        regions={"dx": dx_regions},
    )
