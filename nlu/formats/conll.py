"""xSID CoNLL: one block per utterance, comment lines then ``idx TAB token TAB intent TAB tag``.

::

    # id = 2
    # text = Benötige ich einen Pullover?
    # intent = weather/find
    1	Benötige	weather/find	O
    ...

Comments are ``# key = value`` or ``# key: value`` (both occur in xSID). The reader keeps
``id``, ``text``, ``intent``, ``domain`` and ``language``; other comments (``text-en``,
``slots`` with the original Facebook labels, ``dialect``...) are not part of an
``Utterance`` and are dropped. The language is, in order of precedence: the ``language``
argument, a ``# language`` comment, the file name (``de-ba.test.conll`` -> ``de-ba``).
The writer emits ``# id``, ``# text``, ``# intent``, ``# language`` (and ``# domain``
when set), so a written file reads back to the same utterances whatever its name.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from nlu.errors import FormatError
from nlu.formats.base import (ReadReport, ReportBuilder, language_from_filename, numbered_lines,
                              open_output, read_text)
from nlu.utterance import Utterance, ValidationMode

COMMENT = re.compile(r"#\s*(?P<key>[^=:\s]+)\s*(?:=|:)\s?(?P<value>.*)$")
KEPT_COMMENTS = ("id", "text", "intent", "domain", "language")


def read(path: Path, *, language: str | None = None,
         mode: ValidationMode = "repair") -> ReadReport:
    builder = ReportBuilder(path, mode)
    blocks: list[list[tuple[int, str]]] = [[]]
    for number, line in numbered_lines(read_text(path)):
        if line.strip():
            blocks[-1].append((number, line))
        elif blocks[-1]:
            blocks.append([])
    for block in blocks:
        if block:
            _read_block(block, builder, language or None, Path(path))
    return builder.finish()


def _read_block(block: list[tuple[int, str]], builder: ReportBuilder, language: str | None,
                path: Path) -> None:
    comments: dict[str, str] = {}
    tokens: list[str] = []
    tags: list[str] = []
    token_intents: list[tuple[int, str]] = []
    for number, line in block:
        if line.startswith("#"):
            match = COMMENT.match(line)
            if match and match["key"] in KEPT_COMMENTS:
                comments.setdefault(match["key"], match["value"].strip())
            continue
        columns = line.split("\t")
        if len(columns) != 4:
            raise FormatError(f"expected 4 TAB-separated columns (idx, token, intent, tag), "
                              f"got {len(columns)}", path=str(path), line=number)
        tokens.append(columns[1])
        token_intents.append((number, columns[2]))
        tags.append(columns[3].strip())
    first_line = block[0][0]
    if not tokens:
        raise FormatError("comment block without token lines", path=str(path), line=first_line)
    intent = comments.get("intent") or token_intents[0][1]
    for number, token_intent in token_intents:
        if token_intent != intent:
            # Real data has this (de-muc.valid.conll:1001); the '# intent' comment wins.
            message = f"token line says intent {token_intent!r}, the utterance says {intent!r}"
            if builder.mode == "strict":
                raise FormatError(message, path=str(path), line=number, field="intent")
            builder.repaired(number, f"{message} -> {intent!r}")
    optional = {key: comments[key] for key in ("id", "text", "domain") if comments.get(key)}
    builder.add(first_line, tokens, tags, intent,
                language or comments.get("language") or language_from_filename(path), **optional)


def write(utterances: Sequence[Utterance], path: Path) -> None:
    with open_output(path) as stream:
        for utterance in utterances:
            if utterance.id is not None:
                stream.write(f"# id = {utterance.id}\n")
            stream.write(f"# text = {utterance.text or ' '.join(utterance.tokens)}\n")
            stream.write(f"# intent = {utterance.intent}\n")
            stream.write(f"# language = {utterance.language}\n")
            if utterance.domain is not None:
                stream.write(f"# domain = {utterance.domain}\n")
            for index, (token, tag) in enumerate(zip(utterance.tokens, utterance.tags), start=1):
                stream.write(f"{index}\t{token}\t{utterance.intent}\t{tag}\n")
            stream.write("\n")
