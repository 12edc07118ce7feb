"""Slot-value catalogues: lexicons a team brings, and the two ways to use one.

A catalogue holds values (cities, artists, playlists...) a team has before it has annotated
utterances that use them. It is a ``SlotLexicon`` read from a file a person writes by hand,
one value a line with its slot type and, optionally, its language (``#`` starts a comment)::

    city	München
    artist	Die Ärzte
    city	Wien	de-at

or from any annotated file the project reads (its slot spans become values; intents and
carrier phrases are ignored). Values are split into words the way the data is
(``nlu.parse.tokenize``: ``Rock'n'Roll!`` -> ``Rock'n'Roll !``);
for languages written without spaces (ja, th, zh...) a value must be given pre-tokenised,
its words separated by spaces. Every problem is a ``CatalogueError`` naming ``file:line``
(or ``catalogue[i]`` for inline values); a value given twice is counted, never fatal.

Two uses, both filling slot spans through ``SlotFiller`` (own values and catalogue values,
mixed by ``catalogue_share``):

* ``refill``: real utterances, copied as ``nlu.dataset.upsample`` copies them, with every
  slot value redrawn: the snips-nlu-style baseline that uses a catalogue without a generator;
* ``gan.augment.Augmenter.generate(catalogue=...)``: a delexicalised generator's carrier
  phrases filled from the catalogue and the target's own values. A generator trained by a
  job whose YAML names a ``catalogue`` (``gan.training.load_job``) keeps it as its default.

``cross_lingual_catalogue`` builds one from another language's data: the source's values
of the slot types whose values stay the same across languages, judged on the target's
train/dev values only.
"""

from __future__ import annotations

import random as random_module
import re
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from nlu.errors import NluDataError
from nlu.formats.base import numbered_lines, read_text
from nlu.parse import NO_SPACE_LANGUAGES, ParseInputError, tokenize
from nlu.utterance import CONTROL, FORBIDDEN, Utterance, check_language, is_one_word

from gan.lexicon import LexiconError, SlotLexicon, _pick, is_delexicalised, replace_spans

TSV_COLUMNS = (2, 3)  # slot_type, value[, language]
REFILL_SOURCE = "refill"
# The share of slot fills a catalogue gets when none is said: 1, the share issue 28's dev phase
# chose for refill and for generated carriers alike (refill at 1 won on test).
DEFAULT_CATALOGUE_SHARE = 1.0


class CatalogueError(NluDataError):
    """A catalogue entry is unusable (unknown slot type, empty value, control character,
    bad language code, wrong column count); ``str()`` reads ``file:line: field: what``."""


@dataclass(frozen=True)
class CatalogueReport:
    values: int  # distinct values kept (over every language)
    duplicates: int  # entries that repeat a kept value
    by_slot_type: dict[str, int]  # distinct values per slot type

    def summary(self) -> str:
        """One line for a log or stderr."""
        types = ", ".join(f"{slot} {count}" for slot, count in sorted(self.by_slot_type.items()))
        return (f"catalogue: {self.values} values, {self.duplicates} duplicates"
                + (f" ({types})" if types else ""))


class _Collector:
    """Checks entries one at a time and keeps the distinct values."""

    def __init__(self, language: str | None, slot_types: Iterable[str] | None):
        self.language = language
        self.slot_types = None if slot_types is None else set(slot_types)
        self.found: dict[str, dict[str, set[tuple[str, ...]]]] = defaultdict(
            lambda: defaultdict(set))
        self.duplicates = 0

    def add(self, slot_type: str, value: str, language: str | None, fail) -> None:
        """``fail(field, message)`` raises the located error."""
        language = language if language not in (None, "") else self.language
        if language is None:
            fail("language", "no language: give it in a third column or as the catalogue's "
                 "language")
        try:
            check_language(language)
        except NluDataError as error:
            fail("language", error.message)
        self._check_text(slot_type, "slot_type", fail)
        if not is_one_word(slot_type):
            fail("slot_type", f"{slot_type!r} is empty or holds whitespace")
        if self.slot_types is not None and slot_type not in self.slot_types:
            fail("slot_type", f"unknown slot type {slot_type!r}; known: "
                 f"{', '.join(sorted(self.slot_types)) or 'none'}")
        self.keep(language, slot_type, self.words(value, language, fail))

    def keep(self, language: str, slot_type: str, words: tuple[str, ...]) -> None:
        values = self.found[language][slot_type]
        if words in values:
            self.duplicates += 1
        values.add(words)

    def _check_text(self, text: str, field: str, fail) -> None:
        found = FORBIDDEN.search(text)
        if found:
            kind = "control character" if CONTROL.match(found.group()) else "lone surrogate"
            fail(field, f"holds {kind} U+{ord(found.group()):04X} at character "
                 f"{found.start() + 1}")

    def words(self, value: str, language: str, fail) -> tuple[str, ...]:
        self._check_text(value, "value", fail)
        if not value.strip():
            fail("value", "empty value")
        if re.split("[-_]", language, maxsplit=1)[0].lower() in NO_SPACE_LANGUAGES:
            return tuple(value.split())  # given pre-tokenised (see the module doc)
        try:
            return tuple(tokenize(value, language)[0])
        except ParseInputError:
            fail("value", f"{value!r} is written in a script without spaces between words, "
                 f"but its language is {language!r}: give such a value pre-tokenised (words "
                 f"separated by spaces) with its language (ja, th, zh...) in the third column")

    def result(self) -> tuple[SlotLexicon, CatalogueReport]:
        lexicon = SlotLexicon({language: {slot: sorted(values)
                                          for slot, values in sorted(slots.items())}
                               for language, slots in sorted(self.found.items())})
        by_type: Counter = Counter()
        for slots in self.found.values():
            for slot, values in slots.items():
                by_type[slot] += len(values)
        return lexicon, CatalogueReport(sum(by_type.values()), self.duplicates,
                                        dict(sorted(by_type.items())))


def _annotated(path: Path) -> bool:
    """Is ``path`` a file of an annotated format (else a catalogue TSV)? A ``.tsv`` name is
    Schuster's format only when its first line has Schuster's five columns."""
    from nlu.errors import FormatError
    from nlu.formats import detect_format

    try:
        fmt = detect_format(path)
    except FormatError:
        return False
    if fmt != "schuster":
        return True
    first = next((line for _, line in numbered_lines(read_text(path))
                  if line.strip() and not line.startswith("#")), "")
    return len(first.split("\t")) == 5


def read_catalogue(path: Path | str, *, language: str | None = None,
                   slot_types: Iterable[str] | None = None
                   ) -> tuple[SlotLexicon, CatalogueReport]:
    """The catalogue in ``path`` (see the module doc) and what reading it found.

    ``language``: the language of TSV lines that name none (an annotated file's utterances
    are read with it as their language, as ``nlu.formats`` readers take it); ``slot_types``:
    the known slot types (another is an error), ``None`` to accept any."""
    path = Path(path)
    collector = _Collector(language, slot_types)
    if path.is_dir() or _annotated(path):
        from nlu.formats import read_utterances

        for utterance in read_utterances(path, language=language):
            if is_delexicalised(utterance):
                continue  # a placeholder is no value
            where = (utterance.source or str(path)).rpartition(":")

            def fail(field: str, message: str, where=where) -> None:
                line = int(where[2]) if where[2].isdigit() else None
                raise CatalogueError(message, path=where[0] or str(path), line=line,
                                     field=field)

            for span in utterance.spans:
                if collector.slot_types is not None and span.label not in collector.slot_types:
                    fail("slot_type", f"unknown slot type {span.label!r}; known: "
                         f"{', '.join(sorted(collector.slot_types)) or 'none'}")
                collector.keep(utterance.language, span.label,
                               utterance.tokens[span.start:span.end])
        return collector.result()
    for number, line in numbered_lines(read_text(path)):
        def fail(field: str, message: str, number=number) -> None:
            raise CatalogueError(message, path=str(path), line=number, field=field)

        if not line.strip() or line.lstrip().startswith("#"):
            continue
        columns = line.split("\t")
        if len(columns) not in TSV_COLUMNS:
            fail("columns", f"expected slot_type<TAB>value[<TAB>language], got "
                 f"{len(columns)} TAB-separated columns")
        slot_type, value, *rest = columns
        collector.add(slot_type.strip(), value, rest[0].strip() if rest else None, fail)
    return collector.result()


def catalogue_from_entries(entries: Iterable[tuple[str, str, str | None]], *,
                           language: str | None, slot_types: Iterable[str] | None = None,
                           field: str = "catalogue") -> tuple[SlotLexicon, CatalogueReport]:
    """The same checks for inline ``(slot_type, value, language)`` entries (a gRPC request):
    errors name ``<field>[<index>].<column>``."""
    collector = _Collector(language, slot_types)
    for index, (slot_type, value, entry_language) in enumerate(entries):
        def fail(column: str, message: str, index=index) -> None:
            raise CatalogueError(message, field=f"{field}[{index}].{column}")

        collector.add(slot_type, value, entry_language, fail)
    return collector.result()


def catalogue_from_utterances(utterances: Iterable[Utterance], *,
                              language: str | None = None) -> SlotLexicon:
    """The slot values of ``utterances``, as a catalogue (values only: intents and carrier
    phrases are dropped); ``language`` relabels every value to that language."""
    collector = _Collector(language, None)
    for utterance in utterances:
        if is_delexicalised(utterance):
            continue
        for span in utterance.spans:
            collector.keep(language or utterance.language, span.label,
                           utterance.tokens[span.start:span.end])
    return collector.result()[0]


def _folded(value: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(word.casefold() for word in value)


def cross_lingual_catalogue(source: Sequence[Utterance], target: Sequence[Utterance], *,
                            language: str, min_verbatim_share: float = 0.2,
                            min_target_values: int = 3) -> tuple[SlotLexicon, dict[str, float]]:
    """The source's values of the slot types whose values stay the same across languages.

    For each slot type of ``target`` (its train and dev data: never pass test data), the
    share of its distinct values (case-insensitive) that occur verbatim among ``source``'s
    values of that type. The catalogue holds every source value of the types whose share is
    at least ``min_verbatim_share`` over at least ``min_target_values`` distinct target values
    (one or two values make a share of 0 or 1 by chance), relabelled to ``language``.
    Returns the catalogue and the share per target slot type."""
    if not 0 <= min_verbatim_share <= 1:
        raise ValueError(f"min_verbatim_share: must be in [0, 1], got {min_verbatim_share}")
    source_values: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    for utterance in source:
        if not is_delexicalised(utterance):
            for span in utterance.spans:
                source_values[span.label].add(utterance.tokens[span.start:span.end])
    target_values: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    for utterance in target:
        if not is_delexicalised(utterance):
            for span in utterance.spans:
                target_values[span.label].add(_folded(utterance.tokens[span.start:span.end]))
    shares: dict[str, float] = {}
    for slot, values in sorted(target_values.items()):
        known = {_folded(value) for value in source_values.get(slot, ())}
        shares[slot] = len(values & known) / len(values)
    chosen = [slot for slot, share in shares.items() if share >= min_verbatim_share
              and len(target_values[slot]) >= min_target_values]
    catalogue = SlotLexicon({language: {slot: sorted(source_values[slot]) for slot in chosen
                                        if source_values.get(slot)}})
    return catalogue, shares


@dataclass(frozen=True)
class SlotFiller:
    """Fills slot spans from the target's own values and a catalogue, mixed:
    ``catalogue_share`` is the chance a span's value comes from the catalogue when both have
    a value of its type (each source stands in for the other when only one has one)."""

    own: SlotLexicon
    catalogue: SlotLexicon | None = None
    catalogue_share: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.catalogue_share <= 1:
            raise ValueError(f"catalogue_share: must be in [0, 1], got {self.catalogue_share}")

    def slot_types(self, language: str) -> set[str]:
        return self.own.slot_types(language) | (self.catalogue.slot_types(language)
                                                if self.catalogue is not None else set())

    def check_covers(self, language: str, slot_types: Iterable[str]) -> None:
        """Raise ``LexiconError`` unless every slot type has a value in one of the sources."""
        missing = sorted(set(slot_types) - self.slot_types(language))
        if missing:
            raise LexiconError(f"lexicon: no {language!r} value for slot type(s) "
                               f"{', '.join(missing)}"
                               + (" in it or the catalogue" if self.catalogue else ""))

    def _values(self, language: str, slot_type: str,
                rng: random_module.Random) -> Sequence[tuple[str, ...]]:
        own = self.own.values.get(language, {}).get(slot_type)
        listed = (self.catalogue.values.get(language, {}).get(slot_type)
                  if self.catalogue is not None else None)
        if own and listed:
            # One draw per span whichever share is set, so a seed's draws do not shift.
            return listed if rng.random() < self.catalogue_share else own
        if own or listed:
            return own or listed
        raise LexiconError(f"lexicon: no {language!r} value for slot type {slot_type!r} in "
                           f"the own values or the catalogue")

    def fill(self, utterance: Utterance, rng: random_module.Random, *,
             match_length: bool = True) -> Utterance:
        """``utterance`` with a new value in every slot span, like ``SlotLexicon.fill`` (a
        value of the span's length when ``match_length`` and there is one, else any value of
        the type); spans keep their type, so the tags stay valid IOB2."""
        def value(span) -> tuple[str, ...]:
            values = self._values(utterance.language, span.label, rng)
            return _pick(values, span.end - span.start, rng) if match_length \
                else rng.choice(values)

        return replace_spans(utterance, value)


def refill(utterances: Sequence[Utterance], filler: SlotFiller, *, count: int,
           seed: int) -> list[Utterance]:
    """``count`` copies of ``utterances`` with every slot value redrawn by ``filler`` (any
    length): the baseline that uses a catalogue without a generator.

    Copies are taken as ``nlu.dataset.upsample`` takes them, stratified by intent (each
    intent's share of ``count`` in proportion to its size): whole passes over a seeded
    shuffle of the intent's utterances, then a seeded remainder. Each copy's ``source`` is
    ``refill`` and its ``id`` ``refill-<n>:<original id or source>``. The same seed gives
    the same utterances."""
    from nlu.dataset import apportion

    utterances = list(utterances)
    if count < 0:
        raise ValueError(f"count: must be >= 0, got {count}")
    if not utterances:
        if count:
            raise ValueError("utterances: cannot refill an empty set")
        return []
    groups: dict[str, list[int]] = defaultdict(list)
    for position, utterance in enumerate(utterances):
        groups[utterance.intent].append(position)
    rng = random_module.Random(seed)
    order: list[int] = []
    for group, wanted in zip(groups.values(),
                             apportion(count, [len(group) for group in groups.values()])):
        taken: list[int] = []
        while len(taken) < wanted:
            taken += rng.sample(group, len(group))
        order += taken[:wanted]
    refilled = []
    for number, position in enumerate(order):
        original = utterances[position]
        origin = original.id or original.source or f"#{position}"
        refilled.append(filler.fill(original, rng, match_length=False).replace(
            id=f"{REFILL_SOURCE}-{number}:{origin}", source=REFILL_SOURCE))
    return refilled
