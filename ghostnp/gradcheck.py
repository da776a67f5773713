"""Numerical gradient checking: is a hand-written backward pass the derivative of its forward?

Central differences. For a scalar function L of an array x, each partial derivative is
estimated by nudging one element both ways:

    dL/dx[i] ~= (L(x + eps*e_i) - L(x - eps*e_i)) / (2*eps)

The truncation error is O(eps^2) (the even terms of the Taylor series cancel), against
O(eps) for a one-sided difference, so eps = 1e-6 leaves ~1e-12 of truncation and the
result is limited by rounding: about u * |L| / eps, where u is the unit roundoff (the
largest relative error of rounding one number, half of ``np.finfo(dtype).eps``).

Why float64. With float64 (u = 1.1e-16) and eps = 1e-6, rounding costs ~1e-10
relative, so a correct backward pass of a smooth op shows a relative error of
1e-11 .. 1e-9, and anything above 1e-7 is a bug. In float32 (u = 6.0e-8) the same
formula loses nearly every digit to rounding (~1e-1 relative for eps = 1e-6, and at
best ~1e-5 .. 1e-3 at a larger eps, where truncation grows), which cannot tell a bug
from noise; the checks therefore refuse float32 arrays. docs/concepts/gradient-checking.md
derives the best step and shows the measurements.

Why a random upstream gradient. A layer with output y (any shape) is checked through the
scalar L = sum(y * g) with g drawn at random, so that dL/dy = g and the backward pass
is run exactly as in training: ``grads = backward(g, cache)``. With g = ones, errors that
cancel in the sum go unseen: a backward that swaps two output channels, or mixes up which
output pixel a gradient came from, still gives the right answer for a constant g. A
random g makes every output element count with its own weight.

Kinks. ReLU, ReLU6, max-pool and friends are not differentiable at their kinks; keep
inputs away from them (for example |x| > 10*eps) or the two sides of the difference
straddle the kink and the check reports a spurious error.

How errors are measured: see ``rel_error``. A row passes when its relative error is at
most ``tol``, or when its absolute error is at most ``tol`` times the largest gradient
anywhere in the check. The second rule is for arrays whose true gradient is (close to)
zero, such as a conv bias followed by BatchNorm in train mode: there the finite-difference
noise is all there is, so an error relative to the array itself is meaningless (~1), and
the error is judged at the scale of the whole check instead. A report has one row per
checked array:

    report = check_function(conv2d_forward, conv2d_backward, x, w, b, stride=2)
    print(report)        # table: name, shape, max relative error, max abs error, PASS/FAIL
    report.assert_ok()   # AssertionError with the table if any row exceeds tol
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike

if TYPE_CHECKING:
    from .nn.module import Module

__all__ = [
    "GradcheckRow",
    "GradcheckReport",
    "numerical_gradient",
    "rel_error",
    "check_function",
    "check_module",
    "check_all_layers",
    "upstream_gradient",
]


@dataclass(frozen=True)
class GradcheckRow:
    """One checked array: its name, shape, errors (see ``rel_error``) and verdict."""

    name: str
    shape: tuple[int, ...]
    rel_error: float
    abs_error: float
    passed: bool


@dataclass(frozen=True)
class GradcheckReport:
    """The rows of a gradient check, the relative tolerance and the absolute one.

    ``atol`` is ``tol`` times the largest |numerical gradient| over all rows: a row also
    passes when its absolute error is at most ``atol`` (see the module docstring).
    """

    rows: tuple[GradcheckRow, ...]
    tol: float
    atol: float = 0.0

    @property
    def passed(self) -> bool:
        """True when every row passed."""
        return all(r.passed for r in self.rows)

    @property
    def max_error(self) -> float:
        """The largest relative error over all rows (NaN if any row is NaN, 0.0 if none)."""
        return float(np.max([r.rel_error for r in self.rows])) if self.rows else 0.0

    def __str__(self) -> str:
        table = [("name", "shape", "rel error", "abs error", "result")] + [
            (
                r.name,
                str(r.shape),
                f"{r.rel_error:.3e}",
                f"{r.abs_error:.3e}",
                "PASS" if r.passed else "FAIL",
            )
            for r in self.rows
        ]
        widths = [max(len(row[i]) for row in table) for i in range(5)]
        verdict = "PASS" if self.passed else "FAIL"
        lines = [
            f"gradient check, tolerance {self.tol:.1e} on max relative error "
            f"(or {self.atol:.1e} on max abs error): {verdict}"
        ]
        for row in table:
            lines.append("  ".join(c.ljust(wd) for c, wd in zip(row, widths, strict=True)).rstrip())
        return "\n".join(lines)

    def assert_ok(self) -> None:
        """Raise AssertionError carrying the table if any row failed."""
        if not self.passed:
            raise AssertionError("gradient check failed\n" + str(self))


def _require_float64(what: str, a: object) -> None:
    if not isinstance(a, np.ndarray) or a.dtype != np.float64:
        got = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
        raise TypeError(
            f"gradcheck: {what} must be a float64 ndarray, got {got}; central differences "
            "in float32 lose most digits to rounding (cast with .astype(np.float64))"
        )


def numerical_gradient(f: Callable[[], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """dL/dx by central differences, where L = f() is a scalar that reads x.

    x (any shape, float64) is perturbed in place one element at a time and each element is
    restored to its exact original value, even if f raises. Returns an array shaped like x.
    Costs 2 * x.size calls of f.
    """
    _require_float64("x", x)
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


def rel_error(a: ArrayLike, b: ArrayLike) -> float:
    """Symmetric, scale-free error: max|a - b| / max(max|a|, max|b|), 0.0 if both are zero.

    The difference is measured against the largest magnitude found in either array rather
    than element by element, so entries whose true gradient is ~0 (where finite-difference
    noise of ~1e-10 would make an element-wise ratio explode) do not cause false alarms,
    while a wrong scale, sign or missing term anywhere still shows. Arrays of different
    shapes raise ValueError; empty arrays have error 0.0.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_error: shapes differ, {a.shape} vs {b.shape}")
    if a.size == 0:
        return 0.0
    scale = max(np.max(np.abs(a)), np.max(np.abs(b)), 1e-300)
    return float(np.max(np.abs(a - b)) / scale)


def _report(
    checked: Sequence[tuple[str, ArrayLike | None, np.ndarray]], tol: float
) -> GradcheckReport:
    """Rows for (name, analytic, numeric) triples; analytic None means "no gradient" (zeros)."""
    finite = [np.abs(num[np.isfinite(num)]) for _, _, num in checked]
    atol = tol * max((float(f.max()) for f in finite if f.size), default=0.0)
    rows = []
    for name, analytic, numeric in checked:
        grad = np.zeros_like(numeric) if analytic is None else np.asarray(analytic)
        if grad.shape != numeric.shape:
            raise ValueError(
                f"gradcheck: the gradient for {name} has shape {grad.shape}, "
                f"expected {numeric.shape}"
            )
        rel = rel_error(grad, numeric)
        ab = float(np.max(np.abs(grad - numeric))) if numeric.size else 0.0
        rows.append(GradcheckRow(name, numeric.shape, rel, ab, bool(rel <= tol or ab <= atol)))
    return GradcheckReport(tuple(rows), tol, atol)


def upstream_gradient(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """The random upstream gradient g ~ N(0, 1) of a check with this ``seed``: (shape) float64."""
    # The stream is keyed by (seed, a constant) so that it never equals an input the caller
    # drew with default_rng(seed): g == x would hide errors in ops such as batch norm.
    rng = np.random.default_rng([seed, 0x67686F7374])
    return np.asarray(rng.standard_normal(shape), dtype=np.float64)


def check_function(
    fwd: Callable[..., tuple[Any, Any]],
    bwd: Callable[[np.ndarray, Any], Any],
    *inputs: Any,
    eps: float = 1e-6,
    tol: float = 1e-7,
    seed: int = 0,
    wrt: Sequence[int] | None = None,
    **kwargs: Any,
) -> GradcheckReport:
    """Check ``bwd`` against central differences of ``fwd``.

    ``y, cache = fwd(*inputs, **kwargs)``; ``grads = bwd(g, cache)`` is a tuple aligned with
    ``inputs`` (extra trailing entries must be None; None also stands for "no gradient",
    e.g. a missing bias). L = sum(y * g) with g ~ N(0, 1) of y's shape, seeded by ``seed``.
    Checked: every float ndarray input, or only the indexes in ``wrt``; rows are named
    "input 0", "input 1", ... The caller's arrays are not touched (the check works on
    copies). Raises TypeError if a float input is not float64, and AssertionError if fwd
    changes an input or bwd changes g in place. Returns a GradcheckReport.
    """
    floats = [i for i, a in enumerate(inputs) if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    checked_inputs = floats if wrt is None else list(wrt)
    for i in floats + checked_inputs:
        _require_float64(f"input {i}", inputs[i])
    xs = [a.copy() if isinstance(a, np.ndarray) else a for a in inputs]

    y, cache = fwd(*xs, **kwargs)
    for i, (a, orig) in enumerate(zip(xs, inputs, strict=True)):
        if isinstance(a, np.ndarray) and not np.array_equal(a, orig, equal_nan=True):
            raise AssertionError(f"gradcheck: the forward pass changed input {i} in place")
    g = upstream_gradient(np.shape(y), seed)
    g_before = g.copy()
    grads = bwd(g, cache)
    if not np.array_equal(g, g_before):
        raise AssertionError("gradcheck: the backward pass changed its upstream gradient in place")
    grads = tuple(grads) if isinstance(grads, (tuple, list)) else (grads,)
    if len(grads) < len(xs) or any(extra is not None for extra in grads[len(xs) :]):
        raise ValueError(
            f"gradcheck: backward returned {len(grads)} gradients for {len(xs)} inputs"
        )

    def loss() -> float:
        return float(np.sum(np.asarray(fwd(*xs, **kwargs)[0]) * g))

    checked = [
        (f"input {i}", grads[i], numerical_gradient(loss, xs[i], eps)) for i in checked_inputs
    ]
    return _report(checked, tol)


def check_module(
    module: Module, x: np.ndarray, eps: float = 1e-6, tol: float = 1e-7, seed: int = 0
) -> GradcheckReport:
    """Check ``module.backward`` against central differences of ``module(x)``.

    x (any shape the module takes) and every parameter must be float64. L = sum(y * g) with
    y = module(x) and g ~ N(0, 1) seeded by ``seed``. Rows: "x", then each parameter under
    its ``named_parameters`` name ("weight", "0.bias", ...). Buffers that a forward pass
    updates (BatchNorm's running statistics in train mode) are restored after every
    evaluation, so the module ends as it started, except that ``p.grad`` holds the analytic
    gradient and the module's cache belongs to a forward pass on x. The module must be
    deterministic (put Dropout in eval mode). Returns a GradcheckReport.
    """
    _require_float64("x", x)
    params = list(module.named_parameters())
    for name, p in params:
        _require_float64(f"parameter {name!r}", p.data)
    pnames = {name for name, _ in params}
    buffers = {k: v for k, v in module.state_dict().items() if k not in pnames}
    x = x.copy()
    x_orig = x.copy()

    def restore_buffers() -> None:
        module.load_state_dict(buffers, strict=False)

    y = module(x)
    restore_buffers()
    if not np.array_equal(x, x_orig, equal_nan=True):
        raise AssertionError("gradcheck: the module's forward pass changed x in place")
    g = upstream_gradient(np.shape(y), seed)
    g_before = g.copy()
    module.zero_grad()
    dx = module.backward(g)
    if not np.array_equal(g, g_before):
        raise AssertionError("gradcheck: the module's backward changed its upstream gradient")
    analytic = {name: None if p.grad is None else p.grad.copy() for name, p in params}

    def loss() -> float:
        try:
            return float(np.sum(module(x) * g))
        finally:
            restore_buffers()

    checked: list[tuple[str, ArrayLike | None, np.ndarray]] = [
        ("x", dx, numerical_gradient(loss, x, eps))
    ]
    for name, p in params:  # p.data is perturbed in place and restored exactly
        checked.append((name, analytic[name], numerical_gradient(loss, p.data, eps)))

    module(x)  # leave a cache that matches x and the unperturbed parameters
    restore_buffers()
    for name, p in params:
        p.grad = analytic[name]
    return _report(checked, tol)


def _layer_cases() -> list[tuple[str, Module, np.ndarray]]:
    """(name, module, input) triples covering every layer type, small and in float64.

    Inputs of ReLU-like and max-pool layers are kept away from kinks and ties so that
    central differences do not straddle them.
    """
    from . import nn
    from .rng import manual_seed

    manual_seed(0)
    rng = np.random.default_rng(0)

    def x(*shape: int, margin: float = 0.0) -> np.ndarray:
        a = rng.standard_normal(shape)
        if margin:  # push values off 0 (ReLU) and off +-3 / 6 (hard sigmoid, ReLU6)
            for kink in (0.0, 3.0, -3.0, 6.0):
                near = np.abs(a - kink) < margin
                a[near] = kink + np.where(a[near] >= kink, margin, -margin)
        return a

    def distinct(
        *shape: int,
    ) -> np.ndarray:  # a permutation of well-separated values: no max-pool ties
        return (
            rng.permutation(np.arange(int(np.prod(shape)), dtype=np.float64)).reshape(shape) * 0.1
        )

    cases: list[tuple[str, Module, np.ndarray]] = [
        ("Conv2d 3x3 stride 2 pad 1", nn.Conv2d(3, 4, 3, 2, 1), x(2, 3, 6, 5)),
        (
            "Conv2d groups=2 dilation 2",
            nn.Conv2d(4, 6, (3, 2), 1, (2, 1), dilation=2, groups=2),
            x(2, 4, 6, 6),
        ),
        ("Conv2d 1x1 stride 2", nn.Conv2d(3, 5, 1, 2), x(2, 3, 5, 5)),
        ("Conv2d depthwise x2", nn.Conv2d(3, 6, 3, 1, 1, groups=3, bias=False), x(2, 3, 5, 4)),
        ("BatchNorm2d train", nn.BatchNorm2d(3), x(4, 3, 3, 3)),
        ("BatchNorm2d eval", nn.BatchNorm2d(3).eval(), x(2, 3, 3, 3)),
        ("Linear", nn.Linear(5, 4), x(3, 5)),
        ("ReLU", nn.ReLU(), x(2, 3, 3, margin=1e-3)),
        ("ReLU6", nn.ReLU6(), 4 * x(2, 3, 3, margin=1e-3)),
        ("Hardsigmoid", nn.Hardsigmoid(), 4 * x(2, 3, 3, margin=1e-3)),
        ("Hardswish", nn.Hardswish(), 4 * x(2, 3, 3, margin=1e-3)),
        ("Sigmoid", nn.Sigmoid(), x(2, 3, 3)),
        ("MaxPool2d 3 stride 2 pad 1", nn.MaxPool2d(3, 2, 1), distinct(2, 2, 5, 5)),
        ("AvgPool2d 2", nn.AvgPool2d(2), x(2, 2, 5, 4)),
        ("AdaptiveAvgPool2d (2, 3)", nn.AdaptiveAvgPool2d((2, 3)), x(2, 2, 5, 7)),
        ("Upsample size 7x5", nn.Upsample(size=(7, 5)), x(2, 2, 3, 3)),
        ("Flatten", nn.Flatten(), x(2, 2, 2, 2)),
        ("SqueezeExcite", nn.SqueezeExcite(8), x(2, 8, 3, 3)),
        ("GhostModule ratio 3, odd out", nn.GhostModule(4, 7, ratio=3), x(2, 4, 4, 4)),
        ("GhostModuleV2 (DFC attention)", nn.GhostModuleV2(4, 6), x(2, 4, 5, 6)),
        ("GhostBottleneck stride 2 + SE", nn.GhostBottleneck(4, 8, 6, 3, 2, 0.25), x(2, 4, 6, 6)),
        ("GhostModuleV3 (branches, gate)", nn.GhostModuleV3(4, 6, mode="shortcut"), x(2, 4, 5, 6)),
        ("GhostBottleneckV3 stride 2", nn.GhostBottleneckV3(4, 8, 6, 3, 2), x(2, 4, 6, 6)),
    ]
    return [(name, m.astype(np.float64), inp) for name, m, inp in cases]


def iter_layer_checks(
    tol: float = 1e-7, seed: int = 0, eps: float = 1e-6
) -> tuple[int, Iterator[tuple[str, GradcheckReport]]]:
    """``(number of layer types, generator of (name, GradcheckReport))``: the checks of
    `check_all_layers` one at a time, so a caller can show each as it finishes."""
    cases = _layer_cases()
    checks = ((name, check_module(m, inp, eps=eps, tol=tol, seed=seed)) for name, m, inp in cases)
    return len(cases), checks


def check_all_layers(
    tol: float = 1e-7, seed: int = 0, eps: float = 1e-6
) -> list[tuple[str, GradcheckReport]]:
    """Run ``check_module`` on every layer type; returns a list of (name, GradcheckReport).

    This is what ``ghostnp gradcheck`` prints. Each case is small (a few hundred
    parameters at most), so the whole list takes seconds.
    """
    return list(iter_layer_checks(tol=tol, seed=seed, eps=eps)[1])
