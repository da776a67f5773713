"""Error types that say which layer failed, what it expected and what it got.

A functional op raises with its own name (``conv2d: ...``). When the op runs inside a
module, the module replaces that name with its path in the model and its class
(``blocks.0.0.ghost1.primary_conv.0 (Conv2d): ...``), so the user sees where in the
network the bad tensor arrived.
"""

from __future__ import annotations


class LayerError(Exception):
    """Base of ghostnp's input errors; ``where`` names the op or the module path."""

    def __init__(self, where: str, detail: str):
        self.where = where
        self.detail = detail
        self.located = False  # set once a module has put its path in front
        super().__init__(f"{where}: {detail}")

    def relocate(self, where: str) -> None:
        """Name the module path instead of the bare op (done once, by the innermost module)."""
        if not self.located:
            self.where = where
            self.located = True
            self.args = (f"{where}: {self.detail}",)

    def __str__(self) -> str:
        return f"{self.where}: {self.detail}"


class LayerValueError(LayerError, ValueError):
    """Wrong rank, shape, channel count or geometry."""


class LayerTypeError(LayerError, TypeError):
    """Wrong dtype (integers, objects, mixed precision)."""


class LayerStateError(LayerError, RuntimeError):
    """A call in the wrong order, such as backward before forward."""


class StateDictError(ValueError):
    """load_state_dict found missing, unexpected or mis-shaped entries (all listed)."""
