"""PyTorch twins of the GhostNet reference architecture, built from ``torch.nn`` layers.

They follow the description in the reference notes (the authors' PyTorch code and timm
share one state-dict layout; V3 follows timm's GhostNetV3, train and deploy form, with its
folding done by ``torch.nn.utils.fusion``) and use the same module names, so a ghostnp state dict
loads into a twin with ``strict=True`` and the other way round. They are written from
that description, not from ghostnp, so that they can serve as an independent oracle.

torch is imported lazily: importing this file without torch installed works, and
building a twin then raises ImportError.
"""

from __future__ import annotations

import math

__all__ = [
    "make_divisible",
    "hard_sigmoid",
    "build",
    "ghostnet_twin",
    "scramble_buffers",
    "TORCH_GHOSTNET_CFG",
]

# k (kernel of the strided depthwise conv and of the shortcut's), exp (mid channels),
# out channels, SE ratio, stride. One list per stage.
TORCH_GHOSTNET_CFG = [
    [[3, 16, 16, 0, 1]],
    [[3, 48, 24, 0, 2]],
    [[3, 72, 24, 0, 1]],
    [[5, 72, 40, 0.25, 2]],
    [[5, 120, 40, 0.25, 1]],
    [[3, 240, 80, 0, 2]],
    [
        [3, 200, 80, 0, 1],
        [3, 184, 80, 0, 1],
        [3, 184, 80, 0, 1],
        [3, 480, 112, 0.25, 1],
        [3, 672, 112, 0.25, 1],
    ],
    [[5, 672, 160, 0.25, 2]],
    [[5, 960, 160, 0, 1], [5, 960, 160, 0.25, 1], [5, 960, 160, 0, 1], [5, 960, 160, 0.25, 1]],
]


def make_divisible(v, divisor=4, min_value=None):
    """Nearest multiple of ``divisor`` (at least ``min_value``), one more if that lost >10%."""
    if min_value is None:
        min_value = divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def hard_sigmoid(x):
    from torch.nn import functional as F

    return F.relu6(x + 3.0) / 6.0


_CLASSES = {}


def _classes():
    """Define the twin classes once, on first use (needs torch)."""
    if _CLASSES:
        return _CLASSES
    import torch
    from torch import nn
    from torch.nn import functional as F

    class SqueezeExcite(nn.Module):
        def __init__(self, in_chs, se_ratio=0.25, divisor=4):
            super().__init__()
            reduced = make_divisible(in_chs * se_ratio, divisor)
            self.avg_pool = nn.AdaptiveAvgPool2d(1)
            self.conv_reduce = nn.Conv2d(in_chs, reduced, 1, bias=True)
            self.act1 = nn.ReLU(inplace=False)
            self.conv_expand = nn.Conv2d(reduced, in_chs, 1, bias=True)

        def forward(self, x):
            s = self.avg_pool(x)
            s = self.conv_expand(self.act1(self.conv_reduce(s)))
            return x * hard_sigmoid(s)

    class GhostModule(nn.Module):
        def __init__(self, inp, oup, kernel_size=1, ratio=2, dw_size=3, stride=1, relu=True):
            super().__init__()
            self.oup = oup
            init_channels = math.ceil(oup / ratio)
            new_channels = init_channels * (ratio - 1)
            self.primary_conv = nn.Sequential(
                nn.Conv2d(inp, init_channels, kernel_size, stride, kernel_size // 2, bias=False),
                nn.BatchNorm2d(init_channels),
                nn.ReLU() if relu else nn.Sequential(),
            )
            self.cheap_operation = nn.Sequential(
                nn.Conv2d(
                    init_channels,
                    new_channels,
                    dw_size,
                    1,
                    dw_size // 2,
                    groups=init_channels,
                    bias=False,
                ),
                nn.BatchNorm2d(new_channels),
                nn.ReLU() if relu else nn.Sequential(),
            )

        def forward(self, x):
            x1 = self.primary_conv(x)
            x2 = self.cheap_operation(x1)
            out = torch.cat([x1, x2], dim=1)
            return out[:, : self.oup, :, :]

    def dfc_branch(inp, oup, kernel_size, stride):
        """GhostNetV2's DFC attention branch (``short_conv``), V3's too."""
        return nn.Sequential(
            nn.Conv2d(inp, oup, kernel_size, stride, kernel_size // 2, bias=False),
            nn.BatchNorm2d(oup),
            nn.Conv2d(oup, oup, (1, 5), 1, (0, 2), groups=oup, bias=False),
            nn.BatchNorm2d(oup),
            nn.Conv2d(oup, oup, (5, 1), 1, (2, 0), groups=oup, bias=False),
            nn.BatchNorm2d(oup),
        )

    def dfc_gated(short_conv, x, out):
        """``out`` times the DFC gate computed from the module input ``x``."""
        res = short_conv(F.avg_pool2d(x, kernel_size=2, stride=2))
        return out * F.interpolate(torch.sigmoid(res), size=out.shape[-2:], mode="nearest")

    class GhostModuleV2(GhostModule):
        def __init__(self, inp, oup, kernel_size=1, ratio=2, dw_size=3, stride=1, relu=True):
            super().__init__(inp, oup, kernel_size, ratio, dw_size, stride, relu)
            self.short_conv = dfc_branch(inp, oup, kernel_size, stride)

        def forward(self, x):
            return dfc_gated(self.short_conv, x, super().forward(x))

    def shortcut_branch(in_chs, out_chs, k, stride):
        """The bottleneck's shortcut: nothing, or depthwise k x k -> BN -> 1x1 -> BN."""
        if in_chs == out_chs and stride == 1:
            return nn.Sequential()
        return nn.Sequential(
            nn.Conv2d(in_chs, in_chs, k, stride, (k - 1) // 2, groups=in_chs, bias=False),
            nn.BatchNorm2d(in_chs),
            nn.Conv2d(in_chs, out_chs, 1, 1, 0, bias=False),
            nn.BatchNorm2d(out_chs),
        )

    class GhostBottleneck(nn.Module):
        def __init__(
            self,
            in_chs,
            mid_chs,
            out_chs,
            dw_kernel_size=3,
            stride=1,
            se_ratio=0.0,
            attention=False,
        ):
            super().__init__()
            self.stride = stride
            g1 = GhostModuleV2 if attention else GhostModule
            self.ghost1 = g1(in_chs, mid_chs, relu=True)
            pad = (dw_kernel_size - 1) // 2
            if stride > 1:
                self.conv_dw = nn.Conv2d(
                    mid_chs, mid_chs, dw_kernel_size, stride, pad, groups=mid_chs, bias=False
                )
                self.bn_dw = nn.BatchNorm2d(mid_chs)
            self.se = SqueezeExcite(mid_chs, se_ratio) if se_ratio and se_ratio > 0 else None
            self.ghost2 = GhostModule(mid_chs, out_chs, relu=False)
            self.shortcut = shortcut_branch(in_chs, out_chs, dw_kernel_size, stride)

        def forward(self, x):
            residual = x
            x = self.ghost1(x)
            if self.stride > 1:
                x = self.bn_dw(self.conv_dw(x))
            if self.se is not None:
                x = self.se(x)
            x = self.ghost2(x)
            return x + self.shortcut(residual)

    class ConvBnAct(nn.Module):
        def __init__(self, in_chs, out_chs, kernel_size, stride=1):
            super().__init__()
            self.conv = nn.Conv2d(
                in_chs, out_chs, kernel_size, stride, kernel_size // 2, bias=False
            )
            self.bn1 = nn.BatchNorm2d(out_chs)
            self.act1 = nn.ReLU()

        def forward(self, x):
            return self.act1(self.bn1(self.conv(x)))

    # -- GhostNetV3: re-parameterizable branches ------------------------------------

    class ConvBn(nn.Module):
        """One branch: conv (no bias, padding k//2) then BN, members conv and bn1."""

        def __init__(self, in_chs, out_chs, kernel_size, stride=1, groups=1):
            super().__init__()
            self.conv = nn.Conv2d(
                in_chs, out_chs, kernel_size, stride, kernel_size // 2, groups=groups, bias=False
            )
            self.bn1 = nn.BatchNorm2d(out_chs)

        def forward(self, x):
            return self.bn1(self.conv(x))

    def fold(branches, skip=None):
        """The deploy conv of a branch sum, folded with torch's own fusion and padding."""
        from torch.nn.utils.fusion import fuse_conv_bn_eval

        fused = [fuse_conv_bn_eval(b.conv, b.bn1) for b in branches]
        big = max(fused, key=lambda c: c.kernel_size[0])
        k = big.kernel_size[0]
        weight = torch.zeros_like(big.weight)
        bias = torch.zeros_like(big.bias)
        for c in fused:
            p = (k - c.kernel_size[0]) // 2
            weight = weight + F.pad(c.weight, [p, p, p, p])
            bias = bias + c.bias
        if skip is not None:
            ident = nn.Conv2d(big.in_channels, big.out_channels, k, 1, k // 2, groups=big.groups)
            ident = ident.to(big.weight.dtype).eval()
            with torch.no_grad():
                ident.weight.zero_()
                ident.weight[:, 0, k // 2, k // 2] = 1.0
                ident.bias.zero_()
            ident = fuse_conv_bn_eval(ident, skip)
            weight = weight + ident.weight
            bias = bias + ident.bias
        with torch.no_grad():
            big.weight.copy_(weight)
            big.bias.copy_(bias)
        big.bias.requires_grad_(True)  # torch's fusion leaves a new bias without gradient
        return big

    class GhostModuleV3(nn.Module):
        def __init__(
            self, inp, oup, kernel_size=1, ratio=2, dw_size=3, stride=1, relu=True, mode="original"
        ):
            super().__init__()
            assert ratio == 2
            self.oup, self.mode, self.deployed = oup, mode, False
            m = math.ceil(oup / 2)
            self.primary_conv = nn.Identity()
            self.cheap_operation = nn.Identity()
            self.primary_rpr_conv = nn.ModuleList(
                ConvBn(inp, m, kernel_size, stride) for _ in range(3)
            )
            self.primary_activation = nn.ReLU() if relu else nn.Identity()
            self.cheap_rpr_skip = nn.BatchNorm2d(m)
            self.cheap_rpr_conv = nn.ModuleList(ConvBn(m, m, dw_size, groups=m) for _ in range(3))
            self.cheap_rpr_scale = ConvBn(m, m, 1, groups=m)
            self.cheap_activation = nn.ReLU() if relu else nn.Identity()
            if mode == "shortcut":
                self.short_conv = dfc_branch(inp, oup, kernel_size, stride)

        def forward(self, x):
            if self.deployed:
                x1 = self.primary_conv(x)
                x2 = self.cheap_operation(x1)
            else:
                x1 = self.primary_activation(sum(b(x) for b in self.primary_rpr_conv))
                x2 = self.cheap_rpr_scale(x1) + self.cheap_rpr_skip(x1)
                for b in self.cheap_rpr_conv:
                    x2 = x2 + b(x1)
                x2 = self.cheap_activation(x2)
            out = torch.cat([x1, x2], dim=1)[:, : self.oup]
            return dfc_gated(self.short_conv, x, out) if self.mode == "shortcut" else out

        def switch_to_deploy(self):
            if self.deployed:
                return
            primary = fold(self.primary_rpr_conv)
            cheap = fold([*self.cheap_rpr_conv, self.cheap_rpr_scale], self.cheap_rpr_skip)
            self.primary_conv = nn.Sequential(primary, self.primary_activation)
            self.cheap_operation = nn.Sequential(cheap, self.cheap_activation)
            for name in (
                "primary_rpr_conv",
                "primary_activation",
                "cheap_rpr_skip",
                "cheap_rpr_conv",
                "cheap_rpr_scale",
                "cheap_activation",
            ):
                delattr(self, name)
            self.deployed = True

    class GhostBottleneckV3(nn.Module):
        def __init__(
            self,
            in_chs,
            mid_chs,
            out_chs,
            dw_kernel_size=3,
            stride=1,
            se_ratio=0.0,
            mode="original",
        ):
            super().__init__()
            self.stride, self.deployed = stride, False
            self.ghost1 = GhostModuleV3(in_chs, mid_chs, relu=True, mode=mode)
            if stride > 1:
                k = dw_kernel_size
                self.dw_rpr_conv = nn.ModuleList(
                    ConvBn(mid_chs, mid_chs, k, stride, groups=mid_chs) for _ in range(3)
                )
                self.dw_rpr_scale = ConvBn(mid_chs, mid_chs, 1, stride, groups=mid_chs)
            self.se = SqueezeExcite(mid_chs, se_ratio) if se_ratio and se_ratio > 0 else None
            self.ghost2 = GhostModuleV3(mid_chs, out_chs, relu=False)
            self.shortcut = shortcut_branch(in_chs, out_chs, dw_kernel_size, stride)

        def forward(self, x):
            h = self.ghost1(x)
            if self.stride > 1:
                if self.deployed:
                    h = self.conv_dw(h)
                else:
                    h = self.dw_rpr_scale(h) + sum(b(h) for b in self.dw_rpr_conv)
            if self.se is not None:
                h = self.se(h)
            return self.ghost2(h) + self.shortcut(x)

        def switch_to_deploy(self):
            if self.stride > 1 and not self.deployed:
                self.conv_dw = fold([*self.dw_rpr_conv, self.dw_rpr_scale])
                del self.dw_rpr_conv, self.dw_rpr_scale
            self.deployed = True

    class GhostNet(nn.Module):
        def __init__(self, width=1.0, num_classes=1000, dropout=0.2, in_chans=3, version=1):
            super().__init__()
            self.dropout = dropout
            stem = make_divisible(16 * width, 4)
            self.conv_stem = nn.Conv2d(in_chans, stem, 3, 2, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(stem)
            self.act1 = nn.ReLU()
            stages, chans, block_id, exp = [], stem, 0, None
            for stage in TORCH_GHOSTNET_CFG:
                layers = []
                for k, exp, c, se, s in stage:
                    out = make_divisible(c * width, 4)
                    mid = make_divisible(exp * width, 4)
                    if version == 3:
                        mode = "shortcut" if block_id > 1 else "original"
                        layers.append(GhostBottleneckV3(chans, mid, out, k, s, se, mode=mode))
                    else:
                        attention = version == 2 and block_id > 1
                        layers.append(
                            GhostBottleneck(chans, mid, out, k, s, se, attention=attention)
                        )
                    chans, block_id = out, block_id + 1
                stages.append(nn.Sequential(*layers))
            last = make_divisible(exp * width, 4)
            stages.append(nn.Sequential(ConvBnAct(chans, last, 1)))
            self.blocks = nn.Sequential(*stages)
            self.global_pool = nn.AdaptiveAvgPool2d((1, 1))
            self.conv_head = nn.Conv2d(last, 1280, 1, 1, 0, bias=True)
            self.act2 = nn.ReLU()
            self.flatten = nn.Flatten()
            self.classifier = nn.Linear(1280, num_classes)

        def forward(self, x):
            x = self.act1(self.bn1(self.conv_stem(x)))
            x = self.blocks(x)
            x = self.global_pool(x)
            x = self.act2(self.conv_head(x))
            x = self.flatten(x)
            if self.dropout > 0.0:
                x = F.dropout(x, p=self.dropout, training=self.training)
            return self.classifier(x)

        def convert_to_deploy(self):
            for m in list(self.modules()):
                if hasattr(m, "switch_to_deploy"):
                    m.switch_to_deploy()
            return self

    _CLASSES.update(
        SqueezeExcite=SqueezeExcite,
        GhostModule=GhostModule,
        GhostModuleV2=GhostModuleV2,
        GhostBottleneck=GhostBottleneck,
        ConvBnAct=ConvBnAct,
        GhostModuleV3=GhostModuleV3,
        GhostBottleneckV3=GhostBottleneckV3,
        GhostNet=GhostNet,
    )
    return _CLASSES


def scramble_buffers(twin):
    """Give a twin's BNs running statistics and batch counters as after training (drawn
    with torch's generator), in place; returns the twin."""
    import torch

    with torch.no_grad():
        for name, buf in twin.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(0.1 * torch.randn_like(buf))
            elif name.endswith("running_var"):
                buf.copy_(torch.rand_like(buf) + 0.5)
            else:
                buf.fill_(7)
    return twin


def build(name, *args, dtype=None, **kwargs):
    """A twin by class name (``"GhostModule"``, ``"GhostNet"``, ...), cast to ``dtype``."""
    module = _classes()[name](*args, **kwargs)
    if dtype is not None:
        module = module.to(dtype)
    return module


def ghostnet_twin(width=1.0, num_classes=1000, dropout=0.2, in_chans=3, version=1, dtype=None):
    """GhostNet V1 (``version=1``), V2 (``version=2``) or V3 (``version=3``) twin."""
    return build(
        "GhostNet",
        width=width,
        num_classes=num_classes,
        dropout=dropout,
        in_chans=in_chans,
        version=version,
        dtype=dtype,
    )
