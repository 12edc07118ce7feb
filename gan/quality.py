"""Quality and diversity metrics of a generated set of annotated utterances.

``quality_metrics(generated, heldout, train)`` returns a flat ``{name: float}`` dict (ready for
``mlflow.log_metrics``):

* ``bleu4``          quality: sacrebleu corpus BLEU-4 of the generated sentences, each with
                     *all* held-out real sentences of its intent as references. Cost grows with
                     hypotheses x references (about 25 us each), so both are sampled with a
                     fixed seed: at most ``max_bleu_hypotheses`` samples and ``max_references``
                     references per intent. Samples whose intent has no held-out sentence are
                     left out. Tokens are joined with spaces and
                     scored with ``tokenize="none"``: the data is already tokenised (Thai too).
* ``self_bleu4``     diversity (lower = more diverse; Zhu et al. 2018, Texygen): corpus BLEU-4
                     of each sample against the *other* samples as references, over a seeded
                     pool of at most ``max_self_bleu_pool`` samples of which at most
                     ``max_self_bleu_hypotheses`` are scored.
* ``distinct_1/2``   distinct n-grams / all n-grams over the whole set (Li et al. 2016).
* ``novelty``        share of samples whose words (language + tokens) are not a train sentence.
* ``validity``       share of raw samples that are valid ``Utterance`` records (1.0 when
                     ``generated`` holds only ``Utterance``s); the other metrics use the valid ones.
* ``nlu_agreement``  share of samples on which ``nlu_model`` predicts the same intent and tags
                     (only when a model is given).
* ``slot_coverage``  mean over the generated intents of the share of that intent's train slot
                     types that appear in its generated samples; ``slot_coverage/<intent>`` for
                     each intent that has slot types in train.
* ``count``          number of valid samples.

Metrics undefined for an empty set are left out rather than reported as 0: an empty
``generated`` gives only ``count``, and a set with no valid sample only ``count`` and
``validity``.

BLEU and self-BLEU are on sacrebleu's 0-100 scale; the rest are in [0, 1].
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Iterable, Sequence

from gan.gate import Predictor, RawSample, agrees, as_utterance, sentence_key
from nlu.errors import NluDataError
from nlu.utterance import Utterance


def _text(utterance: Utterance) -> str:
    return " ".join(utterance.tokens)


def _bleu4():
    from sacrebleu.metrics import BLEU

    # force: the sentences are token sequences by design, so sacrebleu's warning that a
    # line ending in " ." looks undetokenised is noise in every run's log
    return BLEU(tokenize="none", max_ngram_order=4, force=True)


def _transpose_references(references: list[list[str]]) -> list[list[str | None]]:
    """Per-hypothesis reference lists -> sacrebleu's reference streams (``None`` pads)."""
    width = max(len(group) for group in references)
    return [[group[index] if index < len(group) else None for group in references]
            for index in range(width)]


def bleu4(generated: Sequence[Utterance], heldout: Iterable[Utterance], *,
          max_hypotheses: int = 500, max_references: int = 100, seed: int = 0) -> float | None:
    """Corpus BLEU-4 against same-intent held-out references; ``None`` if nothing is scorable."""
    by_intent: dict[str, list[str]] = defaultdict(list)
    for utterance in heldout:
        by_intent[utterance.intent].append(_text(utterance))
    rng = random.Random(seed)
    for intent, texts in by_intent.items():
        if len(texts) > max_references:
            by_intent[intent] = rng.sample(texts, max_references)
    scorable = [utterance for utterance in generated if by_intent.get(utterance.intent)]
    if not scorable:
        return None
    if len(scorable) > max_hypotheses:
        scorable = rng.sample(scorable, max_hypotheses)
    references = [by_intent[utterance.intent] for utterance in scorable]
    return _bleu4().corpus_score([_text(u) for u in scorable],
                                 _transpose_references(references)).score


def self_bleu4(generated: Sequence[Utterance], *, max_pool: int = 500, max_hypotheses: int = 100,
               seed: int = 0) -> float | None:
    """BLEU-4 of each sample against all the other samples; ``None`` below two samples."""
    texts = [_text(utterance) for utterance in generated]
    if len(texts) < 2:
        return None
    pool = random.Random(seed).sample(texts, min(len(texts), max_pool))
    hypotheses = pool[:max_hypotheses]
    references = [pool[:index] + pool[index + 1:] for index in range(len(hypotheses))]
    return _bleu4().corpus_score(hypotheses, _transpose_references(references)).score


def distinct_n(generated: Sequence[Utterance], n: int) -> float:
    """Distinct n-grams over all n-grams of the set (0.0 when no sample has n tokens)."""
    ngrams = [tuple(utterance.tokens[start:start + n])
              for utterance in generated for start in range(len(utterance.tokens) - n + 1)]
    return len(set(ngrams)) / len(ngrams) if ngrams else 0.0


def novelty(generated: Sequence[Utterance], train: Iterable[Utterance]) -> float:
    train_sentences = {sentence_key(utterance) for utterance in train}
    if not generated:
        return 0.0
    return sum(sentence_key(u) not in train_sentences for u in generated) / len(generated)


def slot_coverage(generated: Sequence[Utterance], train: Iterable[Utterance]) -> dict[str, float]:
    """Per generated intent with train slot types: share of those types seen in its samples."""
    train_types: dict[str, set[str]] = defaultdict(set)
    for utterance in train:
        train_types[utterance.intent] |= utterance.slot_types
    generated_types: dict[str, set[str]] = defaultdict(set)
    for utterance in generated:
        generated_types[utterance.intent] |= utterance.slot_types
    return {intent: len(generated_types[intent] & train_types[intent]) / len(train_types[intent])
            for intent in sorted(generated_types) if train_types.get(intent)}


def agreement_rate(generated: Sequence[Utterance], nlu_model: Predictor) -> float:
    if not generated:
        return 0.0
    predictions = nlu_model.predict(list(generated))
    return sum(agrees(gold, predicted)
               for gold, predicted in zip(generated, predictions, strict=True)) / len(generated)


def quality_metrics(generated: Iterable[Utterance | RawSample], heldout: Iterable[Utterance],
                    train: Iterable[Utterance], *, nlu_model: Predictor | None = None,
                    max_bleu_hypotheses: int = 500, max_references: int = 100,
                    max_self_bleu_pool: int = 500,
                    max_self_bleu_hypotheses: int = 100, seed: int = 0) -> dict[str, float]:
    """All the metrics of the module docstring for one generated set."""
    train = list(train)
    valid: list[Utterance] = []
    raw_count = 0
    for sample in generated:
        raw_count += 1
        try:
            valid.append(as_utterance(sample))
        except NluDataError:
            continue
    metrics: dict[str, float] = {"count": float(len(valid))}
    if raw_count:
        metrics["validity"] = len(valid) / raw_count
    if not valid:  # the rates below are undefined, not 0 (a gate may keep nothing)
        return metrics
    metrics.update({"distinct_1": distinct_n(valid, 1), "distinct_2": distinct_n(valid, 2),
                    "novelty": novelty(valid, train)})
    bleu = bleu4(valid, heldout, max_hypotheses=max_bleu_hypotheses,
                 max_references=max_references, seed=seed)
    if bleu is not None:
        metrics["bleu4"] = bleu
    self_bleu = self_bleu4(valid, max_pool=max_self_bleu_pool,
                           max_hypotheses=max_self_bleu_hypotheses, seed=seed)
    if self_bleu is not None:
        metrics["self_bleu4"] = self_bleu
    coverage = slot_coverage(valid, train)
    if coverage:
        metrics["slot_coverage"] = sum(coverage.values()) / len(coverage)
        metrics.update({f"slot_coverage/{intent}": share for intent, share in coverage.items()})
    if nlu_model is not None:
        metrics["nlu_agreement"] = agreement_rate(valid, nlu_model)
    return metrics
