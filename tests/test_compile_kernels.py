"""How the Numba kernels are compiled and run: one compiled version per argument type
(a constant argument is not a new version), and the thread split of the work items."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from ghostnp.kernels.numba import depthwise, im2col, threads

# run in a new process on an empty cache: kernels loaded from a cache leave their
# helpers uncompiled, and there would be nothing to look at
ONE_VERSION_PER_TYPE = textwrap.dedent(
    """
    import numpy as np
    from numba.core import types
    import ghostnp.kernels.numba as nbk
    from ghostnp.kernels.geometry import ConvGeometry
    from ghostnp.kernels.numba import phases, taps

    # these geometries make the phase kernels call the helpers with constant arguments
    # (0, 1, True) as well as with variables
    r = np.random.default_rng(0)
    for stride, m in ((1, 1), (2, 1), (2, 2)):
        x = r.standard_normal((3, 4, 8, 8)).astype(np.float32)
        w = r.standard_normal((4 * m, 3, 3)).astype(np.float32)
        geom = ConvGeometry.of((8, 8), (3, 3), (stride, stride), (1, 1), (1, 1))
        y = nbk.depthwise_forward(x, w, geom)
        nbk.depthwise_backward(np.ones_like(y), x, w, geom)
        nbk.fold(nbk.unfold(x, geom), geom)
    for f in (taps._mac_taps, taps._acc_products, taps._acc_products2,
              phases._load_phases, phases._store_phases, phases._gather_planes):
        literal = [s for s in f.signatures if any(isinstance(t, types.Literal) for t in s)]
        print(f.py_func.__name__, len(f.signatures), len(literal))
    """
)


@pytest.mark.slow
def test_helpers_compile_one_version_not_one_per_constant(tmp_path):
    # no compile helper: every kernel must be compiled in this process to be looked at
    env = dict(
        os.environ,
        GHOSTNP_CACHE_DIR=str(tmp_path),
        GHOSTNP_BACKEND="numba",
        GHOSTNP_PARALLEL_COMPILE="0",
    )
    run = subprocess.run(
        [sys.executable, "-c", ONE_VERSION_PER_TYPE],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    counts = {name: (int(n), int(lit)) for name, n, lit in map(str.split, run.stdout.splitlines())}
    assert len(counts) == 6
    for name, (n, literal) in counts.items():
        assert (n, literal) == (1, 0), (name, n, literal)


def test_kernels_called_from_python_release_the_gil():
    for f in (
        depthwise._dw_forward_items,
        depthwise._dw_backward_items,
        im2col._im2col_items,
        im2col._col2im_items,
    ):
        assert f.targetoptions["nogil"], f.py_func.__name__


@pytest.mark.parametrize("items", [1, 2, 3, 7, 16])
@pytest.mark.parametrize("count", [1, 2, 3, 5])
def test_run_items_covers_every_item_once(items, count):
    seen: list[int] = []

    def record(tag, lo, hi):
        assert tag == "args" and 0 <= lo <= hi <= items
        seen.extend(range(lo, hi))

    threads.run_items(record, ("args",), items, count)
    assert sorted(seen) == list(range(items))


def test_run_items_passes_errors_on():
    def fail(lo, hi):
        if lo > 0:
            raise RuntimeError("chunk failed")

    with pytest.raises(RuntimeError, match="chunk failed"):
        threads.run_items(fail, (), 4, 2)


def test_numba_disable_jit_gives_the_python_function(monkeypatch):
    from numba.core import config

    from ghostnp.kernels.numba.jit import kernel

    monkeypatch.setattr(config, "DISABLE_JIT", True)

    def f(a):
        return a + 1

    assert kernel()(f) is f


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_run_items_works_in_a_forked_child():
    # the child has none of the parent's pool threads: it must make its own pool
    def nothing(lo, hi):
        pass

    threads.run_items(nothing, (), 4, 2)  # the parent's pool exists now
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if the split ran
        seen = []
        threads.run_items(lambda lo, hi: seen.extend(range(lo, hi)), (), 4, 2)
        os._exit(0 if sorted(seen) == [0, 1, 2, 3] else 1)
    for _ in range(600):  # a child waiting on threads it does not have would never exit
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.1)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("run_items hung in a forked child")
    assert os.waitstatus_to_exitcode(status) == 0
