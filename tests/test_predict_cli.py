"""``nlu-bootstrap predict`` on a tiny model (trained in seconds on English and German xSID
utterances): text lines and annotated files in, parses or annotated files out, the training
metrics with ``--evaluate``, and a one-line error with exit code 2 for bad input."""

import io
import json

import pytest

from nlu.formats import read_utterances
from nlu.metrics import evaluate
from nlu.model import JointModelConfig
from nlu.training import TrainedNlu, fit
from service.cli import main
from shared_data import SHARED_DATA

XSID = SHARED_DATA / "xsid" / "xSID-0.7"
TINY = JointModelConfig(embedding_dim=16, hidden_dim=16, num_layers=1, vocab_size=300,
                        batch_size=8, max_epochs=2, enable_progress_bar=False, num_threads=1)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("predict")
    train = read_utterances(XSID / "en.valid.conll")[:32] + read_utterances(XSID / "de.valid.conll")[:32]
    return fit(train, None, TINY, run_dir=root / "run").save(root / "model")


@pytest.fixture(scope="module")
def model(model_dir) -> TrainedNlu:
    return TrainedNlu.load(model_dir)


@pytest.fixture
def conll_file(tmp_path):
    """Twelve German test utterances as a CoNLL file."""
    from nlu.formats import write_utterances

    path = tmp_path / "de.sample.conll"
    write_utterances(read_utterances(XSID / "de.test.conll")[:12], path, "conll")
    return path


def _jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def test_text_lines_from_a_file_become_one_parse_each(model_dir, model, tmp_path, capsys):
    lines = ["Wecke mich morgen um sieben!", "", "Zeige alle Erinnerungen"]
    (tmp_path / "texts.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["predict", str(tmp_path / "texts.txt"), "--model", str(model_dir),
                 "--language", "de"]) == 0
    records = _jsonl(capsys.readouterr().out)
    assert [record["text"] for record in records] == [lines[0], lines[2]]  # blank line skipped
    expected = model.parse([lines[0], lines[2]], language="de")
    assert records == [parse.to_dict() for parse in expected]
    assert records[0]["tokens"][-1] == "!"


def test_text_from_stdin_with_words_given(model_dir, model, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("stop alarm\r\nset an alarm\n"))
    assert main(["predict", "--model", str(model_dir), "--language", "en", "--pretokenized",
                 "--top-k", "2"]) == 0
    records = _jsonl(capsys.readouterr().out)
    assert [record["tokens"] for record in records] == [["stop", "alarm"],
                                                        ["set", "an", "alarm"]]
    assert all("text" not in record and len(record["ranking"]) == 2 for record in records)


def test_a_conll_file_is_evaluated_with_the_training_metrics(model_dir, model, conll_file,
                                                             capsys):
    assert main(["predict", str(conll_file), "--model", str(model_dir), "--evaluate"]) == 0
    gold = read_utterances(conll_file)
    assert capsys.readouterr().out == evaluate(gold, model.predict(gold)).to_markdown()


def test_the_evaluation_is_logged_to_an_mlflow_experiment(model_dir, model, conll_file,
                                                         tmp_path, capsys):
    from nlu.tracking import client

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert main(["predict", str(conll_file), "--model", str(model_dir), "--evaluate",
                 "--log-to-experiment", "scoring", "--tracking-uri", uri]) == 0
    assert "logged to MLflow run" in capsys.readouterr().out
    mlflow_client = client(uri)
    [run] = mlflow_client.search_runs(
        [mlflow_client.get_experiment_by_name("scoring").experiment_id])
    gold = read_utterances(conll_file)
    expected = evaluate(gold, model.predict(gold)).flat("test")
    assert run.data.metrics["test/de/slot_f1"] == pytest.approx(expected["test/de/slot_f1"])
    assert run.data.metrics["test/all/intent_acc_se"] == pytest.approx(
        expected["test/all/intent_acc_se"])


def test_predictions_are_written_atomically_in_an_annotated_format(model_dir, model,
                                                                   conll_file, tmp_path,
                                                                   capsys):
    out = tmp_path / "out" / "predicted.conll"
    assert main(["predict", str(conll_file), "--model", str(model_dir), "--to", "conll",
                 "--out", str(out)]) == 0
    assert capsys.readouterr().out == ""
    gold = read_utterances(conll_file)
    written = read_utterances(out)
    assert [(u.tokens, u.intent, u.tags) for u in written] == [
        (u.tokens, u.intent, u.tags) for u in model.predict(gold)]
    assert [path.name for path in out.parent.iterdir()] == ["predicted.conll"]


def test_parses_of_an_annotated_file_carry_its_ids(model_dir, conll_file, tmp_path):
    out = tmp_path / "parses.jsonl"
    assert main(["predict", str(conll_file), "--model", str(model_dir), "--out",
                 str(out)]) == 0
    records = _jsonl(out.read_text(encoding="utf-8"))
    assert [record["id"] for record in records] == [u.id for u in read_utterances(conll_file)]


def test_a_registered_model_is_named_by_name_and_alias(model_dir, model, tmp_path,
                                                       monkeypatch, capsys):
    from nlu.pyfunc import log_nlu_model
    from nlu.tracking import start_run

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with start_run("predict-cli", uri):
        log_nlu_model(model_dir, registered_name="nlu-cli", alias="production")
    monkeypatch.setattr("sys.stdin", io.StringIO("stop alarm\n"))
    assert main(["predict", "--model", "nlu-cli@production", "--tracking-uri", uri,
                 "--language", "en"]) == 0
    [record] = _jsonl(capsys.readouterr().out)
    assert record == model.parse(["stop alarm"], language="en")[0].to_dict()


@pytest.mark.parametrize("stdin, arguments, message", [
    ("fine\nwake me\x01 up\n", ["--language", "en"], "<stdin>:2: holds control character"),
    ("guten tag\n", ["--language", "fr"], "does not know language 'fr'"),
    ("guten tag\n", [], "--language: give the text's language (the model knows de, en)"),
    ("no " * 201 + "\n", ["--language", "en"], "<stdin>:1: 201 tokens, more than the 200"),
    ("\n\n", ["--language", "en"], "<stdin>: no utterances to parse"),
    ("stop\n", ["--language", "en", "--evaluate"], "--evaluate needs gold labels"),
    ("stop\n", ["--language", "en", "--log-to-experiment", "x"], "needs --evaluate"),
    ("stop\n", ["--language", "en", "--to", "jointbert"], "jointbert writes a folder"),
])
def test_bad_input_exits_2_with_a_one_line_message(model_dir, monkeypatch, capsys, stdin,
                                                   arguments, message):
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    assert main(["predict", "--model", str(model_dir), *arguments]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and len(captured.err.strip().splitlines()) == 1
    assert captured.out == ""


def test_japanese_raw_text_is_refused_and_its_words_are_accepted(tmp_path, capsys):
    japanese = read_utterances(XSID / "ja.valid.conll")[:24]
    model_dir = fit(japanese, None, TINY, run_dir=tmp_path / "run").save(tmp_path / "model")
    (tmp_path / "ja.txt").write_text("すべてのリマインダーを表示\n", encoding="utf-8")
    assert main(["predict", str(tmp_path / "ja.txt"), "--model", str(model_dir)]) == 2
    assert "pass the utterance as a list of words" in capsys.readouterr().err
    (tmp_path / "ja.txt").write_text("すべて の リマインダー を 表示\n", encoding="utf-8")
    assert main(["predict", str(tmp_path / "ja.txt"), "--model", str(model_dir),
                 "--pretokenized"]) == 0
    [record] = _jsonl(capsys.readouterr().out)
    assert record["language"] == "ja" and len(record["tags"]) == 5


@pytest.mark.parametrize("arguments, message", [
    (["--model", "no-such-model@production"], "--model: no model 'no-such-model@production'"),
    (["missing.conll", "--model", "MODEL"], "missing.conll: no such file or folder"),
    (["--model", "MODEL", "--format", "conll"], "conll input is read from a file"),
])
def test_an_unknown_model_or_input_exits_2(model_dir, tmp_path, monkeypatch, capsys,
                                           arguments, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO("stop\n"))
    arguments = [str(model_dir) if value == "MODEL" else value for value in arguments]
    assert main(["predict", *arguments, "--tracking-uri",
                 f"sqlite:///{tmp_path}/mlflow.db"]) == 2
    assert message in capsys.readouterr().err
