"""Atomic file output: a reader (or a resumed job) never sees half a file."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from pathlib import Path
from typing import Any, Iterator, TextIO


@contextlib.contextmanager
def atomic_open(path: Path | str, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[TextIO]:
    """Open a temporary file beside ``path``; rename it over ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = _create_beside(path)
    try:
        with os.fdopen(handle, mode, encoding=None if "b" in mode else encoding) as stream:
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _create_beside(path: Path) -> tuple[int, str]:
    """Create a new, empty temporary file beside ``path``; return its descriptor and name.

    Mode 0o666 lets the kernel apply the process umask, as for any other new file
    (``tempfile.mkstemp`` makes it 0600, and the rename would keep that).
    """
    while True:
        temporary = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            return os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), temporary
        except FileExistsError:  # a name already taken: draw another
            continue


# The temporary names ``_create_beside`` makes: ``.<name>.<12 hex digits>.tmp``
TEMPORARY_NAME = re.compile(r"\..+\.[0-9a-f]{12}\.tmp")


def remove_stale_temporaries(directory: Path | str) -> list[Path]:
    """Delete the temporary files a killed writer left anywhere under ``directory`` (only
    names of this module's own pattern); return them. Call it only while no writer can be
    working there (``nlu.rundir.RunDirLock`` held), or it would delete a live write's file."""
    removed = []
    for path in Path(directory).rglob(".*.tmp"):
        if TEMPORARY_NAME.fullmatch(path.name) and path.is_file():
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed


def write_json(path: Path | str, payload: Any) -> None:
    with atomic_open(path) as stream:
        json.dump(payload, stream, ensure_ascii=False, indent=2)


def save_torch(obj: Any, path: Path | str) -> None:
    """``torch.save`` through a temporary file, for checkpoints a killed job can resume from."""
    import torch

    with atomic_open(path, "wb") as stream:
        torch.save(obj, stream)
