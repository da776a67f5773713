"""One module of checks per assignment, each exporting ``checks`` (a CheckList), plus
the helpers they share."""

from __future__ import annotations

import numpy as np

from ...gradcheck import check_function, check_module
from ..diagnose import common_feature, compare, error_mask
from ..grader import Fail

__all__ = [
    "gradient_check",
    "judge",
    "module_gradient_check",
    "pattern",
    "rng",
    "unpack",
]


def rng(seed: int):
    """A generator for one check's random inputs (fixed, so a grade repeats exactly)."""
    return np.random.default_rng([seed, 0x6B6974])


def _names(names) -> str:
    return (
        ", ".join(names) if len(names) <= 4 else f"{', '.join(names[:3])} and {len(names) - 3} more"
    )


def _verdict(report, names, hints) -> None:
    failed = [(names[i], row) for i, row in enumerate(report.rows) if not row.passed]
    if not failed:
        return
    ok = [names[i] for i, row in enumerate(report.rows) if row.passed]
    name, row = failed[0]
    msg = (
        f"{_names([n for n, _ in failed])} disagree{'s' if len(failed) == 1 else ''} with "
        f"central differences (relative error of {name}: {row.rel_error:.2e}, tolerance "
        f"{report.tol:.0e})"
    )
    if ok:
        msg += f" while {_names(ok)} agree{'s' if len(ok) == 1 else ''}"
    hint = hints.get(name)
    raise Fail(msg + (f": {hint}" if hint else ""))


def gradient_check(forward, backward, inputs, names, hints=None, wrt=None, **kwargs) -> str:
    """Run ghostnp's float64 gradient check of ``backward`` against ``forward`` on
    ``inputs`` (random upstream gradient); Fail naming the gradients that disagree
    (``names[i]`` for input i; ``hints[name]`` says what that gradient should be).
    Returns a short note for a pass."""
    report = check_function(forward, backward, *inputs, wrt=wrt, **kwargs)
    checked = names if wrt is None else [names[i] for i in wrt]
    _verdict(report, checked, hints or {})
    return f"worst relative error {report.max_error:.1e}"


def module_gradient_check(module, x, hints=None) -> str:
    """ghostnp's float64 gradient check of a module's backward (x and every parameter);
    Fail naming what disagrees (``hints`` by name: "x", "weight", "0.bias", ...)."""
    report = check_module(module, x)
    _verdict(report, [r.name for r in report.rows], hints or {})
    return f"{len(report.rows)} arrays, worst relative error {report.max_error:.1e}"


def pattern(cases, features, describe, feature_hints=None) -> str:
    """'it fails exactly when <feature> (<hint>)' across cases, or the first failing case."""
    feature = common_feature(cases, features)
    if feature:
        hint = (feature_hints or {}).get(feature)
        return f"it fails exactly when {feature}" + (f" ({hint})" if hint else "")
    first = next(c for c, ok in cases if not ok)
    return f"it fails for {describe(first)}"


def unpack(what: str, value, count: int) -> tuple:
    """``value`` as a tuple of ``count`` items (a backward pass's gradients), else Fail."""
    if not isinstance(value, (tuple, list)) or len(value) != count:
        raise Fail(f"{what} should return a tuple of {count}, got {type(value).__name__}")
    return tuple(value)


def judge(runs, names, describe, features=(), feature_hints=None, hints=None, regions=None) -> str:
    """Compare the student's results with the library's over several cases.

    ``runs``: (case, got, expected) with dicts name -> array; a name missing from ``got``
    was not computed (an earlier output was already wrong), an expected None must be
    None. Fails on the first name (in ``names`` order) that is wrong in some case, with
    where it is wrong (``regions[name](case)``, see ``diagnose.compare``), which cases fail
    (``features``) and ``hints[name]``. Returns a note for a pass.
    """
    results = {n: [] for n in names}
    details = {}
    for case, got, expected in runs:
        for name in names:
            if name not in got or name not in expected:
                continue
            e, g = expected[name], got[name]
            if e is None:
                if g is not None:
                    raise Fail(
                        f"{name} should be None for {describe(case)}, got {type(g).__name__}"
                    )
                continue
            ok = isinstance(g, np.ndarray) and g.shape == e.shape and not error_mask(g, e).any()
            results[name].append((case, ok))
            if not ok and name not in details:
                details[name] = (case, g, e)
    for name in names:
        if name in details:
            case, g, e = details[name]
            hint = pattern(results[name], features, describe, feature_hints)
            if hints and name in hints:
                hint += f"; {hints[name]}"
            where = regions[name](case) if regions and name in regions else ()
            compare(f"{name} for {describe(case)}", g, e, regions=where, hint=hint)
            raise Fail(f"{name} is wrong for {describe(case)}: {hint}")
    shown = (
        ", ".join(names) if len(names) <= 4 else f"{', '.join(names[:2])} and {len(names) - 2} more"
    )
    return f"{shown} agree for {len(runs)} cases"


def randomize(module, r):
    """Give every BatchNorm2d of ``module`` random weight, bias and running statistics
    (fresh BNs are the identity at first, which would hide mistakes), in place."""
    from ...nn import BatchNorm2d

    for _, m in module.named_modules():
        if isinstance(m, BatchNorm2d):
            c = m.num_features
            m.weight.data = r.uniform(0.5, 1.5, c).astype(m.weight.data.dtype)
            m.bias.data = r.normal(0.0, 0.5, c).astype(m.bias.data.dtype)
            m.running_mean = r.normal(0.0, 0.5, c).astype(m.running_mean.dtype)
            m.running_var = r.uniform(0.5, 2.0, c).astype(m.running_var.dtype)
    return module


def run_module(module, x, dy) -> dict:
    """Forward x and backward dy through ``module``: {"y", "dx", "grad <name>", ...}, the
    parameter gradients by their state-dict names."""
    y = module(x.copy())
    out = {"y": y}
    if isinstance(y, np.ndarray) and y.shape == dy.shape:
        module.zero_grad()
        out["dx"] = module.backward(dy.copy())
        for name, p in module.named_parameters():
            out[f"grad {name}"] = p.grad
    return out


def same_layout(student, reference, what: str) -> None:
    """Fail unless the student's module has the reference's state-dict names and shapes."""
    mine = {k: np.shape(v) for k, v in student.state_dict().items()}
    theirs = {k: np.shape(v) for k, v in reference.state_dict().items()}
    problems = [f"missing {k} {theirs[k]}" for k in theirs if k not in mine]
    problems += [f"unexpected {k}" for k in mine if k not in theirs]
    problems += [
        f"{k} has shape {mine[k]}, expected {theirs[k]}"
        for k in theirs
        if k in mine and mine[k] != theirs[k]
    ]
    if problems:
        shown = "; ".join(problems[:4]) + ("; ..." if len(problems) > 4 else "")
        raise Fail(f"{what}: the state dict differs from GhostNet's names and shapes: {shown}")
