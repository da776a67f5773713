"""Benchmarks: ghostnp against PyTorch on the CPU, timed side by side in one process.

    from ghostnp.bench import run_bench
    print(run_bench(quick=True))          # `ghostnp bench`; `ghostnp bench --full` for all

    result = measure("full")              # a BenchResult, for tables, charts, the README

The package, one job per module:

* ``timing``: how a callable is timed (warm-up, blocks, a quiet process), rounds that
  alternate the implementations, the load of other processes, medians and ranges;
* ``twin``: GhostNet in ``torch.nn`` (timm's structure) to time against;
* ``workloads``: what is timed (a convolution's forward + backward, a training step,
  inference, col2im) for each implementation;
* ``runner``: which rows, in which order, with how many threads; the self-check that
  refuses a table when the harness's PyTorch times disagree with a direct
  ``torch.utils.benchmark`` measurement; one ``BenchResult``;
* ``fresh``: the measurements that need fresh processes (peak memory, compile cost);
* ``report``: Markdown tables, the README's table and the chart.

`docs/benchmarks.md` says how it is measured and why; `benchmarks/run.py` rewrites it.
"""

from __future__ import annotations

from .report import markdown
from .runner import BenchResult, SelfCheck, SelfCheckError, measure, self_check
from .timing import time_call
from .twin import torch_ghostnet
from .workloads import ConvShape, col2im_add_at, ghostnet_conv_shapes, tiny_shapes

__all__ = [
    "BenchResult",
    "ConvShape",
    "SelfCheck",
    "SelfCheckError",
    "col2im_add_at",
    "ghostnet_conv_shapes",
    "markdown",
    "measure",
    "run_bench",
    "self_check",
    "time_call",
    "tiny_shapes",
    "torch_ghostnet",
]


def run_bench(quick: bool = True, tiny: bool = False, **kwargs) -> str:
    """Run the benchmark and return its tables as Markdown.

    ``quick=True``: a few layers and small whole-network workloads (about a minute);
    ``quick=False``: everything (see ``measure``); ``tiny=True``: a smoke test on tiny
    layers. Other keyword arguments go to ``measure``. Needs PyTorch; raises
    ``SelfCheckError`` instead of returning tables the self-check does not trust.
    """
    try:
        import torch  # noqa: F401
    except ImportError:
        raise ImportError(
            "ghostnp bench needs PyTorch to compare against: pip install 'ghostnp[bench]'"
        ) from None
    mode = "tiny" if tiny else "quick" if quick else "full"
    return markdown(measure(mode, **kwargs))
