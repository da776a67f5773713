"""Every ``ghostnp ...`` command shown in README.md and docs/**/*.md runs.

The commands are read from the Markdown code blocks (fenced and indented), so a new
example is tested as soon as it is written. In shell blocks every line that starts
with ``ghostnp`` (or ``$ ghostnp``, or follows ``&&``) is a command, and ``cd DIR``
moves the following commands of the page into DIR; in other blocks
(synopses) only ``$ ghostnp`` lines are, and the line after such a transcript line is
the output it must print (``...`` ends a prefix). Each page's commands run in order
in one fresh folder, as a reader would type them, with a small MNIST in
``~/data/mnist`` and a ``photo.png``. Two documented options keep it short and change
nothing else: ``--limit-batches 2`` for ``train``, ``--tiny`` for ``bench``.
"""

from __future__ import annotations

import gzip
import re
import shlex
import struct
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
SHELL = {"", "bash", "sh", "shell", "console", "zsh"}


def _blocks(text: str):
    """(info string, lines) of every fenced or indented code block."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^\s*(```+|~~~+)\s*\{?([\w-]*)", lines[i])
        if fence:
            end = i + 1
            while end < len(lines) and not lines[end].strip().startswith(fence[1]):
                end += 1
            yield fence[2].lower(), lines[i + 1 : end]
            i = end + 1
        elif lines[i].startswith("    ") and (i == 0 or not lines[i - 1].strip()):
            end = i
            while end < len(lines) and (lines[end].startswith("    ") or not lines[end].strip()):
                end += 1
            yield "", [line[4:] for line in lines[i:end]]
            i = end
        else:
            i += 1


def examples(page: Path) -> list[tuple[str, str | None]]:
    """(command, expected first output line or None) in the order of the page."""
    found = []
    for info, lines in _blocks(page.read_text()):
        for n, line in enumerate(lines):
            text = line.strip()
            transcript = text.startswith("$ ghostnp ")
            if transcript:
                after = lines[n + 1].strip() if n + 1 < len(lines) else ""
                found.append((text[2:], after or None))
            elif info in SHELL:
                for part in text.split("&&"):
                    if part.strip().startswith(("ghostnp ", "cd ")):
                        found.append((part.strip(), None))
    return found


def _shorten(words: list[str]) -> list[str]:
    if words[1] == "train" and "--limit-batches" not in words:
        return [*words, "--limit-batches", "2", "--no-progress"]
    if words[1] == "bench":
        return [*words, "--tiny"]
    return words


def _mnist(folder: Path, n: int = 96) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, count in (("train", n), ("t10k", n // 2)):
        images = rng.integers(0, 256, (count, 28, 28), dtype=np.uint8)
        labels = (np.arange(count) % 10).astype(np.uint8)
        for name, magic, arr in (("images-idx3", 2051, images), ("labels-idx1", 2049, labels)):
            head = struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape)
            path = folder / f"{prefix}-{name}-ubyte.gz"
            path.write_bytes(gzip.compress(head + arr.tobytes()))


def test_the_pages_have_examples():
    commands = {cmd for page in PAGES for cmd, _ in examples(page)}
    for shown in ("ghostnp train", "ghostnp gradcheck", "ghostnp visualize photo.png"):
        assert shown in commands
    assert examples(ROOT / "README.md")[0] == ("ghostnp train", None)  # the quick start


@pytest.mark.slow
def test_every_command_example_runs(tmp_path, torch):
    """The pages in order (README first), in one folder; a command already run with
    success on an earlier page is not run again."""
    from matplotlib import image as mpimg

    home, work = tmp_path / "home", tmp_path / "work"
    _mnist(home / "data" / "mnist")
    work.mkdir()
    mpimg.imsave(work / "photo.png", np.random.default_rng(0).random((64, 48, 3)))
    failures, done = [], set()
    for page in PAGES:
        cwd = work
        for command, expected in examples(page):
            if command.startswith("cd "):
                cwd = cwd / command[3:].strip()
                continue
            words = [
                w.replace("~", str(home), 1) if w.startswith("~") else w
                for w in shlex.split(command, comments=True)
            ]
            key = (tuple(words), expected, cwd)
            if key in done:
                continue
            result = run_cli(_shorten(words)[1:], cwd=cwd, env={"HOME": str(home)})
            said = (result.stdout + result.stderr).strip()
            where = f"{page.relative_to(ROOT)}: {command}"
            if expected is not None:
                prefix = expected.split("...")[0].rstrip()
                if not any(line.startswith(prefix) for line in said.splitlines()):
                    failures.append(f"{where}: expected {expected!r}, got {said[-500:]!r}")
            elif result.returncode != 0:
                failures.append(f"{where}: exit {result.returncode}: {said[-800:]}")
            done.add(key)
    assert not failures, "\n".join(failures)
