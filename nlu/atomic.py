"""Atomic file output: a reader (or a resumed job) never sees half a file."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator, TextIO


@contextlib.contextmanager
def atomic_open(path: Path | str, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[TextIO]:
    """Open a temporary file beside ``path``; rename it over ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
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


def write_json(path: Path | str, payload: Any) -> None:
    with atomic_open(path) as stream:
        json.dump(payload, stream, ensure_ascii=False, indent=2)


def save_torch(obj: Any, path: Path | str) -> None:
    """``torch.save`` through a temporary file, for checkpoints a killed job can resume from."""
    import torch

    with atomic_open(path, "wb") as stream:
        torch.save(obj, stream)
