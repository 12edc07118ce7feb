"""Every trained NLU model is also an MLflow pyfunc model: a tiny model (English training data,
German declared as its target, as a zero-shot job would) is logged and registered in a sqlite
store, then read back by ``mlflow.pyfunc.load_model("models:/name@alias")``, by
``TrainedNlu.from_store("name@alias")``, and over HTTP from a real ``mlflow models serve``."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from nlu.formats import read_utterances
from nlu.model import JointModelConfig
from nlu.training import TrainedNlu, fit
from shared_data import SHARED_DATA

XSID = SHARED_DATA / "xsid" / "xSID-0.7"
MLFLOW = Path(sys.executable).with_name("mlflow")
TINY = JointModelConfig(embedding_dim=16, hidden_dim=16, num_layers=1, vocab_size=300,
                        batch_size=8, max_epochs=2, enable_progress_bar=False, num_threads=1)
REFERENCE = "nlu-pyfunc@candidate"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A sqlite store holding the registered model; yields (tracking URI, the model)."""
    import mlflow

    from nlu.pyfunc import log_nlu_model
    from nlu.tracking import start_run

    root = tmp_path_factory.mktemp("pyfunc")
    uri = f"sqlite:///{root}/mlflow.db"
    model = fit(read_utterances(XSID / "en.valid.conll")[:40], None, TINY,
                run_dir=root / "run")
    model_dir = model.save(root / "model")
    with start_run("pyfunc", uri):
        reference = log_nlu_model(model_dir, registered_name="nlu-pyfunc", alias="candidate",
                                  language="de")
    assert reference == REFERENCE
    yield uri, TrainedNlu.load(model_dir)
    mlflow.set_tracking_uri(None)


@pytest.fixture(scope="module")
def pyfunc_model(store):
    import mlflow

    mlflow.set_tracking_uri(store[0])
    return mlflow.pyfunc.load_model(f"models:/{REFERENCE}")


def test_the_registered_model_loads_as_a_pyfunc_and_parses_text(store, pyfunc_model):
    _, model = store
    texts = ["Wecke mich morgen um sieben", "set an alarm for 7 am"]
    predictions = pyfunc_model.predict(pd.DataFrame({"text": texts, "language": ["de", "en"]}))
    assert [record["text"] for record in predictions] == texts
    expected = model.parse(texts[:1], language="de") + model.parse(texts[1:], language="en")
    assert predictions == [parse.to_dict() for parse in expected]
    for record in predictions:
        assert record["intent"] in model.intents and 0 < record["probability"] <= 1
        assert isinstance(record["slots"], list) and len(record["ranking"]) == 3


def test_the_language_column_defaults_to_the_language_the_model_was_logged_for(pyfunc_model):
    [record] = pyfunc_model.predict(pd.DataFrame({"text": ["Zeige alle Erinnerungen"]}),
                                    params={"top_k": 1})
    assert record["language"] == "de" and len(record["ranking"]) == 1


def test_pre_tokenised_rows_are_parsed_from_a_tokens_column(pyfunc_model):
    [record] = pyfunc_model.predict(pd.DataFrame({"tokens": [["stop", "alarm"]],
                                                  "language": ["en"]}))
    assert record["tokens"] == ["stop", "alarm"] and "text" not in record


def test_a_bad_row_is_an_invalid_parameter_error_naming_it(pyfunc_model):
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException, match="row 1: empty text") as refused:
        pyfunc_model.predict(pd.DataFrame({"text": ["stop alarm", " "]}))
    assert refused.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException, match="does not know language 'fr'"):
        pyfunc_model.predict(pd.DataFrame({"text": ["arrête"], "language": ["fr"]}))


def test_the_logged_model_has_a_signature_and_an_input_example(store):
    import mlflow

    mlflow.set_tracking_uri(store[0])
    info = mlflow.models.get_model_info(f"models:/{REFERENCE}")
    assert [column.name for column in info.signature.inputs.inputs] == [
        "text", "tokens", "language"]
    assert {"intent", "probability", "slots"} <= set(info.signature.outputs.input_names())
    assert info.saved_input_example_info is not None


def test_the_same_registered_model_still_loads_as_a_trained_nlu(store):
    uri, model = store
    loaded = TrainedNlu.from_store(REFERENCE, uri)
    assert loaded.languages == ("de", "en")  # German declared when it was logged
    gold = read_utterances(XSID / "de.test.conll")[:10]
    assert loaded.predict(gold) == model.predict(gold)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _post(url: str, payload: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_mlflow_models_serve_parses_over_http(store, tmp_path):
    uri, model = store
    port = _free_port()
    with open(tmp_path / "serve.log", "w") as log:
        process = subprocess.Popen(
            [str(MLFLOW), "models", "serve", "-m", f"models:/{REFERENCE}", "--env-manager",
             "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
            # the environment's bin on PATH, as an activated one has it (MLflow runs uvicorn)
            env={**os.environ, "MLFLOW_TRACKING_URI": uri,
                 "PATH": f"{MLFLOW.parent}{os.pathsep}{os.environ.get('PATH', '')}"},
            cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log_tail = (tmp_path / "serve.log").read_text()[-2000:]
                    raise RuntimeError(f"mlflow models serve did not start:\n{log_tail}"
                                       ) from None
                time.sleep(0.5)
        status, answer = _post(f"{base}/invocations", {"dataframe_split": {
            "columns": ["text", "language"], "data": [["Wecke mich um sieben", "de"]]}})
        assert status == 200
        [record] = answer["predictions"]
        [expected] = model.parse(["Wecke mich um sieben"], language="de")
        assert record["intent"] == expected.intent and record["tags"] == list(expected.tags)
        assert record["probability"] == pytest.approx(expected.probability, abs=1e-6)
        status, answer = _post(f"{base}/invocations",
                               {"dataframe_records": [{"text": "stop\u0000 alarm"}]})
        assert status == 400 and "control character" in answer["message"]
    finally:
        if process.poll() is None:  # the server and the worker it started, by their group
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
