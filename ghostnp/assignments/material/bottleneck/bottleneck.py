"""Assignment bottleneck: squeeze-and-excite, the Ghost bottleneck, and the whole GhostNet
with its backward pass.

Complete every gap that raises NotImplementedError (README.md has the structure and
the shapes), then run

    ghostnp assignment grade .

ghostnp's layers (Conv2d, BatchNorm2d, ReLU, Hardsigmoid, AdaptiveAvgPool2d, ...), its
GhostModule and ConvBnAct are yours to use; the squeeze-and-excite block, the
bottleneck and the network are what you write. Member names are GhostNet's state-dict
names, so that the reference implementation's weights load into your modules.
"""

from ghostnp.models.ghostnet import GHOSTNET_CFG
from ghostnp.nn import (
    AdaptiveAvgPool2d,
    BatchNorm2d,
    Conv2d,
    ConvBnAct,
    Dropout,
    Flatten,
    GhostModule,
    Hardsigmoid,
    Linear,
    Module,
    ReLU,
    Sequential,
    make_divisible,
)

# GHOSTNET_CFG (imported above) is the stage table: one list per stage (blocks.i), one row
# per bottleneck (blocks.i.j):
# [k (kernel of the strided depthwise conv and of the shortcut's), exp (mid channels),
#  out channels, SE ratio, stride]; print it to see the 16 rows.


class SqueezeExcite(Module):
    """Channel attention: x (N, C, H, W) -> x * gate, gate (N, C, 1, 1) in [0, 1]:

        s    = mean of x over H, W                    (N, C, 1, 1)
        gate = hard_sigmoid(conv_expand(relu(conv_reduce(s))))

    conv_reduce: 1x1 conv with bias, C -> make_divisible(C * se_ratio, divisor);
    conv_expand: 1x1 conv with bias back to C; hard_sigmoid(z) = relu6(z + 3) / 6.
    """

    def __init__(self, in_chs, se_ratio=0.25, divisor=4):
        super().__init__()
        ### HINT: members avg_pool = AdaptiveAvgPool2d(1), conv_reduce = Conv2d(in_chs, r, 1, bias=True)
        ### HINT: with r = make_divisible(in_chs * se_ratio, divisor), act1 = ReLU(),
        ### HINT: conv_expand = Conv2d(r, in_chs, 1, bias=True) and gate = Hardsigmoid().
        ### BEGIN SOLUTION
        reduced = make_divisible(in_chs * se_ratio, divisor)
        self.avg_pool = AdaptiveAvgPool2d(1)
        self.conv_reduce = Conv2d(in_chs, reduced, 1, bias=True)
        self.act1 = ReLU()
        self.conv_expand = Conv2d(reduced, in_chs, 1, bias=True)
        self.gate = Hardsigmoid()
        ### END SOLUTION
        self._saved = None

    def forward(self, x):
        """x (N, C, H, W) -> x * gate (N, C, H, W)."""
        ### HINT: s = self.avg_pool(x) (N, C, 1, 1), through conv_reduce, act1, conv_expand, gate;
        ### HINT: keep x and the gate for backward; the product broadcasts the gate over H and W.
        ### BEGIN SOLUTION
        g = self.gate(self.conv_expand(self.act1(self.conv_reduce(self.avg_pool(x)))))
        self._saved = (x, g)
        return x * g
        ### END SOLUTION

    def backward(self, dy):
        """dy (N, C, H, W) -> dx (N, C, H, W); the convs' gradients accumulate."""
        ### HINT: y = x * g: the product gives dy * g for x and dy * x summed over H, W (N, C, 1, 1)
        ### HINT: for g. That dg flows back through gate, conv_expand, act1, conv_reduce, avg_pool to a
        ### HINT: second gradient for x: x is used twice, so dx is the sum of the two.
        ### BEGIN SOLUTION
        x, g = self._need(self._saved)
        dg = (dy * x).sum(axis=(2, 3), keepdims=True)
        ds = self.conv_reduce.backward(
            self.act1.backward(self.conv_expand.backward(self.gate.backward(dg)))
        )
        return dy * g + self.avg_pool.backward(ds)
        ### END SOLUTION


class GhostBottleneck(Module):
    """GhostNet's inverted residual: (N, in_chs, H, W) -> (N, out_chs, H / stride, W / stride).

        h = ghost1(x)                       GhostModule(in_chs, mid_chs, relu=True)
        h = bn_dw(conv_dw(h))               only when stride > 1: depthwise k x k, stride,
                                            padding (k - 1) // 2, no bias; then BN (no ReLU)
        h = se(h)                           only when se_ratio > 0: SqueezeExcite(mid_chs, se_ratio)
        h = ghost2(h)                       GhostModule(mid_chs, out_chs, relu=False)
        y = h + shortcut(x)                 no ReLU after the sum

    shortcut is an empty Sequential() (the identity) when in_chs == out_chs and stride
    == 1; otherwise Sequential(depthwise k x k conv (stride, padding (k - 1) // 2, no
    bias), BatchNorm2d(in_chs), 1x1 conv in_chs -> out_chs (no bias), BatchNorm2d(out_chs)).
    Absent members are None (conv_dw, bn_dw, se).
    """

    def __init__(self, in_chs, mid_chs, out_chs, dw_kernel_size=3, stride=1, se_ratio=0.0):
        super().__init__()
        self.stride = stride
        ### HINT: the members of the class docstring, under exactly those names. The depthwise convs
        ### HINT: have groups equal to their channel count: Conv2d(c, c, k, stride, pad, groups=c, bias=False).
        ### BEGIN SOLUTION
        pad = (dw_kernel_size - 1) // 2
        self.ghost1 = GhostModule(in_chs, mid_chs, relu=True)
        if stride > 1:
            self.conv_dw = Conv2d(
                mid_chs, mid_chs, dw_kernel_size, stride, pad, groups=mid_chs, bias=False
            )
            self.bn_dw = BatchNorm2d(mid_chs)
        else:
            self.conv_dw = self.bn_dw = None
        self.se = SqueezeExcite(mid_chs, se_ratio) if se_ratio > 0 else None
        self.ghost2 = GhostModule(mid_chs, out_chs, relu=False)
        if in_chs == out_chs and stride == 1:
            self.shortcut = Sequential()
        else:
            self.shortcut = Sequential(
                Conv2d(in_chs, in_chs, dw_kernel_size, stride, pad, groups=in_chs, bias=False),
                BatchNorm2d(in_chs),
                Conv2d(in_chs, out_chs, 1, 1, 0, bias=False),
                BatchNorm2d(out_chs),
            )
        ### END SOLUTION

    def _main(self):
        """The modules of the main path that exist, in order."""
        parts = (self.ghost1, self.conv_dw, self.bn_dw, self.se, self.ghost2)
        return [m for m in parts if m is not None]

    def forward(self, x):
        """x (N, in_chs, H, W) -> y (N, out_chs, H', W')."""
        ### HINT: run x through self._main() in order, add self.shortcut(x).
        ### BEGIN SOLUTION
        h = x
        for m in self._main():
            h = m(h)
        return h + self.shortcut(x)
        ### END SOLUTION

    def backward(self, dy):
        """dy (N, out_chs, H', W') -> dx (N, in_chs, H, W)."""
        ### HINT: the sum sends dy unchanged to both branches; run the main path's modules' backward
        ### HINT: in reverse order; x feeds both branches, so dx = main part + self.shortcut.backward(dy).
        ### BEGIN SOLUTION
        dh = dy
        for m in reversed(self._main()):
            dh = m.backward(dh)
        return dh + self.shortcut.backward(dy)
        ### END SOLUTION


class GhostNet(Module):
    """GhostNet V1: (N, in_chans, H, W) -> logits (N, num_classes).

        conv_stem (3x3, stride 2, padding 1, no bias, to make_divisible(16 * width, 4))
        -> bn1 -> act1 (ReLU)
        -> blocks: one Sequential per stage of ``cfg`` holding its GhostBottlenecks, then a
           last Sequential(ConvBnAct(channels, make_divisible(exp * width, 4), 1)) where exp
           is the last row's
        -> global_pool (AdaptiveAvgPool2d(1)) -> conv_head (1x1 conv with bias to 1280)
        -> act2 (ReLU) -> flatten (Flatten()) -> dropout (Dropout(dropout))
        -> classifier (Linear(1280, num_classes))

    Each row k, exp, c, se, s of ``cfg`` is GhostBottleneck(channels, make_divisible(exp *
    width, 4), make_divisible(c * width, 4), k, s, se).
    """

    def __init__(self, width=1.0, num_classes=1000, dropout=0.2, in_chans=3, cfg=None):
        super().__init__()
        cfg = GHOSTNET_CFG if cfg is None else cfg
        ### HINT: the members of the class docstring, in that order, under exactly those names; keep
        ### HINT: track of the channel count as you go (it starts at the stem's width).
        ### BEGIN SOLUTION
        stem = make_divisible(16 * width, 4)
        self.conv_stem = Conv2d(in_chans, stem, 3, 2, 1, bias=False)
        self.bn1 = BatchNorm2d(stem)
        self.act1 = ReLU()
        stages, chans = [], stem
        for stage in cfg:
            blocks = []
            for k, exp, c, se, s in stage:
                out = make_divisible(c * width, 4)
                mid = make_divisible(exp * width, 4)
                blocks.append(GhostBottleneck(chans, mid, out, k, s, se))
                chans = out
            stages.append(Sequential(*blocks))
        last = make_divisible(exp * width, 4)
        stages.append(Sequential(ConvBnAct(chans, last, 1)))
        self.blocks = Sequential(*stages)
        self.global_pool = AdaptiveAvgPool2d(1)
        self.conv_head = Conv2d(last, 1280, 1, 1, 0, bias=True)
        self.act2 = ReLU()
        self.flatten = Flatten()
        self.dropout = Dropout(dropout)
        self.classifier = Linear(1280, num_classes)
        ### END SOLUTION

    def _layers(self):
        return [
            self.conv_stem,
            self.bn1,
            self.act1,
            self.blocks,
            self.global_pool,
            self.conv_head,
            self.act2,
            self.flatten,
            self.dropout,
            self.classifier,
        ]

    def forward(self, x):
        """x (N, in_chans, H, W) -> logits (N, num_classes)."""
        ### HINT: every member of self._layers() in order (each caches what its backward needs).
        ### BEGIN SOLUTION
        for m in self._layers():
            x = m(x)
        return x
        ### END SOLUTION

    def backward(self, dlogits):
        """dlogits (N, num_classes) -> dx (N, in_chans, H, W); every parameter's gradient
        accumulates in p.grad."""
        ### HINT: a chain: each member's backward in reverse order, each taking the gradient the
        ### HINT: next one returned (the stages and their blocks are Sequentials: they do the same).
        ### BEGIN SOLUTION
        d = dlogits
        for m in reversed(self._layers()):
            d = m.backward(d)
        return d
        ### END SOLUTION
