"""Checks of the bottleneck assignment: squeeze-and-excite (names, a hand example, a
gradient check), the Ghost bottleneck (structure, forward, gradient check, backward with
its two branches) and a small GhostNet end to end against ghostnp's."""

from __future__ import annotations

import numpy as np

from ... import models, nn
from ..diagnose import array, compare, error_mask
from ..grader import CheckList, Fail
from . import judge, module_gradient_check, module_runs, paired_modules, rng, run_module

checks = CheckList()

SE_WIDTHS = [16, 72, 120, 20]  # reduced to 4, 20, 32 and 8 channels by make_divisible

# (in_chs, mid_chs, out_chs, dw_kernel_size, stride, se_ratio), input shape
BLOCKS = [
    ((8, 16, 8, 3, 1, 0.0), (2, 8, 5, 5)),  # identity shortcut
    ((6, 12, 8, 3, 2, 0.0), (2, 6, 6, 7)),  # stride 2: conv_dw, and a conv shortcut
    ((8, 20, 8, 5, 1, 0.25), (2, 8, 4, 4)),  # squeeze-and-excite, identity shortcut
    ((8, 24, 12, 3, 1, 0.25), (1, 8, 5, 5)),  # width changes at stride 1: conv shortcut
]

# a GhostNet small enough to check in a blink, with every kind of block
TINY_CFG = [
    [[3, 8, 8, 0, 1]],
    [[3, 16, 12, 0, 2]],
    [[5, 24, 12, 0.25, 1]],
    [[3, 24, 16, 0.25, 2], [3, 20, 16, 0, 1]],
]
TINY_INPUT = (2, 3, 32, 32)


def _block_args(cfg) -> str:
    i, m, o, k, s, se = cfg
    return f"GhostBottleneck({i}, {m}, {o}, dw_kernel_size={k}, stride={s}, se_ratio={se})"


def _build(ctx, name, args, r, training=True):
    """(student module, ghostnp's module of the same name) with the same random float64
    weights."""
    label = f"{name}{tuple(args)}" if name != "GhostBottleneck" else _block_args(args)
    return paired_modules(
        ctx, label, lambda: getattr(nn, name)(*args), lambda: ctx.get(name)(*args), r, training
    )


@checks.add("SqueezeExcite: reduced width and member names", points=1)
def se_structure(ctx):
    r = rng(1)
    for c in SE_WIDTHS:
        _build(ctx, "SqueezeExcite", (c,), r)
    return f"{len(SE_WIDTHS)} widths"


@checks.add(
    "SqueezeExcite: hand example (gate = hard_sigmoid of the bias)",
    points=1,
    needs="SqueezeExcite: reduced width and member names",
)
def se_hand(ctx):
    r = rng(2)
    mine, ref = _build(ctx, "SqueezeExcite", (4,), r)
    sd = ref.state_dict()
    sd["conv_expand.weight"] = np.zeros_like(sd["conv_expand.weight"])
    sd["conv_expand.bias"] = np.array([0.0, 3.0, -3.0, 1.5])
    mine.load_state_dict(sd)
    x = r.standard_normal((2, 4, 3, 3))
    # hard_sigmoid(z) = relu6(z + 3) / 6: 0 -> 0.5, 3 -> 1, -3 -> 0, 1.5 -> 0.75
    expected = x * np.array([0.5, 1.0, 0.0, 0.75]).reshape(1, 4, 1, 1)
    compare(
        "SE output when conv_expand has zero weights and biases [0, 3, -3, 1.5]",
        mine(x),
        expected,
        hint="the gate is hard_sigmoid(z) = relu6(z + 3) / 6 of conv_expand's output, per channel",
    )
    return "gates 0.5, 1, 0, 0.75"


@checks.add(
    "SqueezeExcite: gradient check",
    points=1,
    needs="SqueezeExcite: hand example (gate = hard_sigmoid of the bias)",
)
def se_gradcheck(ctx):
    r = rng(3)
    mine, _ = _build(ctx, "SqueezeExcite", (8,), r)
    return module_gradient_check(
        mine,
        r.standard_normal((2, 8, 3, 3)),
        {
            "x": (
                "x is used twice, in the product x * gate and (through the mean) in the gate: "
                "dx = dy * gate + avg_pool.backward(the gradient that reaches the mean)"
            )
        },
    )


@checks.add("GhostBottleneck: members and state-dict names", points=1)
def block_structure(ctx):
    r = rng(4)
    for cfg, _ in BLOCKS:
        mine, ref = _build(ctx, "GhostBottleneck", cfg, r)
        mods = dict(mine.named_modules())
        for path, theirs in ref.named_modules():
            if isinstance(theirs, nn.Conv2d):
                conv = mods.get(path)
                for attr in ("stride", "padding", "groups"):
                    if getattr(conv, attr, None) != getattr(theirs, attr):
                        raise Fail(
                            f"{_block_args(cfg)}: {path} has {attr} {getattr(conv, attr, None)}, "
                            f"expected {getattr(theirs, attr)}"
                        )
    return f"{len(BLOCKS)} configurations"


def _describe(case) -> str:
    (cfg, shape), training = case
    return f"{_block_args(cfg)} on x {shape} in {'training' if training else 'eval'} mode"


FEATURES = [
    ("the stride is 2", lambda c: c[0][0][4] == 2),
    ("there is squeeze-and-excite", lambda c: c[0][0][5] > 0),
    (
        "the shortcut is a convolution",
        lambda c: c[0][0][0] != c[0][0][2] or c[0][0][4] != 1,
    ),
    ("the shortcut is the identity", lambda c: c[0][0][0] == c[0][0][2] and c[0][0][4] == 1),
    ("in eval mode", lambda c: not c[1]),
]


@checks.add(
    "GhostBottleneck: forward equals ghostnp's",
    points=1,
    needs="GhostBottleneck: members and state-dict names",
)
def block_forward(ctx):
    r = rng(5)
    runs = []
    for training in (True, False):
        for cfg, shape in BLOCKS:
            mine, ref = _build(ctx, "GhostBottleneck", cfg, r, training)
            x = r.standard_normal(shape)
            with ctx.reference():
                expected = {"y": ref(x)}
            runs.append((((cfg, shape), training), {"y": mine(x.copy())}, expected))
    return judge(runs, ("y",), _describe, FEATURES)


@checks.add(
    "GhostBottleneck: gradient check", points=2, needs="GhostBottleneck: forward equals ghostnp's"
)
def block_gradcheck(ctx):
    r = rng(6)
    note = ""
    for cfg, shape in (((4, 8, 6, 3, 2, 0.25), (2, 4, 6, 6)), ((4, 8, 4, 3, 1, 0.0), (2, 4, 4, 4))):
        mine, _ = _build(ctx, "GhostBottleneck", cfg, r)
        note = module_gradient_check(
            mine,
            r.standard_normal(shape),
            {
                "x": (
                    "x feeds both the main path and the shortcut: dx = (main path backward) + "
                    "shortcut.backward(dy)"
                )
            },
        )
    return note


def _branches(ref, x, dy):
    """dx of ghostnp's block through the main path alone and through the shortcut alone."""
    ref(x)
    dh = dy
    for m in reversed(ref._main()):
        dh = m.backward(dh)
    ref(x)
    return {"the main path": dh, "the shortcut": ref.shortcut.backward(dy)}


@checks.add(
    "GhostBottleneck: dx and every parameter gradient equal ghostnp's",
    points=1,
    needs="GhostBottleneck: forward equals ghostnp's",
)
def block_backward(ctx):
    r = rng(7)
    cases = [(((cfg, shape), t), shape) for t in (True, False) for cfg, shape in BLOCKS]

    def variants(case, ref, x, dy):
        return {
            f"{_block_args(case[0][0])}: dx is the gradient through {branch} alone: x feeds "
            "both the main path and the shortcut, so dx is the sum of both": dx
            for branch, dx in _branches(ref, x, dy).items()
        }

    runs, names = module_runs(
        ctx, cases, lambda c: _build(ctx, "GhostBottleneck", c[0][0], r, c[1]), r, variants
    )
    return judge(runs, names, _describe, FEATURES)


def _net_pair(ctx, r, training):
    kwargs = dict(width=1.0, num_classes=5, dropout=0.0, in_chans=3, cfg=TINY_CFG)
    return paired_modules(
        ctx,
        "GhostNet on a small stage table",
        lambda: models.GhostNet(**kwargs),
        lambda: ctx.get("GhostNet")(**kwargs),
        r,
        training,
    )


def _net_describe(training) -> str:
    return f"a small GhostNet on x {TINY_INPUT} in {'training' if training else 'eval'} mode"


@checks.add(
    "GhostNet: state dict and forward equal ghostnp's (small stage table)",
    points=1,
    needs="GhostBottleneck: forward equals ghostnp's",
)
def net_forward(ctx):
    r = rng(8)
    runs = []
    for training in (True, False):
        mine, ref = _net_pair(ctx, r, training)
        x = r.standard_normal(TINY_INPUT)
        with ctx.reference():
            expected = {"y": ref(x)}
        y = array("GhostNet's logits", mine(x.copy()), expected["y"].shape)
        runs.append((training, {"y": y}, expected))
    return judge(runs, ("y",), _net_describe, [("in eval mode", lambda t: not t)])


@checks.add(
    "GhostNet: backward, dx and every parameter gradient",
    points=1,
    needs="GhostNet: state dict and forward equal ghostnp's (small stage table)",
)
def net_backward(ctx):
    r = rng(9)
    runs, names = [], ["y", "dx"]
    for training in (True, False):
        mine, ref = _net_pair(ctx, r, training)
        x = r.standard_normal(TINY_INPUT)
        dy = r.standard_normal((TINY_INPUT[0], 5))
        with ctx.reference():
            expected = run_module(ref, x, dy)
        got = run_module(mine, x, dy)
        names += [k for k in expected if k not in names]
        runs.append((training, got, expected))
        _locate(got, expected, _net_describe(training))
    return judge(runs, tuple(names), _net_describe, [("in eval mode", lambda t: not t)])


def _locate(got, expected, where) -> None:
    """Fail naming where, going backward through the network, the gradient goes wrong.

    A chain's backward pass passes each module's dx on to the module before it, so one
    wrong dx spoils every parameter gradient before it (in forward order) and none
    after it: the last wrong parameter gradient and the first right one after it frame
    the module whose backward is wrong."""
    params = [k for k in expected if k.startswith("grad ")]
    ok = []
    for k in params:
        g = got.get(k)
        ok.append(
            isinstance(g, np.ndarray)
            and g.shape == expected[k].shape
            and not error_mask(g, expected[k]).any()
        )
    if all(ok):
        return
    last_wrong = max(i for i, good in enumerate(ok) if not good)
    module = params[last_wrong][len("grad ") :].rsplit(".", 1)[0]
    if last_wrong == len(params) - 1:
        raise Fail(f"{where}: the gradient of {module}, the last layer, is wrong")
    after = params[last_wrong + 1][len("grad ") :].rsplit(".", 1)[0]
    raise Fail(
        f"{where}: going backward, the parameter gradients are right as far as {after} and "
        f"wrong from {module} on, so the dx handed on between those two modules is wrong "
        "(a block's backward, or a member of it)"
    )
