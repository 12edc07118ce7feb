"""Label-schema mapping: YAML loading, renaming, removing and dropping, strictness."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlu.errors import LabelMappingError
from nlu.formats import read_utterances
from nlu.schema import LabelMapping, bundled_mappings
from nlu.utterance import Utterance
from shared_data import SHARED_DATA

SHARED = SHARED_DATA
XSID = SHARED / "xsid"


def utterance(tokens, tags, intent, source="t.conll:1"):
    return Utterance(tuple(tokens.split()), tuple(tags), intent, "en", source=source)


def test_bundled_mappings_load_by_name():
    assert bundled_mappings() == ["schuster-to-xsid", "snips-to-xsid", "xsid-train-0.1-to-0.7"]
    mapping = LabelMapping.load("xsid-train-0.1-to-0.7")
    assert mapping.strict and mapping.intents["GetWeather"] == "weather/find"
    assert LabelMapping.load("schuster-to-xsid.yaml").slots["reminder/noun"] == "O"


def test_apply_renames_removes_and_drops(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("intents: {GetWeather: weather/find}\n"
                    "slots: {city: location, state: location, noise: O}\n"
                    "drop_intents: [Chitchat]\n")
    mapping = LabelMapping.load(path)
    weather = utterance("rain in paris texas now", ["O", "O", "B-city", "B-state", "B-noise"],
                        "GetWeather")
    chat = utterance("hello", ["O"], "Chitchat")
    music = utterance("play jazz", ["O", "B-genre"], "PlayMusic")
    mapped = mapping.apply([weather, chat, music])
    # Two adjacent spans that map to the same label stay two spans.
    assert mapped[0].tags == ("O", "O", "B-location", "B-location", "O")
    assert mapped[0].intent == "weather/find"
    assert mapped[0].source == weather.source
    assert mapped[1] == music  # not strict: unlisted labels pass through


def test_strict_mapping_names_the_unmapped_label_and_where_it_came_from():
    mapping = LabelMapping.from_dict({"strict": True, "intents": {"a": "b"}, "slots": {}})
    with pytest.raises(LabelMappingError) as error:
        mapping.apply([utterance("x y", ["O", "B-color"], "a", source="data.tsv:12")])
    assert str(error.value) == \
        "data.tsv:12: slot: slot 'color' is not in mapping 'mapping' (strict)"


@pytest.mark.parametrize("document", [
    {"intents": ["a"]}, {"slots": {"a": 3}}, {"intents": {"a": "O"}}, {"drop_intents": "a"},
    {"unknown_key": 1},
])
def test_malformed_mappings_are_rejected(document):
    with pytest.raises(LabelMappingError):
        LabelMapping.from_dict(document)


def test_unknown_mapping_name_lists_the_bundled_ones():
    with pytest.raises(LabelMappingError, match="snips-to-xsid"):
        LabelMapping.load("no-such-mapping")


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"{SHARED} not present")
def test_xsid_train_mapped_to_0_7_uses_only_0_7_labels():
    dev = read_utterances(XSID / "xSID-0.7" / "en.valid.conll") + \
        read_utterances(XSID / "xSID-0.7" / "en.test.conll")
    mapping = LabelMapping.load("xsid-train-0.1-to-0.7")
    train = mapping.apply(read_utterances(XSID / "en-train-v0.1"))
    assert len(train) == 43_605
    assert {u.intent for u in train} == {u.intent for u in dev}
    dev_slots = set().union(*(u.slot_types for u in dev))
    assert set().union(*(u.slot_types for u in train)) <= dev_slots
