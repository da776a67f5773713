"""The helper process that compiles the depthwise backward kernel on a first run
(ghostnp/kernels/numba/warmup.py): started only on a cold cache and when allowed, its
kernel is loaded (not compiled again) by the process that waited for it, and the
numbers are the reference's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("numba")

from ghostnp.kernels.numba import warmup

FIRST_RUN = textwrap.dedent(
    """
    import json
    import numpy as np
    from ghostnp.kernels import dispatch, reference
    from ghostnp.kernels.geometry import ConvGeometry
    from ghostnp.kernels.numba import warmup
    from ghostnp.kernels.numba.depthwise import _dw_backward_items

    started = warmup._state["proc"] is not None
    rng = np.random.default_rng(0)
    geom = ConvGeometry.of((9, 9), (3, 3), (1, 1), (1, 1), (1, 1))
    x = rng.standard_normal((3, 4, 9, 9)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((3, 4, 9, 9)).astype(np.float32)
    warmup.join(np.float32)
    stored = bool(_dw_backward_items._cache._cache_file._load_index())
    dx, dw = dispatch.depthwise_backward(dy, x, w, geom)
    rx, rw = reference.depthwise_backward(dy, x, w, geom)
    print(json.dumps({
        "started": started,
        "stored_by_helper": stored,
        "loaded": sum(_dw_backward_items._cache_hits.values()),
        "compiled": sum(_dw_backward_items._cache_misses.values()),
        "dx_err": float(np.abs(dx - rx).max()),
        "dw_err": float(np.abs(dw - rw).max()),
    }))
    """
)


def _first_run(cache, **env) -> dict:
    full = dict(os.environ, GHOSTNP_BACKEND="numba", NUMBA_CACHE_DIR=str(cache))
    full.pop("GHOSTNP_CACHE_DIR", None)
    full.pop(warmup.ENV_SWITCH, None)
    full.update(env)
    out = subprocess.run(
        [sys.executable, "-c", FIRST_RUN], env=full, capture_output=True, text=True, timeout=900
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_helper_compiles_the_depthwise_backward_on_a_cold_cache_only(tmp_path):
    cold = _first_run(tmp_path / "cache")
    assert cold["started"] and cold["stored_by_helper"]
    assert cold["loaded"] == 1 and cold["compiled"] == 0  # loaded what the helper stored
    assert cold["dx_err"] < 1e-5 and cold["dw_err"] < 1e-4
    warm = _first_run(tmp_path / "cache")
    assert not warm["started"] and warm["loaded"] == 1 and warm["compiled"] == 0


@pytest.mark.slow
def test_no_helper_when_switched_off(tmp_path):
    off = _first_run(tmp_path / "cache", **{warmup.ENV_SWITCH: "0"})
    assert not off["started"] and not off["stored_by_helper"]
    assert off["compiled"] == 1 and off["loaded"] == 0


class _FakeHelper:
    """A helper that never finishes by itself."""

    def __init__(self):
        self.killed = False

    def poll(self):
        return 0 if self.killed else None

    def kill(self):
        self.killed = True

    def wait(self, timeout=None):
        if not self.killed and timeout is not None:
            raise subprocess.TimeoutExpired("helper", timeout)
        return 0


def test_join_waits_only_for_float32_and_compiles_its_own_share_first(monkeypatch):
    fake, calls = _FakeHelper(), []
    monkeypatch.setitem(warmup._state, "proc", fake)
    monkeypatch.setattr(warmup, "compile_backward", lambda part: calls.append(part))
    warmup.join(np.float64)  # the helper compiles float32 kernels only: no wait
    assert warmup._state["proc"] is fake and calls == []
    warmup.join(np.float32, timeout=0.05)  # gives up after the timeout and stops it
    assert calls == ["own"] and fake.killed and warmup._state["proc"] is None
    warmup.join(np.float32)  # nothing left to wait for
    assert calls == ["own"]
