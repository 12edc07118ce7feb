"""Readers and writers for the exchange formats of intent + slot data, behind one API.

>>> from nlu.formats import read_utterances, write_utterances
>>> utterances = read_utterances("de.test.conll")            # format detected from the name
>>> write_utterances(utterances, "de.test.jsonl", "jsonl")

Rooms: one module per format (below), ``base`` for what their readers share (``ReadReport``,
line-numbered records, JSON errors located at ``file:line``), and this module's registry.

Formats (``FORMATS`` maps each name to its reader and writer; module docstrings give the
exact layout and any normalisation the writer applies):

=============  =========================================================================
``conll``      xSID CoNLL: ``# key = value`` comments + ``idx token intent tag`` lines
``xsid-pair``  xSID ``text.<lang>`` + ``label.<lang>`` (tags TAB intent), or their folder
``jointbert``  a folder with ``seq.in`` / ``seq.out`` / ``label`` (SNIPS, ATIS)
``schuster``   Schuster et al. 2019 TSV: character spans + tokenisation JSON
``snips-json`` the original Snips 2017 benchmark JSON (chunks with ``entity``)
``massive``    MASSIVE jsonl with ``annot_utt`` = ``wake me at [time : five am]``
``jsonl``      ours, lossless: one ``Utterance.to_dict()`` per line
=============  =========================================================================

Every writer writes through ``base.open_output`` (atomic; a leading U+FEFF survives the
reader's BOM removal). Single files may be gzip-compressed (``de.test.conll.gz``): they are read and written as
such. Every utterance's ``source`` is ``"<file>:<line>"``; every error is a ``NluDataError``
subclass located at ``file:line``. ``mode="repair"`` (the default) fixes IOB1 and malformed
tags and lists each fix in ``ReadReport.repairs``; ``mode="strict"`` raises instead.
"""

from __future__ import annotations

import gzip
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from nlu.atomic import atomic_open
from nlu.errors import FormatError
from nlu.formats import conll, jointbert, jsonl, massive, schuster, snips_json, xsid_pair
from nlu.formats.base import ReadReport, parse_json, record_lines
from nlu.utterance import Utterance, ValidationMode


@dataclass(frozen=True)
class Format:
    name: str
    read: Callable[..., ReadReport]  # (path, *, language=None, mode="repair") -> ReadReport
    write: Callable[[Sequence[Utterance], Path], None]
    writes_folder: bool  # the writer's path is a folder (two- and three-file layouts)


FORMATS: dict[str, Format] = {
    "conll": Format("conll", conll.read, conll.write, False),
    "xsid-pair": Format("xsid-pair", xsid_pair.read, xsid_pair.write, True),
    "jointbert": Format("jointbert", jointbert.read, jointbert.write, True),
    "schuster": Format("schuster", schuster.read, schuster.write, False),
    "snips-json": Format("snips-json", snips_json.read, snips_json.write, False),
    "massive": Format("massive", massive.read, massive.write, False),
    "jsonl": Format("jsonl", jsonl.read, jsonl.write, False),
}

SUFFIXES = {".conll": "conll", ".tsv": "schuster", ".json": "snips-json"}


def detect_format(path: Path | str) -> str:
    """The format name of ``path`` from its name or layout; ``FormatError`` if unknown."""
    path = Path(path)
    if path.is_dir():
        if all((path / member).is_file() for member in jointbert.MEMBERS):
            return "jointbert"
        if any(path.glob("text.*")) and any(path.glob("label.*")):
            return "xsid-pair"
        raise FormatError("folder is neither seq.in/seq.out/label nor text.<lang>/label.<lang>; "
                          "pass the format", path=str(path))
    if not path.exists():
        raise FormatError("no such file or folder", path=str(path))
    if path.name in jointbert.MEMBERS:
        return "jointbert"
    if path.name.startswith(("text.", "label.")):
        return "xsid-pair"
    suffix = _suffix(path)
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    if suffix == ".jsonl":
        number, first = record_lines(path)[0]
        record = parse_json(first, path, number)
        return "massive" if isinstance(record, dict) and "annot_utt" in record else "jsonl"
    raise FormatError(f"cannot tell the format from the name; pass one of {sorted(FORMATS)}",
                      path=str(path))


def _suffix(path: Path | str) -> str:
    """The suffix that names the format: ``x.conll.gz`` -> ``.conll``."""
    path = Path(path)
    return Path(path.stem).suffix if path.suffix == ".gz" else path.suffix


def output_format(path: Path | str) -> str:
    """The format an output path's name asks for (``x.jsonl`` -> ``jsonl``), or ``FormatError``."""
    suffix = _suffix(path)
    if suffix == ".jsonl":
        return "jsonl"
    if suffix in SUFFIXES:
        return SUFFIXES[suffix]
    raise FormatError(f"cannot tell the output format from the name; pass one of "
                      f"{sorted(FORMATS)}", path=str(path))


def _format(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown format {name!r}; known: {sorted(FORMATS)}") from None


def read_report(path: Path | str, fmt: str | None = None, *, language: str | None = None,
                mode: ValidationMode = "repair") -> ReadReport:
    """Read ``path`` (format ``fmt`` or detected) into utterances, repairs and warnings."""
    if not Path(path).exists():
        raise FormatError("no such file or folder", path=str(path))
    return _format(fmt or detect_format(path)).read(Path(path), language=language, mode=mode)


def read_utterances(path: Path | str, fmt: str | None = None, *, language: str | None = None,
                    mode: ValidationMode = "repair") -> list[Utterance]:
    """Read ``path`` into validated utterances (see ``read_report`` for repairs/warnings)."""
    return read_report(path, fmt, language=language, mode=mode).utterances


def write_utterances(utterances: Sequence[Utterance], path: Path | str, fmt: str) -> None:
    """Write ``utterances`` to ``path`` in format ``fmt``, atomically (file by file).

    A ``.gz`` path (single-file formats only) is gzip-compressed, reproducibly (no mtime).
    """
    path, writer = Path(path), _format(fmt)
    if path.suffix != ".gz":
        writer.write(list(utterances), path)
        return
    if writer.writes_folder:
        raise ValueError(f"{fmt} writes a folder; it cannot be one .gz file")
    with tempfile.TemporaryDirectory() as scratch:
        plain = Path(scratch) / path.stem
        writer.write(list(utterances), plain)
        with atomic_open(path, "wb") as stream, \
                gzip.GzipFile(filename="", mode="wb", fileobj=stream, mtime=0) as compressed:
            compressed.write(plain.read_bytes())


__all__ = ["FORMATS", "Format", "ReadReport", "detect_format", "output_format", "read_report",
           "read_utterances", "write_utterances"]
