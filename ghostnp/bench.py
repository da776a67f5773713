"""Benchmarks: ghostnp (Numba kernels and NumPy reference) against PyTorch CPU, measured
in the same run with the same thread count, printed as a markdown table.

    from ghostnp.bench import run_bench
    print(run_bench(quick=True))          # `ghostnp bench`; `ghostnp bench --full` for all

What is timed (float32, medians):

* every distinct convolution of GhostNet-1.0x at batch 16 (found by running the model
  once with forward hooks), forward + backward: the stem, the 1x1 convolutions, the
  depthwise 3x3 and 5x5 ones at stride 1 and 2 (in full mode also a depthwise 5x5 at
  stride 1, which GhostNet-1.0x does not use, at each resolution);
* the NumPy reference ``col2im`` against a textbook ``np.add.at`` version;
* a whole GhostNet-1.0x training step (forward, loss, backward, SGD with momentum) at
  batch 16 on 224x224 and batch 64 on 32x32, and batch-1 inference on 224x224;
* (full mode) the peak memory of a training step, and the time a fresh process needs to
  reach the end of its first GhostNet training step with a cold and a warm Numba cache.

How. Each implementation runs in its own worker process, and the workers take turns,
round after round (the order rotating), so that a change of machine load falls on all
of them; the median over every sample of every round is reported. Separate processes
keep the thread pools apart: in one process PyTorch's OpenMP threads, NumPy's OpenBLAS
threads and Numba's threads would spin-wait against each other, which measures their
interference rather than either library. Every worker gets the same thread count
(``torch.set_num_threads`` = Numba's thread count = OpenBLAS's). Before each round the
parent touches a few GiB of memory once: on a virtual machine the first write to memory
the guest has never used is several times slower than any later one, and without this
step whichever worker happened to reach fresh memory first would pay for it.

Peak memory is measured the same way for every implementation: a fresh process warms up
on a small model (kernels compiled or loaded, thread pools started), builds the model
and input, resets the kernel's resident-set high-water mark (``/proc/self/clear_refs``)
and runs one training step; the figure is the high-water mark minus the resident set just
before the step. ``tracemalloc`` would be unfair: it sees NumPy's allocations but neither
those made inside Numba kernels nor PyTorch's. glibc is told to serve every block above
128 KiB with mmap (``MALLOC_MMAP_THRESHOLD_``) in all the memory workers alike, so that
freed arrays go back to the system at once and the resident set follows the live arrays.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np

from . import functional as F
from .kernels import reference, use_backend

__all__ = ["ConvShape", "ghostnet_conv_shapes", "run_bench", "time_call", "torch_ghostnet"]

IMPLS = ("numba", "numpy", "torch")


# ----------------------------------------------------------------------------------------
# shapes
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConvShape:
    """One convolution: input (n, cin, h, w), weight (cout, cin/groups, k, k)."""

    n: int
    cin: int
    cout: int
    k: int
    stride: int
    padding: int
    groups: int
    h: int
    w: int
    bias: bool = False
    count: int = 1  # how many layers of GhostNet-1.0x have this shape (0: not in it)
    name: str = ""  # the first of them

    @property
    def depthwise(self) -> bool:
        return self.groups == self.cin and self.groups > 1

    @property
    def kind(self) -> str:
        if self.depthwise:
            return f"dw {self.k}x{self.k} s{self.stride}"
        if self.k == 1:
            return "1x1"
        return f"dense {self.k}x{self.k} s{self.stride}"

    @property
    def out_hw(self) -> tuple[int, int]:
        p, k, s = self.padding, self.k, self.stride
        return (self.h + 2 * p - k) // s + 1, (self.w + 2 * p - k) // s + 1

    def label(self) -> str:
        return f"{self.cin}->{self.cout} @{self.h}x{self.w}"


def ghostnet_conv_shapes(batch: int = 16, size: int = 224) -> list[ConvShape]:
    """The distinct convolutions of GhostNet-1.0x on (batch, 3, size, size), in model order.

    Found by running the model once (batch 1, NumPy backend) with a forward hook on every
    Conv2d; layers with equal geometry are merged and counted.
    """
    from .models import ghostnet_100
    from .nn.layers import Conv2d

    model = ghostnet_100().eval()
    found: dict[tuple, list] = {}
    handles = []
    for name, m in model.named_modules():
        if isinstance(m, Conv2d):

            def hook(mod, args, out, _name=name):
                x = args[0]
                key = (
                    mod.in_channels,
                    mod.out_channels,
                    mod.kernel_size[0],
                    mod.stride[0],
                    mod.padding[0],
                    mod.groups,
                    x.shape[2],
                    x.shape[3],
                    mod.bias is not None,
                )
                found.setdefault(key, [0, _name])[0] += 1

            handles.append(m.register_forward_hook(hook))
    try:
        with use_backend("numpy"):
            model(np.zeros((1, 3, size, size), dtype=np.float32))
    finally:
        for h in handles:
            h.remove()
    return [ConvShape(batch, *key, count=count, name=name) for key, (count, name) in found.items()]


def _extra_5x5_s1(shapes: list[ConvShape]) -> list[ConvShape]:
    """A depthwise 5x5 stride-1 layer at each resolution (absent from GhostNet-1.0x), with
    the channel count of that resolution's widest depthwise layer."""
    widest: dict[int, ConvShape] = {}
    for s in shapes:
        if s.depthwise and s.stride == 1 and (s.h not in widest or s.cin > widest[s.h].cin):
            widest[s.h] = s
    return [
        ConvShape(s.n, s.cin, s.cin, 5, 1, 2, s.cin, s.h, s.w, count=0, name="(extra)")
        for s in widest.values()
    ]


_KIND_ORDER = ["dense", "1x1", "dw 3x3 s1", "dw 3x3 s2", "dw 5x5 s1", "dw 5x5 s2"]


def _kind_rank(s: ConvShape) -> tuple:
    kind = "dense" if s.kind.startswith("dense") else s.kind
    return (_KIND_ORDER.index(kind) if kind in _KIND_ORDER else 9, -s.h, s.cin, s.cout)


def _quick_subset(shapes: list[ConvShape]) -> list[ConvShape]:
    """Per kind, the layer at the highest and at the lowest resolution."""
    by_kind: dict[str, list[ConvShape]] = {}
    for s in shapes:
        by_kind.setdefault(s.kind, []).append(s)
    out = []
    for group in by_kind.values():
        group = sorted(group, key=lambda s: (-s.h, -s.cin * s.cout))
        out.append(group[0])
        small = [s for s in group if s.h > 1]  # not the squeeze-excite 1x1 maps
        if small and small[-1] is not group[0]:
            out.append(small[-1])
    return out


def tiny_shapes() -> list[ConvShape]:
    """A handful of small convolutions, for smoke tests."""
    return [
        ConvShape(2, 3, 4, 3, 2, 1, 1, 12, 12, count=0, name="tiny dense"),
        ConvShape(2, 4, 6, 1, 1, 0, 1, 8, 8, count=0, name="tiny 1x1"),
        ConvShape(2, 6, 6, 3, 1, 1, 6, 8, 8, count=0, name="tiny dw3"),
        ConvShape(2, 6, 6, 5, 2, 2, 6, 8, 8, count=0, name="tiny dw5"),
    ]


# ----------------------------------------------------------------------------------------
# timing
# ----------------------------------------------------------------------------------------


def time_call(fn, repeats: int, target: float = 0.02) -> list[float]:
    """Seconds per call of ``fn``: ``repeats`` samples, each the mean of enough calls to
    last about ``target`` seconds, after two warm-up calls (compilation, caches, thread
    pools). The garbage collector is paused while timing."""
    fn()
    t0 = time.perf_counter()
    fn()
    number = max(1, min(1000, int(target / max(time.perf_counter() - t0, 1e-7))))
    samples = []
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            samples.append((time.perf_counter() - t0) / number)
    finally:
        if was_enabled:
            gc.enable()
    return samples


def _import_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def _numba_threads() -> int:
    import numba

    return int(numba.config.NUMBA_NUM_THREADS)


# ----------------------------------------------------------------------------------------
# the timed work: one convolution forward + backward
# ----------------------------------------------------------------------------------------


def _conv_arrays(s: ConvShape, seed: int = 0):
    r = np.random.default_rng(seed)
    ho, wo = s.out_hw
    x = r.standard_normal((s.n, s.cin, s.h, s.w), dtype=np.float32)
    w = r.standard_normal((s.cout, s.cin // s.groups, s.k, s.k), dtype=np.float32)
    w *= np.float32(1.0 / np.sqrt(w[0].size))
    b = r.standard_normal(s.cout, dtype=np.float32) if s.bias else None
    dy = r.standard_normal((s.n, s.cout, ho, wo), dtype=np.float32)
    return x, w, b, dy


def _ghostnp_conv_step(s: ConvShape, backend: str):
    x, w, b, dy = _conv_arrays(s)

    def run():
        with use_backend(backend):
            if s.depthwise:
                y, cache = F.depthwise_conv2d_forward(x, w, b, s.stride, s.padding)
                return F.depthwise_conv2d_backward(dy, cache)
            y, cache = F.conv2d_forward(x, w, b, s.stride, s.padding, 1, s.groups)
            return F.conv2d_backward(dy, cache)

    return run


def _torch_conv_step(torch, s: ConvShape):
    x, w, b, dy = _conv_arrays(s)
    xt = torch.from_numpy(x).requires_grad_()
    wt = torch.from_numpy(w).requires_grad_()
    bt = None if b is None else torch.from_numpy(b).requires_grad_()
    dyt = torch.from_numpy(dy)
    leaves = [t for t in (xt, wt, bt) if t is not None]

    def run():
        for t in leaves:
            t.grad = None
        torch.nn.functional.conv2d(xt, wt, bt, s.stride, s.padding, 1, s.groups).backward(dyt)

    return run


# ----------------------------------------------------------------------------------------
# col2im: the reference against np.add.at
# ----------------------------------------------------------------------------------------


def col2im_add_at(cols, hp, wp, sh, sw, dh, dw):
    """col2im by scattering every column entry with ``np.add.at`` (the textbook version)."""
    n, c, kh, kw, ho, wo = cols.shape
    i = np.arange(kh)[:, None, None, None]
    j = np.arange(kw)[None, :, None, None]
    a = np.arange(ho)[None, None, :, None]
    q = np.arange(wo)[None, None, None, :]
    flat = ((a * sh + i * dh) * wp + (q * sw + j * dw)).reshape(-1)  # (kh*kw*ho*wo,)
    dxp = np.zeros((n * c, hp * wp), dtype=cols.dtype)
    np.add.at(dxp, (np.arange(n * c)[:, None], flat[None, :]), cols.reshape(n * c, -1))
    return dxp.reshape(n, c, hp, wp)


def _col2im_fns(s: ConvShape):
    ho, wo = s.out_hw
    hp, wp = s.h + 2 * s.padding, s.w + 2 * s.padding
    shape = (s.n, s.cin, s.k, s.k, ho, wo)
    cols = np.random.default_rng(1).standard_normal(shape, dtype=np.float32)
    args = (hp, wp, s.stride, s.stride, 1, 1)
    if not np.allclose(reference.col2im(cols, *args), col2im_add_at(cols, *args), atol=1e-4):
        raise AssertionError("col2im_add_at disagrees with reference.col2im")
    return {
        "reference": lambda: reference.col2im(cols, *args),
        "add_at": lambda: col2im_add_at(cols, *args),
    }


# ----------------------------------------------------------------------------------------
# the whole network
# ----------------------------------------------------------------------------------------


def torch_ghostnet(width: float = 1.0, num_classes: int = 1000, dropout: float = 0.2):
    """GhostNet V1 in torch.nn with ghostnp's module names (so state dicts interchange)."""
    import torch
    from torch import nn

    from .models.ghostnet import GHOSTNET_CFG
    from .nn.ghost import make_divisible

    def hard_sigmoid(x):
        return torch.nn.functional.relu6(x + 3.0) / 6.0

    class SqueezeExcite(nn.Module):
        def __init__(self, chs, se_ratio):
            super().__init__()
            red = make_divisible(chs * se_ratio, 4)
            self.avg_pool = nn.AdaptiveAvgPool2d(1)
            self.conv_reduce = nn.Conv2d(chs, red, 1, bias=True)
            self.act1 = nn.ReLU()
            self.conv_expand = nn.Conv2d(red, chs, 1, bias=True)

        def forward(self, x):
            s = self.conv_expand(self.act1(self.conv_reduce(self.avg_pool(x))))
            return x * hard_sigmoid(s)

    class GhostModule(nn.Module):
        def __init__(self, inp, oup, relu=True):
            super().__init__()
            self.oup = oup
            m = -(-oup // 2)
            act = nn.ReLU if relu else nn.Sequential
            self.primary_conv = nn.Sequential(
                nn.Conv2d(inp, m, 1, 1, 0, bias=False), nn.BatchNorm2d(m), act()
            )
            self.cheap_operation = nn.Sequential(
                nn.Conv2d(m, m, 3, 1, 1, groups=m, bias=False), nn.BatchNorm2d(m), act()
            )

        def forward(self, x):
            x1 = self.primary_conv(x)
            return torch.cat([x1, self.cheap_operation(x1)], dim=1)[:, : self.oup]

    class GhostBottleneck(nn.Module):
        def __init__(self, cin, mid, cout, k, stride, se_ratio):
            super().__init__()
            self.stride = stride
            self.ghost1 = GhostModule(cin, mid, relu=True)
            pad = (k - 1) // 2
            if stride > 1:
                self.conv_dw = nn.Conv2d(mid, mid, k, stride, pad, groups=mid, bias=False)
                self.bn_dw = nn.BatchNorm2d(mid)
            self.se = SqueezeExcite(mid, se_ratio) if se_ratio else None
            self.ghost2 = GhostModule(mid, cout, relu=False)
            if cin == cout and stride == 1:
                self.shortcut = nn.Sequential()
            else:
                self.shortcut = nn.Sequential(
                    nn.Conv2d(cin, cin, k, stride, pad, groups=cin, bias=False),
                    nn.BatchNorm2d(cin),
                    nn.Conv2d(cin, cout, 1, 1, 0, bias=False),
                    nn.BatchNorm2d(cout),
                )

        def forward(self, x):
            h = self.ghost1(x)
            if self.stride > 1:
                h = self.bn_dw(self.conv_dw(h))
            if self.se is not None:
                h = self.se(h)
            return self.ghost2(h) + self.shortcut(x)

    class ConvBnAct(nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.conv = nn.Conv2d(cin, cout, 1, 1, 0, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.act1 = nn.ReLU()

        def forward(self, x):
            return self.act1(self.bn1(self.conv(x)))

    class GhostNet(nn.Module):
        def __init__(self):
            super().__init__()
            stem = make_divisible(16 * width, 4)
            self.conv_stem = nn.Conv2d(3, stem, 3, 2, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(stem)
            self.act1 = nn.ReLU()
            stages, chans = [], stem
            for stage in GHOSTNET_CFG:
                blocks = []
                for k, exp, c, se, s in stage:
                    out, mid = make_divisible(c * width, 4), make_divisible(exp * width, 4)
                    blocks.append(GhostBottleneck(chans, mid, out, k, s, se))
                    chans = out
                stages.append(nn.Sequential(*blocks))
            last = make_divisible(GHOSTNET_CFG[-1][-1][1] * width, 4)
            stages.append(nn.Sequential(ConvBnAct(chans, last)))
            self.blocks = nn.Sequential(*stages)
            self.global_pool = nn.AdaptiveAvgPool2d(1)
            self.conv_head = nn.Conv2d(last, 1280, 1, 1, 0, bias=True)
            self.act2 = nn.ReLU()
            self.flatten = nn.Flatten()
            self.dropout = nn.Dropout(dropout)
            self.classifier = nn.Linear(1280, num_classes)

        def forward(self, x):
            x = self.blocks(self.act1(self.bn1(self.conv_stem(x))))
            x = self.act2(self.conv_head(self.global_pool(x)))
            return self.classifier(self.dropout(self.flatten(x)))

    return GhostNet()


WORKLOADS = {
    "train b16 224": ("train", 16, 224),
    "train b64 32": ("train", 64, 32),
    "infer b1 224": ("infer", 1, 224),
}


def _inputs(batch, size, seed=0):
    r = np.random.default_rng(seed)
    return r.standard_normal((batch, 3, size, size), dtype=np.float32), r.integers(0, 1000, batch)


def _ghostnp_workload(kind: str, batch: int, size: int, backend: str):
    """A closure running one training step (kind="train") or one inference ("infer")."""
    from . import nn, optim
    from .models import ghostnet_100

    model = ghostnet_100()
    x, t = _inputs(batch, size)
    if kind == "infer":
        model.eval()

        def infer():
            with use_backend(backend):
                return model(x)

        return infer
    crit = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        with use_backend(backend):
            opt.zero_grad()
            crit(model(x), t)
            model.backward(crit.backward())
            opt.step()

    return step


def _torch_workload(torch, kind: str, batch: int, size: int):
    model = torch_ghostnet()
    x, t = _inputs(batch, size)
    xt, tt = torch.from_numpy(x), torch.from_numpy(t)
    if kind == "infer":
        model.eval()

        def infer():
            with torch.inference_mode():
                return model(xt)

        return infer
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xt), tt).backward()
        opt.step()

    return step


# ----------------------------------------------------------------------------------------
# workers: one implementation per process
# ----------------------------------------------------------------------------------------


def _worker(impl: str, spec: dict) -> dict:
    """Time everything in ``spec`` with one implementation; returns samples in seconds."""
    repeats, target = spec["repeats"], spec["target"]
    out: dict = {"layers": [], "col2im": None, "workloads": {}}
    torch = None
    if impl == "torch":
        torch = _import_torch()
        torch.set_num_threads(spec["threads"])
    for d in spec["layers"]:
        s = ConvShape(**d)
        fn = _torch_conv_step(torch, s) if torch else _ghostnp_conv_step(s, impl)
        out["layers"].append(time_call(fn, repeats, target))
        del fn
    if spec.get("col2im") and impl == "numpy":
        fns = _col2im_fns(ConvShape(**spec["col2im"]))
        out["col2im"] = {k: time_call(f, repeats, target) for k, f in fns.items()}
    for name in spec["workloads"].get(impl, []):
        kind, batch, size = WORKLOADS[name]
        fn = (
            _torch_workload(torch, kind, batch, size)
            if torch
            else _ghostnp_workload(kind, batch, size, impl)
        )
        r = spec["net_repeats"] if kind == "train" else repeats
        out["workloads"][name] = time_call(fn, r, target)
        del fn
        gc.collect()
    return out


def _warm_memory(mib: int = 4096) -> None:
    """Write one float per 4 KiB page of ``mib`` MiB, then free it (see the module doc)."""
    for _ in range(mib // 512):
        a = np.empty(512 * 2**20 // 4, dtype=np.float32)
        a[::1024] = 0.0
        del a


def _child_env(threads: int, extra=None) -> dict:
    env = dict(os.environ)
    env["NUMBA_NUM_THREADS"] = str(threads)
    env.setdefault("OPENBLAS_NUM_THREADS", str(threads))
    env.update(extra or {})
    return env


def _run_child(args: list[str], env: dict, stdin: str = "", timeout: float = 3600) -> dict:
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "ghostnp.bench", *args],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"benchmark worker {args} failed:\n{out.stderr[-3000:]}")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["wall_s"] = wall
    return res


# ----------------------------------------------------------------------------------------
# peak memory and compile time (fresh processes)
# ----------------------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _memory_child(impl: str, workload: str) -> dict:
    """Peak resident memory of one training step above the resident set before it."""
    kind, batch, size = WORKLOADS[workload]
    if impl == "torch":
        torch = _import_torch()
        torch.set_num_threads(int(os.environ.get("NUMBA_NUM_THREADS", "1")))
        _torch_workload(torch, kind, 2, 64)()  # warm-up on a small model and input
        gc.collect()
        run = _torch_workload(torch, kind, batch, size)
    else:
        _ghostnp_workload(kind, 2, 64, impl)()
        gc.collect()
        run = _ghostnp_workload(kind, batch, size, impl)
    gc.collect()
    before = _status_kib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the high-water mark VmHWM to the current resident set
    run()
    peak = _status_kib("VmHWM")
    return {"before_mib": before / 1024, "step_mib": (peak - before) / 1024}


def _compile_child() -> dict:
    """Seconds for a first GhostNet training step (batch 2, 224) in this fresh process.

    ghostnp is already imported here (this module is part of it); the parent reports the
    start-up, interpreter and imports, as the process's wall time minus this step."""
    import ghostnp

    ghostnp.set_backend("numba")
    t1 = time.perf_counter()
    _ghostnp_workload("train", 2, 224, "numba")()
    return {"first_step_s": time.perf_counter() - t1}


def measure_memory(impls, workloads, threads: int) -> dict:
    env = _child_env(threads, {"MALLOC_MMAP_THRESHOLD_": str(128 * 1024)})
    return {
        (w, i): _run_child(["_memory", i, w], env)["step_mib"] for w in workloads for i in impls
    }


def measure_compile(threads: int, warm_runs: int = 3) -> dict:
    """Cold (empty Numba cache) and warm (later processes, same cache) first-step times."""
    with tempfile.TemporaryDirectory(prefix="ghostnp-numba-cache-") as d:
        env = _child_env(threads, {"NUMBA_CACHE_DIR": d, "GHOSTNP_BACKEND": "numba"})
        cold = _run_child(["_compile"], env)
        warm = sorted((_run_child(["_compile"], env) for _ in range(warm_runs)), key=_wall)
    return {"cold": cold, "warm": warm[len(warm) // 2]}


def _wall(r):
    return r["wall_s"]


# ----------------------------------------------------------------------------------------
# the report
# ----------------------------------------------------------------------------------------


def _ms(t):
    if t is None:
        return "—"
    return f"{t * 1e3:.3f}" if t < 0.01 else f"{t * 1e3:.1f}"


def _ratio(a, b):
    return "—" if a is None or b is None else f"{a / b:.2f}"


def _median(samples):
    return None if not samples else statistics.median(samples)


def _loadavg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:  # pragma: no cover
        return "?"


def run_bench(
    quick: bool = True,
    shapes: list[ConvShape] | None = None,
    tiny: bool = False,
    repeats: int | None = None,
    rounds: int | None = None,
    isolate: bool | None = None,
    numpy_backend: bool = True,
    model: bool | None = None,
    memory: bool | None = None,
    compile_time: bool | None = None,
    progress=None,
) -> str:
    """Time ghostnp against PyTorch and return the results as markdown tables.

    quick=True: a few representative GhostNet layers, the batch-64 32x32 training step and
    batch-1 inference, few repeats (under a minute). quick=False: every distinct GhostNet
    layer, all three whole-network workloads, peak memory and compile time. ``shapes``
    replaces the layer list; ``tiny=True`` times a few tiny layers in this process, once
    (a smoke test). ``isolate`` runs each implementation in worker processes (the default
    except with ``tiny``). Without torch the ghostnp times are given alone.
    """
    t_start = time.perf_counter()
    say = progress or (lambda msg: None)
    torch = _import_torch()
    threads = _numba_threads()
    if tiny:
        shapes = tiny_shapes() if shapes is None else shapes
    elif shapes is None:
        found = ghostnet_conv_shapes(16, 224)
        shapes = _quick_subset(found) if quick else found + _extra_5x5_s1(found)
    shapes = sorted(shapes, key=_kind_rank)
    repeats = repeats or (1 if tiny else 3 if quick else 5)
    rounds = rounds or (1 if tiny else 2 if quick else 3)
    isolate = (not tiny) if isolate is None else isolate
    model = (not tiny) if model is None else model
    memory = (not quick and not tiny) if memory is None else memory
    compile_time = (not quick and not tiny) if compile_time is None else compile_time
    impls = ["numba"] + (["numpy"] if numpy_backend else []) + (["torch"] if torch else [])
    if model:
        wnames = ["train b64 32", "infer b1 224"] if quick else list(WORKLOADS)
    else:
        wnames = []
    col_shape = next(
        (s for s in shapes if not s.depthwise and s.k > 1),
        ConvShape(16, 3, 16, 3, 2, 1, 1, 224, 224, name="conv_stem"),
    )
    spec = {
        "layers": [dataclasses.asdict(s) for s in shapes],
        "col2im": dataclasses.asdict(col_shape) if numpy_backend else None,
        "workloads": {
            i: [w for w in wnames if i != "numpy" or not quick or WORKLOADS[w][0] == "infer"]
            for i in impls
        },
        "repeats": repeats,
        "net_repeats": max(2, repeats - 1),
        "target": 0.005 if tiny else (0.02 if quick else 0.05),
        "threads": threads,
    }
    load0 = _loadavg()

    # samples[impl] = {"layers": [[...] per shape], "col2im": {...}, "workloads": {...}}
    samples: dict = {
        i: {"layers": [[] for _ in shapes], "col2im": {}, "workloads": {}} for i in impls
    }
    for r in range(rounds):
        if isolate:
            _warm_memory()
        order = impls[r % len(impls) :] + impls[: r % len(impls)]
        for impl in order:
            say(f"round {r + 1}/{rounds}: {impl}")
            if isolate:
                res = _run_child(["_worker", impl], _child_env(threads), stdin=json.dumps(spec))
            else:
                prev = torch.get_num_threads() if torch is not None else None
                try:
                    res = _worker(impl, spec)
                finally:
                    if prev is not None:
                        torch.set_num_threads(prev)
            acc = samples[impl]
            for k, v in enumerate(res["layers"]):
                acc["layers"][k] += v
            for k, v in (res.get("col2im") or {}).items():
                acc["col2im"].setdefault(k, []).extend(v)
            for k, v in res["workloads"].items():
                acc["workloads"].setdefault(k, []).extend(v)

    def med(impl, part, key):
        if impl not in samples:
            return None
        store = samples[impl][part]
        return _median(store[key] if part == "layers" else store.get(key))

    lines = [
        "### Convolution layers: forward + backward, float32, ms per call",
        "",
    ]
    if torch is None:
        lines += ["torch is not installed: ghostnp times only (install torch for the ratios).", ""]
    n = shapes[0].n if shapes else 0
    lines.append(
        f"| layer | shape (N={n}) | kind | ×GhostNet | numba | numpy ref | torch "
        "| numba/torch | numpy/torch |"
    )
    lines.append("|---|---|---|--:|--:|--:|--:|--:|--:|")
    worst: dict[str, float] = {}
    for k, s in enumerate(shapes):
        tn, tp, tt = med("numba", "layers", k), med("numpy", "layers", k), med("torch", "layers", k)
        if tt and s.count:
            kind = "depthwise" if s.depthwise else ("1x1" if s.k == 1 else "dense")
            worst[kind] = max(worst.get(kind, 0.0), tn / tt)
        lines.append(
            f"| {s.name} | {s.label()} | {s.kind} | {s.count} | {_ms(tn)} | {_ms(tp)} | "
            f"{_ms(tt)} | {_ratio(tn, tt)} | {_ratio(tp, tt)} |"
        )

    c2 = samples.get("numpy", {}).get("col2im") or {}
    if c2:
        ho, wo = col_shape.out_hw
        tr, ta = _median(c2["reference"]), _median(c2["add_at"])
        cshape = (col_shape.n, col_shape.cin, col_shape.k, col_shape.k, ho, wo)
        lines += [
            "",
            "### col2im (NumPy reference) against np.add.at, ms per call",
            "",
            "| columns (N, C, kh, kw, ho, wo) | reference | np.add.at | speed-up |",
            "|---|--:|--:|--:|",
            f"| {cshape} | {_ms(tr)} | {_ms(ta)} | {ta / tr:.1f}x |",
        ]

    if wnames:
        lines += [
            "",
            "### GhostNet-1.0x, whole network, ms per call",
            "",
            "| workload | numba | numpy ref | torch | numba/torch | numpy/torch |",
            "|---|--:|--:|--:|--:|--:|",
        ]
        for w in wnames:
            tn, tp, tt = (med(i, "workloads", w) for i in IMPLS)
            lines.append(
                f"| {w} | {_ms(tn)} | {_ms(tp)} | {_ms(tt)} | {_ratio(tn, tt)} | {_ratio(tp, tt)} |"
            )

    mem = {}
    if memory:
        say("peak memory")
        mem_w = ["train b16 224", "train b64 32"]
        mem = measure_memory(impls, mem_w, threads)
        lines += [
            "",
            "### Peak memory of one training step (MiB above the resident set before it)",
            "",
            "| workload | numba | numpy ref | torch | numba/torch |",
            "|---|--:|--:|--:|--:|",
        ]
        for w in mem_w:
            m = {i: mem.get((w, i)) for i in IMPLS}
            f = {i: "—" if v is None else f"{v:.0f}" for i, v in m.items()}
            lines.append(
                f"| {w} | {f['numba']} | {f['numpy']} | {f['torch']} | "
                f"{_ratio(m['numba'], m['torch'])} |"
            )

    comp = None
    if compile_time:
        say("compile time")
        comp = measure_compile(threads)
        lines += [
            "",
            "### Numba compilation: a fresh process to the end of its first GhostNet training "
            "step (batch 2, 224x224)",
            "",
            "| Numba cache | process wall s | start-up and imports s | first step s |",
            "|---|--:|--:|--:|",
        ]
        for k in ("cold", "warm"):
            c = comp[k]
            lines.append(
                f"| {k} | {c['wall_s']:.1f} | {c['wall_s'] - c['first_step_s']:.2f} "
                f"| {c['first_step_s']:.2f} |"
            )

    if torch is not None and worst:
        lines += ["", "### Targets (ghostnp-numba / torch)", "", "| what | worst | target |"]
        lines.append("|---|--:|--:|")
        for kind, tgt in (("depthwise", 1.0), ("1x1", 1.3), ("dense", 1.3)):
            if kind in worst:
                lines.append(f"| {kind} layers of GhostNet | {worst[kind]:.2f} | ≤ {tgt} |")
        for w in wnames:
            tn, tt = med("numba", "workloads", w), med("torch", "workloads", w)
            if tn and tt:
                lines.append(f"| {w} | {tn / tt:.2f} | ≤ 1.5 |")
        for w in ("train b16 224", "train b64 32"):
            if mem.get((w, "torch")):
                lines.append(
                    f"| memory, {w} | {mem[(w, 'numba')] / mem[(w, 'torch')]:.2f} | ≤ 1.5 |"
                )
        if comp:
            lines.append(f"| warm start to first step, s | {comp['warm']['wall_s']:.1f} | ≤ 3 |")

    import numba

    tv = torch.__version__ if torch is not None else "absent"
    header = [
        f"{platform.machine()}, {os.cpu_count()} CPUs, {threads} threads for every "
        f"implementation; numpy {np.__version__}, numba {numba.__version__}, torch {tv}. "
        f"Medians of {rounds} round(s) x {repeats} samples"
        + (", one worker process per implementation per round" if isolate else "")
        + f". Load average {load0} at the start, {_loadavg()} at the end; "
        f"{time.perf_counter() - t_start:.0f} s.",
        "",
    ]
    return "\n".join(header + lines) + "\n"


def _main(argv):
    if argv[:1] == ["_worker"]:
        print(json.dumps(_worker(argv[1], json.loads(sys.stdin.read()))))
    elif argv[:1] == ["_memory"]:
        print(json.dumps(_memory_child(argv[1], argv[2])))
    elif argv[:1] == ["_compile"]:
        print(json.dumps(_compile_child()))
    else:
        print(run_bench(quick="--full" not in argv))


if __name__ == "__main__":
    _main(sys.argv[1:])
