"""The ``torch.nn`` namesakes: same constructor arguments, parameter names and default
initialisation, each a thin stateful wrapper around a functional forward/backward pair.

Each layer keeps the cache of its last forward; ``backward(dy)`` adds the parameter
gradients into ``p.grad`` and returns the gradient for the input.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from .. import functional as F
from ..errors import LayerValueError
from ..functional.shape import check_float, check_same_shape, pair
from ..rng import generator
from ..typing import FloatArray, IntOrPair
from .module import Module, Parameter

__all__ = [
    "Conv2d",
    "BatchNorm2d",
    "Linear",
    "ReLU",
    "ReLU6",
    "Hardsigmoid",
    "Hardswish",
    "Sigmoid",
    "MaxPool2d",
    "AvgPool2d",
    "AdaptiveAvgPool2d",
    "Upsample",
    "Dropout",
    "Flatten",
    "Identity",
    "CrossEntropyLoss",
]

DEFAULT_DTYPE = np.float32


def _uniform(shape: tuple[int, ...], bound: float, dtype: DTypeLike) -> FloatArray:
    return generator().uniform(-bound, bound, size=shape).astype(dtype)


def _kaiming_uniform_a_sqrt5(shape: tuple[int, ...], fan_in: int, dtype: DTypeLike) -> FloatArray:
    """torch's default for conv and linear weights: kaiming_uniform_(a=sqrt(5)).

    gain = sqrt(2 / (1 + a^2)) = sqrt(1/3), bound = gain * sqrt(3 / fan_in) = 1 / sqrt(fan_in).
    """
    return _uniform(shape, 1.0 / math.sqrt(fan_in), dtype)


def _positive_int(where: str, name: str, v: object) -> int:
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{where}: {name} must be a positive int, got {v!r}")
    return int(v)


class Conv2d(Module):
    """2-D convolution, weight (out, in/groups, kh, kw), bias (out,).

    ``groups == in_channels`` (a depthwise conv, as in GhostNet's cheap operation) runs
    the dedicated depthwise kernel; any other grouping runs im2col + GEMM.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrPair,
        stride: IntOrPair = 1,
        padding: IntOrPair = 0,
        dilation: IntOrPair = 1,
        groups: int = 1,
        bias: bool = True,
        dtype: DTypeLike = DEFAULT_DTYPE,
    ) -> None:
        super().__init__()
        self.in_channels = _positive_int("Conv2d", "in_channels", in_channels)
        self.out_channels = _positive_int("Conv2d", "out_channels", out_channels)
        self.groups = _positive_int("Conv2d", "groups", groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"Conv2d: groups={groups} must divide in_channels={in_channels} and "
                f"out_channels={out_channels}"
            )
        self.kernel_size = pair(kernel_size, "kernel_size", "Conv2d")
        self.stride = pair(stride, "stride", "Conv2d")
        self.padding = pair(padding, "padding", "Conv2d")
        self.dilation = pair(dilation, "dilation", "Conv2d")
        if min(*self.kernel_size, *self.stride, *self.dilation) < 1 or min(self.padding) < 0:
            raise ValueError(
                f"Conv2d: expected kernel_size, stride and dilation >= 1 and padding >= 0, got "
                f"kernel_size={kernel_size!r}, stride={stride!r}, padding={padding!r}, "
                f"dilation={dilation!r}"
            )
        kh, kw = self.kernel_size
        fan_in = in_channels // groups * kh * kw
        self.weight = Parameter(
            _kaiming_uniform_a_sqrt5((out_channels, in_channels // groups, kh, kw), fan_in, dtype)
        )
        self.bias: Parameter | None = (
            Parameter(_uniform((out_channels,), 1 / math.sqrt(fan_in), dtype)) if bias else None
        )
        self._cache: F.Conv2dCache | F.DepthwiseCache | None = None

    @property
    def depthwise(self) -> bool:
        """Whether this is a depthwise convolution (groups == in_channels > 1)."""
        return self.groups == self.in_channels and self.groups > 1

    def forward(self, x: FloatArray) -> FloatArray:
        b = None if self.bias is None else self.bias.data
        if self.depthwise:
            check_float("depthwise_conv2d", "x", x)
            if x.ndim == 4 and x.shape[1] != self.in_channels:
                raise LayerValueError(
                    "depthwise_conv2d",
                    f"expected {self.in_channels} input channels, got {x.shape[1]} "
                    f"(input shape {tuple(x.shape)})",
                )
            y, self._cache = F.depthwise_conv2d_forward(
                x, self.weight.data, b, self.stride, self.padding, self.dilation
            )
        else:
            y, self._cache = F.conv2d_forward(
                x, self.weight.data, b, self.stride, self.padding, self.dilation, self.groups
            )
        return y

    def backward(self, dy: FloatArray) -> FloatArray:
        cache = self._need(self._cache)
        if isinstance(cache, F.DepthwiseCache):  # the forward ran the depthwise op
            dx, dw, db = F.depthwise_conv2d_backward(dy, cache)
        elif isinstance(cache, F.Conv2dCache):
            dx, dw, db = F.conv2d_backward(dy, cache)
        self.weight.accumulate(dw)
        if self.bias is not None and db is not None:
            self.bias.accumulate(db)
        return dx

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class BatchNorm2d(Module):
    """Batch norm over (N, H, W) per channel; weight, bias (C,); buffers running_mean,
    running_var (C,) and num_batches_tracked (int64 scalar), as torch."""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        dtype: DTypeLike = DEFAULT_DTYPE,
    ) -> None:
        super().__init__()
        self.num_features = _positive_int("BatchNorm2d", "num_features", num_features)
        self.eps = float(eps)
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        self.weight: Parameter | None = None
        self.bias: Parameter | None = None
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype=dtype))
            self.bias = Parameter(np.zeros(num_features, dtype=dtype))
        self.running_mean: Any = None  # buffers (arrays) when track_running_stats
        self.running_var: Any = None
        self.num_batches_tracked: Any = None
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", np.ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        self._cache: F.BatchNormCache | None = None

    def forward(self, x: FloatArray) -> FloatArray:
        check_float("batch_norm2d", "x", x)
        if x.ndim == 4 and x.shape[1] != self.num_features:
            raise LayerValueError(
                "batch_norm2d",
                f"expected {self.num_features} input channels, got {x.shape[1]} "
                f"(input shape {tuple(x.shape)})",
            )
        use_batch = self.training or not self.track_running_stats
        momentum = self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked = np.array(self.num_batches_tracked + 1, dtype=np.int64)
            if momentum is None:  # cumulative moving average, as torch
                momentum = 1.0 / float(self.num_batches_tracked)
        w = None if self.weight is None else self.weight.data
        b = None if self.bias is None else self.bias.data
        update = self.training and self.track_running_stats
        y, cache = F.batch_norm2d_forward(
            x,
            w,
            b,
            self.running_mean if (update or not use_batch) else None,
            self.running_var if (update or not use_batch) else None,
            training=use_batch,
            momentum=momentum if momentum is not None else 0.0,
            eps=self.eps,
        )
        if update:
            self.running_mean, self.running_var = cache.running_mean, cache.running_var
        self._cache = cache
        return y

    def backward(self, dy: FloatArray) -> FloatArray:
        dx, dw, db = F.batch_norm2d_backward(dy, self._need(self._cache))
        if self.weight is not None and dw is not None:
            self.weight.accumulate(dw)
        if self.bias is not None and db is not None:
            self.bias.accumulate(db)
        return dx

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class Linear(Module):
    """y = x @ weight^T + bias; weight (out_features, in_features), bias (out_features,)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        dtype: DTypeLike = DEFAULT_DTYPE,
    ) -> None:
        super().__init__()
        self.in_features = _positive_int("Linear", "in_features", in_features)
        self.out_features = _positive_int("Linear", "out_features", out_features)
        self.weight = Parameter(
            _kaiming_uniform_a_sqrt5((out_features, in_features), in_features, dtype)
        )
        self.bias: Parameter | None = (
            Parameter(_uniform((out_features,), 1 / math.sqrt(in_features), dtype))
            if bias
            else None
        )
        self._cache: F.LinearCache | None = None

    def forward(self, x: FloatArray) -> FloatArray:
        b = None if self.bias is None else self.bias.data
        y, self._cache = F.linear_forward(x, self.weight.data, b)
        return y

    def backward(self, dy: FloatArray) -> FloatArray:
        dx, dw, db = F.linear_backward(dy, self._need(self._cache))
        self.weight.accumulate(dw)
        if self.bias is not None and db is not None:
            self.bias.accumulate(db)
        return dx

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class _Elementwise(Module):
    """An activation: forward/backward from a functional pair; no parameters."""

    # the functional pair, set by each subclass
    _fwd: Callable[[FloatArray], tuple[FloatArray, F.ActivationCache]]
    _bwd: Callable[[FloatArray, F.ActivationCache], FloatArray]

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace  # accepted for torch compatibility; ghostnp never works in place
        self._cache: F.ActivationCache | None = None

    def forward(self, x: FloatArray) -> FloatArray:
        y, self._cache = type(self)._fwd(x)
        return y

    def backward(self, dy: FloatArray) -> FloatArray:
        return type(self)._bwd(dy, self._need(self._cache))


class ReLU(_Elementwise):
    """max(x, 0)."""

    _fwd = staticmethod(F.relu_forward)
    _bwd = staticmethod(F.relu_backward)


class ReLU6(_Elementwise):
    """min(max(x, 0), 6)."""

    _fwd = staticmethod(F.relu6_forward)
    _bwd = staticmethod(F.relu6_backward)


class Hardsigmoid(_Elementwise):
    """relu6(x + 3) / 6."""

    _fwd = staticmethod(F.hard_sigmoid_forward)
    _bwd = staticmethod(F.hard_sigmoid_backward)


class Hardswish(_Elementwise):
    """x * relu6(x + 3) / 6."""

    _fwd = staticmethod(F.hard_swish_forward)
    _bwd = staticmethod(F.hard_swish_backward)


class Sigmoid(_Elementwise):
    """1 / (1 + exp(-x))."""

    _fwd = staticmethod(F.sigmoid_forward)
    _bwd = staticmethod(F.sigmoid_backward)

    def __init__(self) -> None:
        super().__init__()


class _Pool(Module):
    def __init__(self) -> None:
        super().__init__()
        self._cache: Any = None  # the functional op's cache


class MaxPool2d(_Pool):
    """Max over kernel windows (padding never wins); ceil_mode is not supported."""

    def __init__(
        self,
        kernel_size: IntOrPair,
        stride: IntOrPair | None = None,
        padding: IntOrPair = 0,
        dilation: IntOrPair = 1,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        if ceil_mode:
            raise ValueError("MaxPool2d: ceil_mode=True is not supported (floor only)")
        self.kernel_size: IntOrPair = kernel_size
        self.stride: IntOrPair = stride if stride is not None else kernel_size
        self.padding: IntOrPair = padding
        self.dilation: IntOrPair = dilation

    def forward(self, x: FloatArray) -> FloatArray:
        y, self._cache = F.max_pool2d_forward(
            x, self.kernel_size, self.stride, self.padding, self.dilation
        )
        return y

    def backward(self, dy: FloatArray) -> FloatArray:
        return F.max_pool2d_backward(dy, self._need(self._cache))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(_Pool):
    """Mean over kernel windows; ceil_mode is not supported."""

    def __init__(
        self,
        kernel_size: IntOrPair,
        stride: IntOrPair | None = None,
        padding: IntOrPair = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:
        super().__init__()
        if ceil_mode:
            raise ValueError("AvgPool2d: ceil_mode=True is not supported (floor only)")
        self.kernel_size: IntOrPair = kernel_size
        self.stride: IntOrPair = stride if stride is not None else kernel_size
        self.padding: IntOrPair = padding
        self.count_include_pad = count_include_pad

    def forward(self, x: FloatArray) -> FloatArray:
        y, self._cache = F.avg_pool2d_forward(
            x, self.kernel_size, self.stride, self.padding, self.count_include_pad
        )
        return y

    def backward(self, dy: FloatArray) -> FloatArray:
        return F.avg_pool2d_backward(dy, self._need(self._cache))

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveAvgPool2d(_Pool):
    """Average into an (oh, ow) grid; output_size=1 is global average pooling."""

    def __init__(self, output_size: IntOrPair) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, x: FloatArray) -> FloatArray:
        y, self._cache = F.adaptive_avg_pool2d_forward(x, self.output_size)
        return y

    def backward(self, dy: FloatArray) -> FloatArray:
        return F.adaptive_avg_pool2d_backward(dy, self._need(self._cache))

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class Upsample(_Pool):
    """Nearest-neighbour resize to ``size`` or by ``scale_factor`` (mode must be 'nearest')."""

    def __init__(
        self,
        size: IntOrPair | None = None,
        scale_factor: float | tuple[float, float] | None = None,
        mode: str = "nearest",
    ) -> None:
        super().__init__()
        if mode != "nearest":
            raise ValueError(f"Upsample: only mode='nearest' is supported, got {mode!r}")
        self.size, self.scale_factor, self.mode = size, scale_factor, mode

    def forward(self, x: FloatArray) -> FloatArray:
        y, self._cache = F.upsample_nearest2d_forward(x, self.size, self.scale_factor)
        return y

    def backward(self, dy: FloatArray) -> FloatArray:
        return F.upsample_nearest2d_backward(dy, self._need(self._cache))

    def extra_repr(self) -> str:
        return f"size={self.size}, scale_factor={self.scale_factor}, mode={self.mode!r}"


class Dropout(Module):
    """Inverted dropout in training, identity in eval; masks come from ghostnp's generator."""

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"Dropout: p must lie in [0, 1], got {p}")
        self.p = float(p)
        self._cache: F.DropoutCache | None = None

    def forward(self, x: FloatArray) -> FloatArray:
        y, self._cache = F.dropout_forward(x, self.p, self.training, generator())
        return y

    def backward(self, dy: FloatArray) -> FloatArray:
        return F.dropout_backward(dy, self._need(self._cache))

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Flatten(Module):
    """Merge dims start_dim..end_dim: (N, C, H, W) -> (N, C*H*W) by default."""

    moves_data_only = True  # a reshape: no arithmetic

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim
        self._shape: tuple[int, ...] | None = None
        self._out_shape: tuple[int, ...] | None = None

    def forward(self, x: FloatArray) -> FloatArray:
        check_float("flatten", "x", x)
        self._shape = x.shape
        end = self.end_dim % x.ndim
        new = x.shape[: self.start_dim] + (-1,) + x.shape[end + 1 :]
        y = x.reshape(new)
        self._out_shape = y.shape
        return y

    def backward(self, dy: FloatArray) -> FloatArray:
        shape = self._need(self._shape)
        check_float("flatten_backward", "dy", dy)
        # the same size is not enough: (N, K) vs (K, N)
        check_same_shape("flatten_backward", "dy", dy, self._need(self._out_shape))
        return dy.reshape(shape)


class Identity(Module):
    """Returns its input; gradient passes through."""

    moves_data_only = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: Any) -> Any:
        self._shape = np.shape(x)
        return x

    def backward(self, dy: Any) -> Any:
        shape = self._need(self._shape)
        if np.shape(dy) != shape:
            raise LayerValueError(
                "identity_backward", f"expected dy of shape {shape}, got {tuple(np.shape(dy))}"
            )
        return dy


class CrossEntropyLoss(Module):
    """``loss = criterion(logits (N, K), target (N,))`` -> float (mean);
    ``criterion.backward()`` -> dlogits (N, K)."""

    check_finite_input = False  # a NaN loss is the trainer's to report, with its step

    def __init__(self, label_smoothing: float = 0.0, reduction: str = "mean") -> None:
        super().__init__()
        if reduction != "mean":
            raise ValueError(
                f"CrossEntropyLoss: only reduction='mean' is supported, got {reduction!r}"
            )
        self.label_smoothing = float(label_smoothing)
        self.reduction = reduction
        self._cache: F.CrossEntropyCache | None = None

    def forward(self, logits: FloatArray, target: ArrayLike) -> float:
        loss, self._cache = F.softmax_cross_entropy_forward(logits, target, self.label_smoothing)
        return loss

    def backward(self, dloss: float = 1.0) -> FloatArray:
        return F.softmax_cross_entropy_backward(dloss, self._need(self._cache))
