"""Evaluation shared by every job: intent accuracy, slot F1, exact match and SemER.

``evaluate(gold, predicted)`` compares two position-aligned lists of utterances and returns an
``EvaluationReport`` with the scores overall, per language and per intent, each with a
standard error, plus a confusion report (the worst intents and what they are mistaken for,
the worst slot types by F1).

Definitions (all computed per utterance, then summed over the set):

* **intent accuracy** - share of utterances whose predicted intent is the gold intent.
* **slot F1** - micro-averaged F1 over slot chunks, a chunk being right only when its type
  and both boundaries are right. Chunks are extracted by seqeval in strict IOB2 mode, which
  is what ``conlleval`` scores on IOB2 input (``Utterance`` guarantees IOB2, so the two
  agree; tests/test_metrics.py checks it against conlleval's own output).
* **exact match** - share of utterances whose intent and every slot tag are right.
* **SemER** - see ``semantic_errors``.

Seen vs unseen slot values (``evaluate(..., seen_values=seen_slot_values(train))``): a slot
span's *value* is its slot type with its tokens lower-cased; it is *seen* when the training
data holds a span with the same value, else *unseen*. A gold span is classified by its own
value and a predicted span by its own (a correct span has the same type and tokens in both,
so it falls in the same class on both sides), which makes precision (correct / predicted) and
recall (correct / gold) well defined in each class. Exact match is split by utterance: those
with at least one unseen gold value against the rest (including utterances with no slot).

Standard errors: the binomial ``sqrt(p (1 - p) / n)`` for the two accuracies; for slot F1 and
SemER, which are ratios of sums, the standard deviation of the statistic over ``n_bootstrap``
resamples of the utterances (with replacement, seeded).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Collection, Iterable, Sequence

import numpy as np

from nlu.errors import AnnotationError
from nlu.utterance import Span, Utterance

ALL = "all"  # the group name of the overall scores in ``flat`` keys and tables


class PredictionMismatchError(AnnotationError):
    """Gold and predicted utterances do not line up (count or tokens differ)."""


@dataclass(frozen=True)
class FrameErrors:
    """SemER counts for one utterance: substitutions, deletions, insertions, reference size."""

    substitutions: int
    deletions: int
    insertions: int
    reference: int

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions


def semantic_errors(gold: Utterance, predicted: Utterance) -> FrameErrors:
    """Count the frame-element errors of one prediction (the terms of SemER).

    SemER = (S + D + I) / N, summed over a test set, where the frame elements of an
    utterance are its intent plus its slots (type, token span) and N is the number of gold
    frame elements (one intent + the gold slots). It is the slot error rate of Makhoul et al.
    (1999, "Performance measures for information extraction", DARPA Broadcast News Workshop)
    with the intent counted as one more slot, as in Do & Gaspers (2019, "Cross-lingual
    transfer learning for spoken language understanding", ICASSP, arXiv:1904.01825).

    Matching, in this order:
      1. the intent: right, or one substitution;
      2. slots with the same type and span in both: correct;
      3. a left-over gold and predicted slot with the same type (wrong span, i.e. the
         value is wrong) or, failing that, the same span (wrong type): one substitution;
      4. gold slots still unmatched are deletions, predicted ones insertions.
    SemER can exceed 1 when a prediction inserts many slots.
    """
    substitutions = int(gold.intent != predicted.intent)
    gold_spans, predicted_spans = set(gold.spans), set(predicted.spans)
    gold_left = sorted(gold_spans - predicted_spans)
    predicted_left = sorted(predicted_spans - gold_spans)

    def same_type(a: Span, b: Span) -> bool:
        return a.label == b.label

    def same_position(a: Span, b: Span) -> bool:
        return (a.start, a.end) == (b.start, b.end)

    for same in (same_type, same_position):
        for gold_span in list(gold_left):
            partner = next((span for span in predicted_left if same(gold_span, span)), None)
            if partner is not None:
                gold_left.remove(gold_span)
                predicted_left.remove(partner)
                substitutions += 1
    return FrameErrors(substitutions, len(gold_left), len(predicted_left),
                       reference=1 + len(gold.spans))


@dataclass(frozen=True)
class Scores:
    """The four headline scores of one group of utterances, each with a standard error."""

    n: int
    intent_accuracy: float
    intent_accuracy_se: float
    slot_f1: float
    slot_f1_se: float
    slot_precision: float
    slot_recall: float
    exact_match: float
    exact_match_se: float
    semer: float
    semer_se: float
    gold_slots: int  # chunk counts, as conlleval prints them: "with G phrases; found: P; correct: C"
    predicted_slots: int
    correct_slots: int

    # short metric names used in ``EvaluationReport.flat`` keys
    FLAT_NAMES = {"intent_accuracy": "intent_acc", "slot_f1": "slot_f1",
                  "exact_match": "exact_match", "semer": "semer"}


@dataclass(frozen=True)
class SlotTypeScore:
    label: str
    precision: float
    recall: float
    f1: float
    gold: int
    predicted: int
    correct: int


@dataclass(frozen=True)
class IntentConfusion:
    intent: str
    n: int
    accuracy: float
    confused_with: list[tuple[str, int]]  # wrong predicted intents, most frequent first


SlotValue = tuple[str, tuple[str, ...]]  # (slot type, lower-cased value tokens)


@dataclass(frozen=True)
class ValueClassScores:
    """Slot scores on the spans of one class of values (seen or unseen in training)."""

    gold: int
    predicted: int
    correct: int
    precision: float
    recall: float
    f1: float  # 0 when the class has no span on either side (conlleval's convention)
    f1_se: float


@dataclass(frozen=True)
class SeenUnseenScores:
    """Slot scores on spans whose value was seen vs unseen in training, and exact match on
    utterances without vs with an unseen gold value (definitions: the module docstring)."""

    seen: ValueClassScores
    unseen: ValueClassScores
    seen_utterances: int  # utterances with no unseen gold value (those without slots too)
    unseen_utterances: int  # utterances with at least one unseen gold value
    exact_match_seen_utterances: float | None  # None when there is no such utterance
    exact_match_seen_utterances_se: float | None
    exact_match_unseen_utterances: float | None
    exact_match_unseen_utterances_se: float | None

    @property
    def unseen_span_share(self) -> float | None:
        """Share of the gold spans whose value is unseen; None without gold spans."""
        total = self.seen.gold + self.unseen.gold
        return self.unseen.gold / total if total else None

    def flat(self, prefix: str) -> dict[str, float]:
        """``{prefix}/slot_f1_unseen`` and the rest; a score with nothing to score (no span of
        the class on either side, no utterance of the kind) is left out, not logged as 0."""
        flat: dict[str, float] = {}
        for name, scores in (("seen", self.seen), ("unseen", self.unseen)):
            flat[f"{prefix}/gold_slots_{name}"] = float(scores.gold)
            if scores.gold + scores.predicted:
                flat.update({f"{prefix}/slot_f1_{name}": scores.f1,
                             f"{prefix}/slot_f1_{name}_se": scores.f1_se,
                             f"{prefix}/slot_precision_{name}": scores.precision,
                             f"{prefix}/slot_recall_{name}": scores.recall})
        for name in ("seen", "unseen"):
            flat[f"{prefix}/n_{name}_utterances"] = float(getattr(self, f"{name}_utterances"))
            exact_match = getattr(self, f"exact_match_{name}_utterances")
            if exact_match is not None:
                flat[f"{prefix}/exact_match_{name}_utterances"] = exact_match
                flat[f"{prefix}/exact_match_{name}_utterances_se"] = getattr(
                    self, f"exact_match_{name}_utterances_se")
        if self.unseen_span_share is not None:
            flat[f"{prefix}/unseen_span_share"] = self.unseen_span_share
        return flat


@dataclass
class EvaluationReport:
    overall: Scores
    by_language: dict[str, Scores]
    by_intent: dict[str, Scores]
    worst_intents: list[IntentConfusion] = field(default_factory=list)
    worst_slot_types: list[SlotTypeScore] = field(default_factory=list)
    # group (``all`` or a language) -> seen vs unseen slot values; empty unless
    # ``evaluate`` was given the training data's values
    seen_unseen: dict[str, SeenUnseenScores] = field(default_factory=dict)

    def flat(self, prefix: str = "test", *, per_intent: bool = False) -> dict[str, float]:
        """Metrics for MLflow: ``{"test/all/intent_acc": ..., "test/en/intent_acc_se": ...}``.

        ``per_intent=True`` adds ``test/intent/<intent>/<metric>`` keys; with seen values,
        ``test/<group>/slot_f1_unseen`` and the rest of ``SeenUnseenScores.flat`` are added.
        """
        groups = {ALL: self.overall, **self.by_language}
        if per_intent:
            groups.update({f"intent/{intent}": scores for intent, scores in self.by_intent.items()})
        flat: dict[str, float] = {}
        for group, scores in groups.items():
            for attribute, name in Scores.FLAT_NAMES.items():
                flat[f"{prefix}/{group}/{name}"] = getattr(scores, attribute)
                flat[f"{prefix}/{group}/{name}_se"] = getattr(scores, f"{attribute}_se")
            flat[f"{prefix}/{group}/n"] = float(scores.n)
        for group, value_scores in self.seen_unseen.items():
            flat.update(value_scores.flat(f"{prefix}/{group}"))
        return flat

    def to_dict(self) -> dict:
        return asdict(self)

    def to_markdown(self) -> str:
        """Tables: scores per language, then per intent, then the confusion report."""
        def row(name: str, scores: Scores) -> str:
            return (f"| {name} | {scores.n} "
                    f"| {_pct(scores.intent_accuracy, scores.intent_accuracy_se)} "
                    f"| {_pct(scores.slot_f1, scores.slot_f1_se)} "
                    f"| {_pct(scores.exact_match, scores.exact_match_se)} "
                    f"| {_pct(scores.semer, scores.semer_se)} |")

        header = ("| {} | n | intent acc | slot F1 | exact match | SemER |\n"
                  "|---|---:|---:|---:|---:|---:|")
        lines = ["Scores in % ± one standard error.", "", header.format("language"),
                 row(ALL, self.overall)]
        lines += [row(language, scores) for language, scores in sorted(self.by_language.items())]
        lines += _seen_unseen_markdown(self.seen_unseen)
        lines += ["", header.format("intent")]
        lines += [row(intent, scores) for intent, scores in sorted(self.by_intent.items())]
        lines += ["", "Worst intents:", "", "| intent | n | accuracy | confused with |",
                  "|---|---:|---:|---|"]
        for confusion in self.worst_intents:
            confused = ", ".join(f"{intent} ({count})" for intent, count in confusion.confused_with)
            lines.append(f"| {confusion.intent} | {confusion.n} "
                         f"| {100 * confusion.accuracy:.1f} | {confused or '-'} |")
        lines += ["", "Worst slot types:", "",
                  "| slot type | gold | predicted | correct | precision | recall | F1 |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for slot in self.worst_slot_types:
            lines.append(f"| {slot.label} | {slot.gold} | {slot.predicted} | {slot.correct} "
                         f"| {100 * slot.precision:.1f} | {100 * slot.recall:.1f} "
                         f"| {100 * slot.f1:.1f} |")
        return "\n".join(lines) + "\n"


def _pct(value: float, standard_error: float) -> str:
    return f"{100 * value:.2f} ± {100 * standard_error:.2f}"


def _seen_unseen_markdown(seen_unseen: dict[str, SeenUnseenScores]) -> list[str]:
    """The "seen vs unseen slot values" table, one row per group; nothing when not scored."""
    if not seen_unseen:
        return []
    lines = ["", "Seen vs unseen slot values (a value is seen when its slot type and "
             "lower-cased tokens occur in the training data; exact match on utterances "
             "without / with an unseen gold value):", "",
             "| language | gold spans seen / unseen | slot F1 seen | slot F1 unseen "
             "| utterances without / with | exact match without | exact match with |",
             "|---|---:|---:|---:|---:|---:|---:|"]

    def f1(part: ValueClassScores) -> str:
        return _pct(part.f1, part.f1_se) if part.gold + part.predicted else "–"

    def exact(scores: SeenUnseenScores, kind: str) -> str:
        value = getattr(scores, f"exact_match_{kind}_utterances")
        if value is None:
            return "–"
        return _pct(value, getattr(scores, f"exact_match_{kind}_utterances_se"))

    for group in sorted(seen_unseen, key=lambda name: (name != ALL, name)):
        scores = seen_unseen[group]
        lines.append(
            f"| {group} | {scores.seen.gold} / {scores.unseen.gold} | {f1(scores.seen)} "
            f"| {f1(scores.unseen)} | {scores.seen_utterances} / {scores.unseen_utterances} "
            f"| {exact(scores, 'seen')} | {exact(scores, 'unseen')} |")
    return lines


def slot_chunks(tag_sequences: Sequence[Sequence[str]]) -> list[set[Span]]:
    """Per sequence, the set of slot chunks seqeval's strict IOB2 mode extracts."""
    from seqeval.scheme import IOB2, Entities

    entities = Entities([list(tags) for tags in tag_sequences], IOB2).entities
    return [{Span(entity.start, entity.end, entity.tag) for entity in sentence}
            for sentence in entities]


def _check_aligned(gold: Sequence[Utterance], predicted: Sequence[Utterance]) -> None:
    if len(gold) != len(predicted):
        raise PredictionMismatchError(
            f"{len(gold)} gold utterances but {len(predicted)} predictions", field="predicted")
    for position, (gold_utterance, predicted_utterance) in enumerate(zip(gold, predicted)):
        if gold_utterance.tokens != predicted_utterance.tokens:
            raise PredictionMismatchError(
                f"utterance {position + 1} ({gold_utterance.id or 'no id'}): predicted tokens "
                f"{' '.join(predicted_utterance.tokens)!r} differ from gold "
                f"{' '.join(gold_utterance.tokens)!r}", field="tokens")


class _Counts:
    """Per-utterance counts, as arrays, from which every score and resample is a sum."""

    def __init__(self, gold: Sequence[Utterance], predicted: Sequence[Utterance]):
        gold_chunks = slot_chunks([utterance.tags for utterance in gold])
        predicted_chunks = slot_chunks([utterance.tags for utterance in predicted])
        self.intent_right = np.array([g.intent == p.intent for g, p in zip(gold, predicted)])
        self.exact = self.intent_right & np.array(
            [g.tags == p.tags for g, p in zip(gold, predicted)])
        self.gold_slots = np.array([len(chunks) for chunks in gold_chunks])
        self.predicted_slots = np.array([len(chunks) for chunks in predicted_chunks])
        self.correct_slots = np.array(
            [len(g & p) for g, p in zip(gold_chunks, predicted_chunks)])
        frame_errors = [semantic_errors(g, p) for g, p in zip(gold, predicted)]
        self.frame_errors = np.array([errors.errors for errors in frame_errors])
        self.frame_reference = np.array([errors.reference for errors in frame_errors])
        self.gold_chunks = gold_chunks
        self.predicted_chunks = predicted_chunks

    def scores(self, rows: np.ndarray, n_bootstrap: int, seed: int) -> Scores:
        n = len(rows)
        intent_accuracy = float(self.intent_right[rows].mean())
        exact_match = float(self.exact[rows].mean())
        gold, predicted, correct = (self.gold_slots[rows], self.predicted_slots[rows],
                                    self.correct_slots[rows])
        precision = _ratio(correct.sum(), predicted.sum())
        recall = _ratio(correct.sum(), gold.sum())
        # Resample utterances (not chunks): errors within an utterance are correlated.
        resamples = np.random.default_rng(seed).integers(0, n, size=(n_bootstrap, n))
        f1_resampled = _f1(correct[resamples].sum(1), gold[resamples].sum(1),
                           predicted[resamples].sum(1))
        errors, reference = self.frame_errors[rows], self.frame_reference[rows]
        semer_resampled = errors[resamples].sum(1) / reference[resamples].sum(1)
        return Scores(
            n=n,
            intent_accuracy=intent_accuracy,
            intent_accuracy_se=_binomial_se(intent_accuracy, n),
            slot_f1=float(_f1(correct.sum(), gold.sum(), predicted.sum())),
            slot_f1_se=_bootstrap_se(f1_resampled),
            slot_precision=precision,
            slot_recall=recall,
            exact_match=exact_match,
            exact_match_se=_binomial_se(exact_match, n),
            semer=float(errors.sum() / reference.sum()),
            semer_se=_bootstrap_se(semer_resampled),
            gold_slots=int(gold.sum()),
            predicted_slots=int(predicted.sum()),
            correct_slots=int(correct.sum()),
        )


def slot_value(tokens: Sequence[str], span: Span) -> SlotValue:
    """A span's value: its slot type and its tokens, lower-cased."""
    return span.label, tuple(token.lower() for token in tokens[span.start:span.end])


def seen_slot_values(train: Iterable[Utterance]) -> frozenset[SlotValue]:
    """The value of every slot span in ``train`` (``evaluate``'s ``seen_values``)."""
    return frozenset(slot_value(utterance.tokens, span)
                     for utterance in train for span in utterance.spans)


class _SeenUnseenCounts:
    """Per-utterance span counts of seen and unseen values, as arrays (as ``_Counts``)."""

    def __init__(self, gold: Sequence[Utterance], counts: _Counts,
                 seen_values: Collection[SlotValue]):
        def seen_count(utterances_chunks) -> np.ndarray:
            return np.array([sum(slot_value(utterance.tokens, span) in seen_values
                                 for span in chunks) for utterance, chunks in utterances_chunks],
                            dtype=int)

        # predicted and gold utterances have the same tokens (checked), so gold's serve both
        self.gold_seen = seen_count(zip(gold, counts.gold_chunks))
        self.predicted_seen = seen_count(zip(gold, counts.predicted_chunks))
        self.correct_seen = seen_count(
            zip(gold, (g & p for g, p in zip(counts.gold_chunks, counts.predicted_chunks))))
        self.gold_unseen = counts.gold_slots - self.gold_seen
        self.predicted_unseen = counts.predicted_slots - self.predicted_seen
        self.correct_unseen = counts.correct_slots - self.correct_seen
        self.has_unseen = self.gold_unseen > 0
        self.exact = counts.exact

    def scores(self, rows: np.ndarray, n_bootstrap: int, seed: int) -> SeenUnseenScores:
        # the same resamples as ``_Counts.scores`` draws for these rows
        resamples = np.random.default_rng(seed).integers(0, len(rows), size=(n_bootstrap,
                                                                             len(rows)))

        def class_scores(gold, predicted, correct) -> ValueClassScores:
            gold, predicted, correct = gold[rows], predicted[rows], correct[rows]
            resampled = _f1(correct[resamples].sum(1), gold[resamples].sum(1),
                            predicted[resamples].sum(1))
            return ValueClassScores(
                gold=int(gold.sum()), predicted=int(predicted.sum()), correct=int(correct.sum()),
                precision=_ratio(correct.sum(), predicted.sum()),
                recall=_ratio(correct.sum(), gold.sum()),
                f1=float(_f1(correct.sum(), gold.sum(), predicted.sum())),
                f1_se=_bootstrap_se(resampled))

        has_unseen, exact = self.has_unseen[rows], self.exact[rows]
        exact_match: dict[str, float | None] = {}
        for name, kept in (("seen", ~has_unseen), ("unseen", has_unseen)):
            n = int(kept.sum())
            share = float(exact[kept].mean()) if n else None
            exact_match[f"exact_match_{name}_utterances"] = share
            exact_match[f"exact_match_{name}_utterances_se"] = (
                _binomial_se(share, n) if n else None)
        return SeenUnseenScores(
            seen=class_scores(self.gold_seen, self.predicted_seen, self.correct_seen),
            unseen=class_scores(self.gold_unseen, self.predicted_unseen, self.correct_unseen),
            seen_utterances=int((~has_unseen).sum()), unseen_utterances=int(has_unseen.sum()),
            **exact_match)


def _ratio(numerator, denominator) -> float:
    return float(numerator / denominator) if denominator else 0.0


def _f1(correct, gold, predicted):
    """Micro F1 = 2C / (G + P); 0 where there are no chunks at all (conlleval's convention)."""
    correct, total = np.asarray(correct, float), np.asarray(gold + predicted, float)
    return np.divide(2 * correct, total, out=np.zeros_like(total), where=total > 0)


def _binomial_se(proportion: float, n: int) -> float:
    return math.sqrt(proportion * (1 - proportion) / n)


def _bootstrap_se(resampled: np.ndarray) -> float:
    return float(resampled.std(ddof=1)) if len(resampled) > 1 else 0.0


def slot_type_scores(gold_chunks: Iterable[set[Span]],
                     predicted_chunks: Iterable[set[Span]]) -> list[SlotTypeScore]:
    """Precision / recall / F1 per slot type, sorted by label (conlleval's per-type lines)."""
    gold_count, predicted_count, correct_count = Counter(), Counter(), Counter()
    for gold, predicted in zip(gold_chunks, predicted_chunks):
        gold_count.update(span.label for span in gold)
        predicted_count.update(span.label for span in predicted)
        correct_count.update(span.label for span in gold & predicted)
    scores = []
    for label in sorted(gold_count | predicted_count):
        correct = correct_count[label]
        scores.append(SlotTypeScore(
            label=label,
            precision=_ratio(correct, predicted_count[label]),
            recall=_ratio(correct, gold_count[label]),
            f1=float(_f1(correct, gold_count[label], predicted_count[label])),
            gold=gold_count[label], predicted=predicted_count[label], correct=correct))
    return scores


def evaluate(gold: Sequence[Utterance], predicted: Sequence[Utterance], *,
             n_bootstrap: int = 1000, seed: int = 0, worst: int = 10,
             seen_values: Collection[SlotValue] | None = None) -> EvaluationReport:
    """Score ``predicted`` against ``gold`` (aligned by position; tokens must be identical).

    Groups are taken from the gold utterances (their language and intent). ``worst`` bounds
    the length of the confusion report's two lists. ``seen_values``
    (``seen_slot_values(train)``): the slot values the model was trained on; given, the report
    also scores seen vs unseen values overall and per language (``seen_unseen``).
    """
    if not gold:
        raise PredictionMismatchError("nothing to evaluate: no gold utterances", field="gold")
    _check_aligned(gold, predicted)
    counts = _Counts(gold, predicted)

    def grouped(key) -> dict[str, np.ndarray]:
        rows: dict[str, list[int]] = defaultdict(list)
        for position, utterance in enumerate(gold):
            rows[key(utterance)].append(position)
        return {name: np.array(indices) for name, indices in rows.items()}

    def scores_of(groups: dict[str, np.ndarray]) -> dict[str, Scores]:
        return {name: counts.scores(rows, n_bootstrap, seed) for name, rows in groups.items()}

    by_intent = scores_of(grouped(lambda utterance: utterance.intent))
    confusions: dict[str, Counter] = defaultdict(Counter)
    for gold_utterance, predicted_utterance in zip(gold, predicted):
        if gold_utterance.intent != predicted_utterance.intent:
            confusions[gold_utterance.intent][predicted_utterance.intent] += 1
    worst_intents = [
        IntentConfusion(intent, scores.n, scores.intent_accuracy,
                        confusions[intent].most_common(3))
        for intent, scores in sorted(by_intent.items(),
                                     key=lambda item: (item[1].intent_accuracy, item[0]))
        if scores.intent_accuracy < 1.0][:worst]
    seen_unseen: dict[str, SeenUnseenScores] = {}
    if seen_values is not None:
        value_counts = _SeenUnseenCounts(gold, counts, seen_values)
        languages = grouped(lambda utterance: utterance.language)
        seen_unseen = {name: value_counts.scores(rows, n_bootstrap, seed) for name, rows
                       in {ALL: np.arange(len(gold)), **languages}.items()}
    slot_types = slot_type_scores(counts.gold_chunks, counts.predicted_chunks)
    worst_slot_types = sorted((slot for slot in slot_types if slot.f1 < 1.0),
                              key=lambda slot: (slot.f1, -slot.gold, slot.label))[:worst]
    return EvaluationReport(
        overall=counts.scores(np.arange(len(gold)), n_bootstrap, seed),
        by_language=scores_of(grouped(lambda utterance: utterance.language)),
        by_intent=by_intent,
        worst_intents=worst_intents,
        worst_slot_types=worst_slot_types,
        seen_unseen=seen_unseen,
    )
