"""im2col on a numbered 4x4 image: each 3x3 window becomes one column.

The columns are computed by ghostnp's reference `im2col` kernel, so the picture shows
what the code does.
"""

import numpy as np
from _style import INK, LIGHT, WINDOWS, arrow, blank, grid
from matplotlib import pyplot as plt
from matplotlib.patches import Rectangle

from ghostnp.kernels import reference

H = W = 4
K = 3  # kernel 3x3, stride 1, no padding -> 2x2 windows


def draw():
    x = np.arange(1, H * W + 1, dtype=float).reshape(1, 1, H, W)
    ho, wo = H - K + 1, W - K + 1
    cols = reference.im2col(x, K, K, 1, 1, 1, 1, ho, wo)  # (1, 1, K, K, ho, wo)
    matrix = cols.reshape(K * K, ho * wo)  # row (i, j), column (u, v)

    fig, ax = plt.subplots(figsize=(7.2, 3.6))
    blank(ax)
    s = 0.42  # cell size of the small images
    for u in range(ho):
        for v in range(wo):
            k = u * wo + v
            x0, y0 = v * (W * s + 0.7), 4.4 - u * (H * s + 0.6)
            shade = [
                [
                    WINDOWS[k] + "55" if u <= r < u + K and v <= c < v + K else LIGHT
                    for c in range(W)
                ]
                for r in range(H)
            ]
            grid(ax, x[0, 0].astype(int), x0, y0, colours=shade, size=s, fmt="{}", fontsize=7)
            ax.add_patch(
                Rectangle(
                    (x0 + v * s, y0 - (u + K) * s), K * s, K * s, fill=False, ec=WINDOWS[k], lw=2
                )
            )
            ax.text(x0 + W * s / 2, y0 + 0.12, f"window ({u}, {v})", ha="center", fontsize=7.5)

    c = 0.5  # cell size of the column matrix
    mx, my = 6.5, 4.75
    shade = [[WINDOWS[k] + "55" for k in range(ho * wo)] for _ in range(K * K)]
    grid(ax, matrix.astype(int), mx, my, colours=shade, size=c, fmt="{}", fontsize=8)
    for k in range(ho * wo):
        ax.text(
            mx + (k + 0.5) * c,
            my + 0.12,
            f"({k // wo},{k % wo})",
            ha="center",
            fontsize=7.5,
            color=WINDOWS[k],
        )
    ax.text(mx - 0.1, my + 0.12, "(i, j)", ha="right", fontsize=7.5)
    for r in range(K * K):
        ax.text(
            mx - 0.1,
            my - (r + 0.5) * c,
            f"({r // K}, {r % K})",
            ha="right",
            va="center",
            fontsize=7.5,
        )
    ax.text(
        mx + ho * wo * c / 2,
        my + 0.45,
        "cols: one column per window",
        ha="center",
        fontsize=9,
        color=INK,
    )
    ax.text(
        mx + ho * wo * c / 2,
        my - K * K * c - 0.35,
        f"({K * K} x {ho * wo}) = (C·kh·kw) x (ho·wo)",
        ha="center",
        fontsize=8,
    )
    left, right = 2 * W * s + 0.85, mx - 0.75
    arrow(ax, (left, 2.4), (right, 2.4))
    ax.text((left + right) / 2, 2.55, "im2col", ha="center", fontsize=9, fontweight="bold")
    ax.set_xlim(-0.1, mx + ho * wo * c + 0.1)
    ax.set_ylim(-0.3, 5.35)
    return fig
