import numpy as np
import pytest

from gan.gate import GateConfig, GateReport, QualityGate
from nlu.errors import NluDataError
from nlu.utterance import Utterance


def utt(text, tags, intent="play", language="en"):
    return Utterance(tuple(text.split()), tuple(tags.split()), intent, language)


TRAIN = [utt("play jazz", "O B-genre"), utt("play some rock", "O O B-genre")]


class FixedModel:
    """Predicts ``intent`` for everything and keeps the tags: agrees only on that intent."""

    def __init__(self, intent):
        self.intent = intent

    def predict(self, utterances):
        return [u.replace(intent=self.intent) for u in utterances]


def test_each_step_is_counted_and_reports_add_up_across_batches():
    gate = QualityGate(GateConfig(), TRAIN)
    running = gate.report  # a reference taken before filtering sees the running totals
    batch = [
        utt("play blues", "O B-genre"),                   # kept
        utt("play blues", "O B-genre"),                   # duplicate in the batch
        ("play", "O B-genre".split(), "play", "en"),      # malformed: 1 token, 2 tags
        (["play", "x"], ["O", "I-genre"], "play", "en"),  # malformed: I- opens a slot
        utt("play jazz", "O B-genre"),                    # train copy
        utt("play jazz", "O O", intent="other"),          # same words, other labels: train copy
    ]
    kept, report = gate.filter(batch)
    assert [u.tokens for u in kept] == [("play", "blues")]
    assert report.as_dict() == {"seen": 6, "malformed": 2, "duplicates": 1, "train_copies": 2,
                                "low_score": 0, "disagreement": 0, "kept": 1, "surplus": 0}

    # the gate remembers what it kept: the same sample in the next batch is a duplicate
    kept, second = gate.filter([(["play", "blues"], ["O", "B-genre"], "play", "en"),
                                utt("play pop", "O B-genre")])
    assert [u.tokens for u in kept] == [("play", "pop")]
    assert second.duplicates == 1 and second.kept == 1
    assert gate.report == report + second
    assert gate.report.seen == 8 and gate.report.kept == 2
    assert running is gate.report


def test_disabled_steps_keep_duplicates_and_copies():
    gate = QualityGate(GateConfig(deduplicate=False, drop_train_copies=False), TRAIN)
    kept, report = gate.filter([TRAIN[0], TRAIN[0]])
    assert len(kept) == 2 and report.kept == 2 and report.duplicates == report.train_copies == 0


def test_malformed_sample_raises_when_not_dropped():
    gate = QualityGate(GateConfig(drop_malformed=False), TRAIN)
    with pytest.raises(NluDataError):
        gate.filter([(["a"], ["I-x"], "play", "en")])


def test_discriminator_threshold_and_nlu_agreement():
    samples = [utt("play a", "O B-genre"), utt("play b", "O B-genre"),
               utt("play c", "O B-genre", intent="stop"), utt("play d", "O O", intent="stop")]
    scores = {("play", "a"): 0.1, ("play", "b"): 0.9, ("play", "c"): 0.8, ("play", "d"): 0.5}

    def discriminator(utterances):
        return np.array([scores[u.tokens] for u in utterances])

    gate = QualityGate(GateConfig(min_discriminator_score=0.5, nlu_agreement=True), TRAIN,
                       discriminator=discriminator, nlu_model=FixedModel("stop"))
    kept, report = gate.filter(samples)
    assert [u.tokens for u in kept] == [("play", "c"), ("play", "d")]
    assert (report.low_score, report.disagreement, report.kept) == (1, 1, 2)
    assert report.kept_rate == 0.5


def test_missing_scorer_is_a_config_error():
    with pytest.raises(ValueError):
        QualityGate(GateConfig(min_discriminator_score=0.5), TRAIN)
    with pytest.raises(ValueError):
        QualityGate(GateConfig(nlu_agreement=True), TRAIN)
    with pytest.raises(ValueError):
        GateConfig(min_discriminator_score=1.5)


def test_empty_report_rate():
    assert GateReport().kept_rate == 0.0
