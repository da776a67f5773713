"""Data: the built-in digits, MNIST / Fashion-MNIST / CIFAR-10 readers, transforms, loader,
and photos read as model input (``load_image``).

    from ghostnp.data import DataLoader, DigitsDataset, RandomCrop

    train = DigitsDataset(train=True, size=32, transform=RandomCrop(32, padding=2, rng=0))
    for x, y in DataLoader(train, batch_size=64, shuffle=True, seed=0):
        ...   # x float32 (64, 1, 32, 32), y int64 (64,)

Images are float32 ``(C, H, W)`` in [0, 1] (batches ``(N, C, H, W)``), labels int64.
Nothing is ever downloaded: the digits ship with the package, the others are read from
files already on disk.
"""

from __future__ import annotations

from .cifar import CIFAR10_CLASSES, load_cifar10, read_cifar_batch
from .dataset import ArrayDataset, Dataset
from .digits import DIGITS_COUNTS, DigitsDataset, load_digits
from .idx import load_fashion_mnist, load_mnist, read_idx
from .image import IMAGENET_MEAN, IMAGENET_STD, load_image
from .loader import DataLoader
from .registry import DATASETS, dataset_name, get_dataset
from .transforms import (
    Compose,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    RandomShift,
    Resize,
    resize,
)

__all__ = [
    "Dataset",
    "ArrayDataset",
    "DataLoader",
    "load_digits",
    "DigitsDataset",
    "DIGITS_COUNTS",
    "load_mnist",
    "load_fashion_mnist",
    "read_idx",
    "load_cifar10",
    "read_cifar_batch",
    "CIFAR10_CLASSES",
    "load_image",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "get_dataset",
    "dataset_name",
    "DATASETS",
    "Compose",
    "Normalize",
    "RandomCrop",
    "RandomHorizontalFlip",
    "RandomShift",
    "Resize",
    "resize",
]
