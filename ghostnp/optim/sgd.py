"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay."""

from __future__ import annotations

from ..nn.module import Parameter
from .optimizer import Optimizer

__all__ = ["SGD"]


class SGD(Optimizer):
    r"""Stochastic gradient descent, the same update as ``torch.optim.SGD``.

    For each parameter ``p`` with gradient ``g`` at step ``t`` (lr ``η``, momentum
    ``μ``, dampening ``τ``, weight decay ``λ``):

        d   = -g if maximize else g
        d   = d + λ p                            (L2 weight decay, before momentum)
        b_1 = d                                  (first step: buffer = d, not dampened)
        b_t = μ b_{t-1} + (1 - τ) d              (later steps)
        d   = d + μ b_t   if nesterov  else  b_t      (only when μ != 0)
        p   = p - η d

    The momentum buffer ``b`` is kept in ``state[p]["momentum_buffer"]`` only when
    ``μ != 0``. A parameter whose ``grad`` is None is skipped, and its buffer waits.
    """

    _state_keys = ("momentum_buffer",)

    def __init__(
        self,
        params,
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        maximize: bool = False,
    ):
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict, gi: int) -> None:
        self._real(group, "lr", gi, low=0.0)
        momentum = self._real(group, "momentum", gi, low=0.0, high=1.0, high_open=True)
        dampening = self._real(group, "dampening", gi, low=0.0, high=1.0)
        self._real(group, "weight_decay", gi, low=0.0)
        self._flag(group, "maximize", gi)
        if self._flag(group, "nesterov", gi) and (momentum == 0 or dampening != 0):
            raise ValueError(
                f"SGD: nesterov=True needs momentum > 0 and dampening = 0, got "
                f"momentum={group['momentum']!r}, dampening={group['dampening']!r} "
                f"in param group {gi}"
            )

    def _update(self, p: Parameter, grad, state: dict, group: dict) -> None:
        lr = float(group["lr"])
        mu = float(group["momentum"])
        tau = float(group["dampening"])
        wd = float(group["weight_decay"])

        d = -grad if group["maximize"] else grad
        if wd != 0:
            d = d + wd * p.data  # a new array: p.grad itself is never changed
        if mu != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                # starting from zero would make the first steps too small
                buf = state["momentum_buffer"] = d.copy()
            else:
                buf *= mu
                buf += (1 - tau) * d
            # Nesterov: look ahead along the velocity before stepping
            d = d + mu * buf if group["nesterov"] else buf
        p.data -= lr * d
