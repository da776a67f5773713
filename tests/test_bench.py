"""The benchmark harness runs and returns markdown (no timings are asserted)."""

from __future__ import annotations

import numpy as np

from ghostnp.bench import ConvShape, col2im_add_at, run_bench
from ghostnp.kernels import reference


def test_run_bench_tiny_returns_a_table():
    table = run_bench(tiny=True)
    assert isinstance(table, str)
    assert "| layer |" in table and "|---|" in table
    for name in ("tiny dense", "tiny 1x1", "tiny dw3", "tiny dw5"):
        assert name in table
    assert "np.add.at" in table


def test_run_bench_takes_shapes():
    shapes = [ConvShape(1, 2, 2, 3, 1, 1, 2, 5, 5, name="custom")]
    table = run_bench(tiny=True, shapes=shapes, numpy_backend=False)
    assert "custom" in table and "| 2->2 @5x5 |" in table


def test_col2im_add_at_equals_reference():
    cols = np.random.default_rng(0).standard_normal((2, 3, 3, 2, 4, 3))
    for stride, dilation in ((1, 1), (2, 1), (1, 2)):
        hp = stride * 3 + dilation * 2 + 2
        wp = stride * 2 + dilation * 1 + 2
        args = (hp, wp, stride, stride, dilation, dilation)
        np.testing.assert_allclose(col2im_add_at(cols, *args), reference.col2im(cols, *args))
