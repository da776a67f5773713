"""Where a sliding window reads: the geometry every convolution kernel takes.

A window of kh x kw taps, dilated by (dil_h, dil_w), slides with stride (sh, sw) over an
input of h x wd pixels that is zero-padded by ph rows and pw columns on each side. Output
pixel (p, q) and tap (i, j) meet the padded input at

    row p*sh + i*dil_h,  column q*sw + j*dil_w

and the output has ho x wo pixels, by PyTorch's floor rule (``conv_out_size``).
``functional/`` checks the arguments and builds one ``ConvGeometry`` per call; the kernels
of both backends read it and never recompute it.
"""

from __future__ import annotations

import dataclasses

__all__ = ["ConvGeometry", "conv_out_size"]


def conv_out_size(size: int, k: int, s: int, p: int, d: int) -> int:
    """PyTorch's output-size rule: floor((size + 2p - d(k-1) - 1) / s) + 1."""
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


@dataclasses.dataclass(frozen=True, slots=True)
class ConvGeometry:
    """Kernel, stride, padding and dilation of a window, and the input and output sizes.

    Build it with ``ConvGeometry.of(in_hw, kernel, stride, padding, dilation)``, which
    computes the output size; every field is a plain int.
    """

    kh: int  # kernel height and width
    kw: int
    sh: int  # stride
    sw: int
    ph: int  # zero padding on each side
    pw: int
    dil_h: int  # dilation: taps sit dil_h rows and dil_w columns apart
    dil_w: int
    h: int  # input height and width, without the padding
    wd: int
    ho: int  # output height and width
    wo: int

    @classmethod
    def of(
        cls,
        in_hw: tuple[int, int],
        kernel: tuple[int, int],
        stride: tuple[int, int] = (1, 1),
        padding: tuple[int, int] = (0, 0),
        dilation: tuple[int, int] = (1, 1),
    ) -> ConvGeometry:
        """The geometry of a ``kernel`` window on an ``in_hw`` input; output size by PyTorch's rule."""
        (h, wd), (kh, kw), (sh, sw), (ph, pw), (dil_h, dil_w) = (
            in_hw,
            kernel,
            stride,
            padding,
            dilation,
        )
        ho = conv_out_size(h, kh, sh, ph, dil_h)
        wo = conv_out_size(wd, kw, sw, pw, dil_w)
        return cls(kh, kw, sh, sw, ph, pw, dil_h, dil_w, h, wd, ho, wo)

    @property
    def kernel(self) -> tuple[int, int]:
        return self.kh, self.kw

    @property
    def stride(self) -> tuple[int, int]:
        return self.sh, self.sw

    @property
    def padding(self) -> tuple[int, int]:
        return self.ph, self.pw

    @property
    def dilation(self) -> tuple[int, int]:
        return self.dil_h, self.dil_w

    @property
    def in_hw(self) -> tuple[int, int]:
        """(h, wd): the input without its padding."""
        return self.h, self.wd

    @property
    def padded_hw(self) -> tuple[int, int]:
        """(h + 2*ph, wd + 2*pw): the input with its padding."""
        return self.h + 2 * self.ph, self.wd + 2 * self.pw

    @property
    def out_hw(self) -> tuple[int, int]:
        return self.ho, self.wo

    def on_padded_input(self) -> ConvGeometry:
        """The same window on the already padded input: input size padded_hw, no padding."""
        hp, wp = self.padded_hw
        return dataclasses.replace(self, h=hp, wd=wp, ph=0, pw=0)
