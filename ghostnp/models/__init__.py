"""Model builders: GhostNet V1/V2/V3 for ImageNet shapes, ResNet-56 / VGG-16 for CIFAR and
their Ghost versions, and ``ghostify`` for any model.

``create_model(name, width=None, **kwargs)`` builds any of them by name: the command line,
the training job and the visualisation all go through it.

    create_model("ghost_resnet56")                       # a fixed network (see MODELS)
    create_model("ghostnetv3", width=0.5, num_classes=10, in_chans=1)   # at any width
"""

import inspect

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


# the GhostNet families at any width multiplier: create_model(name, width=...)
WIDTH_MODELS = {"ghostnet": ghostnet, "ghostnetv2": ghostnetv2, "ghostnetv3": ghostnetv3}


def model_names() -> list[str]:
    """Every name `create_model` takes: the families at any width, then ``MODELS``."""
    return [*WIDTH_MODELS, *MODELS]


def create_model(name: str, width: float | None = None, **kwargs):
    """Build a model by name; ``kwargs`` go to its builder (``num_classes``, ``in_chans``,
    ``dropout`` where it has one).

    ``name`` is a key of ``MODELS`` (``"ghostnet_100"``, ``"resnet56"``, ...) or a family
    of ``WIDTH_MODELS`` (``"ghostnet"``, ``"ghostnetv2"``, ``"ghostnetv3"``) built at
    ``width`` (default 1.0). An unknown name raises ValueError listing them all, and so
    does a ``width`` for a network whose width is fixed.
    """
    if name in WIDTH_MODELS:
        return WIDTH_MODELS[name](1.0 if width is None else width, **kwargs)
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(model_names())}")
    if width is not None:
        raise ValueError(
            f"width applies to {', '.join(map(repr, WIDTH_MODELS))}; {name!r} has a fixed width"
        )
    return MODELS[name](**kwargs)


def takes_option(name: str, option: str) -> bool:
    """Whether the builder of model ``name`` takes the keyword ``option`` (e.g. ``"dropout"``:
    the CIFAR networks have none)."""
    builder = WIDTH_MODELS.get(name) or MODELS[name]
    params = inspect.signature(builder).parameters.values()
    return any(p.name == option or p.kind is p.VAR_KEYWORD for p in params)


__all__ = [
    "MODELS",
    "WIDTH_MODELS",
    "create_model",
    "model_names",
    "takes_option",
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
