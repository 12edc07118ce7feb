"""Delexicalised generation: carrier phrases with slot placeholders, filled from a lexicon.

A delexicalised utterance keeps its words outside slots and its tags, but every word inside a
slot span becomes the placeholder of the span's type (``<slot:city>``)::

    wake/O me/O at/O six/B-time thirty/I-time  ->  wake/O me/O at/O <slot:time>/B-time <slot:time>/I-time

A generator trained on such utterances writes new carrier phrases and learns how long each
slot's spans are (one placeholder per word). ``SlotLexicon.fill`` then puts a value of that
slot type, seen in real data of the same language, into every span: a value of the span's
length when the lexicon has one, else any value of the type. So every generated utterance is
fully annotated, slot values are never invented, and value x carrier combinations are new.

Placeholders are the same token in every language, which lets a generator trained on source
and target data together share what it learnt about where slots go.
"""

from __future__ import annotations

import random as random_module
from collections import defaultdict
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from nlu.utterance import Span, Utterance

PLACEHOLDER_PREFIX = "<slot:"
# Where the slot values of generated utterances come from: the generator writes them
# (lexicalised), or a delexicalised generator's placeholders are filled from its training
# data's lexicon or from a lexicon the caller gives.
SLOT_VALUE_SOURCES = ("generated", "generator-lexicon", "given-lexicon")


def placeholder(slot_type: str) -> str:
    """The token standing for every word of a ``slot_type`` span."""
    return f"{PLACEHOLDER_PREFIX}{slot_type}>"


def delexicalise(utterance: Utterance) -> Utterance:
    """``utterance`` with each word inside a slot span replaced by its type's placeholder."""
    tokens = list(utterance.tokens)
    for span in utterance.spans:
        tokens[span.start:span.end] = [placeholder(span.label)] * (span.end - span.start)
    return utterance.replace(tokens=tuple(tokens), text=None)


def is_delexicalised(utterance: Utterance) -> bool:
    return any(token.startswith(PLACEHOLDER_PREFIX) for token in utterance.tokens)


class LexiconError(ValueError):
    """A lexicon lacks what a fill needs (a language or a slot type)."""


@dataclass
class SlotLexicon:
    """Distinct slot values seen in real data: language -> slot type -> values (token tuples)."""

    values: dict[str, dict[str, list[tuple[str, ...]]]]

    @classmethod
    def build(cls, utterances: Iterable[Utterance]) -> "SlotLexicon":
        found: dict[str, dict[str, set[tuple[str, ...]]]] = defaultdict(lambda: defaultdict(set))
        for utterance in utterances:
            if is_delexicalised(utterance):
                continue  # a placeholder is no value
            for span in utterance.spans:
                found[utterance.language][span.label].add(utterance.tokens[span.start:span.end])
        return cls({language: {slot: sorted(values) for slot, values in sorted(slots.items())}
                    for language, slots in sorted(found.items())})

    def slot_types(self, language: str) -> set[str]:
        return set(self.values.get(language, {}))

    def size(self) -> int:
        """Distinct values over every language and slot type."""
        return sum(len(values) for slots in self.values.values() for values in slots.values())

    def fill(self, utterance: Utterance, rng: random_module.Random) -> Utterance:
        """A delexicalised ``utterance`` with a lexicon value in every slot span (see module
        doc); spans keep their type, so the tags stay valid IOB2."""
        by_type = self.values.get(utterance.language, {})

        def value(span) -> tuple[str, ...]:
            if span.label not in by_type:
                raise LexiconError(f"lexicon: no {utterance.language!r} value for slot type "
                                   f"{span.label!r}")
            return _pick(by_type[span.label], span.end - span.start, rng)

        return replace_spans(utterance, value)

    def to_dict(self) -> dict:
        return {language: {slot: [list(value) for value in values]
                           for slot, values in slots.items()}
                for language, slots in self.values.items()}

    @classmethod
    def from_dict(cls, data: dict) -> "SlotLexicon":
        return cls({language: {slot: [tuple(value) for value in values]
                               for slot, values in slots.items()}
                    for language, slots in data.items()})


def replace_spans(utterance: Utterance,
                  value_of: Callable[[Span], tuple[str, ...]]) -> Utterance:
    """``utterance`` with every slot span's words replaced by ``value_of(span)``, tagged
    B-/I- of the span's type (valid IOB2 whatever the new value's length); its text, no
    longer what the words say, is dropped."""
    tokens: list[str] = []
    tags: list[str] = []
    position = 0
    for span in utterance.spans:
        tokens += utterance.tokens[position:span.start]
        tags += utterance.tags[position:span.start]
        value = value_of(span)
        tokens += value
        tags += [f"B-{span.label}"] + [f"I-{span.label}"] * (len(value) - 1)
        position = span.end
    tokens += utterance.tokens[position:]
    tags += utterance.tags[position:]
    return utterance.replace(tokens=tuple(tokens), tags=tuple(tags), text=None)


def choose_lexicon(delexicalised: bool, slot_values: str | None,
                   given: SlotLexicon | None, own: SlotLexicon | None) -> SlotLexicon | None:
    """The lexicon that fills placeholders (None: the generator writes the values), for a
    request naming ``slot_values`` (None: what the generator does, with ``given`` if any);
    a combination that cannot be met is a ``ValueError`` naming the field."""
    if slot_values is None:
        slot_values = ("generated" if not delexicalised
                       else "given-lexicon" if given is not None else "generator-lexicon")
    if slot_values not in SLOT_VALUE_SOURCES:
        raise ValueError(f"slot_values: {slot_values!r} is not one of "
                         f"{', '.join(SLOT_VALUE_SOURCES)}")
    if (slot_values == "generated") == delexicalised:
        kind = "delexicalised: it fills slots from a lexicon" if delexicalised else \
            "lexicalised: it writes its own slot values"
        raise ValueError(f"slot_values: {slot_values!r} does not fit this generator ({kind})")
    if (slot_values == "given-lexicon") != (given is not None):
        raise ValueError("lexicon: give one exactly when slot_values is 'given-lexicon'")
    return given if given is not None else own


def _pick(values: Sequence[tuple[str, ...]], length: int,
          rng: random_module.Random) -> tuple[str, ...]:
    """A value of ``length`` words when there is one (what G wrote), else any value."""
    fitting = [value for value in values if len(value) == length]
    return rng.choice(fitting or values)
