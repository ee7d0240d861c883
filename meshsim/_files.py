"""Writing files all or nothing: a temporary file or directory beside the target, then ``os.replace``.

A reader of the target sees either the old file or the new one, never a
partial write, and a failure part-way leaves the target as it was. The
temporaries are hidden (``.<name>.<random>.tmp``) and live in the target's own
directory, so the rename never crosses a file system.

This module imports only the standard library; every meshsim package may use it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_write_text", "staging_directory", "move_into"]


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same directory and ``os.replace``.

    The directory of ``path`` must exist. Returns ``path`` as a :class:`~pathlib.Path`.
    """
    return _atomic_write(Path(path), data, "wb", None)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8, text mode) to ``path`` the way :func:`atomic_write_bytes` does."""
    return _atomic_write(Path(path), text, "w", "utf-8")


def _atomic_write(target: Path, data: str | bytes, mode: str, encoding: str | None) -> Path:
    directory = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, mode, encoding=encoding) as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return target


@contextmanager
def staging_directory(outdir: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary directory beside ``outdir`` (whose parent is created), removed on exit.

    Write the files into it, then publish them with :func:`move_into`; whatever
    was not moved is deleted with the directory, so a failure part-way leaves
    ``outdir`` as it was.
    """
    out = Path(outdir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def move_into(staging: Path, outdir: str | os.PathLike[str], names: Iterable[str]) -> list[Path]:
    """Move each of ``names`` from ``staging`` into ``outdir`` with ``os.replace``, in order.

    Returns the paths in ``outdir``, in the order of ``names``.
    """
    out = Path(outdir)
    paths = []
    for fname in names:
        os.replace(staging / fname, out / fname)
        paths.append(out / fname)
    return paths
