"""GhostNet V1 in ``torch.nn``, built the way timm builds it, for timing against ghostnp.

The structure follows timm's ``ghostnet.py`` (the usual way PyTorch users run GhostNet):
ReLUs in place, the residual added in place, squeeze-excite pooling by a mean and gating
with ``nn.Hardsigmoid``, dropout as a function before the classifier. Module names are
ghostnp's (which are timm's), so the state dicts interchange; the layer table comes from
``ghostnp.models.ghostnet.GHOSTNET_CFG``. torch is imported when a model is built.
"""

from __future__ import annotations

__all__ = ["torch_ghostnet"]


def torch_ghostnet(width: float = 1.0, num_classes: int = 1000, dropout: float = 0.2):
    """GhostNet V1 as a ``torch.nn.Module`` taking (N, 3, H, W) and returning
    (N, num_classes) logits; parameters under ghostnp's state-dict keys."""
    import torch
    from torch import nn

    from ..models.ghostnet import GHOSTNET_CFG
    from ..nn.ghost import make_divisible

    def conv(cin, cout, k, stride=1, groups=1, bias=False):
        return nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=bias)

    class SqueezeExcite(nn.Module):
        def __init__(self, chs, ratio):
            super().__init__()
            red = make_divisible(chs * ratio, 4)
            self.conv_reduce = conv(chs, red, 1, bias=True)
            self.act1 = nn.ReLU(inplace=True)
            self.conv_expand = conv(red, chs, 1, bias=True)
            self.gate = nn.Hardsigmoid()

        def forward(self, x):
            s = self.conv_expand(self.act1(self.conv_reduce(x.mean((2, 3), keepdim=True))))
            return x * self.gate(s)

    class GhostModule(nn.Module):
        def __init__(self, cin, cout, relu):
            super().__init__()
            self.cout = cout
            init = -(-cout // 2)
            act = (lambda: nn.ReLU(inplace=True)) if relu else nn.Identity
            self.primary_conv = nn.Sequential(conv(cin, init, 1), nn.BatchNorm2d(init), act())
            self.cheap_operation = nn.Sequential(
                conv(init, init, 3, groups=init), nn.BatchNorm2d(init), act()
            )

        def forward(self, x):
            x1 = self.primary_conv(x)
            return torch.cat([x1, self.cheap_operation(x1)], dim=1)[:, : self.cout]

    class GhostBottleneck(nn.Module):
        def __init__(self, cin, mid, cout, k, stride, se_ratio):
            super().__init__()
            self.ghost1 = GhostModule(cin, mid, relu=True)
            self.conv_dw = conv(mid, mid, k, stride, groups=mid) if stride > 1 else None
            self.bn_dw = nn.BatchNorm2d(mid) if stride > 1 else None
            self.se = SqueezeExcite(mid, se_ratio) if se_ratio else None
            self.ghost2 = GhostModule(mid, cout, relu=False)
            if cin == cout and stride == 1:
                self.shortcut = nn.Sequential()
            else:
                self.shortcut = nn.Sequential(
                    conv(cin, cin, k, stride, groups=cin),
                    nn.BatchNorm2d(cin),
                    conv(cin, cout, 1),
                    nn.BatchNorm2d(cout),
                )

        def forward(self, x):
            h = self.ghost1(x)
            if self.conv_dw is not None:
                h = self.bn_dw(self.conv_dw(h))
            if self.se is not None:
                h = self.se(h)
            h = self.ghost2(h)
            h += self.shortcut(x)
            return h

    class ConvBnAct(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.conv = conv(cin, cout, 1)
            self.bn1 = nn.BatchNorm2d(cout)
            self.act = nn.ReLU(inplace=True)

        def forward(self, x):
            return self.act(self.bn1(self.conv(x)))

    class GhostNet(nn.Module):
        def __init__(self):
            super().__init__()
            chans = make_divisible(16 * width, 4)
            self.conv_stem = conv(3, chans, 3, 2)
            self.bn1 = nn.BatchNorm2d(chans)
            self.act1 = nn.ReLU(inplace=True)
            stages = []
            for stage in GHOSTNET_CFG:
                blocks = []
                for k, exp, c, se, s in stage:
                    out, mid = make_divisible(c * width, 4), make_divisible(exp * width, 4)
                    blocks.append(GhostBottleneck(chans, mid, out, k, s, se))
                    chans = out
                stages.append(nn.Sequential(*blocks))
            last = make_divisible(GHOSTNET_CFG[-1][-1][1] * width, 4)
            stages.append(nn.Sequential(ConvBnAct(chans, last)))
            self.blocks = nn.Sequential(*stages)
            self.conv_head = conv(last, 1280, 1, bias=True)
            self.act2 = nn.ReLU(inplace=True)
            self.classifier = nn.Linear(1280, num_classes)

        def forward(self, x):
            x = self.blocks(self.act1(self.bn1(self.conv_stem(x))))
            x = self.act2(self.conv_head(x.mean((2, 3), keepdim=True))).flatten(1)
            x = torch.nn.functional.dropout(x, dropout, self.training)
            return self.classifier(x)

    return GhostNet()
