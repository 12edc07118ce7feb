"""Quality gate: what stands between a generator's raw samples and the NLU training set.

Steps, in order (cheap ones first, so the discriminator and the NLU model only see survivors):

1. ``malformed``    a raw ``(tokens, tags, intent, language)`` sample that is not a valid
                    ``Utterance`` (empty, length mismatch, broken IOB2...). Dropped when
                    ``drop_malformed`` (the default); otherwise the validation error is raised.
2. ``duplicates``   the same annotation (``Utterance.key()``) was already kept or seen, in this
                    batch or an earlier one: the gate remembers across ``filter`` calls.
3. ``train_copies`` the token sequence of a training utterance (same language). Same words with
                    other labels are dropped too: they would contradict the real annotation.
                    The training data is given as utterances or as their ``copy_key``s (what a
                    saved generator keeps of the data it was trained on).
4. ``low_score``    the discriminator's score is below ``min_discriminator_score``.
5. ``disagreement`` a model trained on the real data does not predict the same intent and
                    tags (``nlu_agreement``).

Every step is counted in a ``GateReport``; reports add up across batches.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Protocol, Sequence

from nlu.errors import NluDataError
from nlu.utterance import Utterance

RawSample = tuple[Sequence[str], Sequence[str], str, str]  # tokens, tags, intent, language


class Predictor(Protocol):
    def predict(self, utterances: list[Utterance]) -> list[Utterance]: ...


@dataclass(frozen=True)
class GateConfig:
    drop_malformed: bool = True
    deduplicate: bool = True
    drop_train_copies: bool = True
    min_discriminator_score: float | None = None
    nlu_agreement: bool = False

    def __post_init__(self) -> None:
        score = self.min_discriminator_score
        if score is not None and not 0.0 <= score <= 1.0:
            raise ValueError(f"min_discriminator_score must be in [0, 1], got {score}")


@dataclass
class GateReport:
    """How many samples each step saw and dropped. ``seen`` = all the others + ``kept``.

    ``surplus`` passed every step but was not needed: ``Augmenter.generate`` samples spare
    rows in each round, so that a dropped sample seldom costs another round, and the spares
    that survive and are still unused at the end are surplus (with slot quotas, so are the
    samples that lacked their slot type and filled no other share).
    """

    seen: int = 0
    malformed: int = 0
    duplicates: int = 0
    train_copies: int = 0
    low_score: int = 0
    disagreement: int = 0
    kept: int = 0
    surplus: int = 0

    def __add__(self, other: "GateReport") -> "GateReport":
        return GateReport(**{field.name: getattr(self, field.name) + getattr(other, field.name)
                             for field in dataclasses.fields(self)})

    def __iadd__(self, other: "GateReport") -> "GateReport":
        # in place: whoever holds a gate's ``report`` sees the running totals
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))
        return self

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @property
    def kept_rate(self) -> float:
        """The share of samples that passed every step (kept or surplus)."""
        return (self.kept + self.surplus) / self.seen if self.seen else 0.0


def as_utterance(sample: Utterance | RawSample) -> Utterance:
    """An ``Utterance`` as is, or a raw tuple validated into one (raises ``NluDataError``)."""
    if isinstance(sample, Utterance):
        return sample
    tokens, tags, intent, language = sample
    return Utterance(tuple(tokens), tuple(tags), intent, language)


def sentence_key(utterance: Utterance) -> tuple[str, tuple[str, ...]]:
    """The words of an utterance, whatever its labels: what "a copy of a sentence" means."""
    return utterance.language, utterance.tokens


def copy_key(utterance: Utterance) -> str:
    """``sentence_key`` as a short digest: enough to recognise a copy of a training sentence,
    without keeping the sentence (a saved generator carries these, not its training data)."""
    language, tokens = sentence_key(utterance)
    text = "\x1f".join((language, *tokens))
    return hashlib.blake2b(text.encode("utf-8"), digest_size=10).hexdigest()


def agrees(gold: Utterance, predicted: Utterance) -> bool:
    return gold.intent == predicted.intent and gold.tags == predicted.tags


class QualityGate:
    """Stateful filter over batches of generated samples; ``report`` holds the running totals."""

    def __init__(self, config: GateConfig, train_utterances: Iterable[Utterance],
                 discriminator: Callable[[list[Utterance]], Any] | None = None,
                 nlu_model: Predictor | None = None, train_keys: Iterable[str] = ()):
        if config.min_discriminator_score is not None and discriminator is None:
            raise ValueError("min_discriminator_score is set but no discriminator was given")
        if config.nlu_agreement and nlu_model is None:
            raise ValueError("nlu_agreement is on but no nlu_model was given")
        self.config = config
        self.discriminator = discriminator
        self.nlu_model = nlu_model
        self.train_keys = {copy_key(utterance) for utterance in train_utterances}
        self.train_keys.update(train_keys)
        self.seen_keys: set[tuple] = set()
        self.report = GateReport()

    def filter(self, samples: Iterable[Utterance | RawSample]) -> tuple[list[Utterance], GateReport]:
        """Keep the samples that pass every enabled step; return them and this batch's report."""
        report = GateReport()
        candidates: list[Utterance] = []
        for sample in samples:
            report.seen += 1
            try:
                utterance = as_utterance(sample)
            except NluDataError:
                if not self.config.drop_malformed:
                    raise
                report.malformed += 1
                continue
            if self.config.deduplicate:
                if utterance.key() in self.seen_keys:
                    report.duplicates += 1
                    continue
                self.seen_keys.add(utterance.key())
            if self.config.drop_train_copies and copy_key(utterance) in self.train_keys:
                report.train_copies += 1
                continue
            candidates.append(utterance)

        if candidates and self.config.min_discriminator_score is not None:
            scores = self.discriminator(candidates)
            passing = [utterance for utterance, score in zip(candidates, scores, strict=True)
                       if float(score) >= self.config.min_discriminator_score]
            report.low_score += len(candidates) - len(passing)
            candidates = passing

        if candidates and self.config.nlu_agreement:
            predictions = self.nlu_model.predict(candidates)
            agreeing = [utterance for utterance, predicted
                        in zip(candidates, predictions, strict=True) if agrees(utterance, predicted)]
            report.disagreement += len(candidates) - len(agreeing)
            candidates = agreeing

        report.kept = len(candidates)
        self.report += report
        return candidates, report

    def set_aside(self, count: int) -> None:
        """``count`` kept samples were not needed after all: count them as surplus."""
        self.report.kept -= count
        self.report.surplus += count
