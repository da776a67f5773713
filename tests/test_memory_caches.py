"""What training keeps for backward: activation caches are boolean masks, and a Ghost
module that keeps every channel stores no slice."""

from __future__ import annotations

import numpy as np
import pytest

from ghostnp import functional as F
from ghostnp import nn

MASKED = [
    (F.relu_forward, F.relu_backward, lambda x: x > 0, 1),
    (F.relu6_forward, F.relu6_backward, lambda x: (x > 0) & (x < 6), 1),
    (F.hard_sigmoid_forward, F.hard_sigmoid_backward, lambda x: (x > -3) & (x < 3), 6),
]


@pytest.mark.parametrize("fwd, bwd, inside, div", MASKED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_cache_is_a_one_byte_mask(fwd, bwd, inside, div, dtype):
    x = np.linspace(-8, 8, 2 * 3 * 5 * 7).reshape(2, 3, 5, 7).astype(dtype)
    y, cache = fwd(x)
    assert cache.saved.dtype == np.bool_ and cache.saved.nbytes == x.size
    dy = np.random.default_rng(1).standard_normal(x.shape).astype(dtype)
    dx = bwd(dy, cache)
    assert dx.dtype == dtype
    np.testing.assert_array_equal(dx, np.where(inside(x), dy, 0) / div)


def test_relu_module_keeps_no_float_copy():
    relu = nn.ReLU()
    x = np.random.default_rng(2).standard_normal((4, 8, 6, 6)).astype(np.float32)
    relu(x)
    saved = relu.last_cache.saved
    assert saved.dtype == np.bool_ and not np.shares_memory(saved, x)


@pytest.mark.parametrize("oup, sliced", [(8, False), (7, True)])
def test_ghost_module_slice_only_when_channels_are_dropped(oup, sliced):
    m = nn.GhostModule(4, oup)
    x = np.random.default_rng(3).standard_normal((2, 4, 5, 5)).astype(np.float32)
    y = m(x)
    assert y.shape == (2, oup, 5, 5)
    cat_cache, slice_cache = m._caches
    assert (slice_cache is not None) == sliced
    dx = m.backward(np.ones_like(y))
    assert dx.shape == x.shape and np.isfinite(dx).all()
