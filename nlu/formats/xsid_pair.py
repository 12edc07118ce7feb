"""The xSID plain pair: ``text.<lang>`` (one tokenised utterance a line) + ``label.<lang>``.

Line *i* of ``label.<lang>`` holds the BIO tags of line *i* of ``text.<lang>`` separated by
spaces, a TAB, then the intent::

    text.en:   wake me up at five am
    label.en:  O O O O B-datetime I-datetime	alarm/set_alarm

``path`` may be either file of a pair or a folder; a folder is read pair by pair (one pair per
language, sorted by language). The language is the file suffix unless ``language`` is given.
The writer writes one pair per language into the folder ``path``; a language is a language
code (``Utterance`` refuses anything else), so no pair's name can lead out of that folder. Line numbers in errors and
``source`` are those of the ``label`` file (the text file has the same numbering).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from nlu.errors import FormatError, LengthMismatchError
from nlu.formats.base import (ReadReport, ReportBuilder, numbered_lines, open_output,
                              read_text)
from nlu.utterance import Utterance, ValidationMode


def pairs_in(path: Path) -> list[tuple[Path, Path, str]]:
    """``(text file, label file, language)`` for a pair file or a folder of pairs."""
    path = Path(path)
    if path.is_dir():
        texts = sorted(path.glob("text.*"))
        if not texts:
            raise FormatError("folder holds no text.<lang> file", path=str(path))
    elif path.name.startswith(("text.", "label.")):
        texts = [path.with_name("text." + path.name.split(".", 1)[1])]
    else:
        raise FormatError("expected text.<lang>, label.<lang> or a folder holding them",
                          path=str(path))
    pairs = []
    for text in texts:
        language = text.name.split(".", 1)[1]
        label = text.with_name(f"label.{language}")
        for member in (text, label):
            if not member.is_file():
                raise FormatError(f"missing {member.name} (the pair is text.{language} + "
                                  f"label.{language})", path=str(member))
        pairs.append((text, label, language))
    return pairs


def read(path: Path, *, language: str | None = None,
         mode: ValidationMode = "repair") -> ReadReport:
    report = ReadReport([])
    for text_path, label_path, file_language in pairs_in(path):
        report.extend(_read_pair(text_path, label_path, language or file_language, mode))
    return report


def _read_pair(text_path: Path, label_path: Path, language: str,
               mode: ValidationMode) -> ReadReport:
    text_lines = numbered_lines(read_text(text_path))
    label_lines = numbered_lines(read_text(label_path))
    if len(text_lines) != len(label_lines):
        shorter = min(len(text_lines), len(label_lines))
        raise LengthMismatchError(f"{text_path.name} has {len(text_lines)} lines, "
                                  f"{label_path.name} has {len(label_lines)}",
                                  path=str(label_path), line=shorter + 1)
    builder = ReportBuilder(label_path, mode)
    for (number, text), (_, label) in zip(text_lines, label_lines):
        tags, separator, intent = label.partition("\t")
        if not separator:
            raise FormatError("expected '<tags> TAB <intent>'", path=str(label_path), line=number)
        builder.add(number, text.split(), tags.split(), intent.strip(), language)
    return builder.finish()


def write(utterances: Sequence[Utterance], path: Path) -> None:
    path = Path(path)
    by_language: dict[str, list[Utterance]] = {}
    for utterance in utterances:
        by_language.setdefault(utterance.language, []).append(utterance)
    for language, group in by_language.items():
        with open_output(path / f"text.{language}") as text_file, \
                open_output(path / f"label.{language}") as label_file:
            for utterance in group:
                text_file.write(" ".join(utterance.tokens) + "\n")
                label_file.write(f"{' '.join(utterance.tags)}\t{utterance.intent}\n")
