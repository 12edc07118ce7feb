"""Slot-value catalogues (gan.catalogue): reading, checking, mixing, refill, cross-lingual."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gan.catalogue import (CatalogueError, SlotFiller, catalogue_from_entries,
                           catalogue_from_utterances, cross_lingual_catalogue, read_catalogue,
                           refill)
from gan.lexicon import LexiconError, SlotLexicon, delexicalise
from nlu.formats import write_utterances
from nlu.utterance import Utterance, check_iob2

DATA = Path(__file__).parent / "data" / "formats"


def utterance(text: str, tags: str, intent: str = "weather/find", language: str = "de",
              **optional) -> Utterance:
    return Utterance(tuple(text.split()), tuple(tags.split()), intent, language, **optional)


REAL = [
    utterance("wetter in berlin", "O O B-location", id="a"),
    utterance("wetter in bad homburg morgen", "O O B-location I-location B-datetime", id="b"),
    utterance("spiele musik von nena", "O O O B-artist", "music/play", id="c"),
    utterance("hallo", "O", "greeting", id="d"),
]


def write(tmp_path: Path, text: str, name: str = "de.catalogue.tsv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_tsv_catalogue_is_read_with_comments_blank_lines_and_a_language_column(tmp_path):
    path = write(tmp_path, "# cities\nlocation\tMünchen\n\nlocation\tSt. Pauli!\t"
                 "de\nartist\tDie Ärzte\nlocation\tWien\tde-at\n")
    lexicon, report = read_catalogue(path, language="de")
    assert lexicon.values["de"]["location"] == [("München",), ("St", ".", "Pauli", "!")]
    assert lexicon.values["de"]["artist"] == [("Die", "Ärzte")]
    assert lexicon.values["de-at"] == {"location": [("Wien",)]}
    assert (report.values, report.duplicates) == (4, 0)
    assert report.by_slot_type == {"artist": 1, "location": 3}


def test_duplicates_are_counted_and_kept_once(tmp_path):
    path = write(tmp_path, "location\tBerlin\nlocation\tBerlin\nlocation\tBerlin\tde\n"
                 "location\tBerlin\ten\n")
    lexicon, report = read_catalogue(path, language="de")
    assert lexicon.values["de"]["location"] == [("Berlin",)]
    assert (report.values, report.duplicates) == (2, 2)
    assert "2 values, 2 duplicates" in report.summary()


@pytest.mark.parametrize("text, line, field, words", [
    ("location\tBerlin\ncity\tWien\n", 2, "slot_type", "unknown slot type 'city'"),
    ("location\tBerlin\nlocation\t  \n", 2, "value", "empty value"),
    ("location\tBer\x07lin\n", 1, "value", "control character U+0007"),
    ("location\tBerlin\tdeutsch!\n", 1, "language", "not a language code"),
    ("# x\nlocation\n", 2, "columns", "got 1 TAB-separated columns"),
    ("location\tBerlin\tde\textra\n", 1, "columns", "got 4"),
    ("location\tBerlin\tde\nlocation\tWien\n", 2, "language", "no language"),
    ("location\t東京\n", 1, "value", "pre-tokenised"),
])
def test_each_bad_line_is_a_catalogue_error_naming_file_line_and_field(tmp_path, text, line,
                                                                       field, words):
    path = write(tmp_path, text)
    language = None if "no language" in words else "de"
    with pytest.raises(CatalogueError) as caught:
        read_catalogue(path, language=language, slot_types=["location", "artist"])
    assert str(caught.value).startswith(f"{path}:{line}: {field}: ")
    assert words in str(caught.value)


def test_a_language_written_without_spaces_takes_values_split_on_spaces(tmp_path):
    path = write(tmp_path, "location\t東京 タワー\tja\nlocation\tกรุงเทพ\tth\n")
    lexicon, _ = read_catalogue(path)
    assert lexicon.values["ja"]["location"] == [("東京", "タワー")]
    assert lexicon.values["th"]["location"] == [("กรุงเทพ",)]


def test_an_annotated_file_gives_its_spans_as_values_with_errors_at_its_line(tmp_path):
    lexicon, report = read_catalogue(DATA / "de.sample.conll")
    assert report.values == sum(len(values) for values in lexicon.values["de"].values())
    assert report.values > 0
    some_type = sorted(report.by_slot_type)[0]
    with pytest.raises(CatalogueError) as caught:
        read_catalogue(DATA / "de.sample.conll", slot_types=[some_type])
    assert f"{DATA / 'de.sample.conll'}:" in str(caught.value)
    assert "slot_type: unknown slot type" in str(caught.value)


def test_a_schuster_tsv_is_read_as_annotated_data_not_as_a_catalogue():
    lexicon, report = read_catalogue(DATA / "es.aligned.tsv")
    assert report.values > 0 and "es" in lexicon.values


def test_a_jsonl_file_is_a_catalogue_of_its_spans(tmp_path):
    path = tmp_path / "de.jsonl"
    write_utterances(REAL, path, "jsonl")
    lexicon, report = read_catalogue(path)
    assert lexicon.values["de"]["location"] == [("bad", "homburg"), ("berlin",)]
    assert report.by_slot_type == {"artist": 1, "datetime": 1, "location": 2}


def test_inline_entries_are_checked_and_errors_name_their_index():
    lexicon, report = catalogue_from_entries(
        [("location", "Köln", None), ("location", "Köln", ""), ("artist", "Nena", "de")],
        language="de")
    assert lexicon.values["de"] == {"artist": [("Nena",)], "location": [("Köln",)]}
    assert report.duplicates == 1
    with pytest.raises(CatalogueError, match=r"^catalogue\[1\]\.value: empty value"):
        catalogue_from_entries([("location", "Köln", None), ("location", "", None)],
                               language="de")
    with pytest.raises(CatalogueError, match=r"^values\[0\]\.slot_type: unknown"):
        catalogue_from_entries([("city", "Köln", None)], language="de",
                               slot_types=["location"], field="values")


def test_catalogue_from_utterances_keeps_values_only_and_relabels_their_language():
    catalogue = catalogue_from_utterances(REAL, language="de-at")
    assert set(catalogue.values) == {"de-at"}
    assert catalogue.values["de-at"]["location"] == [("bad", "homburg"), ("berlin",)]


def test_the_cross_lingual_catalogue_takes_the_types_whose_values_stay_the_same():
    source = [utterance("weather in Berlin", "O O B-location", language="en"),
              utterance("weather in Paris", "O O B-location", language="en"),
              utterance("weather tomorrow", "O B-datetime", language="en"),
              utterance("play Nena", "O B-artist", "music/play", language="en")]
    target = [utterance("wetter in berlin", "O O B-location"),
              utterance("wetter in wien", "O O B-location"),
              utterance("wetter morgen", "O B-datetime")]
    catalogue, shares = cross_lingual_catalogue(source, target, language="de",
                                                min_verbatim_share=0.5, min_target_values=2)
    assert shares == {"datetime": 0.0, "location": 0.5}  # only what the target has
    assert catalogue.values == {"de": {"location": [("Berlin",), ("Paris",)]}}
    none, _ = cross_lingual_catalogue(source, target, language="de", min_verbatim_share=0.6,
                                      min_target_values=2)
    assert none.values == {"de": {}}
    # two target values are too few to judge a type by (a share of 0.5 by chance)
    unjudged, _ = cross_lingual_catalogue(source, target, language="de", min_verbatim_share=0.5)
    assert unjudged.values == {"de": {}}


def test_the_cross_lingual_catalogue_sees_only_the_target_data_it_is_given():
    source = [utterance("weather in Wien", "O O B-location", language="en")]
    train = [utterance("wetter in berlin", "O O B-location")]
    _, shares = cross_lingual_catalogue(source, train, language="de")
    assert shares == {"location": 0.0}  # a test file holding "wien" would change nothing


OWN = SlotLexicon({"de": {"location": [("berlin",)], "artist": [("nena",)],
                          "datetime": [("morgen",)]}})
CATALOGUE = SlotLexicon({"de": {"location": [("köln",), ("bad", "tölz")]}})


def refilled_values(share: float, count: int = 400, seed: int = 3) -> Counter:
    filler = SlotFiller(OWN, CATALOGUE, share)
    found = Counter()
    for item in refill(REAL[:2], filler, count=count, seed=seed):
        for span in item.spans:
            if span.label == "location":
                found[item.tokens[span.start:span.end]] += 1
    return found


def test_with_share_one_every_value_comes_from_the_catalogue():
    assert set(refilled_values(1.0)) == {("köln",), ("bad", "tölz")}


def test_with_share_zero_every_value_is_the_targets_own():
    assert set(refilled_values(0.0)) == {("berlin",)}


def test_a_share_between_mixes_the_sources_in_proportion():
    found = refilled_values(0.3, count=2000)
    from_catalogue = found[("köln",)] + found[("bad", "tölz")]
    assert 0.25 < from_catalogue / sum(found.values()) < 0.35


def test_a_source_lacking_a_type_is_replaced_by_the_other_and_neither_is_an_error():
    filler = SlotFiller(OWN, CATALOGUE, 1.0)
    rng = random.Random(0)
    music = filler.fill(REAL[2], rng, match_length=False)
    assert music.tokens == ("spiele", "musik", "von", "nena")  # the catalogue has no artist
    with pytest.raises(LexiconError, match="'time'"):
        filler.fill(utterance("wecke mich um drei", "O O O B-time"), rng)
    with pytest.raises(ValueError, match="catalogue_share"):
        SlotFiller(OWN, CATALOGUE, 1.5)


def test_a_placeholder_span_gets_a_value_of_its_length_when_there_is_one():
    filler = SlotFiller(SlotLexicon({"de": {"location": [("ulm",)], "datetime": [("heute",)]}}),
                        CATALOGUE, 1.0)
    carrier = delexicalise(REAL[1])
    filled = {filler.fill(carrier, random.Random(seed)).tokens for seed in range(20)}
    assert filled == {("wetter", "in", "bad", "tölz", "heute")}


def test_refill_keeps_size_intents_and_valid_tags_and_names_its_copies():
    filler = SlotFiller(catalogue_from_utterances(REAL), CATALOGUE, 0.5)
    copies = refill(REAL, filler, count=10, seed=7)
    assert len(copies) == 10
    assert Counter(item.intent for item in copies) == Counter(
        {"weather/find": 5, "music/play": 3, "greeting": 2})
    assert len({item.id for item in copies}) == 10
    assert all(item.source == "refill" and item.id.split(":", 1)[1] in "abcd"
               for item in copies)
    for item in copies:
        check_iob2(item.tags)
        original = next(real for real in REAL if real.id == item.id.split(":", 1)[1])
        assert [span.label for span in item.spans] == [span.label for span in original.spans]


def test_refill_takes_whole_passes_before_repeating_an_utterance():
    filler = SlotFiller(catalogue_from_utterances(REAL))
    copies = refill(REAL[:2], filler, count=5, seed=1)
    origins = Counter(item.id.split(":", 1)[1] for item in copies)
    assert sorted(origins.values()) == [2, 3]


def test_refill_is_deterministic_for_a_seed():
    filler = SlotFiller(catalogue_from_utterances(REAL), CATALOGUE, 0.5)
    assert refill(REAL, filler, count=30, seed=5) == refill(REAL, filler, count=30, seed=5)
    assert refill(REAL, filler, count=30, seed=5) != refill(REAL, filler, count=30, seed=6)


WORDS = st.text("abcxyzäö", min_size=1, max_size=4)


@st.composite
def annotated(draw) -> Utterance:
    tags = draw(st.lists(st.sampled_from(["O", "B-location", "I-location", "B-artist"]),
                         min_size=1, max_size=6))
    tags = [f"B-{tag[2:]}" if tag.startswith("I-") and (position == 0 or tags[position - 1][2:]
                                                         != tag[2:]) else tag
            for position, tag in enumerate(tags)]
    words = draw(st.lists(WORDS, min_size=len(tags), max_size=len(tags)))
    return Utterance(tuple(words), tuple(tags), draw(st.sampled_from(["a", "b"])), "de")


@settings(max_examples=60, deadline=None)
@given(st.lists(annotated(), min_size=1, max_size=5), st.integers(0, 12),
       st.floats(0, 1), st.integers(0, 2 ** 32))
def test_refill_always_writes_valid_iob2_with_the_same_slot_types(real, count, share, seed):
    filler = SlotFiller(SlotLexicon({"de": {"location": [("x",), ("y", "z", "w")]}}),
                        SlotLexicon({"de": {"artist": [("p", "q")]}}), share)
    copies = refill(real, filler, count=count, seed=seed)
    assert len(copies) == count
    for item in copies:  # an Utterance is valid IOB2 by construction; check the types too
        original = real[int(item.id.split(":#")[1])]
        assert [span.label for span in item.spans] == [span.label for span in original.spans]
