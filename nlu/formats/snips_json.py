"""The original Snips 2017 benchmark JSON: ``{"<Intent>": [{"data": [chunk, ...]}, ...]}``.

A chunk is ``{"text": "..."}`` or ``{"text": "...", "entity": "<slot>"}``; the utterance is
the concatenation of the chunk texts.

Tokenisation rule: each chunk's text is split on whitespace, and a chunk boundary is always a
token boundary (so ``"John"`` + ``"'s"`` are two tokens). Tokens of an entity chunk get
``B-<entity>`` / ``I-<entity>``, others ``O``. Punctuation stays attached to its word
(``"here?"`` is one token), which keeps the text recoverable; nothing is lower-cased.

Encoding: files are read with ``errors="surrogatepass"`` as the Snips README says
(``train_PlayMusic_full.json`` holds one emoji as a CESU-8 surrogate pair); surrogate pairs
are joined into the real character before parsing. The language is ``language`` if given,
else ``en``. Chunk texts and entities must be JSON strings; a control character in the text
(148 utterances of the training files hold a ``"\\n"``) becomes a space in ``text``.
``source`` is ``file:line`` of the utterance's ``"data"`` key.

Writer normalisation: utterances are grouped by intent (intents in order of first
appearance, as the format requires), one chunk per run of tokens with the same slot, tokens
joined by single spaces; reading the written file gives the same utterances with ``text`` =
joined tokens (in intent-grouped order).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Sequence

from nlu.errors import EncodingError, FormatError
from nlu.formats.base import (ReadReport, ReportBuilder, open_output, parse_json,
                              read_text)
from nlu.utterance import CONTROL, OUTSIDE, Utterance, ValidationMode, check_string

DEFAULT_LANGUAGE = "en"
# A "data" key (a quote inside a JSON string value is always escaped, so this never
# matches text); used only to give each utterance its line number.
DATA_KEY = re.compile(r'(?<!\\)"data"\s*:')


def read(path: Path, *, language: str | None = None,
         mode: ValidationMode = "repair") -> ReadReport:
    try:
        text = _join_surrogates(read_text(path, errors="surrogatepass"))
    except EncodingError as error:
        raise error.at(path=str(path)) from None
    document = parse_json(text, path)
    if not isinstance(document, dict):
        raise FormatError('expected {"<Intent>": [{"data": [...]}, ...]}', path=str(path), line=1)
    data_lines = _line_numbers(text, [match.start() for match in DATA_KEY.finditer(text)])
    builder = ReportBuilder(path, mode)
    index = 0
    for intent, examples in document.items():
        if not isinstance(examples, list):
            raise FormatError(f"intent {intent!r} must hold a list of examples", path=str(path))
        for example in examples:
            line = data_lines[index] if index < len(data_lines) else 1
            index += 1
            chunks = example.get("data") if isinstance(example, dict) else None
            if not isinstance(chunks, list) or not all(isinstance(chunk, dict) and "text" in chunk
                                                       for chunk in chunks):
                raise FormatError('expected {"data": [{"text": ...}, ...]}', path=str(path),
                                  line=line)
            with builder.located(line):
                tokens, tags = _tokens_and_tags(chunks)
            utterance_text = CONTROL.sub(" ", "".join(chunk["text"] for chunk in chunks))
            builder.add(line, tokens, tags, intent, language or DEFAULT_LANGUAGE,
                        text=utterance_text)
    return builder.finish()


def _tokens_and_tags(chunks: list[dict]) -> tuple[list[str], list[str]]:
    tokens: list[str] = []
    tags: list[str] = []
    for chunk in chunks:
        check_string(chunk["text"], "text")
        check_string(chunk.get("entity"), "entity", optional=True)
        words = chunk["text"].split()
        entity = chunk.get("entity")
        tokens.extend(words)
        tags.extend(OUTSIDE if entity is None else f"{'B' if position == 0 else 'I'}-{entity}"
                    for position in range(len(words)))
    return tokens, tags


def _join_surrogates(text: str) -> str:
    """Turn each UTF-16 surrogate pair (as decoded from CESU-8 bytes) into its character."""
    try:
        return text.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeDecodeError:
        raise EncodingError("holds a lone UTF-16 surrogate (half of a CESU-8 pair)") from None


def _line_numbers(text: str, offsets: list[int]) -> list[int]:
    """1-based line numbers of ascending character ``offsets`` in ``text``, in one pass."""
    numbers, line, previous = [], 1, 0
    for offset in offsets:
        line += text.count("\n", previous, offset)
        numbers.append(line)
        previous = offset
    return numbers


def write(utterances: Sequence[Utterance], path: Path) -> None:
    document: dict[str, list[dict]] = {}
    for utterance in utterances:
        chunks: list[dict] = []
        for token, tag in zip(utterance.tokens, utterance.tags):
            entity = None if tag == OUTSIDE else tag[2:]
            separator = " " if chunks else ""
            continues = chunks and not tag.startswith("B-") and chunks[-1].get("entity") == entity
            if continues:
                chunks[-1]["text"] += f" {token}"
            elif entity is None:
                chunks.append({"text": separator + token})
            else:
                if separator:  # the space before an entity belongs to the text around it
                    chunks.append({"text": separator})
                chunks.append({"text": token, "entity": entity})
        document.setdefault(utterance.intent, []).append({"data": chunks})
    with open_output(path) as stream:
        json.dump(document, stream, ensure_ascii=False, indent=2)
        stream.write("\n")
