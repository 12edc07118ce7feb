"""A trained generator, ready to write new annotated utterances: the product's augmenter.

A saved augmenter is a plain directory (atomic writes)::

    config.json        the GanConfig it was trained with
    vocab.json         tokens, tags, intents, languages, per-language vocabularies
    generator.pt       G's weights
    discriminator.pt   D's weights (for the quality gate's score threshold)
    info.json          languages, intents, slot types, quality metrics, source label
    lexicon.json       delexicalised generators only: the slot values that fill placeholders
    catalogue.json     optional (delexicalised only): the catalogue of the job's ``catalogue``
                       section and its share, ``{"share": R, "values": SlotLexicon}``: the
                       default catalogue of ``generate``
    train_keys.json    ``gan.gate.copy_key`` of each training sentence, for the gate's copy
                       check (digests, not the sentences)

``generate`` is lazy: it yields batch by batch, so a stream consumer can stop early.
Given the same saved generator, ``seed`` and ``batch_size`` it yields the same utterances,
also when concurrent calls share sampling batches (``gan.batching``).
"""

from __future__ import annotations

import json
import random as random_module
from collections import Counter, defaultdict, deque
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from nlu.atomic import save_torch, write_json
from nlu.utterance import Utterance

from gan.batching import SharedSampler
from gan.catalogue import DEFAULT_CATALOGUE_SHARE, SlotFiller
from gan.lexicon import SlotLexicon, choose_lexicon, delexicalise
from gan.sampling import SamplingConfig
from gan.vocab import Vocabulary

if TYPE_CHECKING:
    from gan.discriminator import Discriminator
    from gan.gate import GateConfig, GateReport, Predictor, QualityGate
    from gan.generator import Generator
    from gan.config import GanConfig

MAX_ATTEMPT_FACTOR = 20  # gate or slot quotas: stop after sampling this many times the request
SPARE_FRACTION = 0.2
MAX_SEED = 2 ** 63  # the wire's int64 seed; torch takes up to 2**64 - 1


def _spares(conditions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Extra rows for a gated round: per ``(intent, language)`` one, plus ``SPARE_FRACTION`` of
    its rows. Another round for the few samples the gate drops (duplicates, mostly) costs as
    much time as the first, as the time of a round is set by its number of steps, not rows."""
    counts = Counter(conditions)
    return [key for key in sorted(counts) for _ in range(1 + int(counts[key] * SPARE_FRACTION))]


def _split(count: int, weights: dict[tuple, int]) -> Counter:
    """``count`` split over the keys in proportion to their weights (largest remainders)."""
    total = sum(weights.values())
    shares = [(count * weight / total, key) for key, weight in weights.items()]
    split = Counter({key: int(share) for share, key in shares})
    by_remainder = sorted(shares, key=lambda item: (-(item[0] - int(item[0])), item[1]))
    for _, key in by_remainder[:count - sum(split.values())]:
        split[key] += 1
    return +split


def _share(utterance: Utterance, unfilled: Counter,
           slot_shares: bool) -> tuple[str, str, str] | None:
    """The unfilled share an utterance fills: with ``slot_shares`` in the plan, a share for one
    of its slot types first (those are the scarce ones), else one for any utterance of its
    intent."""
    intent, language = utterance.intent, utterance.language
    for slot in sorted(utterance.slot_types) if slot_shares else ():
        if unfilled[(intent, language, slot)] > 0:
            return intent, language, slot
    return (intent, language, "") if unfilled[(intent, language, "")] > 0 else None


def _take(waiting: list[Utterance], slot: str) -> Utterance | None:
    """The first waiting utterance with a span of ``slot`` ("" = any), removed."""
    for position, utterance in enumerate(waiting):
        if not slot or slot in utterance.slot_types:
            return waiting.pop(position)
    return None


class Generation:
    """The utterances of one ``Augmenter.generate`` call, as an iterator, and ``report``:
    that call's quality-gate counts (None without a gate), final once the iterator is done.
    Each call has its own report, so concurrent calls on one augmenter do not mix them.
    ``deadline_passed`` tells, once the iterator is done, that it stopped at the call's
    ``deadline`` with fewer utterances than asked for."""

    def __init__(self, report: "GateReport | None"):
        self._utterances: Iterator[Utterance] = iter(())
        self.report = report
        self.deadline_passed = False

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
                 discriminator: "Discriminator", info: GeneratorInfo,
                 lexicon: SlotLexicon | None = None, train: Sequence[Utterance] | None = None,
                 train_keys: Sequence[str] | None = None, catalogue: SlotLexicon | None = None,
                 catalogue_share: float = DEFAULT_CATALOGUE_SHARE):
        """``train`` (the real utterances G learnt from) or ``train_keys`` (their
        ``copy_key``s, as saved) let the quality gate drop copies of them by default.
        ``catalogue`` (delexicalised only), filled from at ``catalogue_share``, is kept with the
        generator as ``generate``'s default catalogue."""
        if config.delexicalised != (lexicon is not None):
            raise ValueError("lexicon: a delexicalised generator needs one, a lexicalised one "
                             "takes none")
        if catalogue is not None and lexicon is None:
            raise ValueError("catalogue: only a delexicalised generator keeps one")
        if not 0 <= catalogue_share <= 1:
            raise ValueError(f"catalogue_share: must be in [0, 1], got {catalogue_share}")
        self.config = config
        self.vocab = vocab
        self.generator = generator.eval()
        self.discriminator = discriminator.eval()
        self.info = info
        self.lexicon = lexicon  # the training data's slot values (delexicalised mode)
        self.catalogue = catalogue  # None: no default catalogue
        self.catalogue_share = catalogue_share
        if train is not None:
            from gan.gate import copy_key

            train_keys = sorted({copy_key(utterance) for utterance in train})
        self.train_keys = train_keys  # None: unknown (a generator saved before they were kept)
        self.sampler = SharedSampler(self.generator)  # an augmenter's G does not train

    # --- persistence -------------------------------------------------------------------------
    def save(self, directory: Path | str) -> Path:
        directory = Path(directory)
        write_json(directory / "config.json", self.config.to_dict())
        write_json(directory / "vocab.json", self.vocab.to_dict())
        save_torch(self.generator.state_dict(), directory / "generator.pt")
        save_torch(self.discriminator.state_dict(), directory / "discriminator.pt")
        if self.lexicon is not None:
            write_json(directory / "lexicon.json", self.lexicon.to_dict())
        if self.train_keys is not None:
            write_json(directory / "train_keys.json", self.train_keys)
        if self.catalogue is not None:
            write_json(directory / "catalogue.json", {"share": self.catalogue_share,
                                                      "values": self.catalogue.to_dict()})
        write_json(directory / "info.json", asdict(self.info))  # last: the directory is complete
        return directory

    @classmethod
    def from_dir(cls, path: Path | str) -> "Augmenter":
        import torch

        from gan.config import GanConfig
        from gan.models import build_models

        path = Path(path)
        config = GanConfig.from_saved(json.loads((path / "config.json").read_text()))
        vocab = Vocabulary.from_dict(json.loads((path / "vocab.json").read_text()))
        generator, discriminator = build_models(config, vocab, embeddings=None)
        generator.load_state_dict(torch.load(path / "generator.pt", weights_only=True))
        discriminator.load_state_dict(torch.load(path / "discriminator.pt", weights_only=True))
        info = GeneratorInfo(**json.loads((path / "info.json").read_text()))
        lexicon = (SlotLexicon.from_dict(json.loads((path / "lexicon.json").read_text()))
                   if config.delexicalised else None)
        keys_file = path / "train_keys.json"
        train_keys = json.loads(keys_file.read_text()) if keys_file.exists() else None
        catalogue_file = path / "catalogue.json"  # absent: saved without (or before) one
        kept = json.loads(catalogue_file.read_text()) if catalogue_file.exists() else None
        return cls(config, vocab, generator, discriminator, info, lexicon, train_keys=train_keys,
                   catalogue=SlotLexicon.from_dict(kept["values"]) if kept else None,
                   catalogue_share=kept["share"] if kept else DEFAULT_CATALOGUE_SHARE)

    @classmethod
    def load(cls, reference: str, tracking_uri: str) -> "Augmenter":
        """From a run id, ``runs:/<id>/model``, ``name@alias`` or ``models:/name@alias``."""
        from nlu.tracking import load_model

        return load_model(reference, tracking_uri, cls.from_dir)  # from_dir reads it all

    # --- scoring -----------------------------------------------------------------------------
    def _tensors(self, utterances: Sequence[Utterance]):
        import torch

        encoded = self.vocab.encode(utterances, self.config.max_length)
        device = next(self.discriminator.parameters()).device
        return [torch.from_numpy(encoded[name]).to(device)
                for name in ("tokens", "tags", "intents", "languages")]

    def discriminator_scores(self, utterances: Sequence[Utterance]) -> np.ndarray:
        """D's probability that each utterance is real, in [0, 1] (for the quality gate)."""
        import torch

        if not utterances:
            return np.zeros(0, dtype=np.float32)
        if self.lexicon is not None:  # D was trained on carrier phrases
            utterances = [delexicalise(utterance) for utterance in utterances]
        with torch.no_grad():
            logits = self.discriminator.sequence_logits(*self._tensors(utterances))
        return torch.sigmoid(logits).numpy()

    # --- generation --------------------------------------------------------------------------
    def plan(self, count: int, *, quotas: dict[str, int] | None = None,
             slot_quotas: dict[str, int] | None = None,
             language: str | None = None) -> Counter:
        """How many utterances of each ``(intent, language, slot type)`` to write; slot type ""
        = any utterance of the intent.

        With ``quotas`` (intent -> count) and/or ``slot_quotas`` (slot type -> count of
        utterances with at least one span of it) exactly those; otherwise ``count`` split in
        proportion to the training data (largest remainders). ``language`` restricts the
        split and the slot quotas and sets the intent quotas' language (else an intent's most
        frequent one). A slot quota is split over the (intent, language) pairs the slot type
        was seen with, in proportion to their training counts.
        """
        if language is not None and language not in self.vocab.languages:
            raise ValueError(f"language: {language!r} is not one of the generator's "
                             f"{self.vocab.languages}")
        conditions = self.vocab.conditions()
        if language is not None:
            in_language = [c for c in conditions if c[1] == language]
        else:
            in_language = conditions
        if quotas is None and slot_quotas is None:
            return _split(count, {(intent, lang, ""): c for intent, lang, c in in_language})
        plan: Counter = Counter()
        for intent, wanted in (quotas or {}).items():
            seen = [(c, lang) for i, lang, c in conditions if i == intent]
            if not seen:
                raise ValueError(f"quotas: intent {intent!r} is unknown to this generator")
            if wanted < 0:
                raise ValueError(f"quotas: {intent!r} has a negative count")
            chosen = language or max(seen)[1]  # else the intent's most frequent language
            plan[(intent, chosen, "")] += wanted
        for slot, wanted in (slot_quotas or {}).items():
            if slot not in self.vocab.slot_types:
                raise ValueError(f"slot_quotas: slot type {slot!r} is unknown to this generator")
            if wanted < 0:
                raise ValueError(f"slot_quotas: {slot!r} has a negative count")
            weights = {(intent, lang, slot): c for intent, lang, c in in_language
                       if slot in self.vocab.intent_slot_types.get(intent, ())
                       and self._writes_slot(slot, lang)}
            if not weights:
                raise ValueError(f"slot_quotas: no intent was seen with slot type {slot!r}"
                                 + (f" in {language!r}" if language else ""))
            plan.update(_split(wanted, weights))
        return +plan

    def _writes_slot(self, slot: str, language: str) -> bool:
        """Can G tag a word of ``language`` with ``B-slot`` (was one seen with it)?"""
        return bool(self.generator.language_tag_mask[self.vocab.language_index[language],
                                                     self.vocab.tag_index[f"B-{slot}"]])

    def generate(self, count: int, *, sampling: SamplingConfig, seed: int,
                 quotas: dict[str, int] | None = None,
                 slot_quotas: dict[str, int] | None = None, language: str | None = None,
                 gate: "GateConfig | None" = None, train: Sequence[Utterance] | None = None,
                 nlu_model: "Predictor | None" = None, batch_size: int = 256,
                 lexicon: SlotLexicon | None = None,
                 slot_values: str | None = None,
                 catalogue: SlotLexicon | None = None, catalogue_share: float | None = None,
                 deadline: float | None = None) -> "Generation":
        """``count`` (or the quotas' sum: see ``plan``) new utterances, generated batch by
        batch as the returned iterator is read; its ``report`` counts what the gate saw and
        dropped.

        Slot quotas are met by rejection: an utterance sampled for a slot type without a span
        of it waits for another share of its intent (it is a sample of G like any other), so
        ``MAX_ATTEMPT_FACTOR`` bounds the work for a slot type G seldom writes.

        With ``gate`` every batch goes through ``gan.gate.QualityGate`` (with ``train`` for
        the copy check, by default the data G was trained on (``train_keys``; no copy check
        if this generator does not know them), D's scores, and ``nlu_model`` for ``gate.nlu_agreement``: a model
        trained on the real data, e.g. ``nlu.training.TrainedNlu``); generation continues
        until each ``(intent, language)`` has its share or ``MAX_ATTEMPT_FACTOR`` times the
        request was generated (then fewer are yielded). A gated batch has up to
        ``batch_size`` rows plus spare rows (``_spares``); survivors beyond a share fill later
        batches' shares, and those left at the end are counted as ``surplus``. Bad arguments
        raise ``ValueError`` here, not when the iterator is first read.

        A delexicalised generator fills its slot placeholders from ``lexicon`` (values seen
        in real data, e.g. ``SlotLexicon.build`` of a team's own utterances) or, by default,
        from its training data's lexicon; ``lexicon`` must then have a value for every slot
        type the generator can write in each language of the plan. ``slot_values`` (one of
        ``gan.lexicon.SLOT_VALUE_SOURCES``) states which the caller expects and is checked
        against the generator's mode (``choose_lexicon``).

        ``catalogue`` (``gan.catalogue``: values a team brings) adds values to that lexicon:
        each span's value comes from the catalogue with probability ``catalogue_share``
        when both have its slot type, else from whichever has it (``SlotFiller``); the two
        together must cover what the generator can write, and the catalogue must hold
        values in a planned language. A lexicalised generator takes no catalogue.
        Without ``catalogue``, the generator's own (``self.catalogue``, kept from its job) is
        used, at ``catalogue_share`` if given, else at its kept share; a ``catalogue`` given
        replaces it, at ``catalogue_share`` (default ``DEFAULT_CATALOGUE_SHARE``).

        ``deadline`` (a ``time.monotonic()`` value) ends generation after the batch running
        when it passes (``Generation.deadline_passed``): a bound on one call's work however
        rarely the gate or a slot quota lets a sample through.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
        if count < 0:
            raise ValueError(f"count: must be >= 0, got {count}")
        if not 0 <= seed < MAX_SEED:  # numpy's generators refuse negative seeds
            raise ValueError(f"seed: must be in [0, 2**63), got {seed}")
        plan = self.plan(count, quotas=quotas, slot_quotas=slot_quotas, language=language)
        if lexicon is not None and self.lexicon is None and slot_values is None:
            raise ValueError("lexicon: this generator writes its own slot values "
                             "(lexicalised); only a delexicalised one takes a lexicon")
        if catalogue is not None and self.lexicon is None:
            raise ValueError("catalogue: this generator writes its own slot values "
                             "(lexicalised); only a delexicalised one fills slots from a "
                             "catalogue")
        lexicon = choose_lexicon(self.lexicon is not None, slot_values, lexicon, self.lexicon)
        planned_languages = sorted({key[1] for key in plan})
        if catalogue is not None and planned_languages and not any(
                catalogue.values.get(planned) for planned in planned_languages):
            holds = sorted(language for language, values in catalogue.values.items() if values)
            raise ValueError(f"catalogue: no value in {', '.join(planned_languages)} (it holds "
                             f"values in {', '.join(holds) or 'no language'})")
        filling_from, share = catalogue, DEFAULT_CATALOGUE_SHARE
        if catalogue is None and self.catalogue is not None:
            # The kept catalogue may hold no value in the planned languages (a source-aware
            # generator asked for its source language): the own values fill those.
            filling_from, share = self.catalogue, self.catalogue_share
        if catalogue_share is not None:
            share = catalogue_share
        filler = None if lexicon is None else SlotFiller(lexicon, filling_from, share)
        if filler is not None and (lexicon is not self.lexicon or catalogue is not None):
            for planned_language in planned_languages:
                filler.check_covers(planned_language, self._writable_slots(planned_language))
        quality_gate = None
        if gate is not None:
            from gan.gate import QualityGate

            keys = self.train_keys if train is None else ()
            if train is None and keys is None:
                gate = replace(gate, drop_train_copies=False)
            quality_gate = QualityGate(gate, train or [], discriminator=self.discriminator_scores,
                                       nlu_model=nlu_model, train_keys=keys or ())
        fill = (filler, random_module.Random(seed)) if filler is not None else None
        generation = Generation(None if quality_gate is None else quality_gate.report)
        generation._utterances = self._generate(plan, sampling, seed, quality_gate, batch_size,
                                                fill, deadline, generation)
        return generation

    def _writable_slots(self, language: str) -> set[str]:
        return {slot for slot in self.vocab.slot_types if self._writes_slot(slot, language)}

    def _generate(self, plan: Counter, sampling: SamplingConfig, seed: int,
                  quality_gate: "QualityGate | None", batch_size: int,
                  fill: tuple[SlotFiller, random_module.Random] | None,
                  deadline: float | None, generation: Generation) -> Iterator[Utterance]:
        import time

        import torch

        random = torch.Generator().manual_seed(seed)
        pending = [key for key, n in sorted(plan.items()) for _ in range(n)]
        np.random.default_rng(seed).shuffle(pending)
        pending = deque(pending)
        budget = MAX_ATTEMPT_FACTOR * len(pending)
        produced = 0
        slot_shares = any(slot for _, _, slot in plan)
        # Survivors beyond a round's share wait here for a later round's share of their
        # (intent, language): spare rows then cost nothing but in a call's last round.
        reserve: dict[tuple[str, str], list[Utterance]] = defaultdict(list)
        while pending and produced < budget:
            if deadline is not None and time.monotonic() >= deadline:
                generation.deadline_passed = True
                break
            wanted, conditions = [], []
            for key in [pending.popleft() for _ in range(min(batch_size, len(pending)))]:
                kept = _take(reserve[key[:2]], key[2])
                if kept is not None:
                    wanted.append(kept)
                else:
                    conditions.append(key)
            unfilled = Counter(conditions)
            batch = []
            if conditions:
                pairs = [key[:2] for key in conditions]
                spares = _spares(pairs) if quality_gate is not None else []
                batch = self._sample(pairs + spares, sampling, random, start=produced,
                                     seed=seed)
                if fill is not None:
                    filler, fill_random = fill
                    batch = [filler.fill(utterance, fill_random) for utterance in batch]
                produced += len(batch)
                if quality_gate is not None:
                    batch, _ = quality_gate.filter(batch)
            for utterance in batch:
                key = _share(utterance, unfilled, slot_shares)
                if key is not None:
                    unfilled[key] -= 1
                    wanted.append(utterance)
                else:
                    reserve[(utterance.intent, utterance.language)].append(utterance)
            yield from wanted
            pending.extend(sorted((+unfilled).elements()))  # ask again for what was not filled
        if quality_gate is not None:
            quality_gate.set_aside(sum(len(kept) for kept in reserve.values()))

    def _sample(self, conditions: list[tuple[str, str]], sampling: SamplingConfig,
                random, start: int, seed: int) -> list[Utterance]:
        """G's samples; each id names the generator, the call's seed and the sample's number
        (the seed and generator write the same utterances again)."""
        import torch

        device = self.generator.tag_head.weight.device
        intents = torch.tensor([self.vocab.intent_index[i] for i, _ in conditions], device=device)
        languages = torch.tensor([self.vocab.language_index[lang] for _, lang in conditions],
                                 device=device)
        tokens, tags = self.sampler.sample(intents, languages, sampling, random)
        batch = []
        # Whole tensors to lists once: indexing a tensor row by row costs more than decoding.
        for row, (intent, language, row_tokens, row_tags) in enumerate(
                zip(*zip(*conditions), tokens.tolist(), tags.tolist())):
            words, labels = self.vocab.decode(row_tokens, row_tags)
            batch.append(Utterance(tuple(words), tuple(labels), intent, language,
                                   id=f"{self.info.source}-seed{seed}-{start + row}",
                                   source=self.info.source))
        return batch
