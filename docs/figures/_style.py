"""Shared look of the documentation figures (imported by the figure scripts)."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, Rectangle

BLUE = "#3b6fb6"  # intrinsic maps, inputs
ORANGE = "#e08a2c"  # ghost maps, what the cheap operation makes
GREY = "#9aa3ad"
LIGHT = "#eef1f5"
INK = "#222831"
WINDOWS = ["#3b6fb6", "#e08a2c", "#3e9b5f", "#b84a62"]  # one colour per window / channel

plt.rcParams.update(
    {
        "font.family": "DejaVu Sans",
        "font.size": 10,
        "axes.titlesize": 11,
        "axes.titleweight": "bold",
        "svg.fonttype": "path",
    }
)


def blank(ax) -> None:
    """An axis used as a drawing board: no ticks, no frame, equal aspect."""
    ax.set_axis_off()
    ax.set_aspect("equal")


def grid(ax, values, x0, y0, *, colours=None, size=1.0, fmt="{:g}", fontsize=9):
    """Draw a 2-D array as a grid of labelled squares, row 0 at the top, from (x0, y0)."""
    rows, cols = len(values), len(values[0])
    for r in range(rows):
        for c in range(cols):
            face = colours[r][c] if colours is not None else "white"
            ax.add_patch(
                Rectangle((x0 + c * size, y0 - (r + 1) * size), size, size, fc=face, ec=INK, lw=0.8)
            )
            ax.text(
                x0 + (c + 0.5) * size,
                y0 - (r + 0.5) * size,
                fmt.format(values[r][c]),
                ha="center",
                va="center",
                fontsize=fontsize,
                color=INK,
            )


def arrow(ax, start, end, *, colour=INK, lw=1.2, style="-|>", rad=0.0):
    """A straight or gently curved arrow from ``start`` to ``end`` (data coordinates)."""
    ax.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle=style,
            mutation_scale=10,
            color=colour,
            lw=lw,
            connectionstyle=f"arc3,rad={rad}",
            shrinkA=2,
            shrinkB=2,
        )
    )
