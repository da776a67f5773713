"""Image transforms on one ``(C, H, W)`` float array, a batch augmentation, and a bilinear
resize in pure NumPy.

Every transform is a callable ``t(x, rng=None) -> y``. The random ones (``RandomCrop``,
``RandomHorizontalFlip``) draw from their own ``numpy.random.Generator``, made from the
``rng`` given at construction (an int seed, a Generator, or None for fresh entropy), so
a seeded transform gives the same sequence of augmentations on every run. Passing
``rng=`` to a call uses that generator for that call instead. ``Compose`` hands its
``rng`` on to each transform.

Transforms never write into their input; a transform that leaves the image unchanged
(a flip that was not drawn, a crop of the full size) may return the input itself.

``RandomShift`` works on a whole batch ``(N, C, H, W)`` at once, as the training loop
calls it (``fit(..., augment=RandomShift(2))``): ``shift(x, rng)`` with the generator the
loop seeds for each step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "resize",
    "Compose",
    "Normalize",
    "RandomCrop",
    "RandomHorizontalFlip",
    "Resize",
    "RandomShift",
]


def _size_pair(size, what: str) -> tuple[int, int]:
    """``size`` as ``(h, w)``: an int means a square; both must be positive."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        h = w = int(size)
    elif (
        isinstance(size, (tuple, list))
        and len(size) == 2
        and all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in size)
    ):
        h, w = int(size[0]), int(size[1])
    else:
        raise TypeError(f"{what}: size must be an int or a pair of ints, got {size!r}")
    if h < 1 or w < 1:
        raise ValueError(f"{what}: size must be positive, got {size!r}")
    return h, w


def _as_generator(rng) -> np.random.Generator:
    """A Generator from an int seed, a SeedSequence, a Generator, or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer, np.random.SeedSequence)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be None, an int seed or a numpy Generator, got {rng!r}")


def _check_chw(x, what: str) -> np.ndarray:
    """The image as an ndarray, which must have shape (C, H, W)."""
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"{what}: expected one image of shape (C, H, W), got shape {x.shape}")
    return x


def _linear_weights(n_in: int, n_out: int, align_corners: bool) -> np.ndarray:
    """The (n_out, n_in) matrix of 1-D linear interpolation; each row sums to 1."""
    dst = np.arange(n_out, dtype=np.float64)
    if align_corners:
        src = dst * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(n_out)
    else:
        src = np.maximum((dst + 0.5) * (n_in / n_out) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.intp), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    lam = src - i0
    w = np.zeros((n_out, n_in), dtype=np.float64)
    rows = np.arange(n_out)
    np.add.at(w, (rows, i0), 1.0 - lam)
    np.add.at(w, (rows, i1), lam)
    return w


def resize(x, size, align_corners: bool = False) -> np.ndarray:
    """Bilinear resize of the last two axes: ``(..., H, W) -> (..., h, w)``.

    ``size`` is an int (square) or ``(h, w)``. Any leading axes are carried along, so one
    image ``(C, H, W)`` and a batch ``(N, C, H, W)`` both work. The result is float32,
    or float64 when ``x`` is float64.

    Sample positions follow PyTorch's ``F.interpolate(mode="bilinear")``:

    * ``align_corners=False`` (default): pixels are unit squares and their centres are
      matched, output pixel ``i`` samples input coordinate ``(i + 0.5) * H / h - 0.5``,
      clamped to ``[0, H - 1]`` (the border pixels are repeated outside the image);
    * ``align_corners=True``: the centres of the corner pixels coincide, output pixel
      ``i`` samples ``i * (H - 1) / (h - 1)``.

    Interpolation is separable, ``y = A_h @ x @ A_w.T`` with fixed weight matrices whose
    rows sum to 1, so a constant image stays constant.
    """
    x = np.asarray(x)
    if x.ndim < 2:
        raise ValueError(f"resize: expected an array of shape (..., H, W), got shape {x.shape}")
    h, w = _size_pair(size, "resize")
    H, W = x.shape[-2:]
    if H < 1 or W < 1:
        raise ValueError(f"resize: cannot resize an empty image of shape {x.shape}")
    dtype = np.float64 if x.dtype == np.float64 else np.float32
    a_h = _linear_weights(H, h, align_corners).astype(dtype)
    a_w = _linear_weights(W, w, align_corners).astype(dtype)
    y = np.matmul(np.matmul(a_h, x.astype(dtype, copy=False)), a_w.T)
    return np.ascontiguousarray(y)


class Compose:
    """Apply ``transforms`` in order: ``y = t_n(...t_2(t_1(x)))``.

    ``rng``, when given to a call, is passed to every transform; when it is None the
    transforms are called as ``t(x)``, so plain one-argument functions work too.
    """

    def __init__(self, transforms: Sequence[Callable]):
        transforms = list(transforms)
        for t in transforms:
            if not callable(t):
                raise TypeError(f"Compose: every transform must be callable, got {t!r}")
        self.transforms = transforms

    def __call__(self, x, rng: np.random.Generator | None = None):
        for t in self.transforms:
            x = t(x) if rng is None else t(x, rng=rng)
        return x

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"


class Normalize:
    """Per-channel standardisation: ``y[c] = (x[c] - mean[c]) / std[c]``, float32.

    ``mean`` and ``std`` are scalars or sequences of one value per channel; an image
    whose channel count differs from theirs is an error.
    """

    def __init__(self, mean, std):
        mean = np.atleast_1d(np.asarray(mean, dtype=np.float64))
        std = np.atleast_1d(np.asarray(std, dtype=np.float64))
        if mean.ndim != 1 or std.ndim != 1:
            raise ValueError("Normalize: mean and std must be scalars or 1-D sequences")
        if len(mean) != len(std) and 1 not in (len(mean), len(std)):
            raise ValueError(
                f"Normalize: mean has {len(mean)} values but std has {len(std)}; "
                "give one value per channel"
            )
        mean, std = np.broadcast_arrays(mean, std)
        if not np.all(np.isfinite(mean)) or not np.all(np.isfinite(std)):
            raise ValueError("Normalize: mean and std must be finite")
        if np.any(std <= 0):
            raise ValueError(f"Normalize: std must be positive, got {std.tolist()}")
        self.mean = mean.astype(np.float32)
        self.std = std.astype(np.float32)

    def __call__(self, x, rng: np.random.Generator | None = None) -> np.ndarray:
        x = _check_chw(x, "Normalize")
        if x.shape[0] != len(self.mean):
            raise ValueError(
                f"Normalize: image has {x.shape[0]} channels but mean/std have "
                f"{len(self.mean)} values"
            )
        m = self.mean[:, None, None]
        s = self.std[:, None, None]
        return ((x.astype(np.float32, copy=False) - m) / s).astype(np.float32, copy=False)

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class RandomCrop:
    """Crop a random ``(h, w)`` window, after padding each side by ``padding`` pixels.

    ``(C, H, W) -> (C, h, w)``. The padded border is filled with ``fill``. The window's
    top-left corner is drawn uniformly from every position that fits inside the padded
    image, so ``padding=4`` with ``size=H`` shifts the image by up to 4 pixels.
    """

    def __init__(self, size, padding: int = 0, fill: float = 0.0, rng=None):
        self.size = _size_pair(size, "RandomCrop")
        if not isinstance(padding, (int, np.integer)) or isinstance(padding, bool) or padding < 0:
            raise ValueError(f"RandomCrop: padding must be a non-negative int, got {padding!r}")
        self.padding = int(padding)
        self.fill = float(fill)
        self.rng = _as_generator(rng)

    def __call__(self, x, rng: np.random.Generator | None = None) -> np.ndarray:
        x = _check_chw(x, "RandomCrop")
        g = self.rng if rng is None else rng
        p = self.padding
        if p:
            x = np.pad(x, ((0, 0), (p, p), (p, p)), mode="constant", constant_values=self.fill)
        h, w = self.size
        H, W = x.shape[1:]
        if h > H or w > W:
            raise ValueError(
                f"RandomCrop: crop size {(h, w)} is larger than the padded image {(H, W)}"
            )
        top = int(g.integers(0, H - h + 1))
        left = int(g.integers(0, W - w + 1))
        return x[:, top : top + h, left : left + w]

    def __repr__(self) -> str:
        return f"RandomCrop(size={self.size}, padding={self.padding})"


class RandomHorizontalFlip:
    """Mirror the image left-right (``y = x[:, :, ::-1]``) with probability ``p``."""

    def __init__(self, p: float = 0.5, rng=None):
        p = float(p)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomHorizontalFlip: p must be in [0, 1], got {p}")
        self.p = p
        self.rng = _as_generator(rng)

    def __call__(self, x, rng: np.random.Generator | None = None) -> np.ndarray:
        x = _check_chw(x, "RandomHorizontalFlip")
        g = self.rng if rng is None else rng
        if g.random() < self.p:
            return np.ascontiguousarray(x[:, :, ::-1])
        return x

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class Resize:
    """Bilinear resize ``(C, H, W) -> (C, h, w)``; see `resize` for the sampling rule."""

    def __init__(self, size, align_corners: bool = False):
        self.size = _size_pair(size, "Resize")
        self.align_corners = bool(align_corners)

    def __call__(self, x, rng: np.random.Generator | None = None) -> np.ndarray:
        x = _check_chw(x, "Resize")
        return resize(x, self.size, align_corners=self.align_corners)

    def __repr__(self) -> str:
        return f"Resize(size={self.size}, align_corners={self.align_corners})"


class RandomShift:
    """Batch augmentation: shift each image by up to ``pad`` pixels, optionally mirror it.

    ``(N, C, H, W) -> (N, C, H, W)``. Each image is zero-padded by ``pad`` on every side
    and an ``H x W`` window is cut at an offset ``(dy, dx)`` drawn uniformly from
    ``0 .. 2 pad`` per image; with ``flip`` the window is also mirrored left-right with
    probability 1/2. All images are cut by one fancy-indexing gather:

        out[n, c, i, j] = padded[n, c, dy[n] + i, dx[n] + j']    j' = j, or W - 1 - j if flipped
    """

    def __init__(self, pad: int = 2, flip: bool = False):
        if not isinstance(pad, (int, np.integer)) or isinstance(pad, bool) or pad < 0:
            raise ValueError(f"RandomShift: pad must be an int >= 0, got {pad!r}")
        self.pad, self.flip = int(pad), bool(flip)

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n, c, h, w = x.shape
        p = self.pad
        xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        dy = rng.integers(0, 2 * p + 1, size=n)
        dx = rng.integers(0, 2 * p + 1, size=n)
        rows = dy[:, None] + np.arange(h)  # (N, H)
        cols = dx[:, None] + np.arange(w)  # (N, W)
        if self.flip:
            mirror = rng.random(n) < 0.5
            cols = np.where(mirror[:, None], cols[:, ::-1], cols)
        out = xp[
            np.arange(n)[:, None, None, None],
            np.arange(c)[None, :, None, None],
            rows[:, None, :, None],
            cols[:, None, None, :],
        ]
        return np.ascontiguousarray(out, dtype=x.dtype)

    def __repr__(self) -> str:
        return f"RandomShift(pad={self.pad}, flip={self.flip})"
