"""Folding batch norm into the convolution before it, for inference.

In eval mode a BatchNorm2d is a fixed affine map per channel. With the running
statistics mean, var (C_out,), the affine parameters gamma, beta (C_out,) and

    s = gamma / sqrt(var + eps)                                  # (C_out,)

a conv z = W * x + b followed by BN gives

    y = s * (z - mean) + beta = W' * x + b', where
    W' = s[:, None, None, None] * W                              # (C_out, C_in/groups, kh, kw)
    b' = s * (b - mean) + beta                                   # (C_out,)

so the pair is one convolution with weight W' and bias b' (b = 0 for a conv without
bias). Nothing about the geometry changes: stride, padding, dilation and groups stay.
The identity only holds with *running* statistics: in train mode BN normalises with the
statistics of the current batch, which no fixed W', b' can reproduce, hence the eval
mode requirement (PyTorch asserts the same).

    fused = fuse_conv_bn_eval(conv, bn)          # a new Conv2d with bias (as torch)
    w, b = fuse_conv_bn_weights(conv.weight.data, None, bn.running_mean, bn.running_var,
                                bn.eps, bn.weight.data, bn.bias.data)
    model = fuse_model(model.eval())             # an inference copy, every pair folded

``fuse_model`` folds every conv whose output goes only into a BatchNorm2d: consecutive
children of a Sequential, and the pairs a module declares with ``conv_bn_pairs()``
(GhostBottleneck's ``conv_dw``/``bn_dw``, BasicBlock's ``conv1``/``bn1`` and
``conv2``/``bn2``). Each BN is replaced by an Identity, so module paths keep their
meaning. Modules with a ``reparameterize()`` method (GhostNetV3's) are folded first.
"""

from __future__ import annotations

import copy
from typing import TypeVar

import numpy as np
from numpy.typing import ArrayLike

from ...errors import LayerStateError
from ..layers import BatchNorm2d, Conv2d, Identity
from ..module import Module, Parameter, Sequential

M = TypeVar("M", bound=Module)

__all__ = ["FusionModeError", "fuse_conv_bn_weights", "fuse_conv_bn_eval", "fold_bn", "fuse_model"]


class FusionModeError(LayerStateError, AssertionError):
    """Folding asked of a layer in train mode. An AssertionError, as PyTorch raises, and a
    RuntimeError naming the layer, as ghostnp's other state errors."""


def fuse_conv_bn_weights(
    conv_w: ArrayLike,
    conv_b: ArrayLike | None,
    bn_rm: ArrayLike,
    bn_rv: ArrayLike,
    bn_eps: float,
    bn_w: ArrayLike | None,
    bn_b: ArrayLike | None,
    transpose: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The weight and bias of conv-then-BN as one conv (PyTorch's function of that name).

    conv_w (C_out, C_in/groups, kh, kw) and conv_b (C_out,) or None; BN running mean and
    variance, eps, weight and bias (C_out,), weight/bias None meaning 1/0. With
    ``transpose=True`` the output channels are conv_w's second axis (a transposed conv's
    layout). Returns (w', b'): w' shaped and typed like conv_w, b' (C_out,) typed like
    conv_b (like conv_w when conv_b is None). Computed in float64, then cast.
    """
    w = np.asarray(conv_w)
    out_axis = 1 if transpose else 0
    c = w.shape[out_axis]
    rm, rv = np.asarray(bn_rm, np.float64), np.asarray(bn_rv, np.float64)
    if rm.shape != (c,) or rv.shape != (c,):
        raise ValueError(
            f"fuse_conv_bn_weights: the conv has {c} output channels but the BN statistics "
            f"have shapes {rm.shape} and {rv.shape}"
        )
    gamma = np.ones(c) if bn_w is None else np.asarray(bn_w, np.float64)
    beta = np.zeros(c) if bn_b is None else np.asarray(bn_b, np.float64)
    b = np.zeros(c) if conv_b is None else np.asarray(conv_b, np.float64)
    s = gamma / np.sqrt(rv + float(bn_eps))  # (C_out,)
    shape = [1] * w.ndim
    shape[out_axis] = -1
    fused_w = (w.astype(np.float64) * s.reshape(shape)).astype(w.dtype)
    fused_b = ((b - rm) * s + beta).astype(w.dtype if conv_b is None else np.asarray(conv_b).dtype)
    return fused_w, fused_b


def fold_bn(
    conv_w: ArrayLike, conv_b: ArrayLike | None, bn: BatchNorm2d, transpose: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """``fuse_conv_bn_weights`` with the statistics, eps and affine parameters read from
    ``bn``, which must be in eval mode (FusionModeError otherwise) and track running
    statistics. Returns (w', b') as that function does."""
    if bn.training:
        raise FusionModeError(
            bn.where,
            "Fusion only for eval! This layer is in train mode, where batch norm uses the "
            "statistics of each batch; folding needs its running statistics (call .eval())",
        )
    if bn.running_mean is None or bn.running_var is None:
        raise FusionModeError(
            bn.where, "bn.running_mean and bn.running_var must not be None (no running stats)"
        )
    return fuse_conv_bn_weights(
        conv_w,
        conv_b,
        bn.running_mean,
        bn.running_var,
        bn.eps,
        None if bn.weight is None else bn.weight.data,
        None if bn.bias is None else bn.bias.data,
        transpose,
    )


def _copy_module(m: M) -> M:
    """A deep copy of ``m`` without the cache of its last forward pass."""
    cache = m.__dict__.get("_cache")
    memo = {} if cache is None else {id(cache): None}
    return copy.deepcopy(m, memo)


def fuse_conv_bn_eval(conv: Conv2d, bn: BatchNorm2d, transpose: bool = False) -> Conv2d:
    """A new Conv2d with bias computing ``bn(conv(x))`` of the eval-mode pair (PyTorch's
    function of that name). Both must be in eval mode: otherwise FusionModeError, an
    AssertionError saying "Fusion only for eval!" as torch's does. The inputs are not
    changed; the result is in eval mode and has no gradients.
    """
    if not isinstance(conv, Conv2d) or not isinstance(bn, BatchNorm2d):
        raise TypeError(
            f"fuse_conv_bn_eval: expected a Conv2d and a BatchNorm2d, got "
            f"{type(conv).__name__} and {type(bn).__name__}"
        )
    if conv.training:
        raise FusionModeError(
            conv.where,
            "Fusion only for eval! This conv is in train mode; put it and its batch norm in "
            "eval mode, where the BN uses its running statistics (call .eval())",
        )
    if bn.num_features != conv.out_channels:
        raise ValueError(
            f"fuse_conv_bn_eval: {conv.where} has {conv.out_channels} output channels, "
            f"{bn.where} normalises {bn.num_features}"
        )
    w, b = fold_bn(conv.weight.data, None if conv.bias is None else conv.bias.data, bn, transpose)
    fused = _copy_module(conv)
    fused.weight = Parameter(w)
    fused.bias = Parameter(b)
    return fused


def _conv_bn_pairs(owner: Module) -> list[tuple[str, Conv2d, str, BatchNorm2d]]:
    """(name, conv, name, bn) of ``owner``'s children where the conv feeds only that BN."""
    declared = getattr(owner, "conv_bn_pairs", None)
    if callable(declared):
        pairs = declared()
    elif isinstance(owner, Sequential):  # a chain: each child's output feeds the next only
        names = list(owner._modules)
        pairs = list(zip(names[:-1], names[1:], strict=True))
    else:
        return []
    found = []
    for c, b in pairs:
        conv, bn = owner._modules.get(c), owner._modules.get(b)
        if (
            isinstance(conv, Conv2d)
            and isinstance(bn, BatchNorm2d)
            and bn.num_features == conv.out_channels
        ):
            found.append((c, conv, b, bn))
    return found


def fuse_model(model: M, inplace: bool = False) -> M:
    """An inference model in which every conv followed by a BN is one conv with bias.

    ``model`` must be in eval mode (FusionModeError otherwise, for the reason above).
    Returns a deep copy (or ``model`` itself with ``inplace=True``) in eval mode where
    each folded BN is an Identity, so paths are unchanged but the BN entries leave the
    state dict and each folded conv gains a ``bias``. Re-parameterizable modules
    (GhostNetV3) are switched to their deploy form first. The result computes the same
    eval outputs up to rounding, has a working backward (plain convs), and is meant for
    inference: training it trains the folded convs without batch norm.
    """
    training = [m for m in model.modules() if m.training]
    if training:
        raise FusionModeError(
            training[0].where,
            "Fusion only for eval! fuse_model needs the model in eval mode: batch norm "
            "folds with its running statistics, which train mode does not use (call .eval())",
        )
    if not inplace:
        model = copy.deepcopy(model)
    for m in list(model.modules()):
        reparameterize = getattr(m, "reparameterize", None)
        if callable(reparameterize):
            reparameterize()
    for owner in list(model.modules()):
        for conv_name, conv, bn_name, bn in _conv_bn_pairs(owner):
            setattr(owner, conv_name, fuse_conv_bn_eval(conv, bn))
            setattr(owner, bn_name, Identity().eval())
    return model
