"""The Optimizer base class, parameter groups, and optimizer state as plain arrays.

An optimizer owns a list of *parameter groups*. Each group is a dict holding its
parameters under ``"params"`` and its hyper-parameters (``lr``, ``weight_decay``, ...),
so different parts of a model can train with different settings and a learning-rate
scheduler can change ``group["lr"]`` between steps:

    opt = SGD([{"params": convs, "weight_decay": 5e-4},
               {"params": biases_and_bn, "weight_decay": 0.0}], lr=0.1, momentum=0.9)

Per-parameter state (momentum buffers, Adam's moments) lives in ``opt.state[p]``.
``state_dict()`` numbers the parameters by their position across the groups (as
PyTorch does), so the state can be loaded into a new optimizer over new Parameter
objects of the same shapes:

    {"state": {0: {"momentum_buffer": ndarray}, 2: {...}},      # only params with state
     "param_groups": [{"lr": 0.1, "momentum": 0.9, ..., "params": [0, 1, 2]}]}

`ghostnp.checkpoint` stores such a nested dict in an ``.npz`` file.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping

import numpy as np

from ..errors import StateDictError
from ..nn.module import Parameter

__all__ = ["Optimizer", "param_groups_no_decay"]


class Optimizer:
    """Base class: parameter groups, ``zero_grad``, ``step`` and state dicts.

    A subclass passes its default hyper-parameters to ``__init__``, lists the names of
    its per-parameter state in ``_state_keys``, checks a group's hyper-parameters in
    ``_check_group`` and updates one parameter in ``_update``.
    """

    _state_keys: tuple[str, ...] = ()

    def __init__(self, params, defaults: dict):
        self.defaults = dict(defaults)
        self.param_groups: list[dict] = []
        self.state: dict[Parameter, dict] = {}
        for group in self._as_groups(params):
            self.add_param_group(group)
        if not any(g["params"] for g in self.param_groups):
            raise ValueError(f"{self._name}: got an empty parameter list")

    @property
    def _name(self) -> str:
        return type(self).__name__

    # -- parameter groups ----------------------------------------------------------
    def _as_groups(self, params) -> list[dict]:
        """Accept an iterable of Parameters (one group) or an iterable of group dicts."""
        if isinstance(params, (Parameter, np.ndarray, dict, str)) or not isinstance(
            params, Iterable
        ):
            raise TypeError(
                f"{self._name}: params must be an iterable of Parameters or of param-group "
                f"dicts, got {type(params).__name__}"
            )
        items = list(params)  # a generator can be read only once
        if not items:
            raise ValueError(f"{self._name}: got an empty parameter list")
        if all(isinstance(x, dict) for x in items):
            return items
        if any(isinstance(x, dict) for x in items):
            raise TypeError(f"{self._name}: params mixes Parameters and param-group dicts")
        return [{"params": items}]

    def add_param_group(self, group: dict) -> None:
        """Append a group; hyper-parameters it does not set are taken from the defaults."""
        gi = len(self.param_groups)
        if not isinstance(group, dict):
            raise TypeError(f"{self._name}: param group {gi} is {type(group).__name__}, not a dict")
        if "params" not in group:
            raise ValueError(f"{self._name}: param group {gi} has no 'params' entry")
        params = group["params"]
        params = [params] if isinstance(params, Parameter) else list(params)
        for j, p in enumerate(params):
            if not isinstance(p, Parameter):
                hint = (
                    " (pass model.parameters(), not named_parameters())"
                    if isinstance(p, tuple)
                    else ""
                )
                raise TypeError(
                    f"{self._name}: param group {gi}, item {j} is {type(p).__name__}, "
                    f"not a Parameter{hint}"
                )
            if not np.issubdtype(p.data.dtype, np.floating):
                raise TypeError(
                    f"{self._name}: param group {gi}, item {j} has dtype {p.data.dtype}; "
                    "only floating-point parameters can be optimized"
                )
        seen: dict[Parameter, int] = {}
        for j, p in enumerate(params):
            if p in seen:
                raise ValueError(
                    f"{self._name}: param group {gi} lists a parameter of shape {p.shape} "
                    f"twice (items {seen[p]} and {j})"
                )
            seen[p] = j
        for k, other in enumerate(self.param_groups):
            for p in other["params"]:
                if p in seen:
                    raise ValueError(
                        f"{self._name}: a parameter of shape {p.shape} appears in param "
                        f"groups {k} and {gi}; each parameter may belong to one group only"
                    )
        new = {"params": params, **self.defaults}
        new.update({k: v for k, v in group.items() if k != "params"})
        self._check_group(new, gi)
        self.param_groups.append(new)

    def _check_group(self, group: dict, gi: int) -> None:
        """Raise ValueError/TypeError if a group's hyper-parameters are invalid."""
        self._real(group, "lr", gi, low=0.0)

    def _real(self, group, key, gi, low=None, high=None, high_open=False) -> float:
        """Check that ``group[key]`` is a finite real number in [low, high] (or [low, high))."""
        v = group[key]
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
            raise TypeError(
                f"{self._name}: {key} must be a real number, got {v!r} ({type(v).__name__}) "
                f"in param group {gi}"
            )
        x = float(v)
        too_high = high is not None and (x >= high if high_open else x > high)
        if not math.isfinite(x) or (low is not None and x < low) or too_high:
            rng = f"{'' if low is None else f'{low} <= '}{key}"
            rng += "" if high is None else f" {'<' if high_open else '<='} {high}"
            raise ValueError(
                f"{self._name}: invalid {key}={v!r} in param group {gi}: expected {rng}"
            )
        return x

    def _flag(self, group, key, gi) -> bool:
        v = group[key]
        if not isinstance(v, (bool, np.bool_)):
            raise TypeError(
                f"{self._name}: {key} must be True or False, got {v!r} in param group {gi}"
            )
        return bool(v)

    # -- the update ----------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients of this optimizer's parameters (None, or zeros in place)."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad[...] = 0

    def step(self) -> None:
        """Update every parameter that has a gradient; parameters whose grad is None are skipped."""
        index = 0
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    grad = self._grad_of(p, index)
                    state = self.state.setdefault(p, {})
                    for k, v in state.items():
                        # model.astype() may have changed the parameter's dtype since
                        # the buffer was made; the update follows the parameter
                        if isinstance(v, np.ndarray) and v.dtype != p.data.dtype:
                            state[k] = v.astype(p.data.dtype)
                    self._update(p, grad, state, group)
                index += 1

    def _grad_of(self, p: Parameter, index: int) -> np.ndarray:
        g = np.asarray(p.grad)
        if g.shape != p.data.shape:
            raise ValueError(
                f"{self._name}: parameter {index} has data of shape {p.data.shape} but a "
                f"grad of shape {g.shape}"
            )
        # the result must keep p.data's dtype, so the arithmetic is done in it
        return g if g.dtype == p.data.dtype else g.astype(p.data.dtype)

    def _update(self, p: Parameter, grad: np.ndarray, state: dict, group: dict) -> None:
        raise NotImplementedError(f"{self._name} does not define _update")

    # -- state dicts ---------------------------------------------------------------
    def state_dict(self) -> dict:
        """A copy of the state: ``{"state": {index: {...}}, "param_groups": [...]}``.

        Parameters are numbered by position across the groups; arrays are copies, so
        later steps do not change a saved state dict. Tuples (``betas``) become lists.
        """
        index: dict[Parameter, int] = {}
        groups = []
        for g in self.param_groups:
            packed = {k: _plain(v, k) for k, v in g.items() if k != "params"}
            packed["params"] = [index.setdefault(p, len(index)) for p in g["params"]]
            groups.append(packed)
        state = {
            index[p]: {k: _plain(v, k) for k, v in s.items()}
            for p, s in sorted(self.state.items(), key=lambda item: index.get(item[0], -1))
            if s and p in index
        }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping) -> None:
        """Replace hyper-parameters and per-parameter state with those in ``state_dict``.

        The groups must match this optimizer's in number and size, and every state array
        must have its parameter's shape (it is cast to the parameter's dtype). All
        problems are reported together in one StateDictError, and then nothing is changed.
        """
        name = self._name
        if not isinstance(state_dict, Mapping) or not {"state", "param_groups"} <= set(state_dict):
            raise StateDictError(
                f"{name}: load_state_dict expects a dict with 'state' and 'param_groups'"
            )
        saved_groups = list(state_dict["param_groups"])
        if len(saved_groups) != len(self.param_groups):
            raise StateDictError(
                f"{name}: load_state_dict got {len(saved_groups)} param group(s), "
                f"this optimizer has {len(self.param_groups)}; nothing was loaded"
            )
        problems: list[str] = []
        by_index: dict[int, Parameter] = {}
        new_groups = []
        for gi, (mine, saved) in enumerate(zip(self.param_groups, saved_groups, strict=True)):
            try:
                ids = [int(i) for i in saved.get("params", [])]
            except (TypeError, ValueError):
                problems.append(f"param group {gi}: 'params' must list parameter numbers")
                continue
            if len(ids) != len(mine["params"]):
                problems.append(
                    f"param group {gi}: {len(ids)} parameter(s) saved, "
                    f"{len(mine['params'])} in this optimizer"
                )
                continue
            by_index.update(zip(ids, mine["params"], strict=True))
            new = {"params": mine["params"]}
            for k, v in saved.items():
                if k != "params":
                    # betas come back from a state dict as a list
                    new[k] = tuple(v) if isinstance(mine.get(k), tuple) else v
            missing = [k for k in self.defaults if k not in new]
            if missing:
                problems.append(f"param group {gi}: missing hyper-parameter(s) {missing}")
                continue
            try:
                self._check_group(new, gi)
            except (TypeError, ValueError) as e:
                problems.append(str(e).removeprefix(f"{name}: "))
            new_groups.append(new)

        new_state: dict[Parameter, dict] = {}
        for idx, saved in dict(state_dict["state"]).items():
            p = by_index.get(int(idx)) if isinstance(idx, (int, np.integer)) else None
            if p is None:
                problems.append(f"state for parameter {idx!r}, which is not in the groups")
                continue
            entry = {}
            for k, v in saved.items():
                if k not in self._state_keys:
                    problems.append(
                        f"parameter {idx}: unexpected state entry {k!r} "
                        f"({name} keeps {list(self._state_keys)})"
                    )
                elif k == "step":
                    if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
                        problems.append(f"parameter {idx}: step must be an int, got {v!r}")
                    else:
                        entry[k] = int(v)
                else:
                    arr = np.asarray(v)
                    if not np.issubdtype(arr.dtype, np.number):
                        problems.append(f"parameter {idx}: {k} has dtype {arr.dtype}")
                    elif arr.shape != p.data.shape:
                        problems.append(
                            f"parameter {idx}: {k} has shape {arr.shape}, "
                            f"the parameter has shape {p.data.shape}"
                        )
                    else:
                        entry[k] = np.array(arr, dtype=p.data.dtype, copy=True)
            new_state[p] = entry

        if problems:
            raise StateDictError.from_problems(name, problems)
        for mine, new in zip(self.param_groups, new_groups, strict=True):
            # update in place: anyone holding a group dict keeps seeing the live one
            mine.clear()
            mine.update(new)
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{self._name} ("]
        for gi, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {gi}  ({len(g['params'])} params)")
            lines += [f"    {k}: {v}" for k, v in g.items() if k != "params"]
        return "\n".join(lines) + "\n)"


def _plain(value, key=""):
    """A copy of ``value`` made only of ndarrays, ints, floats, bools, strings, lists, dicts."""
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, (list, tuple)):
        return [_plain(v, key) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v, k) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"state entry {key!r} holds a {type(value).__name__}, which cannot be saved")


# -- weight decay only where it helps ------------------------------------------------
def param_groups_no_decay(model, weight_decay: float) -> list[dict]:
    """Two param groups: conv/linear weights with ``weight_decay``, the rest without.

    Weights (``ndim > 1``) get the decay; biases and BatchNorm's scale and shift
    (``ndim <= 1``) get none, because shrinking them toward zero does not regularize
    the function the network computes, it only shifts or rescales its features.
    """
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, numbers.Real):
        raise TypeError(
            f"param_groups_no_decay: weight_decay must be a number, got {weight_decay!r}"
        )
    if not weight_decay >= 0:
        raise ValueError(f"param_groups_no_decay: weight_decay must be >= 0, got {weight_decay!r}")
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        (decay if p.data.ndim > 1 else no_decay).append(p)
    return [
        {"params": decay, "weight_decay": float(weight_decay)},
        {"params": no_decay, "weight_decay": 0.0},
    ]
