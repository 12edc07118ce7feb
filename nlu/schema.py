"""Label-schema mapping: rename intents and slot types so datasets can be mixed.

A mapping is a small YAML file::

    strict: true                  # every label must be listed (identity entries allowed)
    intents: {GetWeather: weather/find}
    slots: {city: location, reminder/noun: O}   # O removes the slot
    drop_intents: [weather/checkSunrise]         # utterances to leave out

Bundled mappings live in ``nlu/schemas/`` and load by name (``LabelMapping.load("snips-to-xsid")``);
each file's comments say where every choice comes from. With ``strict: false`` an unlisted
label passes through unchanged; with ``strict: true`` it raises ``LabelMappingError`` naming
the utterance's ``source``, which catches applying a mapping to the wrong dataset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import yaml

from nlu.errors import LabelMappingError
from nlu.utterance import OUTSIDE, Span, Utterance, spans_to_tags

SCHEMAS_DIR = Path(__file__).with_name("schemas")


def bundled_mappings() -> list[str]:
    return sorted(path.name.removesuffix(".yaml") for path in SCHEMAS_DIR.glob("*.yaml"))


@dataclass(frozen=True)
class LabelMapping:
    intents: dict[str, str] = field(default_factory=dict)
    slots: dict[str, str] = field(default_factory=dict)  # a slot mapped to "O" is removed
    drop_intents: frozenset[str] = frozenset()
    strict: bool = False
    name: str = "mapping"

    @classmethod
    def load(cls, name_or_path: str | Path) -> "LabelMapping":
        """Load a YAML mapping from a path, or a bundled one by name (``snips-to-xsid``)."""
        path = Path(name_or_path)
        if not path.is_file():
            name = str(name_or_path).removesuffix(".yaml")
            path = SCHEMAS_DIR / f"{name}.yaml"
            if not path.is_file():
                raise LabelMappingError(f"no mapping file {str(name_or_path)!r} and no bundled "
                                        f"mapping of that name; bundled: {bundled_mappings()}")
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as error:
            line = getattr(getattr(error, "problem_mark", None), "line", None)
            raise LabelMappingError(f"not valid YAML: {error}", path=str(path),
                                    line=None if line is None else line + 1) from None
        return cls.from_dict(document, name=path.name.removesuffix(".yaml"), path=str(path))

    @classmethod
    def from_dict(cls, document: dict, *, name: str = "mapping",
                  path: str | None = None) -> "LabelMapping":
        unknown = set(document) - {"intents", "slots", "drop_intents", "strict", "description"}
        if unknown:
            raise LabelMappingError(f"unknown keys {sorted(unknown)}", path=path)
        tables = {}
        for key in ("intents", "slots"):
            table = document.get(key) or {}
            if not isinstance(table, dict) or not all(
                    isinstance(old, str) and isinstance(new, str) and new.strip()
                    for old, new in table.items()):
                raise LabelMappingError(f"{key} must map label names to label names", path=path,
                                        field=key)
            tables[key] = dict(table)
        if OUTSIDE in tables["intents"].values():
            raise LabelMappingError("an intent cannot map to O; use drop_intents", path=path,
                                    field="intents")
        drop = document.get("drop_intents") or []
        if not isinstance(drop, list):
            raise LabelMappingError("drop_intents must be a list", path=path, field="drop_intents")
        return cls(tables["intents"], tables["slots"], frozenset(drop),
                   bool(document.get("strict", False)), name)

    def apply(self, utterances: Iterable[Utterance]) -> list[Utterance]:
        """Rename labels; leave out ``drop_intents``; raise on unlisted labels when strict."""
        mapped = []
        for utterance in utterances:
            if utterance.intent in self.drop_intents:
                continue
            spans = [Span(span.start, span.end,
                          self._label(self.slots, span.label, "slot", utterance))
                     for span in utterance.spans]
            mapped.append(utterance.replace(
                intent=self._label(self.intents, utterance.intent, "intent", utterance),
                tags=spans_to_tags(len(utterance.tokens),
                                   [span for span in spans if span.label != OUTSIDE])))
        return mapped

    def _label(self, table: dict[str, str], label: str, kind: str, utterance: Utterance) -> str:
        if label in table:
            return table[label]
        if self.strict:
            raise LabelMappingError(f"{kind} {label!r} is not in mapping {self.name!r} "
                                    f"(strict)", field=kind).at(path=utterance.source)
        return label
