"""The project's own lossless format: one ``Utterance.to_dict()`` JSON object a line.

Every field round-trips, including ``source``: a record that carries a ``source`` keeps it
(so synthetic or upsampled utterances stay traceable); one without gets ``file:line``.
``language``, when given, overrides the records' language.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from nlu.errors import FormatError
from nlu.formats.base import (ReadReport, ReportBuilder, open_output, parse_json,
                              record_lines)
from nlu.utterance import OPTIONAL_FIELDS, Utterance, ValidationMode, type_name

FIELDS = ("tokens", "tags", "intent", "language", *OPTIONAL_FIELDS)


def read(path: Path, *, language: str | None = None,
         mode: ValidationMode = "repair") -> ReadReport:
    builder = ReportBuilder(path, mode)
    for number, line in record_lines(path):
        record = parse_json(line, path, number)
        try:
            if not isinstance(record, dict):
                raise TypeError(f"got {type_name(record)}")
            unknown = set(record) - set(FIELDS)
            if unknown:
                raise KeyError(f"unknown fields {sorted(unknown)}")
            tokens, tags, intent = record["tokens"], record["tags"], record["intent"]
            record_language = language or record["language"]
        except (KeyError, TypeError) as error:
            raise FormatError(f"expected an utterance object with tokens, tags, intent and "
                              f"language ({error})", path=str(path), line=number) from None
        # The fields' types are the record's to check (Utterance), as for every format.
        optional = {key: record[key] for key in OPTIONAL_FIELDS if record.get(key) is not None}
        builder.add(number, tokens, tags, intent, record_language, **optional)
    return builder.finish()


def write(utterances: Sequence[Utterance], path: Path) -> None:
    with open_output(path) as stream:
        for utterance in utterances:
            stream.write(json.dumps(utterance.to_dict(), ensure_ascii=False) + "\n")
