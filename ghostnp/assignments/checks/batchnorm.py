"""Checks of the batchnorm assignment: forward in both modes with the running statistics,
the backward pass in eval and in training mode (hand example, the invariances that
the two mean terms produce, gradient checks), and agreement with ghostnp's batch norm."""

from __future__ import annotations

import numpy as np

from ... import functional as F
from ..diagnose import array, compare
from ..grader import CheckList, Fail
from . import gradient_check, judge, rng, unpack

checks = CheckList()

SHAPES = [(4, 3, 2, 2), (2, 1, 3, 5), (1, 2, 4, 3), (5, 4, 1, 1)]
BOTH_FORWARDS = (
    "forward, training: hand example and running statistics",
    "forward, eval: uses the running statistics",
)


def _forward4(ctx):
    """The student's forward, its four results checked for type."""
    forward = ctx.get("batch_norm_forward")

    def run(*args, **kwargs):
        return unpack("batch_norm_forward", forward(*args, **kwargs), 4)

    return run


def _draw(shape, r):
    c = shape[1]
    x = r.standard_normal(shape) * 2.0 + r.standard_normal((1, c, 1, 1))
    gamma = r.uniform(0.5, 2.0, c)
    beta = r.standard_normal(c)
    rm = r.standard_normal(c)
    rv = r.uniform(0.5, 2.0, c)
    return x, gamma, beta, rm, rv


def _describe(case) -> str:
    shape, training = case
    return f"x of shape {shape} in {'training' if training else 'eval'} mode"


@checks.add("forward, training: hand example and running statistics", points=1)
def forward_train_hand(ctx):
    forward = _forward4(ctx)
    # one channel holding 0, 2, 0, 2: mean 1, biased variance 1, unbiased 4/3
    x = np.array([0.0, 2.0, 0.0, 2.0]).reshape(2, 1, 1, 2)
    rm, rv = np.zeros(1), np.ones(1)
    y, _, rm2, rv2 = forward(x, np.array([3.0]), np.array([0.5]), rm, rv, True, 0.1, 0.0)
    if rm[0] != 0.0 or rv[0] != 1.0:
        raise Fail(
            "batch_norm_forward changed running_mean or running_var in place: return updated "
            "copies instead"
        )
    compare(
        "y for x = [0, 2, 0, 2], gamma 3, beta 0.5, eps 0",
        y,
        np.array([-2.5, 3.5, -2.5, 3.5]).reshape(2, 1, 1, 2),
        hint="xhat = (x - mean) / sqrt(var + eps) uses the biased variance (divide by M)",
    )
    rm2 = array("running_mean", np.asarray(rm2), (1,))
    rv2 = array("running_var", np.asarray(rv2), (1,))
    if abs(rm2[0] - 0.9) < 1e-12:
        raise Fail(
            "running_mean is 0.9, expected 0.1 = 0.9 * 0 + 0.1 * 1: momentum weighs the new "
            "batch statistic, (1 - momentum) the old running value"
        )
    compare("running_mean (from 0, momentum 0.1, batch mean 1)", rm2, np.array([0.1]))
    if abs(rv2[0] - 1.0) < 1e-12:
        raise Fail(
            "running_var is 1.0, expected 0.9 * 1 + 0.1 * 4/3: the running variance takes the "
            "unbiased batch variance var * M / (M - 1)"
        )
    compare(
        "running_var (from 1, momentum 0.1, unbiased batch variance 4/3)",
        rv2,
        np.array([0.9 + 0.4 / 3]),
    )
    # eps inside the square root: var 1, eps 1 divides by sqrt(2)
    y, _, _, _ = forward(x, np.array([1.0]), np.array([0.0]), rm, rv, True, 0.1, 1.0)
    compare(
        "y with eps = 1 (divide by sqrt(var + eps) = sqrt(2))",
        y,
        np.array([-1.0, 1.0, -1.0, 1.0]).reshape(2, 1, 1, 2) / np.sqrt(2.0),
    )
    return "normalisation, running mean and unbiased running variance"


@checks.add("forward, eval: uses the running statistics", points=1)
def forward_eval_hand(ctx):
    forward = _forward4(ctx)
    x = np.array([1.0, 3.0, 5.0, -1.0]).reshape(1, 1, 2, 2)
    rm, rv = np.array([1.0]), np.array([3.0])
    y, _, rm2, rv2 = forward(x, np.array([2.0]), np.array([1.0]), rm, rv, False, 0.1, 1.0)
    compare(
        "eval-mode y for x = [1, 3, 5, -1], running mean 1, running var 3, eps 1, gamma 2, beta 1",
        y,
        np.array([1.0, 3.0, 5.0, -1.0]).reshape(1, 1, 2, 2),
        hint="in eval mode xhat = (x - running_mean) / sqrt(running_var + eps)",
    )
    if not (np.array_equal(rm2, rm) and np.array_equal(rv2, rv)):
        raise Fail("eval mode must return the running statistics unchanged")
    return "running statistics used, and returned unchanged"


@checks.add(
    "backward, eval: hand example", points=1, needs="forward, eval: uses the running statistics"
)
def backward_eval_hand(ctx):
    forward, backward = _forward4(ctx), ctx.get("batch_norm_backward")
    x = np.array([1.0, 3.0, 5.0, -1.0]).reshape(1, 1, 2, 2)
    _, cache, _, _ = forward(
        x, np.array([4.0]), np.array([1.0]), np.array([1.0]), np.array([3.0]), False, 0.1, 1.0
    )
    dy = np.array([1.0, -2.0, 0.5, 3.0]).reshape(1, 1, 2, 2)
    dx, dgamma, dbeta = unpack("batch_norm_backward", backward(dy, cache), 3)
    compare("eval-mode dbeta (the sum of dy)", dbeta, np.array([2.5]))
    # xhat = (x - 1) / 2 = [0, 1, 2, -1]: dgamma = 0 - 2 + 1 - 3
    compare("eval-mode dgamma (the sum of dy * xhat)", dgamma, np.array([-4.0]))
    compare(
        "eval-mode dx for gamma 4, running var 3, eps 1",
        dx,
        2.0 * dy,
        hint="in eval mode dx = dy * gamma / sqrt(running_var + eps), here 2 * dy",
    )
    return "dx = 2 dy, dgamma, dbeta"


@checks.add(
    "backward, training: the two mean terms (invariances)",
    points=1,
    needs="forward, training: hand example and running statistics",
)
def invariances(ctx):
    forward, backward = _forward4(ctx), ctx.get("batch_norm_backward")
    r = rng(1)
    x, gamma, beta, rm, rv = _draw((4, 3, 2, 2), r)
    # with eps = 0 both invariances are exact (eps > 0 makes stretching change y slightly)
    _, cache, _, _ = forward(x, gamma, beta, rm, rv, True, 0.1, 0.0)
    dy = r.standard_normal(x.shape)
    dx, _, _ = unpack("batch_norm_backward", backward(dy, cache), 3)
    dx = array("dx", dx, x.shape)
    xhat = (x - x.mean(axis=(0, 2, 3), keepdims=True)) / x.std(axis=(0, 2, 3), keepdims=True)
    scale = float(np.abs(dx).sum()) + 1.0
    shift = float(np.abs(dx.sum(axis=(0, 2, 3))).max())
    stretch = float(np.abs((dx * xhat).sum(axis=(0, 2, 3))).max())
    missing = []
    if shift > 1e-9 * scale:
        missing.append(
            "the sum of dx over each channel is not 0, yet adding a constant to a channel does "
            "not change y: the gradient through the batch mean, -mean(dxhat), is missing"
        )
    if stretch > 1e-9 * scale:
        missing.append(
            "sum(dx * xhat) over each channel is not 0, yet scaling a channel's deviations "
            "does not change y: the gradient through the batch variance, "
            "-xhat * mean(dxhat * xhat), is missing"
        )
    if missing:
        raise Fail("; and ".join(missing))
    return "sum(dx) = 0 and sum(dx * xhat) = 0 per channel"


HINTS = {
    "dx": (
        "training: dx = inv_std * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) with "
        "dxhat = gamma * dy; eval: dx = gamma * inv_std * dy"
    ),
    "dgamma": "dgamma sums dy * xhat over (N, H, W)",
    "dbeta": "dbeta sums dy over (N, H, W)",
}


def _gradcheck(ctx, training):
    forward, backward = _forward4(ctx), ctx.get("batch_norm_backward")

    def fwd(x, gamma, beta, rm, rv):
        y, cache, _, _ = forward(x, gamma, beta, rm, rv, training, 0.1, 1e-5)
        return y, cache

    def bwd(dy, cache):  # no gradient for the running statistics
        return (*unpack("batch_norm_backward", backward(dy, cache), 3), None, None)

    r = rng(2 if training else 3)
    cases = [(_draw(shape, r), {}) for shape in SHAPES[:2]]
    return gradient_check(fwd, bwd, cases, ["dx", "dgamma", "dbeta"], HINTS, wrt=[0, 1, 2])


@checks.add(
    "backward, training: gradient check",
    points=2,
    needs="forward, training: hand example and running statistics",
)
def gradcheck_train(ctx):
    return _gradcheck(ctx, True)


@checks.add(
    "backward, eval: gradient check", points=1, needs="forward, eval: uses the running statistics"
)
def gradcheck_eval(ctx):
    return _gradcheck(ctx, False)


@checks.add(
    "float32 in, float32 out",
    points=1,
    needs=BOTH_FORWARDS,
)
def keeps_float32(ctx):
    forward, backward = _forward4(ctx), ctx.get("batch_norm_backward")
    r = rng(4)
    for training in (True, False):
        x, gamma, beta, rm, rv = (a.astype(np.float32) for a in _draw((2, 3, 2, 2), r))
        y, cache, _, _ = forward(x, gamma, beta, rm, rv, training, 0.1, 1e-5)
        mode = "training" if training else "eval"
        array(f"y ({mode}) for float32 input", y, x.shape, np.float32)
        dx, dgamma, dbeta = unpack("batch_norm_backward", backward(np.ones_like(x), cache), 3)
        array(f"dx ({mode}) for float32 input", dx, x.shape, np.float32)
    return "y and dx stay float32"


@checks.add(
    "matches ghostnp's batch norm on random inputs",
    points=2,
    needs=BOTH_FORWARDS,
)
def reference(ctx):
    forward, backward = _forward4(ctx), ctx.get("batch_norm_backward")
    r = rng(5)
    runs = []
    for shape in SHAPES:
        for training in (True, False):
            x, gamma, beta, rm, rv = _draw(shape, r)
            momentum, eps = 0.2, 1e-3
            with ctx.reference():
                y, cache = F.batch_norm2d_forward(x, gamma, beta, rm, rv, training, momentum, eps)
                dy = r.standard_normal(shape)
                dx, dgamma, dbeta = F.batch_norm2d_backward(dy, cache)
            expected = dict(
                y=y,
                running_mean=cache.running_mean,
                running_var=cache.running_var,
                dx=dx,
                dgamma=dgamma,
                dbeta=dbeta,
            )
            y, cache, rm2, rv2 = forward(
                x.copy(), gamma.copy(), beta.copy(), rm.copy(), rv.copy(), training, momentum, eps
            )
            got = dict(y=y, running_mean=rm2, running_var=rv2)
            if isinstance(y, np.ndarray) and y.shape == shape:
                grads = unpack("batch_norm_backward", backward(dy.copy(), cache), 3)
                got.update(zip(("dx", "dgamma", "dbeta"), grads, strict=True))
            runs.append(((shape, training), got, expected))
    features = [
        ("in training mode", lambda c: c[1]),
        ("in eval mode", lambda c: not c[1]),
        ("a channel has a single pixel per image (H = W = 1)", lambda c: c[0][2] * c[0][3] == 1),
        ("there is one image (N = 1)", lambda c: c[0][0] == 1),
    ]
    return judge(
        runs,
        ("y", "running_mean", "running_var", "dx", "dgamma", "dbeta"),
        _describe,
        features,
        hints=HINTS,
    )
