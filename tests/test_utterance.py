"""The one record type: validation on construction, repair mode, spans <-> BIO."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nlu.errors import AnnotationError, IOBError, LengthMismatchError
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
