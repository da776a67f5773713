"""CIFAR-10 from the python batches on disk (never downloaded).

Expected layout (``cifar-10-python.tar.gz`` unpacked):

    root/cifar-10-batches-py/data_batch_1 ... data_batch_5   (train, 10,000 images each)
    root/cifar-10-batches-py/test_batch                      (test, 10,000 images)

``root`` may also be the ``cifar-10-batches-py`` folder itself. Each batch is a pickle
(protocol 2) of a dict with ``b"data"``, a uint8 array ``(n, 3072)`` holding each image as
1024 red, 1024 green, then 1024 blue values, rows top to bottom, and ``b"labels"``, a
list of ``n`` ints 0..9 (plus ``b"batch_label"`` and ``b"filenames"``, unused).

Security: unpickling runs whatever callables a file names, so a crafted file could run
arbitrary code under a plain ``pickle.load``. These files are read with a restricted
unpickler that resolves only the globals the CIFAR batches need (numpy's array and dtype
reconstruction, latin-1 ``_codecs.encode`` for byte strings, and builtins
dict/list/bytes/str/int) and refuses every other one with ValueError. That closes the
code-execution route, but not resource abuse (a file can still ask for a huge
allocation): load only files from a source you trust.
"""

from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path

import numpy as np

__all__ = ["load_cifar10", "read_cifar_batch", "CIFAR10_CLASSES"]

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

_FOLDER = "cifar-10-batches-py"
_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST_FILES = ("test_batch",)
_BATCH_LAYOUT = (
    "expected a pickled dict with b'data': uint8 array (n, 3072) and b'labels': list of n ints 0..9"
)

_reconstruct = np.empty(0).__reduce__()[0]  # numpy's ndarray rebuild function


def _latin1_encode(text, encoding="latin1", errors="strict"):
    """``_codecs.encode`` as Python 3 pickles bytes with protocol 2; latin-1 only."""
    if encoding.replace("_", "-").lower() not in ("latin1", "latin-1", "iso-8859-1"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return codecs.encode(text, "latin1", errors)


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
}
_ALLOWED.update(
    {
        (module, name): obj
        for module in ("builtins", "__builtin__")
        for name, obj in (
            ("dict", dict),
            ("list", list),
            ("bytes", bytes),
            ("str", str),
            ("int", int),
        )
    }
)


class _RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only the globals listed in ``_ALLOWED``."""

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: only numpy array "
                "reconstruction and plain builtins are allowed"
            ) from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError("refusing a persistent id")


def _get(d: dict, key: str):
    """``d[b"key"]`` as in the original files, or ``d["key"]``."""
    if key.encode() in d:
        return d[key.encode()]
    if key in d:
        return d[key]
    raise KeyError(key)


def read_cifar_batch(path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch file as ``(data uint8 (n, 3072), labels int64 (n,))``.

    Read with the restricted unpickler; a disallowed global, a file that is not such a
    pickle, or data of the wrong shape, dtype or count raise ValueError naming the file.
    """
    path = Path(path)
    raw = path.read_bytes()
    try:
        obj = _RestrictedUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except pickle.UnpicklingError as e:
        raise ValueError(f"{path}: not loaded ({e}); {_BATCH_LAYOUT}") from e
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
        raise ValueError(f"{path} is not a valid pickle ({e!r}); {_BATCH_LAYOUT}") from e
    if not isinstance(obj, dict):
        raise ValueError(f"{path} holds a {type(obj).__name__}; {_BATCH_LAYOUT}")
    try:
        data, labels = _get(obj, "data"), _get(obj, "labels")
    except KeyError as e:
        raise ValueError(f"{path} has no key {e}; {_BATCH_LAYOUT}") from None
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2):
        got = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data)
        raise ValueError(f"{path}: b'data' is {got}; {_BATCH_LAYOUT}")
    if data.shape[1] != 3072:
        raise ValueError(f"{path}: b'data' has shape {data.shape}; {_BATCH_LAYOUT}")
    if not isinstance(labels, (list, tuple, np.ndarray)) or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in labels
    ):
        raise ValueError(f"{path}: b'labels' is not a list of ints; {_BATCH_LAYOUT}")
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    if len(labels) != len(data):
        raise ValueError(
            f"{path}: {len(data)} images but {len(labels)} labels; the counts must match"
        )
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: labels outside 0..9; {_BATCH_LAYOUT}")
    return data, labels


def _batch_dir(root) -> Path:
    if root is None:
        raise ValueError(f"load_cifar10: root must be the folder holding {_FOLDER}")
    root = Path(root)
    layout = (
        f"expected {root}/{_FOLDER}/data_batch_1..data_batch_5 and test_batch "
        "(cifar-10-python.tar.gz unpacked)"
    )
    if not root.is_dir():
        raise FileNotFoundError(f"load_cifar10: {root} is not a folder; {layout}")
    if (root / _FOLDER).is_dir():
        return root / _FOLDER
    if any((root / f).is_file() for f in (*_TRAIN_FILES, *_TEST_FILES)):
        return root
    raise FileNotFoundError(f"load_cifar10: no {_FOLDER} folder in {root}; {layout}")


def load_cifar10(root, train: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR-10's train (50,000) or test (10,000) set from the python batches under ``root``.

    Returns ``(images float32 (N, 3, 32, 32) in [0, 1] (pixel / 255), labels int64 (N,))``,
    the batches concatenated in order (``data_batch_1`` .. ``data_batch_5`` for train).
    A missing batch raises FileNotFoundError, a malformed one ValueError, naming the file.
    """
    directory = _batch_dir(root)
    names = _TRAIN_FILES if train else _TEST_FILES
    missing = [n for n in names if not (directory / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"load_cifar10: missing {', '.join(str(directory / n) for n in missing)}; "
            f"expected {directory}/data_batch_1..data_batch_5 and test_batch"
        )
    parts = [read_cifar_batch(directory / n) for n in names]
    data = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    images = data.reshape(len(data), 3, 32, 32).astype(np.float32) / np.float32(255.0)
    return images, labels
