"""get_dataset: one entry point for every data set, by name."""

from __future__ import annotations

import numpy as np

from .cifar import load_cifar10
from .digits import load_digits
from .idx import load_fashion_mnist, load_mnist
from .transforms import resize

__all__ = ["get_dataset", "dataset_name", "DATASETS"]

DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10")
_CHUNK = 4096  # images resized at a time, to bound the temporary memory


def _resize_all(images: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize ``(N, C, H, W) -> (N, C, size, size)`` float32, in chunks."""
    if images.shape[-2:] == (size, size):
        return images
    out = np.empty((*images.shape[:2], size, size), dtype=np.float32)
    for i in range(0, len(images), _CHUNK):
        out[i : i + _CHUNK] = resize(images[i : i + _CHUNK], size)
    return out


def dataset_name(name: str) -> str | None:
    """The registry name of a data set, or None if there is none: case, "_" for "-",
    "cifar-10" and "fashionmnist" are accepted ("CIFAR-10" -> "cifar10")."""
    key = name.strip().lower().replace("_", "-")
    key = {"cifar-10": "cifar10", "fashionmnist": "fashion-mnist"}.get(key, key)
    return key if key in DATASETS else None


def get_dataset(
    name: str, root=None, train: bool = True, size: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(images float32 (N, C, H, W) in [0, 1], labels int64 (N,))`` of data set ``name``.

    ``name`` is one of "digits" (built in, ``root`` unused), "mnist", "fashion-mnist"
    or "cifar10" (read from files under ``root``; see `load_mnist` and
    `load_cifar10` for the layouts). Case, "_" for "-" and "cifar-10" are accepted.
    ``train`` picks the train or the test split.

    ``size`` sets H = W. For "digits" it is passed to `load_digits` (default 32:
    the digit upscaled to 24x24 and centred). For the others None keeps the native
    size (28 or 32) and an int resizes every image bilinearly
    (``align_corners=False``) to ``size x size``.

    Wrap the result as ``ArrayDataset(*get_dataset(...))`` to feed a DataLoader.
    """
    if not isinstance(name, str):
        raise TypeError(f"get_dataset: name must be a string, got {name!r}")
    key = dataset_name(name)
    if key is None:
        raise ValueError(
            f"get_dataset: unknown data set {name!r}; choose one of {', '.join(DATASETS)}"
        )
    if size is not None and (
        not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1
    ):
        raise ValueError(f"get_dataset: size must be None or a positive int, got {size!r}")
    if key == "digits":
        return load_digits("train" if train else "test", size=32 if size is None else size)
    loader = {"mnist": load_mnist, "fashion-mnist": load_fashion_mnist, "cifar10": load_cifar10}
    images, labels = loader[key](root, train=train)
    if size is not None:
        images = _resize_all(images, int(size))
    return images, labels
