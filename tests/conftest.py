"""Shared fixtures: the PyTorch oracle, both backends, a seeded generator."""

from __future__ import annotations

import os

import numpy as np
import pytest

from ghostnp.kernels import use_backend

REQUIRE_TORCH = os.environ.get("GHOSTNP_REQUIRE_TORCH") == "1"


@pytest.fixture(scope="session")
def torch():
    """The torch module; skips the test where torch is absent, fails if GHOSTNP_REQUIRE_TORCH=1."""
    try:
        import torch as _torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        if REQUIRE_TORCH:
            pytest.fail(f"GHOSTNP_REQUIRE_TORCH=1 but torch cannot be imported: {e}")
        pytest.skip("torch is not installed")
    _torch.set_num_threads(1)
    return _torch


@pytest.fixture(params=["numpy", "numba"])
def backend(request):
    """Run the test once on each backend."""
    with use_backend(request.param):
        yield request.param


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
