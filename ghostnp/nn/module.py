"""Parameter, Module, Sequential and ModuleList: the bookkeeping under every layer.

A Module computes ``y = module(x)`` (which calls ``forward`` and keeps what backward
needs) and ``dx = module.backward(dy)`` (which adds each parameter's gradient into
``p.grad`` and returns the gradient for its input). Parameters, buffers and children
are found by attribute assignment, as in PyTorch, so state-dict keys are the attribute
paths: ``blocks.3.0.ghost1.primary_conv.0.weight``.

Every module knows its own path inside the model it was put into, and an input error
raised anywhere below it is reported under the innermost module's path.

What a forward keeps only for its backward lives in attributes named in
``BACKWARD_STATE`` (``_cache``, ``_caches``, ...). Inside `ghostnp.no_grad` those
assignments store None instead, so a forward keeps nothing a backward would need,
and a later backward says why it cannot run.

A model with buffers (batch-norm running statistics) refuses NaN or infinite input
in train mode at its outermost call, before any layer runs: one bad pixel would
otherwise turn every running statistic into NaN for good.

Forward hooks (``register_forward_hook``) see each output, backward hooks
(``register_full_backward_hook``) each gradient, and ``last_cache`` shows what a
forward kept for its backward. The bookkeeping around every call (hooks, the input
check, error paths) lives in `ghostnp.nn._call`, a module a debugger can skip:
``pdb.Pdb(skip=["ghostnp.nn._call"])``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, overload

import numpy as np

from ..errors import LayerStateError, StateDictError
from ..grad_mode import is_grad_enabled
from . import _call

if TYPE_CHECKING:
    from .inline import InlineOp

__all__ = [
    "Parameter",
    "Module",
    "Sequential",
    "ModuleList",
    "RemovableHandle",
    "BACKWARD_STATE",
    "read_only",
]

# attributes a forward sets only so that backward can run; not kept under no_grad
BACKWARD_STATE = frozenset({"_cache", "_caches", "_saved", "_gate", "_shape", "_out_shape"})

M = TypeVar("M", bound="Module")
C = TypeVar("C")
ForwardHook = Callable[["Module", tuple[Any, ...], Any], Any]
BackwardHook = Callable[["Module", tuple[Any, ...], tuple[Any, ...]], Any]


class Parameter:
    """A trainable array ``data`` and its accumulated gradient ``grad`` (None until backward)."""

    __slots__ = ("data", "grad")

    def __init__(self, data: Any) -> None:
        self.data: np.ndarray = np.array(data, copy=True)
        self.grad: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of ``data``."""
        return self.data.shape

    @property
    def dtype(self) -> np.dtype[Any]:
        """The dtype of ``data``."""
        return self.data.dtype

    @property
    def size(self) -> int:
        """The number of scalars in ``data``."""
        return self.data.size

    def accumulate(self, g: np.ndarray) -> None:
        """Add ``g`` into ``grad``: gradients of a value used several times sum."""
        if g.shape != self.data.shape:
            raise ValueError(
                f"gradient of shape {tuple(g.shape)} for a parameter of shape {self.data.shape}"
            )
        if self.grad is None:
            self.grad = np.array(g, dtype=self.data.dtype, copy=True)
        else:
            self.grad += g

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class RemovableHandle:
    """What registering a hook returns: ``remove()`` unregisters it (again is harmless).

    Also a context manager: ``with m.register_full_backward_hook(h): ...`` removes the
    hook on leaving the block.
    """

    def __init__(self, hooks: OrderedDict[object, Any], hook: Any) -> None:
        self._hooks = hooks
        self._key = object()
        hooks[self._key] = hook

    def remove(self) -> None:
        """Unregister the hook."""
        self._hooks.pop(self._key, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def read_only(value: Any) -> Any:
    """``value`` with every ndarray inside replaced by a read-only view of it.

    Named tuples, tuples, lists and dicts are rebuilt around the views (lists as tuples);
    anything else (numbers, shapes, geometry objects) is returned as it is. The arrays
    are not copied: a view shares the memory and only refuses writes through it.
    """
    if isinstance(value, np.ndarray):
        view = value.view()
        view.flags.writeable = False
        return view
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple
        return type(value)(*(read_only(v) for v in value))
    if isinstance(value, (tuple, list)):
        return tuple(read_only(v) for v in value)
    if isinstance(value, dict):
        return {k: read_only(v) for k, v in value.items()}
    return value


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


class Module:
    """Base class of layers and models: holds parameters, buffers and child modules."""

    # set by __init__ (past __setattr__, which files values into these)
    _parameters: OrderedDict[str, Parameter]
    _buffers: OrderedDict[str, Any]
    _modules: OrderedDict[str, Module]
    _forward_hooks: OrderedDict[object, ForwardHook]
    _backward_hooks: OrderedDict[object, BackwardHook]
    _path: str
    _forward_without_grad: bool
    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "_backward_hooks", OrderedDict())
        object.__setattr__(self, "_path", "")
        object.__setattr__(self, "_forward_without_grad", False)
        object.__setattr__(self, "training", True)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fn = cls.__dict__.get("backward")
        if fn is not None and not getattr(fn, "_ghostnp_located", False):
            cls.backward = _call.located_backward(fn)  # type: ignore[method-assign]

    # -- registration --------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() first")
        params, bufs, mods = self._parameters, self._buffers, self._modules
        if isinstance(value, Parameter):
            bufs.pop(name, None)
            mods.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None)
            bufs.pop(name, None)
            mods[name] = value
            value._set_path(_join(self._path, name))
        elif name in BACKWARD_STATE and value is not None:
            # a cache for backward: dropped under no_grad, and remembered that it was
            dropped = not is_grad_enabled()
            object.__setattr__(self, "_forward_without_grad", dropped)
            value = None if dropped else value
        elif name in bufs:
            bufs[name] = value
        elif name in params or name in mods:
            if value is not None:
                raise TypeError(
                    f"{self.where}: cannot replace {name!r} with {type(value).__name__}"
                )
            params.pop(name, None)  # e.g. ``self.bias = None``
            mods.pop(name, None)
        object.__setattr__(self, name, value)

    def register_buffer(self, name: str, value: np.ndarray) -> None:
        """Keep a non-trainable array (e.g. BN running stats) in the state dict."""
        self._buffers[name] = value
        object.__setattr__(self, name, value)

    def add_module(self, name: str, module: Module) -> None:
        """Register ``module`` as the child ``name`` (the same as assigning the attribute)."""
        setattr(self, name, module)

    def _set_path(self, path: str) -> None:
        object.__setattr__(self, "_path", path)
        for name, child in self._modules.items():
            child._set_path(_join(path, name))

    @property
    def path(self) -> str:
        """This module's dotted path in the model it belongs to ('' for the root)."""
        return self._path

    @property
    def where(self) -> str:
        """How errors name this module: ``"path (Class)"`` or just the class at the root."""
        cls = type(self).__name__
        return f"{self._path} ({cls})" if self._path else cls

    # -- computation ---------------------------------------------------------------
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Compute the output and keep what the backward pass needs. Called by
        ``module(x)``, which also runs the forward hooks."""
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def backward(self, dy: Any) -> Any:
        """Given dL/d(output) of the last forward pass, add each parameter's gradient into
        its ``grad`` and return dL/d(input)."""
        raise NotImplementedError(f"{type(self).__name__} does not define backward")

    # a module that owns no state and whose input is checked by its caller (a loss)
    # sets this to False
    check_finite_input = True

    # True for a leaf whose forward only selects, copies or zero-fills values (Flatten,
    # Identity, a zero-padding shortcut): every FLOP convention counts it as 0
    moves_data_only = False

    def inline_ops(
        self,
        x_shape: tuple[int, ...],
        y_shape: tuple[int, ...],
        shapes: Mapping[str, tuple[int, ...]],
    ) -> list[InlineOp]:
        """The operations this module's own ``forward`` computes between its children's
        calls, as a list of `ghostnp.nn.inline.InlineOp` (none for most modules; a
        composite that adds, multiplies or concatenates says so here).

        ``x_shape`` and ``y_shape`` are the shapes of the module's input and output,
        ``shapes`` maps the path of each descendant that ran, relative to this module
        (``"cheap_operation"``, ``"dw_rpr_conv.2"``), to the shape of its output.
        """
        return []

    # module(x): see ghostnp.nn._call, where the bookkeeping around forward lives
    __call__ = _call.call

    def register_forward_hook(self, hook: ForwardHook) -> RemovableHandle:
        """Call ``hook(module, inputs, output)`` after every forward; returns a handle with ``remove()``."""
        return RemovableHandle(self._forward_hooks, hook)

    def register_full_backward_hook(self, hook: BackwardHook) -> RemovableHandle:
        """Call ``hook(module, grad_input, grad_output)`` after every ``backward`` of this module.

        As in PyTorch, ``grad_output`` is a tuple holding the gradient that arrived (dL/d
        output, the ``dy`` given to ``backward``; empty for a loss, whose backward takes no
        gradient) and ``grad_input`` a tuple holding the gradient that leaves (dL/d input,
        what ``backward`` returns). The hook may return None, or a tuple of one array of
        the same shape that replaces grad_input: the later hooks and the caller then see
        the replacement. Parameter gradients are already accumulated when the hook runs.
        Hooks run in the order they were registered, a child's before its parent's (the
        child's backward finishes first). Returns a handle whose ``remove()`` unregisters
        the hook; the handle also works as a context manager.
        """
        return RemovableHandle(self._backward_hooks, hook)

    def _need(self, cache: C | None) -> C:
        """Return ``cache`` or raise the error for backward-before-forward (or after a
        forward under `ghostnp.no_grad`, which keeps no cache)."""
        if cache is None:
            if self._forward_without_grad:
                raise LayerStateError(
                    self.where,
                    "backward called after a forward that ran under ghostnp.no_grad(), "
                    "which keeps nothing for backward; run the forward outside no_grad first",
                )
            raise LayerStateError(self.where, "backward called before forward")
        return cache

    @property
    def last_cache(self) -> Any:
        """What the last forward pass kept for this module's backward, to look at.

        Every array in it is a read-only view (writing raises ValueError), so looking
        cannot change what ``backward`` will compute. For a layer this is the cache of
        its functional op, e.g. a ``Conv2dCache`` (``cols``, ``w``, ``geom``) or a
        ``BatchNormCache`` (``xhat``, ``inv_std``, ...). A module that keeps its
        backward state in several attributes (a GhostModuleV2: the Ghost module's caches
        and the gate) gives a dict from attribute name (without the underscore) to each.

        None when nothing is kept: before the first forward, for a module whose forward
        keeps nothing (Sequential: its children keep theirs), and after a forward under
        `ghostnp.no_grad`, which keeps no cache at all.
        """
        kept = {
            name.lstrip("_"): value
            for name, value in vars(self).items()
            if name in BACKWARD_STATE and value is not None
        }
        if not kept:
            return None
        return read_only(next(iter(kept.values())) if len(kept) == 1 else kept)

    # -- traversal -----------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """Yield (path, module) for this module and every descendant, depth first."""
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(_join(prefix, name))

    def modules(self) -> Iterator[Module]:
        """Yield this module and every descendant, depth first."""
        for _, m in self.named_modules():
            yield m

    def children(self) -> Iterator[Module]:
        """Yield the direct child modules, in registration order."""
        yield from self._modules.values()

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """Yield (name, module) for each direct child, in registration order."""
        yield from self._modules.items()

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Yield (dotted name, Parameter) for every parameter, each object once."""
        seen = set()
        for path, m in self.named_modules(prefix):
            for name, p in m._parameters.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield _join(path, name), p

    def parameters(self) -> list[Parameter]:
        """Every Parameter of this module and its descendants, each object once."""
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        """Yield (dotted name, array) for every buffer (e.g. batch norm's running statistics)."""
        for path, m in self.named_modules(prefix):
            for name, b in m._buffers.items():
                yield _join(path, name), b

    def num_parameters(self) -> int:
        """Total number of trainable scalars."""
        return int(sum(p.size for p in self.parameters()))

    # -- modes and dtype -----------------------------------------------------------
    def train(self: M, mode: bool = True) -> M:
        """Set training mode (batch statistics, dropout on) on this module and its
        descendants, or evaluation mode with ``mode=False``; returns self."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self: M) -> M:
        """Evaluation mode (running statistics, dropout off); the same as ``train(False)``."""
        return self.train(False)

    def zero_grad(self) -> None:
        """Forget accumulated gradients (``grad`` becomes None, as PyTorch's default)."""
        for p in self.parameters():
            p.grad = None

    def astype(self: M, dtype: Any) -> M:
        """Cast parameters, gradients and floating buffers to ``dtype`` (in place); returns self."""
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"{self.where}: astype expects float32 or float64, got {dtype}")
        for p in self.parameters():
            p.data = p.data.astype(dtype)
            if p.grad is not None:
                p.grad = p.grad.astype(dtype)
        for m in self.modules():
            for name, b in list(m._buffers.items()):
                if isinstance(b, np.ndarray) and np.issubdtype(b.dtype, np.floating):
                    setattr(m, name, b.astype(dtype))
        return self

    # -- state dict ----------------------------------------------------------------
    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """name -> copy of each parameter and buffer, keyed by PyTorch-style paths."""
        sd = OrderedDict()
        for path, m in self.named_modules():
            for name, p in m._parameters.items():
                sd[_join(path, name)] = p.data.copy()
            for name, b in m._buffers.items():
                sd[_join(path, name)] = np.array(b, copy=True)
        return sd

    def _state_slots(self) -> OrderedDict[str, tuple[Module, str, bool]]:
        """name -> (owner module, attribute, is_parameter) for every state-dict entry."""
        slots = OrderedDict()
        for path, m in self.named_modules():
            for name in m._parameters:
                slots[_join(path, name)] = (m, name, True)
            for name in m._buffers:
                slots[_join(path, name)] = (m, name, False)
        return slots

    def load_state_dict(self: M, state_dict: Mapping[str, Any], strict: bool = True) -> M:
        """Copy arrays from ``state_dict`` into the parameters and buffers (cast to their dtype).

        Every problem (missing, unexpected, wrong shape, not numeric) is collected and
        raised as one StateDictError before anything is changed; its message counts
        them and lists the first few of each kind (``err.problems`` has them all). ``num_batches_tracked``
        may be absent (older checkpoints lack it). With ``strict=False`` missing and
        unexpected keys are ignored, but shapes must still match.
        """
        slots = self._state_slots()
        missing = [
            k for k in slots if k not in state_dict and not k.endswith("num_batches_tracked")
        ]
        unexpected = [k for k in state_dict if k not in slots]
        bad = []
        staged = []
        for k, v in state_dict.items():
            if k not in slots:
                continue
            m, name, _ = slots[k]
            cur = getattr(m, name)
            cur_arr = cur.data if isinstance(cur, Parameter) else np.asarray(cur)
            arr = np.asarray(v)
            if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
                bad.append(f"{k}: expected a numeric array, got dtype {arr.dtype}")
            elif arr.shape != cur_arr.shape:
                bad.append(f"{k}: expected shape {cur_arr.shape}, got {arr.shape}")
            else:
                staged.append((m, name, arr.astype(cur_arr.dtype, copy=True)))
        problems = {"wrong entry": bad}
        if strict:
            problems = {
                "missing key": [f"missing key: {k}" for k in missing],
                "unexpected key": [f"unexpected key: {k}" for k in unexpected],
                **problems,
            }
        if any(problems.values()):
            raise StateDictError.from_problems(self.where, problems)
        for m, name, arr in staged:
            cur = getattr(m, name)
            if isinstance(cur, Parameter):
                cur.data = arr
            else:
                setattr(m, name, arr)
        return self

    # -- printing ------------------------------------------------------------------
    def extra_repr(self) -> str:
        """The constructor arguments shown in ``repr(module)``."""
        return ""

    def __repr__(self) -> str:
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not self._modules:
            return head + ")"
        lines = [head]
        for name, child in self._modules.items():
            sub = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {sub}")
        return "\n".join(lines) + "\n)"


class Sequential(Module):
    """Children applied in order; backward runs them in reverse. Children are named 0, 1, ..."""

    def __init__(self, *modules: Module | OrderedDict[str, Module]) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                setattr(self, name, m)
        else:
            for i, item in enumerate(modules):
                if not isinstance(item, Module):
                    raise TypeError(f"Sequential: item {i} is {type(item).__name__}, not a Module")
                setattr(self, str(i), item)

    def append(self, module: Module) -> Sequential:
        """Add ``module`` at the end (named by its index); returns self."""
        setattr(self, str(len(self._modules)), module)
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    @overload
    def __getitem__(self, idx: int) -> Module: ...
    @overload
    def __getitem__(self, idx: slice) -> Sequential: ...
    def __getitem__(self, idx: int | slice) -> Module | Sequential:
        items = list(self._modules.values())
        if isinstance(idx, slice):
            return Sequential(*items[idx])
        return items[idx]

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            x = m(x)
        return x

    def backward(self, dy: Any) -> Any:
        for m in reversed(self._modules.values()):
            dy = m.backward(dy)
        return dy


class ModuleList(Module):
    """A list of modules that are registered (named 0, 1, ...) but not chained."""

    def __init__(self, modules: Iterable[Module] = ()) -> None:
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module: Module) -> ModuleList:
        """Add ``module`` at the end (named by its index); returns self."""
        setattr(self, str(len(self._modules)), module)
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, idx: int) -> Module:
        return list(self._modules.values())[idx]
