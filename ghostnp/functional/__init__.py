"""Pure forward/backward pairs on NCHW ndarrays: ``y, cache = op_forward(...)``,
``grads = op_backward(dy, cache)``. No hidden state; no input is changed in place.
"""

from .activation import (
    ActivationCache,
    hard_sigmoid_backward,
    hard_sigmoid_forward,
    hard_swish_backward,
    hard_swish_forward,
    relu6_backward,
    relu6_forward,
    relu_backward,
    relu_forward,
    sigmoid_backward,
    sigmoid_forward,
)
from .conv import Conv2dCache, conv2d_backward, conv2d_forward
from .depthwise import DepthwiseCache, depthwise_conv2d_backward, depthwise_conv2d_forward
from .dropout import DropoutCache, dropout_backward, dropout_forward
from .linear import LinearCache, linear_backward, linear_forward
from .loss import (
    CrossEntropyCache,
    log_softmax,
    softmax_cross_entropy_backward,
    softmax_cross_entropy_forward,
)
from .norm import BatchNormCache, batch_norm2d_backward, batch_norm2d_forward
from .pooling import (
    PoolCache,
    ResampleCache,
    adaptive_avg_pool2d_backward,
    adaptive_avg_pool2d_forward,
    avg_pool2d_backward,
    avg_pool2d_forward,
    max_pool2d_backward,
    max_pool2d_forward,
    upsample_nearest2d_backward,
    upsample_nearest2d_forward,
)
from .shape import (
    channel_slice_backward,
    channel_slice_forward,
    concat_backward,
    concat_forward,
)

__all__ = [
    "ActivationCache",
    "BatchNormCache",
    "Conv2dCache",
    "CrossEntropyCache",
    "DepthwiseCache",
    "DropoutCache",
    "LinearCache",
    "PoolCache",
    "ResampleCache",
    "adaptive_avg_pool2d_backward",
    "adaptive_avg_pool2d_forward",
    "avg_pool2d_backward",
    "avg_pool2d_forward",
    "batch_norm2d_backward",
    "batch_norm2d_forward",
    "channel_slice_backward",
    "channel_slice_forward",
    "concat_backward",
    "concat_forward",
    "conv2d_backward",
    "conv2d_forward",
    "depthwise_conv2d_backward",
    "depthwise_conv2d_forward",
    "dropout_backward",
    "dropout_forward",
    "hard_sigmoid_backward",
    "hard_sigmoid_forward",
    "hard_swish_backward",
    "hard_swish_forward",
    "linear_backward",
    "linear_forward",
    "log_softmax",
    "max_pool2d_backward",
    "max_pool2d_forward",
    "relu6_backward",
    "relu6_forward",
    "relu_backward",
    "relu_forward",
    "sigmoid_backward",
    "sigmoid_forward",
    "softmax_cross_entropy_backward",
    "softmax_cross_entropy_forward",
    "upsample_nearest2d_backward",
    "upsample_nearest2d_forward",
]
