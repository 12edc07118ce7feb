"""A trained generator, ready to write new annotated utterances: the product's augmenter.

A saved augmenter is a plain directory (atomic writes)::

    config.json        the GanConfig it was trained with
    vocab.json         tokens, tags, intents, languages, per-language vocabularies
    generator.pt       G's weights
    discriminator.pt   D's weights (for the quality gate's score threshold)
    info.json          languages, intents, slot types, quality metrics, source label

``generate`` is lazy: it yields batch by batch, so a stream consumer can stop early.
Given the same saved generator, ``seed`` and ``batch_size`` it yields the same utterances,
also when concurrent calls share sampling batches (``gan.batching``).
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter, defaultdict, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from nlu.atomic import save_torch, write_json
from nlu.utterance import Utterance

from gan.batching import SharedSampler
from gan.sampling import SamplingConfig
from gan.vocab import Vocabulary

if TYPE_CHECKING:
    from gan.discriminator import Discriminator
    from gan.gate import GateConfig, GateReport, QualityGate
    from gan.generator import Generator
    from gan.training import GanConfig

MAX_ATTEMPT_FACTOR = 20  # with a gate: give up after generating this many times the request
SPARE_FRACTION = 0.2


def _spares(conditions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Extra rows for a gated round: per ``(intent, language)`` one, plus ``SPARE_FRACTION`` of
    its rows. Another round for the few samples the gate drops (duplicates, mostly) costs as
    much time as the first, as the time of a round is set by its number of steps, not rows."""
    counts = Counter(conditions)
    return [key for key in sorted(counts) for _ in range(1 + int(counts[key] * SPARE_FRACTION))]


class Generation:
    """The utterances of one ``Augmenter.generate`` call, as an iterator, and ``report``:
    that call's quality-gate counts (None without a gate), final once the iterator is done.
    Each call has its own report, so concurrent calls on one augmenter do not mix them."""

    def __init__(self, utterances: Iterator[Utterance], report: "GateReport | None"):
        self._utterances = utterances
        self.report = report

    def __iter__(self) -> "Generation":
        return self

    def __next__(self) -> Utterance:
        return next(self._utterances)


@dataclass
class GeneratorInfo:
    languages: list[str]
    intents: list[str]
    slot_types: list[str]
    metrics: dict[str, float] = field(default_factory=dict)
    source: str = "gan"  # written into each generated utterance's ``source``


class Augmenter:
    def __init__(self, config: "GanConfig", vocab: Vocabulary, generator: "Generator",
                 discriminator: "Discriminator", info: GeneratorInfo):
        self.config = config
        self.vocab = vocab
        self.generator = generator.eval()
        self.discriminator = discriminator.eval()
        self.info = info
        self.sampler = SharedSampler(self.generator)  # an augmenter's G does not train

    # --- persistence -------------------------------------------------------------------------
    def save(self, directory: Path | str) -> Path:
        directory = Path(directory)
        write_json(directory / "config.json", self.config.to_dict())
        write_json(directory / "vocab.json", self.vocab.to_dict())
        save_torch(self.generator.state_dict(), directory / "generator.pt")
        save_torch(self.discriminator.state_dict(), directory / "discriminator.pt")
        write_json(directory / "info.json", asdict(self.info))
        return directory

    @classmethod
    def from_dir(cls, path: Path | str) -> "Augmenter":
        import torch

        from gan.training import GanConfig, build_models

        path = Path(path)
        config = GanConfig.from_dict(json.loads((path / "config.json").read_text()))
        vocab = Vocabulary.from_dict(json.loads((path / "vocab.json").read_text()))
        generator, discriminator = build_models(config, vocab, embeddings=None)
        generator.load_state_dict(torch.load(path / "generator.pt", weights_only=True))
        discriminator.load_state_dict(torch.load(path / "discriminator.pt", weights_only=True))
        info = GeneratorInfo(**json.loads((path / "info.json").read_text()))
        return cls(config, vocab, generator, discriminator, info)

    @classmethod
    def load(cls, reference: str, tracking_uri: str) -> "Augmenter":
        """From a run id, ``runs:/<id>/model``, ``name@alias`` or ``models:/name@alias``."""
        from nlu.tracking import download_model

        # from_dir reads every file into memory, so the download is not kept.
        with tempfile.TemporaryDirectory(prefix="nlu-bootstrap-model-") as scratch:
            return cls.from_dir(download_model(reference, tracking_uri, scratch))

    # --- scoring -----------------------------------------------------------------------------
    def _tensors(self, utterances: Sequence[Utterance]):
        import torch

        encoded = self.vocab.encode(utterances, self.config.max_length)
        return [torch.from_numpy(encoded[name]) for name in ("tokens", "tags", "intents", "languages")]

    def discriminator_scores(self, utterances: Sequence[Utterance]) -> np.ndarray:
        """D's probability that each utterance is real, in [0, 1] (for the quality gate)."""
        import torch

        if not utterances:
            return np.zeros(0, dtype=np.float32)
        with torch.no_grad():
            logits = self.discriminator.sequence_logits(*self._tensors(utterances))
        return torch.sigmoid(logits).numpy()

    # --- generation --------------------------------------------------------------------------
    def plan(self, count: int, *, quotas: dict[str, int] | None = None,
             language: str | None = None) -> Counter:
        """How many utterances of each ``(intent, language)`` to write.

        With ``quotas`` (intent -> count) exactly those; otherwise ``count`` split in
        proportion to the training data (largest remainders), restricted to ``language``.
        """
        if language is not None and language not in self.vocab.languages:
            raise ValueError(f"language: {language!r} is not one of the generator's "
                             f"{self.vocab.languages}")
        conditions = self.vocab.conditions()
        if quotas is not None:
            plan: Counter = Counter()
            for intent, wanted in quotas.items():
                seen = [(c, lang) for i, lang, c in conditions if i == intent]
                if not seen:
                    raise ValueError(f"quotas: intent {intent!r} is unknown to this generator")
                if wanted < 0:
                    raise ValueError(f"quotas: {intent!r} has a negative count")
                chosen = language or max(seen)[1]  # else the intent's most frequent language
                plan[(intent, chosen)] += wanted
            return plan
        if language is not None:
            conditions = [c for c in conditions if c[1] == language]
        total = sum(c for _, _, c in conditions)
        shares = [(count * c / total, (intent, lang)) for intent, lang, c in conditions]
        plan = Counter({key: int(share) for share, key in shares})
        by_remainder = sorted(shares, key=lambda item: (-(item[0] - int(item[0])), item[1]))
        for _, key in by_remainder[:count - sum(plan.values())]:
            plan[key] += 1
        return +plan

    def generate(self, count: int, *, sampling: SamplingConfig, seed: int,
                 quotas: dict[str, int] | None = None, language: str | None = None,
                 gate: "GateConfig | None" = None, train: Sequence[Utterance] | None = None,
                 batch_size: int = 256) -> "Generation":
        """``count`` (or ``sum(quotas)``) new utterances, generated batch by batch as the
        returned iterator is read; its ``report`` counts what the gate saw and dropped.

        With ``gate`` every batch goes through ``gan.gate.QualityGate`` (with ``train`` for
        the copy check and D's scores); generation continues until each ``(intent, language)``
        has its share or ``MAX_ATTEMPT_FACTOR`` times the request was generated (then fewer
        are yielded). A gated batch has up to ``batch_size`` rows plus spare rows
        (``_spares``); survivors beyond a share fill later batches' shares, and those left at
        the end are counted as ``surplus``. Bad arguments raise ``ValueError`` here, not
        when the iterator is first read.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
        if count < 0:
            raise ValueError(f"count: must be >= 0, got {count}")
        plan = self.plan(count, quotas=quotas, language=language)
        quality_gate = None
        if gate is not None:
            from gan.gate import QualityGate

            quality_gate = QualityGate(gate, train or [], discriminator=self.discriminator_scores)
        return Generation(self._generate(plan, sampling, seed, quality_gate, batch_size),
                          None if quality_gate is None else quality_gate.report)

    def _generate(self, plan: Counter, sampling: SamplingConfig, seed: int,
                  quality_gate: "QualityGate | None", batch_size: int) -> Iterator[Utterance]:
        import torch

        random = torch.Generator().manual_seed(seed)
        pending = [key for key, n in sorted(plan.items()) for _ in range(n)]
        np.random.default_rng(seed).shuffle(pending)
        pending = deque(pending)
        budget = MAX_ATTEMPT_FACTOR * len(pending)
        produced = 0
        # Survivors beyond a round's share wait here for a later round's share of their
        # (intent, language): spare rows then cost nothing but in a call's last round.
        reserve: dict[tuple[str, str], deque[Utterance]] = defaultdict(deque)
        while pending and produced < budget:
            wanted, conditions = [], []
            for key in [pending.popleft() for _ in range(min(batch_size, len(pending)))]:
                if reserve[key]:
                    wanted.append(reserve[key].popleft())
                else:
                    conditions.append(key)
            unfilled = Counter(conditions)
            batch = []
            if conditions:
                spares = _spares(conditions) if quality_gate is not None else []
                batch = self._sample(conditions + spares, sampling, random, start=produced)
                produced += len(batch)
                if quality_gate is not None:
                    batch, _ = quality_gate.filter(batch)
            for utterance in batch:
                key = (utterance.intent, utterance.language)
                if unfilled[key] > 0:
                    unfilled[key] -= 1
                    wanted.append(utterance)
                else:
                    reserve[key].append(utterance)
            yield from wanted
            pending.extend(sorted((+unfilled).elements()))  # ask again for what the gate dropped
        if quality_gate is not None:
            quality_gate.set_aside(sum(len(kept) for kept in reserve.values()))

    def _sample(self, conditions: list[tuple[str, str]], sampling: SamplingConfig,
                random, start: int) -> list[Utterance]:
        import torch

        intents = torch.tensor([self.vocab.intent_index[i] for i, _ in conditions])
        languages = torch.tensor([self.vocab.language_index[lang] for _, lang in conditions])
        tokens, tags = self.sampler.sample(intents, languages, sampling, random)
        batch = []
        # Whole tensors to lists once: indexing a tensor row by row costs more than decoding.
        for row, (intent, language, row_tokens, row_tags) in enumerate(
                zip(*zip(*conditions), tokens.tolist(), tags.tolist())):
            words, labels = self.vocab.decode(row_tokens, row_tags)
            batch.append(Utterance(tuple(words), tuple(labels), intent, language,
                                   id=f"{self.info.source}-{start + row}",
                                   source=self.info.source))
        return batch
