"""One forward pass with a hook on every module, turned into a flat list of operations.

Every FLOP convention in this package is a set of rules over the same list, so the
forward pass runs once and each convention only re-reads the list.

An operation (`Op`) is either

* a **leaf module** call (a module without children: Conv2d, BatchNorm2d, ReLU, ...), or
* an **inline op**: arithmetic that a composite module writes in its own ``forward``
  rather than in a child module, which no hook can see directly. These are recorded by
  the composite's hook from the shapes it saw:

  ==================  ================================================================
  module              inline ops (in the order they run)
  ==================  ================================================================
  GhostModule         ``concat`` of intrinsic and ghost maps (then the first oup kept)
  DFCAttention        ``avg_pool2d`` 2x2 before its convs, then ``sigmoid`` and
                      ``upsample_nearest2d`` to the Ghost output's size
  GhostModuleV2       ``mul``: Ghost output times the DFC gate (none without a gate)
  GhostModuleV3       train form: ``add`` x (branches - 1) summing the primary
                      branches, the same for the cheap branches, then the ``concat``;
                      deploy form: nothing of its own (the GhostModule's concat)
  SqueezeExcite       ``mul``: x times the (N, C, 1, 1) gate, broadcast over H, W
  GhostBottleneck     ``add``: main path + shortcut
  GhostBottleneckV3   train form at stride 2: ``add`` x (branches - 1) summing the
                      depthwise branches (plus the GhostBottleneck's residual add)
  BasicBlock          ``add``: main path + shortcut, before relu2
  ==================  ================================================================

Inline ops are named ``<module path>:<op>``, e.g. ``blocks.3.0.se:mul``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..models.cifar import BasicBlock
from ..nn.ghost import DFCAttention, GhostBottleneck, GhostModule, GhostModuleV2, SqueezeExcite
from ..nn.ghost_v3 import GhostBottleneckV3, GhostModuleV3
from ..nn.module import Module, ModuleList, Sequential

__all__ = ["Op", "trace", "model_dtype", "normalize_input_shape", "INLINE_OPS"]


@dataclass(frozen=True)
class Op:
    """One operation of the forward pass (shapes are for a single image, batch dim 1).

    name        module path, or ``path:op`` for an inline op
    type        class name of the module, or the inline op's name (``"add"``, ``"mul"``, ...)
    module      the leaf module; for an inline op, the composite module that performs it
    in_shape    shape of the (first) input
    out_shape   shape of the output
    params      parameters owned by this module itself (0 for inline ops and for a
                module seen a second time, so that shared modules are counted once)
    inline      True for an inline op (a functional call in the reference PyTorch code)
    is_view     True when the output shares memory with the input (Flatten, Identity)
    """

    name: str
    type: str
    module: Module | None
    in_shape: tuple
    out_shape: tuple
    params: int
    inline: bool = False
    is_view: bool = False


# -- inline ops of composite modules ---------------------------------------------------
# Each rule gets (module, path, input shape, output shape, ops recorded so far inside
# this module's call) and returns [(position, op name, in_shape, out_shape)], where
# position is "start", "end", ("after", child) or ("before", child).


def _ghost_concat(m, path, x_shape, y_shape, inner):
    # concat([x1 (m ch), x2 (m*(ratio-1) ch)]) -> (N, m*ratio, H', W'); then [:, :oup]
    if _is_placeholder(m.cheap_operation):  # a GhostModuleV3 in train form: see _v3_sums
        return []
    n, _, h, w = y_shape
    return [(("after", "cheap_operation"), "concat", y_shape, (n, m.init_channels * m.ratio, h, w))]


def _branch_adds(anchor, count, shape):
    """``count`` adds of ``shape`` right after the ops of child ``anchor``."""
    return [(("after", anchor), "add", shape, shape)] * count


def _v3_sums(m, path, x_shape, y_shape, inner):
    # train form: x1 = act(sum of the primary branches); x2 = act(sum of the cheap ones)
    if m.deployed:
        return []
    n, _, h, w = y_shape
    x1 = (n, m.init_channels, h, w)
    x2 = (n, m.new_channels, h, w)
    cat = (n, m.init_channels + m.new_channels, h, w)
    # inserted at one anchor, later entries land first: the adds come before the concat
    anchor = "cheap_rpr_conv" if _is_placeholder(m.cheap_activation) else "cheap_activation"
    cheap = 2 + len(m.cheap_rpr_conv)  # scale, skip and the d x d branches
    return (
        [(("after", anchor), "concat", y_shape, cat)]
        + _branch_adds("cheap_rpr_conv", cheap - 1, x2)
        + _branch_adds("primary_rpr_conv", len(m.primary_rpr_conv) - 1, x1)
    )


def _v3_dw_sum(m, path, x_shape, y_shape, inner):
    # train form at stride 2: scale + the k x k branches, summed
    if m.deployed or m.dw_rpr_conv is None:
        return []
    conv = [op for op in inner if op.name.startswith(f"{path}.dw_rpr_conv.")]
    shape = conv[-1].out_shape if conv else y_shape
    branches = len(m.dw_rpr_conv) + 1  # the k x k branches and the 1x1 scale branch
    return _branch_adds("dw_rpr_conv", branches - 1, shape)


def _dfc_ops(m, path, x_shape, g_shape, inner):
    n, c, h, w = x_shape
    pooled = (n, c, h // 2, w // 2)
    a_shape = inner[-1].out_shape if inner else pooled  # output of short_conv.5 (BN)
    return [
        ("start", "avg_pool2d", x_shape, pooled),
        ("end", "sigmoid", a_shape, a_shape),
        ("end", "upsample_nearest2d", a_shape, g_shape),
    ]


def _v2_gate_mul(m, path, x_shape, y_shape, inner):
    return [] if m.short_conv is None else [("end", "mul", y_shape, y_shape)]


def _se_mul(m, path, x_shape, y_shape, inner):
    return [("end", "mul", y_shape, y_shape)]


def _residual_add(m, path, x_shape, y_shape, inner):
    return [("end", "add", y_shape, y_shape)]


def _basic_block_add(m, path, x_shape, y_shape, inner):
    return [(("before", "relu2"), "add", y_shape, y_shape)]


INLINE_OPS: dict[type, Callable] = {
    GhostModule: _ghost_concat,
    DFCAttention: _dfc_ops,
    GhostModuleV2: _v2_gate_mul,
    GhostModuleV3: _v3_sums,
    SqueezeExcite: _se_mul,
    GhostBottleneck: _residual_add,
    GhostBottleneckV3: _v3_dw_sum,
    BasicBlock: _basic_block_add,
}


def _inline_rules(module):
    """Every inline rule that applies to ``module``, walking its class hierarchy
    (a GhostModuleV2 does the GhostModule's concat *and* its own multiply)."""
    return [INLINE_OPS[c] for c in type(module).__mro__ if c in INLINE_OPS]


# -- helpers ---------------------------------------------------------------------------


def _is_placeholder(m: Module) -> bool:
    """An empty Sequential/ModuleList: the reference code's stand-in for "no op"
    (``relu=False`` in a Ghost module, the identity shortcut). It computes nothing."""
    return isinstance(m, (Sequential, ModuleList)) and not m._modules


def _own_params(m: Module) -> int:
    return int(sum(p.size for p in m._parameters.values() if p is not None))


def _shape(a) -> tuple:
    return tuple(int(d) for d in getattr(a, "shape", ()))


def model_dtype(model: Module):
    """The dtype of the model's first parameter (float32 when it has none)."""
    for p in model.parameters():
        return p.data.dtype
    return np.dtype(np.float32)


def normalize_input_shape(input_shape) -> tuple[int, tuple]:
    """(C, H, W) or (N, C, H, W) -> (N, (C, H, W)); N defaults to 1."""
    shape = tuple(int(d) for d in input_shape)
    if len(shape) == 3:
        return 1, shape
    if len(shape) == 4:
        if shape[0] < 1:
            raise ValueError(f"profile: batch size must be positive, got {shape[0]}")
        return shape[0], shape[1:]
    raise ValueError(f"profile: input_shape must be (C, H, W) or (N, C, H, W), got {input_shape}")


@contextlib.contextmanager
def preserved_state(model: Module):
    """Run code on ``model`` and put every module back as it was afterwards.

    A forward pass replaces each module's cached values (what its backward would use)
    and, in training mode, updates BatchNorm's running statistics. We keep a shallow
    copy of each module's attributes, buffers and train/eval flag, and a copy of the
    state dict, and restore them on exit: a pending backward still works, and the
    running statistics are bit-for-bit the same.
    """
    modules = list(model.modules())
    saved_attrs = [dict(m.__dict__) for m in modules]
    saved_buffers = [dict(m._buffers) for m in modules]
    saved_state = model.state_dict()
    try:
        yield
    finally:
        for m, attrs, bufs in zip(modules, saved_attrs, saved_buffers, strict=True):
            m._buffers.clear()
            m._buffers.update(bufs)
            m.__dict__.clear()
            m.__dict__.update(attrs)
        now = model.state_dict()
        if any(not np.array_equal(now[k], v) for k, v in saved_state.items()):
            model.load_state_dict(saved_state)


def _insert_inline(ops: list[Op], path: str, module, x_shape, y_shape):
    """Record the inline ops of a composite module after its children have run."""
    rules = _inline_rules(module)
    if not rules:
        return
    prefix = f"{path}." if path else ""
    start = len(ops)  # the children's ops are the contiguous tail named path.*
    while start > 0 and ops[start - 1].name.startswith(prefix):
        start -= 1
    inner = [op for op in ops[start:] if not op.inline]
    label = path if path else "(root)"
    for rule in rules:
        for position, kind, in_shape, out_shape in rule(module, path, x_shape, y_shape, inner):
            op = Op(f"{label}:{kind}", kind, module, in_shape, out_shape, 0, inline=True)
            at = len(ops)
            if position == "start":
                at = start
            elif isinstance(position, tuple):
                where, child = position
                child_path = prefix + child
                idx = [
                    i
                    for i in range(start, len(ops))
                    if ops[i].name == child_path or ops[i].name.startswith(child_path + ".")
                ]
                if idx:
                    at = idx[-1] + 1 if where == "after" else idx[0]
            ops.insert(at, op)


def trace(model: Module, input_shape, module_shapes: dict | None = None) -> list[Op]:
    """Run one image of shape (C, H, W) through ``model`` in eval mode and return its ops
    in execution order. The model is left exactly as it was (see `preserved_state`).
    If ``module_shapes`` is a dict, it is filled with path -> output shape of every
    module that ran (composites included).
    """
    _, chw = normalize_input_shape(input_shape)
    ops: list[Op] = []
    seen_params: set[int] = set()
    handles = []

    def hook(module, inputs, output, path):
        x = inputs[0] if inputs else None
        x_shape, y_shape = _shape(x), _shape(output)
        if module_shapes is not None:
            module_shapes[path] = y_shape
        if not module._modules:  # a leaf
            if _is_placeholder(module):
                return
            params = 0 if id(module) in seen_params else _own_params(module)
            seen_params.add(id(module))
            view = isinstance(x, np.ndarray) and isinstance(output, np.ndarray)
            view = view and (output is x or np.may_share_memory(output, x))
            name = path or "(root)"
            ops.append(
                Op(name, type(module).__name__, module, x_shape, y_shape, params, False, view)
            )
            return
        _insert_inline(ops, path, module, x_shape, y_shape)
        own = _own_params(module)
        if own and id(module) not in seen_params:  # parameters held by a composite itself
            seen_params.add(id(module))
            ops.append(Op(path or "(root)", type(module).__name__, module, x_shape, y_shape, own))

    x = np.zeros((1, *chw), dtype=model_dtype(model))
    with preserved_state(model):
        model.eval()
        try:
            for path, m in model.named_modules():
                handles.append(
                    m.register_forward_hook(lambda mod, i, o, _p=path: hook(mod, i, o, _p))
                )
            model(x)
        finally:
            for h in handles:
                h.remove()
    return ops
