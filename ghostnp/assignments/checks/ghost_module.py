"""Checks of the ghost-module assignment: the channel bookkeeping, the members and their
state-dict names, the forward pass in both modes, the two paths of the intrinsic maps'
gradient, a gradient check, and agreement with ghostnp's GhostModule."""

from __future__ import annotations

import numpy as np

from ... import nn
from ..diagnose import array, compare, error_mask
from ..grader import CheckList, Fail
from . import judge, module_gradient_check, module_runs, paired_modules, rng, run_module

checks = CheckList()

# (inp, oup, kernel_size, ratio, dw_size, stride, relu), input shape
CONFIGS = [
    ((4, 7, 1, 3, 3, 1, True), (2, 4, 5, 5)),  # odd oup: the concat is cut from 9 to 7
    ((3, 6, 3, 2, 3, 2, False), (2, 3, 6, 7)),  # 3x3 primary conv, stride 2, no ReLU
    ((5, 8, 1, 4, 5, 1, True), (1, 5, 4, 4)),  # ratio 4, 5x5 cheap op
]

BOOKKEEPING = [
    ((16, 2), (8, 8)),
    ((7, 3), (3, 6)),
    ((5, 2), (3, 3)),
    ((1, 2), (1, 1)),
    ((12, 4), (3, 9)),
]


def _args(cfg) -> str:
    inp, oup, k, s, d, stride, relu = cfg
    return (
        f"GhostModule({inp}, {oup}, kernel_size={k}, ratio={s}, dw_size={d}, stride={stride}, "
        f"relu={relu})"
    )


def _pair(ctx, cfg, r, training=True):
    """(student module, ghostnp's module) with the same random weights, float64."""
    return paired_modules(
        ctx,
        _args(cfg),
        lambda: nn.GhostModule(*cfg),
        lambda: ctx.get("GhostModule")(*cfg),
        r,
        training,
    )


@checks.add("ghost_channels: intrinsic and ghost maps", points=1)
def bookkeeping(ctx):
    ghost_channels = ctx.get("ghost_channels")
    for (oup, ratio), expected in BOOKKEEPING:
        got = ghost_channels(oup, ratio)
        if tuple(int(v) for v in got) != expected:
            hint = ""
            if got[0] == oup // ratio:
                hint = ": round m up (ceil), or the module makes fewer than oup maps"
            raise Fail(f"ghost_channels({oup}, {ratio}) is {tuple(got)}, expected {expected}{hint}")
    return f"{len(BOOKKEEPING)} hand cases"


@checks.add("members: names, shapes, strides and groups", points=1)
def members(ctx):
    r = rng(1)
    for cfg, _ in CONFIGS:
        mine, ref = _pair(ctx, cfg, r)
        for path, theirs in ref.named_modules():
            if not isinstance(theirs, nn.Conv2d):
                continue
            conv = dict(mine.named_modules()).get(path)
            if not isinstance(conv, nn.Conv2d):
                raise Fail(f"{_args(cfg)}: {path} should be a Conv2d")
            for attr in ("stride", "padding", "groups"):
                if getattr(conv, attr) != getattr(theirs, attr):
                    raise Fail(
                        f"{_args(cfg)}: {path} has {attr} {getattr(conv, attr)}, expected "
                        f"{getattr(theirs, attr)} (the cheap operation is depthwise: groups = m, "
                        "stride 1, padding dw_size // 2; the primary conv has padding "
                        "kernel_size // 2 and the stride)"
                    )
        relus = [p for p, m in mine.named_modules() if isinstance(m, nn.ReLU)]
        if bool(relus) != cfg[6]:
            raise Fail(f"{_args(cfg)} should {'' if cfg[6] else 'not '}have ReLUs, found {relus}")
    return f"{len(CONFIGS)} configurations"


@checks.add("forward: output shape", points=1, needs="members: names, shapes, strides and groups")
def forward_shape(ctx):
    r = rng(2)
    for cfg, shape in CONFIGS:
        mine, ref = _pair(ctx, cfg, r)
        x = r.standard_normal(shape)
        with ctx.reference():
            expected = ref(x).shape
        array(f"{_args(cfg)} on x {shape}", mine(x), expected, np.float64)
    return f"{len(CONFIGS)} configurations"


def _channel_regions(m):
    def regions(case):
        (cfg, _), _ = case
        channel = np.arange(cfg[1]).reshape(1, -1, 1, 1)
        return [
            (
                channel < m(cfg),
                "only the intrinsic maps (the first m channels) are wrong: check primary_conv",
            ),
            (
                channel >= m(cfg),
                "only the ghost maps (channels m and on) are wrong: the cheap operation runs on "
                "the intrinsic maps x1, and [x1, x2] is cut to its first oup channels",
            ),
        ]

    return regions


def _m(cfg):
    return -(-cfg[1] // cfg[3])


def _describe(case) -> str:
    (cfg, shape), training = case
    return f"{_args(cfg)} on x {shape} in {'training' if training else 'eval'} mode"


FEATURES = [
    ("in eval mode", lambda c: not c[1]),
    ("in training mode", lambda c: c[1]),
    ("oup is not a multiple of ratio (the concat is cut)", lambda c: c[0][0][1] % c[0][0][3] != 0),
    ("the stride is 2", lambda c: c[0][0][5] == 2),
    ("relu is False", lambda c: not c[0][0][6]),
]


def _forward_runs(ctx, training, seed):
    r = rng(seed)
    runs = []
    for cfg, shape in CONFIGS:
        mine, ref = _pair(ctx, cfg, r, training)
        x = r.standard_normal(shape)
        with ctx.reference():
            expected = {"y": ref(x)}
        runs.append((((cfg, shape), training), {"y": mine(x.copy())}, expected))
    return runs


@checks.add(
    "forward: equals ghostnp's GhostModule, training mode", points=1, needs="forward: output shape"
)
def forward_train(ctx):
    runs = _forward_runs(ctx, True, 3)
    return judge(runs, ("y",), _describe, FEATURES, regions={"y": _channel_regions(_m)})


@checks.add(
    "forward: equals ghostnp's GhostModule, eval mode", points=1, needs="forward: output shape"
)
def forward_eval(ctx):
    runs = _forward_runs(ctx, False, 4)
    return judge(runs, ("y",), _describe, FEATURES, regions={"y": _channel_regions(_m)})


def _dx_variants(ref, x, dy):
    """dx of ghostnp's module with one of the intrinsic maps' two paths left out."""
    m, oup = ref.init_channels, ref.oup
    out = {}
    for name in ("without the cheap path", "without the direct path"):
        ref(x)
        dcat = np.zeros((dy.shape[0], m + ref.new_channels) + dy.shape[2:])
        dcat[:, :oup] = dy
        if name == "without the cheap path":
            dx1 = dcat[:, :m]
        else:
            dx1 = ref.cheap_operation.backward(dcat[:, m:])
        out[name] = ref.primary_conv.backward(dx1)
    return out


FAN_OUT = {
    "without the cheap path": (
        "dx misses the gradient that reaches the intrinsic maps through the cheap operation: "
        "x1 feeds both the output and cheap_operation, so dx1 = dcat[:, :m] + "
        "cheap_operation.backward(dcat[:, m:])"
    ),
    "without the direct path": (
        "dx misses the direct part of the intrinsic maps' gradient: x1 is also the first m "
        "channels of the output, so dx1 = dcat[:, :m] + cheap_operation.backward(dcat[:, m:])"
    ),
}


@checks.add(
    "backward: the intrinsic maps' gradient has both paths",
    points=1,
    needs="forward: equals ghostnp's GhostModule, training mode",
)
def fan_out(ctx):
    r = rng(5)
    cfg, shape = CONFIGS[0]
    mine, ref = _pair(ctx, cfg, r)
    m = _m(cfg)
    x = r.standard_normal(shape)
    for part, dy_mask in (("ghost", np.arange(cfg[1]) >= m), ("intrinsic", np.arange(cfg[1]) < m)):
        dy = r.standard_normal((shape[0], cfg[1]) + shape[2:]) * dy_mask.reshape(1, -1, 1, 1)
        with ctx.reference():
            expected = run_module(ref, x, dy)
            variants = _dx_variants(ref, x, dy)
        got = run_module(mine, x, dy)
        dx = array("dx", got.get("dx"), x.shape)
        if not error_mask(dx, expected["dx"]).any():
            continue
        for name, wrong in variants.items():
            if not error_mask(dx, wrong).any():
                raise Fail(f"with dy non-zero only on the {part} maps, {FAN_OUT[name]}")
        compare(f"dx for dy non-zero only on the {part} maps", dx, expected["dx"])
    return "dy on the ghost maps alone reaches x through the cheap operation"


@checks.add(
    "backward: gradient check",
    points=2,
    needs="forward: equals ghostnp's GhostModule, training mode",
)
def gradcheck(ctx):
    r = rng(6)
    note = ""
    for cfg, shape in CONFIGS[:2]:
        mine, _ = _pair(ctx, cfg, r)
        note = module_gradient_check(
            mine,
            r.standard_normal(shape),
            {
                "x": "dx = primary_conv.backward(dcat[:, :m] + cheap_operation.backward(dcat[:, m:]))"
            },
        )
    return note


@checks.add(
    "backward: dx and every parameter gradient equal ghostnp's",
    points=2,
    needs="forward: equals ghostnp's GhostModule, training mode",
)
def backward_reference(ctx):
    r = rng(7)
    cases = [(((cfg, shape), t), shape) for t in (True, False) for cfg, shape in CONFIGS]

    def variants(case, ref, x, dy):
        return {
            f"for {_args(case[0][0])}: {FAN_OUT[name]}": dx
            for name, dx in _dx_variants(ref, x, dy).items()
        }

    runs, names = module_runs(ctx, cases, lambda c: _pair(ctx, c[0][0], r, c[1]), r, variants)
    return judge(runs, names, _describe, FEATURES)
