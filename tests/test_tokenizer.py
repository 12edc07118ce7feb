from pathlib import Path

import pytest

from nlu.tokenizer import UNK_ID, WORD_BOUNDARY, SubwordTokenizer
from nlu.utterance import Utterance
from shared_data import SHARED_DATA

SNIPS_TRAIN = SHARED_DATA / "snips/bio_goo2018/train"


def snips_utterances(count: int) -> list[Utterance]:
    lines = [(SNIPS_TRAIN / name).read_text().splitlines()[:count]
             for name in ("seq.in", "seq.out", "label")]
    return [Utterance(text.split(), tags.split(), intent, "en") for text, tags, intent in zip(*lines)]


@pytest.fixture(scope="module")
def tokenizer() -> SubwordTokenizer:
    return SubwordTokenizer.train(snips_utterances(40), vocab_size=8000, seed=0)


def test_tiny_corpus_gets_a_smaller_vocabulary_than_asked(tokenizer):
    assert 10 < tokenizer.vocab_size < 8000
    assert tokenizer.pieces[:2] == ["<pad>", "<unk>"]


def test_first_piece_index_points_at_word_starts(tokenizer):
    words = ["add", "westbam", "zyxwvut", "playlist"]
    piece_ids, first_piece = tokenizer.encode_words(words)
    assert len(first_piece) == len(words) and first_piece[0] == 0
    assert first_piece == sorted(first_piece) and first_piece[-1] < len(piece_ids)
    for index in first_piece:
        assert tokenizer.pieces[piece_ids[index]].startswith(WORD_BOUNDARY)
    # encode_words is the concatenation of the per-word pieces.
    per_word = tokenizer.encode_word_pieces(words)
    assert sum(map(len, per_word)) == len(piece_ids)


def test_a_word_sentencepiece_drops_becomes_unknown(tokenizer):
    assert tokenizer.encode_word_pieces([WORD_BOUNDARY]) == [[UNK_ID]]


def test_training_is_deterministic_and_save_load_round_trips(tokenizer, tmp_path):
    again = SubwordTokenizer.train(snips_utterances(40), vocab_size=8000, seed=0)
    assert again.model_proto == tokenizer.model_proto
    tokenizer.save(tmp_path)
    loaded = SubwordTokenizer.load(tmp_path)
    words = "play some jazz on spotify".split()
    assert loaded.encode_words(words) == tokenizer.encode_words(words)


def test_pieces_are_sentencepieces_own_whether_encoded_one_by_one_in_a_list_or_cached(
        tokenizer, monkeypatch):
    import nlu.tokenizer

    lines = (SNIPS_TRAIN / "seq.in").read_text().splitlines()[:400]
    words = list(dict.fromkeys(word for line in lines for word in line.split()))
    processor = sentencepiece_processor(tokenizer)
    expected = [pieces or [UNK_ID] for pieces in processor.encode(words)]
    fresh = SubwordTokenizer(tokenizer.model_proto)
    assert fresh.encode_word_pieces(words[:10]) == expected[:10]  # one by one
    assert len(words) - 10 >= nlu.tokenizer.LIST_CALL_WORDS
    assert fresh.encode_word_pieces(words) == expected  # new words in one list call
    assert fresh.encode_word_pieces(words) == expected  # all from the cache
    monkeypatch.setattr(nlu.tokenizer, "CACHE_WORDS", 20)
    for start in range(0, len(words), 10):
        assert fresh.encode_word_pieces(words[start:start + 10]) == expected[start:start + 10]
        assert len(fresh._word_pieces) <= 20 + 10  # replaced once full: bounded


def sentencepiece_processor(tokenizer):
    import sentencepiece

    return sentencepiece.SentencePieceProcessor(model_proto=tokenizer.model_proto)
