"""The Dataset protocol and ArrayDataset, a data set held in two arrays.

A data set is anything with ``len(ds)`` and ``ds[i] -> (image, label)``, where ``image``
is a float32 array of shape ``(C, H, W)`` and ``label`` an int.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["Dataset", "ArrayDataset"]


@runtime_checkable
class Dataset(Protocol):
    """``len(ds)`` samples; ``ds[i]`` is ``(image float32 (C, H, W), int label)``."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]: ...


class ArrayDataset:
    """Samples ``(images[i], labels[i])`` of an image array ``(N, C, H, W)`` and labels ``(N,)``.

    ``images`` are stored as float32 (converted once, here) and ``labels`` as int64.
    ``transform``, if given, is applied to each image as it is read: ``ds[i]`` is
    ``(transform(images[i]), int(labels[i]))``. The stored arrays are exposed read-only as
    ``ds.images`` and ``ds.labels``; the image returned without a transform is a
    read-only view of ``ds.images``.
    """

    def __init__(self, images, labels, transform: Callable | None = None):
        images = np.asarray(images)
        labels = np.asarray(labels)
        if images.ndim != 4:
            hint = " (add a channel axis: images[:, None])" if images.ndim == 3 else ""
            raise ValueError(
                f"ArrayDataset: images must have shape (N, C, H, W), got {images.shape}{hint}"
            )
        if labels.ndim != 1:
            raise ValueError(f"ArrayDataset: labels must have shape (N,), got {labels.shape}")
        if len(images) != len(labels):
            raise ValueError(
                f"ArrayDataset: {len(images)} images but {len(labels)} labels; counts must match"
            )
        if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == np.bool_):
            raise TypeError(f"ArrayDataset: labels must be integers, got dtype {labels.dtype}")
        if not (np.issubdtype(images.dtype, np.number) or images.dtype == np.bool_):
            raise TypeError(f"ArrayDataset: images must be numeric, got dtype {images.dtype}")
        if transform is not None and not callable(transform):
            raise TypeError(f"ArrayDataset: transform must be callable, got {transform!r}")
        self.images = np.ascontiguousarray(images, dtype=np.float32).view()
        self.images.flags.writeable = False
        self.labels = np.ascontiguousarray(labels, dtype=np.int64).view()
        self.labels.flags.writeable = False
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index) -> tuple[np.ndarray, int]:
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
            raise TypeError(f"ArrayDataset: index must be an int, got {index!r}")
        n = len(self.labels)
        if not -n <= index < n:
            raise IndexError(f"ArrayDataset: index {index} out of range for {n} samples")
        image = self.images[index]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])

    def __repr__(self) -> str:
        shape = tuple(self.images.shape[1:])
        return f"{type(self).__name__}(n={len(self)}, image_shape={shape})"
