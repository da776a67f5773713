"""ghostify: turn a CNN into its Ghost version, as the paper does for VGG-16 and ResNet-56.

Every ordinary conv (groups 1, dilation 1, odd square kernel, "same" padding k//2) except
the first of the model is replaced in place by a GhostModule with the conv's kernel and
stride as the primary conv, ``ratio`` s and cheap kernel ``dw_size`` d, and no ReLU
inside (the layers that followed the conv, such as its BN and ReLU, stay as they were).
Convs of other shapes are left alone and reported.
"""

from __future__ import annotations

from ..nn.ghost import GhostModule
from ..nn.layers import Conv2d

__all__ = ["ghostify", "replaceable"]


def replaceable(conv: Conv2d) -> bool:
    """True when a Ghost module with the same kernel and stride can stand in for ``conv``."""
    kh, kw = conv.kernel_size
    return (
        conv.groups == 1
        and conv.dilation == (1, 1)
        and kh == kw
        and kh % 2 == 1
        and conv.padding == (kh // 2, kw // 2)
        and conv.stride[0] == conv.stride[1]
    )


def ghostify(model, ratio=2, dw_size=3, skip_first=True):
    """Replace the model's convs by Ghost modules in place and return the model.

    The paths replaced are stored in ``model.ghostified`` and those skipped in
    ``model.ghost_skipped`` (path, reason). The first conv is kept when ``skip_first``
    (it sees the raw image, whose 3 channels leave nothing to save).
    """
    convs = [(p, m) for p, m in model.named_modules() if isinstance(m, Conv2d)]
    parents = dict(model.named_modules())
    done, skipped = [], []
    for i, (path, conv) in enumerate(convs):
        if i == 0 and skip_first:
            skipped.append((path, "first conv"))
            continue
        if not replaceable(conv):
            skipped.append((path, "not a dense same-padding conv"))
            continue
        parent_path, _, name = path.rpartition(".")
        ghost = GhostModule(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size[0],
            ratio,
            dw_size,
            conv.stride[0],
            relu=False,
        ).astype(conv.weight.dtype)
        setattr(parents[parent_path], name, ghost)
        done.append(path)
    object.__setattr__(model, "ghostified", done)
    object.__setattr__(model, "ghost_skipped", skipped)
    return model
