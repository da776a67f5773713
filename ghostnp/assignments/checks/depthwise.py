"""Checks of the depthwise assignment: the depthwise convolution and its backward pass,
and the student's own gradient checker (central, restoring, with a random upstream
gradient)."""

from __future__ import annotations

import numpy as np

from ... import functional as F
from ..diagnose import array, compare
from ..grader import CheckList, Fail
from . import gradient_check, judge, op_runs, out_size, pattern, rng

checks = CheckList()

# batch, channels, multiplier M, H, W, kernel (kh, kw), stride, padding
GEOMETRIES = [
    dict(n=2, c=3, m=1, h=6, w=5, k=(3, 3), s=1, p=1),
    dict(n=1, c=2, m=2, h=5, w=5, k=(3, 3), s=1, p=1),
    dict(n=2, c=3, m=3, h=7, w=6, k=(3, 3), s=2, p=1),
    dict(n=1, c=4, m=1, h=6, w=7, k=(5, 5), s=2, p=2),
    dict(n=2, c=2, m=2, h=5, w=6, k=(1, 3), s=1, p=0),
]

FEATURES = [
    ("each channel has several filters (M > 1)", lambda g: g["m"] > 1),
    ("the stride is above 1", lambda g: g["s"] > 1),
    ("there is padding", lambda g: g["p"] > 0),
    ("the kernel is not square", lambda g: g["k"][0] != g["k"][1]),
    ("the batch has more than one image", lambda g: g["n"] > 1),
]

FEATURE_HINTS = {
    "each channel has several filters (M > 1)": (
        "output channel o = c*M + m reads input channel o // M (PyTorch's groups=C order: "
        "view w as (C, M, kh, kw) and y as (N, C, M, ho, wo))"
    ),
    "there is padding": "read from the zero-padded input and crop dx's padding off",
    "the stride is above 1": "output pixel (a, q) reads from row a*stride + i, column q*stride + j",
}

HINTS = {
    "dx": (
        "dx gathers, for each input channel c, the gradient of all M output channels made "
        "from it, each through its own filter"
    ),
    "dw": "dw[o, 0, i, j] = sum over n, a, q of dy[n, o, a, q] * xp[n, o // M, a*s + i, q*s + j]",
    "db": "db = dy summed over n, h and w",
}


def _describe(g) -> str:
    kh, kw = g["k"]
    return (
        f"x {(g['n'], g['c'], g['h'], g['w'])}, M = {g['m']}, kernel {kh}x{kw}, "
        f"stride {g['s']}, padding {g['p']}"
    )


def _pattern(cases) -> str:
    return pattern(cases, FEATURES, _describe, FEATURE_HINTS)


def _draw(g, r, bias=True):
    kh, kw = g["k"]
    x = r.standard_normal((g["n"], g["c"], g["h"], g["w"]))
    w = r.standard_normal((g["c"] * g["m"], 1, kh, kw))
    b = r.standard_normal(g["c"] * g["m"]) if bias else None
    return x, w, b


@checks.add("depthwise forward: hand examples", points=1)
def forward_hand(ctx):
    forward = ctx.get("depthwise_conv2d_forward")
    x = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    # one channel, two filters (M = 2): the centre tap copies x, the box of ones sums 3x3
    centre = np.zeros((3, 3))
    centre[1, 1] = 1.0
    w = np.stack([centre, np.ones((3, 3))])[:, None]
    y, _ = forward(x, w, None, 1, 1)
    box = [[12.0, 21, 16], [27, 45, 33], [24, 39, 28]]
    compare(
        "depthwise conv of [[1..9]] with filters [centre tap, 3x3 ones], padding 1",
        y,
        np.array([x[0, 0], box])[None],
    )
    # two channels, one filter each: channel 0 doubled, channel 1 negated, plus a bias
    x2 = np.concatenate([x, 10 * x], axis=1)
    w2 = np.array([2.0, -1.0]).reshape(2, 1, 1, 1)
    y, _ = forward(x2, w2, np.array([1.0, 0.0]), 1, 0)
    compare(
        "depthwise 1x1 conv of two channels with weights [2, -1] and bias [1, 0]",
        y,
        np.concatenate([2 * x + 1, -10 * x], axis=1),
        hint="each channel uses only its own filter",
    )
    # stride 2 of a 3x3 box over a 5x5 input of ones, no padding: two windows each way
    y, _ = forward(np.ones((1, 1, 5, 5)), np.ones((1, 1, 3, 3)), None, 2, 0)
    compare("a 3x3 box of ones, stride 2, over a 5x5 input of ones", y, np.full((1, 1, 2, 2), 9.0))
    return "3 examples"


@checks.add("depthwise forward: shapes", points=1)
def forward_shapes(ctx):
    forward = ctx.get("depthwise_conv2d_forward")
    r = rng(1)
    for g in GEOMETRIES:
        x, w, b = _draw(g, r)
        kh, kw = g["k"]
        shape = (
            g["n"],
            g["c"] * g["m"],
            out_size(g["h"], kh, g["s"], g["p"]),
            out_size(g["w"], kw, g["s"], g["p"]),
        )
        y, _ = forward(x, w, b, g["s"], g["p"])
        array(f"y for {_describe(g)}", y, shape, x.dtype)
    return f"{len(GEOMETRIES)} geometries"


@checks.add("numerical_gradient: central differences", points=1)
def numerical_gradient_check(ctx):
    numerical_gradient = ctx.get("numerical_gradient")
    r = rng(2)
    x = r.uniform(0.5, 2.0, size=(3, 4))
    x0 = x.copy()
    got = numerical_gradient(lambda: np.sum(x**3), x, 1e-5)
    if not np.array_equal(x, x0):
        raise Fail(
            "numerical_gradient leaves x changed: put every element back exactly as it was "
            "(x[idx] = old) after nudging it"
        )
    got = array("numerical_gradient of sum(x**3)", got, x.shape)
    exact = 3 * x**2
    err = float(np.max(np.abs(got - exact) / np.abs(exact)))
    if err > 1e-7:
        eps = 1e-5
        forward_diff = np.empty_like(x)
        for idx in np.ndindex(x.shape):
            up = x.copy()
            up[idx] += eps
            forward_diff[idx] = (np.sum(up**3) - np.sum(x**3)) / eps
        if np.allclose(got, forward_diff, rtol=1e-6):
            raise Fail(
                "numerical_gradient takes one-sided differences (f(x + eps) - f(x)) / eps, "
                f"whose error is O(eps) (here {err:.1e} relative): use central differences "
                "(f(x + eps) - f(x - eps)) / (2 eps), whose error is O(eps^2)"
            )
        ratio = got / exact
        if np.allclose(ratio, ratio.flat[0]):
            raise Fail(
                f"numerical_gradient of sum(x**3) is {ratio.flat[0]:.4g} times 3 x**2: check "
                "the divisor (2 * eps for a central difference)"
            )
        raise Fail(f"numerical_gradient of sum(x**3) is not 3 x**2 (relative error {err:.1e})")
    return f"relative error {err:.1e} on sum(x**3)"


@checks.add("depthwise: adjoint identities", points=1, needs="depthwise forward: shapes")
def adjoint(ctx):
    forward, backward = ctx.get("depthwise_conv2d_forward"), ctx.get("depthwise_conv2d_backward")
    r = rng(3)
    cases, message = [], None
    for g in GEOMETRIES:
        x, w, _ = _draw(g, r, bias=False)
        y, cache = forward(x, w, None, g["s"], g["p"])
        gy = r.standard_normal(y.shape)
        grads = backward(gy, cache)
        dx = array(f"dx for {_describe(g)}", grads[0], x.shape)
        dw = array(f"dw for {_describe(g)}", grads[1], w.shape)
        lhs = float(np.vdot(y, gy))
        scale = float(np.sum(np.abs(y * gy))) + 1.0
        bad = [
            name
            for name, rhs in (("<x, dx>", np.vdot(x, dx)), ("<w, dw>", np.vdot(w, dw)))
            if abs(lhs - float(rhs)) > 1e-10 * scale
        ]
        cases.append((g, not bad))
        if bad and message is None:
            message = f"<y, g> = {lhs:.6g} differs from {' and '.join(bad)} for {_describe(g)}"
    if message:
        raise Fail(
            f"{message}: y is linear in x and in w, so <y, g> = <x, dx> = <w, dw> for any g; "
            f"{_pattern(cases)}"
        )
    return f"<y, g> = <x, dx> = <w, dw> for {len(GEOMETRIES)} geometries"


@checks.add(
    "depthwise backward: gradient check", points=2, needs="depthwise forward: hand examples"
)
def depthwise_gradcheck(ctx):
    forward, backward = ctx.get("depthwise_conv2d_forward"), ctx.get("depthwise_conv2d_backward")
    r = rng(4)
    cases = [(_draw(g, r), dict(stride=g["s"], padding=g["p"])) for g in GEOMETRIES[2:5:2]]
    with ctx.reference("ghostnp.gradcheck"):  # ghostnp's checker on the student's code
        return gradient_check(forward, backward, cases, ["dx", "dw", "db"], HINTS)


def _elementwise_forward(x, w):
    return x * w, (x, w)


def _elementwise_backward(g, cache):
    x, w = cache
    return g * w, g * x


def _mixed_up_backward(g, cache):
    """Wrong: dx takes the upstream gradient of the mirrored position. With g = ones the
    mirror changes nothing, so only a random g shows the mistake."""
    x, w = cache
    return g[..., ::-1] * w, g * x


def _scaled_backward(g, cache):
    x, w = cache
    return g * w, 2.0 * g * x


@checks.add(
    "check_gradients: tells right from wrong",
    points=2,
    needs="numerical_gradient: central differences",
)
def checker(ctx):
    check_gradients = ctx.get("check_gradients")
    r = rng(5)
    x, w = r.standard_normal((2, 3, 4)), r.standard_normal((2, 3, 4))
    x0, w0 = x.copy(), w.copy()

    def errors(backward, what):
        errs = check_gradients(_elementwise_forward, backward, [x, w])
        if not np.array_equal(x, x0) or not np.array_equal(w, w0):
            raise Fail("check_gradients changed the caller's inputs: work on copies")
        if not isinstance(errs, (list, tuple)) or len(errs) != 2:
            raise Fail(
                f"check_gradients should return one error per input (2), got {errs!r} for {what}"
            )
        return [float(e) for e in errs]

    right = errors(_elementwise_backward, "a correct backward")
    if max(right) > 1e-7:
        raise Fail(
            f"check_gradients reports errors {right[0]:.1e}, {right[1]:.1e} for y = x * w with the "
            "correct backward (dx = g*w, dw = g*x): they should be below 1e-7"
        )
    scaled = errors(_scaled_backward, "a backward with dw doubled")
    if not (scaled[0] < 1e-7 and scaled[1] > 0.1):
        raise Fail(
            f"check_gradients reports {scaled[0]:.1e}, {scaled[1]:.1e} for a backward whose dw is "
            "twice too large (dx right): expected a tiny error for x and about 0.5 for w"
        )
    mixed = errors(_mixed_up_backward, "a backward that mixes up positions")
    if mixed[0] < 1e-3:
        raise Fail(
            f"check_gradients passed (error {mixed[0]:.1e}) a backward that takes each position's "
            "upstream gradient from the mirrored position: with an upstream gradient of ones such "
            "mistakes cancel; draw g at random (np.random.default_rng(seed).standard_normal)"
        )
    return "passes a correct backward, fails a wrong scale and mixed-up positions"


@checks.add(
    "depthwise: matches ghostnp's depthwise conv on random inputs",
    points=2,
    needs="depthwise forward: hand examples",
)
def depthwise_reference(ctx):
    student = (ctx.get("depthwise_conv2d_forward"), ctx.get("depthwise_conv2d_backward"))
    r = rng(6)
    cases = [(g, _draw(g, r), dict(stride=g["s"], padding=g["p"])) for g in GEOMETRIES]
    runs = op_runs(
        ctx, cases, student, lambda: (F.depthwise_conv2d_forward, F.depthwise_conv2d_backward), r
    )
    return judge(runs, ("y", "dx", "dw", "db"), _describe, FEATURES, FEATURE_HINTS, HINTS)
