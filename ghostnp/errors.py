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


class NonFiniteInputError(LayerValueError):
    """NaN or infinite values reached a model in train mode (refused before it ran)."""


class LayerTypeError(LayerError, TypeError):
    """Wrong dtype (integers, objects, mixed precision)."""


class LayerStateError(LayerError, RuntimeError):
    """A call in the wrong order, such as backward before forward."""


def _plural(n: int, noun: str) -> str:
    """'1 missing key', '2 missing keys', '3 wrong entries'."""
    if n != 1:
        noun = noun[:-1] + "ies" if noun.endswith("y") and noun[-2] not in "aeiou" else noun + "s"
    return f"{n} {noun}"


class StateDictError(ValueError):
    """load_state_dict found missing, unexpected or mis-shaped entries.

    ``problems`` maps a kind ("missing key", ...) to every problem of that kind; the
    message gives the counts on its first line and the first few of each kind below.
    """

    problems: dict[str, list[str]] = {}

    @classmethod
    def from_problems(cls, where: str, problems, shown: int | None = None) -> StateDictError:
        """The error for ``problems``: a dict kind -> list of descriptions, or one list.

        At most ``shown`` entries of each kind are printed (3 when there are several
        kinds, 8 for one), then "... and N more", so that another model's weights give
        a dozen lines, not hundreds.
        """
        groups = problems if isinstance(problems, dict) else {"problem": list(problems)}
        groups = {kind: list(items) for kind, items in groups.items() if items}
        shown = shown or (3 if len(groups) > 1 else 8)
        total = sum(len(items) for items in groups.values())
        counts = ", ".join(_plural(len(items), kind) for kind, items in groups.items())
        if len(groups) > 1:
            counts = f"{_plural(total, 'problem')} ({counts})"
        lines = [f"{where}: load_state_dict found {counts}; nothing was loaded"]
        for items in groups.values():
            lines += [f"  {item}" for item in items[:shown]]
            if len(items) > shown:
                lines.append(f"  ... and {len(items) - shown} more")
        err = cls("\n".join(lines))
        err.problems = groups
        err.count = total
        return err


class WeightsFileError(ValueError):
    """A weights or checkpoint file that cannot be read: truncated, corrupt, not the
    expected format, or holding pickled objects (which ghostnp never loads)."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C stopped a long job; ``str()`` says where it stopped and how to go on.

    A KeyboardInterrupt, so code that handles Ctrl-C keeps working; the command line
    prints its message on one line and exits with status 130.
    """
