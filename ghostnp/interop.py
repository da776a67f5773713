"""Weight interchange with PyTorch: state dicts in .pth/.pt (torch) or .npz (NumPy).

ghostnp's state-dict keys and shapes are those of the reference PyTorch code, so

    export_state_dict(model, "ghostnet.pth")                 # needs torch
    torch_model.load_state_dict(torch.load("ghostnet.pth", weights_only=True))

takes a model trained here to PyTorch, and ``load_torch_weights(model, path)`` brings a
PyTorch checkpoint back. Torch files are read with ``weights_only=True`` (no code runs);
.npz files with ``allow_pickle=False``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["load_torch_weights", "export_state_dict", "read_state_dict", "to_numpy_state_dict"]


def _require_torch(what):
    try:
        import torch
    except ImportError:
        raise ImportError(
            f"{what} needs PyTorch, which is not installed; install it with "
            "`pip install ghostnp[torch]`, or use an .npz file instead"
        ) from None
    return torch


def to_numpy_state_dict(sd) -> dict:
    """Convert a torch state dict (tensors) to name -> ndarray, unwrapping {'state_dict': ...}."""
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    if not isinstance(sd, dict):
        raise ValueError(
            f"expected a state dict (a mapping of names to arrays), got {type(sd).__name__}"
        )
    out = {}
    for k, v in sd.items():
        if hasattr(v, "detach"):
            v = v.detach().cpu().numpy()
        out[k.removeprefix("module.")] = np.asarray(v)
    return out


def read_state_dict(path) -> dict:
    """Read name -> ndarray from a .npz, .pth or .pt file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as z:
                return {k: z[k] for k in z.files}
        except (ValueError, OSError) as e:
            raise ValueError(f"{path}: not a readable .npz state dict ({e})") from None
    if path.suffix in (".pth", ".pt", ".bin"):
        torch = _require_torch(f"reading {path.name}")
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # torch raises several types for corrupt or unsafe files
            raise ValueError(f"{path}: could not be read as a torch state dict ({e})") from None
        return to_numpy_state_dict(sd)
    raise ValueError(f"{path}: expected a .npz, .pth or .pt file, got {path.suffix!r}")


def load_torch_weights(model, path, strict=True):
    """Load weights from ``path`` (.pth/.pt via torch, or .npz) into ``model``; returns it."""
    return model.load_state_dict(read_state_dict(path), strict=strict)


def _atomic_write(path: Path, write):
    """Write through a temporary file in the same folder, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def export_state_dict(model, path):
    """Save ``model.state_dict()`` to .npz, or to .pth/.pt as torch tensors (needs torch)."""
    path = Path(path)
    sd = model.state_dict()
    if path.suffix == ".npz":

        def write(tmp):
            with open(tmp, "wb") as f:
                np.savez(f, **sd)

    elif path.suffix in (".pth", ".pt"):
        torch = _require_torch(f"writing {path.name}")

        def write(tmp):
            # np.array keeps 0-d entries (num_batches_tracked) 0-d; ascontiguousarray would not
            torch.save({k: torch.from_numpy(np.array(v, order="C")) for k, v in sd.items()}, tmp)

    else:
        raise ValueError(f"{path}: expected a .npz, .pth or .pt file name, got {path.suffix!r}")
    _atomic_write(path, write)
    return path
