"""FLOP-counting conventions as tables of rules over the traced operations.

A *convention* answers one question for every operation of a forward pass: how many
operations does it count? Each is a table from a layer class (matched through the class
hierarchy) or an inline-op name (see `ghostnp.profile.trace`) to a small function
of the operation's shapes. Shapes are for one image.

``paper``
    The GhostNet paper's FLOPs: multiply-adds of convolutions and fully connected
    layers, nothing else. conv: out_elements * (in/groups) * kh * kw; linear:
    in * out per row. Biases are not counted.

``full``
    Every arithmetic operation of inference, with a multiply-add counted as one
    operation (the paper's unit), so ``full - paper`` is what the paper leaves out:

    ====================  ===================================================
    conv, linear          the paper's multiply-adds + 1 per output if bias
    batch norm            1 per element: y = x * scale + shift, a multiply-add
                          with per-channel constants folded from the statistics
    ReLU                  1 per element (a max)
    ReLU6                 2 per element (max, min)
    hard sigmoid          4 per element: relu6(x + 3) / 6 is an add, a max, a min
                          and a multiply
    hard swish            5 per element (hard sigmoid, then a multiply)
    sigmoid               3 per element: an exp, an add and a divide
    max pool k x k        k*k - 1 comparisons per output
    avg pool k x k        k*k per output (k*k - 1 adds and a multiply)
    adaptive avg pool     the window size per output (exact PyTorch windows)
    add, mul              1 per output element (residual add, SE and DFC gating)
    nearest upsample,     0: they copy values without arithmetic
    concat, pad, flatten,
    dropout (eval)
    ====================  ===================================================

``fvcore``, ``ptflops``, ``thop``
    Emulations of three popular PyTorch counters, written from how each tool's source
    counts an operation (see `TOOL_NOTES`). They are applied to ghostnp's modules
    as if the same network were written in PyTorch the way GhostNet's reference code
    (timm) writes it: activations and pools as modules, the residual add, the SE and
    DFC multiplies and the Ghost concat as tensor operators, and DFC attention's
    pooling, sigmoid and resize as functional calls.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from ..nn.layers import (
    AdaptiveAvgPool2d,
    AvgPool2d,
    BatchNorm2d,
    Conv2d,
    Dropout,
    Hardsigmoid,
    Hardswish,
    Linear,
    MaxPool2d,
    ReLU,
    ReLU6,
    Sigmoid,
    Upsample,
)
from ..nn.module import Module
from .trace import Op

__all__ = [
    "Convention",
    "CONVENTIONS",
    "TOOL_NOTES",
    "CATEGORIES",
    "category",
    "get_convention",
]

Rule = Callable[[Op], int]


# -- shape arithmetic --------------------------------------------------------------------


def numel(shape) -> int:
    """The number of elements of an array of this shape."""
    return int(math.prod(shape))


def _pair(v) -> tuple[int, int]:
    return (int(v[0]), int(v[1])) if isinstance(v, (tuple, list)) else (int(v), int(v))


def conv_macs(op: Op) -> int:
    """out_elements * (in_channels / groups) * kh * kw."""
    m = op.module
    kh, kw = m.kernel_size
    return numel(op.out_shape) * (m.in_channels // m.groups) * kh * kw


def conv_bias(op: Op) -> int:
    """One add per output element when the conv has a bias."""
    return numel(op.out_shape) if op.module.bias is not None else 0


def linear_macs(op: Op) -> int:
    """in_features multiply-adds per output element (in * out per row)."""
    return numel(op.out_shape) * op.module.in_features


def linear_bias(op: Op) -> int:
    """One addition per output element when the layer has a bias, else 0."""
    return numel(op.out_shape) if op.module.bias is not None else 0


def _adaptive_windows(n_in: int, n_out: int) -> int:
    """Sum of PyTorch's adaptive-pool window lengths along one axis:
    window i covers [floor(i*n_in/n_out), ceil((i+1)*n_in/n_out))."""
    return sum(-(-((i + 1) * n_in) // n_out) - (i * n_in) // n_out for i in range(n_out))


def adaptive_window_elements(op: Op) -> int:
    """Input elements summed by an adaptive average pool, counting overlaps."""
    n, c, h, w = op.in_shape
    oh, ow = op.out_shape[2:]
    return n * c * _adaptive_windows(h, oh) * _adaptive_windows(w, ow)


def _kernel_area(op: Op) -> int:
    kh, kw = _pair(op.module.kernel_size)
    return kh * kw


def _per_in(k: float) -> Rule:
    return lambda op: int(k * numel(op.in_shape))


def _per_out(k: float) -> Rule:
    return lambda op: int(k * numel(op.out_shape))


def _zero(op: Op) -> int:
    return 0


def _bn_affine(op: Op) -> bool:
    return op.module.weight is not None


# -- the conventions ---------------------------------------------------------------------


@dataclass(frozen=True)
class Convention:
    """A named set of counting rules.

    ``modules`` maps layer classes to rules (the first class found along the module's
    MRO wins); ``inline`` maps inline-op names to rules. ``count(op)`` returns the
    rule's count, or ``None`` when the convention has no rule for that operation
    (reported by the summary as uncounted). ``default`` is used instead of ``None``
    when the convention deliberately ignores everything it does not list (``paper``).
    """

    name: str
    title: str
    modules: dict[type, Rule]
    inline: dict[str, Rule]
    default: Rule | None = None
    unit: str = "ops"
    notes: str = field(default="", compare=False)

    def rule_for(self, op: Op) -> Rule | None:
        """The rule that counts ``op``: by inline op name; 0 for a module that declares it
        only moves data (``moves_data_only``); else by the first class in the module's MRO
        that has one; None when the convention has no rule for it."""
        if op.inline:
            return self.inline.get(op.type, self.default)
        if op.module.moves_data_only:  # declared by the module: no arithmetic
            return _zero
        for cls in type(op.module).__mro__:
            if cls in self.modules:
                return self.modules[cls]
        return self.default

    def count(self, op: Op) -> int | None:
        """The operations this convention counts for ``op``, or None when it has no rule."""
        rule = self.rule_for(op)
        return None if rule is None else int(rule(op))


# Layers that move data without arithmetic, under every convention that lists them;
# modules that declare ``moves_data_only`` (Flatten, Identity, the CIFAR ResNet's
# zero-padding shortcut) count 0 under every convention.
_COPIES: dict[type, Rule] = {
    Dropout: _zero,  # eval mode: a copy
}

TOOL_NOTES: dict[str, str] = {
    "fvcore": (
        "fvcore traces the model with torch.jit and counts aten ops through the handles in "
        "fvcore/nn/flop_count.py (_DEFAULT_SUPPORTED_OPS) and fvcore/nn/jit_handles.py; one "
        "fused multiply-add is one flop. conv_flop_jit: batch x prod(weight shape) x prod(output "
        "spatial size), bias ignored. linear_flop_jit/addmm_flop_jit: input elements x out "
        "features, bias ignored. batchnorm_flop_jit: in eval mode 2 per input element with "
        "affine (1 without); in training mode it switches to norm_flop_counter, 5 per element "
        "(emulated here: eval, as profiling is done). elementwise_flop_counter: "
        "adaptive_avg_pool2d 1 per input element, upsample_nearest2d 1 per output element. Ops "
        "without a handle (relu, hardsigmoid, sigmoid, add, mul, cat, max_pool2d, avg_pool2d, "
        "dropout, flatten) count 0."
    ),
    "ptflops": (
        "ptflops' pytorch backend registers forward hooks on the module types in MODULES_MAPPING "
        "(ptflops/pytorch_ops.py). conv_flops_counter_hook: kh*kw*in*out/groups per output "
        "position plus out_channels per position for the bias. linear_flops_counter_hook: input "
        "elements x out features, plus out features once for the bias. bn_flops_counter_hook: 1 "
        "per input element, doubled when affine. relu_flops_counter_hook (ReLU, ReLU6, PReLU, ELU, "
        "LeakyReLU, GELU): 1 per output element. pool_flops_counter_hook (every max/avg/adaptive "
        "pool): 1 per input element. upsample_flops_counter_hook: 1 per output element. Other "
        "modules (Hardsigmoid, Sigmoid, Dropout, Flatten, custom blocks) and tensor operators "
        "(+, *, torch.cat) count 0. Emulated: the module-hook count (ptflops <= 0.7.0, or the "
        "pytorch backend with count_functional=False). From 0.7.1 the pytorch backend also "
        "patches torch.nn.functional (FUNCTIONAL_MAPPING) by default, which counts F.relu and "
        "F.adaptive_avg_pool2d a second time inside nn.ReLU and nn.AdaptiveAvgPool2d (1 more per "
        "ReLU output and per pooled input element) and DFC's functional avg_pool2d and "
        "interpolate; from 0.7.3 the default backend is aten, which counts only convolutions "
        "and matrix products."
    ),
    "thop": (
        "thop 0.1.1 profile() hooks the module types in register_hooks (thop/profile.py) with the "
        "counters of thop/vision/basic_hooks.py and calc_func.py, in eval mode. count_convNd -> "
        "calculate_conv2d_flops: output elements x in/groups x kh x kw (bias not added). "
        "count_normalization: calculate_norm gives 2 per input element, doubled when affine: 4. "
        "ReLU, ReLU6, max pools, Dropout and nn.Sequential: zero_ops. count_avgpool: 1 per output "
        "element. count_adap_avgpool: (input/output size ratio + 1) per output element. "
        "count_linear: in_features per output element. count_upsample: 1 per output element for "
        "nearest. Modules without a rule (Hardsigmoid, Sigmoid, Flatten, custom) count 0, and "
        "functional or tensor ops inside custom modules are never seen."
    ),
}

PAPER = Convention(
    name="paper",
    title="paper: conv + linear multiply-adds",
    modules={Conv2d: conv_macs, Linear: linear_macs},
    inline={},
    default=_zero,
    unit="MACs",
    notes="Multiply-adds of convolutions and linear layers only (the GhostNet paper's "
    "FLOPs); biases, BN, activations, pooling and element-wise ops are not counted.",
)

FULL = Convention(
    name="full",
    title="full: every arithmetic op (multiply-add = 1)",
    modules={
        Conv2d: lambda op: conv_macs(op) + conv_bias(op),
        Linear: lambda op: linear_macs(op) + linear_bias(op),
        BatchNorm2d: _per_in(1),
        ReLU: _per_out(1),
        ReLU6: _per_out(2),
        Hardsigmoid: _per_out(4),
        Hardswish: _per_out(5),
        Sigmoid: _per_out(3),
        MaxPool2d: lambda op: (_kernel_area(op) - 1) * numel(op.out_shape),
        AvgPool2d: lambda op: _kernel_area(op) * numel(op.out_shape),
        AdaptiveAvgPool2d: adaptive_window_elements,
        Upsample: _zero,
        **_COPIES,
    },
    inline={
        "add": _per_out(1),
        "mul": _per_out(1),
        "concat": _zero,
        "avg_pool2d": _per_out(4),  # 2x2 windows: 3 adds and a multiply
        "sigmoid": _per_out(3),
        "upsample_nearest2d": _zero,
    },
    notes="Conv/linear multiply-adds plus bias adds; BN 1/element (folded scale-shift); "
    "ReLU 1, ReLU6 2, hard sigmoid 4, hard swish 5, sigmoid 3 per element; max pool "
    "k*k-1 and avg pool k*k per output; adaptive avg pool = window size per output; "
    "add and mul 1 per element; nearest upsample, concat, pad, flatten, dropout 0.",
)

_ZERO_ACTIVATIONS = {
    ReLU: _zero,
    ReLU6: _zero,
    Hardsigmoid: _zero,
    Hardswish: _zero,
    Sigmoid: _zero,
}
_ZERO_INLINE = {
    k: _zero for k in ("add", "mul", "concat", "avg_pool2d", "sigmoid", "upsample_nearest2d")
}

FVCORE = Convention(
    name="fvcore",
    title="fvcore FlopCountAnalysis (eval)",
    modules={
        Conv2d: conv_macs,  # aten::_convolution: bias ignored
        Linear: linear_macs,  # aten::linear / aten::addmm: bias ignored
        BatchNorm2d: lambda op: numel(op.in_shape) * (2 if _bn_affine(op) else 1),
        AdaptiveAvgPool2d: _per_in(1),
        Upsample: _per_out(1),  # aten::upsample_nearest2d
        MaxPool2d: _zero,
        AvgPool2d: _zero,
        **_ZERO_ACTIVATIONS,
        **_COPIES,
    },
    inline={**_ZERO_INLINE, "upsample_nearest2d": _per_out(1)},
    unit="flops (=MACs)",
    notes=TOOL_NOTES["fvcore"],
)

PTFLOPS = Convention(
    name="ptflops",
    title="ptflops, pytorch backend (module hooks)",
    modules={
        Conv2d: lambda op: conv_macs(op) + conv_bias(op),
        Linear: lambda op: (
            linear_macs(op) + (op.module.out_features if op.module.bias is not None else 0)
        ),
        BatchNorm2d: lambda op: numel(op.in_shape) * (2 if _bn_affine(op) else 1),
        ReLU: _per_out(1),
        ReLU6: _per_out(1),
        MaxPool2d: _per_in(1),
        AvgPool2d: _per_in(1),
        AdaptiveAvgPool2d: _per_in(1),
        Upsample: _per_out(1),
        Hardsigmoid: _zero,
        Hardswish: _zero,
        Sigmoid: _zero,
        **_COPIES,
    },
    inline=dict(_ZERO_INLINE),
    unit="MACs",
    notes=TOOL_NOTES["ptflops"],
)

THOP = Convention(
    name="thop",
    title="thop 0.1.1 profile()",
    modules={
        Conv2d: conv_macs,  # calculate_conv2d_flops: bias not added
        Linear: linear_macs,  # in_features per output element
        BatchNorm2d: lambda op: numel(op.in_shape) * (4 if _bn_affine(op) else 2),
        AvgPool2d: _per_out(1),
        # (input/output size ratio + 1) per output element, truncated to an int
        AdaptiveAvgPool2d: lambda op: int(
            (math.prod(i / o for i, o in zip(op.in_shape[2:], op.out_shape[2:], strict=True)) + 1)
            * numel(op.out_shape)
        ),
        Upsample: _per_out(1),  # mode "nearest": 1 per output element
        MaxPool2d: _zero,
        **_ZERO_ACTIVATIONS,
        **_COPIES,
    },
    inline=dict(_ZERO_INLINE),
    unit="MACs",
    notes=TOOL_NOTES["thop"],
)

CONVENTIONS: dict[str, Convention] = {c.name: c for c in (PAPER, FULL, FVCORE, PTFLOPS, THOP)}
TOOL_NOTES["paper"] = PAPER.notes
TOOL_NOTES["full"] = FULL.notes


def get_convention(convention) -> Convention:
    """A Convention object from its name (or the object itself)."""
    if isinstance(convention, Convention):
        return convention
    if convention not in CONVENTIONS:
        raise ValueError(
            f"unknown convention {convention!r}; choose one of: {', '.join(CONVENTIONS)}"
        )
    return CONVENTIONS[convention]


# -- categories, to explain where conventions differ -------------------------------------

CATEGORIES = (
    "conv",
    "linear",
    "batch norm",
    "activation",
    "pooling",
    "upsample",
    "add / mul",
    "other",
)

_CATEGORY_OF_CLASS: dict[type, str] = {
    Conv2d: "conv",
    Linear: "linear",
    BatchNorm2d: "batch norm",
    ReLU: "activation",
    ReLU6: "activation",
    Hardsigmoid: "activation",
    Hardswish: "activation",
    Sigmoid: "activation",
    MaxPool2d: "pooling",
    AvgPool2d: "pooling",
    AdaptiveAvgPool2d: "pooling",
    Upsample: "upsample",
}
_CATEGORY_OF_INLINE = {
    "add": "add / mul",
    "mul": "add / mul",
    "avg_pool2d": "pooling",
    "sigmoid": "activation",
    "upsample_nearest2d": "upsample",
}


def category(op: Op) -> str:
    """Which row of the comparison table an operation belongs to."""
    if op.inline:
        return _CATEGORY_OF_INLINE.get(op.type, "other")
    for cls in type(op.module).__mro__:
        if cls in _CATEGORY_OF_CLASS:
            return _CATEGORY_OF_CLASS[cls]
        if cls is Module:
            break
    return "other"
