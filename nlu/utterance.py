"""The one record type that crosses every boundary: an annotated utterance.

An ``Utterance`` is a tokenised sentence with one IOB2 slot tag per token, an intent and a
language. It is validated on construction, so any ``Utterance`` you hold is well-formed:

* at least one token, no empty token, no whitespace inside a token (every exchange format
  is whitespace-tokenised);
* exactly one tag per token;
* tags are ``O``, ``B-<type>`` or ``I-<type>`` and an ``I-x`` only follows ``B-x`` or ``I-x``
  (IOB2, the scheme conlleval and seqeval's strict mode score).

Data from the wild is not always that clean, so there is an explicit repair path:
``repair_tags`` converts IOB1 (``I-x`` opening a chunk) to IOB2 and turns tags with no valid
prefix into ``O``, returning what it changed; ``Utterance.build(..., mode="repair")`` uses it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Iterable, Literal, NamedTuple, Sequence

from nlu.errors import AnnotationError, IOBError, LengthMismatchError

OUTSIDE = "O"
ValidationMode = Literal["strict", "repair"]


class Span(NamedTuple):
    """A slot as a token span: tokens ``start`` .. ``end - 1`` carry slot type ``label``."""

    start: int
    end: int
    label: str


def split_tag(tag: str) -> tuple[str, str | None]:
    """``"B-city"`` -> ``("B", "city")``; ``"O"`` -> ``("O", None)``. Raises on anything else."""
    if tag == OUTSIDE:
        return OUTSIDE, None
    if len(tag) > 2 and tag[0] in "BI" and tag[1] == "-":
        return tag[0], tag[2:]
    raise IOBError(f"malformed tag {tag!r}: expected 'O', 'B-<type>' or 'I-<type>'", field="tags")


def is_one_word(text: str) -> bool:
    """Non-empty and free of whitespace (one C-level split, not a loop over characters)."""
    return text.split() == [text]


def check_iob2(tags: Sequence[str]) -> None:
    """Raise ``IOBError`` naming the first position where ``tags`` is not well-formed IOB2."""
    previous_type: str | None = None
    for position, tag in enumerate(tags):
        try:
            prefix, slot_type = split_tag(tag)
        except IOBError as error:
            raise IOBError(f"token {position + 1}: {error.message}", field="tags") from None
        if prefix == "I" and slot_type != previous_type:
            before = tags[position - 1] if position else "the start"
            raise IOBError(f"token {position + 1}: {tag!r} follows {before!r} "
                           f"(IOB2 needs B-{slot_type} to open a slot)", field="tags")
        previous_type = slot_type


def repair_tags(tags: Sequence[str]) -> tuple[tuple[str, ...], list[str]]:
    """Convert ``tags`` to IOB2; return the new tags and one message per change.

    * ``I-x`` that opens a chunk (IOB1 style) becomes ``B-x``;
    * a tag with no ``B-``/``I-`` prefix (e.g. xSID's ``Orecurring_datetime``) becomes ``O``.
    """
    repaired: list[str] = []
    changes: list[str] = []
    previous_type: str | None = None
    for position, tag in enumerate(tags):
        try:
            prefix, slot_type = split_tag(tag)
        except IOBError:
            changes.append(f"token {position + 1}: malformed {tag!r} -> 'O'")
            repaired.append(OUTSIDE)
            previous_type = None
            continue
        if prefix == "I" and slot_type != previous_type:
            changes.append(f"token {position + 1}: {tag!r} opens a slot -> 'B-{slot_type}'")
            tag = f"B-{slot_type}"
        repaired.append(tag)
        previous_type = slot_type
    return tuple(repaired), changes


def tags_to_spans(tags: Sequence[str]) -> list[Span]:
    """IOB2 tags -> token spans (the tags must already be valid IOB2)."""
    spans: list[Span] = []
    start: int | None = None
    current: str | None = None
    for position, tag in enumerate(tags):
        prefix, slot_type = split_tag(tag)
        if prefix != "I" and current is not None:
            spans.append(Span(start, position, current))
            current = None
        if prefix == "B":
            start, current = position, slot_type
    if current is not None:
        spans.append(Span(start, len(tags), current))
    return spans


def spans_to_tags(length: int, spans: Iterable[Span]) -> tuple[str, ...]:
    """Token spans -> IOB2 tags for a sentence of ``length`` tokens. Overlaps are an error."""
    tags = [OUTSIDE] * length
    for start, end, label in sorted(spans):
        if not 0 <= start < end <= length:
            raise AnnotationError(f"span {start}:{end} ({label}) is outside 0:{length}",
                                  field="spans")
        if any(tag != OUTSIDE for tag in tags[start:end]):
            raise AnnotationError(f"span {start}:{end} ({label}) overlaps another span",
                                  field="spans")
        tags[start] = f"B-{label}"
        for position in range(start + 1, end):
            tags[position] = f"I-{label}"
    return tuple(tags)


def domain_of(intent: str) -> str:
    """The domain an intent name implies: ``alarm/set_alarm`` -> ``alarm``; else the intent."""
    return intent.split("/", 1)[0] if "/" in intent else intent


@dataclass(frozen=True, slots=True)
class Utterance:
    """One annotated utterance. Immutable and valid by construction (see module docstring)."""

    tokens: tuple[str, ...]
    tags: tuple[str, ...]
    intent: str
    language: str
    id: str | None = None
    domain: str | None = None
    source: str | None = None  # where it came from: "file:line", "gan:<run>", "upsample", ...
    text: str | None = None  # the untokenised text, when a format carries it

    def __post_init__(self) -> None:
        # Accept lists from callers but store tuples, so records are hashable and immutable.
        object.__setattr__(self, "tokens", tuple(self.tokens))
        object.__setattr__(self, "tags", tuple(self.tags))
        if not self.tokens:
            raise AnnotationError("utterance has no tokens", field="tokens")
        if " ".join(self.tokens).split() != list(self.tokens):  # all tokens in one C call
            position, token = next((position, token) for position, token in enumerate(self.tokens)
                                   if not is_one_word(token))
            raise AnnotationError(f"token {position + 1} {token!r} is empty or has whitespace",
                                  field="tokens")
        if len(self.tags) != len(self.tokens):
            raise LengthMismatchError(
                f"{len(self.tokens)} tokens but {len(self.tags)} tags", field="tags")
        check_iob2(self.tags)
        if not is_one_word(self.intent):
            raise AnnotationError(f"intent {self.intent!r} is empty or has whitespace",
                                  field="intent")
        if not is_one_word(self.language):
            raise AnnotationError(f"language {self.language!r} is empty or has whitespace",
                                  field="language")

    @classmethod
    def build(cls, tokens: Sequence[str], tags: Sequence[str], intent: str, language: str, *,
              mode: ValidationMode = "strict", **optional) -> tuple["Utterance", list[str]]:
        """Construct from raw fields; in ``repair`` mode fix the tags first.

        Returns the utterance and the list of repairs made (always empty in strict mode).
        """
        changes: list[str] = []
        if mode == "repair" and len(tags) == len(tokens):
            tags, changes = repair_tags(tags)
        elif mode not in ("strict", "repair"):
            raise ValueError(f"unknown validation mode {mode!r}")
        return cls(tuple(tokens), tuple(tags), intent, language, **optional), changes

    @property
    def spans(self) -> list[Span]:
        return tags_to_spans(self.tags)

    @property
    def slot_types(self) -> set[str]:
        return {span.label for span in self.spans}

    @property
    def effective_domain(self) -> str:
        return self.domain or domain_of(self.intent)

    def key(self) -> tuple:
        """What makes two utterances the same annotation (for de-duplication and novelty)."""
        return (self.language, self.intent, self.tokens, self.tags)

    def replace(self, **changes) -> "Utterance":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return {field.name: (list(value) if isinstance(value, tuple) else value)
                for field in dataclasses.fields(self)
                if (value := getattr(self, field.name)) is not None}

    @classmethod
    def from_dict(cls, data: dict) -> "Utterance":
        return cls(**data)
