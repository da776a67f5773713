"""Checks of the ghostify assignment: which convs can become Ghost modules, ghostify on
small models and on the paper's CIFAR networks, the ablation of s and d, the SGD
update, and a training epoch against a reference loop."""

from __future__ import annotations

import numpy as np

from ... import models, nn, optim
from ..diagnose import compare
from ..grader import CheckList, Fail
from . import rng

checks = CheckList()


def _convs():
    """(description, conv, replaceable?) for the rule's cases."""
    return [
        ("Conv2d(4, 8, 3, padding=1)", nn.Conv2d(4, 8, 3, 1, 1), True),
        ("Conv2d(4, 8, 3, stride=2, padding=1)", nn.Conv2d(4, 8, 3, 2, 1), True),
        ("Conv2d(4, 8, 1)", nn.Conv2d(4, 8, 1), True),
        ("Conv2d(4, 8, 5, padding=2)", nn.Conv2d(4, 8, 5, 1, 2), True),
        ("Conv2d(4, 8, 3) (no padding)", nn.Conv2d(4, 8, 3), False),
        (
            "Conv2d(4, 4, 3, padding=1, groups=4) (depthwise)",
            nn.Conv2d(4, 4, 3, 1, 1, groups=4),
            False,
        ),
        ("Conv2d(4, 8, (3, 1), padding=(1, 0))", nn.Conv2d(4, 8, (3, 1), 1, (1, 0)), False),
        ("Conv2d(4, 8, 2, padding=1) (even kernel)", nn.Conv2d(4, 8, 2, 1, 1), False),
        ("Conv2d(4, 8, 3, padding=2, dilation=2)", nn.Conv2d(4, 8, 3, 1, 2, dilation=2), False),
        ("Conv2d(4, 8, 3, stride=(2, 1), padding=1)", nn.Conv2d(4, 8, 3, (2, 1), 1), False),
    ]


@checks.add("replaceable: which convs a Ghost module can stand in for", points=1)
def rule(ctx):
    replaceable = ctx.get("replaceable")
    for what, conv, expected in _convs():
        if bool(replaceable(conv)) != expected:
            raise Fail(
                f"replaceable({what}) is {bool(replaceable(conv))}, expected {expected}: a Ghost "
                "module's primary conv is dense (groups 1, no dilation) with an odd square "
                "kernel, 'same' padding k // 2 and one stride for both axes"
            )
    return f"{len(_convs())} convolutions"


def _small_model():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, 1, 1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, 1, 1, groups=8, bias=False),
        nn.Conv2d(8, 12, 3, 2, 1),
        nn.ReLU(),
        nn.Sequential(nn.Conv2d(12, 16, 1), nn.Conv2d(16, 6, 5, 1, 2)),
        nn.Conv2d(6, 6, 3),
    )


def _ghost_summary(model) -> dict:
    """path -> (inp, oup, ratio, kernel, stride, dw_size, has ReLU) for each GhostModule."""
    out = {}
    for path, m in model.named_modules():
        if isinstance(m, nn.GhostModule):
            conv, cheap = m.primary_conv[0], m.cheap_operation[0]
            relu = any(isinstance(c, nn.ReLU) for _, c in m.named_modules())
            out[path] = (
                m.inp,
                m.oup,
                m.ratio,
                conv.kernel_size,
                conv.stride,
                cheap.kernel_size,
                relu,
            )
    return out


@checks.add(
    "ghostify: every replaceable conv but the first",
    points=2,
    needs="replaceable: which convs a Ghost module can stand in for",
)
def ghostify_small(ctx):
    ghostify = ctx.get("ghostify")
    for ratio, dw_size, dtype in ((2, 3, np.float32), (3, 5, np.float64)):
        mine = _small_model().astype(dtype)
        paths = ghostify(mine, ratio, dw_size)
        with ctx.reference():
            ref = models.ghostify(_small_model().astype(dtype), ratio, dw_size)
        expected_paths = list(ref.ghostified)
        if sorted(paths or []) != sorted(expected_paths):
            hint = ""
            if "0" in (paths or []):
                hint = ": keep the first conv, it sees the raw image (3 channels leave nothing to save)"
            elif set(paths or []) < set(expected_paths):
                hint = ": convs inside nested Sequentials count too (walk model.named_modules())"
            raise Fail(f"ghostify returned {paths!r}, expected {expected_paths!r}{hint}")
        got, want = _ghost_summary(mine), _ghost_summary(ref)
        for path in want:
            if got.get(path) != want[path]:
                raise Fail(
                    f"the Ghost module at {path} is (inp, oup, ratio, kernel, stride, dw_size, "
                    f"ReLU) = {got.get(path)}, expected {want[path]} (no ReLU inside: the layers "
                    "after the conv stay as they were)"
                )
        bad = [
            p
            for p, m in mine.named_modules()
            if p in want and m.primary_conv[0].weight.dtype != dtype
        ]
        if bad:
            raise Fail(
                f"the Ghost module at {bad[0]} is not {np.dtype(dtype)}, the replaced conv's dtype"
            )
        x = rng(1).standard_normal((2, 3, 9, 9)).astype(dtype)
        with ctx.reference():
            shape = ref(x).shape
        if mine(x).shape != shape:
            raise Fail(f"the ghostified model gives {mine(x).shape}, expected {shape}")
    return "paths, kernels, strides, ratio, dw_size, dtype"


@checks.add(
    "ghostify: Ghost-ResNet-56 and Ghost-VGG-16",
    points=1,
    needs="ghostify: every replaceable conv but the first",
)
def ghostify_cifar(ctx):
    ghostify = ctx.get("ghostify")
    notes = []
    for name in ("resnet56", "vgg16"):
        mine = getattr(models, name)()
        ghostify(mine)
        with ctx.reference():
            expected = getattr(models, f"ghost_{name}")().num_parameters()
        if mine.num_parameters() != expected:
            raise Fail(
                f"ghostified {name} has {mine.num_parameters():,} parameters, expected {expected:,}"
            )
        notes.append(f"{name} {expected:,}")
    return ", ".join(notes) + " parameters"


# (s, d) -> (params, MACs) of ghostnp's Ghost-VGG-16 on 32 x 32 inputs, as its ``summary``
# counts them (a test recomputes them); kept here so that the check traces three
# forward passes of VGG-16 rather than six
SETTINGS = {
    (2, 3): (7_396_778, 158_437_376),
    (4, 3): (3_728_954, 81_055_232),
    (2, 5): (7_430_058, 160_124_928),
}


@checks.add(
    "ablation: params and MACs of Ghost-VGG-16 for s and d",
    points=2,
    needs="ghostify: every replaceable conv but the first",
)
def ablation(ctx):
    rows = ctx.get("ablation")(models.vgg16, list(SETTINGS), (3, 32, 32))
    if not isinstance(rows, (list, tuple)) or len(rows) != len(SETTINGS):
        raise Fail(f"ablation should return one row per setting ({len(SETTINGS)}), got {rows!r}")
    for ((ratio, dw_size), (params, macs)), row in zip(SETTINGS.items(), rows, strict=True):
        expected = dict(ratio=ratio, dw_size=dw_size, params=params, macs=macs)
        if not isinstance(row, dict) or any(row.get(k) != v for k, v in expected.items()):
            raise Fail(f"ablation row for s={ratio}, d={dw_size} is {row!r}, expected {expected}")
    return "s = 2, 4 and d = 3, 5 on 32 x 32 inputs"


def _params(r, shapes):
    ps = [nn.Parameter(r.standard_normal(s)) for s in shapes]
    return ps


def _run_optimizer(make, r, steps, grads):
    ps = _params(r, [(3, 2), (4,)])
    opt = make(ps)
    for t in range(steps):
        for p, g in zip(ps, grads[t], strict=True):
            p.grad = None if g is None else g.copy()
        opt.step()
    return [p.data.copy() for p in ps]


@checks.add("SGD: steps equal torch.optim.SGD's update", points=2)
def sgd(ctx):
    student_sgd = ctx.get("SGD")
    r = rng(2)
    grads = [[r.standard_normal((3, 2)), r.standard_normal(4)] for _ in range(3)]
    grads[1][1] = None  # a parameter without a gradient is skipped
    for kwargs in (
        dict(lr=0.1),
        dict(lr=0.1, momentum=0.9),
        dict(lr=0.05, weight_decay=0.01),
        dict(lr=0.05, momentum=0.5, weight_decay=0.1),
    ):
        seed = int(r.integers(1 << 30))
        got = _run_optimizer(
            lambda ps, kw=kwargs: student_sgd(ps, **kw), np.random.default_rng(seed), 3, grads
        )
        with ctx.reference():
            want = _run_optimizer(
                lambda ps, kw=kwargs: optim.SGD(ps, **kw), np.random.default_rng(seed), 3, grads
            )
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            hint = (
                "d = grad + weight_decay * p; with momentum b = d on the first step, then "
                "b = momentum * b + d; p -= lr * b (or lr * d without momentum); a parameter "
                "whose grad is None is skipped and its buffer waits"
            )
            compare(f"parameter {i} after 3 steps of SGD({kwargs})", g, w, hint=hint)
    return "plain, momentum, weight decay, both; skipped None gradients"


def _tiny_net():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, 1, 1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 3),
    ).astype(np.float64)


def _reference_epoch(model, criterion, opt, batches):
    losses = []
    for x, y in batches:
        opt.zero_grad()
        losses.append(criterion(model(x), y))
        model.backward(criterion.backward())
        opt.step()
    return losses


@checks.add(
    "train_epoch: losses and weights equal a reference loop",
    points=2,
    needs="SGD: steps equal torch.optim.SGD's update",
)
def epoch(ctx):
    train_epoch, student_sgd = ctx.get("train_epoch"), ctx.get("SGD")
    r = rng(3)
    batches = [(r.standard_normal((4, 1, 5, 5)), r.integers(0, 3, 4)) for _ in range(4)]
    base = _tiny_net()
    state = base.state_dict()
    mine = _tiny_net().load_state_dict(state)
    losses = train_epoch(
        mine, nn.CrossEntropyLoss(), student_sgd(mine.parameters(), lr=0.5, momentum=0.9), batches
    )
    ref = _tiny_net().load_state_dict(state)
    with ctx.reference():
        want = _reference_epoch(
            ref, nn.CrossEntropyLoss(), optim.SGD(ref.parameters(), lr=0.5, momentum=0.9), batches
        )
    if not isinstance(losses, (list, tuple)) or len(losses) != len(batches):
        raise Fail(f"train_epoch should return one loss per batch ({len(batches)}), got {losses!r}")
    compare(
        "the batch losses",
        np.asarray(losses, dtype=np.float64),
        np.asarray(want),
        hint=(
            "each step: clear the gradients (or they add up over batches), forward, loss, "
            "model.backward(criterion.backward()), optimizer.step()"
        ),
    )
    for (name, p), (_, q) in zip(mine.named_parameters(), ref.named_parameters(), strict=True):
        compare(f"{name} after the epoch", p.data, q.data)
    return f"{len(batches)} batches, losses {want[0]:.3f} -> {want[-1]:.3f}"
