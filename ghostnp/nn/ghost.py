"""The Ghost family of blocks: GhostModule (V1), DFCAttention and GhostModuleV2,
SqueezeExcite and GhostBottleneck, each with its backward pass written out.

Ghost module (Han et al., CVPR 2020). An ordinary conv makes ``oup`` maps from ``inp``
maps. The Ghost module makes only m = ceil(oup / ratio) "intrinsic" maps with an
ordinary (primary) conv, then m * (ratio - 1) "ghost" maps from those with a cheap
depthwise conv, concatenates [intrinsic, ghost] and keeps the first ``oup`` channels:

    x1  = primary_conv(x)              # (N, m, H', W')        conv k x k -> BN -> ReLU?
    x2  = cheap_operation(x1)          # (N, m*(ratio-1), H', W')  depthwise d x d -> BN -> ReLU?
    y   = concat(x1, x2)[:, :oup]      # (N, oup, H', W')

Backward: the slice pads the gradient with zeros for the dropped channels; the concat
splits it; x1 is used twice (it is in the output *and* feeds the cheap op), so its
gradient is the sum of both paths:

    dx1 = dcat[:, :m] + cheap_operation.backward(dcat[:, m:])
    dx  = primary_conv.backward(dx1)

This is not "make a few maps at low resolution, upsample them and add them to the
others": V1 works at full resolution and concatenates. The closest real design is
GhostNetV2's DFC attention, which *multiplies* the output by an upsampled gate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Protocol

from .. import functional as F
from ..errors import LayerValueError
from ..functional.shape import ConcatCache, SliceCache
from ..typing import FloatArray, IntOrPair
from .inline import InlineOp, Shape, is_empty
from .layers import AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Hardsigmoid, ReLU
from .module import Module, Sequential

__all__ = [
    "make_divisible",
    "GhostModule",
    "DFCAttention",
    "GhostModuleV2",
    "SqueezeExcite",
    "GhostBottleneck",
    "ConvBnAct",
    "Branch",
]


class Branch(Protocol):
    """What makes maps from maps and knows its backward: a module, or a sum of modules
    (GhostNetV3's ``BranchSum``)."""

    def __call__(self, x: FloatArray) -> FloatArray: ...

    def backward(self, dy: FloatArray) -> FloatArray: ...


def make_divisible(v: float, divisor: int = 4, min_value: int | None = None) -> int:
    """Round ``v`` to the nearest multiple of ``divisor`` (at least ``min_value``), adding one
    more ``divisor`` if rounding lost more than 10% of ``v`` (the reference code's rule)."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def _multiply_backward(
    dy: FloatArray, a: FloatArray, b: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """y = a * b (same shapes or b broadcast over H, W): returns (da, db) with db summed
    over the axes where b was broadcast."""
    da = dy * b
    db = dy * a
    for axis, size in enumerate(b.shape):
        if size == 1 and db.shape[axis] != 1:
            db = db.sum(axis=axis, keepdims=True)
    return da, db


class GhostModule(Module):
    """Ghost module: (N, inp, H, W) -> (N, oup, H/stride, W/stride).

    Members (PyTorch names): ``primary_conv`` = Sequential(Conv2d k x k, BN, ReLU or
    nothing) and ``cheap_operation`` = Sequential(depthwise Conv2d d x d with channel
    multiplier ratio-1, BN, ReLU or nothing).
    """

    primary_conv: Sequential
    cheap_operation: Sequential

    def __init__(
        self,
        inp: int,
        oup: int,
        kernel_size: int = 1,
        ratio: int = 2,
        dw_size: int = 3,
        stride: int = 1,
        relu: bool = True,
    ) -> None:
        super().__init__()
        if not isinstance(ratio, int) or ratio < 2:
            raise ValueError(f"GhostModule: ratio must be an int >= 2, got {ratio!r}")
        self.inp, self.oup, self.ratio = inp, oup, ratio
        self.init_channels = math.ceil(oup / ratio)  # intrinsic maps m
        self.new_channels = self.init_channels * (ratio - 1)  # ghost maps
        self._build(kernel_size, dw_size, stride, relu)
        self._caches: tuple[ConcatCache, SliceCache | None] | None = None

    def _build(self, kernel_size: int, dw_size: int, stride: int, relu: bool) -> None:
        """Create the members that make the intrinsic and the ghost maps (subclasses that
        train them differently, such as GhostModuleV3, build their own)."""
        m = self.init_channels
        self.primary_conv = Sequential(
            Conv2d(self.inp, m, kernel_size, stride, kernel_size // 2, bias=False),
            BatchNorm2d(m),
            ReLU() if relu else Sequential(),
        )
        self.cheap_operation = Sequential(
            Conv2d(m, self.new_channels, dw_size, 1, dw_size // 2, groups=m, bias=False),
            BatchNorm2d(self.new_channels),
            ReLU() if relu else Sequential(),
        )

    def _primary_path(self) -> Branch:
        """What makes the intrinsic maps from x: anything with ``__call__`` and ``backward``."""
        return self.primary_conv

    def _cheap_path(self) -> Branch:
        """What makes the ghost maps from the intrinsic ones (same protocol)."""
        return self.cheap_operation

    def ghost_forward(self, x: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
        """The V1 computation; returns (y, x1, x2) so that callers can show both halves."""
        x1 = self._primary_path()(x)  # intrinsic (N, m, H', W')
        x2 = self._cheap_path()(x1)  # ghost     (N, m*(ratio-1), H', W')
        cat, cat_cache = F.concat_forward([x1, x2])  # (N, m*ratio, H', W')
        y, slice_cache = cat, None  # oup == m*ratio (an even oup at ratio 2): nothing to drop
        if self.oup < cat.shape[1]:
            y, slice_cache = F.channel_slice_forward(cat, 0, self.oup)  # (N, oup, H', W')
        self._caches = (cat_cache, slice_cache)
        return y, x1, x2

    def forward(self, x: FloatArray) -> FloatArray:
        return self.ghost_forward(x)[0]

    def backward(self, dy: FloatArray) -> FloatArray:
        cat_cache, slice_cache = self._need(self._caches)
        # zeros for the dropped channels, if any
        dcat = dy if slice_cache is None else F.channel_slice_backward(dy, slice_cache)
        dx1, dx2 = F.concat_backward(dcat, cat_cache)
        del dcat  # each gradient is let go once used: backward's memory peaks here
        dx1 = dx1 + self._cheap_path().backward(dx2)  # x1 fans out: gradients add
        del dx2
        return self._primary_path().backward(dx1)

    def inline_ops(
        self, x_shape: Shape, y_shape: Shape, shapes: Mapping[str, Shape]
    ) -> list[InlineOp]:
        """The concat of intrinsic and ghost maps after ``cheap_operation`` (keeping the first
        oup channels is a view): (N, oup, H', W') in, (N, m*ratio, H', W') made."""
        if is_empty(self.cheap_operation):  # a GhostModuleV3 in train form declares its own
            return []
        n, _, h, w = y_shape
        cat = (n, self.init_channels * self.ratio, h, w)
        return [InlineOp("concat", y_shape, cat, ("after", "cheap_operation"))]

    def extra_repr(self) -> str:
        return f"inp={self.inp}, oup={self.oup}, ratio={self.ratio}"


class DFCAttention(Sequential):
    """GhostNetV2's decoupled fully connected attention, the gate of a GhostModuleV2.

    From the module input x (N, inp, H, W):

        a = avg_pool 2x2 stride 2 (x)                          # (N, inp, H/2, W/2)
        a = BN(conv kxk stride s (a)) -> BN(dw 1x5 (a)) -> BN(dw 5x1 (a))   # members 0..5
        g = upsample_nearest(sigmoid(a), size of the Ghost output)          # (N, oup, H', W')

    The 1x5 and 5x1 depthwise convs mix information along rows and along columns: a
    cheap stand-in for a fully connected layer over the whole map. ``forward(x, size)``
    returns the gate g; ``backward(dg)`` returns dx.
    """

    def __init__(self, inp: int, oup: int, kernel_size: int = 1, stride: int = 1) -> None:
        super().__init__(
            Conv2d(inp, oup, kernel_size, stride, kernel_size // 2, bias=False),
            BatchNorm2d(oup),
            Conv2d(oup, oup, (1, 5), 1, (0, 2), groups=oup, bias=False),
            BatchNorm2d(oup),
            Conv2d(oup, oup, (5, 1), 1, (2, 0), groups=oup, bias=False),
            BatchNorm2d(oup),
        )
        self._caches: tuple[F.PoolCache, F.ActivationCache, F.ResampleCache] | None = None

    def forward(self, x: FloatArray, size: IntOrPair | None = None) -> FloatArray:
        pooled, pool_cache = F.avg_pool2d_forward(x, 2, 2)
        a = super().forward(pooled)
        s, sig_cache = F.sigmoid_forward(a)
        out_hw = (a.shape[2], a.shape[3]) if size is None else size
        g, up_cache = F.upsample_nearest2d_forward(s, size=out_hw)
        self._caches = (pool_cache, sig_cache, up_cache)
        return g

    def backward(self, dg: FloatArray) -> FloatArray:
        pool_cache, sig_cache, up_cache = self._need(self._caches)
        ds = F.upsample_nearest2d_backward(dg, up_cache)
        da = F.sigmoid_backward(ds, sig_cache)
        dpooled = super().backward(da)
        return F.avg_pool2d_backward(dpooled, pool_cache)

    def inline_ops(
        self, x_shape: Shape, g_shape: Shape, shapes: Mapping[str, Shape]
    ) -> list[InlineOp]:
        """The 2x2 average pool before the convs, then the sigmoid and the upsampling to the
        Ghost output's size after them."""
        n, c, h, w = x_shape
        pooled = (n, c, h // 2, w // 2)
        a_shape = shapes.get(list(self._modules)[-1], pooled)  # the last BN's output
        return [
            InlineOp("avg_pool2d", x_shape, pooled, "start"),
            InlineOp("sigmoid", a_shape, a_shape, "end"),
            InlineOp("upsample_nearest2d", a_shape, g_shape, "end"),
        ]


class GhostModuleV2(GhostModule):
    """Ghost module whose output is gated by DFC attention (GhostNetV2, ``mode="attn"``).

        y = ghost(x) * upsample(sigmoid(short_conv(avg_pool(x))))

    x feeds both the Ghost path and the attention branch, so dx is the sum of both.
    ``attention=False`` leaves the gate out (``short_conv`` is None, the output is the
    Ghost module's): GhostModuleV3 uses it for its modules without attention.
    """

    def __init__(
        self,
        inp: int,
        oup: int,
        kernel_size: int = 1,
        ratio: int = 2,
        dw_size: int = 3,
        stride: int = 1,
        relu: bool = True,
        *,
        attention: bool = True,
    ) -> None:
        super().__init__(inp, oup, kernel_size, ratio, dw_size, stride, relu)
        self.short_conv = DFCAttention(inp, oup, kernel_size, stride) if attention else None
        self._gate: tuple[FloatArray, FloatArray] | None = None
        self._attention: FloatArray | None = None

    def forward(self, x: FloatArray) -> FloatArray:
        y, _, _ = self.ghost_forward(x)
        if self.short_conv is None:
            return y
        g = self.short_conv(x, size=(y.shape[2], y.shape[3]))
        self._gate = (y, g)  # for backward
        self._attention = g  # for attention_map, kept under no_grad too
        return y * g

    def attention_map(self) -> FloatArray | None:
        """The last gate g (N, oup, H', W') in [0, 1], for visualisation."""
        return self._attention

    def backward(self, dy: FloatArray) -> FloatArray:
        if self.short_conv is None:
            return super().backward(dy)
        y, g = self._need(self._gate)
        dghost, dg = _multiply_backward(dy, y, g)
        return super().backward(dghost) + self.short_conv.backward(dg)

    def inline_ops(
        self, x_shape: Shape, y_shape: Shape, shapes: Mapping[str, Shape]
    ) -> list[InlineOp]:
        """The Ghost output times the DFC gate (none without a gate), besides the concat."""
        gate = [] if self.short_conv is None else [InlineOp("mul", y_shape, y_shape, "end")]
        return gate + super().inline_ops(x_shape, y_shape, shapes)


class SqueezeExcite(Module):
    """Channel attention: y = x * hard_sigmoid(expand(relu(reduce(mean_hw(x))))).

    x (N, C, H, W) -> y (N, C, H, W); reduce is a 1x1 conv with bias to
    make_divisible(C * se_ratio, 4) channels and expand brings it back to C.
    """

    def __init__(self, in_chs: int, se_ratio: float = 0.25, divisor: int = 4) -> None:
        super().__init__()
        reduced = make_divisible(in_chs * se_ratio, divisor)
        self.avg_pool = AdaptiveAvgPool2d(1)
        self.conv_reduce = Conv2d(in_chs, reduced, 1, bias=True)
        self.act1 = ReLU()
        self.conv_expand = Conv2d(reduced, in_chs, 1, bias=True)
        self.gate = Hardsigmoid()
        self._saved: tuple[FloatArray, FloatArray] | None = None

    def forward(self, x: FloatArray) -> FloatArray:
        s = self.avg_pool(x)  # (N, C, 1, 1)
        s = self.conv_expand(self.act1(self.conv_reduce(s)))
        g = self.gate(s)  # (N, C, 1, 1) in [0, 1]
        self._saved = (x, g)
        return x * g

    def backward(self, dy: FloatArray) -> FloatArray:
        x, g = self._need(self._saved)
        dx, dg = _multiply_backward(dy, x, g)  # dg summed over H, W: (N, C, 1, 1)
        ds = self.conv_reduce.backward(
            self.act1.backward(self.conv_expand.backward(self.gate.backward(dg)))
        )
        return dx + self.avg_pool.backward(ds)  # x is used twice: gradients add

    def inline_ops(
        self, x_shape: Shape, y_shape: Shape, shapes: Mapping[str, Shape]
    ) -> list[InlineOp]:
        """x times the (N, C, 1, 1) gate, broadcast over H and W."""
        return [InlineOp("mul", y_shape, y_shape, "end")]


class ConvBnAct(Sequential):
    """conv (no bias, padding k//2) -> BN -> ReLU, with the reference's member names conv,
    bn1, act1. ``groups`` as in Conv2d; ``act=False`` leaves out the ReLU (no ``act1``),
    as in GhostNetV3's re-parameterizable branches."""

    def __init__(
        self,
        in_chs: int,
        out_chs: int,
        kernel_size: int,
        stride: int = 1,
        groups: int = 1,
        act: bool = True,
    ) -> None:
        super().__init__()
        self.conv = Conv2d(
            in_chs, out_chs, kernel_size, stride, kernel_size // 2, groups=groups, bias=False
        )
        self.bn1 = BatchNorm2d(out_chs)
        if act:
            self.act1 = ReLU()


class GhostBottleneck(Module):
    """GhostNet's inverted residual: (N, in_chs, H, W) -> (N, out_chs, H/stride, W/stride).

        main  = ghost2(se?(bn_dw(conv_dw(ghost1(x)))?))      conv_dw only when stride > 1
        y     = main + shortcut(x)                              no ReLU after the sum

    The shortcut is the identity when in_chs == out_chs and stride == 1, otherwise
    depthwise k x k (stride) -> BN -> 1x1 conv -> BN. With ``attention=True`` ghost1 is
    a GhostModuleV2 (GhostNetV2's blocks after the first two). GhostBottleneckV3 (in
    ``ghost_v3.py``) replaces ``_ghost_module``, ``_build_dw`` and ``_main``.
    """

    conv_dw: Conv2d | None
    bn_dw: BatchNorm2d | None

    def __init__(
        self,
        in_chs: int,
        mid_chs: int,
        out_chs: int,
        dw_kernel_size: int = 3,
        stride: int = 1,
        se_ratio: float = 0.0,
        attention: bool = False,
    ) -> None:
        super().__init__()
        self.stride = stride
        self.ghost1 = self._ghost_module(in_chs, mid_chs, relu=True, attention=attention)
        self._build_dw(mid_chs, dw_kernel_size, stride)
        self.se = SqueezeExcite(mid_chs, se_ratio) if se_ratio and se_ratio > 0 else None
        self.ghost2 = self._ghost_module(mid_chs, out_chs, relu=False, attention=False)
        pad = (dw_kernel_size - 1) // 2
        if in_chs == out_chs and stride == 1:
            self.shortcut = Sequential()
        else:
            self.shortcut = Sequential(
                Conv2d(in_chs, in_chs, dw_kernel_size, stride, pad, groups=in_chs, bias=False),
                BatchNorm2d(in_chs),
                Conv2d(in_chs, out_chs, 1, 1, 0, bias=False),
                BatchNorm2d(out_chs),
            )

    def _ghost_module(self, inp: int, oup: int, relu: bool, attention: bool) -> GhostModule:
        """ghost1 / ghost2 (GhostBottleneckV3 makes GhostModuleV3s instead)."""
        return GhostModuleV2(inp, oup, relu=relu) if attention else GhostModule(inp, oup, relu=relu)

    def _build_dw(self, mid_chs: int, k: int, stride: int) -> None:
        """The stride-2 depthwise k x k conv and its BN (None at stride 1)."""
        if stride > 1:
            self.conv_dw = Conv2d(
                mid_chs, mid_chs, k, stride, (k - 1) // 2, groups=mid_chs, bias=False
            )
            self.bn_dw = BatchNorm2d(mid_chs)
        else:
            self.conv_dw = self.bn_dw = None

    def conv_bn_pairs(self) -> list[tuple[str, str]]:
        """(conv, BN) member names where the conv's output goes to that BN only: what
        ``ghostnp.nn.utils.fusion.fuse_model`` may fold (a Sequential's are found by order)."""
        return [("conv_dw", "bn_dw")] if self.bn_dw is not None else []

    def _main(self) -> list[Branch]:
        main: list[Branch | None] = [self.ghost1, self.conv_dw, self.bn_dw, self.se, self.ghost2]
        return [m for m in main if m is not None]

    def forward(self, x: FloatArray) -> FloatArray:
        h = x
        for m in self._main():
            h = m(h)
        s = self.shortcut(x)
        if s.shape != h.shape:  # cannot happen for valid configs; guards hand-made ones
            raise LayerValueError(self.where, f"main path gives {h.shape}, shortcut {s.shape}")
        return h + s

    def backward(self, dy: FloatArray) -> FloatArray:
        dh = dy
        for m in reversed(self._main()):
            dh = m.backward(dh)
        return dh + self.shortcut.backward(dy)  # x feeds both paths: gradients add

    def inline_ops(
        self, x_shape: Shape, y_shape: Shape, shapes: Mapping[str, Shape]
    ) -> list[InlineOp]:
        """The residual add: main path + shortcut."""
        return [InlineOp("add", y_shape, y_shape, "end")]
