"""Parse: text or words in, intent + probability + ranking + slots out (the model's use).

``TrainedNlu.parse`` runs the model; this module holds what surrounds it and needs no torch:
the result records, input checks and the tokeniser for raw text.

* ``Parse``: one utterance's result, Rasa/snips-style: the intent with its softmax probability,
  the top-k ``ranking``, valid IOB2 ``tags`` and the ``slots`` as ``SlotSpan`` (token range and,
  for raw text, character offsets into the input, so ``text[start_char:end_char]`` is the
  slot's ``value``).
* ``tokenize``: raw text is split the way the training data (xSID, Schuster et al. 2019) is:
  on whitespace, with punctuation and symbols at a word's edges split off as tokens of their
  own ("Do I need a sweater?" -> ``Do I need a sweater ?``); inside a word they stay
  (``7:30``, ``TV-Serie``, ``What's``), as do apostrophes at its edges (``l'``, ``'s``).
  This gives xSID 0.7's own tokens for 97.3% of its 19,999 dev/test utterances outside ja
  and zh; the rest are xSID's own inconsistencies (``Halo:`` kept whole, ``7 : 30`` split).
* Languages written without spaces (ja, th, zh, ...) have no whitespace to split on, and a
  wrong split silently corrupts every slot: their raw text is refused with a
  ``ParseInputError`` asking for pre-tokenised words (pass a list of words, the way the
  xSID ja/zh files are tokenised), never guessed at.
* Every input problem is a ``ParseInputError`` (an ``NluDataError``) naming its ``field``:
  empty text, more than ``MAX_TOKENS`` tokens, a control character, a language the model
  does not know.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass
from typing import Sequence

from nlu.errors import NluDataError
from nlu.utterance import FORBIDDEN, Utterance, check_characters, tags_to_spans

MAX_TOKENS = 200  # per utterance: far above any request to an assistant, bounds the work
# Languages written without spaces between words: raw text cannot be split on whitespace.
NO_SPACE_LANGUAGES = frozenset({"ja", "zh", "th", "lo", "km", "my", "bo", "yue", "wuu"})
# Scripts of those languages (Han, kana, Thai, Lao, Tibetan, Myanmar, Khmer): raw text in them
# is refused whatever language it is declared as.
NO_SPACE_SCRIPT = re.compile("[\u0e00-\u0eff\u0f00-\u0fff\u1000-\u109f\u1780-\u17ff"
                             "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
APOSTROPHES = "'\u2019"  # kept at a word's edge: Italian "l'", Dutch "'s", English "80's"
WORD = re.compile(r"\S+")
CACHED_WORD_CHARACTERS = 64  # the splits of words up to this long are remembered


class ParseInputError(NluDataError):
    """An input the model cannot parse (empty, too long, control characters, an unknown
    language, raw text of a language written without spaces); ``field`` names the input."""


@dataclass(frozen=True)
class SlotSpan:
    type: str  # slot type, e.g. "datetime"
    value: str  # the span's words joined by " " (for raw text: the exact input substring)
    start: int  # first token index
    end: int  # one past the last token index
    start_char: int | None  # character offsets into the input text (None for words)
    end_char: int | None

    def to_dict(self) -> dict:
        return {"type": self.type, "value": self.value, "start": self.start, "end": self.end,
                "start_char": self.start_char, "end_char": self.end_char}


@dataclass(frozen=True)
class IntentScore:
    intent: str
    probability: float

    def to_dict(self) -> dict:
        return {"intent": self.intent, "probability": self.probability}


@dataclass(frozen=True)
class Parse:
    text: str | None  # the raw input text (None for pre-tokenised input)
    tokens: tuple[str, ...]
    language: str
    intent: str
    probability: float  # softmax probability of ``intent``
    ranking: tuple[IntentScore, ...]  # top-k intents, best first (ranking[0].intent == intent)
    tags: tuple[str, ...]  # valid IOB2, one per token
    slots: tuple[SlotSpan, ...]

    def to_dict(self) -> dict:
        """JSON-ready (``text`` is left out for pre-tokenised input)."""
        record = {"text": self.text, "tokens": list(self.tokens), "language": self.language,
                  "intent": self.intent, "probability": self.probability,
                  "ranking": [score.to_dict() for score in self.ranking],
                  "tags": list(self.tags), "slots": [slot.to_dict() for slot in self.slots]}
        if self.text is None:
            del record["text"]
        return record

    def to_utterance(self) -> Utterance:
        """The parse as an annotated record (to write in any format the project writes)."""
        return Utterance(self.tokens, self.tags, self.intent, self.language, text=self.text)


@dataclass(frozen=True)
class ParseInput:
    """One checked input: its tokens and, for raw text, the text and each token's offsets."""

    tokens: tuple[str, ...]
    text: str | None = None
    offsets: tuple[tuple[int, int], ...] | None = None


def _is_edge_punctuation(character: str) -> bool:
    return (unicodedata.category(character)[0] in "PS") and character not in APOSTROPHES


def tokenize(text: str, language: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Words of ``text`` and each word's ``(start_char, end_char)``, xSID/Schuster style
    (see the module docstring). Raises ``ParseInputError`` for raw text of a language
    written without spaces: give its words instead."""
    base_language = re.split("[-_]", language, maxsplit=1)[0].lower()
    script = NO_SPACE_SCRIPT.search(text)
    if base_language in NO_SPACE_LANGUAGES or script:
        found = f" (U+{ord(script.group()):04X} at character {script.start() + 1})" if script else ""
        raise ParseInputError(
            f"raw text in a language written without spaces ({language}){found} cannot be "
            f"split into words reliably: pass the utterance as a list of words (tokens)",
            field="text")
    tokens: list[str] = []
    offsets: list[tuple[int, int]] = []
    for word in WORD.finditer(text):
        start, characters = word.start(), word.group()
        split = _split_short_word if len(characters) <= CACHED_WORD_CHARACTERS else _split_word
        for begin, finish in split(characters):
            tokens.append(text[start + begin:start + finish])
            offsets.append((start + begin, start + finish))
    return tokens, offsets


def _split_word(word: str) -> tuple[tuple[int, int], ...]:
    """The tokens of one whitespace-free ``word`` as offsets into it: each punctuation mark or
    symbol at its edges, and what is between."""
    start, end = 0, len(word)
    leading = []
    while start < end and _is_edge_punctuation(word[start]):
        leading.append((start, start + 1))
        start += 1
    trailing = []
    while end > start and _is_edge_punctuation(word[end - 1]):
        trailing.append((end - 1, end))
        end -= 1
    return tuple(leading + ([(start, end)] if start < end else []) + trailing[::-1])


# A word splits the same way every time: parse speed (bounded: short words, 65,536 of them)
_split_short_word = functools.lru_cache(maxsize=65_536)(_split_word)


def check_language(language: object, known: Sequence[str]) -> str:
    """``language`` if the model knows it (any language when ``known`` is empty: a model
    saved before languages were recorded)."""
    if not isinstance(language, str) or not language.strip():
        raise ParseInputError("give the utterances' language (e.g. 'de')", field="language")
    if known and language not in known:
        raise ParseInputError(f"the model does not know language {language!r}; it knows "
                              f"{', '.join(known)}", field="language")
    return language


def prepare_inputs(inputs: Sequence[str | Sequence[str]], language: str) -> list[ParseInput]:
    """Check and tokenise every input (``str``: raw text; a sequence of ``str``: words);
    errors name the input's position (``inputs[3]``)."""
    if isinstance(inputs, str):
        raise ParseInputError("expected a list of utterances, got one string", field="inputs")
    prepared = []
    for position, item in enumerate(inputs):
        field = f"inputs[{position}]"
        if isinstance(item, str):
            prepared.append(_prepare_text(item, language, field))
        else:
            prepared.append(_prepare_words(item, field))
    return prepared


def _prepare_text(text: str, language: str, field: str) -> ParseInput:
    if not text.strip():
        raise ParseInputError("empty text", field=field)
    _check_characters(text, field)
    try:
        tokens, offsets = tokenize(text, language)
    except ParseInputError as error:
        raise ParseInputError(error.message, field=field) from None
    _check_length(len(tokens), field)
    return ParseInput(tuple(tokens), text, tuple(offsets))


def _prepare_words(words: Sequence[str], field: str) -> ParseInput:
    try:
        words = list(words)  # any sequence: a list, a tuple, a protobuf repeated field
    except TypeError:
        words = None
    if words is None or not all(isinstance(word, str) for word in words):
        raise ParseInputError("expected a text or a list of words (strings)", field=field)
    if not words:
        raise ParseInputError("no words", field=field)
    joined = " ".join(words)
    _check_characters(joined, field)
    if joined.split() != list(words):
        raise ParseInputError("a word is empty or holds whitespace", field=field)
    _check_length(len(words), field)
    return ParseInput(tuple(words))


def _check_characters(text: str, field: str) -> None:
    if FORBIDDEN.search(text):
        try:
            check_characters(text, field)
        except NluDataError as error:
            raise ParseInputError(error.message, field=field) from None


def _check_length(count: int, field: str) -> None:
    if count > MAX_TOKENS:
        raise ParseInputError(f"{count} tokens, more than the {MAX_TOKENS} a parse takes",
                              field=field)


def build_parse(item: ParseInput, language: str, intents: Sequence[str],
                probabilities: Sequence[float], tags: Sequence[str], top_k: int) -> Parse:
    """The ``Parse`` of one input from the model's intent probabilities (one per intent, in
    ``intents`` order) and its IOB2 tags."""
    best_first = sorted(range(len(intents)), key=lambda index: -probabilities[index])
    ranking = tuple(IntentScore(intents[index], float(probabilities[index]))
                    for index in best_first[:max(1, top_k)])
    slots = []
    for span in tags_to_spans(tags):
        if item.offsets is not None:
            start_char, end_char = item.offsets[span.start][0], item.offsets[span.end - 1][1]
            value = item.text[start_char:end_char]
        else:
            start_char = end_char = None
            value = " ".join(item.tokens[span.start:span.end])
        slots.append(SlotSpan(span.label, value, span.start, span.end, start_char, end_char))
    return Parse(item.text, item.tokens, language, ranking[0].intent, ranking[0].probability,
                 ranking, tuple(tags), tuple(slots))


def parse_by_language(model, inputs: Sequence[str | Sequence[str]], languages: Sequence[str], *,
                      top_k: int = 3, batch_size: int = 256) -> list[Parse]:
    """``model.parse`` (a ``TrainedNlu``) of inputs with one language each: one batched parse
    per language, results in input order; an error names the input's position in ``inputs``."""
    if len(languages) != len(inputs):
        raise ValueError(f"{len(inputs)} inputs but {len(languages)} languages")
    results: list[Parse | None] = [None] * len(inputs)
    for language in dict.fromkeys(languages):
        positions = [index for index, each in enumerate(languages) if each == language]
        try:
            parses = model.parse([inputs[index] for index in positions], language=language,
                                 top_k=top_k, batch_size=batch_size)
        except ParseInputError as error:
            field = error.field or ""
            if field.startswith("inputs[") and field.endswith("]"):
                field = f"inputs[{positions[int(field[len('inputs['):-1])]}]"
            raise ParseInputError(error.message, field=field) from None
        for index, parse in zip(positions, parses):
            results[index] = parse
    return results
