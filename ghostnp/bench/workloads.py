"""What is timed: convolution layers (forward + backward), whole-network training steps
and inference, and col2im against ``np.add.at``, each as a function that builds a fresh
callable for ghostnp and one for PyTorch.

Every builder allocates its own inputs (float32, fixed seeds), so the two implementations
never share warmed memory, and returns a function of no arguments that runs the work once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .. import functional as F
from ..kernels import reference, use_backend

__all__ = [
    "ConvShape",
    "NETWORKS",
    "col2im_add_at",
    "col2im_pair",
    "ghostnet_conv_shapes",
    "ghostnp_conv",
    "ghostnp_network",
    "tiny_shapes",
    "torch_conv",
    "torch_conv_direct",
    "torch_network",
]


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
        """E.g. ``dw 3x3 s1 240 @14x14`` or ``1x1 80->240 @14x14``."""
        chans = f"{self.cin}" if self.depthwise else f"{self.cin}->{self.cout}"
        return f"{self.kind} {chans} @{self.h}x{self.w}"


def ghostnet_conv_shapes(batch: int = 16, size: int = 224) -> list[ConvShape]:
    """The distinct convolutions of GhostNet-1.0x on (batch, 3, size, size), in model order.

    Found by running the model once (batch 1, NumPy backend) with a forward hook on every
    Conv2d; layers with equal geometry are merged and counted.
    """
    from ..models import ghostnet_100
    from ..nn.layers import Conv2d

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


def tiny_shapes() -> list[ConvShape]:
    """A handful of small convolutions (dense, 1x1, depthwise), for smoke tests."""
    return [
        ConvShape(2, 3, 4, 3, 2, 1, 1, 12, 12, count=0, name="tiny dense"),
        ConvShape(2, 4, 6, 1, 1, 0, 1, 8, 8, count=0, name="tiny 1x1"),
        ConvShape(2, 6, 6, 3, 1, 1, 6, 8, 8, count=0, name="tiny dw3"),
        ConvShape(2, 6, 6, 5, 2, 2, 6, 8, 8, count=0, name="tiny dw5"),
    ]


# ----------------------------------------------------------------------------------------
# one convolution, forward + backward
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


def ghostnp_conv(s: ConvShape, backend: str = "numba") -> Callable[[], object]:
    """A callable running ghostnp's forward and backward of ``s`` once (returns dx, dw, db)."""
    x, w, b, dy = _conv_arrays(s)

    def run():
        with use_backend(backend):
            if s.depthwise:
                y, cache = F.depthwise_conv2d_forward(x, w, b, s.stride, s.padding)
                return F.depthwise_conv2d_backward(dy, cache)
            y, cache = F.conv2d_forward(x, w, b, s.stride, s.padding, 1, s.groups)
            return F.conv2d_backward(dy, cache)

    return run


def torch_conv(s: ConvShape) -> Callable[[], object]:
    """A callable running ``torch.nn.functional.conv2d`` forward and backward of ``s`` once,
    on the same arrays as ``ghostnp_conv``."""
    import torch

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


def torch_conv_direct(s: ConvShape, threads: int, min_time: float) -> float:
    """Seconds per forward + backward of ``s`` in PyTorch, measured the plain way:
    tensors from ``torch.randn``, ``torch.utils.benchmark.Timer(...).blocked_autorange()``
    for ``min_time`` seconds (0.2 s at least, Timer's default).
    Shares no code with the harness's own timing; the self-check compares the two."""
    import torch
    from torch.utils import benchmark

    ho, wo = s.out_hw
    g = torch.Generator().manual_seed(1)
    env = {
        "F": torch.nn.functional,
        "x": torch.randn(s.n, s.cin, s.h, s.w, generator=g).requires_grad_(),
        "w": (torch.randn(s.cout, s.cin // s.groups, s.k, s.k, generator=g) * 0.1).requires_grad_(),
        "b": torch.randn(s.cout, generator=g).requires_grad_() if s.bias else None,
        "dy": torch.randn(s.n, s.cout, ho, wo, generator=g),
    }
    stmt = (
        "x.grad = None; w.grad = None\n"
        f"F.conv2d(x, w, b, {s.stride}, {s.padding}, 1, {s.groups}).backward(dy)"
    )
    timer = benchmark.Timer(stmt=stmt, globals=env, num_threads=threads)
    timer.timeit(2)  # warm-up, as the harness's blocks have
    return float(timer.blocked_autorange(min_run_time=max(min_time, 0.2)).median)


# ----------------------------------------------------------------------------------------
# the whole network
# ----------------------------------------------------------------------------------------

# name -> (kind, batch, image size)
NETWORKS = {
    "train b16 224": ("train", 16, 224),
    "train b64 32": ("train", 64, 32),
    "infer b1 224": ("infer", 1, 224),
}


def _inputs(batch: int, size: int, seed: int = 0):
    r = np.random.default_rng(seed)
    return r.standard_normal((batch, 3, size, size), dtype=np.float32), r.integers(0, 1000, batch)


def ghostnp_network(kind: str, batch: int, size: int, backend: str = "numba"):
    """A callable running one GhostNet-1.0x SGD step with momentum (``kind="train"``:
    forward, cross-entropy, backward, step) or one inference in eval mode without caches
    (``"infer"``) on a (batch, 3, size, size) input."""
    import ghostnp

    from .. import nn, optim
    from ..models import ghostnet_100

    model = ghostnet_100()
    x, t = _inputs(batch, size)
    if kind == "infer":
        model.eval()
        # ghostnp.no_grad (no caches kept) where this version has it; else plain eval.
        no_grad = getattr(ghostnp, "no_grad", contextlib.nullcontext)

        def infer():
            with use_backend(backend), no_grad():
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


def torch_network(kind: str, batch: int, size: int):
    """The PyTorch twin of ``ghostnp_network``: the same step (``torch.optim.SGD``) or
    inference (eval mode under ``torch.inference_mode``) on the same input."""
    import torch

    from .twin import torch_ghostnet

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
# col2im: the NumPy reference against np.add.at
# ----------------------------------------------------------------------------------------


def col2im_add_at(cols, hp, wp, sh, sw, dh, dw):
    """col2im by scattering every column entry with ``np.add.at`` (the textbook version).

    cols (N, C, kh, kw, ho, wo) -> (N, C, hp, wp): entry (i, j, a, q) is added at row
    a*sh + i*dh, column q*sw + j*dw of the padded image.
    """
    n, c, kh, kw, ho, wo = cols.shape
    i = np.arange(kh)[:, None, None, None]
    j = np.arange(kw)[None, :, None, None]
    a = np.arange(ho)[None, None, :, None]
    q = np.arange(wo)[None, None, None, :]
    flat = ((a * sh + i * dh) * wp + (q * sw + j * dw)).reshape(-1)  # (kh*kw*ho*wo,)
    dxp = np.zeros((n * c, hp * wp), dtype=cols.dtype)
    np.add.at(dxp, (np.arange(n * c)[:, None], flat[None, :]), cols.reshape(n * c, -1))
    return dxp.reshape(n, c, hp, wp)


def reference_col2im(cols, hp, wp, stride, dilation):
    """ghostnp's NumPy reference col2im on (N, C, kh, kw, ho, wo) columns -> (N, C, hp, wp).

    The one place the benchmark calls a kernel directly: when the kernels' signature
    changes, only this function changes with it.
    """
    return reference.col2im(cols, hp, wp, stride, stride, dilation, dilation)


def col2im_pair(s: ConvShape) -> tuple[Callable[[], object], Callable[[], object]]:
    """Callables (reference col2im, ``np.add.at`` col2im) on the columns of convolution
    ``s``; they are checked to agree before being returned."""
    ho, wo = s.out_hw
    hp, wp = s.h + 2 * s.padding, s.w + 2 * s.padding
    cols = np.random.default_rng(1).standard_normal((s.n, s.cin, s.k, s.k, ho, wo), np.float32)
    got = reference_col2im(cols, hp, wp, s.stride, 1)
    want = col2im_add_at(cols, hp, wp, s.stride, s.stride, 1, 1)
    if not np.allclose(got, want, atol=1e-4):
        raise AssertionError("col2im_pair: reference col2im disagrees with np.add.at")
    return (
        lambda: reference_col2im(cols, hp, wp, s.stride, 1),
        lambda: col2im_add_at(cols, hp, wp, s.stride, s.stride, 1, 1),
    )
