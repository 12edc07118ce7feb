import math
import re
from pathlib import Path

import pytest

from nlu.errors import NluDataError
from nlu.metrics import (PredictionMismatchError, evaluate, semantic_errors, slot_chunks,
                         slot_type_scores)
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
