"""What every format reader shares: decoding a file, locating errors, collecting repairs.

A reader turns one file (or one folder, for the two-file layouts) into a ``ReadReport``:
the utterances, plus what was repaired (``mode="repair"``) and what looked wrong but was
kept (warnings). Every message starts with ``file:line`` so a user can jump to the spot.
"""

from __future__ import annotations

import contextlib
import gzip
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence, TextIO

from nlu.atomic import atomic_open
from nlu.errors import EmptyFileError, EncodingError, FormatError, NluDataError
from nlu.utterance import Utterance, ValidationMode, check_strings


@dataclass
class ReadReport:
    """The result of reading one file: utterances, repairs made and warnings raised."""

    utterances: list[Utterance]
    repairs: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def extend(self, other: "ReadReport") -> None:
        self.utterances.extend(other.utterances)
        self.repairs.extend(other.repairs)
        self.warnings.extend(other.warnings)


class ReportBuilder:
    """Builds utterances of one file, locating every error and repair at ``file:line``."""

    def __init__(self, path: Path, mode: ValidationMode):
        if mode not in ("strict", "repair"):
            raise ValueError(f"unknown validation mode {mode!r}")
        self.path = str(path)
        self.mode = mode
        self.report = ReadReport([])

    def where(self, line: int) -> str:
        return f"{self.path}:{line}"

    def add(self, line: int, tokens: Sequence[str], tags: Sequence[str], intent: str,
            language: str, **optional) -> Utterance | None:
        """Validate and keep one utterance; return it (``None`` if repair mode skipped it)."""
        with self.located(line):
            check_strings(tokens, "tokens")  # before the repair below reads them
            check_strings(tags, "tags")
        if self.mode == "repair" and not all(tokens) and len(tokens) == len(tags):
            # Real data has empty tokens (xSID zh.test.conll:2914, all tagged O); drop them.
            for position, (token, tag) in enumerate(zip(tokens, tags)):
                if not token:
                    self.repaired(line, f"token {position + 1} is empty; dropped (tag {tag!r})")
            kept = [position for position, token in enumerate(tokens) if token]
            tokens, tags = [tokens[p] for p in kept], [tags[p] for p in kept]
            if not tokens:  # xSID no.valid.conll:7156 holds an utterance with only ""
                self.warn(line, "utterance has no token left; skipped")
                return None
        optional.setdefault("source", self.where(line))
        with self.located(line):
            utterance, changes = Utterance.build(tokens, tags, intent, language, mode=self.mode,
                                                 **optional)
        self.report.utterances.append(utterance)
        self.report.repairs.extend(f"{self.where(line)}: {change}" for change in changes)
        return utterance

    @contextlib.contextmanager
    def located(self, line: int) -> Iterator[None]:
        """Locate any ``NluDataError`` the block raises at ``file:line`` of this file."""
        try:
            yield
        except NluDataError as error:
            raise error.at(path=self.path, line=line) from None

    def repaired(self, line: int, message: str) -> None:
        self.report.repairs.append(f"{self.where(line)}: {message}")

    def warn(self, line: int, message: str) -> None:
        self.report.warnings.append(f"{self.where(line)}: {message}")

    def finish(self) -> ReadReport:
        if not self.report.utterances:
            raise EmptyFileError("no utterance in file", path=self.path)
        return self.report


def read_text(path: Path, *, errors: str = "strict") -> str:
    """Decode ``path`` as UTF-8 (a BOM is dropped); bad bytes raise ``EncodingError`` at file:line.

    A ``.gz`` file is decompressed first. An empty or whitespace-only file raises
    ``EmptyFileError``.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as error:  # a folder, a missing file, no permission...
        raise FormatError(f"cannot read: {error.strerror}", path=str(path)) from None
    if Path(path).suffix == ".gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as error:
            raise FormatError(f"not a valid gzip file ({error})", path=str(path)) from None
    if not data.strip():
        raise EmptyFileError("file is empty", path=str(path))
    try:
        return data.decode("utf-8-sig", errors=errors)
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        raise EncodingError(f"not valid UTF-8: byte 0x{data[error.start]:02x} at column {column}",
                            path=str(path), line=line) from None


def parse_json(text: str, path: Path, line: int = 1) -> object:
    """``json.loads(text)`` for the text found at ``path:line``; any failure is a ``FormatError``.

    Well-formed JSON can fail too: ``json`` raises ``ValueError`` for an integer of over 4,300
    digits and ``RecursionError`` for deep nesting.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise FormatError(f"not JSON: {error.msg}", path=str(path),
                          line=line + error.lineno - 1) from None
    except (ValueError, RecursionError) as error:
        raise FormatError(f"JSON too large to read: {error}", path=str(path), line=line) from None


BOM = "\ufeff"


class _BomSafeStream:
    """A text stream whose first character survives ``read_text``: text starting with U+FEFF
    (a token, an intent) gets a BOM written before it, which the reader drops in its place."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.started = False

    def write(self, text: str) -> int:
        if not self.started and text:
            self.started = True
            if text.startswith(BOM):
                self.stream.write(BOM)
        return self.stream.write(text)


@contextlib.contextmanager
def open_output(path: Path | str) -> Iterator[_BomSafeStream]:
    """Every format writer's output file: atomic (``nlu.atomic``), UTF-8, BOM-safe."""
    with atomic_open(path) as stream:
        yield _BomSafeStream(stream)


def numbered_lines(text: str) -> list[tuple[int, str]]:
    """``(line number, line)`` pairs, numbered from 1, line endings removed.

    Only ``\\n`` ends a line (``str.splitlines`` would also split on U+2028 and friends,
    which real utterances contain, and shift every line number after them).
    """
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [(number, line.rstrip("\r")) for number, line in enumerate(lines, start=1)]


def record_lines(path: Path) -> list[tuple[int, str]]:
    """The numbered non-blank lines of a one-record-per-line file (jsonl, TSV)."""
    return [(number, line) for number, line in numbered_lines(read_text(path)) if line.strip()]


def language_from_filename(path: Path) -> str:
    """``de.test.conll`` -> ``de``; ``de-ba.valid.conll`` -> ``de-ba``; ``text.en`` -> ``en``."""
    name = Path(path).name.removesuffix(".gz")
    if name.startswith(("text.", "label.")):
        return name.split(".", 1)[1]
    return name.split(".", 1)[0]

