"""The CIFAR-10 networks of the GhostNet paper's Table 3: ResNet-56 and VGG-16, and their
Ghost versions (every conv but the first replaced by a Ghost module with s=2, d=3).

ResNet-56 (He et al. 2016, the CIFAR form): 3x3 conv to 16 channels, three stages of
nine basic blocks (16, 32, 64 channels; the 2nd and 3rd start with stride 2), global
average pool, linear. Shortcuts are parameter-free ("option A"): when the shape changes,
the input is subsampled by 2 and zero channels are added on both sides.

VGG-16 (the usual CIFAR form): thirteen 3x3 conv -> BN -> ReLU layers with 2x2 max
pooling after each of the five groups, then one linear layer from 512 features.
"""

from __future__ import annotations

import numpy as np

from ..nn.inline import InlineOp
from ..nn.layers import (
    AdaptiveAvgPool2d,
    BatchNorm2d,
    Conv2d,
    Flatten,
    Linear,
    MaxPool2d,
    ReLU,
)
from ..nn.module import Module, Sequential
from .ghostify import ghostify

__all__ = [
    "ResNetCifar",
    "BasicBlock",
    "PadShortcut",
    "resnet56",
    "ghost_resnet56",
    "vgg16",
    "ghost_vgg16",
    "VGG16_CFG",
]


class PadShortcut(Module):
    """Option-A shortcut: x (N, C, H, W) -> (N, C + 2p, ceil(H/2), ceil(W/2)), zeros added."""

    moves_data_only = True  # a strided subsample and zero channels: no arithmetic

    def __init__(self, in_planes, planes, stride=2):
        super().__init__()
        self.pad = (planes - in_planes) // 2
        self.stride = stride
        self._shape = None

    def forward(self, x):
        self._shape = x.shape
        s, p = self.stride, self.pad
        return np.pad(x[:, :, ::s, ::s], ((0, 0), (p, p), (0, 0), (0, 0)))

    def backward(self, dy):
        shape = self._need(self._shape)
        s, p = self.stride, self.pad
        dx = np.zeros(shape, dtype=dy.dtype)
        dx[:, :, ::s, ::s] = dy[:, p : dy.shape[1] - p]  # padded channels had no input
        return dx


class BasicBlock(Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), 3x3 convs."""

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = BatchNorm2d(planes)
        self.relu1 = ReLU()
        self.conv2 = Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = BatchNorm2d(planes)
        if stride != 1 or in_planes != planes:
            self.shortcut = PadShortcut(in_planes, planes, stride)
        else:
            self.shortcut = Sequential()
        self.relu2 = ReLU()

    def _main(self):
        return (self.conv1, self.bn1, self.relu1, self.conv2, self.bn2)

    def conv_bn_pairs(self):
        """(conv, BN) member names whose conv feeds only that BN (see ``fuse_model``)."""
        return [("conv1", "bn1"), ("conv2", "bn2")]

    def forward(self, x):
        h = x
        for m in self._main():
            h = m(h)
        return self.relu2(h + self.shortcut(x))

    def backward(self, dy):
        ds = self.relu2.backward(dy)
        dh = ds
        for m in reversed(self._main()):
            dh = m.backward(dh)
        return dh + self.shortcut.backward(ds)  # x feeds both paths

    def inline_ops(self, x_shape, y_shape, shapes):
        """The residual add, main path + shortcut, before relu2."""
        return [InlineOp("add", y_shape, y_shape, ("before", "relu2"))]


class ResNetCifar(Sequential):
    """ResNet-(6n+2) for 32x32 inputs: (N, 3, 32, 32) -> (N, num_classes)."""

    def __init__(self, depth=56, num_classes=10, in_chans=3):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"ResNetCifar: depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        self.conv1 = Conv2d(in_chans, 16, 3, 1, 1, bias=False)
        self.bn1 = BatchNorm2d(16)
        self.relu = ReLU()
        in_planes = 16
        for i, planes in enumerate((16, 32, 64)):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(in_planes, planes, stride))
                in_planes = planes
            setattr(self, f"layer{i + 1}", Sequential(*blocks))
        self.avgpool = AdaptiveAvgPool2d(1)
        self.flatten = Flatten()
        self.linear = Linear(64, num_classes)


VGG16_CFG = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


class VGGCifar(Sequential):
    """VGG for 32x32 inputs: ``features`` (conv3x3-BN-ReLU and max pools), then a linear layer."""

    def __init__(self, cfg=VGG16_CFG, num_classes=10, in_chans=3):
        super().__init__()
        layers, c = [], in_chans
        for v in cfg:
            if v == "M":
                layers.append(MaxPool2d(2, 2))
            else:
                layers += [Conv2d(c, v, 3, 1, 1, bias=True), BatchNorm2d(v), ReLU()]
                c = v
        self.features = Sequential(*layers)
        self.flatten = Flatten()
        self.classifier = Linear(c, num_classes)


def resnet56(num_classes=10, in_chans=3):
    """ResNet-56 for CIFAR: 853,018 parameters, 125.5M MACs at 32x32."""
    return ResNetCifar(56, num_classes, in_chans)


def ghost_resnet56(num_classes=10, in_chans=3, ratio=2, dw_size=3):
    """ResNet-56 with every conv but the first replaced by a Ghost module."""
    return ghostify(resnet56(num_classes, in_chans), ratio, dw_size)


def vgg16(num_classes=10, in_chans=3):
    """VGG-16 for CIFAR: 14.7M parameters, 313M MACs at 32x32."""
    return VGGCifar(VGG16_CFG, num_classes, in_chans)


def ghost_vgg16(num_classes=10, in_chans=3, ratio=2, dw_size=3):
    """VGG-16 with every conv but the first replaced by a Ghost module."""
    return ghostify(vgg16(num_classes, in_chans), ratio, dw_size)
