"""Assignment ghost-module: GhostNet's Ghost module, forward and backward.

Complete every gap that raises NotImplementedError (README.md has the math and the
shapes), then run

    ghostnp assignment grade .

You build the module from ghostnp's layers (Conv2d, BatchNorm2d, ReLU, Sequential),
which already have their backward passes; your part is the bookkeeping between them.
"""

import math

import numpy as np

from ghostnp.nn import BatchNorm2d, Conv2d, Module, ReLU, Sequential


def ghost_channels(oup, ratio):
    """(m, g): the number of intrinsic maps m = ceil(oup / ratio) that the primary conv
    makes, and the number of ghost maps g = m * (ratio - 1) that the cheap operation
    makes from them. Two ints; m + g >= oup."""
    ### HINT: round up, so that m * ratio >= oup: math.ceil(oup / ratio); each intrinsic map
    ### HINT: makes ratio - 1 ghosts.
    ### BEGIN SOLUTION
    m = math.ceil(oup / ratio)
    return m, m * (ratio - 1)
    ### END SOLUTION


class GhostModule(Module):
    """Ghost module: x (N, inp, H, W) -> y (N, oup, H', W'), H' = ceil(H / stride).

        x1 = primary_conv(x)            # (N, m, H', W')   k x k conv (stride) -> BN -> ReLU
        x2 = cheap_operation(x1)        # (N, g, H', W')   d x d depthwise conv -> BN -> ReLU
        y  = concat([x1, x2])[:, :oup]  # (N, oup, H', W')

    The members must carry these names (they are GhostNet's state-dict names):
    ``primary_conv`` = Sequential(Conv2d(inp, m, kernel_size, stride, kernel_size // 2,
    bias=False), BatchNorm2d(m), ReLU() or Sequential() when relu is False) and
    ``cheap_operation`` = Sequential(Conv2d(m, g, dw_size, 1, dw_size // 2, groups=m,
    bias=False), BatchNorm2d(g), ReLU() or Sequential()).
    """

    def __init__(self, inp, oup, kernel_size=1, ratio=2, dw_size=3, stride=1, relu=True):
        super().__init__()
        self.inp, self.oup, self.ratio = inp, oup, ratio
        ### HINT: m, g = ghost_channels(oup, ratio), kept as self.init_channels and self.new_channels;
        ### HINT: then self.primary_conv and self.cheap_operation as in the class docstring (the cheap
        ### HINT: conv is depthwise: groups=m, so its weight is (g, 1, dw_size, dw_size)).
        ### BEGIN SOLUTION
        m, g = ghost_channels(oup, ratio)
        self.init_channels, self.new_channels = m, g
        self.primary_conv = Sequential(
            Conv2d(inp, m, kernel_size, stride, kernel_size // 2, bias=False),
            BatchNorm2d(m),
            ReLU() if relu else Sequential(),
        )
        self.cheap_operation = Sequential(
            Conv2d(m, g, dw_size, 1, dw_size // 2, groups=m, bias=False),
            BatchNorm2d(g),
            ReLU() if relu else Sequential(),
        )
        ### END SOLUTION
        self._saved = None

    def forward(self, x):
        """x (N, inp, H, W) -> y (N, oup, H', W'); keeps what backward needs in self._saved."""
        ### HINT: x1 = self.primary_conv(x) is (N, m, H', W'); x2 = self.cheap_operation(x1) is
        ### HINT: (N, g, H', W'); concatenate them along channels (N, m + g, H', W') and keep the
        ### HINT: first oup channels. Save the shape of the concatenation for backward.
        ### BEGIN SOLUTION
        x1 = self.primary_conv(x)
        x2 = self.cheap_operation(x1)
        cat = np.concatenate([x1, x2], axis=1)
        self._saved = cat.shape
        return cat[:, : self.oup].copy()
        ### END SOLUTION

    def backward(self, dy):
        """dy (N, oup, H', W') -> dx (N, inp, H, W); parameter gradients accumulate in p.grad."""
        ### HINT: undo the slice: dcat (N, m + g, H', W') is zeros with dcat[:, :oup] = dy (dropped
        ### HINT: channels did not affect y); split it into dx1 = dcat[:, :m] and dx2 = dcat[:, m:].
        ### HINT: x1 fans out (into y and into the cheap op), so its gradient is the SUM of both paths:
        ### HINT: dx1 + self.cheap_operation.backward(dx2). Finally self.primary_conv.backward(...).
        ### BEGIN SOLUTION
        cat_shape = self._need(self._saved)
        m = self.init_channels
        dcat = np.zeros(cat_shape, dtype=dy.dtype)
        dcat[:, : self.oup] = dy
        dx1, dx2 = dcat[:, :m], dcat[:, m:]
        dx1 = dx1 + self.cheap_operation.backward(dx2)
        return self.primary_conv.backward(dx1)
        ### END SOLUTION
