"""Dataset utilities over lists of ``Utterance``: statistics, sampling, upsampling, splits.

Everything random takes an explicit ``seed`` and uses its own ``random.Random``, so the same
call gives the same result on any machine. Stratified operations group utterances by intent
and share counts out with the largest-remainder method, so totals are exact. Results keep
the input order of the utterances they select (upsampled copies come after the originals).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

from nlu.utterance import Utterance


@dataclass(frozen=True)
class DatasetStats:
    utterances: int
    tokens: int
    languages: Counter  # language -> utterances
    intents: Counter  # intent -> utterances
    slots: Counter  # slot type -> slot spans

    def render(self, top: int | None = None) -> str:
        """A plain-text report: totals, then per-language, intent and slot-type tables."""
        lines = [f"utterances  {self.utterances:,}",
                 f"tokens      {self.tokens:,}",
                 f"languages   {len(self.languages)}",
                 f"intents     {len(self.intents)}",
                 f"slot types  {len(self.slots)}"]
        for title, counter, unit in (("language", self.languages, "utterances"),
                                     ("intent", self.intents, "utterances"),
                                     ("slot type", self.slots, "spans")):
            lines += ["", *_table(title, counter, unit, top)]
        return "\n".join(lines)


def _table(title: str, counter: Counter, unit: str, top: int | None) -> list[str]:
    rows = counter.most_common(top)
    total = sum(counter.values())
    width = max([len(title), *(len(label) for label, _ in rows)])
    lines = [f"{title:<{width}}  {unit:>10}  {'share':>6}"]
    lines += [f"{label:<{width}}  {count:>10,}  {count / total:>6.1%}" for label, count in rows]
    if top is not None and len(counter) > top:
        lines.append(f"... {len(counter) - top} more")
    return lines


def stats(utterances: Iterable[Utterance]) -> DatasetStats:
    utterances = list(utterances)
    return DatasetStats(
        utterances=len(utterances),
        tokens=sum(len(utterance.tokens) for utterance in utterances),
        languages=Counter(utterance.language for utterance in utterances),
        intents=Counter(utterance.intent for utterance in utterances),
        slots=Counter(span.label for utterance in utterances for span in utterance.spans),
    )


def apportion(total: int, weights: Sequence[float]) -> list[int]:
    """Split ``total`` into integers proportional to ``weights`` (largest remainder method)."""
    weight_sum = sum(weights)
    if weight_sum <= 0:
        raise ValueError("weights must sum to a positive number")
    exact = [total * weight / weight_sum for weight in weights]
    counts = [math.floor(share) for share in exact]
    by_remainder = sorted(range(len(weights)), key=lambda index: counts[index] - exact[index])
    for index in by_remainder[:total - sum(counts)]:
        counts[index] += 1
    return counts


def _by_intent(utterances: Sequence[Utterance]) -> dict[str, list[int]]:
    """Intent -> positions in ``utterances``, intents in order of first appearance."""
    groups: dict[str, list[int]] = {}
    for position, utterance in enumerate(utterances):
        groups.setdefault(utterance.intent, []).append(position)
    return groups


def sample(utterances: Sequence[Utterance], *, per_intent: int | None = None,
           fraction: float | None = None, seed: int) -> list[Utterance]:
    """A seeded few-shot sample, stratified by intent.

    ``per_intent=k`` keeps ``k`` utterances of every intent (all of an intent with fewer).
    ``fraction=p`` keeps ``round(p * len(utterances))`` utterances with the intent
    proportions of the input, at least one per intent (so the total can exceed the target
    by at most the number of intents that would otherwise get none).
    """
    if (per_intent is None) == (fraction is None):
        raise ValueError("give exactly one of per_intent and fraction")
    utterances = list(utterances)
    groups = _by_intent(utterances)
    if per_intent is not None:
        if per_intent < 1:
            raise ValueError(f"per_intent must be >= 1, got {per_intent}")
        quotas = [min(per_intent, len(group)) for group in groups.values()]
    else:
        if not 0 < fraction <= 1:
            raise ValueError(f"fraction must be in (0, 1], got {fraction}")
        sizes = [len(group) for group in groups.values()]
        quotas = [max(1, quota) for quota in apportion(round(fraction * len(utterances)), sizes)]
    rng = random.Random(seed)
    chosen = [position for group, quota in zip(groups.values(), quotas)
              for position in rng.sample(group, quota)]
    return [utterances[position] for position in sorted(chosen)]


def upsample(utterances: Sequence[Utterance], target_size: int, seed: int) -> list[Utterance]:
    """Repeat real utterances, stratified by intent, until there are exactly ``target_size``.

    The paper's baseline for augmentation. The result is every original once, then copies:
    the extra ``target_size - len(utterances)`` are shared among intents in proportion to
    their size, and within an intent the utterances are repeated in a seeded shuffled order
    so no utterance is repeated twice before every other has been repeated once. Copies
    carry ``source="upsample:<original source>"``.
    """
    utterances = list(utterances)
    if target_size < len(utterances):
        raise ValueError(f"target_size {target_size} is smaller than the {len(utterances)} "
                         f"utterances; use sample() to shrink a set")
    if not utterances:
        raise ValueError("cannot upsample an empty set")
    groups = _by_intent(utterances)
    extras = apportion(target_size - len(utterances), [len(group) for group in groups.values()])
    rng = random.Random(seed)
    copies: list[Utterance] = []
    for group, extra in zip(groups.values(), extras):
        order: list[int] = []
        while len(order) < extra:
            order += rng.sample(group, len(group))
        copies += [utterances[position].replace(source=f"upsample:{utterances[position].source}")
                   for position in order[:extra]]
    return utterances + copies


def deduplicate(utterances: Iterable[Utterance]) -> list[Utterance]:
    """Keep the first of utterances with the same ``key()`` (language, intent, tokens, tags)."""
    seen: set[tuple] = set()
    unique = []
    for utterance in utterances:
        if utterance.key() not in seen:
            seen.add(utterance.key())
            unique.append(utterance)
    return unique


def split(utterances: Sequence[Utterance], fractions: Sequence[float], seed: int,
          stratify: bool = True) -> list[list[Utterance]]:
    """Seeded split into ``len(fractions)`` parts (e.g. ``(0.8, 0.1, 0.1)``), each utterance
    in exactly one part; with ``stratify`` every intent is split in the given proportions."""
    if not fractions or any(fraction < 0 for fraction in fractions) or \
            not math.isclose(sum(fractions), 1.0, abs_tol=1e-6):
        raise ValueError(f"fractions must be non-negative and sum to 1, got {list(fractions)}")
    utterances = list(utterances)
    groups = (list(_by_intent(utterances).values()) if stratify
              else [list(range(len(utterances)))])
    rng = random.Random(seed)
    parts: list[list[int]] = [[] for _ in fractions]
    for group in groups:
        shuffled = rng.sample(group, len(group))
        start = 0
        for part, count in zip(parts, apportion(len(group), fractions)):
            part += shuffled[start:start + count]
            start += count
    return [[utterances[position] for position in sorted(part)] for part in parts]


def merge(*sets: Iterable[Utterance]) -> list[Utterance]:
    """Concatenate sets (e.g. one per language) into one list, in the order given."""
    return [utterance for utterance_set in sets for utterance in utterance_set]


@dataclass(frozen=True)
class DataSpec:
    """One data file (or folder) of a job or a study, as its YAML names it."""

    path: str
    format: str | None = None  # None: detected from the file
    language: str | None = None  # None: from the file (name or content)
    labels: str | None = None  # a label mapping for ``nlu.schema.LabelMapping.load``
    sample: int | None = None  # keep about this many utterances (the job or study says how)


def read_spec(spec: DataSpec, root) -> list[Utterance]:
    """The utterances ``spec`` names (relative to ``root``), with its label mapping applied."""
    from nlu.formats import read_utterances
    from nlu.schema import LabelMapping

    utterances = read_utterances(root / spec.path, spec.format, language=spec.language)
    return LabelMapping.load(spec.labels).apply(utterances) if spec.labels else list(utterances)
