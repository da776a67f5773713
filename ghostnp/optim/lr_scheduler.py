"""Learning-rate schedules: StepLR, CosineAnnealingLR and WarmupCosine.

A scheduler sets ``group["lr"]`` of every param group of its optimizer from a closed
form in the step count ``t`` and the group's base lr ``b`` (``group["initial_lr"]``,
recorded from ``group["lr"]`` when the first scheduler is built). Building it applies
``t = 0``; each ``step()`` advances ``t`` by one:

    sched = CosineAnnealingLR(opt, T_max=100)
    for batch in data:
        ...; opt.step(); sched.step()

Because the lr is computed from ``t`` rather than from the previous lr, loading a
state dict restores the schedule exactly, and an lr set by hand is overwritten at
the next ``step()``.
"""

from __future__ import annotations

import math
import numbers

from ..errors import StateDictError
from .optimizer import Optimizer

__all__ = ["LRScheduler", "StepLR", "CosineAnnealingLR", "WarmupCosine"]


class LRScheduler:
    """Base class: a subclass defines ``_lr(base_lr, t)`` and checks its settings in ``_check``."""

    _hyper: tuple[str, ...] = ()  # the settings kept in the state dict

    def __init__(self, optimizer: Optimizer, **settings):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(
                f"{type(self).__name__}: expected a ghostnp Optimizer, "
                f"got {type(optimizer).__name__}"
            )
        for k, v in self._check(settings).items():
            setattr(self, k, v)
        self.optimizer = optimizer
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.base_lrs = [float(g["initial_lr"]) for g in optimizer.param_groups]
        self.last_epoch = -1
        self._last_lr: list[float] = []
        self.step()

    def _check(self, settings: dict) -> dict:
        """Return the settings, validated and normalized; raise ValueError/TypeError."""
        return settings

    def _lr(self, base_lr: float, t: int) -> float:
        raise NotImplementedError(f"{type(self).__name__} does not define _lr")

    def lr_at(self, t: int) -> list[float]:
        """The lr of every group at step ``t`` (does not change anything)."""
        return [self._lr(b, t) for b in self.base_lrs]

    def step(self) -> None:
        """Advance one step and write the new lr into every param group."""
        self.last_epoch += 1
        self._apply()

    def _apply(self) -> None:
        self._last_lr = self.lr_at(self.last_epoch)
        for group, lr in zip(self.optimizer.param_groups, self._last_lr, strict=True):
            group["lr"] = lr

    def get_last_lr(self) -> list[float]:
        """The lr this scheduler last set, one per param group."""
        return list(self._last_lr)

    def state_dict(self) -> dict:
        """``{"last_epoch", "base_lrs", "last_lr", <settings>}``: ints, floats and lists only."""
        sd = {
            "last_epoch": self.last_epoch,
            "base_lrs": list(self.base_lrs),
            "last_lr": list(self._last_lr),
        }
        sd.update({k: getattr(self, k) for k in self._hyper})
        return sd

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore step count, base lrs and settings, and apply that step's lr to the groups.

        Every problem is reported in one StateDictError, and then nothing is changed.
        """
        name = type(self).__name__
        problems = [
            f"missing entry {k!r}"
            for k in ("last_epoch", "base_lrs", *self._hyper)
            if k not in state_dict
        ]
        if not problems:
            t = state_dict["last_epoch"]
            if isinstance(t, bool) or not isinstance(t, numbers.Integral) or t < 0:
                problems.append(f"last_epoch must be an int >= 0, got {t!r}")
            base_lrs = list(state_dict["base_lrs"])
            n = len(self.optimizer.param_groups)
            if len(base_lrs) != n:
                problems.append(f"{len(base_lrs)} base lr(s) saved, the optimizer has {n} group(s)")
            elif not all(_is_real(b) and b >= 0 for b in base_lrs):
                problems.append(f"base_lrs must be numbers >= 0, got {base_lrs}")
            try:
                settings = self._check({k: state_dict[k] for k in self._hyper})
            except (TypeError, ValueError) as e:
                problems.append(str(e).removeprefix(f"{name}: "))
        if problems:
            raise StateDictError.from_problems(name, problems)
        for k, v in settings.items():
            setattr(self, k, v)
        self.last_epoch = int(t)
        self.base_lrs = [float(b) for b in base_lrs]
        for group, b in zip(self.optimizer.param_groups, self.base_lrs, strict=True):
            group["initial_lr"] = b
        self._apply()

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={getattr(self, k)!r}" for k in self._hyper)
        return f"{type(self).__name__}({settings}, last_epoch={self.last_epoch})"


def _is_real(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def _need_int(cls: str, key: str, value, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{cls}: {key} must be an int, got {value!r}")
    if value < low:
        raise ValueError(f"{cls}: invalid {key}={value!r}: expected {key} >= {low}")
    return int(value)


def _need_real(cls: str, key: str, value, low: float, strict: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{cls}: {key} must be a real number, got {value!r}")
    if not math.isfinite(value) or value < low or (strict and value == low):
        raise ValueError(
            f"{cls}: invalid {key}={value!r}: expected {key} {'>' if strict else '>='} {low}"
        )
    return float(value)


class StepLR(LRScheduler):
    r"""Multiply the lr by ``gamma`` every ``step_size`` steps.

    With base lr ``b``, at step ``t``:

        lr_t = b · gamma^⌊t / step_size⌋
    """

    _hyper = ("step_size", "gamma")

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1):
        super().__init__(optimizer, step_size=step_size, gamma=gamma)

    def _check(self, s: dict) -> dict:
        return {
            "step_size": _need_int("StepLR", "step_size", s["step_size"], 1),
            "gamma": _need_real("StepLR", "gamma", s["gamma"], 0.0, strict=True),
        }

    def _lr(self, base_lr: float, t: int) -> float:
        return base_lr * self.gamma ** (t // self.step_size)


class CosineAnnealingLR(LRScheduler):
    r"""Half a cosine from the base lr down to ``eta_min`` over ``T_max`` steps:

        lr_t = eta_min + (b - eta_min) · (1 + cos(π t / T_max)) / 2

    This is the closed form of ``torch.optim.lr_scheduler.CosineAnnealingLR``; past
    ``T_max`` the cosine continues, so the lr rises again toward ``b`` at ``2 T_max``.
    """

    _hyper = ("T_max", "eta_min")

    def __init__(self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0):
        super().__init__(optimizer, T_max=T_max, eta_min=eta_min)

    def _check(self, s: dict) -> dict:
        return {
            "T_max": _need_int("CosineAnnealingLR", "T_max", s["T_max"], 1),
            "eta_min": _need_real("CosineAnnealingLR", "eta_min", s["eta_min"], 0.0),
        }

    def _lr(self, base_lr: float, t: int) -> float:
        return (
            self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * t / self.T_max)) / 2
        )


class WarmupCosine(LRScheduler):
    r"""Linear warmup to the base lr, then a half cosine down to ``min_lr``.

    With ``W = warmup_steps``, ``T = total_steps``, ``m = min_lr`` and base lr ``b``:

        lr_t = b · (t + 1) / (W + 1)                              for 0 <= t < W
        lr_t = m + (b - m) · (1 + cos(π (t - W) / (T - W))) / 2   for W <= t < T
        lr_t = m                                                  for t >= T

    The warmup starts at ``b / (W + 1)`` rather than 0, so the first step already
    moves the weights, and climbs in equal steps to reach ``b`` exactly at ``t = W``,
    where the cosine begins; the cosine reaches ``m`` at ``t = T`` and stays there.
    ``warmup_steps = 0`` gives a plain cosine schedule.
    """

    _hyper = ("warmup_steps", "total_steps", "min_lr")

    def __init__(
        self, optimizer: Optimizer, warmup_steps: int, total_steps: int, min_lr: float = 0.0
    ):
        super().__init__(
            optimizer, warmup_steps=warmup_steps, total_steps=total_steps, min_lr=min_lr
        )

    def _check(self, s: dict) -> dict:
        w = _need_int("WarmupCosine", "warmup_steps", s["warmup_steps"], 0)
        total = _need_int("WarmupCosine", "total_steps", s["total_steps"], 1)
        if total <= w:
            raise ValueError(
                f"WarmupCosine: total_steps={total} must exceed warmup_steps={w} "
                "(the cosine needs at least one step)"
            )
        return {
            "warmup_steps": w,
            "total_steps": total,
            "min_lr": _need_real("WarmupCosine", "min_lr", s["min_lr"], 0.0),
        }

    def _lr(self, base_lr: float, t: int) -> float:
        w, total, m = self.warmup_steps, self.total_steps, self.min_lr
        if t < w:
            return base_lr * (t + 1) / (w + 1)
        if t >= total:
            return m
        return m + (base_lr - m) * (1 + math.cos(math.pi * (t - w) / (total - w))) / 2
