"""Schuster et al. (2019) PyText TSV: character-offset slot spans + a tokenisation JSON.

Five TAB-separated columns, no header::

    alarm/modify_alarm  18:21:datetime,24:27:datetime  Cambiar alarma de 7am a 7pm  es_XX  {...}

1. intent; 2. slots as ``start:end:label`` CHARACTER offsets into column 3 (end exclusive),
comma-separated, empty when none; 3. the untokenised text; 4. locale (``es_XX`` -> ``es``);
5. JSON ``{"tokenizations": [{"tokens": [...], "tokenSpans": [{"start", "length"}...]}]}``.

Tokens are those of column 5 (Facebook's tokenizer, lower-cased); ``text`` keeps column 3.
Token offsets are character offsets, except on 406 Spanish lines where they are UTF-8 byte
offsets; the reader detects and converts those (a repair; strict mode raises ``FormatError``).
A character span becomes the tokens it overlaps. Whitespace at either end of a span is not
counted as a misalignment. Offsets outside the text are clamped to it and reported
(``es/test-es.tsv:387`` has ``-2:30``). A span that still does not start and end on token
boundaries is expanded to the tokens it overlaps and reported as a warning; a span that
selects no character, or no token, is reported and skipped; a span that overlaps an earlier
span after expansion is reported and skipped. ``mode="strict"`` raises
``SpanAlignmentError`` for each of these. Nothing is dropped silently.

The writer rejects slot types holding ``,`` (the slots column has no escape for it).
Writer normalisation: column 3 is written as the tokens joined by single spaces, spans and
token offsets are computed on that text, the locale is ``<language>_XX`` (``th_TH`` for Thai,
as in the release). Reading the written file gives back the same tokens, tags, intent and
language; ``text`` becomes the space-joined tokens.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Sequence

from nlu.errors import FieldTypeError, FormatError, SpanAlignmentError
from nlu.formats.base import (ReadReport, ReportBuilder, open_output, parse_json,
                              record_lines)
from nlu.utterance import (Span, Utterance, ValidationMode, check_strings, spans_to_tags,
                           type_name)

# The release's locale codes for languages whose code is not <language>_XX.
LOCALES = {"th": "th_TH"}


def read(path: Path, *, language: str | None = None,
         mode: ValidationMode = "repair") -> ReadReport:
    builder = ReportBuilder(path, mode)
    for number, line in record_lines(path):
        columns = line.split("\t")
        if len(columns) != 5:
            raise FormatError(f"expected 5 TAB-separated columns, got {len(columns)}",
                              path=str(path), line=number)
        intent, slots, text, locale, tokenization = columns
        tokens, token_spans = _tokenization(tokenization, path, number)
        token_spans = _character_offsets(text, tokens, token_spans, builder, number)
        spans = _token_spans(slots, text, token_spans, builder, number)
        builder.add(number, tokens, spans_to_tags(len(tokens), spans), intent,
                    language or locale.split("_", 1)[0], text=text)
    return builder.finish()


def _tokenization(column: str, path: Path, line: int) -> tuple[list[str], list[tuple[int, int]]]:
    """Column 5's tokens and token offsets, every value type-checked: tokens strings, offsets
    non-negative integers (a float or a string would fail later, far from the line)."""
    def refuse(message: str) -> FormatError:
        return FormatError(message, path=str(path), line=line, field="tokenization")

    try:
        document = parse_json(column, path, line)
    except FormatError as error:
        raise refuse(f"column 5: {error.message}") from None
    try:
        tokenization = document["tokenizations"][0]
        tokens, token_spans = tokenization["tokens"], tokenization["tokenSpans"]
    except (KeyError, IndexError, TypeError):
        raise refuse('column 5 is not a tokenization JSON: expected {"tokenizations": '
                     '[{"tokens": [...], "tokenSpans": [...]}]}') from None
    if not isinstance(token_spans, list):
        raise refuse(f"tokenSpans: expected a list, got {type_name(token_spans)}")
    try:
        check_strings(tokens, "tokenization")
    except FieldTypeError as error:
        raise refuse(f"tokens: {error.message}") from None
    if len(tokens) != len(token_spans):
        raise refuse(f"{len(tokens)} tokens but {len(token_spans)} token spans")
    offsets = []
    for position, span in enumerate(token_spans, start=1):
        if not isinstance(span, dict):
            raise refuse(f"token span {position}: expected an object, got {type_name(span)}")
        for key in ("start", "length"):
            value = span.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                number = isinstance(value, (int, float)) and not isinstance(value, bool)
                shown = value if number else type_name(value)
                raise refuse(f"token span {position}: {key} must be an integer >= 0, got {shown}")
        offsets.append((span["start"], span["start"] + span["length"]))
    return tokens, offsets


def _character_offsets(text: str, tokens: list[str], offsets: list[tuple[int, int]],
                       builder: ReportBuilder, line: int) -> list[tuple[int, int]]:
    """Token offsets in characters of ``text``.

    They are character offsets on most lines, but UTF-8 byte offsets on 406 Spanish lines
    (e.g. es/test-es.tsv:1, where "mañana" has length 7); those are converted and reported.
    """
    if _offsets_match(text, tokens, offsets):
        return offsets
    encoded = text.encode("utf-8")
    converted = [(len(encoded[:start].decode("utf-8", "ignore")),
                  len(encoded[:end].decode("utf-8", "ignore"))) for start, end in offsets]
    if not _offsets_match(text, tokens, converted):
        raise FormatError("token offsets match the tokens neither as characters nor as UTF-8 "
                          "bytes", path=builder.path, line=line, field="tokenization")
    message = "token offsets are UTF-8 byte offsets; converted to character offsets"
    if builder.mode == "strict":
        raise FormatError(message, path=builder.path, line=line, field="tokenization")
    builder.repaired(line, message)
    return converted


def _offsets_match(text: str, tokens: list[str], offsets: list[tuple[int, int]]) -> bool:
    # Tokens are lower-cased and NFKD-normalised (Thai "ำ" becomes "ํา"); compare likewise.
    return all(unicodedata.normalize("NFKD", text[start:end].lower())
               == unicodedata.normalize("NFKD", token.lower())
               for token, (start, end) in zip(tokens, offsets))


def _token_spans(slots: str, text: str, token_offsets: list[tuple[int, int]],
                 builder: ReportBuilder, line: int) -> list[Span]:
    spans: list[Span] = []
    taken: set[int] = set()
    for slot in filter(None, slots.split(",")):
        try:
            start_text, end_text, label = slot.split(":", 2)
            start, end = int(start_text), int(end_text)
        except ValueError:
            raise FormatError(f"slot {slot!r} is not start:end:label", path=builder.path,
                              line=line, field="slots") from None
        if start < 0 or end > len(text):  # es/test-es.tsv:387 has -2:30
            clamped = max(start, 0), min(end, len(text))
            _misaligned(builder, line, f"slot {slot!r} reaches outside the text (0:{len(text)}); "
                                       f"clamped to {clamped[0]}:{clamped[1]}")
            start, end = clamped
        # Spans that include a neighbouring space are aligned for all practical purposes.
        while start < end and text[start:start + 1].isspace():
            start += 1
        while end > start and text[end - 1:end].isspace():
            end -= 1
        if start >= end:
            _misaligned(builder, line, f"slot {slot!r} selects an empty string; skipped")
            continue
        covered = [index for index, (token_start, token_end) in enumerate(token_offsets)
                   if token_start < end and token_end > start]
        if not covered:
            _misaligned(builder, line, f"slot {slot!r} ({text[start:end]!r}) covers no token; "
                                       f"skipped")
            continue
        first, last = covered[0], covered[-1]
        if token_offsets[first][0] != start or token_offsets[last][1] != end:
            expanded = text[token_offsets[first][0]:token_offsets[last][1]]
            _misaligned(builder, line, f"slot {slot!r} ({text[start:end]!r}) does not align with "
                                       f"token boundaries; expanded to tokens {first + 1}-"
                                       f"{last + 1} ({expanded!r})")
        if taken.intersection(covered):
            _misaligned(builder, line, f"slot {slot!r} overlaps another slot's tokens; skipped")
            continue
        taken.update(covered)
        spans.append(Span(first, last + 1, label))
    return spans


def _misaligned(builder: ReportBuilder, line: int, message: str) -> None:
    if builder.mode == "strict":
        raise SpanAlignmentError(message, path=builder.path, line=line, field="slots")
    builder.warn(line, message)


def write(utterances: Sequence[Utterance], path: Path) -> None:
    with open_output(path) as stream:
        for index, utterance in enumerate(utterances):
            if any("," in label for label in utterance.slot_types):
                raise FormatError(f"utterance {utterance.source or index + 1} has a slot type "
                                  f"with ',', which the slots column cannot express",
                                  path=str(path))
            offsets, position = [], 0
            for token in utterance.tokens:
                offsets.append((position, position + len(token)))
                position += len(token) + 1
            slots = ",".join(f"{offsets[span.start][0]}:{offsets[span.end - 1][1]}:{span.label}"
                             for span in utterance.spans)
            tokenization = {"tokenizations": [{
                "tokens": list(utterance.tokens),
                "tokenSpans": [{"start": start, "length": end - start} for start, end in offsets],
            }]}
            locale = LOCALES.get(utterance.language, f"{utterance.language}_XX")
            stream.write("\t".join([utterance.intent, slots, " ".join(utterance.tokens), locale,
                                    json.dumps(tokenization, ensure_ascii=False,
                                               separators=(",", ":"))]) + "\n")
