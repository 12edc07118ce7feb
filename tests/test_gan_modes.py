"""The generator's modes: delexicalised carrier phrases filled from a slot lexicon, and a
source-aware generator trained on English + German that writes German when asked for it."""

from __future__ import annotations

import random

import pytest

from gan.augment import Augmenter
from gan.lexicon import LexiconError, SlotLexicon, delexicalise, placeholder
from gan.sampling import SamplingConfig
from nlu.formats import read_utterances
from nlu.utterance import Utterance, check_iob2
from shared_data import SHARED_DATA
from test_gan_training import tiny_config, train_gan

XSID = SHARED_DATA / "xsid/xSID-0.7"


@pytest.fixture(scope="module")
def german() -> list[Utterance]:
    return read_utterances(XSID / "de.valid.conll", "conll")[:60]


@pytest.fixture(scope="module")
def english() -> list[Utterance]:
    return read_utterances(XSID / "en.valid.conll", "conll")[:120]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def test_delexicalise_and_fill_keep_types_and_prefer_the_span_length():
    real = [Utterance(("wake", "me", "at", "six", "thirty"), ("O", "O", "O", "B-time", "I-time"),
                      "alarm/set_alarm", "en"),
            Utterance(("at", "noon", "in", "rome"), ("O", "B-time", "O", "B-location"),
                      "weather/find", "en")]
    carrier = delexicalise(real[0])
    time = placeholder("time")
    assert carrier.tokens == ("wake", "me", "at", time, time) and carrier.tags == real[0].tags
    lexicon = SlotLexicon.build(real + [carrier])  # placeholders are never values
    assert lexicon.values["en"] == {"location": [("rome",)],
                                    "time": [("noon",), ("six", "thirty")]}
    rng = random.Random(0)
    for _ in range(20):  # a two-word span takes the two-word value
        assert lexicon.fill(carrier, rng) == real[0].replace(text=None)
    one_word = Utterance(("at", time, "in", placeholder("location")),
                         ("O", "B-time", "O", "B-location"), "weather/find", "en")
    filled = lexicon.fill(one_word, rng)
    assert filled.tokens == ("at", "noon", "in", "rome") and filled.tags == one_word.tags
    with pytest.raises(LexiconError, match="'de'"):
        lexicon.fill(one_word.replace(language="de"), rng)
    assert SlotLexicon.from_dict(lexicon.to_dict()) == lexicon


def test_delexicalised_generator_fills_every_span_with_a_lexicon_value(german, tmp_path):
    augmenter = train_gan(german, tiny_config(delexicalised=True, eval_samples=20),
                          run_dir=tmp_path)
    lexicon = SlotLexicon.build(german)
    assert augmenter.lexicon == lexicon
    samples = list(augmenter.generate(150, sampling=SamplingConfig(), seed=1, batch_size=64))
    assert len(samples) == 150
    filled_spans = 0
    for sample in samples:
        check_iob2(sample.tags)
        assert not any(token.startswith("<slot:") for token in sample.tokens)
        for span in sample.spans:
            assert sample.tokens[span.start:span.end] in lexicon.values["de"][span.label]
            filled_spans += 1
    assert filled_spans > 50
    # saved and loaded: the lexicon comes along, the same seed gives the same utterances
    reloaded = Augmenter.from_dir(tmp_path / "generator")
    assert list(reloaded.generate(40, sampling=SamplingConfig(), seed=5)) == list(
        augmenter.generate(40, sampling=SamplingConfig(), seed=5))
    # D scores real utterances through their carrier phrases
    assert reloaded.discriminator_scores(german[:3]).shape == (3,)


def test_a_given_lexicon_replaces_the_generators_own_and_must_cover_its_slots(german,
                                                                                tmp_path):
    augmenter = train_gan(german, tiny_config(delexicalised=True, eval_samples=0),
                          run_dir=tmp_path)
    own = SlotLexicon.build(german)
    other = SlotLexicon({"de": {slot: [(f"wert-{slot}",)] for slot in own.values["de"]}})
    samples = list(augmenter.generate(60, sampling=SamplingConfig(), seed=2, lexicon=other))
    for sample in samples:
        for span in sample.spans:
            assert sample.tokens[span.start:span.end] == (f"wert-{span.label}",)
    partial = SlotLexicon({"de": dict(list(other.values["de"].items())[:1])})
    with pytest.raises(ValueError, match="lexicon: no 'de' value for slot type"):
        augmenter.generate(5, sampling=SamplingConfig(), seed=2, lexicon=partial)

    lexicalised = train_gan(german, tiny_config(eval_samples=0), run_dir=tmp_path / "lexicalised")
    with pytest.raises(ValueError, match="lexicon: this generator writes its own slot values"):
        lexicalised.generate(5, sampling=SamplingConfig(), seed=2, lexicon=own)
    with pytest.raises(ValueError, match="catalogue: this generator writes its own slot"):
        lexicalised.generate(5, sampling=SamplingConfig(), seed=2, catalogue=own)


def test_a_catalogue_fills_the_share_of_spans_it_is_given_beside_the_own_values(german,
                                                                                 tmp_path):
    augmenter = train_gan(german, tiny_config(delexicalised=True, eval_samples=0),
                          run_dir=tmp_path)
    own = augmenter.lexicon.values["de"]
    listed = sorted(own)[:2]  # the catalogue has two slot types; the others come from own
    catalogue = SlotLexicon({"de": {slot: [("katalog", slot)] for slot in listed}})

    def values(share: float) -> list[tuple[str, tuple[str, ...]]]:
        samples = augmenter.generate(200, sampling=SamplingConfig(), seed=3,
                                     catalogue=catalogue, catalogue_share=share)
        return [(span.label, sample.tokens[span.start:span.end])
                for sample in samples for span in sample.spans]

    for label, value in values(1.0):
        assert value == (("katalog", label) if label in listed else value)
        assert label in listed or value in own[label]
    assert all(value in own[label] for label, value in values(0.0))
    assert list(augmenter.generate(30, sampling=SamplingConfig(), seed=3, catalogue=catalogue,
                                   catalogue_share=0.5)) == list(
        augmenter.generate(30, sampling=SamplingConfig(), seed=3, catalogue=catalogue,
                           catalogue_share=0.5))
    with pytest.raises(ValueError, match="catalogue_share: must be in"):
        augmenter.generate(5, sampling=SamplingConfig(), seed=2, catalogue=catalogue,
                           catalogue_share=1.5)
    with pytest.raises(ValueError, match="catalogue: no value in de \\(it holds values in en\\)"):
        augmenter.generate(5, sampling=SamplingConfig(), seed=2,
                           catalogue=SlotLexicon({"en": {listed[0]: [("x",)]}, "de": {}}))
    only_catalogue = SlotLexicon({"de": {slot: [("x",)] for slot in listed}})
    with pytest.raises(ValueError, match="in it or the catalogue"):
        augmenter.generate(5, sampling=SamplingConfig(), seed=2, lexicon=only_catalogue,
                           catalogue=catalogue)


def test_delexicalised_mode_needs_words_tied_to_tags():
    with pytest.raises(ValueError, match="delexicalised: needs tie_words_to_tags"):
        tiny_config(delexicalised=True, tie_words_to_tags=False)


@pytest.mark.parametrize("delexicalised", [False, True])
def test_a_source_aware_generator_writes_only_the_asked_language(english, german, tmp_path,
                                                                 delexicalised):
    augmenter = train_gan(english + german, tiny_config(delexicalised=delexicalised,
                                                        eval_samples=0), run_dir=tmp_path)
    assert augmenter.vocab.languages == ["de", "en"]
    german_words = {token for u in german for token in u.tokens}
    samples = list(augmenter.generate(120, sampling=SamplingConfig(), seed=4, language="de"))
    assert len(samples) == 120
    for sample in samples:
        assert sample.language == "de"
        assert set(sample.tokens) <= german_words  # German carrier words and German values
    if delexicalised:  # the placeholders are one token in both languages
        shared = set(augmenter.vocab.language_tokens["de"]) & set(
            augmenter.vocab.language_tokens["en"])
        assert {token for token in shared if token.startswith("<slot:")}


@pytest.mark.parametrize("delexicalised, slot_values, given, message", [
    (False, "generator-lexicon", False, "does not fit this generator \\(lexicalised"),
    (True, "generated", False, "does not fit this generator \\(delexicalised"),
    (True, "given-lexicon", False, "lexicon: give one exactly when"),
    (True, "generator-lexicon", True, "lexicon: give one exactly when"),
    (True, "made-up", False, "slot_values: 'made-up' is not one of"),
])
def test_bad_slot_value_requests_are_refused_naming_the_field(delexicalised, slot_values, given,
                                                              message):
    from gan.lexicon import choose_lexicon

    own = SlotLexicon({"de": {"city": [("berlin",)]}})
    with pytest.raises(ValueError, match=message):
        choose_lexicon(delexicalised, slot_values, own if given else None, own)


def test_slot_value_sources_that_fit():
    from gan.lexicon import choose_lexicon

    own, given = SlotLexicon({"de": {}}), SlotLexicon({"en": {}})
    assert choose_lexicon(False, None, None, None) is None
    assert choose_lexicon(False, "generated", None, None) is None
    assert choose_lexicon(True, None, None, own) is own
    assert choose_lexicon(True, "generator-lexicon", None, own) is own
    assert choose_lexicon(True, None, given, own) is given
    assert choose_lexicon(True, "given-lexicon", given, own) is given


def test_gan_train_cli_learns_from_a_source_and_writes_a_delexicalised_generator(
        english, german, tmp_path):
    import yaml

    from nlu.formats import write_utterances
    from service.cli import main

    write_utterances(german, tmp_path / "de.conll", "conll")
    write_utterances(english, tmp_path / "en.jsonl", "jsonl")
    job = {"data": {"train": "de.conll", "source": {"path": "en.jsonl", "format": "jsonl"}},
           "run_dir": str(tmp_path / "run"),
           "gan": tiny_config(eval_samples=0).to_dict(), "tracking": {"experiment": "modes-job"}}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    assert main(["gan", "train", "--config", str(tmp_path / "job.yaml"), "--delexicalised",
                 "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]) == 0
    augmenter = Augmenter.from_dir(tmp_path / "run" / "generator")
    assert augmenter.config.delexicalised and augmenter.vocab.languages == ["de", "en"]
    assert augmenter.lexicon == SlotLexicon.build(english + german)


def test_a_deadline_ends_generation_after_the_running_batch(german, tmp_path):
    import time

    augmenter = train_gan(german, tiny_config(eval_samples=0), run_dir=tmp_path)
    passed = augmenter.generate(100, sampling=SamplingConfig(), seed=1,
                                deadline=time.monotonic())
    assert list(passed) == [] and passed.deadline_passed
    ahead = augmenter.generate(100, sampling=SamplingConfig(), seed=1,
                               deadline=time.monotonic() + 600)
    assert len(list(ahead)) == 100 and not ahead.deadline_passed


def test_the_shipped_source_aware_job_names_existing_data():
    from pathlib import Path

    from gan.training import load_job

    job = load_job(Path(__file__).resolve().parents[1] / "experiments/gan_xsid_de.yaml", "source")
    assert (job.root / job.train.path).exists()
    assert (job.root / job.source.path).exists()
    assert job.source.sample == 5000 and job.config.adversarial_steps == 0
