"""Pretrained word vectors from a word2vec/fastText ``.vec`` text file the user provides."""

from __future__ import annotations

from pathlib import Path
from typing import Collection

import numpy as np

from nlu.errors import EncodingError, FormatError


def read_vec(path: Path | str, keep: Collection[str] | None = None) -> tuple[dict[str, np.ndarray], int]:
    """Read ``path`` (optional ``count dim`` header line, then ``word v1 .. vdim`` per line).

    Returns ``({word: vector}, dim)``; with ``keep`` only those words are loaded, which keeps
    memory small for multi-GB fastText files.
    """
    path = Path(path)
    vectors: dict[str, np.ndarray] = {}
    dim: int | None = None
    try:
        with path.open(encoding="utf-8") as stream:
            for line_number, line in enumerate(stream, start=1):
                fields = line.rstrip("\n").rstrip(" ").split(" ")
                if line_number == 1 and len(fields) == 2 and all(f.isdigit() for f in fields):
                    dim = int(fields[1])
                    continue
                if len(fields) < 2:
                    continue
                if dim is None:
                    dim = len(fields) - 1
                if len(fields) - 1 != dim:
                    raise FormatError(f"expected {dim} values, found {len(fields) - 1}",
                                      path=str(path), line=line_number, field="vector")
                word = fields[0]
                if keep is not None and word not in keep:
                    continue
                try:
                    vectors[word] = np.asarray(fields[1:], dtype=np.float32)
                except ValueError:
                    raise FormatError("vector has a non-numeric value", path=str(path),
                                      line=line_number, field="vector") from None
    except UnicodeDecodeError as error:
        raise EncodingError(f"not UTF-8 ({error.reason})", path=str(path)) from None
    if dim is None:
        raise FormatError("no vectors found", path=str(path))
    return vectors, dim


def embedding_matrix(vocabulary: list[str], vectors: dict[str, np.ndarray], dim: int,
                     seed: int = 0) -> tuple[np.ndarray, int]:
    """Rows for ``vocabulary``: the pretrained vector (also tried lower-cased) or a small
    random one. Returns the matrix and how many rows were found."""
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0.0, 0.1, size=(len(vocabulary), dim)).astype(np.float32)
    found = 0
    for row, word in enumerate(vocabulary):
        vector = vectors.get(word)
        if vector is None:
            vector = vectors.get(word.lower())
        if vector is not None:
            matrix[row] = vector
            found += 1
    return matrix, found
