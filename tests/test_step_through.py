"""Step-through tools: the debugger recipe of the README and docs works as written,
backward hooks (values by hand, order, removal, replacement), ``record(..., grads=True)``
in a Ghost module, and the read-only ``last_cache``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ghostnp
from ghostnp import nn
from ghostnp.errors import LayerStateError, LayerValueError
from ghostnp.functional import Conv2dCache

ROOT = Path(__file__).resolve().parents[1]


# -- the debugger recipe ------------------------------------------------------------------
def debugger_script(page: Path) -> str:
    """The first Python block of the page's section 'Step through a backward pass in a
    debugger' (the README) or of the page itself (docs/stepping-through.md)."""
    text = page.read_text(encoding="utf-8")
    start = text.index("Step through a backward pass in a debugger")
    block = re.search(r"```python\n(.*?)```", text[start:], re.S)
    assert block, f"{page.name}: no python block after the section's title"
    return block[1]


def run_pdb(script: str, commands: list[str], tmp_path: Path) -> str:
    """Run ``script`` as step.py with ``commands`` typed at the pdb prompt; returns what
    pdb printed."""
    path = tmp_path / "step.py"
    path.write_text(script, encoding="utf-8")
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run(
        [sys.executable, str(path)],
        input="\n".join([*commands, "continue", ""]),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def stops(output: str) -> list[tuple[str, str]]:
    """(file, function) of every place pdb stopped, in order: its '> FILE(LINE)FUNC()' lines."""
    return re.findall(r"^(?:\(Pdb\) )*> (\S+?)\(\d+\)(\w+|<module>)\(\)", output, re.M)


@pytest.mark.parametrize("page", ["README.md", "docs/stepping-through.md"])
def test_step_from_model_backward_lands_in_the_layers_own_backward(page, tmp_path):
    script = debugger_script(ROOT / page)
    assert 'pdb.Pdb(skip=["ghostnp.nn._call"])' in script and 'use_backend("numpy")' in script
    places = stops(run_pdb(script, ["step", "next"], tmp_path))
    assert places[0] == (str(tmp_path / "step.py"), "<module>")
    ghost_py = str(ROOT / "ghostnp" / "nn" / "ghost.py")
    assert places[1:] == [(ghost_py, "backward"), (ghost_py, "backward")], places


def test_without_the_skip_setting_step_stops_in_the_call_bookkeeping(tmp_path):
    """The setting is what makes the difference: pdb's plain step stops in nn/_call.py."""
    script = debugger_script(ROOT / "docs/stepping-through.md")
    plain = script.replace('pdb.Pdb(skip=["ghostnp.nn._call"])', "pdb.Pdb()")
    assert plain != script
    places = stops(run_pdb(plain, ["step"], tmp_path))
    assert places[1] == (str(ROOT / "ghostnp" / "nn" / "_call.py"), "backward"), places


def test_a_breakpoint_in_a_reference_kernel_is_reached(tmp_path):
    """Under use_backend("numpy") the backward pass runs the readable kernels."""
    script = debugger_script(ROOT / "docs/stepping-through.md")
    out = run_pdb(script, ["break reference.depthwise_backward", "continue", "where"], tmp_path)
    reference = str(ROOT / "ghostnp" / "kernels" / "reference.py")
    assert (reference, "depthwise_backward") in stops(out), out[-3000:]


# -- backward hooks -----------------------------------------------------------------------
def tiny_mlp() -> nn.Sequential:
    """x (1, 2) -> Linear(2, 2) -> ReLU -> Linear(2, 1), weights chosen to add up by hand."""
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1)).astype(np.float64)
    model[0].weight.data = np.array([[1.0, 2.0], [-1.0, 1.0]])
    model[0].bias.data = np.zeros(2)
    model[2].weight.data = np.array([[3.0, -2.0]])
    model[2].bias.data = np.zeros(1)
    return model


X = np.array([[1.0, 1.0]])  # h = W1 x = (3, 0); relu: (3, 0); y = 3*3 - 2*0 = 9
DY = np.array([[1.0]])


def test_backward_hooks_see_the_gradients_in_and_out_child_first():
    model = tiny_mlp()
    calls = []
    for path, m in model.named_modules():
        m.register_full_backward_hook(
            lambda mod, gi, go, _p=path: calls.append((_p or "root", gi[0].copy(), go[0].copy()))
        )
    np.testing.assert_array_equal(model(X), [[9.0]])
    dx = model.backward(DY)
    # by hand: dL/d(relu out) = W2^T dy = (3, -2); relu passes where h > 0: (3, 0);
    # dx = W1^T (3, 0) = (3, 6)
    assert [c[0] for c in calls] == ["2", "1", "0", "root"]
    expected = {
        "2": ([[3.0, -2.0]], [[1.0]]),
        "1": ([[3.0, 0.0]], [[3.0, -2.0]]),
        "0": ([[3.0, 6.0]], [[3.0, 0.0]]),
        "root": ([[3.0, 6.0]], [[1.0]]),
    }
    for name, grad_input, grad_output in calls:
        np.testing.assert_array_equal(grad_input, expected[name][0], err_msg=name)
        np.testing.assert_array_equal(grad_output, expected[name][1], err_msg=name)
    np.testing.assert_array_equal(dx, [[3.0, 6.0]])


def test_hooks_of_one_module_run_in_order_and_a_replacement_flows_on():
    model = tiny_mlp()
    seen = []

    def double(module, grad_input, grad_output):
        seen.append(("double", grad_input[0].copy()))
        return (2.0 * grad_input[0],)

    def look(module, grad_input, grad_output):
        seen.append(("look", grad_input[0].copy()))  # sees the replacement

    model[1].register_full_backward_hook(double)
    model[1].register_full_backward_hook(look)
    model(X)
    dx = model.backward(DY)
    np.testing.assert_array_equal(seen[0][1], [[3.0, 0.0]])
    np.testing.assert_array_equal(seen[1][1], [[6.0, 0.0]])
    assert [s[0] for s in seen] == ["double", "look"]
    # the modules before the ReLU see the doubled gradient: dx = W1^T (6, 0), dW1 = (6, 0) x^T
    np.testing.assert_array_equal(dx, [[6.0, 12.0]])
    np.testing.assert_array_equal(model[0].weight.grad, [[6.0, 6.0], [0.0, 0.0]])
    np.testing.assert_array_equal(model[2].weight.grad, [[3.0, 0.0]])  # after the hook: unchanged


def test_parameter_gradients_are_accumulated_when_the_hook_runs():
    model = tiny_mlp()
    grads = []
    model[2].register_full_backward_hook(lambda m, gi, go: grads.append(m.weight.grad.copy()))
    model(X)
    model.backward(DY)
    np.testing.assert_array_equal(grads, [[[3.0, 0.0]]])  # dW2 = dy * relu(h)^T


def test_removing_a_hook_and_the_handle_as_a_context_manager():
    model = tiny_mlp()
    calls = []
    handle = model[0].register_full_backward_hook(lambda *a: calls.append("kept"))
    with model[0].register_full_backward_hook(lambda *a: calls.append("block")):
        model(X)
        model.backward(DY)
    assert calls == ["kept", "block"]
    model(X)
    model.backward(DY)
    assert calls == ["kept", "block", "kept"]
    handle.remove()
    handle.remove()  # twice is harmless
    model(X)
    model.backward(DY)
    assert calls == ["kept", "block", "kept"]


def test_a_subclass_calling_its_parents_backward_runs_the_hooks_once(rng):
    """GhostModuleV2.backward calls GhostModule.backward, DFCAttention's calls
    Sequential's: each module's hook still runs once per backward pass."""
    model = nn.GhostModuleV2(4, 6).astype(np.float64)
    calls = []
    for m in (model, model.short_conv):
        m.register_full_backward_hook(lambda mod, gi, go: calls.append(type(mod).__name__))
    y = model(rng.standard_normal((2, 4, 6, 6)))
    dx = model.backward(np.ones_like(y))
    assert calls == ["DFCAttention", "GhostModuleV2"]
    assert dx.shape == (2, 4, 6, 6)


def test_a_loss_hook_gets_an_empty_grad_output(rng):
    criterion = nn.CrossEntropyLoss()
    seen = []
    criterion.register_full_backward_hook(lambda m, gi, go: seen.append((gi[0].shape, go)))
    criterion(rng.standard_normal((3, 5)), np.array([0, 4, 2]))
    criterion.backward()
    assert seen == [((3, 5), ())]


def test_a_hook_that_returns_something_else_is_an_error_naming_the_module():
    model = tiny_mlp()
    model[1].register_full_backward_hook(lambda m, gi, go: gi[0])  # an array, not a tuple
    model(X)
    with pytest.raises(LayerValueError, match=r"^1 \(ReLU\): backward hook .*a tuple of one"):
        model.backward(DY)
    model = tiny_mlp()
    model[1].register_full_backward_hook(lambda m, gi, go: (np.zeros((1, 3)),))
    model(X)
    with pytest.raises(LayerValueError, match=r"shape \(1, 3\); expected \(1, 2\)"):
        model.backward(DY)


def test_errors_inside_backward_still_name_the_module():
    model = tiny_mlp()
    model(X)
    with pytest.raises(LayerValueError, match=r"^2 \(Linear\): "):
        model.backward(np.ones((1, 5)))


# -- record(..., grads=True) in a Ghost module --------------------------------------------
def ghost_by_hand() -> nn.GhostModule:
    """A Ghost module with one intrinsic and one ghost map that a reader can follow:
    primary conv x1 = 2 x, cheap op a 3x3 depthwise kernel whose middle row is (5, 3, 7)
    (the other rows meet only padding on a one-row input), batch norms the identity."""
    g = nn.GhostModule(1, 2, kernel_size=1, ratio=2, dw_size=3, relu=False).astype(np.float64)
    g.primary_conv[0].weight.data = np.full((1, 1, 1, 1), 2.0)
    w = np.zeros((1, 1, 3, 3))
    w[0, 0, 1] = [5.0, 3.0, 7.0]
    g.cheap_operation[0].weight.data = w
    for bn in (g.primary_conv[1], g.cheap_operation[1]):
        bn.eps = 0.0  # with mean 0 and variance 1 in eval mode: y = x exactly
    return g.eval()


def test_record_grads_shows_both_paths_of_the_intrinsic_maps():
    g = ghost_by_hand()
    x = np.array([1.0, 2.0, 3.0]).reshape(1, 1, 1, 3)
    dy = np.array([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]]).reshape(1, 2, 1, 3)
    with nn.record(g, ["", "primary_conv", "cheap_operation"], grads=True) as rec:
        y = g(x)
        dx = g.backward(dy)
    # forward: x1 = 2x = (2, 4, 6); x2[q] = 5 x1[q-1] + 3 x1[q] + 7 x1[q+1] = (34, 64, 38)
    np.testing.assert_array_equal(rec["primary_conv"].ravel(), [2.0, 4.0, 6.0])
    np.testing.assert_array_equal(rec["cheap_operation"].ravel(), [34.0, 64.0, 38.0])
    np.testing.assert_array_equal(y.ravel(), [2.0, 4.0, 6.0, 34.0, 64.0, 38.0])
    # backward: through the slice x1 gets dy's first channel, (1, 1, 1); through the cheap
    # op the ghost gradient (1, 0, 0) goes back through the kernel: (3, 7, 0)
    via_slice = rec.grad_outputs[""][:, :1]
    via_cheap = rec.grads["cheap_operation"]
    np.testing.assert_array_equal(via_slice.ravel(), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(via_cheap.ravel(), [3.0, 7.0, 0.0])
    dx1 = rec.grad_outputs["primary_conv"]
    np.testing.assert_array_equal(dx1.ravel(), [4.0, 8.0, 1.0])
    np.testing.assert_array_equal(dx1, via_slice + via_cheap)
    # dx = 2 dx1; the primary weight's gradient is sum(dx1 * x) = 4 + 16 + 3
    np.testing.assert_array_equal(rec.grads[""], dx)
    np.testing.assert_array_equal(dx.ravel(), [8.0, 16.0, 2.0])
    assert g.primary_conv[0].weight.grad.item() == 23.0


def test_record_grads_in_a_whole_ghostnet_and_hooks_gone_afterwards(rng):
    model = ghostnp.models.ghostnet(0.25, num_classes=3).astype(np.float64)
    path = ghostnp.nn.ghost_paths(model)[2]
    ghost = dict(model.named_modules())[path]
    with nn.record(
        model, [path, f"{path}.primary_conv", f"{path}.cheap_operation"], grads=True
    ) as rec:
        y = model(rng.standard_normal((2, 3, 32, 32)))
        model.backward(rng.standard_normal(y.shape))
    m = ghost.init_channels
    dx1 = rec.grad_outputs[f"{path}.primary_conv"]
    via_slice = rec.grad_outputs[path][:, :m]
    via_cheap = rec.grads[f"{path}.cheap_operation"]
    assert dx1.shape == via_slice.shape == via_cheap.shape
    np.testing.assert_array_equal(dx1, via_slice + via_cheap)
    assert np.abs(via_cheap).max() > 0 and np.abs(via_slice).max() > 0
    assert not ghost._backward_hooks and not ghost._forward_hooks
    with nn.record(model, path) as plain:  # without grads: no backward hook at all
        assert not ghost._backward_hooks
    assert plain == {} and plain.grads == {}


# -- last_cache ---------------------------------------------------------------------------
def test_last_cache_is_a_read_only_view_of_what_backward_uses(rng):
    conv = nn.Conv2d(2, 3, 3, padding=1).astype(np.float64)
    assert conv.last_cache is None  # before the first forward
    x = rng.standard_normal((1, 2, 4, 4))
    conv(x)
    cache = conv.last_cache
    assert isinstance(cache, Conv2dCache)
    assert np.shares_memory(cache.cols, conv._cache.cols)  # a view, not a copy
    with pytest.raises(ValueError, match="read-only"):
        cache.cols[...] = 0.0
    with pytest.raises(ValueError, match="read-only"):
        cache.w[0, 0, 0, 0] = 1.0
    assert conv._cache.cols.flags.writeable  # the module's own arrays are untouched
    dy = rng.standard_normal((1, 3, 4, 4))
    expected = ghostnp.functional.conv2d_backward(dy, conv._cache)[0]
    np.testing.assert_array_equal(conv.backward(dy), expected)


def test_last_cache_of_composites_and_under_no_grad(rng):
    model = nn.GhostModuleV2(4, 6).astype(np.float64)
    x = rng.standard_normal((2, 4, 6, 6))
    model(x)
    kept = model.last_cache
    assert set(kept) == {"caches", "gate"}  # the Ghost module's caches and the gate
    y, g = kept["gate"]
    assert not y.flags.writeable and not g.flags.writeable
    assert nn.Sequential(nn.ReLU()).last_cache is None  # keeps nothing itself
    bn = model.primary_conv[1]
    assert bn.last_cache.xhat.shape == (2, 3, 6, 6)
    with ghostnp.no_grad():
        model(x)
    assert model.last_cache is None and bn.last_cache is None
    with pytest.raises(LayerStateError, match="no_grad"):
        model.backward(np.ones((2, 6, 6, 6)))
