"""While an assignment is graded, ghostnp's own version of what the student writes is
made unavailable, so that a submission cannot pass by calling it.

``HIDDEN`` is the one table of what each assignment hides, by public dotted name. For
each name, every module of ghostnp that holds that same object (the public package, the
module that defines it, any module that imported it) gets a stub in its place: calling a
hidden function, or instantiating or subclassing a hidden class, raises `HiddenError`
with a message that says why. A module that is not imported yet (the Numba kernels,
say) is blocked for the duration instead of imported. Everything is put back when the
grading ends, whatever happened.

The grader computes its expected values with ``Hiding.revealed()``, which lifts the
hiding for the few lines that call the library's implementation.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from contextlib import contextmanager

__all__ = ["HIDDEN", "HiddenError", "Hiding", "resolve"]

_CONV_KERNELS = ("unfold", "fold", "conv_matmul", "conv_backward_weight")
_DEPTHWISE_KERNELS = (
    "depthwise_forward",
    "depthwise_backward_input",
    "depthwise_backward_weight",
    "depthwise_backward",
)
_BN_KERNELS = ("batch_norm_stats", "batch_norm_normalize", "batch_norm_backward")
_KERNEL_MODULES = ("ghostnp.kernels.dispatch", "ghostnp.kernels.reference", "ghostnp.kernels.numba")


def _kernels(names):
    return tuple(f"{mod}.{name}" for mod in _KERNEL_MODULES for name in names)


# What each assignment hides while it is graded. Public names come first; the kernel
# module names below them are where the hot loops live today (update them here when the
# kernels move: a test checks that every name resolves).
HIDDEN = {
    "im2col": (
        "ghostnp.functional.conv2d_forward",
        "ghostnp.functional.conv2d_backward",
        "ghostnp.kernels.reference.im2col",  # the textbook versions on a padded input
        "ghostnp.kernels.reference.col2im",
        *_kernels(_CONV_KERNELS),
    ),
    "depthwise": (
        "ghostnp.functional.depthwise_conv2d_forward",
        "ghostnp.functional.depthwise_conv2d_backward",
        "ghostnp.gradcheck.numerical_gradient",
        "ghostnp.gradcheck.check_function",
        "ghostnp.gradcheck.check_module",
        *_kernels(_DEPTHWISE_KERNELS),
    ),
    "batchnorm": (
        "ghostnp.functional.batch_norm2d_forward",
        "ghostnp.functional.batch_norm2d_backward",
        *_kernels(_BN_KERNELS),
    ),
    "ghost-module": (
        "ghostnp.nn.GhostModule",
        "ghostnp.nn.GhostModuleV2",
    ),
    "bottleneck": (
        "ghostnp.nn.SqueezeExcite",
        "ghostnp.nn.GhostBottleneck",
        "ghostnp.models.GhostNet",
    ),
    "counting": (
        "ghostnp.models.GhostNet",
        "ghostnp.nn.GhostModule",
        "ghostnp.nn.GhostBottleneck",
        "ghostnp.nn.SqueezeExcite",
        "ghostnp.profile.summary",
        "ghostnp.profile.compare_conventions",
        "ghostnp.profile.trace",
        "ghostnp.profile.memory",
        "ghostnp.profile.ghost_vs_conv",
        "ghostnp.profile.speedup_ratio",
        "ghostnp.profile.compression_ratio",
    ),
    "ghostify": (
        "ghostnp.models.ghostify",
        "ghostnp.optim.SGD",
        "ghostnp.train.train_step",
        "ghostnp.train.fit",
    ),
}


class HiddenError(RuntimeError):
    """A submission called what its assignment asks it to write."""


class _Unloaded:
    """A hidden name whose module is not imported: the module is blocked instead."""

    def __init__(self, module: str):
        self.module = module


def resolve(name: str):
    """The object a public dotted name refers to, or an `_Unloaded` marker when the
    name lives in a module that is not imported yet. Raises LookupError if the name
    does not exist (the table is out of date)."""
    parts = name.split(".")
    obj = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], start=1):
        if hasattr(obj, part):
            obj = getattr(obj, part)
            continue
        module = ".".join(parts[: i + 1])
        if i < len(parts) - 1 and importlib.util.find_spec(module) is not None:
            return _Unloaded(module)
        raise LookupError(f"hidden name {name!r}: {'.'.join(parts[:i])} has no {part!r}")
    return obj


def _stub(public: str, obj, message: str):
    """A stand-in for ``obj`` that raises HiddenError when used."""
    if isinstance(obj, type):

        def new(cls, *args, **kwargs):
            raise HiddenError(message)

        def init_subclass(cls, **kwargs):
            raise HiddenError(message)

        return type(
            obj.__name__,
            (),
            {
                "__new__": new,
                "__init_subclass__": classmethod(init_subclass),
                "__doc__": message,
                "__module__": obj.__module__,
            },
        )

    def hidden(*args, **kwargs):
        raise HiddenError(message)

    hidden.__name__ = getattr(obj, "__name__", public.rsplit(".", 1)[-1])
    hidden.__doc__ = message
    return hidden


class _BlockedModule(types.ModuleType):
    """Stands in for a module that may not be imported while grading."""

    def __init__(self, name: str, message: str):
        super().__init__(name)
        self.__message = message

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        raise HiddenError(self.__message)


def _ghostnp_modules():
    return [
        m
        for name, m in list(sys.modules.items())
        if m is not None and (name == "ghostnp" or name.startswith("ghostnp."))
    ]


class Hiding:
    """Context manager hiding ``HIDDEN[assignment]`` (or the given names) inside ghostnp.

        with Hiding("im2col") as hiding:
            ...                              # the library's conv2d raises HiddenError
            with hiding.revealed():
                expected = F.conv2d_forward(...)

    ``apply()`` is idempotent, so a grader can re-assert the hiding after each check.
    """

    def __init__(self, assignment: str, names=None):
        self.assignment = assignment
        self.names = tuple(HIDDEN[assignment] if names is None else names)
        self._patches = []  # (module, attribute, original, stub, public name)
        self._blocked = {}  # module name -> (blocked module, parent, attribute)
        self._active = False

    def _message(self, public: str) -> str:
        return (
            f"{public} is unavailable while the '{self.assignment}' assignment is graded: "
            "the assignment asks you to write it yourself"
        )

    def _collect(self) -> None:
        stubs = {}
        for public in self.names:
            obj = resolve(public)
            if isinstance(obj, _Unloaded):
                if obj.module not in self._blocked and obj.module not in sys.modules:
                    parent, _, attr = obj.module.rpartition(".")
                    msg = (
                        f"{obj.module} may not be imported while the '{self.assignment}' "
                        f"assignment is graded (it holds {public})"
                    )
                    self._blocked[obj.module] = (_BlockedModule(obj.module, msg), parent, attr)
                continue
            stubs.setdefault(id(obj), (obj, _stub(public, obj, self._message(public)), public))
        for module in _ghostnp_modules():
            for attr, value in list(vars(module).items()):
                hit = stubs.get(id(value))
                if hit is not None and hit[0] is value:
                    self._patches.append((module, attr, value, hit[1], hit[2]))

    def apply(self) -> None:
        """Put every stub in place (again)."""
        for module, attr, _, stub, _ in self._patches:
            setattr(module, attr, stub)
        for name, (blocked, parent, attr) in self._blocked.items():
            sys.modules[name] = blocked
            setattr(sys.modules[parent], attr, blocked)
        self._active = True

    def restore(self) -> None:
        """Put every original back (idempotent)."""
        for module, attr, original, _, _ in self._patches:
            setattr(module, attr, original)
        for name, (blocked, parent, attr) in self._blocked.items():
            if sys.modules.get(name) is blocked:
                del sys.modules[name]
            if getattr(sys.modules.get(parent), attr, None) is blocked:
                delattr(sys.modules[parent], attr)
        self._active = False

    @contextmanager
    def revealed(self, *prefixes):
        """Lift the hiding inside the block: all of it, or the names starting with one of
        ``prefixes`` (e.g. ``"ghostnp.gradcheck"``), so that the library computes the
        expected values. The hiding is back in place after the block. Blocked modules
        stay blocked (the grader runs on the NumPy backend, which never needs them)."""
        if not self._active:
            yield
            return
        chosen = [n for n in self.names if not prefixes or n.startswith(prefixes)]
        lifted = [p for p in self._patches if p[4] in chosen]
        for module, attr, original, _, _ in lifted:
            setattr(module, attr, original)
        try:
            yield
        finally:
            for module, attr, _, stub, _ in lifted:
                setattr(module, attr, stub)

    def __enter__(self):
        self._collect()
        self.apply()
        return self

    def __exit__(self, *exc):
        self.restore()
        return False
