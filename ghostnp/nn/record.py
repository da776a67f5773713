"""Record what flows through any module, forward and backward, without writing a second pass.

    with record(model, ["blocks.0.0.ghost1.primary_conv", "blocks.0.0.ghost1.cheap_operation"]) as rec:
        model(x)
    intrinsic = rec["blocks.0.0.ghost1.primary_conv"]     # (N, m, H, W)

For a Ghost module, ``primary_conv`` gives the intrinsic maps and ``cheap_operation``
the ghost maps; for a GhostModuleV2, ``short_conv`` gives the DFC attention gate.

With ``grads=True`` the backward pass is recorded too: ``rec.grads[path]`` is the
gradient that leaves the module (dL/d its input, what its ``backward`` returned) and
``rec.grad_outputs[path]`` the gradient that arrived (dL/d its output). In a Ghost
module ``g`` with m intrinsic maps, the intrinsic maps x1 reach the loss by two paths,
and the two parts of dx1 can be seen apart:

    with record(model, [g, f"{g}.primary_conv", f"{g}.cheap_operation"], grads=True) as rec:
        loss = criterion(model(x), labels)
        model.backward(criterion.backward())
    via_slice = rec.grad_outputs[g][:, :m]            # x1 is the output's first m channels
    via_cheap = rec.grads[f"{g}.cheap_operation"]     # x1 also made the ghost maps
    dx1 = rec.grad_outputs[f"{g}.primary_conv"]       # == via_slice + via_cheap
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ..errors import LayerValueError
from .module import Module, RemovableHandle

__all__ = ["record", "Recording", "ghost_paths"]


class Recording(dict[str, Any]):
    """path -> the last output of that module (a dict), and with ``grads=True`` also
    ``grads`` (path -> the gradient its backward returned, dL/d input) and
    ``grad_outputs`` (path -> the gradient its backward was given, dL/d output)."""

    def __init__(self) -> None:
        super().__init__()
        self.grads: dict[str, Any] = {}
        self.grad_outputs: dict[str, Any] = {}


def _keep(value: Any, copy: bool) -> Any:
    return value.copy() if copy and hasattr(value, "copy") else value


@contextmanager
def record(
    model: Module, paths: str | list[str] | None = None, copy: bool = True, grads: bool = False
) -> Iterator[Recording]:
    """Context manager yielding a `Recording`: path -> last output of that module.

    ``paths=None`` records every module. Unknown paths raise ValueError listing a few
    valid ones. With ``grads=True`` every backward of those modules inside the block is
    recorded as well (``rec.grads``, ``rec.grad_outputs``). Arrays are copied unless
    ``copy=False``. The hooks are removed when the block ends.
    """
    modules = dict(model.named_modules())
    if paths is None:
        paths = [p for p in modules if p]
    if isinstance(paths, str):
        paths = [paths]
    unknown = [p for p in paths if p not in modules]
    if unknown:
        sample = ", ".join(list(p for p in modules if p)[:8])
        raise LayerValueError(
            "record", f"no module at path(s) {unknown}; valid paths include: {sample}, ..."
        )
    out = Recording()
    handles: list[RemovableHandle] = []
    for p in paths:

        def on_forward(module: Module, inputs: tuple[Any, ...], output: Any, _p: str = p) -> None:
            out[_p] = _keep(output, copy)

        handles.append(modules[p].register_forward_hook(on_forward))
        if grads:

            def on_backward(
                module: Module,
                grad_input: tuple[Any, ...],
                grad_output: tuple[Any, ...],
                _p: str = p,
            ) -> None:
                out.grads[_p] = _keep(grad_input[0], copy)
                if grad_output:
                    out.grad_outputs[_p] = _keep(grad_output[0], copy)

            handles.append(modules[p].register_full_backward_hook(on_backward))
    try:
        yield out
    finally:
        for h in handles:
            h.remove()


def ghost_paths(model: Module) -> list[str]:
    """Paths of every GhostModule in ``model`` (for picking a layer to inspect)."""
    from .ghost import GhostModule

    return [p for p, m in model.named_modules() if isinstance(m, GhostModule)]
