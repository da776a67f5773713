"""How much memory a training step needs: parameters, their gradients, and the
activations that backward keeps.

This is an *estimate*, built from the shapes of one traced forward pass:

* parameter bytes = number of parameters x itemsize; training keeps a gradient of the
  same size (and an optimizer may keep more, e.g. a momentum buffer: not counted);
* activation bytes = the sum, over every operation, of the bytes of its output for the
  whole batch. Each output is kept until backward, either by the layer that made it or
  by the next one, which needs it as its input. Outputs that are views of their input
  (Flatten, Identity) add nothing. The Ghost module's concat buffer (m * ratio channels,
  before the first oup are kept) is counted; placeholders that compute nothing are not.

What backward really keeps differs in detail (a conv keeps its input, ReLU a mask,
and BN its normalised input), but it is of the size of these outputs, which is why
activation memory, not parameter memory, sets the batch size you can train with.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..nn.module import Module
from .format import fmt_bytes, fmt_int, fmt_shape, text_table
from .trace import Op, model_dtype, normalize_input_shape, trace

__all__ = ["MemoryRow", "MemoryReport", "memory", "activation_bytes"]


def activation_bytes(op: Op, batch: int, itemsize: int) -> int:
    """Bytes of ``op``'s output for a batch of ``batch`` images (0 for a view)."""
    if op.is_view:
        return 0
    return int(np.prod(op.out_shape[1:], dtype=np.int64)) * batch * itemsize


@dataclass(frozen=True)
class MemoryRow:
    """One traced operation: its path, type, output shape at the batch size, and the bytes
    of activations it keeps for the backward pass."""

    name: str
    type: str
    output_shape: tuple
    bytes: int


@dataclass(frozen=True)
class MemoryReport:
    """Memory estimate for one training step (see the module docstring).

    ``input_shape`` is (N, C, H, W); every byte count is for that whole batch.
    ``training_bytes`` = params + grads + input + activations.
    """

    input_shape: tuple
    dtype: str
    rows: tuple
    param_bytes: int
    grad_bytes: int
    input_bytes: int
    activation_bytes: int

    @property
    def training_bytes(self) -> int:
        """Parameters, their gradients, the input and the kept activations, in bytes."""
        return self.param_bytes + self.grad_bytes + self.input_bytes + self.activation_bytes

    def to_dict(self) -> dict:
        """Everything as plain Python types, ready for ``json.dumps``."""
        return {
            "input_shape": list(self.input_shape),
            "dtype": self.dtype,
            "param_bytes": self.param_bytes,
            "grad_bytes": self.grad_bytes,
            "input_bytes": self.input_bytes,
            "activation_bytes": self.activation_bytes,
            "training_bytes": self.training_bytes,
            "rows": [
                {
                    "name": r.name,
                    "type": r.type,
                    "output_shape": list(r.output_shape),
                    "bytes": r.bytes,
                }
                for r in self.rows
            ],
        }

    def __str__(self) -> str:
        body = text_table(
            ["Layer", "Type", "Output shape", "Bytes"],
            [[r.name, r.type, fmt_shape(r.output_shape), fmt_int(r.bytes)] for r in self.rows],
            align="lllr",
        )
        lines = [
            body,
            f"input {fmt_shape(self.input_shape)}, {self.dtype}",
            f"parameters  {fmt_bytes(self.param_bytes):>12}",
            f"gradients   {fmt_bytes(self.grad_bytes):>12}",
            f"input       {fmt_bytes(self.input_bytes):>12}",
            f"activations {fmt_bytes(self.activation_bytes):>12}   (kept for backward, estimate)",
            f"total       {fmt_bytes(self.training_bytes):>12}",
        ]
        return "\n".join(lines)


def build_report(model: Module, ops, batch: int, chw: tuple, dtype) -> MemoryReport:
    """The memory estimate of ``model`` from its traced ops, for a batch of ``batch``
    inputs of shape ``chw`` in ``dtype``."""
    itemsize = np.dtype(dtype).itemsize
    rows = tuple(
        MemoryRow(
            op.name, op.type, (batch, *op.out_shape[1:]), activation_bytes(op, batch, itemsize)
        )
        for op in ops
    )
    n_params = model.num_parameters()
    return MemoryReport(
        input_shape=(batch, *chw),
        dtype=np.dtype(dtype).name,
        rows=rows,
        param_bytes=n_params * itemsize,
        grad_bytes=n_params * itemsize,
        input_bytes=int(np.prod(chw)) * batch * itemsize,
        activation_bytes=sum(r.bytes for r in rows),
    )


def memory(model: Module, input_shape, dtype=None) -> MemoryReport:
    """Estimate the memory of one training step of ``model`` on a batch of ``input_shape``
    ((C, H, W) or (N, C, H, W)): parameter, gradient, input and activation bytes, with
    the activation bytes of every operation. ``dtype`` defaults to the model's dtype;
    another dtype rescales the estimate without casting the model.
    """
    batch, chw = normalize_input_shape(input_shape)
    dtype = model_dtype(model) if dtype is None else np.dtype(dtype)
    return build_report(model, trace(model, chw), batch, chw, dtype)
