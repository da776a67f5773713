"""The two measurements that need fresh processes: the peak memory of a training step,
and the compile cost of a first ``ghostnp train`` on an empty kernel cache.

Peak memory. Each measurement runs in a new process, so that neither implementation
inherits the other's heap. The process warms up on a small model (kernels compiled or
loaded, thread pools started), builds GhostNet-1.0x and its input, hands the free heap
back to the system (``malloc_trim``), reads its resident set (``VmRSS``), resets the
kernel's high-water mark (writing 5 to ``/proc/self/clear_refs``) and runs two training
steps; the figure is the high-water mark ``VmHWM`` minus that resident set: the memory
training needs on top of the model and its input (activations kept for backward,
gradients, momentum buffers, workspace, and whatever one step keeps into the next).
``tracemalloc`` would be unfair: it sees NumPy's allocations but not those made inside
Numba kernels or by PyTorch. Every memory process, ghostnp's and PyTorch's alike, runs
with ``MALLOC_MMAP_THRESHOLD_=131072``, which makes glibc give every freed block above
128 KiB back to the system at once, so that the resident set follows the live arrays
instead of the allocator's free lists.

Compile cost. ``ghostnp train --epochs 1`` (a small GhostNet on the built-in digits)
runs with ``NUMBA_CACHE_DIR`` and ``GHOSTNP_CACHE_DIR`` pointing at a new, empty
temporary folder: the first run compiles every kernel it uses and stores them there,
later runs load them. The cost is the first run's wall time minus the median of the
later ones'. The run uses the ``ghostnp`` command installed beside the interpreter, as
a user types it, and ``python -m ghostnp`` only where there is none. The two are not
the same on a cold cache under CPython 3.11: there, the interpreter keeps Python frames
in 16 KiB chunks that it maps and unmaps as the call stack crosses a chunk's end, and
with the two extra frames of ``-m`` the compiler's recursion happens to sit on such an
end, so ``python -m ghostnp train`` spent about 6 s more of system time (some 860,000
``mmap``/``munmap`` calls instead of 98,000) for the same compilations.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from .timing import CpuMeter
from .workloads import NETWORKS, ghostnp_network, torch_network

__all__ = ["child_env", "measure_compile", "measure_memory"]


def child_env(threads: int, extra: dict | None = None) -> dict:
    """The environment of a measuring child: this one, with ``threads`` for Numba,
    OpenBLAS and PyTorch (via ``OMP_NUM_THREADS``)."""
    env = dict(os.environ)
    for var in ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        env[var] = str(threads)
    env.update(extra or {})
    return env


def _run(cmd: list[str], env: dict, timeout: float = 1800) -> tuple[str, float]:
    """Run the command ``cmd``; (stdout, wall seconds)."""
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"benchmark child {cmd} failed:\n{out.stderr[-3000:]}")
    return out.stdout, wall


# ----------------------------------------------------------------------------------------
# peak memory
# ----------------------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def memory_child(impl: str, network: str) -> dict:
    """In this (fresh) process: peak MiB of two training steps above the resident set of
    the built model and input, for ``impl`` "ghostnp" or "torch" on ``NETWORKS[network]``."""
    import ctypes

    kind, batch, size = NETWORKS[network]
    if impl == "torch":
        import torch

        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

        def build(b, s):
            return torch_network(kind, b, s)
    else:

        def build(b, s):
            return ghostnp_network(kind, b, s)

    build(2, 64)()  # warm-up on a small model and input
    step = build(batch, size)
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # free heap pages back to the system
    before = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the high-water mark VmHWM to the current resident set
    step()
    step()
    peak = _status_kib("VmHWM")
    return {"before_mib": before / 1024, "step_mib": (peak - before) / 1024}


def measure_memory(network: str, threads: int, repeats: int = 2) -> dict:
    """Peak MiB of training steps above the resident set before them, per implementation:
    ``{"ghostnp": [...], "torch": [...]}`` from ``repeats`` fresh processes each, run in
    alternation."""
    env = child_env(threads, {"MALLOC_MMAP_THRESHOLD_": str(128 * 1024)})
    out: dict = {"ghostnp": [], "torch": []}
    for r in range(repeats):
        for impl in ("ghostnp", "torch") if r % 2 == 0 else ("torch", "ghostnp"):
            stdout, _ = _run([sys.executable, "-m", "ghostnp.bench", "_memory", impl, network], env)
            out[impl].append(json.loads(stdout.strip().splitlines()[-1])["step_mib"])
    return out


# ----------------------------------------------------------------------------------------
# compile cost
# ----------------------------------------------------------------------------------------


def measure_compile(threads: int, warm_runs: int = 2, epochs: int = 1) -> dict:
    """Wall seconds of ``python -m ghostnp train --epochs 1`` on an empty kernel cache
    ("cold") and on the cache it left (``warm_runs`` later runs, "warm": their median),
    and the load of other processes during each run (cores)."""
    with tempfile.TemporaryDirectory(prefix="ghostnp-bench-cache-") as d:
        cache = os.path.join(d, "cache")
        env = child_env(
            threads,
            {"NUMBA_CACHE_DIR": cache, "GHOSTNP_CACHE_DIR": cache, "GHOSTNP_BACKEND": "numba"},
        )
        command = _ghostnp_command()
        args = [*command, "train", "--epochs", str(epochs), "--no-progress"]
        walls, loads = [], []
        for k in range(1 + warm_runs):
            meter = CpuMeter().start()
            _, wall = _run([*args, "--out", os.path.join(d, f"run{k}")], env)
            walls.append(wall)
            loads.append(meter.stop())
    warm = statistics.median(walls[1:])
    return {
        "cold_s": walls[0],
        "warm_s": warm,
        "cost_s": walls[0] - warm,
        "foreign": loads,
        "command": "ghostnp" if len(command) == 1 else "python -m ghostnp",
    }


def _ghostnp_command() -> list[str]:
    """The ``ghostnp`` console script of this interpreter's environment, else
    ``python -m ghostnp``."""
    bindir = os.path.dirname(sys.executable)
    for name in ("ghostnp", "ghostnp.exe"):
        script = os.path.join(bindir, name)
        if os.path.isfile(script) and os.access(script, os.X_OK):
            return [script]
    return [sys.executable, "-m", "ghostnp"]
