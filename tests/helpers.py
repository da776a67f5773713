"""Comparison helpers shared by the test modules."""

from __future__ import annotations

import numpy as np

# what `ghostnp train --json` reports per epoch (the design's contract)
EPOCH_KEYS = {"epoch", "lr", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "seconds"}


# the worst relative difference seen per kind of comparison (assert_close(..., kind=...)),
# for a test module that reports it
WORST: dict[str, float] = {}


def rel_diff(a, b) -> float:
    """max|a - b| / max(1, max|b|): relative to the reference b's scale, absolute near 0;
    0.0 for empty arrays."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if b.size == 0:
        return 0.0
    return float(np.max(np.abs(a - b)) / max(1.0, float(np.max(np.abs(b)))))


def assert_close(a, b, what: str = "", *, rtol: float = 1e-10, kind: str | None = None) -> float:
    """Assert that ``a`` (ours) has the shape of ``b`` (the reference) and that
    max|a - b| <= rtol * max(1, max|b|); ``what`` names the compared value in the message.
    With ``kind``, the difference also updates ``WORST[kind]``. Returns the difference."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, f"{what}: shape {a.shape} != expected {b.shape}"
    err = rel_diff(a, b)
    if kind is not None:
        WORST[kind] = max(WORST.get(kind, 0.0), err)
    assert err <= rtol, f"{what}: relative difference {err:.3e} > {rtol:.0e}"
    return err


def assert_adjoint(lhs: float, rhs: float, scale: float, tol: float = 1e-12) -> None:
    """lhs == rhs up to rounding, measured against ``scale`` (a sum of |terms|)."""
    assert abs(lhs - rhs) <= tol * max(scale, 1e-300), (lhs, rhs, scale)


def inner(a, b) -> float:
    """The Euclidean inner product <a, b> of two arrays of one shape."""
    return float(np.vdot(a, b))


def out_size(size: int, k: int, s: int, p: int, d: int) -> int:
    """PyTorch's output length of a convolution or pooling window along one axis."""
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def torch_conv(torch, x, w, b, dy, stride=1, padding=0, dilation=1, groups=1):
    """PyTorch's output and gradients for the same convolution, as float64 ndarrays."""
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    tb = None if b is None else torch.tensor(b, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tw, tb, stride, padding, dilation, groups)
    ty.backward(torch.tensor(dy))
    db = None if tb is None else tb.grad.numpy()
    return ty.detach().numpy(), tx.grad.numpy(), tw.grad.numpy(), db


def draw_window(draw, st, kmax: int) -> dict:
    """A drawn window geometry and the smallest inputs it fits (1x1 inputs when possible):
    kernel, stride, dilation and padding pairs, and the input height and width."""
    kh, kw = draw(st.integers(1, kmax)), draw(st.integers(1, kmax))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dh, dw = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    hmin = max(1, dh * (kh - 1) + 1 - 2 * ph)
    wmin = max(1, dw * (kw - 1) + 1 - 2 * pw)
    return dict(
        kernel=(kh, kw),
        geom=dict(stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw)),
        hw=(draw(st.integers(hmin, hmin + 5)), draw(st.integers(wmin, wmin + 5))),
    )


def draw_conv_arrays(case):
    """x, w and (if the case has one) b, float64, from a drawn convolution case."""
    r = np.random.default_rng(case["seed"])
    x = r.standard_normal(case["x_shape"])
    w = r.standard_normal(case["w_shape"])
    b = r.standard_normal(case["w_shape"][0]) if case["bias"] else None
    return x, w, b


def check_conv_shape_and_adjoint(forward, backward, case) -> None:
    """One drawn case of a convolution op: PyTorch's output size, and the adjoint
    identities <y, g> = <x, dx> = <w, dw> for a random g."""
    from ghostnp.kernels import use_backend  # inside: helpers stay import-light

    x, w, _ = draw_conv_arrays(case)
    geom = case["geom"]
    with use_backend(case["backend"]):
        y, cache = forward(x, w, None, **geom)
        (kh, kw), (sh, sw) = w.shape[2:], geom["stride"]
        (ph, pw), (dh, dw) = geom["padding"], geom["dilation"]
        n, _, h, wd = x.shape
        assert y.shape == (n, w.shape[0], out_size(h, kh, sh, ph, dh), out_size(wd, kw, sw, pw, dw))
        g = np.random.default_rng(case["seed"] + 1).standard_normal(y.shape)
        dx, dw_, _ = backward(g, cache)
    scale = float(np.sum(np.abs(y * g)))
    assert_adjoint(inner(y, g), inner(x, dx), scale)
    assert_adjoint(inner(y, g), inner(w, dw_), scale)


def conv_vs_torch(forward, backward, torch_op, torch, x, w, b, geom, dy_rng):
    """Run a convolution op forward and backward (dy drawn from ``dy_rng``) and compare the
    output and every gradient with ``torch_op`` at 1e-10; returns (y, dx, dw)."""
    from ghostnp.gradcheck import rel_error

    y, cache = forward(x, w, b, **geom)
    dy = dy_rng.standard_normal(y.shape)
    dx, dw, db = backward(dy, cache)
    ty, tdx, tdw, tdb = torch_op(torch, x, w, b, dy, **geom)
    assert y.shape == ty.shape
    pairs = [("y", y, ty), ("dx", dx, tdx), ("dw", dw, tdw)]
    if b is not None:
        pairs.append(("db", db, tdb))
    for name, ours, theirs in pairs:
        assert rel_error(ours, theirs) < 1e-10, name
    return y, dx, dw


def check_conv_matches_torch(forward, backward, torch_op, torch, case) -> None:
    """One drawn case: output and every gradient against ``torch_op`` (float64, 1e-10)."""
    from ghostnp.kernels import use_backend

    x, w, b = draw_conv_arrays(case)
    with use_backend(case["backend"]):
        dy_rng = np.random.default_rng(case["seed"] + 1)
        conv_vs_torch(forward, backward, torch_op, torch, x, w, b, case["geom"], dy_rng)


def run_cli(args, cwd, env=None, timeout=600, **popen):
    """Run ``ghostnp ARGS`` (as ``python -m ghostnp``) in ``cwd``; returns the
    CompletedProcess with text stdout and stderr. ``env`` entries are added to the
    current environment (a value of None removes the variable)."""
    import os
    import subprocess
    import sys

    full = dict(os.environ, MPLBACKEND="Agg")
    for k, v in (env or {}).items():
        if v is None:
            full.pop(k, None)
        else:
            full[k] = v
    return subprocess.run(
        [sys.executable, "-m", "ghostnp", *map(str, args)],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
        **popen,
    )


def one_line_error(result, command: str) -> str:
    """Assert a CLI run ended in exactly one line on stderr, ``ghostnp COMMAND: error: ...``,
    exit code 2 and no traceback; returns that line."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"ghostnp {command}: error: "), lines[0]
    return lines[0]


# ----------------------------------------------------------------------------------
# the checks shared by the convolution ops (conv2d and depthwise_conv2d): each takes the
# op's forward and backward and one configuration (x, w, b or None, geometry)
# ----------------------------------------------------------------------------------


def check_adjoint(forward, backward, x, w, b, geom, rng) -> None:
    """<y, g> = <x, dx> = <w, dw> (y is linear in x and in w separately), and with a bias
    <y_b - y, g> = <b, db>."""
    y, cache = forward(x, w, None, **geom)
    g = rng.standard_normal(y.shape)
    dx, dw, _ = backward(g, cache)
    scale = float(np.sum(np.abs(y) * np.abs(g)))
    assert_adjoint(inner(y, g), inner(x, dx), scale)  # <conv(x), g> = <x, conv_x^T g>
    assert_adjoint(inner(y, g), inner(w, dw), scale)  # <conv(w), g> = <w, conv_w^T g>
    if b is not None:
        yb, cache_b = forward(x, w, b, **geom)
        db = backward(g, cache_b)[2]
        assert_adjoint(inner(yb - y, g), inner(b, db), float(np.sum(np.abs((yb - y) * g))))


def check_gradcheck(forward, backward, x, w, b, geom, backend="numpy") -> None:
    """Central differences in float64 for every input, below 1e-7.

    On the NumPy backend by default: a check makes hundreds of tiny calls, and the Numba
    kernels are tied to these by the backend-equality tests in test_kernels.py."""
    from ghostnp.gradcheck import check_function
    from ghostnp.kernels import use_backend

    with use_backend(backend):
        report = check_function(forward, backward, x, w, b, tol=1e-7, **geom)
    assert len(report.rows) == (3 if b is not None else 2)
    report.assert_ok()


def check_float32_matches_torch(forward, backward, torch_op, torch, x, w, b, geom, rng) -> None:
    """In float32 every result stays float32 and matches PyTorch to 1e-5."""
    from ghostnp.gradcheck import rel_error

    x, w, b = x.astype(np.float32), w.astype(np.float32), b.astype(np.float32)
    y, cache = forward(x, w, b, **geom)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    grads = backward(dy, cache)
    assert y.dtype == np.float32 and all(gr.dtype == np.float32 for gr in grads)
    ref = torch_op(torch, x, w, b, dy, **geom)
    for ours, theirs in zip((y, *grads), ref, strict=True):
        assert rel_error(ours, theirs) < 1e-5
