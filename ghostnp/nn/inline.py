"""Inline ops: what a composite module computes in its own ``forward``.

Most of a network's arithmetic happens in leaf modules (Conv2d, BatchNorm2d, ReLU, ...),
which a forward hook sees one by one. A composite module also computes a little itself,
between its children's calls: the Ghost module concatenates, squeeze-and-excite
multiplies, a bottleneck adds its shortcut. No hook can see those, so each composite
declares them beside its ``forward``, in ``inline_ops``, for whoever counts operations
(`ghostnp.profile`):

    def inline_ops(self, x_shape, y_shape, shapes):
        return [InlineOp("add", y_shape, y_shape, "end")]     # main path + shortcut

Whoever edits a ``forward`` finds there what to keep in step with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .module import Module, ModuleList, Sequential

__all__ = ["InlineOp", "Position", "Shape", "is_empty"]

Shape = tuple[int, ...]
Position = Literal["start", "end"] | tuple[Literal["after", "before"], str]


@dataclass(frozen=True)
class InlineOp:
    """One operation a module's own ``forward`` computes.

    kind        ``"add"``, ``"mul"``, ``"concat"``, ``"avg_pool2d"``, ``"sigmoid"`` or
                ``"upsample_nearest2d"``: the names FLOP conventions have rules for
    in_shape    shape of its (first) input, batch included
    out_shape   shape of its output
    where       when it runs among the module's children: ``"start"`` (before any),
                ``"end"`` (after all), or ``("after", child)`` / ``("before", child)``
                for a child's attribute name
    """

    kind: str
    in_shape: Shape
    out_shape: Shape
    where: Position = "end"


def is_empty(module: Module | None) -> bool:
    """An empty Sequential or ModuleList: the reference code's stand-in for "no op"
    (``relu=False`` in a Ghost module, an identity shortcut). It computes nothing."""
    return isinstance(module, (Sequential, ModuleList)) and not module._modules
