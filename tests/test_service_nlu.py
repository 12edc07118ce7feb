"""NluService end to end: a tiny REAL NLU model (trained here in seconds on 50 xSID German
utterances, registered in MLflow as two versions of one name) served by the real server on a
loopback port and driven through ``service.client``."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from nlu.formats import read_utterances
from service import client
from service.augmentation import GeneratorStore
from service.generated.nlu_bootstrap.v1 import nlu_pb2_grpc
from service.server import ServerConfig, start_server
from shared_data import SHARED_DATA

XSID_DE_VALID = SHARED_DATA / "xsid/xSID-0.7/de.valid.conll"
MODEL = "svc-parse@production"
CANDIDATE = "svc-parse@candidate"
GENERATOR = "svc-gen@prod"
MAX_INPUTS = 20
INVALID = grpc.StatusCode.INVALID_ARGUMENT
REPOSITORY = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def utterances():
    return read_utterances(XSID_DE_VALID, "conll")[:50]


@pytest.fixture(scope="module")
def store(utterances, tmp_path_factory):
    """An MLflow store with one tiny NLU model logged by two runs, registered as versions 1
    (``production``) and 2 (``candidate``) of ``svc-parse``, and a run tagged as a GAN
    generator registered as ``svc-gen@prod``. Returns (tracking URI, model, run ids by alias)."""
    import mlflow
    import torch

    from nlu.model import JointModelConfig
    from nlu.pyfunc import log_nlu_model
    from nlu.tracking import log_model_dir, model_run_id, start_run
    from nlu.training import dev_metrics, fit
    from nlu.tracking import GENERATOR_RUN_TAG

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("store")
    tracking_uri = f"sqlite:///{root}/mlflow.db"
    model = fit(utterances, None,
                JointModelConfig(embedding_dim=16, hidden_dim=32, num_layers=1, batch_size=8,
                                 max_epochs=10, lr=1e-2, enable_progress_bar=False,
                                 num_threads=1),
                run_dir=root / "nlu")
    model.save(root / "nlu-model")
    metrics = {name.replace("dev_", "test_"): value for name, value in
               dev_metrics(utterances, model.predict(utterances)).items()}
    for alias in ("production", "candidate"):
        with start_run("svc-parse", tracking_uri):
            mlflow.log_metrics(metrics)
            log_nlu_model(root / "nlu-model", registered_name="svc-parse", alias=alias,
                          language="de")
    (root / "not-a-model").mkdir()
    (root / "not-a-model" / "README").write_text("stands in for a generator's files\n")
    with start_run("svc-gen", tracking_uri, tags=dict([GENERATOR_RUN_TAG])):
        log_model_dir(root / "not-a-model", registered_name="svc-gen", alias="prod")
    mlflow.end_run()
    runs = {alias: model_run_id(f"svc-parse@{alias}", tracking_uri)
            for alias in ("production", "candidate")}
    return tracking_uri, model, runs, metrics


def serve(store, state_dir: Path, **overrides):
    config = ServerConfig(tracking_uri=store[0], state_dir=state_dir, address="127.0.0.1:0",
                          max_parse_inputs=MAX_INPUTS, **overrides)
    running = start_server(config, load_in_background=False)
    running.load_generators()
    return running


@pytest.fixture(scope="module")
def server(store, tmp_path_factory):
    running = serve(store, tmp_path_factory.mktemp("state"))
    yield running
    running.stop(grace=0)


@pytest.fixture
def channel(server):
    with client.connect(f"127.0.0.1:{server.port}") as channel:
        yield channel


def rpc_error(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        result = call()
        if hasattr(result, "__next__"):
            list(result)
    return raised.value


def test_parse_over_grpc_gives_what_the_library_gives_for_texts_and_tokens(channel, store,
                                                                            utterances):
    _, model, runs, _ = store
    texts = [utterance.text for utterance in utterances[:8]]
    words = [list(utterance.tokens) for utterance in utterances[8:12]]
    remote = client.parse(channel, MODEL, texts + words, language="de", top_k=2)
    assert remote == model.parse(texts + words, language="de", top_k=2)
    assert all(len(parse.ranking) == 2 and parse.ranking[0].intent == parse.intent
               for parse in remote)
    assert [parse.text for parse in remote] == texts + [None] * len(words)
    # no language: the model's only one
    assert client.parse(channel, MODEL, texts, language="", top_k=2) == \
        model.parse(texts, language="de", top_k=2)
    spans = [(parse.text, slot) for parse in remote[:8] for slot in parse.slots]
    assert spans and all(text[slot.start_char:slot.end_char] == slot.value
                         for text, slot in spans)
    response = nlu_pb2_grpc.NluServiceStub(channel).Parse(
        client.parse_request(MODEL, texts[:1], language="de"), timeout=30)
    assert response.run_id == runs["production"]


def test_parse_stream_parses_more_than_one_call_takes_in_order_and_counts_inputs_from_its_first(
        channel, store, utterances):
    _, model, _, _ = store
    texts = [utterance.text for utterance in utterances] * 2  # 100 inputs: 5 x MAX_INPUTS
    remote = list(client.parse_stream(channel, MODEL, iter(texts), language="de",
                                      chunk=MAX_INPUTS, timeout=60))
    # the server parses each message as one batch (padding can move the last bits)
    assert remote == [parse for start in range(0, len(texts), MAX_INPUTS)
                      for parse in model.parse(texts[start:start + MAX_INPUTS], language="de")]
    texts[45] = " "
    error = rpc_error(lambda: client.parse_stream(channel, MODEL, texts, language="de",
                                                  chunk=MAX_INPUTS))
    assert error.code() == INVALID and error.details() == "inputs[45]: empty text"
    error = rpc_error(lambda: client.parse(channel, MODEL, texts, language="de"))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error.details().startswith(f"inputs: 100 is over this server's limit of {MAX_INPUTS}")


@pytest.mark.parametrize("model, inputs, options, code, message", [
    (GENERATOR, ["hallo"], {}, INVALID, "model: 'svc-gen@prod' is a model but not an NLU model"),
    ("no-such@model", ["hallo"], {}, grpc.StatusCode.NOT_FOUND, "model: no model 'no-such@model'"),
    ("../models", ["hallo"], {}, INVALID, "model: '../models' is neither"),
    (MODEL, ["hallo", ""], {}, INVALID, "inputs[1]: empty text"),
    (MODEL, [" ".join(["wort"] * 10_000)], {}, INVALID, "inputs[0]: 10000 tokens"),
    (MODEL, ["wecke\x07 mich"], {}, INVALID, "inputs[0]: holds control character U+0007"),
    (MODEL, [["wecke", "mich\x00"]], {}, INVALID, "inputs[0]: holds control character U+0000"),
    (MODEL, ["hallo"], {"language": "xx"}, INVALID, "language: the model does not know"),
    (MODEL, [], {}, INVALID, "inputs: empty"),
    (MODEL, ["hallo"], {"top_k": 0}, INVALID, "top_k: must be >= 1"),
])
def test_each_bad_request_gets_its_status_and_a_message_and_the_server_keeps_serving(
        channel, model, inputs, options, code, message):
    options = {"language": "de", **options}
    error = rpc_error(lambda: client.parse(channel, model, inputs, **options))
    assert error.code() == code and error.details().startswith(message), error.details()
    if inputs:  # a stream of no inputs sends no message, and gets no parse back
        streamed = rpc_error(lambda: client.parse_stream(channel, model, ["hallo", *inputs],
                                                         **options))
        assert streamed.code() == code
    assert [parse.intent for parse in client.parse(channel, MODEL, ["hallo"], language="de")]


def test_the_call_budget_ends_a_stream_after_what_was_parsed_in_time(store, tmp_path):
    running = serve(store, tmp_path / "state", call_budget_seconds=0.5)

    def requests():
        yield client.parse_request(MODEL, ["hallo"], language="de")
        time.sleep(1.0)  # the client is slow; the budget runs on
        yield client.parse_request(MODEL, ["hallo"], language="de")

    received = []
    try:
        with client.connect(f"127.0.0.1:{running.port}") as channel:
            stub = nlu_pb2_grpc.NluServiceStub(channel)
            error = rpc_error(lambda: received.extend(stub.ParseStream(requests(), timeout=30)))
    finally:
        running.stop(grace=0)
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "budget of 0.5 s per call ran out" in error.details()
    assert len(received) == 1 and received[0].parses[0].text == "hallo"


def test_a_stream_may_not_switch_model_midway(channel):
    requests = [client.parse_request(MODEL, ["hallo"], language="de"),
                client.parse_request(CANDIDATE, ["hallo"], language="de")]
    stub = nlu_pb2_grpc.NluServiceStub(channel)
    error = rpc_error(lambda: stub.ParseStream(iter(requests), timeout=30))
    assert error.code() == INVALID and error.details().startswith("model and language:")


def test_list_models_names_the_nlu_models_and_describe_gives_labels_and_metrics(channel, store):
    _, model, runs, metrics = store
    (listed,) = client.list_models(channel)  # the generator is not an NLU model
    assert listed.name == "svc-parse" and dict(listed.alias_versions) == {
        "production": "1", "candidate": "2"}
    assert listed.latest_version == "2" and listed.latest_run_id == runs["candidate"]
    description = client.describe_model(channel, MODEL)
    assert description.run_id == runs["production"]
    assert list(description.languages) == ["de"] == list(model.languages)
    assert list(description.intents) == sorted(model.intents)
    assert list(description.slot_types) == list(model.slot_types) and model.slot_types
    assert dict(description.metrics) == pytest.approx(metrics)
    error = rpc_error(lambda: client.describe_model(channel, GENERATOR))
    assert error.code() == INVALID


def test_a_moved_alias_is_served_within_the_refresh_bound_without_a_restart(
        store, tmp_path, monkeypatch):
    from nlu.tracking import client as mlflow_client

    tracking_uri, _, runs, _ = store
    monkeypatch.setattr(GeneratorStore, "REFERENCE_TTL_SECONDS", 0.5)
    running = serve(store, tmp_path / "state")
    registry = mlflow_client(tracking_uri)
    request = client.parse_request("svc-parse@moving", ["hallo"], language="de")
    try:
        registry.set_registered_model_alias("svc-parse", "moving", "1")
        with client.connect(f"127.0.0.1:{running.port}") as channel:
            stub = nlu_pb2_grpc.NluServiceStub(channel)
            assert stub.Parse(request, timeout=30).run_id == runs["production"]
            registry.set_registered_model_alias("svc-parse", "moving", "2")  # promoted
            time.sleep(0.6)
            assert stub.Parse(request, timeout=30).run_id == runs["candidate"]
    finally:
        registry.delete_registered_model_alias("svc-parse", "moving")
        running.stop(grace=0)


def test_nlu_service_needs_the_token_and_reports_health_and_reflection(store, tmp_path,
                                                                        capsys, monkeypatch):
    from service.cli import main

    monkeypatch.delenv("NLU_BOOTSTRAP_TOKEN", raising=False)
    running = serve(store, tmp_path / "state", token="s3cret")
    target = f"127.0.0.1:{running.port}"
    try:
        with client.connect(target) as channel:
            health = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="nlu_bootstrap.v1.NluService"), timeout=5)
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            error = rpc_error(lambda: client.parse(channel, MODEL, ["hallo"], language="de"))
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED
            assert rpc_error(lambda: client.list_models(channel)).code() == \
                grpc.StatusCode.UNAUTHENTICATED
        (tmp_path / "texts.txt").write_text("hallo\n", encoding="utf-8")
        predict = ["predict", str(tmp_path / "texts.txt"), "--model", MODEL, "--server", target]
        assert main(predict) == 2
        assert "UNAUTHENTICATED" in capsys.readouterr().err
        assert main([*predict, "--token", "s3cret"]) == 0
        assert json.loads(capsys.readouterr().out)["text"] == "hallo"
        with client.connect(target, token="s3cret") as channel:
            assert len(client.parse(channel, MODEL, ["hallo"], language="de")) == 1
            reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
            (response,) = reflection.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
            assert "nlu_bootstrap.v1.NluService" in {
                service.name for service in response.list_services_response.service}
    finally:
        running.stop(grace=0)


def test_predict_with_server_writes_what_the_model_parses(server, store, tmp_path, capsys):
    from service.cli import main

    _, model, _, _ = store
    lines = ["Wecke mich morgen um sieben!", "Zeige alle Erinnerungen"]
    (tmp_path / "texts.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "parses.jsonl"
    assert main(["predict", str(tmp_path / "texts.txt"), "--model", MODEL, "--out", str(out),
                 "--server", f"127.0.0.1:{server.port}"]) == 0  # language: the model's only one
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert records == [parse.to_dict() for parse in model.parse(lines, language="de")]


def test_predict_with_server_evaluates_an_annotated_file_as_locally(server, store, utterances,
                                                                     tmp_path, capsys):
    from nlu.formats import write_utterances
    from nlu.metrics import evaluate
    from service.cli import main

    _, model, _, _ = store
    write_utterances(utterances[:12], tmp_path / "gold.conll", "conll")
    assert main(["predict", str(tmp_path / "gold.conll"), "--model", MODEL, "--evaluate",
                 "--server", f"127.0.0.1:{server.port}"]) == 0
    gold = read_utterances(tmp_path / "gold.conll")
    assert capsys.readouterr().out == evaluate(gold, model.predict(gold)).to_markdown()


def test_predict_with_server_names_the_bad_line_or_the_servers_refusal(server, tmp_path, capsys):
    from service.cli import main

    texts = tmp_path / "texts.txt"
    texts.write_text("Wecke mich\nStopp\x07 bitte\n", encoding="utf-8")
    target = f"127.0.0.1:{server.port}"
    assert main(["predict", str(texts), "--model", MODEL, "--server", target]) == 2
    assert f"{texts}:2: holds control character U+0007" in capsys.readouterr().err
    texts.write_text("Wecke mich\n", encoding="utf-8")
    assert main(["predict", str(texts), "--model", GENERATOR, "--server", target]) == 2
    assert f"error: {target}: INVALID_ARGUMENT: model: 'svc-gen@prod'" in capsys.readouterr().err
    assert main(["predict", str(texts), "--model", MODEL, "--language", "xx",
                 "--server", target]) == 2
    assert "INVALID_ARGUMENT: language: the model does not know language 'xx'" in \
        capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "nan"])
def test_serve_refuses_a_bad_max_parse_inputs_naming_the_flag(value, capsys, tmp_path):
    from service.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["serve", "--max-parse-inputs", value, "--state-dir", str(tmp_path / "state")])
    assert exited.value.code == 2
    assert "argument --max-parse-inputs: " in capsys.readouterr().err
    with pytest.raises(ValueError, match="^max_parse_inputs: must be"):
        ServerConfig(tracking_uri="sqlite:///x.db", state_dir=tmp_path, max_parse_inputs=0)


def test_the_parse_benchmark_runs_in_its_tiny_mode(tmp_path):
    figures = tmp_path / "parse.json"
    finished = subprocess.run(
        [sys.executable, "benchmarks/parse_latency.py", "--tiny", "--json", str(figures)],
        cwd=REPOSITORY, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]
    (tiny,) = json.loads(figures.read_text())
    assert tiny["in_process"]["p50_ms"] > 0
    assert set(tiny["in_process"]["utterances_per_s"]) == {"1", "32", "256"}
    assert all(rate > 0 for rate in tiny["in_process"]["utterances_per_s"].values())
    all_cores = tiny["in_process"]["all_cores"]
    assert all_cores["batch"] == 256 and all_cores["threads"] >= 1
    assert all_cores["utterances_per_s"] > 0
    assert "torch threads (as `predict` runs)" in finished.stdout
    for row in [*tiny["grpc"], tiny["load"]]:
        assert row["calls"] > 0 and row["p50_ms"] > 0 and row["unexpected_errors"] == 0, row
    assert "HTTP (mlflow models serve): not run" in finished.stdout
