"""Helpers that act on whole modules, named after their ``torch.nn.utils`` counterparts."""

from .fusion import FusionModeError, fuse_conv_bn_eval, fuse_conv_bn_weights, fuse_model

__all__ = ["FusionModeError", "fuse_conv_bn_eval", "fuse_conv_bn_weights", "fuse_model"]
