"""What folding buys at inference: batch-1 forward time of each model before and after.

    python benchmarks/fusion.py                 # GhostNet V1, V2 (fuse_model), V3 (reparameterize)
    python benchmarks/fusion.py --rounds 30 --calls 3 --size 224
    NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/fusion.py   # one thread

Pairs timed in one process, in alternation (the order swapping every round), so that a
change of machine load falls on both members of a pair: V1 and V2 1.0x against
``fuse_model`` of themselves (every conv-BN pair folded), V3 1.0x in train form (eval
mode) against ``reparameterize()`` (timm's deploy form) and against ``fuse_model`` (the
deploy form with the remaining conv-BN pairs folded too). Each sample is the mean of
``--calls`` forward passes of one 3 x size x size float32 image; the table gives medians
and the ratio of medians (below 1: the folded model is faster), with the median of the
per-round ratios beside it (the steadier figure when the machine's load drifts). On a
shared machine, one thread each (as above) is the fairer measure: multi-threaded kernels
that wait for a preempted thread time the machine's load rather than the model.
"""

from __future__ import annotations

import argparse
import copy
import gc
import os
import statistics
import time

import numpy as np

import ghostnp
from ghostnp.models import create_model
from ghostnp.nn.utils.fusion import fuse_model


def _sample(model, x, calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        model(x)
    return (time.perf_counter() - t0) / calls


def time_pair(a, b, x, rounds: int, calls: int = 1) -> tuple[list[float], list[float]]:
    """Seconds per forward of ``a`` and of ``b`` (each sample the mean of ``calls``),
    alternating, after two warm-up calls each."""
    for _ in range(2):
        a(x)
        b(x)
    ta, tb = [], []
    gc.collect()
    gc.disable()
    try:
        for r in range(rounds):
            if r % 2:
                tb.append(_sample(b, x, calls))
                ta.append(_sample(a, x, calls))
            else:
                ta.append(_sample(a, x, calls))
                tb.append(_sample(b, x, calls))
    finally:
        gc.enable()
    return ta, tb


def pairs():
    """(label, unfolded model, folded model), all float32 in eval mode."""
    ghostnp.manual_seed(0)
    for name in ("ghostnet_100", "ghostnetv2_100"):
        model = create_model(name).eval()
        yield f"{name}: fuse_model", model, fuse_model(model)
    v3 = create_model("ghostnetv3_100").eval()
    deploy = fuse_model(v3)  # a copy: v3 keeps its train form
    yield "ghostnetv3_100: fuse_model (reparameterize + stem/shortcut/DFC BNs)", v3, deploy
    reparam = copy.deepcopy(v3).reparameterize()
    yield "ghostnetv3_100: reparameterize()", v3, reparam


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--calls", type=int, default=3)
    ap.add_argument("--size", type=int, default=224)
    args = ap.parse_args(argv)
    x = np.random.default_rng(0).standard_normal((1, 3, args.size, args.size)).astype(np.float32)
    threads = os.environ.get("NUMBA_NUM_THREADS", "all")
    print(
        f"batch 1, {args.size}x{args.size}, float32, backend {ghostnp.get_backend()}, "
        f"Numba threads {threads}, {args.rounds} rounds of {args.calls} calls\n"
    )
    print("| model | before (ms) | after (ms) | ratio of medians | median ratio | max abs diff |")
    print("|---|--:|--:|--:|--:|--:|")
    for label, before, after in pairs():
        diff = float(np.max(np.abs(before(x) - after(x))))
        ta, tb = time_pair(before, after, x, args.rounds, args.calls)
        ma, mb = statistics.median(ta), statistics.median(tb)
        per_round = statistics.median(b / a for a, b in zip(ta, tb, strict=True))
        print(
            f"| {label} | {1e3 * ma:.1f} | {1e3 * mb:.1f} | {mb / ma:.3f} | {per_round:.3f} "
            f"| {diff:.1e} |"
        )


if __name__ == "__main__":
    main()
