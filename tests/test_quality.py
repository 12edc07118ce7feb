import logging

import pytest

from gan.quality import distinct_n, novelty, quality_metrics, self_bleu4, slot_coverage
from nlu.utterance import Utterance


def utt(text, tags=None, intent="play", language="en"):
    tokens = text.split()
    return Utterance(tuple(tokens), tuple(tags.split() if tags else ["O"] * len(tokens)),
                     intent, language)


class EchoModel:
    """Agrees with every sample whose intent is ``play``."""

    def predict(self, utterances):
        return [u.replace(intent="play") for u in utterances]


def test_distinct_n_counts_unique_ngrams_over_all_ngrams():
    generated = [utt("a b a"), utt("a b c")]
    assert distinct_n(generated, 1) == pytest.approx(3 / 6)   # {a, b, c} of 6 tokens
    assert distinct_n(generated, 2) == pytest.approx(3 / 4)   # {ab, ba, bc} of 4 bigrams
    assert distinct_n([utt("a")], 2) == 0.0


def test_novelty_is_the_share_of_sentences_not_in_train():
    train = [utt("play jazz"), utt("stop")]
    generated = [utt("play jazz", intent="other"), utt("play rock"), utt("stop", language="de"),
                 utt("stop")]
    assert novelty(generated, train) == pytest.approx(2 / 4)


def test_self_bleu_of_identical_sentences_is_100_and_lower_for_different_ones():
    same = [utt("please play some jazz music now")] * 5
    assert self_bleu4(same) == pytest.approx(100.0)
    different = [utt("please play some jazz music now"), utt("wake me up at seven tomorrow"),
                 utt("what is the weather in rome"), utt("set a timer for ten minutes")]
    assert self_bleu4(different) < 10.0
    assert self_bleu4([utt("alone")]) is None


def test_slot_coverage_per_intent():
    train = [utt("play jazz by miles", "O B-genre O B-artist"), utt("at six", "O B-time",
                                                                     intent="alarm")]
    generated = [utt("play rock", "O B-genre"), utt("play x", "O O"),
                 utt("hello", intent="greet")]  # no slot types in train: not scored
    assert slot_coverage(generated, train) == {"play": 0.5}


def test_quality_metrics_end_to_end():
    heldout = [utt("play some jazz music", intent="play"), utt("wake me up", intent="alarm")]
    train = [utt("play jazz", "O B-genre")]
    generated = [utt("play some jazz music", intent="play"), utt("play jazz", "O B-genre"),
                 (["play"], ["I-genre"], "play", "en"), utt("wake me up", intent="unknown")]
    metrics = quality_metrics(generated, heldout, train, nlu_model=EchoModel())
    assert metrics["count"] == 3
    assert metrics["validity"] == pytest.approx(3 / 4)
    assert metrics["novelty"] == pytest.approx(2 / 3)
    assert metrics["nlu_agreement"] == pytest.approx(2 / 3)
    assert metrics["slot_coverage/play"] == 1.0
    # only the two "play" samples have references; one matches exactly, one is too short
    assert 0.0 < metrics["bleu4"] < 100.0
    assert 0.0 <= metrics["self_bleu4"] <= 100.0
    assert set(metrics) >= {"distinct_1", "distinct_2", "slot_coverage"}


def test_an_empty_or_all_invalid_set_reports_no_rates():
    heldout, train = [utt("play some jazz music")], [utt("play jazz", "O B-genre")]
    assert quality_metrics([], heldout, train, nlu_model=EchoModel()) == {"count": 0.0}
    invalid = [(["play"], ["I-genre"], "play", "en")]
    assert quality_metrics(invalid, heldout, train, nlu_model=EchoModel()) == {
        "count": 0.0, "validity": 0.0}


def test_a_copy_of_the_references_scores_100_bleu():
    heldout = [utt("play some jazz music please"), utt("put on my rock playlist now")]
    metrics = quality_metrics(heldout, heldout, train=[])
    assert metrics["bleu4"] == pytest.approx(100.0)
    assert metrics["novelty"] == 1.0


def test_tokenised_sentences_ending_in_a_period_raise_no_sacrebleu_warning(caplog):
    # sacrebleu warns once 100 hypotheses end in " ." unless told the input is tokenised
    generated = [utt(f"play song number {index} .") for index in range(120)]
    with caplog.at_level(logging.WARNING):
        assert self_bleu4(generated, max_hypotheses=120) is not None
        metrics = quality_metrics(generated, generated, train=[])
    assert metrics["bleu4"] > 0
    assert not [record for record in caplog.records if record.name.startswith("sacrebleu")]
