"""Shared fixtures: the PyTorch oracle, both backends, a seeded generator; and the hook
that marks every test using PyTorch with ``torch`` (``pytest -m "not torch"`` leaves
them out)."""

from __future__ import annotations

import os
import types

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


# the builders in tests/torch_twins.py that make torch.nn modules
TWIN_BUILDERS = {"build", "ghostnet_twin", "scramble_buffers"}


def _builds_twins(item) -> bool:
    """Whether the test's own code calls a PyTorch twin builder of tests/torch_twins.py."""
    code = getattr(getattr(item, "function", None), "__code__", None)
    if code is None:
        return False
    names = set(code.co_names)
    imports_twins = "torch_twins" in names or any(
        isinstance(v, types.ModuleType) and v.__name__ == "torch_twins"
        for v in vars(item.module).values()
    )
    return imports_twins and bool(names & TWIN_BUILDERS)


def pytest_collection_modifyitems(config, items):
    """Mark with ``torch`` every test that takes the ``torch`` fixture (directly or through
    another fixture) or builds a PyTorch twin, so the marker cannot be forgotten."""
    for item in items:
        if "torch" in getattr(item, "fixturenames", ()) or _builds_twins(item):
            item.add_marker(pytest.mark.torch)
