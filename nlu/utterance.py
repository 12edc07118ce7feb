"""The one record type that crosses every boundary: an annotated utterance.

An ``Utterance`` is a tokenised sentence with one IOB2 slot tag per token, an intent and a
language. It is validated on construction, so any ``Utterance`` you hold is well-formed:

* at least one token, no empty token, no whitespace inside a token (every exchange format
  is whitespace-tokenised);
* exactly one tag per token;
* tags are ``O``, ``B-<type>`` or ``I-<type>`` (no whitespace) and an ``I-x`` only follows
  ``B-x`` or ``I-x`` (IOB2, the scheme conlleval and seqeval's strict mode score);
* every field has its type: tokens and tags lists of ``str``, intent and language ``str``,
  the optional fields ``str`` or ``None`` (nothing is stringified);
* no string holds a ``CONTROL`` character, so no writer can let one record spill into
  another line or column (a newline in ``id`` would forge a CoNLL utterance), nor a lone
  surrogate (a JSON ``"\\ud800"`` escape), which no writer can encode as UTF-8.

Data from the wild is not always that clean, so there is an explicit repair path:
``repair_tags`` converts IOB1 (``I-x`` opening a chunk) to IOB2 and turns tags with no valid
prefix into ``O``, returning what it changed; ``Utterance.build(..., mode="repair")`` uses it.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Iterable, Literal, NamedTuple, Sequence

from nlu.errors import AnnotationError, FieldTypeError, IOBError, LengthMismatchError

OUTSIDE = "O"
ValidationMode = Literal["strict", "repair"]
OPTIONAL_FIELDS = ("id", "domain", "source", "text")
# What ends a line for some reader (C0 controls, DEL, NEL, U+2028/9) or drives a terminal.
# Other C1 controls are allowed: real data holds them as mojibake (xSID no.test.conll:3937)
# and they break no writer.
CONTROL_CHARACTERS = "\x00-\x1f\x7f\x85\u2028\u2029"
CONTROL = re.compile(f"[{CONTROL_CHARACTERS}]")
# A language code of BCP-47 shape; 35 characters is RFC 5646's bound for a code to handle.
LANGUAGE = re.compile(r"[A-Za-z]{2,8}(?:-[A-Za-z0-9]{1,8})*")
MAX_LANGUAGE_LENGTH = 35
# What no field may hold: those, and lone surrogates, which no writer can encode as UTF-8.
FORBIDDEN = re.compile(f"[{CONTROL_CHARACTERS}\ud800-\udfff]")


class Span(NamedTuple):
    """A slot as a token span: tokens ``start`` .. ``end - 1`` carry slot type ``label``."""

    start: int
    end: int
    label: str


def type_name(value: object) -> str:
    """The JSON name of ``value``'s type, for messages (``None`` -> ``null``)."""
    return {type(None): "null", bool: "boolean", int: "number", float: "number", str: "string",
            list: "list", tuple: "list", dict: "object"}.get(type(value), type(value).__name__)


def check_string(value: object, field: str, *, optional: bool = False) -> None:
    """Raise ``FieldTypeError`` naming ``field`` unless ``value`` is a ``str`` (or ``None``
    when ``optional``)."""
    if not isinstance(value, str) and not (optional and value is None):
        expected = "a string or null" if optional else "a string"
        raise FieldTypeError(f"expected {expected}, got {type_name(value)}", field=field)


def check_strings(value: object, field: str) -> None:
    """Raise ``FieldTypeError`` naming ``field`` unless ``value`` is a list (or tuple) of ``str``."""
    if not isinstance(value, (list, tuple)):
        raise FieldTypeError(f"expected a list of strings, got {type_name(value)}", field=field)
    try:
        "".join(value)  # all strings: one C call
    except TypeError:
        position, item = next((position, item) for position, item in enumerate(value)
                              if not isinstance(item, str))
        raise FieldTypeError(f"item {position + 1}: expected a string, got {type_name(item)}",
                             field=field) from None


def check_characters(text: str, field: str) -> None:
    """Raise ``AnnotationError`` naming ``field`` if ``text`` holds a ``FORBIDDEN`` character."""
    found = FORBIDDEN.search(text)
    if found:
        kind = "control character" if CONTROL.match(found.group()) else "lone surrogate"
        raise AnnotationError(f"holds {kind} U+{ord(found.group()):04X} at character "
                              f"{found.start() + 1}", field=field)


def check_language(value: str, field: str = "language") -> None:
    """Raise ``AnnotationError`` naming ``field`` unless ``value`` is a language code of
    BCP-47 shape (see the module docstring)."""
    if len(value) > MAX_LANGUAGE_LENGTH or not LANGUAGE.fullmatch(value):
        shown = value if len(value) <= 60 else value[:60] + "..."
        raise AnnotationError(f"{shown!r} is not a language code (BCP-47 shape such as 'en', "
                              f"'de-ba', 'pt-BR'; at most {MAX_LANGUAGE_LENGTH} characters)",
                              field=field)


def split_tag(tag: str) -> tuple[str, str | None]:
    """``"B-city"`` -> ``("B", "city")``; ``"O"`` -> ``("O", None)``. Raises on anything else."""
    if tag == OUTSIDE:
        return OUTSIDE, None
    if len(tag) > 2 and tag[0] in "BI" and tag[1] == "-" and is_one_word(tag):
        return tag[0], tag[2:]
    raise IOBError(f"malformed tag {tag!r}: expected 'O', 'B-<type>' or 'I-<type>' "
                   f"(no whitespace)", field="tags")


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
        check_strings(self.tokens, "tokens")
        check_strings(self.tags, "tags")
        check_string(self.intent, "intent")
        check_string(self.language, "language")
        for name in OPTIONAL_FIELDS:
            check_string(getattr(self, name), name, optional=True)
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
        check_language(self.language)
        strings = {"tokens": " ".join(self.tokens), "tags": " ".join(self.tags),
                   "intent": self.intent, "language": self.language,
                   **{name: getattr(self, name) or "" for name in OPTIONAL_FIELDS}}
        if FORBIDDEN.search("".join(strings.values())):  # one search; then find the field
            for name, text in strings.items():
                check_characters(text, name)

    @classmethod
    def build(cls, tokens: Sequence[str], tags: Sequence[str], intent: str, language: str, *,
              mode: ValidationMode = "strict", **optional) -> tuple["Utterance", list[str]]:
        """Construct from raw fields; in ``repair`` mode fix the tags first.

        Returns the utterance and the list of repairs made (always empty in strict mode).
        """
        check_strings(tokens, "tokens")  # before the repair reads them
        check_strings(tags, "tags")
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
