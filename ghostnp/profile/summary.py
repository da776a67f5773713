"""``summary``: a per-layer table of output shapes, parameters and operation counts, and
``compare_conventions``: the same network counted by the paper, by ``full`` and by
emulations of fvcore, ptflops and thop, side by side.

    >>> from ghostnp.models import ghostnet_100
    >>> s = summary(ghostnet_100(), (3, 224, 224))
    >>> s.total_macs, s.total_params
    (141150512, 5182508)
    >>> print(s)                       # aligned table with totals
    >>> print(compare_conventions(ghostnet_100(), (3, 224, 224)))

Counts are per image whatever the batch size N in ``input_shape``; output shapes and
activation bytes are for the whole batch.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass

import numpy as np

from ..nn.module import Module, ModuleList, Sequential
from .conventions import CATEGORIES, CONVENTIONS, category, get_convention
from .format import fmt_bytes, fmt_int, fmt_shape, markdown_table, text_table
from .memory import activation_bytes
from .trace import Op, model_dtype, normalize_input_shape, trace

__all__ = [
    "Row",
    "Stage",
    "Summary",
    "summary",
    "ConventionComparison",
    "compare_conventions",
]


@dataclass(frozen=True)
class Row:
    """One operation: ``name`` (module path, or ``path:op`` for an inline op), ``type``
    (class or op name), ``output_shape`` (N, C, H, W), ``params`` (the module's own
    parameters), ``macs`` (this convention's count per image), ``activation_bytes``
    (its output for the batch; 0 for a view)."""

    name: str
    type: str
    output_shape: tuple
    params: int
    macs: int
    activation_bytes: int

    def to_dict(self) -> dict:
        """The fields as plain Python types, ready for ``json.dumps``."""
        d = asdict(self)
        d["output_shape"] = list(self.output_shape)
        return d


@dataclass(frozen=True)
class Stage:
    """Subtotal of consecutive rows under one top-level child (``blocks.i`` for GhostNet)."""

    name: str
    output_shape: tuple
    layers: int
    params: int
    macs: int
    activation_bytes: int

    def to_dict(self) -> dict:
        """The fields as plain Python types, ready for ``json.dumps``."""
        d = asdict(self)
        d["output_shape"] = list(self.output_shape)
        return d


def _stage_parents(model: Module) -> set[str]:
    """Top-level children that are plain containers of containers (GhostNet's ``blocks``):
    their children, not they, are the stages."""
    plain = (Sequential, ModuleList)
    return {
        name
        for name, child in model.named_children()
        if type(child) in plain
        and child._modules
        and all(type(g) in plain for g in child.children())
    }


def _stage_of(name: str, parents: set[str]) -> str:
    path = name.split(":")[0]
    if path in ("", "(root)"):
        return "(root)"
    parts = path.split(".")
    if parts[0] in parents and len(parts) > 1:
        return f"{parts[0]}.{parts[1]}"
    return parts[0]


def _group_stages(rows, parents, module_shapes) -> list[Stage]:
    """Consecutive rows under the same stage, summed. A stage's output shape is its
    module's output (batch from the rows), or its last row's when it is not a module."""
    stages: list[Stage] = []
    for r in rows:
        key = _stage_of(r.name, parents)
        shape = module_shapes.get(key)
        out = r.output_shape if shape is None else (r.output_shape[0], *shape[1:])
        if stages and stages[-1].name == key:
            s = stages[-1]
            stages[-1] = Stage(
                key,
                out,
                s.layers + 1,
                s.params + r.params,
                s.macs + r.macs,
                s.activation_bytes + r.activation_bytes,
            )
        else:
            stages.append(Stage(key, out, 1, r.params, r.macs, r.activation_bytes))
    return stages


class Summary:
    """The result of `summary`.

    rows              list of `Row`, in execution order
    total_params      number of trainable scalars of the model (each shared one once)
    total_macs        sum of the rows' counts under ``convention`` (per image)
    convention        the convention's name ("paper", "full", "fvcore", "ptflops", "thop")
    input_shape       (N, C, H, W)
    stages            list of `Stage` when asked for, else None
    dtype             the model's dtype name
    param_bytes       total_params * itemsize
    activation_bytes  sum of the rows' activation bytes (see `ghostnp.profile.memory`)
    uncounted         layer types for which the convention has no rule (counted as 0)
    """

    def __init__(
        self,
        model_name,
        rows,
        total_params,
        convention,
        input_shape,
        dtype,
        stages=None,
        uncounted=(),
        stage_parents=frozenset(),
        module_shapes=None,
    ):
        self.model_name = model_name
        self.rows = list(rows)
        self.total_params = int(total_params)
        self.total_macs = int(sum(r.macs for r in self.rows))
        self.convention = convention
        self.input_shape = tuple(input_shape)
        self.dtype = dtype
        self.param_bytes = self.total_params * np.dtype(dtype).itemsize
        self.activation_bytes = int(sum(r.activation_bytes for r in self.rows))
        self.stages = stages
        self.uncounted = sorted(uncounted)
        self._stage_parents = frozenset(stage_parents)
        self._module_shapes = dict(module_shapes or {})

    @property
    def count_label(self) -> str:
        """The heading of the count column: "MACs" for the paper convention, else "Ops (name)"."""
        return "MACs" if self.convention == "paper" else f"Ops ({self.convention})"

    # -- text ----------------------------------------------------------------------
    def layer_table(self) -> str:
        """The per-layer rows as an aligned text table."""
        return text_table(
            ["Layer", "Type", "Output shape", "Params", self.count_label],
            [
                [r.name, r.type, fmt_shape(r.output_shape), fmt_int(r.params), fmt_int(r.macs)]
                for r in self.rows
            ],
            align="lllrr",
        )

    def stage_table(self) -> str:
        """The per-stage subtotals as an aligned text table (computed here if needed)."""
        stages = self.stages if self.stages is not None else self._stages_now()
        return text_table(
            ["Stage", "Output shape", "Layers", "Params", self.count_label],
            [
                [s.name, fmt_shape(s.output_shape), s.layers, fmt_int(s.params), fmt_int(s.macs)]
                for s in stages
            ],
            align="llrrr",
        )

    def _stages_now(self):
        return _group_stages(self.rows, self._stage_parents, self._module_shapes)

    def totals_text(self) -> str:
        """The totals (parameters, count per image, activation memory) as text lines."""
        lines = [
            f"{self.model_name}, input {fmt_shape(self.input_shape)}, convention {self.convention!r}",
            f"Total params: {fmt_int(self.total_params)} ({fmt_bytes(self.param_bytes)} {self.dtype})",
            f"Total {self.count_label} per image: {fmt_int(self.total_macs)}",
            f"Activations kept for backward (estimate): {fmt_bytes(self.activation_bytes)}",
        ]
        if self.uncounted:
            lines.append(f"No rule (counted 0): {', '.join(self.uncounted)}")
        return "\n".join(lines)

    def __str__(self) -> str:
        parts = [self.layer_table()]
        if self.stages is not None:
            parts.append(self.stage_table())
        parts.append(self.totals_text())
        return "\n\n".join(parts)

    def __repr__(self) -> str:
        return (
            f"Summary({self.model_name}, input={self.input_shape}, convention={self.convention!r}, "
            f"params={self.total_params:,}, macs={self.total_macs:,}, rows={len(self.rows)})"
        )

    # -- machine-readable -------------------------------------------------------------
    def to_markdown(self) -> str:
        """Rows (and stages, if computed) as Markdown tables, with a totals line."""
        parts = [
            markdown_table(
                ["Layer", "Type", "Output shape", "Params", self.count_label],
                [
                    [
                        f"`{r.name}`",
                        r.type,
                        fmt_shape(r.output_shape),
                        fmt_int(r.params),
                        fmt_int(r.macs),
                    ]
                    for r in self.rows
                ],
                align="lllrr",
            )
        ]
        if self.stages is not None:
            parts.append(
                markdown_table(
                    ["Stage", "Output shape", "Layers", "Params", self.count_label],
                    [
                        [
                            f"`{s.name}`",
                            fmt_shape(s.output_shape),
                            s.layers,
                            fmt_int(s.params),
                            fmt_int(s.macs),
                        ]
                        for s in self.stages
                    ],
                    align="llrrr",
                )
            )
        parts.append(
            f"**Total params:** {fmt_int(self.total_params)} · "
            f"**Total {self.count_label}:** {fmt_int(self.total_macs)} · "
            f"input {fmt_shape(self.input_shape)}, convention `{self.convention}`"
        )
        return "\n\n".join(parts) + "\n"

    def to_csv(self) -> str:
        """One CSV line per row: name,type,output_shape,params,macs,activation_bytes
        (shape written as 1x16x112x112)."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["name", "type", "output_shape", "params", "macs", "activation_bytes"])
        for r in self.rows:
            w.writerow(
                [r.name, r.type, fmt_shape(r.output_shape), r.params, r.macs, r.activation_bytes]
            )
        return buf.getvalue()

    def to_dict(self) -> dict:
        """Everything as plain Python types, ready for ``json.dumps``."""
        return {
            "model": self.model_name,
            "convention": self.convention,
            "input_shape": list(self.input_shape),
            "dtype": self.dtype,
            "total_params": self.total_params,
            "total_macs": self.total_macs,
            "param_bytes": self.param_bytes,
            "activation_bytes": self.activation_bytes,
            "uncounted": list(self.uncounted),
            "rows": [r.to_dict() for r in self.rows],
            "stages": None if self.stages is None else [s.to_dict() for s in self.stages],
        }


def _rows(ops: list[Op], conv, batch: int, itemsize: int):
    rows, uncounted = [], set()
    for op in ops:
        if op.inline and conv.name == "paper":
            continue  # the paper counts no inline op; keep its table to the layers
        n = conv.count(op)
        if n is None:
            uncounted.add(op.type)
            n = 0
        rows.append(
            Row(
                op.name,
                op.type,
                (batch, *op.out_shape[1:]),
                op.params,
                n,
                activation_bytes(op, batch, itemsize),
            )
        )
    return rows, uncounted


def summary(model: Module, input_shape, convention="paper", stages=False) -> Summary:
    """Profile ``model`` on an input of ``input_shape`` ((C, H, W) or (N, C, H, W), N = 1
    by default): one forward pass in eval mode on zeros of the model's dtype, with a
    hook on every module. The model's mode, BN statistics and caches are unchanged.

    Rows are the leaf layers (Conv2d, BatchNorm2d, activations, pools, Linear, ...) and,
    except under ``"paper"``, the inline ops of composite blocks (residual ``add``, SE
    and DFC ``mul``, Ghost ``concat``, DFC's ``avg_pool2d``/``sigmoid``/
    ``upsample_nearest2d``). ``convention`` is one of ``"paper"`` (conv + linear
    multiply-adds), ``"full"``, ``"fvcore"``, ``"ptflops"``, ``"thop"`` (see
    `ghostnp.profile.conventions`). ``stages=True`` adds per-stage subtotals.
    Counts are per image.
    """
    conv = get_convention(convention)
    batch, chw = normalize_input_shape(input_shape)
    dtype = model_dtype(model)
    shapes: dict = {}
    ops = trace(model, chw, shapes)
    rows, uncounted = _rows(ops, conv, batch, np.dtype(dtype).itemsize)
    parents = _stage_parents(model)
    return Summary(
        type(model).__name__,
        rows,
        model.num_parameters(),
        conv.name,
        (batch, *chw),
        np.dtype(dtype).name,
        stages=_group_stages(rows, parents, shapes) if stages else None,
        uncounted=uncounted,
        stage_parents=parents,
        module_shapes=shapes,
    )


# -- several conventions side by side --------------------------------------------------


class ConventionComparison:
    """Totals of one network under several conventions, broken down by kind of layer.

    totals        {convention: total count per image}
    by_category   {convention: {category: count}}, categories as in ``CATEGORIES``
    params        the model's parameter count
    notes         {convention: what it counts and where that rule comes from}
    """

    def __init__(self, model_name, input_shape, params, totals, by_category, notes):
        self.model_name = model_name
        self.input_shape = tuple(input_shape)
        self.params = params
        self.totals = totals
        self.by_category = by_category
        self.notes = notes

    @property
    def conventions(self):
        """The names of the compared conventions, in column order."""
        return list(self.totals)

    def _table_rows(self):
        cats = [c for c in CATEGORIES if any(self.by_category[k][c] for k in self.totals)]
        rows = [[c] + [fmt_int(self.by_category[k][c]) for k in self.totals] for c in cats]
        rows.append(["total"] + [fmt_int(v) for v in self.totals.values()])
        paper = self.totals.get("paper")
        if paper:
            rows.append(["vs paper"] + [f"{v / paper:.3f}x" for v in self.totals.values()])
        return rows

    def __str__(self) -> str:
        head = (
            f"{self.model_name}, input {fmt_shape(self.input_shape)}, {fmt_int(self.params)} params"
        )
        table = text_table(
            ["", *self.totals], self._table_rows(), align="l" + "r" * len(self.totals)
        )
        millions = ", ".join(f"{k} {v / 1e6:.1f}M" for k, v in self.totals.items())
        notes = "\n".join(f"- {k}: {self.notes[k]}" for k in self.totals)
        return f"{head}\n\n{table}\n\n{millions}\n\n{notes}"

    def to_markdown(self) -> str:
        """The comparison as a Markdown table, followed by each convention's rule."""
        table = markdown_table(
            ["", *self.totals], self._table_rows(), align="l" + "r" * len(self.totals)
        )
        notes = "\n".join(f"- **{k}**: {self.notes[k]}" for k in self.totals)
        return f"{table}\n\n{notes}\n"

    def to_dict(self) -> dict:
        """Everything as plain Python types, ready for ``json.dumps``."""
        return {
            "model": self.model_name,
            "input_shape": list(self.input_shape),
            "params": self.params,
            "totals": dict(self.totals),
            "by_category": {k: dict(v) for k, v in self.by_category.items()},
            "notes": dict(self.notes),
        }

    def __repr__(self) -> str:
        return f"ConventionComparison({self.model_name}, totals={self.totals})"


def compare_conventions(model: Module, input_shape, conventions=None) -> ConventionComparison:
    """Count ``model`` on ``input_shape`` under every convention (default: paper, full,
    fvcore, ptflops, thop) from a single traced forward pass. ``print()`` the result for
    a table by layer kind (conv, batch norm, activations, ...) with totals and the rule
    behind each column; the per-kind rows show why the tools disagree.
    """
    names = list(CONVENTIONS) if conventions is None else list(conventions)
    convs = [get_convention(n) for n in names]
    batch, chw = normalize_input_shape(input_shape)
    ops = trace(model, chw)
    totals, by_cat = {}, {}
    for c in convs:
        cats = dict.fromkeys(CATEGORIES, 0)
        for op in ops:
            cats[category(op)] += c.count(op) or 0
        by_cat[c.name] = cats
        totals[c.name] = sum(cats.values())
    return ConventionComparison(
        type(model).__name__,
        (batch, *chw),
        model.num_parameters(),
        totals,
        by_cat,
        {c.name: c.notes for c in convs},
    )
