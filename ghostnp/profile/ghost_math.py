"""The Ghost module's arithmetic: the paper's speed-up and compression ratios (Eq. 4 and
5) and exact operation and parameter counts of an ordinary conv against its Ghost
replacement.

An ordinary conv makes n maps from c maps with a k x k kernel. The Ghost module makes
m = n / s intrinsic maps with that conv, then m * (s - 1) ghost maps with a d x d
depthwise conv over the intrinsic maps:

    conv MACs   = n   * h' * w' * c * k * k
    Ghost MACs  = m   * h' * w' * c * k * k          (primary conv)
                + m*(s-1) * h' * w' * d * d          (cheap depthwise conv)

    r_s = conv / Ghost = c*k*k / ((1/s)*c*k*k + ((s-1)/s)*d*d)  ~  s*c / (s + c - 1)  ~  s

The approximations need d*d ~ k*k and c >> s; for GhostNet's 1x1 primary conv (k = 1,
d = 3) they are loose: c = 80, s = 2 gives 1.80, not 2.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

__all__ = ["speedup_ratio", "compression_ratio", "ghost_vs_conv", "GhostVsConv"]


def speedup_ratio(c: int, k: int, d: int, s: int) -> float:
    """Paper Eq. 4: theoretical speed-up of a Ghost module over an ordinary k x k conv with
    c input channels, ratio s and cheap kernel d:
    c*k*k / ((1/s)*c*k*k + ((s-1)/s)*d*d)."""
    _check(c=c, k=k, d=d, s=s)
    return c * k * k / ((1 / s) * c * k * k + ((s - 1) / s) * d * d)


def compression_ratio(c: int, n: int, k: int, d: int, s: int) -> float:
    """Paper Eq. 5: parameter compression of a Ghost module making n maps from c maps:
    n*c*k*k / ((n/s)*c*k*k + (s-1)*(n/s)*d*d). (It equals Eq. 4: n cancels.)"""
    _check(c=c, n=n, k=k, d=d, s=s)
    return n * c * k * k / ((n / s) * c * k * k + (s - 1) * (n / s) * d * d)


def _check(**kw):
    for name, v in kw.items():
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"ghost_math: {name} must be a positive int, got {v!r}")
    if kw.get("s", 2) < 2:
        raise ValueError(f"ghost_math: s (ratio) must be at least 2, got {kw['s']}")


def _out_size(size: int, k: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - k) // stride + 1


@dataclass(frozen=True)
class GhostVsConv:
    """Exact counts for one input image (convolutions only, BN and ReLU excluded).

    out_hw            (h', w') of both outputs
    intrinsic         m = ceil(c_out / s) intrinsic maps; the cheap op makes m*(s-1)
    conv_macs, conv_params        ordinary k x k conv c_in -> c_out, no bias
    primary_macs, cheap_macs      the Ghost module's two convs
    ghost_macs, ghost_params      their sums
    speedup = conv_macs / ghost_macs;  compression = conv_params / ghost_params
    speedup_eq4       the paper's r_s for (c_in, k, d, s)
    """

    out_hw: tuple
    intrinsic: int
    conv_macs: int
    conv_params: int
    primary_macs: int
    primary_params: int
    cheap_macs: int
    cheap_params: int
    ghost_macs: int
    ghost_params: int
    speedup: float
    compression: float
    speedup_eq4: float

    def to_dict(self) -> dict:
        """The fields as plain Python types, ready for ``json.dumps``."""
        d = asdict(self)
        d["out_hw"] = list(self.out_hw)
        return d

    def __str__(self) -> str:
        return (
            f"ordinary conv: {self.conv_macs:,} MACs, {self.conv_params:,} params\n"
            f"Ghost module:  {self.ghost_macs:,} MACs ({self.primary_macs:,} primary + "
            f"{self.cheap_macs:,} cheap), {self.ghost_params:,} params\n"
            f"speed-up {self.speedup:.3f}x (Eq. 4: {self.speedup_eq4:.3f}x), "
            f"compression {self.compression:.3f}x"
        )


def ghost_vs_conv(c_in: int, c_out: int, k: int, d: int, s: int, h: int, w: int, stride: int = 1):
    """Exact MACs and parameters of an ordinary conv (c_in -> c_out, k x k, ``stride``,
    padding k//2, no bias) on an h x w input, against the Ghost module that replaces it
    (primary conv c_in -> m = ceil(c_out/s) with the same kernel and stride, then a
    d x d depthwise conv, padding d//2, making m*(s-1) ghost maps; no bias, BN
    excluded). These are the counts ``summary`` gives for ``Conv2d`` and ``GhostModule``
    layers of those shapes. Returns a `GhostVsConv`.
    """
    _check(c_in=c_in, c_out=c_out, k=k, d=d, s=s, h=h, w=w, stride=stride)
    ho, wo = _out_size(h, k, stride, k // 2), _out_size(w, k, stride, k // 2)
    if ho < 1 or wo < 1:
        raise ValueError(f"ghost_vs_conv: a {h}x{w} input is too small for k={k}, stride={stride}")
    m = math.ceil(c_out / s)
    conv_params = c_out * c_in * k * k
    primary_params = m * c_in * k * k
    cheap_params = m * (s - 1) * d * d  # depthwise: one d x d filter per ghost map
    ch, cw = _out_size(ho, d, 1, d // 2), _out_size(wo, d, 1, d // 2)
    conv_macs = c_out * ho * wo * c_in * k * k
    primary_macs = m * ho * wo * c_in * k * k
    cheap_macs = m * (s - 1) * ch * cw * d * d
    ghost_macs = primary_macs + cheap_macs
    ghost_params = primary_params + cheap_params
    return GhostVsConv(
        out_hw=(ho, wo),
        intrinsic=m,
        conv_macs=conv_macs,
        conv_params=conv_params,
        primary_macs=primary_macs,
        primary_params=primary_params,
        cheap_macs=cheap_macs,
        cheap_params=cheap_params,
        ghost_macs=ghost_macs,
        ghost_params=ghost_params,
        speedup=conv_macs / ghost_macs,
        compression=conv_params / ghost_params,
        speedup_eq4=speedup_ratio(c_in, k, d, s),
    )
