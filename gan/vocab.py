"""Index tables of the GAN: tokens, IOB2 tags, intents, languages, and the masks derived from them.

One token table is shared by all languages (so one embedding matrix serves them all), but
each language has its own *vocabulary*: the tokens seen in that language's training data.
The generator only ever samples tokens of the requested language, never a special symbol
and never ``<unk>``; ``<unk>`` exists only so the discriminator can score utterances with
words it has not seen. A word also goes only with the tags it was seen with (``tag_tokens``):
the generator writes no "the" as a city, and its token head is one small block per
(language, tag) instead of the whole vocabulary.

Every training word is kept (no frequency cut-off): with a few hundred utterances most
words are rare, and a cut-off would put ``<unk>`` into the generator's training targets.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from nlu.utterance import OUTSIDE, Utterance, split_tag

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
TOKEN_SPECIALS = (PAD, BOS, EOS, UNK)
TAG_SPECIALS = (PAD, BOS, EOS)  # a tag sequence ends with the EOS *tag*: that is how G stops
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
UNKNOWN_INTENT = "<unk>"  # index 0 of the intent table, for scoring utterances of unseen intents


@dataclass
class Vocabulary:
    tokens: list[str]
    tags: list[str]
    intents: list[str]
    languages: list[str]
    language_tokens: dict[str, list[str]]  # the per-language vocabularies
    intent_slot_types: dict[str, list[str]]  # slot types seen with each intent in training
    condition_counts: dict[str, int]  # "intent\tlanguage" -> training utterances
    # words seen with each tag in training (None in vocabularies saved before it existed:
    # then every word goes with every tag)
    tag_tokens: dict[str, list[str]] | None = None
    token_index: dict[str, int] = field(init=False, repr=False)
    tag_index: dict[str, int] = field(init=False, repr=False)
    intent_index: dict[str, int] = field(init=False, repr=False)
    language_index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.token_index = {token: index for index, token in enumerate(self.tokens)}
        self.tag_index = {tag: index for index, tag in enumerate(self.tags)}
        self.intent_index = {intent: index for index, intent in enumerate(self.intents)}
        self.language_index = {language: index for index, language in enumerate(self.languages)}

    @classmethod
    def build(cls, utterances: Sequence[Utterance]) -> "Vocabulary":
        if not utterances:
            raise ValueError("cannot build a vocabulary from no utterances")
        language_tokens: dict[str, Counter] = {}
        intent_slot_types: dict[str, set[str]] = {}
        conditions: Counter = Counter()
        slot_types: set[str] = set()
        tag_tokens: dict[str, set[str]] = {}
        for utterance in utterances:
            language_tokens.setdefault(utterance.language, Counter()).update(utterance.tokens)
            for token, tag in zip(utterance.tokens, utterance.tags):
                tag_tokens.setdefault(tag, set()).add(token)
            types = intent_slot_types.setdefault(utterance.intent, set())
            types.update(utterance.slot_types)
            slot_types.update(utterance.slot_types)
            conditions[f"{utterance.intent}\t{utterance.language}"] += 1
        all_tokens = sorted({token for counts in language_tokens.values() for token in counts})
        tags = [*TAG_SPECIALS, OUTSIDE]
        for slot_type in sorted(slot_types):
            tags += [f"B-{slot_type}", f"I-{slot_type}"]
        return cls(
            tokens=[*TOKEN_SPECIALS, *all_tokens],
            tags=tags,
            intents=[UNKNOWN_INTENT, *sorted(intent_slot_types)],
            languages=sorted(language_tokens),
            language_tokens={language: sorted(counts) for language, counts in language_tokens.items()},
            intent_slot_types={intent: sorted(types) for intent, types in intent_slot_types.items()},
            condition_counts=dict(sorted(conditions.items())),
            tag_tokens={tag: sorted(tokens) for tag, tokens in sorted(tag_tokens.items())},
        )

    # --- persistence -------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {"tokens": self.tokens, "tags": self.tags, "intents": self.intents,
                "languages": self.languages, "language_tokens": self.language_tokens,
                "intent_slot_types": self.intent_slot_types,
                "condition_counts": self.condition_counts, "tag_tokens": self.tag_tokens}

    @classmethod
    def from_dict(cls, data: dict) -> "Vocabulary":
        return cls(**data)

    # --- encoding ------------------------------------------------------------------------
    @property
    def slot_types(self) -> list[str]:
        return sorted({split_tag(tag)[1] for tag in self.tags[len(TAG_SPECIALS) + 1:]})

    def conditions(self) -> list[tuple[str, str, int]]:
        """``(intent, language, training count)`` for every pair seen in training."""
        pairs = []
        for key, count in self.condition_counts.items():
            intent, language = key.split("\t")
            pairs.append((intent, language, count))
        return pairs

    def encode(self, utterances: Sequence[Utterance], max_length: int) -> dict[str, np.ndarray]:
        """Step sequences for G and D: tokens + EOS, padded to ``max_length + 1``.

        Utterances longer than ``max_length`` are cut (a cut IOB2 sequence stays IOB2).
        Unknown words become ``<unk>``, unknown tags ``O``, unknown intents ``<unk>``.
        """
        rows = len(utterances)
        tokens = np.full((rows, max_length + 1), PAD_ID, dtype=np.int64)
        tags = np.full((rows, max_length + 1), self.tag_index[PAD], dtype=np.int64)
        outside = self.tag_index[OUTSIDE]
        for row, utterance in enumerate(utterances):
            words = utterance.tokens[:max_length]
            tokens[row, :len(words)] = [self.token_index.get(word, UNK_ID) for word in words]
            tags[row, :len(words)] = [self.tag_index.get(tag, outside)
                                      for tag in utterance.tags[:max_length]]
            tokens[row, len(words)] = EOS_ID
            tags[row, len(words)] = self.tag_index[EOS]
        intents = np.array([self.intent_index.get(u.intent, 0) for u in utterances], dtype=np.int64)
        languages = np.array([self.language_index.get(u.language, 0) for u in utterances],
                             dtype=np.int64)
        return {"tokens": tokens, "tags": tags, "intents": intents, "languages": languages}

    def decode(self, tokens: Sequence[int], tags: Sequence[int]) -> tuple[list[str], list[str]]:
        """Step ids -> words and tags, stopping at the EOS tag (or the end)."""
        eos = self.tag_index[EOS]
        words: list[str] = []
        labels: list[str] = []
        for token, tag in zip(tokens, tags):
            if tag == eos or tag == self.tag_index[PAD]:
                break
            words.append(self.tokens[token])
            labels.append(self.tags[tag])
        return words, labels

    # --- masks the generator samples under -------------------------------------------
    def tag_transition_mask(self) -> np.ndarray:
        """``allowed[previous, next]``: IOB2 by construction (I-x only after B-x / I-x),
        no empty utterance (EOS not right after BOS), BOS never generated, and PAD only
        after EOS or PAD (so a finished row has one possible continuation, log-prob 0)."""
        size = len(self.tags)
        allowed = np.zeros((size, size), dtype=bool)
        pad = self.tag_index[PAD]
        for previous, previous_tag in enumerate(self.tags):
            if previous_tag in (PAD, EOS):
                allowed[previous, pad] = True  # after the end only padding, with probability 1
                continue
            previous_type = None if previous_tag == BOS else split_tag(previous_tag)[1]
            for following, tag in enumerate(self.tags):
                if tag in (PAD, BOS):
                    continue
                if tag == EOS:
                    allowed[previous, following] = previous_tag != BOS
                    continue
                prefix, slot_type = split_tag(tag)
                allowed[previous, following] = prefix != "I" or slot_type == previous_type
        return allowed

    def intent_tag_mask(self) -> np.ndarray:
        """``allowed[intent, tag]``: only slot types seen with that intent (all for <unk>)."""
        allowed = np.zeros((len(self.intents), len(self.tags)), dtype=bool)
        for intent_id, intent in enumerate(self.intents):
            types = set(self.slot_types if intent == UNKNOWN_INTENT
                        else self.intent_slot_types.get(intent, []))
            for tag_id, tag in enumerate(self.tags):
                if tag == BOS:
                    continue
                if tag in (PAD, EOS, OUTSIDE):  # PAD: the transition mask decides
                    allowed[intent_id, tag_id] = True
                else:
                    allowed[intent_id, tag_id] = split_tag(tag)[1] in types
        return allowed

    def language_token_mask(self) -> np.ndarray:
        """``allowed[language, token]``: that language's words; never a special or <unk>."""
        allowed = np.zeros((len(self.languages), len(self.tokens)), dtype=bool)
        for language_id, language in enumerate(self.languages):
            ids = [self.token_index[token] for token in self.language_tokens[language]]
            allowed[language_id, ids] = True
        return allowed

    def tag_token_mask(self) -> np.ndarray:
        """``allowed[tag, token]``: a word goes only with the tags it was seen with in training
        (so "the" is never a city and a city never ``O`` unless the data says so); the EOS
        tag with the EOS token, PAD with PAD, BOS with nothing."""
        allowed = np.zeros((len(self.tags), len(self.tokens)), dtype=bool)
        for tag_id, tag in enumerate(self.tags):
            if tag in TAG_SPECIALS:
                continue
            if self.tag_tokens is None:
                allowed[tag_id, len(TOKEN_SPECIALS):] = True
            else:
                allowed[tag_id, [self.token_index[token]
                                 for token in self.tag_tokens.get(tag, [])]] = True
        allowed[self.tag_index[EOS], EOS_ID] = allowed[self.tag_index[PAD], PAD_ID] = True
        return allowed
