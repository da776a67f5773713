"""DataLoader: mini-batches ``(x (B, C, H, W) float32, y (B,) int64)`` from a data set."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .dataset import ArrayDataset

__all__ = ["DataLoader"]


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


class DataLoader:
    """Iterate over ``dataset`` in batches of ``batch_size`` samples.

    Each iteration is one epoch and yields ``(x, y)``: ``x`` a C-contiguous float32
    array ``(B, C, H, W)`` and ``y`` an int64 array ``(B,)``. Every sample appears exactly
    once per epoch; ``B = batch_size`` except for a smaller last batch, which is dropped
    when ``drop_last`` is true. ``len(loader)`` is the number of batches per epoch:
    ``ceil(N / batch_size)``, or ``floor(N / batch_size)`` with ``drop_last``.

    With ``shuffle=True`` the order of epoch ``e`` is the permutation drawn by
    ``np.random.default_rng([seed, e])``: it depends only on ``seed`` and ``e``, so two
    loaders with the same seed give the same batches, and each epoch a new order.
    The epoch counter starts at 0 and advances at the start of every iteration;
    ``set_epoch(e)`` chooses the epoch the next iteration uses (for resuming).
    ``seed=None`` draws a seed from fresh entropy once, at construction (``loader.seed``).

    An `ArrayDataset` without a transform is batched by fancy indexing of its
    arrays; any other data set is read sample by sample and the images are stacked,
    which requires all of them to have the same shape.
    """

    def __init__(
        self,
        dataset,
        batch_size: int = 64,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int | None = None,
    ):
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise TypeError(
                f"DataLoader: dataset must define __len__ and __getitem__, got {type(dataset)}"
            )
        if not _is_int(batch_size):
            raise TypeError(f"DataLoader: batch_size must be an int, got {batch_size!r}")
        if batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be at least 1, got {batch_size}")
        if seed is not None and not (_is_int(seed) and seed >= 0):
            raise ValueError(f"DataLoader: seed must be None or a non-negative int, got {seed!r}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.seed = int(seed) if seed is not None else int(np.random.SeedSequence().entropy)
        self.epoch = 0

    def __len__(self) -> int:
        n = len(self.dataset)
        if self.drop_last:
            return n // self.batch_size
        return -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration epoch ``epoch`` (its shuffle order, then counting on)."""
        if not _is_int(epoch) or epoch < 0:
            raise ValueError(f"DataLoader: epoch must be a non-negative int, got {epoch!r}")
        self.epoch = int(epoch)

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """The order ``(N,)`` in which epoch ``epoch`` visits the samples (before batching)."""
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, int(epoch)]).permutation(n)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        order = self.epoch_indices(self.epoch)
        self.epoch += 1
        return self._batches(order)

    def _batches(self, order: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        ds = self.dataset
        fast = (
            isinstance(ds, ArrayDataset)
            and ds.transform is None
            and type(ds).__getitem__ is ArrayDataset.__getitem__
        )
        b = self.batch_size
        for k in range(len(self)):
            idx = order[k * b : (k + 1) * b]
            if fast:
                yield ds.images[idx], ds.labels[idx]
            else:
                yield self._collate(idx)

    def _collate(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Read samples ``idx`` one by one and stack them into ``(x, y)``."""
        images, labels = [], []
        for i in idx:
            image, label = self.dataset[int(i)]
            image = np.asarray(image)
            if image.ndim != 3:
                raise ValueError(
                    f"DataLoader: sample {int(i)} has an image of shape {image.shape}, "
                    "expected (C, H, W)"
                )
            if images and image.shape != images[0].shape:
                raise ValueError(
                    f"DataLoader: sample {int(i)} has an image of shape {image.shape} but "
                    f"sample {int(idx[0])} has {images[0].shape}; a batch needs one shape"
                )
            images.append(image)
            labels.append(int(label))
        x = np.ascontiguousarray(np.stack(images), dtype=np.float32)
        return x, np.asarray(labels, dtype=np.int64)

    def __repr__(self) -> str:
        return (
            f"DataLoader(n={len(self.dataset)}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, drop_last={self.drop_last}, seed={self.seed})"
        )
