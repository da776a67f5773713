"""Argument normalisation, output-size rules, input validation, and the shape ops
(channel concat, channel slice) with their backward passes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from ..errors import LayerTypeError, LayerValueError
from ..kernels.geometry import conv_out_size
from ..typing import FloatArray

__all__ = [
    "pair",
    "conv_out_size",
    "check_float",
    "check_rank",
    "check_same_shape",
    "concat_forward",
    "concat_backward",
    "channel_slice_forward",
    "channel_slice_backward",
]


def pair(v: object, what: str = "argument", op: str = "op") -> tuple[int, int]:
    """Turn an int or a 2-sequence of ints into ``(h, w)``; reject anything else."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return int(v), int(v)
    if (
        isinstance(v, (tuple, list))
        and len(v) == 2
        and all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in v)
    ):
        return int(v[0]), int(v[1])
    raise LayerTypeError(op, f"{what} must be an int or a pair of ints, got {v!r}")


def check_float(op: str, name: str, a: object) -> FloatArray:
    """Require a floating-point ndarray (float32 or float64)."""
    if not isinstance(a, np.ndarray):
        raise LayerTypeError(op, f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype not in (np.float32, np.float64):
        raise LayerTypeError(op, f"{name} must be float32 or float64, got dtype {a.dtype}")
    return a


def check_rank(op: str, name: str, a: FloatArray, ndim: int, layout: str = "") -> None:
    """Require ``a.ndim == ndim``; ``layout`` (e.g. ``"(N, C, H, W)"``) goes in the message."""
    if a.ndim != ndim:
        lay = f" {layout}" if layout else ""
        raise LayerValueError(op, f"expected a {ndim}-D {name}{lay}, got shape {tuple(a.shape)}")


def check_same_dtype(op: str, **arrays: FloatArray | None) -> None:
    """Require every non-None array to share one dtype (no silent promotion)."""
    items = [(k, v) for k, v in arrays.items() if v is not None]
    dts = {v.dtype for _, v in items}
    if len(dts) > 1:
        desc = ", ".join(f"{k} {v.dtype}" for k, v in items)
        raise LayerTypeError(
            op,
            f"all arrays must share one dtype, got {desc} (cast the input, or the module "
            "with .astype)",
        )


def check_same_shape(op: str, name: str, a: FloatArray, shape: tuple[int, ...]) -> None:
    """Require ``a.shape == shape`` exactly (no broadcasting)."""
    if tuple(a.shape) != tuple(shape):
        raise LayerValueError(op, f"expected {name} of shape {tuple(shape)}, got {tuple(a.shape)}")


# ----------------------------------------------------------------------------------
# Channel concat and channel slice
# ----------------------------------------------------------------------------------


class ConcatCache(NamedTuple):
    """What concat_backward needs: the channel count of each input, in order."""

    sizes: tuple[int, ...]  # channel count of each input, in order


def concat_forward(xs: Sequence[FloatArray], axis: int = 1) -> tuple[FloatArray, ConcatCache]:
    """Concatenate NCHW arrays along channels: list of (N, C_i, H, W) -> (N, sum C_i, H, W)."""
    op = "concat"
    if len(xs) == 0:
        raise LayerValueError(op, "expected at least one array, got none")
    ref = xs[0]
    for i, x in enumerate(xs):
        check_float(op, f"input {i}", x)
        if (
            x.ndim != ref.ndim
            or x.dtype != ref.dtype
            or any(x.shape[d] != ref.shape[d] for d in range(x.ndim) if d != axis)
        ):
            raise LayerValueError(
                op,
                f"input {i} has shape {tuple(x.shape)} ({x.dtype}); every input must match "
                f"{tuple(ref.shape)} ({ref.dtype}) except along axis {axis}",
            )
    y = np.concatenate(xs, axis=axis)
    return y, ConcatCache(tuple(x.shape[axis] for x in xs))


def concat_backward(dy: FloatArray, cache: ConcatCache, axis: int = 1) -> list[FloatArray]:
    """dy (N, sum C_i, H, W) -> [dx_i (N, C_i, H, W)]: the gradient split back into the pieces."""
    op = "concat_backward"
    check_float(op, "dy", dy)
    total = int(sum(cache.sizes))
    if not -dy.ndim <= axis < dy.ndim or dy.shape[axis] != total:
        raise LayerValueError(
            op, f"expected dy with {total} entries along axis {axis}, got shape {tuple(dy.shape)}"
        )
    cuts = np.cumsum(cache.sizes)[:-1]
    return [p.copy() for p in np.split(dy, cuts, axis=axis)]


class SliceCache(NamedTuple):
    """What channel_slice_backward needs: the input's channel count and the kept range."""

    in_channels: int
    start: int
    stop: int


def channel_slice_forward(x: FloatArray, start: int, stop: int) -> tuple[FloatArray, SliceCache]:
    """Keep channels ``start:stop``: (N, C, H, W) -> (N, stop-start, H, W)."""
    op = "channel_slice"
    check_float(op, "x", x)
    check_rank(op, "input", x, 4, "(N, C, H, W)")
    if not 0 <= start < stop <= x.shape[1]:
        raise LayerValueError(
            op, f"expected 0 <= start < stop <= {x.shape[1]} channels, got {start}:{stop}"
        )
    return x[:, start:stop].copy(), SliceCache(x.shape[1], start, stop)


def channel_slice_backward(dy: FloatArray, cache: SliceCache) -> FloatArray:
    """dy (N, stop-start, H, W) -> dx (N, C, H, W): the dropped channels had no effect on
    the output, so their gradient is zero."""
    op = "channel_slice_backward"
    check_float(op, "dy", dy)
    check_rank(op, "dy", dy, 4, "(N, C, H, W)")
    if dy.shape[1] != cache.stop - cache.start:
        raise LayerValueError(
            op,
            f"expected dy with {cache.stop - cache.start} channels (slice "
            f"{cache.start}:{cache.stop}), got shape {tuple(dy.shape)}",
        )
    if cache.start == 0 and cache.stop == cache.in_channels:  # nothing was dropped
        return dy.copy()
    n, _, h, wd = dy.shape
    dx = np.zeros((n, cache.in_channels, h, wd), dtype=dy.dtype)
    dx[:, cache.start : cache.stop] = dy
    return dx
