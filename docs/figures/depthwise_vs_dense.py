"""Which input channels each output channel reads: a dense convolution against a depthwise
one with channel multiplier M = 2.

The connections are measured, not drawn by hand: each input channel in turn is set to
one (the others zero) and passed through ghostnp's `conv2d_forward` and
`depthwise_conv2d_forward`; an output channel that changes is connected to it.
"""

import numpy as np
from _style import GREY, INK, WINDOWS, blank
from matplotlib import pyplot as plt
from matplotlib.patches import Rectangle

from ghostnp import functional as F

C, M, K = 3, 2, 3  # input channels, channel multiplier, kernel size
O = C * M


def _reads(op, w):
    """reads[o, c]: does output channel o depend on input channel c?"""
    reads = np.zeros((O, C), dtype=bool)
    for c in range(C):
        x = np.zeros((1, C, K, K))
        x[0, c] = 1.0
        y, _ = op(x, w)
        reads[:, c] = np.abs(y[0]).sum(axis=(1, 2)) > 0
    return reads


def _panel(ax, reads, title, cost):
    blank(ax)
    t, gap = 0.6, 0.35
    ys_in = [(C - 1) / 2 * (t + gap) * M / 1.0 - c * (t + gap) * M / 1.0 for c in range(C)]
    ys_out = [(O - 1) / 2 * (t + gap) - o * (t + gap) for o in range(O)]
    for c, y in enumerate(ys_in):
        ax.add_patch(Rectangle((0, y - t / 2), t, t, fc=WINDOWS[c], ec=INK, lw=0.8))
        ax.text(-0.15, y, f"c = {c}", ha="right", va="center", fontsize=8)
    for o, y in enumerate(ys_out):
        ax.add_patch(Rectangle((3, y - t / 2), t, t, fc="white", ec=INK, lw=0.8))
        ax.text(3 + t + 0.15, y, f"o = {o}", ha="left", va="center", fontsize=8)
        for c in np.flatnonzero(reads[o]):
            ax.plot([t, 3], [ys_in[c], y], color=WINDOWS[c], lw=1.2)
    ax.set_title(title, fontsize=10)
    ax.text(1.8, ys_out[-1] - 1.0, cost, ha="center", va="top", fontsize=8.5, color=INK)
    ax.set_xlim(-1.0, 4.6)
    ax.set_ylim(ys_out[-1] - 1.9, ys_out[0] + 0.6)


def draw():
    rng = np.random.default_rng(0)
    dense = _reads(F.conv2d_forward, rng.uniform(0.5, 1.0, (O, C, K, K)))
    depthwise = _reads(F.depthwise_conv2d_forward, rng.uniform(0.5, 1.0, (O, 1, K, K)))
    fig, (a, b) = plt.subplots(1, 2, figsize=(7.2, 3.6))
    _panel(
        a,
        dense,
        "dense convolution\nevery output reads every input",
        f"O·C·k² = {O}·{C}·{K * K} = {O * C * K * K}\nmultiply-adds per output pixel",
    )
    _panel(
        b,
        depthwise,
        f"depthwise convolution, M = {M}\noutput o reads input o // M",
        f"O·k² = {O}·{K * K} = {O * K * K}\nmultiply-adds per output pixel",
    )
    for ax in (a, b):
        ax.text(0.3, ax.get_ylim()[1] - 0.2, "input", ha="center", fontsize=8, color=GREY)
        ax.text(3.3, ax.get_ylim()[1] - 0.2, "output", ha="center", fontsize=8, color=GREY)
    return fig
