"""Plots of what ghostnp computes, drawn with Matplotlib.

Every function returns a ``matplotlib.figure.Figure`` built directly (not through
``pyplot``), so plotting works headless, needs no display or GUI backend, and leaves
no global figure state behind. Save one with ``fig.savefig("curves.png")``.

    from ghostnp.viz import plot_history
    fig = plot_history(history)          # loss and accuracy per epoch, train and val
    fig.savefig("curves.png", dpi=120)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = ["plot_history"]


def _as_dict(history) -> Mapping:
    """A History object (anything with ``to_dict()``) or a plain dict of lists."""
    if hasattr(history, "to_dict"):
        history = history.to_dict()
    if not isinstance(history, Mapping):
        raise TypeError(
            f"plot_history: expected a History or a dict of per-epoch lists, got "
            f"{type(history).__name__}"
        )
    return history


def plot_history(history, title: str | None = None) -> Figure:
    """Training curves: loss (left) and accuracy (right) against epoch, train and val.

    ``history`` is a :class:`ghostnp.train.History` or its ``to_dict()``: equal-length
    lists ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc`` (one value per epoch;
    a list that is missing or all NaN is left out). Epochs are numbered from 1.
    Returns a Figure with two axes.
    """
    h = _as_dict(history)
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    for ax, metric, label in ((ax_loss, "loss", "loss"), (ax_acc, "acc", "accuracy")):
        for split, style in (("train", "-o"), ("val", "-s")):
            values = np.asarray(h.get(f"{split}_{metric}", []), dtype=np.float64)
            if values.size == 0 or np.all(np.isnan(values)):
                continue
            epochs = np.arange(1, values.size + 1)
            ax.plot(epochs, values, style, markersize=3, label=split)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend()
    ax_acc.set_ylim(top=1.0)
    ax_loss.set_title("loss")
    ax_acc.set_title("accuracy")
    if title:
        fig.suptitle(title)
    return fig
