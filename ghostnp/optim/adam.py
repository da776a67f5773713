"""Adam and AdamW: per-element step sizes from running moments of the gradient."""

from __future__ import annotations

import math

import numpy as np

from ..nn.module import Parameter
from .optimizer import Optimizer

__all__ = ["Adam", "AdamW"]


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015), the same update as ``torch.optim.Adam``.

    For each parameter ``p`` with gradient ``g`` (lr ``η``, betas ``β1, β2``, weight
    decay ``λ``); ``t`` counts the steps this parameter has taken, from 1:

        g  = -g if maximize else g
        g  = g + λ p                              (L2 decay, part of the gradient)
        m  = β1 m + (1 - β1) g                    (first moment, m_0 = 0)
        v  = β2 v + (1 - β2) g²                   (second moment, v_0 = 0)
        v̂  = max(v̂, v)  if amsgrad  else  v
        p  = p - (η / (1 - β1^t)) · m / (sqrt(v̂) / sqrt(1 - β2^t) + ε)

    The divisions by ``1 - β^t`` undo the bias of ``m`` and ``v`` toward their zero
    start. ``state[p]`` holds ``step`` (t), ``exp_avg`` (m), ``exp_avg_sq`` (v) and,
    with amsgrad, ``max_exp_avg_sq`` (v̂). A parameter whose ``grad`` is None is
    skipped and its ``t`` does not advance.
    """

    _state_keys = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _decoupled = False  # AdamW decays the weights outside the gradient

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        maximize: bool = False,
    ):
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            maximize=maximize,
        )
        super().__init__(params, defaults)

    def _check_group(self, group: dict, gi: int) -> None:
        self._real(group, "lr", gi, low=0.0)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(
                f"{self._name}: betas must be a pair (beta1, beta2), got {betas!r} "
                f"in param group {gi}"
            )
        group["betas"] = tuple(betas)
        for i, beta in enumerate(betas):
            self._real({f"beta{i + 1}": beta}, f"beta{i + 1}", gi, 0.0, 1.0, high_open=True)
        self._real(group, "eps", gi, low=0.0)
        self._real(group, "weight_decay", gi, low=0.0)
        self._flag(group, "amsgrad", gi)
        self._flag(group, "maximize", gi)

    def _update(self, p: Parameter, grad, state: dict, group: dict) -> None:
        lr = float(group["lr"])
        beta1, beta2 = (float(b) for b in group["betas"])
        eps = float(group["eps"])
        wd = float(group["weight_decay"])

        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(p.data)
            state["exp_avg_sq"] = np.zeros_like(p.data)
        state["step"] += 1
        t = state["step"]

        g = -grad if group["maximize"] else grad
        if wd != 0:
            if self._decoupled:
                p.data *= 1 - lr * wd
            else:
                g = g + wd * p.data  # a new array: p.grad itself is never changed

        m, v = state["exp_avg"], state["exp_avg_sq"]
        m += (1 - beta1) * (g - m)  # = β1 m + (1 - β1) g: m moves a fraction 1 - β1 toward g
        v *= beta2
        v += (1 - beta2) * g * g
        if group["amsgrad"]:
            vmax = state.setdefault("max_exp_avg_sq", np.zeros_like(p.data))
            np.maximum(vmax, v, out=vmax)
            v = vmax

        step_size = lr / (1 - beta1**t)
        denom = np.sqrt(v) / math.sqrt(1 - beta2**t)
        denom += eps
        p.data -= step_size * m / denom


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter, 2019), as ``torch.optim.AdamW``.

    The decay shrinks the weights directly instead of entering the gradient, so it is
    not rescaled by Adam's per-element step sizes. Before the Adam update above (which
    then runs with ``λ = 0``):

        p = p (1 - η λ)
    """

    _decoupled = True

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        maximize: bool = False,
    ):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize)
