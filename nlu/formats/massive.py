"""MASSIVE (FitzGerald et al. 2022) jsonl: one JSON object a line.

::

    {"id": "1", "locale": "en-US", "partition": "train", "scenario": "alarm",
     "intent": "alarm_set", "utt": "wake me at five am",
     "annot_utt": "wake me at [time : five am]", "worker_id": "1"}

Slots are bracketed in ``annot_utt`` as ``[<slot> : <value>]``. Tokens are the whitespace
split of ``annot_utt`` with the brackets removed, a bracket always being a token boundary.
(For languages written without spaces, ja and zh, that yields one token per bracketed or
unbracketed run; retokenise before training.) The language is the locale without its region
subtag (``en-US`` -> ``en``; MASSIVE writes regions in upper case, so ``de-ba``, an xSID
dialect, stays ``de-ba``) unless ``language`` is given; ``domain`` is the ``scenario``; ``id`` is
kept; the other fields (``partition``, ``worker_id``, ``judgments``...) are dropped. The kept
fields must be JSON strings (``id``, ``scenario`` and ``utt`` may be missing or null); a control
character in ``utt`` (a newline...) becomes a space.

The annotation has no escape for brackets, so the writer rejects tokens holding ``[`` or ``]``
and slot types holding ``[``, ``]`` or ``:``.
The writer also refuses a language ending in a region (``pt-BR``), which would read back
as ``pt``. Writer normalisation: ``utt`` is the tokens joined by single spaces, ``locale`` is
the language, ``scenario`` the utterance's domain (or the intent's prefix before ``_``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Sequence

from nlu.errors import FormatError
from nlu.formats.base import (ReadReport, ReportBuilder, open_output, parse_json,
                              record_lines)
from nlu.utterance import CONTROL, OUTSIDE, Utterance, ValidationMode, check_string

SLOT = re.compile(r"\[\s*(?P<label>[^\s\[\]:]+)\s*:\s*(?P<value>[^\[\]]*?)\s*\]")
REGION = re.compile(r"[A-Z]{2}|[0-9]{3}")  # a BCP-47 region subtag, as MASSIVE writes them


def language_of(locale: str) -> str:
    """``en-US`` -> ``en``, ``zh-Hant-TW`` -> ``zh-Hant``; ``de-ba`` and ``en`` stay as they are."""
    language, _, region = locale.rpartition("-")
    return language if language and REGION.fullmatch(region) else locale


def read(path: Path, *, language: str | None = None,
         mode: ValidationMode = "repair") -> ReadReport:
    builder = ReportBuilder(path, mode)
    for number, line in record_lines(path):
        record = parse_json(line, path, number)
        try:
            intent, locale, annotated = record["intent"], record["locale"], record["annot_utt"]
        except (KeyError, TypeError) as error:
            raise FormatError(f"expected a MASSIVE JSON object with intent, locale and "
                              f"annot_utt ({error!r})", path=str(path), line=number) from None
        with builder.located(number):
            for key in ("intent", "locale", "annot_utt"):
                check_string(record[key], key)
            for key in ("id", "scenario", "utt"):
                check_string(record.get(key), key, optional=True)
        tokens, tags = parse_annotation(annotated, str(path), number)
        optional = {"text": record.get("utt") and CONTROL.sub(" ", record["utt"]),
                    "domain": record.get("scenario"), "id": record.get("id")}
        builder.add(number, tokens, tags, intent, language or language_of(locale),
                    **{key: value for key, value in optional.items() if value})
    return builder.finish()


def parse_annotation(annotated: str, path: str, line: int) -> tuple[list[str], list[str]]:
    """``"wake me at [time : five am]"`` -> tokens and IOB2 tags."""
    tokens: list[str] = []
    tags: list[str] = []
    position = 0
    for match in SLOT.finditer(annotated):
        _add_outside(annotated[position:match.start()], tokens, tags, path, line)
        words = match["value"].split()
        if not words:
            raise FormatError(f"slot {match.group(0)!r} has no value", path=path, line=line,
                              field="annot_utt")
        tokens.extend(words)
        tags.extend(f"{'B' if index == 0 else 'I'}-{match['label']}" for index in range(len(words)))
        position = match.end()
    _add_outside(annotated[position:], tokens, tags, path, line)
    return tokens, tags


def _add_outside(text: str, tokens: list[str], tags: list[str], path: str, line: int) -> None:
    if "[" in text or "]" in text:
        raise FormatError(f"unbalanced or malformed slot bracket in {text.strip()!r} "
                          f"(expected '[slot : value]')", path=path, line=line, field="annot_utt")
    words = text.split()
    tokens.extend(words)
    tags.extend([OUTSIDE] * len(words))


def write(utterances: Sequence[Utterance], path: Path) -> None:
    with open_output(path) as stream:
        for index, utterance in enumerate(utterances):
            if any("[" in token or "]" in token for token in utterance.tokens):
                raise FormatError(f"utterance {utterance.source or index + 1} has a token with "
                                  f"'[' or ']', which MASSIVE's annot_utt cannot express",
                                  path=str(path))
            if any(set("[]:") & set(label) for label in utterance.slot_types):
                raise FormatError(f"utterance {utterance.source or index + 1} has a slot type "
                                  f"with '[', ']' or ':', which MASSIVE's annot_utt cannot "
                                  f"express", path=str(path))
            if language_of(utterance.language) != utterance.language:
                raise FormatError(f"utterance {utterance.source or index + 1} has language "
                                  f"{utterance.language!r}, which MASSIVE's reader reads as "
                                  f"{language_of(utterance.language)!r} (it drops a locale's "
                                  f"region)", path=str(path))
            pieces = [token if tag == OUTSIDE else None
                      for token, tag in zip(utterance.tokens, utterance.tags)]
            for span in utterance.spans:
                value = " ".join(utterance.tokens[span.start:span.end])
                pieces[span.start] = f"[{span.label} : {value}]"
            record = {
                "id": utterance.id if utterance.id is not None else str(index),
                "locale": utterance.language,
                "scenario": utterance.domain or utterance.intent.split("_", 1)[0],
                "intent": utterance.intent,
                "utt": " ".join(utterance.tokens),
                "annot_utt": " ".join(piece for piece in pieces if piece is not None),
            }
            stream.write(json.dumps(record, ensure_ascii=False) + "\n")
