"""Numba's compiled kernels are cached outside the package: in GHOSTNP_CACHE_DIR, else
NUMBA_CACHE_DIR, else the user's cache folder; nothing is written under ghostnp/ (a
leftover there once shadowed a later editable install)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import ghostnp

PACKAGE = Path(ghostnp.__file__).parent

# one small kernel, compiled (or loaded from the cache) and run
RUN_A_KERNEL = textwrap.dedent(
    """
    import sys
    import numpy as np
    import ghostnp
    assert "numba" not in sys.modules, "import ghostnp must not import numba"
    from ghostnp.kernels import dispatch
    mean, var = dispatch.batch_norm_stats(np.arange(24.0).reshape(2, 3, 2, 2))
    assert "numba" in sys.modules
    print(mean.tolist())
    """
)


def cache_files(root: Path) -> list[Path]:
    return sorted(p for pattern in ("*.nbi", "*.nbc") for p in root.rglob(pattern))


def run(tmp_path, **env):
    full = dict(os.environ, GHOSTNP_BACKEND="numba")
    for k in ("GHOSTNP_CACHE_DIR", "NUMBA_CACHE_DIR", "XDG_CACHE_HOME"):
        full.pop(k, None)
    full.update({k: str(v) for k, v in env.items()})
    out = subprocess.run(
        [sys.executable, "-c", RUN_A_KERNEL],
        cwd=tmp_path,
        env=full,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "[7.5, 11.5, 15.5]"  # per-channel means, by hand


@pytest.fixture
def package_untouched():
    before = cache_files(PACKAGE)
    yield
    assert cache_files(PACKAGE) == before, "compiled kernels were written into the package"


def test_ghostnp_cache_dir_wins(tmp_path, package_untouched):
    mine, numba_dir = tmp_path / "mine", tmp_path / "numba"
    run(tmp_path, GHOSTNP_CACHE_DIR=mine, NUMBA_CACHE_DIR=numba_dir)
    assert cache_files(mine) and not cache_files(numba_dir)
    assert cache_files(PACKAGE) == []


def test_numba_cache_dir_is_respected(tmp_path, package_untouched):
    run(tmp_path, NUMBA_CACHE_DIR=tmp_path / "numba")
    assert cache_files(tmp_path / "numba")


@pytest.mark.slow
def test_default_is_the_users_cache_folder(tmp_path, package_untouched):
    if sys.platform in ("win32", "darwin"):
        pytest.skip("the XDG layout is the Linux one")
    run(tmp_path, XDG_CACHE_HOME=tmp_path / "xdg")
    assert cache_files(tmp_path / "xdg" / "ghostnp")
    run(tmp_path, HOME=tmp_path / "home")
    assert cache_files(tmp_path / "home" / ".cache" / "ghostnp")


def test_an_unwritable_cache_folder_falls_back_to_the_temporary_folder(tmp_path, package_untouched):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    (tmp_path / "tmp").mkdir()
    run(tmp_path, GHOSTNP_CACHE_DIR=blocked / "cache", TMPDIR=tmp_path / "tmp", USER="someone")
    assert cache_files(tmp_path / "tmp" / "ghostnp-cache-someone")


def test_cache_dir_follows_the_rules(monkeypatch, tmp_path):
    from ghostnp.kernels.cache import cache_dir

    for var in ("GHOSTNP_CACHE_DIR", "NUMBA_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    if sys.platform not in ("win32", "darwin"):
        assert cache_dir() == tmp_path / ".cache" / "ghostnp"
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
        assert cache_dir() == tmp_path / "x" / "ghostnp"
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "n"))
    assert cache_dir() == tmp_path / "n"
    monkeypatch.setenv("GHOSTNP_CACHE_DIR", str(tmp_path / "g"))
    assert cache_dir() == tmp_path / "g"


def test_a_kernel_is_recompiled_when_a_file_beside_it_changes(tmp_path):
    """Kernels inline helpers from the other files of their folder; Numba's own stamp is
    that of the kernel's file alone, so ghostnp's locator stamps the whole folder."""
    from numba.core import caching

    from ghostnp.kernels import numba as _  # noqa: F401 - installs the locator

    impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl
    locator_cls = next(c for c in impl._locator_classes if c.__name__ == "GhostnpCacheLocator")
    (tmp_path / "kernel.py").write_text("def kernel():\n    return helper()\n")
    (tmp_path / "helper.py").write_text("def helper():\n    return 1\n")
    locator = locator_cls(lambda: None, str(tmp_path / "kernel.py"), tmp_path / "cache")
    before = locator.get_source_stamp()
    assert locator.get_source_stamp() == before  # unchanged files: the cache stays valid
    (tmp_path / "helper.py").write_text("def helper():\n    return 22\n")
    assert locator.get_source_stamp() != before
