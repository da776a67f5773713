"""GhostNet V1 (Han et al., CVPR 2020), V2 (Tang et al., NeurIPS 2022) and V3 (Liu et al.,
2024) for ImageNet-shaped inputs, with the reference implementations' module names, so
their state dicts load with ``strict=True``.

    conv_stem 3x3 s2 -> bn1 -> act1 -> blocks.0 .. blocks.8 (GhostBottlenecks)
    -> blocks.9 (1x1 ConvBnAct) -> global_pool -> conv_head 1x1 (+bias, 1280) -> act2
    -> flatten -> dropout -> classifier
"""

from __future__ import annotations

from ..nn.ghost import ConvBnAct, GhostBottleneck, make_divisible
from ..nn.ghost_v3 import GhostBottleneckV3, Reparameterizable
from ..nn.layers import AdaptiveAvgPool2d, BatchNorm2d, Conv2d, Dropout, Flatten, Linear, ReLU
from ..nn.module import Sequential

__all__ = [
    "GHOSTNET_CFG",
    "GhostNet",
    "ghostnet",
    "ghostnet_050",
    "ghostnet_100",
    "ghostnet_130",
    "ghostnetv2",
    "ghostnetv2_100",
    "ghostnetv2_130",
    "ghostnetv2_160",
    "ghostnetv3",
    "ghostnetv3_050",
    "ghostnetv3_100",
    "ghostnetv3_130",
    "ghostnetv3_160",
]

# One list per stage (blocks.i), one row per block (blocks.i.j):
# k (kernel of the strided depthwise conv and of the shortcut's), exp (mid channels),
# out channels, SE ratio, stride.
GHOSTNET_CFG = [
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


class GhostNet(Reparameterizable, Sequential):
    """GhostNet: (N, in_chans, H, W) -> logits (N, num_classes).

    ``version=2`` gives GhostNetV2: DFC attention in ghost1 of every block whose global
    index (counted over all stages from 0) is greater than 1. Everything else is V1.
    ``version=3`` gives GhostNetV3: GhostBottleneckV3 blocks (re-parameterizable
    branches), with DFC attention where V2 has it; ``model.eval().reparameterize()``
    (alias ``convert_to_deploy()``) folds them for inference, and does nothing to V1/V2.
    Forward and backward run the children in order (it is a chain), so the model's
    backward is Sequential's.
    """

    def __init__(self, width=1.0, num_classes=1000, dropout=0.2, in_chans=3, version=1, cfg=None):
        super().__init__()
        if width <= 0:
            raise ValueError(f"GhostNet: width must be positive, got {width}")
        if version not in (1, 2, 3):
            raise ValueError(f"GhostNet: version must be 1, 2 or 3, got {version}")
        cfg = GHOSTNET_CFG if cfg is None else cfg
        self.width, self.version, self.num_classes, self.in_chans = (
            width,
            version,
            num_classes,
            in_chans,
        )
        stem = make_divisible(16 * width, 4)
        self.conv_stem = Conv2d(in_chans, stem, 3, 2, 1, bias=False)
        self.bn1 = BatchNorm2d(stem)
        self.act1 = ReLU()
        stages, chans, block_id = [], stem, 0
        for stage in cfg:
            blocks = []
            for k, exp, c, se, s in stage:
                out = make_divisible(c * width, 4)
                mid = make_divisible(exp * width, 4)
                if version == 3:
                    mode = "shortcut" if block_id > 1 else "original"
                    blocks.append(GhostBottleneckV3(chans, mid, out, k, s, se, mode=mode))
                else:
                    attention = version == 2 and block_id > 1
                    blocks.append(GhostBottleneck(chans, mid, out, k, s, se, attention=attention))
                chans, block_id = out, block_id + 1
            stages.append(Sequential(*blocks))
        last = make_divisible(exp * width, 4)
        stages.append(Sequential(ConvBnAct(chans, last, 1)))
        self.blocks = Sequential(*stages)
        self.num_features = 1280
        self.global_pool = AdaptiveAvgPool2d(1)
        self.conv_head = Conv2d(last, self.num_features, 1, 1, 0, bias=True)
        self.act2 = ReLU()
        self.flatten = Flatten()
        self.dropout = Dropout(dropout)
        self.classifier = Linear(self.num_features, num_classes)

    def extra_repr(self):
        return f"width={self.width}, version={self.version}, num_classes={self.num_classes}"


def ghostnet(width=1.0, num_classes=1000, dropout=0.2, in_chans=3):
    """GhostNet V1 at any width multiplier."""
    return GhostNet(width, num_classes, dropout, in_chans, version=1)


def ghostnetv2(width=1.0, num_classes=1000, dropout=0.2, in_chans=3):
    """GhostNetV2 (DFC attention) at any width multiplier."""
    return GhostNet(width, num_classes, dropout, in_chans, version=2)


def ghostnetv3(width=1.0, num_classes=1000, dropout=0.2, in_chans=3):
    """GhostNetV3 (re-parameterizable branches, DFC attention) at any width multiplier."""
    return GhostNet(width, num_classes, dropout, in_chans, version=3)


def ghostnet_050(**kw):
    """GhostNet 0.5x: 2,587,292 parameters, 42.3M MACs at 224x224."""
    return ghostnet(0.5, **kw)


def ghostnet_100(**kw):
    """GhostNet 1.0x: 5,182,508 parameters, 141.2M MACs at 224x224."""
    return ghostnet(1.0, **kw)


def ghostnet_130(**kw):
    """GhostNet 1.3x: 7,358,820 parameters, 227.0M MACs at 224x224."""
    return ghostnet(1.3, **kw)


def ghostnetv2_100(**kw):
    """GhostNetV2 1.0x: 6,156,908 parameters."""
    return ghostnetv2(1.0, **kw)


def ghostnetv2_130(**kw):
    """GhostNetV2 1.3x: 8,960,404 parameters."""
    return ghostnetv2(1.3, **kw)


def ghostnetv2_160(**kw):
    """GhostNetV2 1.6x: 12,392,698 parameters."""
    return ghostnetv2(1.6, **kw)


def ghostnetv3_050(**kw):
    """GhostNetV3 0.5x: 3,395,384 parameters (2,853,176 after reparameterize())."""
    return ghostnetv3(0.5, **kw)


def ghostnetv3_100(**kw):
    """GhostNetV3 1.0x: 8,129,028 parameters (6,147,588 after reparameterize())."""
    return ghostnetv3(1.0, **kw)


def ghostnetv3_130(**kw):
    """GhostNetV3 1.3x: 12,217,720 parameters (8,948,296 after reparameterize())."""
    return ghostnetv3(1.3, **kw)


def ghostnetv3_160(**kw):
    """GhostNetV3 1.6x: 17,275,700 parameters (12,377,778 after reparameterize())."""
    return ghostnetv3(1.6, **kw)
