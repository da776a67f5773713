"""Training checkpoints: model, optimizer, scheduler and metadata in one ``.npz`` file.

    save_checkpoint("runs/last.npz", model, opt, sched, epoch=3, note="baseline")
    meta = load_checkpoint("runs/last.npz", model, opt, sched)    # {"epoch": 3, "note": ...}

Layout of the file (every entry a plain array, so it reads with ``allow_pickle=False``):

    format                    0-d str  "ghostnp-checkpoint"
    format_version            0-d int  1
    header                    0-d str  JSON: class names of the model, optimizer, scheduler
    meta                      0-d str  JSON: the keyword arguments given to save_checkpoint
    model/<state-dict key>    each parameter and buffer, e.g. model/conv_stem.weight
    optimizer/...             optimizer.state_dict(), flattened by flatten_state
    scheduler/...             scheduler.state_dict(), flattened the same way

Writing goes to a temporary file in the same folder, renamed over ``path`` only once
it is complete, so a crash mid-write leaves the previous checkpoint intact.

An optimizer's or a scheduler's ``state_dict()`` is a nested dict (ints, floats, lists,
arrays); `flatten_state` stores it as named arrays and `unflatten_state` rebuilds it.
`read_weights` reads the model weights of a checkpoint or of any other weights file
without a model to put them in (to see what network they are for).

Loading checks the file before it changes anything: a file that is not a readable
``.npz`` (truncated, corrupt), an ``.npz`` that is not a ghostnp checkpoint, a model or
optimizer state that does not fit the objects given, each raise ``CheckpointError``
naming the file, and the model, optimizer and scheduler are left exactly as they were.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .errors import WeightsFileError
from .files import atomic_write
from .interop import read_npz, read_state_dict

__all__ = [
    "save_checkpoint",
    "load_checkpoint",
    "checkpoint_meta",
    "read_weights",
    "flatten_state",
    "unflatten_state",
    "CheckpointError",
    "FORMAT",
    "FORMAT_VERSION",
]

FORMAT = "ghostnp-checkpoint"
FORMAT_VERSION = 1
_PARTS = ("model/", "optimizer/", "scheduler/")


class CheckpointError(WeightsFileError):
    """A checkpoint file that cannot be read, is not a checkpoint, or does not fit (a
    ValueError; the message is at most about a dozen lines, the first says it all)."""


def _json_default(value):
    """Make NumPy scalars and arrays JSON-serializable (as Python numbers and lists)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def save_checkpoint(path, model, optimizer=None, scheduler=None, **meta) -> Path:
    """Write ``model`` (and ``optimizer``, ``scheduler`` if given) and ``meta`` to ``path``.

    ``meta`` values must be JSON-serializable (numbers, strings, bools, None, lists and
    dicts of them; NumPy scalars and arrays become numbers and lists); they come back
    from `load_checkpoint` as a dict. The file is written to a temporary file in
    the same folder and renamed over ``path`` when complete. Returns ``path``.
    """
    path = Path(path)
    try:
        meta_json = json.dumps(meta, default=_json_default)
    except (TypeError, ValueError) as e:
        raise TypeError(f"save_checkpoint: meta must be JSON-serializable ({e})") from None
    header = {
        "model": type(model).__name__,
        "optimizer": None if optimizer is None else type(optimizer).__name__,
        "scheduler": None if scheduler is None else type(scheduler).__name__,
    }
    arrays: dict[str, np.ndarray] = {
        "format": np.array(FORMAT),
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "header": np.array(json.dumps(header)),
        "meta": np.array(meta_json),
    }
    arrays.update({f"model/{k}": np.asarray(v) for k, v in model.state_dict().items()})
    if optimizer is not None:
        arrays.update(flatten_state(optimizer.state_dict(), prefix="optimizer/"))
    if scheduler is not None:
        arrays.update(flatten_state(scheduler.state_dict(), prefix="scheduler/"))

    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, allow_pickle=False, **arrays)

    return atomic_write(path, write)


def _read(path: Path) -> dict[str, np.ndarray]:
    """Every array in ``path``, read eagerly, or a CheckpointError saying why not."""
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file at {path}")
    return read_npz(path, error=CheckpointError)


def _str_entry(path: Path, arrays: dict, key: str) -> str:
    arr = arrays[key]
    if arr.ndim != 0 or arr.dtype.kind != "U":
        raise CheckpointError(
            f"{path}: entry {key!r} should be a string, got {arr.dtype} {arr.shape}"
        )
    return str(arr[()])


def _check_format(path: Path, arrays: dict) -> tuple[dict, dict]:
    """The header and meta dicts, after checking the format tag and version."""
    if "format" not in arrays:
        shown = ", ".join(sorted(arrays)[:5]) + (", ..." if len(arrays) > 5 else "")
        raise CheckpointError(
            f"{path}: not a ghostnp checkpoint (no 'format' entry; it holds {len(arrays)} "
            f"array(s): {shown or 'none'})"
        )
    fmt = arrays["format"]
    if fmt.ndim != 0 or fmt.dtype.kind != "U" or str(fmt[()]) != FORMAT:
        raise CheckpointError(f"{path}: not a ghostnp checkpoint (format is {fmt!r})")
    version = arrays.get("format_version")
    if version is None or version.shape != () or int(version) != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {version!r} is not supported "
            f"(this ghostnp reads version {FORMAT_VERSION})"
        )
    for key in ("header", "meta"):
        if key not in arrays:
            raise CheckpointError(f"{path}: the checkpoint has no {key!r} entry")
    try:
        header = json.loads(_str_entry(path, arrays, "header"))
        meta = json.loads(_str_entry(path, arrays, "meta"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: header or meta is not valid JSON ({e})") from None
    if not isinstance(header, dict) or not isinstance(meta, dict):
        raise CheckpointError(f"{path}: header and meta must be JSON objects")
    stray = [k for k in arrays if "/" in k and not k.startswith(_PARTS)]
    if stray:
        raise CheckpointError(f"{path}: unexpected entries {stray[:5]}")
    return header, meta


def _section(path: Path, arrays: dict, prefix: str, what, saved_class) -> dict | None:
    """The nested state saved under ``prefix`` for object ``what`` (None if not asked for)."""
    if what is None:
        return None
    name = prefix.rstrip("/")
    mine = type(what).__name__
    if saved_class is None or not any(k.startswith(prefix) for k in arrays):
        raise CheckpointError(f"{path}: holds no {name} state, but a {mine} was given to load")
    if saved_class != mine:
        raise CheckpointError(f"{path}: the {name} state is for {saved_class}, not {mine}")
    try:
        return unflatten_state(arrays, prefix=prefix)
    except ValueError as e:
        raise CheckpointError(f"{path}: the {name} state is malformed: {e}") from None


def _is_checkpoint(arrays: dict) -> bool:
    """Whether the arrays of an .npz carry the checkpoint format tag."""
    fmt = arrays.get("format")
    return fmt is not None and fmt.ndim == 0 and fmt.dtype.kind == "U" and str(fmt[()]) == FORMAT


def read_weights(path) -> tuple[dict[str, np.ndarray], dict | None]:
    """``(state dict, meta)`` of the model weights in ``path``, without a model to load them into.

    A ghostnp checkpoint gives its model state and its ``meta`` dict (checked as
    `load_checkpoint` checks them); any other weights file (an ``.npz`` state dict, a
    PyTorch ``.pth``/``.pt``, read by `ghostnp.interop.read_state_dict`) gives its
    state dict and None. Errors: FileNotFoundError, or a WeightsFileError (CheckpointError
    for a damaged checkpoint) saying why the file cannot be read.
    """
    path = Path(path)
    if path.suffix != ".npz":
        return read_state_dict(path), None
    arrays = read_npz(path)
    if not _is_checkpoint(arrays):
        return arrays, None
    _, meta = _check_format(path, arrays)
    return {k[len("model/") :]: v for k, v in arrays.items() if k.startswith("model/")}, meta


def checkpoint_meta(path) -> dict:
    """The ``meta`` dict of a checkpoint, without loading it into anything.

    Raises FileNotFoundError, or CheckpointError for a file that is not a readable
    ghostnp checkpoint (the same checks as `load_checkpoint`).
    """
    path = Path(path)
    return _check_format(path, _read(path))[1]


def load_checkpoint(path, model, optimizer=None, scheduler=None) -> dict:
    """Load a checkpoint written by `save_checkpoint` into ``model`` (and the others).

    Returns the ``meta`` dict. ``optimizer`` and ``scheduler`` are optional; when given,
    the file must hold a state for an object of the same class. Everything is checked
    before anything changes: the file is read whole; the format tag, the model's keys
    and shapes (through ``model.load_state_dict``, which lists every problem and changes
    nothing when there is one), and the optimizer and scheduler states (each of their
    ``load_state_dict`` does the same) must all fit. If a later part is rejected after
    an earlier one was accepted, the earlier ones are put back, so on any error model,
    optimizer and scheduler are exactly as they were. Errors are ``CheckpointError``
    (a ValueError) naming ``path``; a missing file is ``FileNotFoundError``.
    """
    path = Path(path)
    arrays = _read(path)
    header, meta = _check_format(path, arrays)
    opt_state = _section(path, arrays, "optimizer/", optimizer, header.get("optimizer"))
    sched_state = _section(path, arrays, "scheduler/", scheduler, header.get("scheduler"))
    model_state = {k[len("model/") :]: v for k, v in arrays.items() if k.startswith("model/")}
    if not model_state:
        raise CheckpointError(f"{path}: the checkpoint holds no model state")

    # each load_state_dict checks everything before it assigns; keep what was there so
    # that a part rejected later can undo the parts already loaded
    undo = [(model, model.state_dict())]
    try:
        model.load_state_dict(model_state, strict=True)
        if optimizer is not None:
            undo.append((optimizer, optimizer.state_dict()))
            optimizer.load_state_dict(opt_state)
        if scheduler is not None:
            undo.append((scheduler, scheduler.state_dict()))
            scheduler.load_state_dict(sched_state)
    except Exception as e:  # any failure, even from a malformed file: undo, then report
        for obj, saved in undo[:-1]:
            obj.load_state_dict(saved)
        # the StateDictError's first line counts the problems, the next few list examples
        text = str(e) or type(e).__name__
        raise CheckpointError(f"{path}: does not fit the objects given: {text}") from None
    return meta


# -- a flat form for .npz files ----------------------------------------------------
_TAGS = ("int", "float", "bool", "str", "none", "dict", "list")


class _Node(dict):
    """A container met while unflattening (kept apart from leaf values)."""


_EMPTY_LIST = object()


def flatten_state(state: Mapping, prefix: str = "") -> dict[str, np.ndarray]:
    """Flatten a nested state dict into ``{key: ndarray}``, storable by ``np.savez``.

    A key is the path to a value, its parts joined by ``/``; a part is a string key
    as it is, an int key ``k`` as ``#k``, a list position ``i`` as ``[i]``. An ndarray
    is stored under its path unchanged. Any other value is stored as a 0-d array under
    its path followed by a type tag, so that it comes back with its Python type:

    ======================  ===================  ====================================
    value                   key suffix           stored array
    ======================  ===================  ====================================
    int                     ``:int``             0-d int64
    float                   ``:float``           0-d float64
    bool                    ``:bool``            0-d bool
    str                     ``:str``             0-d unicode
    None                    ``:none``            empty float64
    empty dict / list       ``:dict`` / ``:list``  empty float64
    ======================  ===================  ====================================

    For example ``{"state": {0: {"step": 3}}, "param_groups": [{"lr": 0.1}]}`` becomes
    ``{"state/#0/step:int": array(3), "param_groups/[0]/lr:float": array(0.1)}``.
    Tuples are stored as lists and NumPy scalars as Python scalars. ``prefix`` is put
    in front of every key (e.g. ``"optimizer/"``) so several states can share one file.
    """
    if not isinstance(state, Mapping):
        raise TypeError(f"flatten_state expects a dict, got {type(state).__name__}")
    flat: dict[str, np.ndarray] = {}
    for k, v in state.items():
        _flatten_into(flat, prefix + _part(k), v)
    return flat


def _part(key) -> str:
    if isinstance(key, (int, np.integer)) and not isinstance(key, (bool, np.bool_)):
        return f"#{int(key)}"
    if not isinstance(key, str):
        raise TypeError(f"flatten_state: keys must be str or int, got {key!r}")
    if not key or "/" in key or ":" in key or key[0] in "#[":
        raise ValueError(
            f"flatten_state: key {key!r} cannot be flattened (empty, contains '/' or ':', "
            "or starts with '#' or '[')"
        )
    return key


def _flatten_into(flat: dict, path: str, value) -> None:
    if isinstance(value, Mapping):
        if not value:
            flat[path + ":dict"] = np.zeros(0)
        for k, v in value.items():
            _flatten_into(flat, f"{path}/{_part(k)}", v)
    elif isinstance(value, (list, tuple)):
        if not value:
            flat[path + ":list"] = np.zeros(0)
        for i, v in enumerate(value):
            _flatten_into(flat, f"{path}/[{i}]", v)
    elif isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise TypeError(f"flatten_state: {path} is an object array (it would need pickle)")
        flat[path] = value.copy()
    elif value is None:
        flat[path + ":none"] = np.zeros(0)
    elif isinstance(value, (bool, np.bool_)):
        flat[path + ":bool"] = np.array(bool(value))
    elif isinstance(value, (int, np.integer)):
        flat[path + ":int"] = np.array(int(value), dtype=np.int64)
    elif isinstance(value, (float, np.floating)):
        flat[path + ":float"] = np.array(float(value), dtype=np.float64)
    elif isinstance(value, str):
        flat[path + ":str"] = np.array(value)
    else:
        raise TypeError(f"flatten_state: {path} holds a {type(value).__name__}")


def unflatten_state(flat: Mapping, prefix: str = "") -> dict:
    """Rebuild the nested state dict that ``flatten_state`` flattened.

    ``flat`` may be the dict itself or an opened ``.npz`` file (``np.load(...,
    allow_pickle=False)``); only keys starting with ``prefix`` are read.
    """
    root = _Node()
    for key in flat:
        if not key.startswith(prefix):
            continue
        path, _, tag = key[len(prefix) :].partition(":")
        node, parts = root, path.split("/")
        for part in parts[:-1]:
            node = node.setdefault(part, _Node())
            if not isinstance(node, _Node):
                raise ValueError(f"unflatten_state: {key!r} runs through a stored value")
        if parts[-1] in node:
            raise ValueError(f"unflatten_state: {key!r} is stored twice")
        node[parts[-1]] = _leaf(key, tag, np.asarray(flat[key]))
    return _build(root, prefix or "<root>")


def _leaf(key: str, tag: str, arr: np.ndarray):
    if tag == "":
        return np.array(arr, copy=True)
    if tag not in _TAGS:
        raise ValueError(f"unflatten_state: unknown type tag in {key!r}")
    if tag in ("none", "dict", "list"):
        return {"none": None, "dict": _Node(), "list": _EMPTY_LIST}[tag]
    if arr.ndim != 0:
        raise ValueError(f"unflatten_state: {key!r} should hold a single value, has {arr.shape}")
    return {"int": int, "float": float, "bool": bool, "str": str}[tag](arr[()])


def _build(node, where: str):
    if node is _EMPTY_LIST:
        return []
    if not isinstance(node, _Node):
        return node
    kinds = {"list" if p.startswith("[") else "int" if p.startswith("#") else "str" for p in node}
    if len(kinds) > 1:
        raise ValueError(f"unflatten_state: {where} mixes list positions and dict keys")
    if kinds == {"list"}:
        pos = {int(p[1:-1]): child for p, child in node.items()}
        if sorted(pos) != list(range(len(pos))):
            raise ValueError(f"unflatten_state: list {where} has positions {sorted(pos)}")
        return [_build(pos[i], f"{where}/[{i}]") for i in range(len(pos))]
    if kinds == {"int"}:
        items = sorted((int(p[1:]), child) for p, child in node.items())
        return {k: _build(child, f"{where}/#{k}") for k, child in items}
    return {p: _build(child, f"{where}/{p}") for p, child in node.items()}
