"""The JointBERT / SlotGated-SLU layout: a folder with ``seq.in``, ``seq.out`` and ``label``.

Three line-aligned files: space-tokenised utterances, one BIO tag per token, and the intent.
Lines may end with a trailing space (SNIPS does). The layout carries no language: it is
``language`` if given, else ``en`` (the datasets published this way, ATIS and SNIPS, are
English). ``path`` is the folder or any of its three files; line numbers in errors and
``source`` are those of ``seq.out`` (all three files share the numbering).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from nlu.errors import FormatError, LengthMismatchError
from nlu.formats.base import (ReadReport, ReportBuilder, numbered_lines, open_output,
                              read_text)
from nlu.utterance import Utterance, ValidationMode

MEMBERS = ("seq.in", "seq.out", "label")
DEFAULT_LANGUAGE = "en"


def folder_of(path: Path) -> Path:
    path = Path(path)
    folder = path.parent if path.name in MEMBERS else path
    for member in MEMBERS:
        if not (folder / member).is_file():
            raise FormatError(f"missing {member} (the layout is seq.in + seq.out + label)",
                              path=str(folder / member))
    return folder


def read(path: Path, *, language: str | None = None,
         mode: ValidationMode = "repair") -> ReadReport:
    folder = folder_of(path)
    texts, tag_lines, intents = (numbered_lines(read_text(folder / member)) for member in MEMBERS)
    counts = {member: len(lines) for member, lines in zip(MEMBERS, (texts, tag_lines, intents))}
    if len(set(counts.values())) != 1:
        raise LengthMismatchError(f"files differ in length: {counts}", path=str(folder / "seq.out"),
                                  line=min(counts.values()) + 1)
    builder = ReportBuilder(folder / "seq.out", mode)
    for (number, text), (_, tags), (_, intent) in zip(texts, tag_lines, intents):
        builder.add(number, text.split(), tags.split(), intent.strip(),
                    language or DEFAULT_LANGUAGE)
    return builder.finish()


def write(utterances: Sequence[Utterance], path: Path) -> None:
    folder = Path(path)
    with open_output(folder / "seq.in") as seq_in, open_output(folder / "seq.out") as seq_out, \
            open_output(folder / "label") as labels:
        for utterance in utterances:
            seq_in.write(" ".join(utterance.tokens) + "\n")
            seq_out.write(" ".join(utterance.tags) + "\n")
            labels.write(utterance.intent + "\n")
