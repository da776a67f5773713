"""Photos as model input: an image file read as a ``(1, C, size, size)`` batch.

    x = load_image("photo.jpg", size=224)             # (1, 3, 224, 224) float32 in [0, 1]
    x = (x - mean) / std                              # IMAGENET_MEAN / IMAGENET_STD, (3,)

Models trained on ImageNet (the reference GhostNet weights) expect their input
normalised per channel with ImageNet's mean and standard deviation, given here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .transforms import resize

__all__ = ["load_image", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def load_image(path, size: int = 224, channels: int = 3) -> np.ndarray:
    """Read an image file as a float32 batch of one, ``(1, channels, size, size)`` in [0, 1].

    Any file ``matplotlib.image.imread`` reads works (PNG natively; JPEG and others
    through Pillow). The largest centred square is cut out, averaged over blocks of
    ``f x f`` pixels when it is at least twice ``size`` (``f`` = side // size; this keeps
    fine detail from aliasing), then resized to ``size`` by bilinear interpolation
    (`ghostnp.data.transforms.resize`). ``channels=1`` converts to grey
    (0.299 R + 0.587 G + 0.114 B); ``channels=3`` repeats a grey image. Transparent
    pixels are blended onto white. A missing file raises FileNotFoundError, a file that
    is not an image ValueError, both naming the file.
    """
    from matplotlib import image as mpimg

    path = Path(path)
    if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1:
        raise ValueError(f"load_image: size must be an int >= 1, got {size!r}")
    if channels not in (1, 3):
        raise ValueError(f"load_image: channels must be 1 or 3, got {channels!r}")
    if not path.is_file():
        raise FileNotFoundError(f"no image file at {path}")
    try:
        a = np.asarray(mpimg.imread(path))
    except Exception as e:  # Pillow and the PNG reader raise several types
        raise ValueError(
            f"{path}: not an image that can be read ({type(e).__name__}: {e})"
        ) from None
    if a.dtype.kind in "ui":
        a = a.astype(np.float64) / np.iinfo(a.dtype).max
    elif a.dtype.kind == "f":
        a = a.astype(np.float64)
    else:
        raise ValueError(f"{path}: unsupported pixel type {a.dtype}")
    if a.ndim == 3 and a.shape[2] == 2:  # grey + alpha
        a = a[:, :, :1] * a[:, :, 1:] + (1.0 - a[:, :, 1:])
    if a.ndim == 3 and a.shape[2] == 4:  # RGBA: blend onto white
        a = a[:, :, :3] * a[:, :, 3:] + (1.0 - a[:, :, 3:])
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3 or a.shape[2] not in (1, 3) or min(a.shape[:2]) < 1:
        raise ValueError(f"{path}: expected a grey, RGB or RGBA image, got an array of {a.shape}")
    a = np.clip(np.nan_to_num(a), 0.0, 1.0)
    h, w = a.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    a = np.moveaxis(a[top : top + side, left : left + side], -1, 0)  # (C, side, side)
    f = side // size
    if f >= 2:
        s = (side // f) * f
        a = a[:, :s, :s].reshape(a.shape[0], s // f, f, s // f, f).mean(axis=(2, 4))
    if a.shape[1] != size:
        a = resize(a, size)
    if channels == 1 and a.shape[0] == 3:
        a = np.tensordot(np.array([0.299, 0.587, 0.114]), a, axes=1)[None]
    elif channels == 3 and a.shape[0] == 1:
        a = np.repeat(a, 3, axis=0)
    return np.clip(a, 0.0, 1.0).astype(np.float32)[None]
