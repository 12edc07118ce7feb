"""The parse API: raw text or words in, intent + probability + ranking + slots out, on a tiny
model trained in seconds on real xSID utterances (English and German, a few Japanese ones in
its vocabulary so that Japanese is a language it knows)."""

import dataclasses

import pytest

from nlu.formats import read_utterances
from nlu.model import JointModelConfig
from nlu.parse import (CACHED_WORD_CHARACTERS, MAX_TOKENS, Parse, ParseInputError, build_parse,
                       prepare_inputs, tokenize)
from nlu.training import TrainedNlu, fit
from nlu.utterance import check_iob2
from shared_data import SHARED_DATA

XSID = SHARED_DATA / "xsid" / "xSID-0.7"
TINY = JointModelConfig(embedding_dim=16, hidden_dim=32, num_layers=1, vocab_size=400,
                        batch_size=8, max_epochs=12, lr=2e-2, enable_progress_bar=False,
                        num_threads=1)


@pytest.fixture(scope="module")
def train():
    return read_utterances(XSID / "en.valid.conll")[:48] + read_utterances(XSID / "de.valid.conll")[:48]


@pytest.fixture(scope="module")
def model(train, tmp_path_factory) -> TrainedNlu:
    japanese = read_utterances(XSID / "ja.valid.conll")[:8]
    return fit(train, None, TINY, vocabulary_text=train + japanese,
               run_dir=tmp_path_factory.mktemp("run"))


def test_raw_text_slots_point_back_at_their_exact_substring(model):
    texts = ["Wecke mich morgen um 7 Uhr!", "  Set an alarm for 8am tomorrow,  please. ",
             "Remind me to call Ben about Georgia at 5:30 pm"]
    parses = model.parse(texts, language="de")
    assert len(parses) == 3
    for text, parse in zip(texts, parses):
        assert parse.text == text
        check_iob2(parse.tags)
        assert len(parse.tags) == len(parse.tokens)
        for slot in parse.slots:
            assert text[slot.start_char:slot.end_char] == slot.value
            assert slot.value.split()[0] == parse.tokens[slot.start]
            assert parse.tags[slot.start] == f"B-{slot.type}"
    assert parses[0].tokens == ("Wecke", "mich", "morgen", "um", "7", "Uhr", "!")
    assert parses[1].tokens[-3:] == (",", "please", ".")


def test_every_slot_span_matches_the_tags(model, train):
    parses = model.parse([u.tokens for u in train], language="en")
    assert any(parse.slots for parse in parses)  # the model tags something at all
    for parse in parses:
        tagged = [(slot.start, slot.end, slot.type) for slot in parse.slots]
        assert tagged == [tuple(span) for span in parse.to_utterance().spans]


def test_words_in_give_slots_without_character_offsets(model):
    words = ["set", "an", "alarm", "for", "8", "am", "tomorrow"]
    [parse] = model.parse([words], language="en")
    assert parse.text is None and parse.tokens == tuple(words)
    assert "text" not in parse.to_dict()
    for slot in parse.slots:
        assert slot.start_char is None and slot.end_char is None
        assert slot.value == " ".join(words[slot.start:slot.end])


def test_top_k_is_sorted_best_first_and_sums_to_at_most_one(model):
    [parse] = model.parse(["Is it going to rain today?"], language="en", top_k=4)
    scores = [score.probability for score in parse.ranking]
    assert len(parse.ranking) == 4
    assert scores == sorted(scores, reverse=True) and sum(scores) <= 1 + 1e-6
    assert parse.ranking[0].intent == parse.intent and scores[0] == parse.probability
    [everything] = model.parse(["Is it going to rain today?"], language="en", top_k=1000)
    assert len(everything.ranking) == len(model.intents)
    assert sum(score.probability for score in everything.ranking) == pytest.approx(1, abs=1e-5)


def test_parse_agrees_with_predict_on_intent_and_tags(model):
    gold = read_utterances(XSID / "de.test.conll")[:40]
    predicted = model.predict(gold)
    parses = model.parse([u.tokens for u in gold], language="de", batch_size=7)
    assert [(p.intent, p.tags) for p in parses] == [(u.intent, u.tags) for u in predicted]


def test_the_model_tells_its_languages_intents_and_slot_types(model, train, tmp_path):
    assert model.languages == ("de", "en", "ja")
    assert set(model.intents) >= {u.intent for u in train}
    assert set(model.slot_types) == {slot for u in train for slot in u.slot_types}
    loaded = TrainedNlu.load(model.save(tmp_path / "model"))
    assert (loaded.languages, loaded.intents, loaded.slot_types) == (
        model.languages, model.intents, model.slot_types)


def test_japanese_raw_text_is_refused_and_its_words_are_parsed(model):
    with pytest.raises(ParseInputError, match="list of words") as refused:
        model.parse(["すべてのリマインダーを表示"], language="ja")
    assert refused.value.field == "inputs[0]"
    [parse] = model.parse([["すべて", "の", "リマインダー", "を", "表示"]], language="ja")
    assert parse.language == "ja" and len(parse.tags) == 5


@pytest.mark.parametrize("language", ["zh", "th", "ja-JP"])
def test_languages_written_without_spaces_are_refused_as_raw_text(language):
    with pytest.raises(ParseInputError, match="without spaces"):
        tokenize("hello world", language)


def test_raw_text_in_a_no_space_script_is_refused_whatever_the_language():
    with pytest.raises(ParseInputError, match="U\\+663E"):
        tokenize("please 显示所有的提醒", "en")


def test_tokenize_splits_edge_punctuation_and_keeps_words_whole():
    tokens, offsets = tokenize("Do I need a sweater? (at 7:30, TV-Serie) l'opera 80's",
                               "en")
    assert tokens == ["Do", "I", "need", "a", "sweater", "?", "(", "at", "7:30", ",",
                      "TV-Serie", ")", "l'opera", "80's"]
    text = "Do I need a sweater? (at 7:30, TV-Serie) l'opera 80's"
    assert [text[start:end] for start, end in offsets] == tokens


def test_a_word_too_long_to_be_cached_splits_as_a_short_one_does():
    long_word = "x" * (CACHED_WORD_CHARACTERS + 1)
    text = f'the ("{long_word}"). "{long_word[:3]}").'
    tokens, offsets = tokenize(text, "en")
    assert tokens == ["the", "(", '"', long_word, '"', ")", ".", '"', "xxx", '"', ")", "."]
    assert [text[start:end] for start, end in offsets] == tokens


def test_tokenize_agrees_with_the_xsid_tokenisation_of_most_utterances():
    gold = [u for language in ("en", "de", "it", "nl")
            for u in read_utterances(XSID / f"{language}.test.conll")]
    same = sum(tuple(tokenize(u.text, u.language)[0]) == u.tokens for u in gold)
    assert same / len(gold) > 0.95  # the rest are xSID's own inconsistencies ("Halo:")


@pytest.mark.parametrize("bad, field, message", [
    ([""], "inputs[0]", "empty text"),
    (["ok", "   "], "inputs[1]", "empty text"),
    (["wake me\x00up"], "inputs[0]", "control character"),
    (["wake me\nup"], "inputs[0]", "control character"),
    ([" ".join(["word"] * (MAX_TOKENS + 1))], "inputs[0]", f"more than the {MAX_TOKENS}"),
    ([[]], "inputs[0]", "no words"),
    ([["two words"]], "inputs[0]", "whitespace"),
    ([[1, 2]], "inputs[0]", "list of words"),
    ("one string", "inputs", "list of utterances"),
])
def test_bad_input_is_a_parse_input_error_naming_its_field(model, bad, field, message):
    with pytest.raises(ParseInputError, match=message) as refused:
        model.parse(bad, language="en")
    assert refused.value.field == field


def test_a_language_the_model_does_not_know_is_refused(model):
    with pytest.raises(ParseInputError, match="does not know language 'fr'") as refused:
        model.parse(["bonjour"], language="fr")
    assert refused.value.field == "language"


def test_a_model_saved_without_languages_parses_any_language(model):
    unrecorded = TrainedNlu(model.config, model.tokenizer, model.intents, model.tags,
                            model.module)
    assert unrecorded.languages == ()
    [parse] = unrecorded.parse(["bonjour"], language="fr")
    assert isinstance(parse, Parse) and parse.language == "fr"


def test_parse_leaves_a_training_module_in_training_mode(model):
    model.module.train()
    try:
        model.parse(["stop alarm"], language="en")
        assert model.module.training
    finally:
        model.module.eval()


def test_a_parse_converts_to_an_utterance_and_a_json_record(model):
    [parse] = model.parse(["Set alarm for 5 am"], language="en")
    utterance = parse.to_utterance()
    assert (utterance.tokens, utterance.tags, utterance.intent) == (
        parse.tokens, parse.tags, parse.intent)
    record = parse.to_dict()
    assert record["intent"] == parse.intent and record["text"] == "Set alarm for 5 am"
    assert [slot["type"] for slot in record["slots"]] == [slot.type for slot in parse.slots]
    assert dataclasses.asdict(parse)["ranking"][0]["intent"] == parse.intent


def test_slot_offsets_cover_the_slot_words_in_the_raw_text():
    text = "  Wecke mich morgen  um 7 Uhr, bitte!"
    [item] = prepare_inputs([text], "de")
    tags = ["O", "O", "B-datetime", "I-datetime", "I-datetime", "I-datetime", "O", "B-x", "O"]
    parse = build_parse(item, "de", ["alarm/set_alarm", "weather/find"], [0.25, 0.75], tags, 3)
    assert parse.intent == "weather/find" and parse.probability == 0.75
    assert [(slot.type, slot.value, slot.start, slot.end) for slot in parse.slots] == [
        ("datetime", "morgen  um 7 Uhr", 2, 6), ("x", "bitte", 7, 8)]
    assert [text[slot.start_char:slot.end_char] for slot in parse.slots] == [
        "morgen  um 7 Uhr", "bitte"]


def test_encoding_many_utterances_at_once_equals_encoding_each(model, train):
    token_lists = [u.tokens for u in train[:30]] + [("qwzx", "Überraschung", "▁")]
    assert model.tokenizer.encode_utterances(token_lists) == [
        model.tokenizer.encode_words(tokens) for tokens in token_lists]
    assert model.tokenizer.encode_utterances([]) == []
