"""A shared SentencePiece sub-word vocabulary over the text of every language in a job.

Utterances are already whitespace-tokenised, and slots are tagged per *word*, so the
tokenizer encodes word by word and reports where each word's pieces start: the joint model
tags a word from its first piece (see ``nlu.model``).

Ids 0 and 1 are reserved for padding and unknown pieces; there are no BOS/EOS pieces.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Iterable, Sequence

import sentencepiece

from nlu.atomic import atomic_open
from nlu.utterance import Utterance

PAD_ID = 0
UNK_ID = 1
MODEL_FILENAME = "sentencepiece.model"
WORD_BOUNDARY = "\u2581"  # SentencePiece's "▁", which starts a piece that starts a word


class SubwordTokenizer:
    """Encode whitespace-tokenised words as SentencePiece ids (a trained model's wrapper)."""

    def __init__(self, model_proto: bytes):
        self.model_proto = model_proto
        self._processor = sentencepiece.SentencePieceProcessor(model_proto=model_proto)

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
        """One list of piece ids per word; a word SentencePiece drops entirely becomes ``<unk>``.

        Word by word: given a list, SentencePiece starts a thread pool per call, which cost
        20x the encoding itself for one utterance (and far more on a busy machine)."""
        encode = self._processor.encode
        return [encode(token) or [UNK_ID] for token in tokens]

    def encode_words(self, tokens: Sequence[str]) -> tuple[list[int], list[int]]:
        """Piece ids of the whole utterance, and the index of each word's first piece."""
        piece_ids: list[int] = []
        first_piece_index: list[int] = []
        for pieces in self.encode_word_pieces(tokens):
            first_piece_index.append(len(piece_ids))
            piece_ids.extend(pieces)
        return piece_ids, first_piece_index

    def save(self, directory: Path | str) -> None:
        with atomic_open(Path(directory) / MODEL_FILENAME, "wb") as stream:
            stream.write(self.model_proto)

    @classmethod
    def load(cls, directory: Path | str) -> "SubwordTokenizer":
        return cls((Path(directory) / MODEL_FILENAME).read_bytes())
