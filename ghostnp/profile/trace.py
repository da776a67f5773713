"""One forward pass with a hook on every module, turned into a flat list of operations.

Every FLOP convention in this package is a set of rules over the same list, so the
forward pass runs once and each convention only re-reads the list.

An operation (`Op`) is either

* a **leaf module** call (a module without children: Conv2d, BatchNorm2d, ReLU, ...), or
* an **inline op**: arithmetic that a composite module writes in its own ``forward``
  rather than in a child module, which no hook can see directly: the Ghost module's
  concat, squeeze-and-excite's multiply, a bottleneck's residual add, DFC attention's
  pooling, sigmoid and upsampling. Each composite declares these beside its forward, in
  its ``inline_ops`` method (see `ghostnp.nn.inline`); the trace asks it after its
  children have run and puts each op where the module says it runs.

Inline ops are named ``<module path>:<op>``, e.g. ``blocks.3.0.se:mul``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from ..nn.inline import is_empty
from ..nn.module import Module

__all__ = ["Op", "trace", "model_dtype", "normalize_input_shape"]


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


# -- helpers ---------------------------------------------------------------------------


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


def _insert_inline(ops: list[Op], path: str, module: Module, x_shape, y_shape, shapes: dict):
    """Record the inline ops of a composite module after its children have run."""
    prefix = f"{path}." if path else ""
    mine = {p[len(prefix) :]: s for p, s in shapes.items() if p.startswith(prefix) and p != path}
    declared = module.inline_ops(x_shape, y_shape, mine)
    if not declared:
        return
    start = len(ops)  # the children's ops are the contiguous tail named path.*
    while start > 0 and ops[start - 1].name.startswith(prefix):
        start -= 1
    label = path if path else "(root)"
    for inline in declared:
        op = Op(
            f"{label}:{inline.kind}",
            inline.kind,
            module,
            inline.in_shape,
            inline.out_shape,
            0,
            inline=True,
        )
        at = len(ops)
        if inline.where == "start":
            at = start
        elif isinstance(inline.where, tuple):
            where, child = inline.where
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
    shapes: dict[str, tuple] = {} if module_shapes is None else module_shapes

    def hook(module, inputs, output, path):
        x = inputs[0] if inputs else None
        x_shape, y_shape = _shape(x), _shape(output)
        shapes[path] = y_shape
        if not module._modules:  # a leaf
            if is_empty(module):
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
        _insert_inline(ops, path, module, x_shape, y_shape, shapes)
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
