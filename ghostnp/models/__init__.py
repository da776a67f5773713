"""Model builders: GhostNet V1/V2/V3 for ImageNet shapes, ResNet-56 / VGG-16 for CIFAR and
their Ghost versions, and ``ghostify`` for any model."""

from .cifar import ghost_resnet56, ghost_vgg16, resnet56, vgg16
from .ghostify import ghostify
from .ghostnet import (
    GhostNet,
    ghostnet,
    ghostnet_050,
    ghostnet_100,
    ghostnet_130,
    ghostnetv2,
    ghostnetv2_100,
    ghostnetv2_130,
    ghostnetv2_160,
    ghostnetv3,
    ghostnetv3_050,
    ghostnetv3_100,
    ghostnetv3_130,
    ghostnetv3_160,
)

MODELS = {
    "ghostnet_050": ghostnet_050,
    "ghostnet_100": ghostnet_100,
    "ghostnet_130": ghostnet_130,
    "ghostnetv2_100": ghostnetv2_100,
    "ghostnetv2_130": ghostnetv2_130,
    "ghostnetv2_160": ghostnetv2_160,
    "ghostnetv3_050": ghostnetv3_050,
    "ghostnetv3_100": ghostnetv3_100,
    "ghostnetv3_130": ghostnetv3_130,
    "ghostnetv3_160": ghostnetv3_160,
    "resnet56": resnet56,
    "ghost_resnet56": ghost_resnet56,
    "vgg16": vgg16,
    "ghost_vgg16": ghost_vgg16,
}


def create_model(name: str, **kwargs):
    """Build a model by name (see ``MODELS``); unknown names raise ValueError listing them."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    return MODELS[name](**kwargs)


__all__ = [
    "MODELS",
    "create_model",
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
    "resnet56",
    "ghost_resnet56",
    "vgg16",
    "ghost_vgg16",
    "ghostify",
]
