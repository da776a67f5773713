"""Pure forward/backward pairs on NCHW ndarrays: ``y, cache = op_forward(...)``,
``grads = op_backward(dy, cache)``. No hidden state; no input is changed in place.
"""

from .conv import Conv2dCache, conv2d_backward, conv2d_forward
from .depthwise import DepthwiseCache, depthwise_conv2d_backward, depthwise_conv2d_forward
from .shape import (
    add_backward,
    add_forward,
    channel_slice_backward,
    channel_slice_forward,
    concat_backward,
    concat_forward,
)

__all__ = [
    "Conv2dCache",
    "DepthwiseCache",
    "conv2d_forward",
    "conv2d_backward",
    "depthwise_conv2d_forward",
    "depthwise_conv2d_backward",
    "add_forward",
    "add_backward",
    "concat_forward",
    "concat_backward",
    "channel_slice_forward",
    "channel_slice_backward",
]
