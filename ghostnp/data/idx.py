"""MNIST and Fashion-MNIST from IDX files on disk (never downloaded).

IDX layout (big-endian): a 4-byte magic ``0x00 0x00 <type> <ndim>`` (type 0x08 =
uint8), then ``ndim`` uint32 dimension sizes, then the values in C order. Image files
have magic 2051 (``0x00000803``: uint8, 3 dims N x rows x cols), label files 2049
(``0x00000801``: uint8, 1 dim N). Files may be gzipped (``<name>.gz``).

Expected layout of ``root`` (the files as distributed, raw or ``.gz``):

    root/train-images-idx3-ubyte   root/train-labels-idx1-ubyte
    root/t10k-images-idx3-ubyte    root/t10k-labels-idx1-ubyte

torchvision's layout ``root/MNIST/raw/...`` (``root/FashionMNIST/raw/...``) is found too.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

__all__ = ["read_idx", "load_mnist", "load_fashion_mnist", "IDX_IMAGES_MAGIC", "IDX_LABELS_MAGIC"]

IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049


def _read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped when its name ends in ``.gz``."""
    raw = path.read_bytes()
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise ValueError(f"{path} is not a valid gzip file ({e})") from e


def read_idx(path, expected_magic: int) -> np.ndarray:
    """The uint8 array stored in IDX file ``path`` (raw or ``.gz``), shape from its header.

    The magic number must equal ``expected_magic`` (2051 images, 2049 labels), and the
    data must hold exactly the product of the header's dimensions in bytes.
    """
    path = Path(path)
    buf = _read_bytes(path)
    if len(buf) < 4:
        raise ValueError(f"{path} is too short for an IDX header ({len(buf)} bytes)")
    magic = int.from_bytes(buf[:4], "big")
    if magic != expected_magic:
        raise ValueError(f"expected IDX magic {expected_magic} in {path}, got {magic}")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(buf) < header:
        raise ValueError(
            f"{path} is truncated: its header needs {header} bytes for {ndim} dimensions, "
            f"the file has {len(buf)}"
        )
    dims = tuple(int(d) for d in np.frombuffer(buf, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(dims, dtype=np.int64))
    got = len(buf) - header
    if got != expected:
        what = "truncated" if got < expected else "longer than its header says"
        raise ValueError(
            f"{path} is {what}: header dimensions {dims} need {expected} data bytes, "
            f"the file has {got}"
        )
    return np.frombuffer(buf, dtype=np.uint8, offset=header).reshape(dims)


def _find(directory: Path, name: str) -> Path | None:
    for candidate in (directory / name, directory / (name + ".gz")):
        if candidate.is_file():
            return candidate
    return None


def _load_idx_pair(root, train: bool, what: str, torchvision_dir: str):
    """``(images float32 (N, 1, rows, cols) in [0, 1], labels int64 (N,))`` from ``root``."""
    if root is None:
        raise ValueError(f"{what}: root must be the folder holding the IDX files")
    root = Path(root)
    prefix = "train" if train else "t10k"
    image_name = f"{prefix}-images-idx3-ubyte"
    label_name = f"{prefix}-labels-idx1-ubyte"
    layout = (
        f"expected {root}/{image_name}[.gz] and {root}/{label_name}[.gz] "
        f"(or the same under {root}/{torchvision_dir}/raw)"
    )
    if not root.is_dir():
        raise FileNotFoundError(f"{what}: {root} is not a folder; {layout}")
    for directory in (root, root / torchvision_dir / "raw"):
        image_path = _find(directory, image_name)
        if image_path is not None:
            break
    else:
        raise FileNotFoundError(f"{what}: no {image_name}[.gz] in {root}; {layout}")
    label_path = _find(image_path.parent, label_name)
    if label_path is None:
        raise FileNotFoundError(f"{what}: no {label_name}[.gz] beside {image_path}; {layout}")
    images = read_idx(image_path, IDX_IMAGES_MAGIC)
    labels = read_idx(label_path, IDX_LABELS_MAGIC)
    if len(images) != len(labels):
        raise ValueError(
            f"{what}: {image_path} holds {len(images)} images but {label_path} holds "
            f"{len(labels)} labels; the counts must match"
        )
    if labels.size and labels.max() > 9:
        raise ValueError(f"{what}: {label_path} has label {int(labels.max())}; labels must be 0..9")
    x = images[:, None].astype(np.float32) / np.float32(255.0)
    return x, labels.astype(np.int64)


def load_mnist(root, train: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """MNIST's train (60,000) or test (10,000) set from the IDX files in ``root``.

    Returns ``(images float32 (N, 1, 28, 28) in [0, 1] (pixel / 255), labels int64 (N,))``.
    Missing files raise FileNotFoundError, malformed ones ValueError, naming the file.
    """
    return _load_idx_pair(root, train, "load_mnist", "MNIST")


def load_fashion_mnist(root, train: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Fashion-MNIST's train (60,000) or test (10,000) set from the IDX files in ``root``.

    Same file names, format and result as `load_mnist`:
    ``(images float32 (N, 1, 28, 28) in [0, 1], labels int64 (N,))``.
    """
    return _load_idx_pair(root, train, "load_fashion_mnist", "FashionMNIST")
