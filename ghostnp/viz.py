"""Plots of what ghostnp computes, drawn with Matplotlib.

Every function returns a ``matplotlib.figure.Figure`` built directly (not through
``pyplot``), so plotting works headless, needs no display or GUI backend, and leaves
no global figure state behind. Save one with ``fig.savefig("curves.png")``.

    from ghostnp.viz import plot_history
    fig = plot_history(history)          # loss and accuracy per epoch, train and val
    fig.savefig("curves.png", dpi=120)

What there is:

* training: ``plot_history`` (curves), ``plot_confusion`` (confusion matrix);
* feature maps: ``plot_feature_maps`` (a grid), ``plot_ghost_maps`` (a Ghost module's
  intrinsic maps beside the ghost maps made from them), ``plot_similarity`` with
  ``most_similar_pairs`` (how alike a layer's maps are: the redundancy GhostNet
  exploits), ``plot_attention`` (GhostNetV2's DFC gate);
* counts: ``plot_flops`` (MACs and parameters per stage), ``plot_memory`` (activation
  memory per stage and the memory of a training step);
``ghostnp visualize IMAGE`` (`ghostnp.cli.visualize`) draws a Ghost module's maps for a
photo (read by `ghostnp.data.load_image`) with these.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = [
    "plot_history",
    "plot_feature_maps",
    "plot_ghost_maps",
    "cosine_similarity",
    "most_similar_pairs",
    "plot_similarity",
    "plot_flops",
    "plot_memory",
    "confusion_matrix",
    "plot_confusion",
    "plot_attention",
]


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

    ``history`` is a `ghostnp.train.History` or its ``to_dict()``: equal-length
    lists ``train_loss``, ``train_acc``, ``val_loss``, ``val_acc`` (one value per epoch;
    a list that is missing or all NaN is left out). Epochs are numbered from 1. The
    loss axis is logarithmic (when every loss is positive), so a single spike does not
    flatten the rest of the curve. Returns a Figure with two axes.
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
    losses = np.concatenate([line.get_ydata() for line in ax_loss.lines] or [np.zeros(0)])
    if losses.size and np.all(losses[np.isfinite(losses)] > 0):
        # one spike (a loss of 17 among losses of 0.3) would flatten a linear axis
        ax_loss.set_yscale("log")
    ax_loss.set_title("loss")
    ax_acc.set_title("accuracy")
    if title:
        fig.suptitle(title)
    return fig


# -- feature maps ------------------------------------------------------------------------


def _as_maps(maps, what: str) -> np.ndarray:
    """``(C, H, W)`` or one image's ``(1, C, H, W)`` as a float64 ``(C, H, W)`` array."""
    a = np.asarray(maps)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 3 or 0 in a.shape:
        raise ValueError(
            f"{what}: expected feature maps of shape (C, H, W) or (1, C, H, W), got {a.shape}"
        )
    return a.astype(np.float64, copy=False)


def _show(ax, image, title=None, cmap="viridis", **kwargs):
    """One map on one axes, without ticks."""
    ax.imshow(image, cmap=cmap, interpolation="nearest", **kwargs)
    ax.set_xticks([])
    ax.set_yticks([])
    if title is not None:
        ax.set_title(title, fontsize=8)


def plot_feature_maps(maps, ncols: int = 8, title: str | None = None, cmap="viridis") -> Figure:
    """A grid of feature maps, one axes per channel, each on its own colour scale.

    ``maps`` is ``(C, H, W)`` (or ``(1, C, H, W)``, one image of a batch), e.g. what
    `ghostnp.nn.record` captured. Returns a Figure with ``C`` axes, ``ncols`` per
    row, titled by channel index.
    """
    a = _as_maps(maps, "plot_feature_maps")
    if not isinstance(ncols, (int, np.integer)) or ncols < 1:
        raise ValueError(f"plot_feature_maps: ncols must be an int >= 1, got {ncols!r}")
    c = a.shape[0]
    cols = min(int(ncols), c)
    rows = -(-c // cols)
    fig = Figure(figsize=(1.4 * cols, 1.45 * rows + (0.4 if title else 0)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for i, ax in enumerate(axes):
        if i < c:
            _show(ax, a[i], str(i), cmap)
        else:
            ax.remove()
    if title:
        fig.suptitle(title)
    return fig


def _pick_channels(maps: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` channels with the largest spatial standard deviation, in index order."""
    n = min(n, maps.shape[0])
    spread = maps.reshape(maps.shape[0], -1).std(axis=1)
    return np.sort(np.argsort(-spread, kind="stable")[:n])


def plot_ghost_maps(
    intrinsic, ghost, n: int = 8, title: str | None = None, channels=None, cmap="viridis"
) -> Figure:
    """Intrinsic maps of a Ghost module beside the ghost maps made from them.

    ``intrinsic`` is the primary conv's output ``(m, H, W)`` and ``ghost`` the cheap
    operation's ``(m * (s - 1), H, W)`` (either may carry a leading batch axis of 1).
    The cheap operation is a depthwise conv with channel multiplier ``s - 1``, so ghost
    channel ``j`` is made from intrinsic channel ``j // (s - 1)`` alone; intrinsic
    channel ``i`` has the ghosts ``i*(s-1) .. i*(s-1) + s-2``.

    Each column is one intrinsic map (top row) with its ``s - 1`` ghosts under it.
    ``channels`` picks the intrinsic channels to show; by default the ``n`` whose maps
    vary most (dead, all-zero maps make blank panels), in index order. Each panel has
    its own colour scale, from its minimum (darkest) to its maximum (brightest), and
    states that range under it. Returns a Figure with ``n * s`` axes.
    """
    x1 = _as_maps(intrinsic, "plot_ghost_maps (intrinsic)")
    x2 = _as_maps(ghost, "plot_ghost_maps (ghost)")
    m = x1.shape[0]
    if x2.shape[1:] != x1.shape[1:] or x2.shape[0] % m:
        raise ValueError(
            f"plot_ghost_maps: ghost maps {x2.shape} do not fit intrinsic maps {x1.shape}; "
            f"expected (m * (s - 1), H, W) with m = {m}"
        )
    per = x2.shape[0] // m  # s - 1 ghosts per intrinsic map
    if per < 1:
        raise ValueError("plot_ghost_maps: no ghost maps given")
    if channels is None:
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"plot_ghost_maps: n must be an int >= 1, got {n!r}")
        chosen = _pick_channels(x1, int(n))
    else:
        chosen = np.asarray(channels, dtype=np.intp).ravel()
        if chosen.size == 0 or chosen.min() < 0 or chosen.max() >= m:
            raise ValueError(
                f"plot_ghost_maps: channels must be indices in 0..{m - 1}, got {list(chosen)}"
            )
    k = len(chosen)
    fig = Figure(figsize=(1.5 * k + 0.6, 1.55 * (1 + per) + 0.5), layout="constrained")
    axes = fig.subplots(1 + per, k, squeeze=False)
    for col, i in enumerate(chosen):
        panels = [(axes[0, col], x1[i], f"intrinsic {i}")]
        panels += [(axes[1 + r, col], x2[i * per + r], f"ghost {i * per + r}") for r in range(per)]
        for ax, image, name in panels:
            _show(ax, image, name, cmap)
            ax.set_xlabel(f"{image.min():.3g} to {image.max():.3g}", fontsize=7)  # its scale
    axes[0, 0].set_ylabel("intrinsic\n(primary conv)", fontsize=8)
    for r in range(per):
        axes[1 + r, 0].set_ylabel("ghost\n(cheap dw conv)", fontsize=8)
    fig.suptitle(
        title or f"{k} of {m} intrinsic maps and the ghost maps made from them (s = {per + 1})"
    )
    return fig


def cosine_similarity(maps, center: bool = False) -> np.ndarray:
    """``(C, C)`` cosine similarity of the flattened maps ``(C, H, W)``.

    With ``center=True`` each map's mean is subtracted first (Pearson correlation).
    A map that is zero everywhere (a dead ReLU channel) has no direction: its row and
    column are NaN.
    """
    a = _as_maps(maps, "cosine_similarity")
    f = a.reshape(a.shape[0], -1)
    if center:
        f = f - f.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(f, axis=1)
    scale = np.abs(f).max() if f.size else 0.0
    dead = norm <= 1e-12 * max(scale, 1e-300) * np.sqrt(f.shape[1])
    unit = f / np.where(dead, 1.0, norm)[:, None]
    s = np.clip(unit @ unit.T, -1.0, 1.0)
    s[dead, :] = np.nan
    s[:, dead] = np.nan
    return s


def most_similar_pairs(maps, top: int = 6, center: bool = False) -> list[tuple[int, int, float]]:
    """The ``top`` most similar pairs of maps as ``(i, j, cos)`` with ``i < j``, most
    similar first (ties by index). Maps that are zero everywhere are left out.
    """
    if not isinstance(top, (int, np.integer)) or top < 1:
        raise ValueError(f"most_similar_pairs: top must be an int >= 1, got {top!r}")
    s = cosine_similarity(maps, center=center)
    i, j = np.triu_indices(s.shape[0], k=1)
    cos = s[i, j]
    keep = ~np.isnan(cos)
    i, j, cos = i[keep], j[keep], cos[keep]
    order = np.lexsort((j, i, -cos))[: int(top)]
    return [(int(i[k]), int(j[k]), float(cos[k])) for k in order]


def plot_similarity(maps, top: int = 6, center: bool = False, cmap="viridis") -> Figure:
    """How alike a layer's feature maps are, in the spirit of the GhostNet paper's Fig. 1.

    Left: the ``(C, C)`` cosine-similarity matrix of the flattened maps (see
    `cosine_similarity`). Right: the ``top`` most similar pairs
    (`most_similar_pairs`), the two maps of each pair side by side (two pairs per
    row when there are more than three). Returns a Figure with ``2 + 2 * p`` axes (the
    matrix, its colour bar, and two per pair, ``p = min(top, number of pairs)``).
    """
    a = _as_maps(maps, "plot_similarity")
    s = cosine_similarity(a, center=center)
    pairs = most_similar_pairs(a, top, center=center) if a.shape[0] > 1 else []
    per_row = 1 if len(pairs) <= 3 else 2
    rows = max(1, -(-len(pairs) // per_row))
    fig = Figure(figsize=(6.5 + 2.6 * per_row, max(4.5, 1.9 * rows + 0.6)), layout="constrained")
    left, right = fig.subfigures(1, 2, width_ratios=[6.5, 2.6 * per_row])
    ax = left.subplots()
    low = np.nanmin(s) if np.isfinite(s).any() else 0.0
    im = ax.imshow(s, cmap="magma", vmin=low, vmax=1)
    ax.set_xlabel("channel j")
    ax.set_ylabel("channel i")
    ax.set_title(f"cosine similarity of {a.shape[0]} maps" + (" (centred)" if center else ""))
    left.colorbar(im, ax=ax, shrink=0.8)
    if pairs:
        axes = right.subplots(rows, 2 * per_row, squeeze=False)
        for k, (i, j, c) in enumerate(pairs):
            r, col = divmod(k, per_row)
            _show(axes[r, 2 * col], a[i], f"map {i}", cmap)
            _show(axes[r, 2 * col + 1], a[j], f"map {j}", cmap)
            axes[r, 2 * col].set_ylabel(f"cos {c:.3f}", fontsize=8)
        for k in range(len(pairs), rows * per_row):
            r, col = divmod(k, per_row)
            axes[r, 2 * col].remove()
            axes[r, 2 * col + 1].remove()
        right.suptitle(f"the {len(pairs)} most similar pairs", fontsize=10)
    return fig


# -- counts and memory -------------------------------------------------------------------


def _group_names(names) -> list[str]:
    """Stage of each layer path: ``blocks.3`` for ``blocks.3.0.ghost1...`` (a container of
    numbered containers, as GhostNet's ``blocks``), else the first path component."""
    paths = [n.split(":")[0] for n in names]
    first = {}
    for p in paths:
        parts = p.split(".")
        nested = len(parts) >= 3 and parts[1].isdigit() and parts[2].isdigit()
        first[parts[0]] = first.get(parts[0], True) and nested
    out = []
    for p in paths:
        parts = p.split(".")
        out.append(f"{parts[0]}.{parts[1]}" if first[parts[0]] else (parts[0] or "(root)"))
    return out


def _sum_groups(keys, columns) -> tuple[list[str], list[np.ndarray]]:
    """Sum ``columns`` over consecutive runs of equal ``keys``."""
    names, sums = [], [[] for _ in columns]
    for idx, key in enumerate(keys):
        if not names or names[-1] != key:
            names.append(key)
            for s in sums:
                s.append(0)
        for s, col in zip(sums, columns, strict=True):
            s[-1] += col[idx]
    return names, [np.asarray(s, dtype=np.float64) for s in sums]


def _flop_table(data, by: str):
    """``(names, macs, params, activation_bytes, label)`` from a Summary or a list of
    Row / Stage objects."""
    if by not in ("stage", "layer"):
        raise ValueError(f"by must be 'stage' or 'layer', got {by!r}")
    label = getattr(data, "count_label", "MACs")
    if hasattr(data, "rows") and hasattr(data, "total_macs"):  # a Summary
        if by == "stage":
            items = data.stages if data.stages is not None else data._stages_now()
        else:
            items = data.rows
    else:
        items = list(data)
    if not items or not all(hasattr(r, "macs") and hasattr(r, "params") for r in items):
        raise TypeError(
            "expected a ghostnp.profile.Summary or a non-empty list of its rows or stages"
        )
    names = [r.name for r in items]
    cols = [
        [r.macs for r in items],
        [r.params for r in items],
        [getattr(r, "activation_bytes", 0) for r in items],
    ]
    is_stage = hasattr(items[0], "layers")
    if by == "stage" and not is_stage:
        names, sums = _sum_groups(_group_names(names), cols)
    else:
        sums = [np.asarray(c, dtype=np.float64) for c in cols]
    return names, sums[0], sums[1], sums[2], label


def _bars(ax, names, values, scale, unit, colour):
    x = np.arange(len(names))
    bars = ax.bar(x, values / scale, color=colour)
    ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel(unit)
    ax.grid(True, axis="y", alpha=0.3)
    return bars


def plot_flops(summary_or_rows, by: str = "stage", title: str | None = None) -> Figure:
    """Bar charts of multiply-adds (top) and parameters (bottom) per stage or per layer.

    ``summary_or_rows`` is a `ghostnp.profile.Summary` (from
    ``summary(model, shape)``), or a list of its rows or stages. ``by="stage"`` sums the
    layers of each stage (``blocks.i`` for GhostNet, the top-level child otherwise);
    ``by="layer"`` draws every row. Stages with neither operations nor parameters
    (activations, pooling, flatten) are left out. Returns a Figure with two axes.
    """
    names, macs, params, _, label = _flop_table(summary_or_rows, by)
    keep = (macs > 0) | (params > 0)
    names = [n for n, k in zip(names, keep, strict=True) if k]
    macs, params = macs[keep], params[keep]
    fig = Figure(figsize=(max(6.0, 0.45 * len(names) + 2), 6.5), layout="constrained")
    ax_m, ax_p = fig.subplots(2, 1)
    _bars(ax_m, names, macs, 1e6, f"{label} (millions)", "C0")
    _bars(ax_p, names, params, 1e6, "parameters (millions)", "C1")
    ax_m.set_title(f"{label} per {by}: total {macs.sum() / 1e6:,.2f}M")
    ax_p.set_title(f"parameters per {by}: total {params.sum() / 1e6:,.3f}M")
    if title:
        fig.suptitle(title)
    return fig


def plot_memory(report, by: str = "stage", title: str | None = None) -> Figure:
    """Activation memory per stage (left) and the memory of a training step (right).

    ``report`` is a `ghostnp.profile.MemoryReport` (``memory(model, shape)``,
    which counts every operation's output, inline ones included), a
    `ghostnp.profile.Summary`, or a list of rows. Bytes are for the report's
    whole batch, drawn in MiB. The right-hand axes splits one training step into
    parameters, gradients, input and activations; it is drawn for a MemoryReport or a
    Summary (two axes), not for a bare list (one axes).
    """
    if by not in ("stage", "layer"):
        raise ValueError(f"plot_memory: by must be 'stage' or 'layer', got {by!r}")
    totals = None
    if hasattr(report, "training_bytes"):  # MemoryReport
        rows = report.rows
        names = [r.name for r in rows]
        values = np.asarray([r.bytes for r in rows], dtype=np.float64)
        if by == "stage":
            names, (values,) = _sum_groups(_group_names(names), [values])
        totals = {
            "parameters": report.param_bytes,
            "gradients": report.grad_bytes,
            "input": report.input_bytes,
            "activations": report.activation_bytes,
        }
        batch = report.input_shape[0]
    else:
        names, _, _, values, _ = _flop_table(report, by)
        batch = None
        if hasattr(report, "param_bytes"):  # Summary
            itemsize = report.param_bytes // max(report.total_params, 1) or 4
            totals = {
                "parameters": report.param_bytes,
                "gradients": report.param_bytes,
                "input": int(np.prod(report.input_shape)) * itemsize,
                "activations": report.activation_bytes,
            }
            batch = report.input_shape[0]
    keep = values > 0
    names = [n for n, k in zip(names, keep, strict=True) if k]
    values = values[keep]
    mib = 1024.0**2
    width = max(6.0, 0.4 * len(names) + 2)
    fig = Figure(figsize=(width + (4 if totals else 0), 4.5), layout="constrained")
    if totals:
        ax, ax_t = fig.subplots(1, 2, width_ratios=[width, 4])
    else:
        ax = fig.subplots()
    _bars(ax, names, values, mib, "activation memory (MiB)", "C2")
    where = "" if batch is None else f", batch of {batch}"
    ax.set_title(f"activations kept for backward per {by}{where}: {values.sum() / mib:,.1f} MiB")
    if totals:
        labels = list(totals)
        vals = np.asarray([totals[k] for k in labels], dtype=np.float64) / mib
        bars = ax_t.bar(labels, vals, color=["C1", "C3", "C7", "C2"])
        ax_t.bar_label(bars, [f"{v:,.1f}" for v in vals], fontsize=8)
        ax_t.set_ylabel("MiB")
        ax_t.tick_params(axis="x", labelrotation=30)
        ax_t.set_title(f"one training step: {vals.sum():,.1f} MiB")
        ax_t.grid(True, axis="y", alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


# -- classification ----------------------------------------------------------------------


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """``(K, K)`` int64 counts: entry ``[t, p]`` is how many samples of class ``t`` were
    predicted as ``p``."""
    t = np.asarray(y_true).ravel()
    p = np.asarray(y_pred).ravel()
    if t.shape != p.shape:
        raise ValueError(f"confusion_matrix: {t.size} labels but {p.size} predictions")
    for name, a in (("y_true", t), ("y_pred", p)):
        if a.size and (a.dtype.kind not in "iu" or a.min() < 0 or a.max() >= num_classes):
            raise ValueError(
                f"confusion_matrix: {name} must hold integer labels in 0..{num_classes - 1}"
            )
    m = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(m, (t, p), 1)
    return m


def plot_confusion(y_true, y_pred, classes, title: str | None = None) -> Figure:
    """Confusion matrix: rows are the true classes, columns the predicted ones.

    ``classes`` is the list of class names (or their number). Cells show counts and are
    coloured by the fraction of their row, so the diagonal is each class's recall.
    Returns a Figure with two axes (the matrix and its colour bar).
    """
    if isinstance(classes, (int, np.integer)):
        classes = [str(c) for c in range(int(classes))]
    names = [str(c) for c in classes]
    k = len(names)
    m = confusion_matrix(y_true, y_pred, k)
    frac = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
    fig = Figure(figsize=(0.45 * k + 3, 0.45 * k + 2.4), layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(frac, cmap="Blues", vmin=0, vmax=1)
    for t in range(k):
        for p in range(k):
            if m[t, p]:
                colour = "white" if frac[t, p] > 0.5 else "black"
                ax.text(p, t, str(m[t, p]), ha="center", va="center", fontsize=8, color=colour)
    ax.set_xticks(range(k), names, rotation=45 if max(map(len, names)) > 2 else 0)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    acc = np.trace(m) / max(m.sum(), 1)
    ax.set_title(title or f"{m.sum()} samples, accuracy {acc:.3f}")
    fig.colorbar(im, ax=ax, shrink=0.8, label="fraction of the true class")
    return fig


# -- GhostNetV2 attention ------------------------------------------------------------------


def _image_hwc(image) -> np.ndarray:
    a = np.asarray(image, dtype=np.float64)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 3 and a.shape[0] in (1, 3):
        a = a[0] if a.shape[0] == 1 else np.moveaxis(a, 0, -1)
    if a.ndim not in (2, 3):
        raise ValueError(f"expected an image (C, H, W) or (H, W), got {np.shape(image)}")
    lo, hi = a.min(), a.max()
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def plot_attention(gate, image=None, channels: int = 4, title: str | None = None) -> Figure:
    """A GhostNetV2 DFC attention gate (``GhostModuleV2.attention_map()``).

    ``gate`` is ``(N, C, H, W)`` (the first image is drawn) or ``(C, H, W)``, values in
    (0, 1): the factor by which each output of the Ghost module is multiplied. Panels:
    the input ``image`` if given, the gate averaged over channels, and the ``channels``
    channels whose gate varies most. Each panel has its own colour scale; its title
    gives the range. Returns a Figure with ``channels + 1`` axes (+ 1 with an image).
    """
    g = np.asarray(gate, dtype=np.float64)
    if g.ndim == 4:
        g = g[0]
    g = _as_maps(g, "plot_attention")
    shown = _pick_channels(g, max(int(channels), 0)) if channels else []
    panels = []
    if image is not None:
        panels.append(("input", _image_hwc(image), "gray"))
    mean = g.mean(axis=0)
    panels.append((f"mean over {g.shape[0]} channels", mean, "magma"))
    panels += [(f"channel {c}", g[c], "magma") for c in shown]
    fig = Figure(figsize=(2.3 * len(panels), 2.9), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (name, a, cmap) in zip(axes, panels, strict=True):
        if name == "input":
            _show(ax, a, name, cmap if a.ndim == 2 else None)
        else:
            _show(ax, a, f"{name}\n[{a.min():.3f}, {a.max():.3f}]", cmap)
    fig.suptitle(title or f"DFC attention gate, {g.shape[1]}x{g.shape[2]}")
    return fig
