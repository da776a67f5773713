"""Stateful modules over the functional pairs, shaped like ``torch.nn``."""

from .layers import (
    AdaptiveAvgPool2d,
    AvgPool2d,
    BatchNorm2d,
    Conv2d,
    CrossEntropyLoss,
    Dropout,
    Flatten,
    Hardsigmoid,
    Hardswish,
    Identity,
    Linear,
    MaxPool2d,
    ReLU,
    ReLU6,
    Sigmoid,
    Upsample,
)
from .module import Module, ModuleList, Parameter, Sequential

__all__ = [
    "Module",
    "ModuleList",
    "Parameter",
    "Sequential",
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
