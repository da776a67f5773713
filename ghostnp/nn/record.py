"""Record intermediate outputs of any module without writing a second forward pass.

    with record(model, ["blocks.0.0.ghost1.primary_conv", "blocks.0.0.ghost1.cheap_operation"]) as rec:
        model(x)
    intrinsic = rec["blocks.0.0.ghost1.primary_conv"]     # (N, m, H, W)

For a Ghost module, ``primary_conv`` gives the intrinsic maps and ``cheap_operation``
the ghost maps; for a GhostModuleV2, ``short_conv`` gives the DFC attention gate.
"""

from __future__ import annotations

from contextlib import contextmanager

from ..errors import LayerValueError

__all__ = ["record", "ghost_paths"]


@contextmanager
def record(model, paths=None, copy=True):
    """Context manager yielding a dict path -> last output of that module.

    ``paths=None`` records every module. Unknown paths raise ValueError listing a few
    valid ones. Outputs are copied unless ``copy=False``.
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
    out = {}
    handles = []
    for p in paths:

        def hook(module, inputs, output, _p=p):
            out[_p] = output.copy() if copy and hasattr(output, "copy") else output

        handles.append(modules[p].register_forward_hook(hook))
    try:
        yield out
    finally:
        for h in handles:
            h.remove()


def ghost_paths(model):
    """Paths of every GhostModule in ``model`` (for picking a layer to inspect)."""
    from .ghost import GhostModule

    return [p for p, m in model.named_modules() if isinstance(m, GhostModule)]
