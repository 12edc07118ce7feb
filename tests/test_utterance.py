"""The one record type: validation on construction, repair mode, spans <-> BIO."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nlu.errors import AnnotationError, FieldTypeError, IOBError, LengthMismatchError
from nlu.utterance import (Span, Utterance, check_iob2, domain_of, repair_tags, spans_to_tags,
                           tags_to_spans)


def make(tokens="wake me at five", tags=("O", "O", "O", "B-datetime"), **fields):
    return Utterance(tuple(tokens.split()), tags, fields.pop("intent", "alarm/set_alarm"),
                     fields.pop("language", "en"), **fields)


def test_valid_utterance_is_immutable_hashable_and_round_trips_through_a_dict():
    utterance = make(id="7", source="x.conll:3")
    assert utterance.spans == [Span(3, 4, "datetime")]
    assert utterance.slot_types == {"datetime"}
    assert utterance.effective_domain == "alarm"
    assert Utterance.from_dict(utterance.to_dict()) == utterance
    assert "domain" not in utterance.to_dict()  # unset optional fields are left out
    assert len({utterance, make(id="7", source="x.conll:3")}) == 1
    with pytest.raises(AttributeError):
        utterance.intent = "other"  # type: ignore[misc]


@pytest.mark.parametrize("tokens, tags, error", [
    ("wake me", ("O",), LengthMismatchError),
    ("wake me", ("O", "I-datetime"), IOBError),
    ("wake me", ("B-time", "I-date"), IOBError),
    ("wake me", ("O", "Orecurring_datetime"), IOBError),
    ("", (), AnnotationError),
])
def test_invalid_annotations_raise_typed_errors(tokens, tags, error):
    with pytest.raises(error):
        make(tokens, tags)


@pytest.mark.parametrize("fields", [{"intent": ""}, {"intent": "set alarm"}, {"language": ""}])
def test_intent_and_language_must_be_single_words(fields):
    with pytest.raises(AnnotationError):
        make(**fields)


def test_tokens_with_whitespace_are_rejected():
    with pytest.raises(AnnotationError, match="token 1"):
        Utterance(("a b",), ("O",), "x", "en")


@pytest.mark.parametrize("fields, field", [
    ({"tokens": "ab", "tags": ("O", "O")}, "tokens"),  # a string is not a list of tokens
    ({"tokens": ["a", 1]}, "tokens"), ({"tags": [None]}, "tags"), ({"intent": 5}, "intent"),
    ({"language": None}, "language"), ({"id": [1]}, "id"), ({"id": 7}, "id"),
    ({"domain": 3.5}, "domain"), ({"source": True}, "source"), ({"text": {}}, "text"),
])
def test_fields_of_the_wrong_type_are_rejected_not_stringified(fields, field):
    values = {"tokens": ["a"], "tags": ["O"], "intent": "x", "language": "en", **fields}
    with pytest.raises(FieldTypeError) as error:
        Utterance(**values)
    assert error.value.field == field
    with pytest.raises(FieldTypeError):  # repair mode checks before it repairs
        Utterance.build(values.pop("tokens"), values.pop("tags"), **values, mode="repair")


@pytest.mark.parametrize("field, value", [
    ("id", "1\n1\tevil\tx\tB-pwn"), ("text", "a\tb"), ("domain", "x\r"), ("source", "f:1\x00"),
    ("text", "a\u2028b"), ("id", "\x85"), ("intent", "x\x1b[2J"), ("tokens", ("a\x00",)),
])
def test_control_characters_are_rejected_naming_the_field(field, value):
    with pytest.raises(AnnotationError, match="control character|whitespace") as error:
        Utterance(**{"tokens": ("a",), "tags": ("O",), "intent": "x", "language": "en",
                     field: value})
    assert error.value.field == field


def test_a_lone_surrogate_no_writer_can_encode_is_rejected_naming_the_field():
    # json.loads('"\\udc80"') gives one; writing it as UTF-8 would crash every writer.
    with pytest.raises(AnnotationError, match="lone surrogate U\\+DC80 at character 2") as error:
        Utterance(("a",), ("O",), "x", "en", id="1\udc80")
    assert error.value.field == "id"


def test_other_c1_characters_are_kept_as_real_data_holds_them():
    # xSID no.test.conll:3937 spells a word with U+009F in it (mojibake).
    utterance = make("Sarygamy\x9f wake", ("O", "O"), text="Sarygamy\x9f wake\u00a0me")
    assert utterance.tokens[0] == "Sarygamy\x9f"


def test_a_tag_with_whitespace_is_malformed():
    with pytest.raises(IOBError, match="malformed"):
        Utterance(("a",), ("B-x\n1",), "x", "en")
    repaired, changes = Utterance.build(["a"], ["B-x y"], "x", "en", mode="repair")
    assert repaired.tags == ("O",) and changes == ["token 1: malformed 'B-x y' -> 'O'"]


def test_repair_mode_converts_iob1_and_malformed_tags_and_says_what_it_changed():
    utterance, changes = Utterance.build(
        ["remind", "me", "every", "day"], ["O", "I-todo", "Orecurring", "I-datetime"],
        "reminder/set_reminder", "en", mode="repair")
    assert utterance.tags == ("O", "B-todo", "O", "B-datetime")
    assert changes == ["token 2: 'I-todo' opens a slot -> 'B-todo'",
                       "token 3: malformed 'Orecurring' -> 'O'",
                       "token 4: 'I-datetime' opens a slot -> 'B-datetime'"]
    with pytest.raises(IOBError):
        Utterance.build(["a"], ["I-x"], "i", "en", mode="strict")


def test_spans_and_tags_convert_both_ways():
    tags = ("B-a", "I-a", "O", "B-b", "B-b", "I-b")
    spans = tags_to_spans(tags)
    assert spans == [Span(0, 2, "a"), Span(3, 4, "b"), Span(4, 6, "b")]
    assert spans_to_tags(6, spans) == tags
    with pytest.raises(AnnotationError):
        spans_to_tags(3, [Span(0, 2, "a"), Span(1, 3, "b")])
    with pytest.raises(AnnotationError):
        spans_to_tags(2, [Span(1, 3, "a")])


def test_domain_of_intent():
    assert domain_of("alarm/set_alarm") == "alarm"
    assert domain_of("PlayMusic") == "PlayMusic"


LABELS = st.sampled_from(["O", "B-a", "I-a", "B-b", "I-b", "junk"])


@given(st.lists(LABELS, min_size=1, max_size=12))
def test_repair_always_yields_valid_iob2_that_keeps_valid_input_unchanged(tags):
    repaired, changes = repair_tags(tags)
    check_iob2(repaired)
    assert (list(repaired) == tags) == (not changes)


@given(st.lists(st.sampled_from(["O", "B-a", "I-a", "B-b", "I-b"]), min_size=1, max_size=12))
def test_spans_to_tags_inverts_tags_to_spans_on_valid_iob2(tags):
    repaired, _ = repair_tags(tags)
    assert spans_to_tags(len(repaired), tags_to_spans(repaired)) == repaired
