from pathlib import Path

import pytest

from nlu.domain import SNIPS_DOMAINS, DomainClassifier
from nlu.formats import read_utterances
from nlu.utterance import Utterance
from shared_data import SHARED_DATA

XSID = SHARED_DATA / "xsid/xSID-0.7"


@pytest.fixture(scope="module")
def xsid():
    """Real xSID dev (train) and test sentences for English and German."""
    train = read_utterances(XSID / "en.valid.conll") + read_utterances(XSID / "de.valid.conll")
    test = (read_utterances(XSID / "en.test.conll")[:100]
            + read_utterances(XSID / "de.test.conll")[:100])
    return train, test


def test_domains_come_from_field_mapping_or_intent_prefix():
    classifier = DomainClassifier(domain_map=SNIPS_DOMAINS)
    alarm = Utterance(["wake", "me"], ["O", "O"], "alarm/set_alarm", "en")
    assert classifier.domain(alarm) == "alarm"
    assert classifier.domain(alarm.replace(intent="PlayMusic")) == "music"
    assert classifier.domain(alarm.replace(intent="Unmapped")) == "Unmapped"
    assert classifier.domain(alarm.replace(domain="clock")) == "clock"


def test_learns_xsid_domains_and_reports_accuracy_per_language(xsid):
    train, test = xsid
    classifier = DomainClassifier(domain_map=SNIPS_DOMAINS).fit(train)
    assert {"alarm", "reminder", "weather", "music"} <= set(classifier.domains)
    predictions = classifier.predict(test)
    assert len(predictions) == len(test) and set(predictions) <= set(classifier.domains)
    accuracy = classifier.accuracy(test)
    assert set(accuracy) == {"all", "en", "de"}
    # 8 domains: chance is ~1/8; bag-of-n-grams on 600 sentences gets most of them right
    assert accuracy["en"] > 0.8 and accuracy["de"] > 0.8


def test_save_and_load_round_trip(xsid, tmp_path):
    train, test = xsid
    classifier = DomainClassifier().fit(train[:200])
    classifier.save(tmp_path / "domain.joblib")
    loaded = DomainClassifier.load(tmp_path / "domain.joblib")
    assert loaded.predict(test) == classifier.predict(test)
    assert [path.name for path in tmp_path.iterdir()] == ["domain.joblib"]  # no temp files left


def test_unfitted_or_single_domain_is_an_error():
    utterance = Utterance(["wake", "me"], ["O", "O"], "alarm/set_alarm", "en")
    with pytest.raises(RuntimeError, match="call fit"):
        DomainClassifier().predict([utterance])
    with pytest.raises(ValueError, match="two domains"):
        DomainClassifier().fit([utterance, utterance])
