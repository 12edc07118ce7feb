"""A shared SentencePiece sub-word vocabulary over the text of every language in a job.

Utterances are already whitespace-tokenised, and slots are tagged per *word*, so the
tokenizer encodes word by word and reports where each word's pieces start: the joint model
tags a word from its first piece (see ``nlu.model``).

Ids 0 and 1 are reserved for padding and unknown pieces; there are no BOS/EOS pieces.
"""

from __future__ import annotations

import io
import itertools
from pathlib import Path
from typing import Iterable, Sequence

import sentencepiece

from nlu.atomic import atomic_open
from nlu.utterance import Utterance

PAD_ID = 0
UNK_ID = 1
MODEL_FILENAME = "sentencepiece.model"
# SentencePiece's list call starts a thread pool (even for one thread): about 0.5 ms, more on
# a busy machine, against about 2 us per word called one by one. Fewer new words than this
# are encoded one by one.
LIST_CALL_WORDS = 256
CACHE_WORDS = 100_000  # words remembered with their pieces (a parse server sees the same ones)
WORD_BOUNDARY = "\u2581"  # SentencePiece's "▁", which starts a piece that starts a word


class SubwordTokenizer:
    """Encode whitespace-tokenised words as SentencePiece ids (a trained model's wrapper)."""

    def __init__(self, model_proto: bytes):
        self.model_proto = model_proto
        self._processor = sentencepiece.SentencePieceProcessor(model_proto=model_proto)
        self._word_pieces: dict[str, tuple[int, ...]] = {}  # bounded by CACHE_WORDS

    @classmethod
    def train(cls, utterances: Iterable[Utterance], vocab_size: int = 8000,
              model_type: str = "unigram", seed: int = 0,
              character_coverage: float = 0.9995) -> "SubwordTokenizer":
        """Train in memory on the utterances' text (all languages of the job together).

        ``vocab_size`` is an upper bound: a tiny corpus supports fewer pieces, and
        ``hard_vocab_limit=False`` lets SentencePiece stop there instead of failing.
        """
        sentences = [" ".join(utterance.tokens) for utterance in utterances]
        if not sentences:
            raise ValueError("cannot train a tokenizer on no utterances")
        sentencepiece.set_random_generator_seed(seed)
        model = io.BytesIO()
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_writer=model, vocab_size=vocab_size,
            model_type=model_type, hard_vocab_limit=False,
            character_coverage=character_coverage,
            pad_id=PAD_ID, unk_id=UNK_ID, bos_id=-1, eos_id=-1,
            num_threads=1, minloglevel=2)
        return cls(model.getvalue())

    @property
    def vocab_size(self) -> int:
        return self._processor.get_piece_size()

    @property
    def pieces(self) -> list[str]:
        """Every piece, indexed by id."""
        return [self._processor.id_to_piece(index) for index in range(self.vocab_size)]

    def encode_word_pieces(self, tokens: Sequence[str]) -> list[list[int]]:
        """One list of piece ids per word; a word SentencePiece drops entirely becomes ``<unk>``."""
        return [list(pieces) for pieces in self._pieces_of_words(tokens)]

    def _pieces_of_words(self, tokens: Sequence[str]) -> list[tuple[int, ...]]:
        """``encode_word_pieces``, as tuples. A word's pieces depend on the word alone, so they
        are cached; the cache is replaced (never emptied in place: another thread may be
        reading it) once it holds ``CACHE_WORDS``."""
        if len(self._word_pieces) >= CACHE_WORDS:
            self._word_pieces = {}
        cache = self._word_pieces
        new = list(dict.fromkeys(word for word in tokens if word not in cache))
        if len(new) < LIST_CALL_WORDS:
            encoded = [self._processor.encode(word) for word in new]
        else:  # one thread: its pool costs more than it saves on short words
            encoded = self._processor.encode(new, num_threads=1)
        cache.update((word, tuple(pieces or [UNK_ID])) for word, pieces in zip(new, encoded))
        return [cache[word] for word in tokens]

    def encode_words(self, tokens: Sequence[str]) -> tuple[list[int], list[int]]:
        """Piece ids of the whole utterance, and the index of each word's first piece."""
        return self.encode_utterances([tokens])[0]

    def encode_utterances(self, token_lists: Sequence[Sequence[str]]
                          ) -> list[tuple[list[int], list[int]]]:
        """``encode_words`` of every utterance, with one SentencePiece call for all their new
        words (a call per utterance costs more than its few words take)."""
        pieces = iter(self._pieces_of_words([word for tokens in token_lists for word in tokens]))
        encoded = []
        for tokens in token_lists:
            piece_ids: list[int] = []
            first_piece_index: list[int] = []
            for word_pieces in itertools.islice(pieces, len(tokens)):
                first_piece_index.append(len(piece_ids))
                piece_ids.extend(word_pieces)
            encoded.append((piece_ids, first_piece_index))
        return encoded

    def save(self, directory: Path | str) -> None:
        with atomic_open(Path(directory) / MODEL_FILENAME, "wb") as stream:
            stream.write(self.model_proto)

    @classmethod
    def load(cls, directory: Path | str) -> "SubwordTokenizer":
        return cls((Path(directory) / MODEL_FILENAME).read_bytes())
