"""Dataset utilities: statistics, stratified sampling, upsampling, de-duplication, splits."""

from __future__ import annotations

import re
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nlu import dataset
from nlu.utterance import Utterance


def make_set(counts: dict[str, int], language: str = "en") -> list[Utterance]:
    """``counts[intent]`` distinct utterances per intent, each with one slot."""
    return [Utterance(("word", f"{intent}{index}"), ("O", "B-thing"), intent, language,
                      source=f"f.conll:{intent}{index}")
            for intent, count in counts.items() for index in range(count)]


COUNTS = {"a": 60, "b": 30, "c": 9, "d": 1}


def test_stats_counts_and_renders_a_table():
    utterances = make_set({"a": 2, "b": 1}) + make_set({"a": 1}, language="de")
    stats = dataset.stats(utterances)
    assert (stats.utterances, stats.tokens) == (4, 8)
    assert stats.languages == Counter({"en": 3, "de": 1})
    assert stats.intents == Counter({"a": 3, "b": 1})
    assert stats.slots == Counter({"thing": 4})
    rendered = stats.render()
    assert "utterances  4" in rendered
    assert re.search(r"^a +3 +75\.0%$", rendered, re.MULTILINE)
    assert "... 1 more" in stats.render(top=1)


def test_sample_per_intent_takes_k_of_each_and_all_of_small_intents():
    sample = dataset.sample(make_set(COUNTS), per_intent=5, seed=0)
    assert Counter(u.intent for u in sample) == {"a": 5, "b": 5, "c": 5, "d": 1}


def test_sample_fraction_keeps_proportions_with_at_least_one_per_intent():
    sample = dataset.sample(make_set(COUNTS), fraction=0.1, seed=0)
    assert Counter(u.intent for u in sample) == {"a": 6, "b": 3, "c": 1, "d": 1}


def test_sample_is_seeded_and_keeps_input_order():
    utterances = make_set(COUNTS)
    first = dataset.sample(utterances, per_intent=3, seed=1)
    assert first == dataset.sample(utterances, per_intent=3, seed=1)
    assert first != dataset.sample(utterances, per_intent=3, seed=2)
    positions = [utterances.index(u) for u in first]
    assert positions == sorted(positions)


@pytest.mark.parametrize("kwargs", [{}, {"per_intent": 1, "fraction": 0.5}, {"per_intent": 0},
                                    {"fraction": 1.5}])
def test_sample_rejects_bad_sizes(kwargs):
    with pytest.raises(ValueError):
        dataset.sample(make_set(COUNTS), seed=0, **kwargs)


def test_upsample_reaches_the_exact_target_stratified_and_marks_copies():
    utterances = make_set({"a": 4, "b": 2})
    upsampled = dataset.upsample(utterances, 15, seed=0)
    assert len(upsampled) == 15
    assert upsampled[:6] == utterances
    copies = upsampled[6:]
    assert Counter(u.intent for u in copies) == {"a": 6, "b": 3}  # 9 extra, shared 2:1
    assert all(u.source.startswith("upsample:f.conll:") for u in copies)
    # Within an intent, nobody is repeated twice before everyone is repeated once.
    repeats = Counter(u.tokens for u in copies if u.intent == "a")
    assert sorted(repeats.values()) == [1, 1, 2, 2]
    assert dataset.upsample(utterances, 15, seed=0) == upsampled
    with pytest.raises(ValueError):
        dataset.upsample(utterances, 5, seed=0)


def test_deduplicate_keeps_the_first_of_equal_annotations():
    first, second = make_set({"a": 2})
    copy = first.replace(source="elsewhere:9")
    assert dataset.deduplicate([first, second, copy]) == [first, second]


def test_split_is_a_stratified_partition():
    utterances = make_set(COUNTS)
    train, dev, test = dataset.split(utterances, (0.8, 0.1, 0.1), seed=0)
    assert sorted(train + dev + test, key=utterances.index) == utterances
    assert Counter(u.intent for u in dev) == {"a": 6, "b": 3, "c": 1}
    assert Counter(u.intent for u in train)["a"] == 48
    with pytest.raises(ValueError):
        dataset.split(utterances, (0.5, 0.2), seed=0)


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.sampled_from("abcdef"), st.integers(1, 30), min_size=1),
       st.lists(st.integers(1, 10), min_size=1, max_size=4), st.integers(0, 10**6),
       st.booleans())
def test_split_always_partitions_every_utterance_exactly_once(counts, weights, seed, stratify):
    utterances = make_set(counts)
    fractions = [weight / sum(weights) for weight in weights]
    parts = dataset.split(utterances, fractions, seed=seed, stratify=stratify)
    assert len(parts) == len(fractions)
    assert Counter(u for part in parts for u in part) == Counter(utterances)


@given(st.integers(0, 1000), st.lists(st.floats(0.01, 100), min_size=1, max_size=8))
def test_apportion_is_exact(total, weights):
    counts = dataset.apportion(total, weights)
    assert sum(counts) == total and all(count >= 0 for count in counts)


def test_merge_concatenates_languages_in_order():
    english, german = make_set({"a": 2}), make_set({"a": 1}, language="de")
    assert dataset.merge(english, german) == english + german
