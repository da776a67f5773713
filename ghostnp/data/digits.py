"""The built-in digits: UCI optdigits, 1,797 handwritten digits of 8x8 pixels, 10 classes.

The data ship inside the package as ``ghostnp/data_files/digits.npz`` (CC BY 4.0; see
``DIGITS_LICENSE.txt`` beside it): ``images`` uint8 ``(1797, 8, 8)`` with values 0..16,
``labels`` uint8 ``(1797,)`` and ``split`` uint8 ``(1797,)`` (0 train, 1 test). The split
is fixed and stratified: 20% of each class, rounded, is test, chosen by a seeded
permutation when the file was written, so it is the same on every machine and version.

=====  ======  ===================================================
split  images  per class
=====  ======  ===================================================
train  1438    142 146 142 146 145 146 145 143 139 144  (digits 0..9)
test   359     36  36  35  37  36  36  36  36  35  36
all    1797    178 182 177 183 181 182 181 179 174 180
=====  ======  ===================================================
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np

from .dataset import ArrayDataset
from .transforms import resize

__all__ = ["load_digits", "DigitsDataset", "DIGITS_COUNTS"]

DIGITS_COUNTS = {"train": 1438, "test": 359, "all": 1797}
_RESOURCE = "data_files/digits.npz"


@functools.lru_cache(maxsize=1)
def _read_file() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(images uint8 (1797, 8, 8), labels uint8 (1797,), split uint8 (1797,))``, read-only."""
    ref = resources.files("ghostnp").joinpath(_RESOURCE)
    if not ref.is_file():
        raise FileNotFoundError(
            f"the built-in digits file ghostnp/{_RESOURCE} is missing; the package was "
            "installed without its data files (reinstall ghostnp)"
        )
    with ref.open("rb") as f, np.load(f, allow_pickle=False) as z:
        missing = {"images", "labels", "split"} - set(z.files)
        if missing:
            raise ValueError(f"ghostnp/{_RESOURCE} lacks the arrays {sorted(missing)}")
        images, labels, split = z["images"], z["labels"], z["split"]
    n = DIGITS_COUNTS["all"]
    if images.shape != (n, 8, 8) or labels.shape != (n,) or split.shape != (n,):
        raise ValueError(
            f"ghostnp/{_RESOURCE} has images {images.shape}, labels {labels.shape}, split "
            f"{split.shape}; expected ({n}, 8, 8), ({n},), ({n},)"
        )
    for a in (images, labels, split):
        a.flags.writeable = False
    return images, labels, split


def _upscale(raw: np.ndarray, size: int) -> np.ndarray:
    """8x8 pixels 0..16 ``(N, 8, 8)`` -> float32 ``(N, 1, size, size)`` in [0, 1], centred."""
    x = raw.astype(np.float32) / 16.0
    inner = max(8, (3 * size) // 4)
    if inner != 8:
        x = resize(x, inner, align_corners=False)
    top = (size - inner) // 2
    out = np.zeros((len(raw), 1, size, size), dtype=np.float32)
    out[:, 0, top : top + inner, top : top + inner] = np.clip(x, 0.0, 1.0)
    return out


def load_digits(split: str = "train", size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """The digits of ``split`` ("train", "test" or "all") as ``(images, labels)``.

    ``images`` is float32 ``(N, 1, size, size)`` with values in [0, 1] (pixel / 16);
    ``labels`` is int64 ``(N,)`` with values 0..9, N = 1438 (train), 359 (test) or
    1797 (all), in file order.

    Each 8x8 digit is upscaled by bilinear interpolation (``align_corners=False``,
    `ghostnp.data.transforms.resize`) to ``inner = max(8, 3 * size // 4)``
    pixels square and placed at the centre of a black ``size x size`` canvas, leaving
    a margin as MNIST does (the original digits fill their 8x8 box): ``size=32`` gives
    a 24x24 digit with 4 black pixels on every side; ``size=8`` gives the raw digit.
    ``size`` must be an int >= 8.
    """
    if split not in DIGITS_COUNTS:
        raise ValueError(f"load_digits: split must be 'train', 'test' or 'all', got {split!r}")
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool):
        raise TypeError(f"load_digits: size must be an int, got {size!r}")
    if size < 8:
        raise ValueError(f"load_digits: size must be at least 8, got {size}")
    images, labels, part = _read_file()
    if split == "all":
        keep = np.ones(len(labels), dtype=bool)
    else:
        keep = part == (1 if split == "test" else 0)
    return _upscale(images[keep], int(size)), labels[keep].astype(np.int64)


class DigitsDataset(ArrayDataset):
    """The train (``train=True``) or test digits as an `ArrayDataset`.

    Samples are ``(float32 (1, size, size), int label)`` as made by `load_digits`;
    ``transform`` is applied to each image as it is read.
    """

    def __init__(self, train: bool = True, size: int = 32, transform=None):
        images, labels = load_digits("train" if train else "test", size=size)
        super().__init__(images, labels, transform=transform)
        self.train = bool(train)
