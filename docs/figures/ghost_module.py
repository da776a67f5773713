"""The Ghost module's data flow: intrinsic maps, ghost maps, concatenation, slice.

The channel counts come from a real `GhostModule(4, 7)`: m = ceil(7 / 2) = 4 intrinsic
maps, 4 ghost maps (ghost map j made from intrinsic map j), 8 concatenated, 7 kept.
"""

from _style import BLUE, GREY, INK, ORANGE, arrow, blank
from matplotlib import pyplot as plt
from matplotlib.patches import Rectangle

from ghostnp import nn

C_IN, C_OUT = 4, 7
T = 0.55  # side of one feature-map tile
GAP = 0.12


def _stack(ax, x, colours, top=4.6, crossed=()):
    """Tiles for a stack of feature maps at horizontal position x; returns their centres."""
    centres = []
    for k, face in enumerate(colours):
        y = top - k * (T + GAP)
        ax.add_patch(
            Rectangle((x, y - T), T, T, fc=face, ec=INK, lw=0.8, alpha=0.35 if k in crossed else 1)
        )
        if k in crossed:
            ax.plot([x, x + T], [y - T, y], color=INK, lw=1)
            ax.plot([x, x + T], [y, y - T], color=INK, lw=1)
        centres.append((x + T / 2, y - T / 2))
    return centres


def draw():
    module = nn.GhostModule(C_IN, C_OUT)  # ratio 2, 1x1 primary conv, 3x3 cheap op
    m = module.primary_conv[0].weight.shape[0]
    ghosts = module.cheap_operation[0].weight.shape[0]
    kept = C_OUT

    fig, ax = plt.subplots(figsize=(7.2, 4.2))
    blank(ax)
    step = T + GAP
    xs = [0.0, 2.4, 4.3, 6.5, 8.6]
    inp = _stack(ax, xs[0], [GREY] * C_IN)
    intr = _stack(ax, xs[1], [BLUE] * m)
    # the ghost maps sit level with their place in the concatenation
    ghost = _stack(ax, xs[2], [ORANGE] * ghosts, top=4.6 - m * step)
    cat = _stack(ax, xs[3], [BLUE] * m + [ORANGE] * ghosts)
    out = _stack(ax, xs[4], [BLUE] * m + [ORANGE] * ghosts, crossed=range(kept, m + ghosts))

    for a in inp:
        for b in intr:
            ax.plot([a[0] + T / 2, b[0] - T / 2], [a[1], b[1]], color=GREY, lw=0.5)
    for j, g in enumerate(ghost):
        src = intr[j * m // ghosts]  # depthwise: ghost map j reads intrinsic map j // (s-1)
        arrow(ax, (src[0] + T / 2, src[1]), (g[0] - T / 2, g[1]), colour=ORANGE)
    for a, b in zip(intr + ghost, cat, strict=True):
        arrow(ax, (a[0] + T / 2, a[1]), (b[0] - T / 2, b[1]), colour=GREY, lw=0.8)
    for k, (a, b) in enumerate(zip(cat, out, strict=True)):
        if k < kept:
            arrow(ax, (a[0] + T / 2, a[1]), (b[0] - T / 2, b[1]), colour=GREY, lw=0.8)

    def label(x, text, sub):
        ax.text(x + T / 2, 5.0, text, ha="center", fontsize=9, fontweight="bold")
        ax.text(x + T / 2, 4.72, sub, ha="center", fontsize=7.5)

    label(xs[0], "x", f"{C_IN} maps")
    label(xs[1], "intrinsic", f"m = {m}")
    label(xs[2], "ghost", f"m(s-1) = {ghosts}")
    label(xs[3], "concat", f"{m + ghosts} maps")
    label(xs[4], "y = slice", f"first n = {kept}")
    bottom = cat[-1][1] - T / 2
    ax.text(
        (xs[0] + xs[1] + T) / 2,
        inp[-1][1] - 0.75,
        "primary_conv\n1x1 conv, BN, ReLU",
        ha="center",
        va="top",
        fontsize=7.5,
    )
    ax.text(
        xs[1] + T,
        ghost[2][1],
        "cheap_operation\n3x3 depthwise,\nBN, ReLU",
        ha="right",
        va="center",
        fontsize=7.5,
        color=ORANGE,
    )
    ax.text(xs[4] + T + 0.15, out[-1][1], "dropped", va="center", fontsize=7.5)
    ax.set_xlim(-0.2, xs[4] + T + 1.0)
    ax.set_ylim(bottom - 0.2, 5.3)
    return fig
