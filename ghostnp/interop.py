"""Weight interchange with PyTorch: state dicts in .pth/.pt (torch) or .npz (NumPy).

ghostnp's state-dict keys and shapes are those of the reference PyTorch code, so

    export_state_dict(model, "ghostnet.pth")                 # needs torch
    torch_model.load_state_dict(torch.load("ghostnet.pth", weights_only=True))

takes a model trained here to PyTorch, and ``load_torch_weights(model, path)`` brings a
PyTorch checkpoint back. Torch files are read with ``weights_only=True`` (no code runs);
.npz files with ``allow_pickle=False``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from .errors import WeightsFileError
from .files import atomic_write

__all__ = [
    "load_torch_weights",
    "export_state_dict",
    "read_state_dict",
    "read_npz",
    "to_numpy_state_dict",
]


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


def _unreadable_npz(path: Path, e: Exception) -> str:
    """Why NumPy could not read ``path`` as an .npz, in words that advise nothing unsafe."""
    text = str(e)
    if isinstance(e, ValueError) and "pickled" in text:
        return f"{path}: not an .npz file (neither a zip archive of arrays nor an .npy array)"
    if isinstance(e, ValueError) and "Object arrays" in text:
        return (
            f"{path}: holds object arrays (pickled Python objects); ghostnp reads only "
            "numeric arrays, so nothing in the file can run code"
        )
    first = text.splitlines()[0] if text else type(e).__name__
    return f"{path}: not a readable .npz file, truncated or corrupt ({type(e).__name__}: {first})"


def read_npz(path, error=WeightsFileError) -> dict[str, np.ndarray]:
    """Every array of the .npz file ``path``, read eagerly with ``allow_pickle=False``.

    A missing file raises FileNotFoundError; a file that is not a complete .npz of
    numeric arrays (truncated, random bytes, a pickle, object arrays, a single .npy)
    raises ``error`` (a ValueError subclass) with a one-line reason.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path}")
    try:
        z = np.load(path, allow_pickle=False)
    except Exception as e:  # NumPy and zipfile raise many types for a bad file
        raise error(_unreadable_npz(path, e)) from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise error(f"{path}: holds a single .npy array, not an .npz archive of named arrays")
    try:
        with z:
            return {k: z[k] for k in z.files}
    except Exception as e:  # a member cut short, a bad CRC, a pickled member
        raise error(_unreadable_npz(path, e)) from None


def _read_torch_file(path: Path) -> dict:
    """``torch.load(path, weights_only=True)``; its errors rewritten, without torch's advice
    to load unsafely."""
    torch = _require_torch(f"reading {path.name}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt or unsafe files
        if "Weights only load failed" in str(e):
            why = (
                "holds pickled Python objects besides tensors; ghostnp loads tensors only, "
                "so that no code in a file can run"
            )
        else:
            why = "is not a readable PyTorch file (truncated, corrupt, or another format)"
        raise WeightsFileError(f"{path}: {why}") from None
    try:
        return to_numpy_state_dict(sd)
    except ValueError as e:
        raise WeightsFileError(f"{path}: {e}") from None


def read_state_dict(path) -> dict:
    """Read name -> ndarray from a .npz, .pth or .pt file.

    Torch files are read with ``weights_only=True`` and .npz files with
    ``allow_pickle=False``. A missing file raises FileNotFoundError; any file that
    cannot be read raises WeightsFileError (a ValueError) with a one-line reason.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no weights file at {path}")
    if path.suffix == ".npz":
        return read_npz(path)
    if path.suffix in (".pth", ".pt", ".bin"):
        return _read_torch_file(path)
    raise WeightsFileError(f"{path}: expected a .npz, .pth or .pt file, got {path.suffix!r}")


def load_torch_weights(model, path, strict=True):
    """Load weights from ``path`` (.pth/.pt via torch, or .npz) into ``model``; returns it.

    Errors: FileNotFoundError, WeightsFileError (unreadable file) or StateDictError
    (weights that do not fit ``model``, which is then left unchanged).
    """
    return model.load_state_dict(read_state_dict(path), strict=strict)


def export_state_dict(model, path):
    """Save ``model.state_dict()`` to .npz, or to .pth/.pt as torch tensors (needs torch);
    returns the path. The file is written whole or not at all (`ghostnp.files.atomic_write`)."""
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
    return atomic_write(path, write)
