"""Stateful modules over the functional pairs, shaped like ``torch.nn``."""

from .module import Module, ModuleList, Parameter, Sequential

__all__ = ["Module", "ModuleList", "Parameter", "Sequential"]
