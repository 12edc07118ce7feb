import math
import re
from pathlib import Path

import pytest

from nlu.errors import NluDataError
from nlu.metrics import (PredictionMismatchError, evaluate, seen_slot_values, semantic_errors,
                         slot_chunks, slot_type_scores)
from nlu.utterance import Utterance

FIXTURES = Path(__file__).parent / "data" / "metrics"


def utterance(text: str, tags: str, intent: str = "alarm/set_alarm", language: str = "en"):
    return Utterance(text.split(), tags.split(), intent, language)


def read_conlleval_input(path: Path) -> tuple[list[Utterance], list[Utterance]]:
    """The fixture is conlleval input: ``token gold predicted`` lines, blank between sentences."""
    gold, predicted = [], []
    for block in path.read_text(encoding="utf-8").strip().split("\n\n"):
        tokens, gold_tags, predicted_tags = zip(*(line.split(" ") for line in block.splitlines()))
        gold.append(Utterance(tokens, gold_tags, "none", "xx"))
        predicted.append(Utterance(tokens, predicted_tags, "none", "xx"))
    return gold, predicted


def read_conlleval_output(path: Path) -> tuple[dict, dict]:
    text = path.read_text(encoding="utf-8")
    head = re.search(r"with (\d+) phrases; found: (\d+) phrases; correct: (\d+)\.", text)
    overall = re.search(r"precision:\s*([\d.]+)%; recall:\s*([\d.]+)%; FB1:\s*([\d.]+)", text)
    totals = {"gold": int(head[1]), "predicted": int(head[2]), "correct": int(head[3]),
              "precision": float(overall[1]), "recall": float(overall[2]),
              "f1": float(overall[3])}
    per_type = {}
    for match in re.finditer(r"^\s*(\S+): +(\d+) +(\d+) +(\d+) precision:\s*([\d.]+)%; "
                             r"recall:\s*([\d.]+)%; FB1:\s*([\d.]+)", text, re.MULTILINE):
        per_type[match[1]] = (int(match[2]), int(match[3]), int(match[4]), float(match[7]))
    return totals, per_type


def test_slot_f1_equals_conlleval_on_shared_fixture():
    gold, predicted = read_conlleval_input(FIXTURES / "conlleval_fixture.txt")
    expected, expected_per_type = read_conlleval_output(FIXTURES / "conlleval_fixture.expected")
    report = evaluate(gold, predicted, n_bootstrap=50)
    overall = report.overall
    assert (overall.gold_slots, overall.predicted_slots, overall.correct_slots) == (
        expected["gold"], expected["predicted"], expected["correct"])
    assert round(100 * overall.slot_precision, 2) == expected["precision"]
    assert round(100 * overall.slot_recall, 2) == expected["recall"]
    assert round(100 * overall.slot_f1, 2) == expected["f1"]
    # every slot type, including types with '-' and '/' in their names
    per_type = slot_type_scores(slot_chunks([u.tags for u in gold]),
                                slot_chunks([u.tags for u in predicted]))
    assert {slot.label: (slot.correct, slot.gold, slot.predicted, round(100 * slot.f1, 2))
            for slot in per_type} == expected_per_type
    assert [slot.label for slot in report.worst_slot_types[:3]] == [
        "object_name", "movie_name", "reference"]  # F1 0, most gold chunks first


def test_slot_f1_equals_seqeval_strict_iob2():
    from seqeval.metrics import f1_score
    from seqeval.scheme import IOB2

    gold, predicted = read_conlleval_input(FIXTURES / "conlleval_fixture.txt")
    seqeval_f1 = f1_score([list(u.tags) for u in gold], [list(u.tags) for u in predicted],
                          mode="strict", scheme=IOB2)
    assert evaluate(gold, predicted, n_bootstrap=10).overall.slot_f1 == pytest.approx(seqeval_f1)


@pytest.mark.parametrize("gold_tags, predicted_tags, intent, expected", [
    # (substitutions, deletions, insertions, reference = 1 intent + gold slots)
    ("O O B-datetime I-datetime", "O O B-datetime I-datetime", "alarm/set_alarm", (0, 0, 0, 2)),
    ("O O B-datetime I-datetime", "O O B-datetime I-datetime", "alarm/cancel_alarm", (1, 0, 0, 2)),
    # right type, wrong span (wrong value): one substitution
    ("O O B-datetime I-datetime", "O O B-datetime O", "alarm/set_alarm", (1, 0, 0, 2)),
    # right span, wrong type: one substitution
    ("O O B-datetime I-datetime", "O O B-location I-location", "alarm/set_alarm", (1, 0, 0, 2)),
    # slot missed: deletion; slot invented: insertion
    ("O O B-datetime I-datetime", "O O O O", "alarm/set_alarm", (0, 1, 0, 2)),
    ("O O O O", "B-reference O O O", "alarm/set_alarm", (0, 0, 1, 1)),
    # wrong intent + one missed + one invented slot of another type elsewhere
    ("B-reference O B-datetime I-datetime", "O B-location B-datetime I-datetime",
     "alarm/show_alarms", (1, 1, 1, 3)),
])
def test_semantic_errors_hand_cases(gold_tags, predicted_tags, intent, expected):
    gold = utterance("set alarm six am", gold_tags)
    predicted = utterance("set alarm six am", predicted_tags, intent=intent)
    errors = semantic_errors(gold, predicted)
    assert (errors.substitutions, errors.deletions, errors.insertions,
            errors.reference) == expected


def test_deletion_and_insertion_when_nothing_pairs_up():
    gold = utterance("wake me at six", "O O O B-datetime")
    predicted = utterance("wake me at six", "B-reference O O O")
    errors = semantic_errors(gold, predicted)
    assert (errors.substitutions, errors.deletions, errors.insertions) == (0, 1, 1)


def test_corpus_semer_exact_match_and_intent_accuracy_by_hand():
    gold = [utterance("set alarm six am", "O O B-datetime I-datetime"),
            utterance("set alarm six am", "O O B-datetime I-datetime"),
            utterance("show my alarms", "O B-reference O", intent="alarm/show_alarms"),
            utterance("show my alarms", "O B-reference O", intent="alarm/show_alarms")]
    predicted = [utterance("set alarm six am", "O O B-datetime I-datetime"),  # all right
                 utterance("set alarm six am", "O O B-datetime O"),  # one substitution
                 utterance("show my alarms", "O B-reference O"),  # wrong intent: S
                 utterance("show my alarms", "O O O", intent="alarm/show_alarms")]  # D
    report = evaluate(gold, predicted, n_bootstrap=200)
    overall = report.overall
    # errors 0 + 1 + 1 + 1 over reference 2 + 2 + 2 + 2
    assert overall.semer == pytest.approx(3 / 8)
    assert overall.exact_match == pytest.approx(1 / 4)
    assert overall.intent_accuracy == pytest.approx(3 / 4)
    assert overall.intent_accuracy_se == pytest.approx(math.sqrt(0.75 * 0.25 / 4))
    # chunks: gold 4, predicted 3 (the 2-token datetime cut to 1 is a different chunk), correct 2
    assert (overall.gold_slots, overall.predicted_slots, overall.correct_slots) == (4, 3, 2)
    assert overall.slot_f1 == pytest.approx(2 * 2 / (4 + 3))
    assert overall.slot_f1_se > 0 and overall.semer_se > 0
    assert report.by_intent["alarm/show_alarms"].intent_accuracy == 0.5
    assert report.worst_intents[0].intent == "alarm/show_alarms"
    assert report.worst_intents[0].confused_with == [("alarm/set_alarm", 1)]


def test_groups_per_language_flat_keys_and_markdown():
    gold = [utterance("wecker stellen", "O O", language="de"),
            utterance("set alarm", "O O"),
            utterance("set alarm", "O O")]
    predicted = [utterance("wecker stellen", "O O", intent="alarm/show_alarms", language="de"),
                 utterance("set alarm", "O O"),
                 utterance("set alarm", "O O")]
    report = evaluate(gold, predicted, n_bootstrap=100, seed=3)
    assert report.by_language["de"].intent_accuracy == 0.0
    assert report.by_language["en"].intent_accuracy == 1.0
    assert report.by_language["en"].semer_se == 0.0  # every resample is error-free
    flat = report.flat("dev")
    assert flat["dev/all/intent_acc"] == pytest.approx(2 / 3)
    assert flat["dev/de/semer"] == pytest.approx(1 / 1)
    assert "dev/en/slot_f1_se" in flat and "dev/all/n" in flat
    assert "dev/intent/alarm/set_alarm/intent_acc" in report.flat("dev", per_intent=True)
    assert evaluate(gold, predicted, n_bootstrap=100, seed=3).flat("dev") == flat
    markdown = report.to_markdown()
    assert "| de | 1 |" in markdown and "alarm/show_alarms (1)" in markdown


def test_misaligned_predictions_are_a_typed_error():
    gold = [utterance("set alarm", "O O")]
    with pytest.raises(PredictionMismatchError, match="differ from gold") as caught:
        evaluate(gold, [utterance("set alarms", "O O")])
    assert isinstance(caught.value, NluDataError) and caught.value.field == "tokens"
    with pytest.raises(PredictionMismatchError, match="1 gold utterances but 0"):
        evaluate(gold, [])


def seen_unseen_case():
    """Trained on 'paris' (city) and 'six am' (time). Test, by hand:
    1. 'Paris' seen (any case), found;  2. 'oslo' unseen, missed;
    3. 'rome' unseen, found; 'six am' seen, cut to 'six' - a predicted value never seen;
    4. (de) no slot, wrong intent."""
    train = [utterance("fly to paris", "O O B-city"),
             utterance("wake me at six am", "O O O B-time I-time")]
    gold = [utterance("fly to Paris", "O O B-city"),
            utterance("fly to oslo", "O O B-city"),
            utterance("fly to rome at six am", "O O B-city O B-time I-time"),
            utterance("zeig wecker", "O O", language="de")]
    predicted = [utterance("fly to Paris", "O O B-city"),
                 utterance("fly to oslo", "O O O"),
                 utterance("fly to rome at six am", "O O B-city O B-time O"),
                 utterance("zeig wecker", "O O", intent="alarm/show_alarms", language="de")]
    return train, gold, predicted


def test_seen_slot_values_are_slot_type_and_lower_cased_tokens_of_every_span():
    train = [utterance("fly to New York", "O O B-city I-city"),
             utterance("wake me at six am", "O O O B-time I-time"),
             utterance("fly to new york", "O O B-city I-city"),
             utterance("new york time", "B-zone I-zone O")]
    assert seen_slot_values(train) == frozenset({
        ("city", ("new", "york")), ("time", ("six", "am")), ("zone", ("new", "york"))})
    assert seen_slot_values([]) == frozenset()


def test_seen_and_unseen_slot_scores_and_exact_match_by_hand():
    train, gold, predicted = seen_unseen_case()
    report = evaluate(gold, predicted, n_bootstrap=200, seen_values=seen_slot_values(train))
    scores = report.seen_unseen["all"]
    # seen: gold paris, six am; predicted paris; correct paris
    assert (scores.seen.gold, scores.seen.predicted, scores.seen.correct) == (2, 1, 1)
    assert (scores.seen.precision, scores.seen.recall) == (1.0, 0.5)
    assert scores.seen.f1 == pytest.approx(2 * 1 / (2 + 1))
    # unseen: gold oslo, rome; predicted rome, 'six'; correct rome
    assert (scores.unseen.gold, scores.unseen.predicted, scores.unseen.correct) == (2, 2, 1)
    assert (scores.unseen.precision, scores.unseen.recall, scores.unseen.f1) == (0.5, 0.5, 0.5)
    # the two classes partition the overall counts
    overall = report.overall
    assert (scores.seen.gold + scores.unseen.gold, scores.seen.predicted + scores.unseen.predicted,
            scores.seen.correct + scores.unseen.correct) == (
        overall.gold_slots, overall.predicted_slots, overall.correct_slots)
    assert scores.unseen.f1_se > 0
    # utterances 2 and 3 hold an unseen gold value (neither exact); 1 and 4 do not (1 exact)
    assert (scores.seen_utterances, scores.unseen_utterances) == (2, 2)
    assert scores.exact_match_unseen_utterances == 0.0
    assert scores.exact_match_seen_utterances == 0.5
    assert scores.exact_match_seen_utterances_se == pytest.approx(math.sqrt(0.5 * 0.5 / 2))
    assert scores.unseen_span_share == 0.5


def test_seen_unseen_flat_keys_leave_out_what_has_nothing_to_score():
    train, gold, predicted = seen_unseen_case()
    flat = evaluate(gold, predicted, n_bootstrap=50,
                    seen_values=seen_slot_values(train)).flat("test")
    assert {key for key in flat if key.startswith("test/all/") and (
        "seen" in key or "unseen" in key)} == {
        "test/all/slot_f1_seen", "test/all/slot_f1_seen_se", "test/all/slot_precision_seen",
        "test/all/slot_recall_seen", "test/all/gold_slots_seen",
        "test/all/slot_f1_unseen", "test/all/slot_f1_unseen_se",
        "test/all/slot_precision_unseen", "test/all/slot_recall_unseen",
        "test/all/gold_slots_unseen",
        "test/all/exact_match_seen_utterances", "test/all/exact_match_seen_utterances_se",
        "test/all/n_seen_utterances",
        "test/all/exact_match_unseen_utterances", "test/all/exact_match_unseen_utterances_se",
        "test/all/n_unseen_utterances", "test/all/unseen_span_share"}
    assert flat["test/all/slot_f1_unseen"] == 0.5 and flat["test/all/unseen_span_share"] == 0.5
    assert flat["test/en/slot_f1_seen"] == pytest.approx(2 / 3)
    assert flat["test/en/exact_match_seen_utterances"] == 1.0  # 'Paris' alone, in English
    # the German utterance has no slot and no unseen value: no slot F1, no unseen exact match
    german = {key for key in flat if key.startswith("test/de/")}
    assert "test/de/exact_match_seen_utterances" in german
    assert not {"test/de/slot_f1_seen", "test/de/slot_f1_unseen", "test/de/unseen_span_share",
                "test/de/exact_match_unseen_utterances"} & german
    assert flat["test/de/n_unseen_utterances"] == 0.0
    # without the training values the report is as before
    plain = evaluate(gold, predicted, n_bootstrap=50)
    assert not plain.seen_unseen and not any("seen" in key for key in plain.flat("test"))
    assert "Seen vs unseen" not in plain.to_markdown()


def test_seen_unseen_table_in_markdown():
    train, gold, predicted = seen_unseen_case()
    markdown = evaluate(gold, predicted, n_bootstrap=50,
                        seen_values=seen_slot_values(train)).to_markdown()
    assert "Seen vs unseen slot values" in markdown
    rows = [line for line in markdown.splitlines() if line.startswith("| all | 2 / 2 |")]
    assert len(rows) == 1 and "| 2 / 2 | 50.00 ± 35.36 | 0.00 ± 0.00 |" in rows[0]
    assert "| de | 0 / 0 | – | – | 1 / 0 | 0.00 ± 0.00 | – |" in markdown


def test_when_every_value_was_seen_the_seen_scores_are_the_overall_ones_with_the_same_error():
    gold, predicted = read_conlleval_input(FIXTURES / "conlleval_fixture.txt")
    everything = seen_slot_values(gold + predicted)
    report = evaluate(gold, predicted, n_bootstrap=100, seed=5, seen_values=everything)
    seen, overall = report.seen_unseen["all"], report.overall
    assert seen.seen.f1 == overall.slot_f1 and seen.seen.f1_se == overall.slot_f1_se
    assert seen.unseen.gold == seen.unseen.predicted == 0 and seen.unseen_utterances == 0
    assert seen.exact_match_seen_utterances == overall.exact_match
    nothing = evaluate(gold, predicted, n_bootstrap=100, seed=5, seen_values=frozenset())
    assert nothing.seen_unseen["all"].unseen.f1 == overall.slot_f1
    assert nothing.seen_unseen["all"].unseen_span_share == 1.0
