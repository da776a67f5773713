"""Writing a file whole or not at all.

    atomic_write("runs/last.npz", lambda tmp: np.savez(tmp, **arrays))

Every file ghostnp writes (checkpoints, exported weights, figures, assignment folders)
goes through `atomic_write`: the content is written to a temporary file in the same
folder and renamed over the target only once it is complete. A crash or Ctrl-C half-way
leaves the previous file as it was and no half-written one under its name.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_write"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], object]) -> Path:
    """Call ``write(tmp)`` to write the file ``tmp``, then rename it over ``path``; returns
    ``path`` as a Path.

    ``tmp`` is a new file beside ``path`` (the rename stays on one file system); missing
    folders are created. The finished file gets the permissions an ordinary new file
    gets (the umask's), not the private ones of a temporary file. If ``write`` raises,
    the temporary file is removed and ``path`` is not touched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path
