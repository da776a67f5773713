"""One module of checks per assignment, each exporting ``checks`` (a CheckList), plus
the helpers they share."""

from __future__ import annotations

import numpy as np

from ...gradcheck import check_function, check_module
from ...nn import BatchNorm2d, Module
from ..diagnose import common_feature, compare, error_mask
from ..grader import Fail

__all__ = [
    "gradient_check",
    "judge",
    "module_gradient_check",
    "module_runs",
    "op_runs",
    "out_size",
    "paired_modules",
    "pattern",
    "randomize",
    "rng",
    "run_module",
    "same_layout",
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


def gradient_check(forward, backward, cases, names, hints=None, wrt=None) -> str:
    """Run ghostnp's float64 gradient check of ``backward`` against ``forward`` (random
    upstream gradient) on each (inputs, kwargs) of ``cases``; Fail naming the gradients
    that disagree (``names[i]`` for input i; ``hints[name]`` says what that gradient
    should be). Returns a short note for a pass."""
    worst = 0.0
    for inputs, kwargs in cases:
        report = check_function(forward, backward, *inputs, wrt=wrt, **kwargs)
        checked = names if wrt is None else [names[i] for i in wrt]
        _verdict(report, checked, hints or {})
        worst = max(worst, report.max_error)
    return f"worst relative error {worst:.1e}"


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


def out_size(size: int, k: int, s: int, p: int) -> int:
    """PyTorch's output length of a window k moved by s over size padded by p."""
    return (size + 2 * p - k) // s + 1


def op_runs(ctx, cases, student, reference, r, names=("y", "dx", "dw", "db")) -> list:
    """Run a student's forward/backward pair and the library's on the same inputs.

    ``cases``: (case, inputs, kwargs); ``student``: a (forward, backward) pair called as
    ``forward(*inputs, **kwargs)`` and ``backward(dy, cache)``; ``reference()`` returns
    the library's pair and is called with the hiding lifted (the library's functions
    must be looked up then, not before). One random dy per case. Returns ``judge``'s runs: (case, got, expected), where got lacks
    the gradients when the student's output has the wrong shape.
    """
    runs = []
    for case, inputs, kwargs in cases:
        with ctx.reference():
            forward, backward = reference()
            y, cache = forward(*inputs, **kwargs)
            dy = r.standard_normal(y.shape)
            expected = dict(zip(names, (y, *backward(dy, cache)), strict=True))
        copies = [None if a is None else a.copy() for a in inputs]
        y, cache = student[0](*copies, **kwargs)
        got = {"y": y}
        if isinstance(y, np.ndarray) and y.shape == expected["y"].shape:
            what = getattr(student[1], "__name__", "backward")
            grads = unpack(what, student[1](dy.copy(), cache), len(names) - 1)
            got.update(zip(names[1:], grads, strict=True))
        runs.append((case, got, expected))
    return runs


def paired_modules(ctx, label, build_reference, build_student, r, training=True):
    """(student module, library module) with the same random float64 weights.

    ``build_reference()`` runs with the hiding lifted; the student's module must be a
    ghostnp Module with the reference's state-dict names and shapes (Fail otherwise,
    naming ``label``). Both end in training or eval mode as asked.
    """
    with ctx.reference():
        ref = randomize(build_reference().astype(np.float64), r)
    mine = build_student()
    if not isinstance(mine, Module):
        raise Fail(f"{label}: the class must subclass ghostnp.nn.Module")
    mine.astype(np.float64)
    same_layout(mine, ref, label)
    mine.load_state_dict(ref.state_dict())
    mine.train(training)
    ref.train(training)
    return mine, ref


def module_runs(ctx, cases, make_pair, r, variants=None) -> tuple:
    """Forward and backward of the student's module and the library's on the same random
    x and dy: ``cases`` are (case, input shape), ``make_pair(case)`` gives (mine, ref).

    ``variants(case, ref, x, dy)``, if given, returns {message: dx} of known mistakes computed
    with the library's module; a student's wrong dx that equals one fails with that
    message. Returns (judge's runs, the names of every compared array).
    """
    runs, names = [], ["y", "dx"]
    for case, shape in cases:
        mine, ref = make_pair(case)
        x = r.standard_normal(shape)
        with ctx.reference():
            dy = r.standard_normal(ref(x).shape)
            expected = run_module(ref, x, dy)
        got = run_module(mine, x, dy)
        names += [k for k in expected if k not in names]
        runs.append((case, got, expected))
        dx = got.get("dx")
        if variants is not None and isinstance(dx, np.ndarray) and dx.shape == x.shape:
            if error_mask(dx, expected["dx"]).any():
                with ctx.reference():
                    known = variants(case, ref, x, dy)
                for message, wrong in known.items():
                    if not error_mask(dx, wrong).any():
                        raise Fail(message)
    return runs, tuple(names)
