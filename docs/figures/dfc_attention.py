"""DFC attention's two 1-D passes: how far one pooled position reaches.

A single nonzero position of the half-resolution map goes through the branch's
horizontal (1x5) and then vertical (5x1) depthwise convolution, computed with ghostnp's
`depthwise_conv2d_forward` and all-positive weights. After the two passes it has reached
a 5x5 block; by symmetry, each gate value likewise reads a 5x5 block of pooled positions.
"""

import numpy as np
from _style import BLUE, INK, ORANGE, arrow, blank
from matplotlib import pyplot as plt
from matplotlib.patches import Rectangle

from ghostnp import functional as F

N = 9  # side of the pooled map drawn
TAPS = 5


def _board(ax, reached, x0, title, colour):
    for r in range(N):
        for c in range(N):
            face = colour if reached[r, c] else "white"
            ax.add_patch(Rectangle((x0 + c, N - 1 - r), 1, 1, fc=face, ec="#c5ccd4", lw=0.6))
    ax.add_patch(Rectangle((x0, 0), N, N, fill=False, ec=INK, lw=0.9))
    ax.text(x0 + N / 2, N + 0.5, title, ha="center", fontsize=9)


def draw():
    x = np.zeros((1, 1, N, N))
    x[0, 0, N // 2, N // 2] = 1.0
    rows, _ = F.depthwise_conv2d_forward(x, np.ones((1, 1, 1, TAPS)), padding=(0, TAPS // 2))
    both, _ = F.depthwise_conv2d_forward(rows, np.ones((1, 1, TAPS, 1)), padding=(TAPS // 2, 0))

    fig, ax = plt.subplots(figsize=(7.2, 2.9))
    blank(ax)
    gap = 4.8
    _board(ax, x[0, 0] > 0, 0, "one pooled position", INK)
    _board(ax, rows[0, 0] > 0, N + gap, f"after the 1x{TAPS} pass (rows)", BLUE)
    _board(ax, both[0, 0] > 0, 2 * (N + gap), f"after the {TAPS}x1 pass (columns)", ORANGE)
    for k, text in enumerate((f"dwconv 1x{TAPS}\npad (0, 2)", f"dwconv {TAPS}x1\npad (2, 0)")):
        start = (k + 1) * N + k * gap + 0.3
        arrow(ax, (start, N / 2), (start + gap - 0.6, N / 2))
        ax.text(start + (gap - 0.6) / 2, N / 2 - 0.6, text, ha="center", va="top", fontsize=8)
    reach = int((both[0, 0] > 0).sum())
    ax.text(
        (3 * N + 2 * gap) / 2,
        -0.8,
        f"{reach} positions: a {TAPS}x{TAPS} block of the half-resolution map, about "
        f"{2 * TAPS}x{2 * TAPS} input pixels,\nfor {2 * TAPS} multiply-adds per position "
        f"(a {TAPS}x{TAPS} kernel would take {TAPS * TAPS})",
        ha="center",
        va="top",
        fontsize=8.5,
    )
    ax.set_xlim(-0.3, 3 * N + 2 * gap + 0.3)
    ax.set_ylim(-2.6, N + 1.2)
    return fig
