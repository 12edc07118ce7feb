"""Against a real ``mlflow server`` (sqlite store and artifacts in tmp, 127.0.0.1, one worker):
a tiny ``train`` job logs and registers its model, which is read back as ``name@alias``; a
micro study runs and its comparison report is built from, and logged to, the server; a gRPC
training job tracks and registers through it; and a server that is down fails the CLI fast,
with exit code 2, naming the URI without its password, before anything is written locally."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from service.cli import main
from shared_data import SHARED_DATA
from test_experiments import MICRO_STUDY, utterances

MLFLOW = Path(sys.executable).with_name("mlflow")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def server_uri(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    environment = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    process = subprocess.Popen(
        [str(MLFLOW), "server", "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
         "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("mlflow server did not start") from None
                time.sleep(0.5)
        yield uri
    finally:
        process.terminate()
        process.wait(timeout=30)


def _job(tmp_path: Path, **tracking) -> Path:
    xsid = SHARED_DATA / "xsid" / "xSID-0.7"
    job = {"model": {"embedding_dim": 16, "hidden_dim": 16, "num_layers": 1, "vocab_size": 300,
                     "batch_size": 8, "max_epochs": 1, "enable_progress_bar": False,
                     "devices": {"accelerator": "cpu"}},
           "data": {"root": str(xsid), "source": [{"path": "en.valid.conll", "sample": 16}],
                    "target_language": "de",
                    "target_train": [{"path": "de.valid.conll", "sample": 8}],
                    "test": [{"path": "de.test.conll", "sample": 8}]},
           "regime": "mixed", "tracking": {"experiment": "server-smoke", **tracking},
           "run_dir": str(tmp_path / "run")}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job), encoding="utf-8")
    return path


def test_train_registers_a_model_read_back_through_the_server(server_uri, tmp_path):
    from nlu.tracking import client
    from nlu.training import TrainedNlu

    job = _job(tmp_path, registered_name="nlu-server-smoke", alias="candidate")
    assert main(["train", "--config", str(job), "--tracking-uri", server_uri]) == 0
    runs = client(server_uri).search_runs(
        [client(server_uri).get_experiment_by_name("server-smoke").experiment_id])
    assert len(runs) == 1 and runs[0].data.params["devices.accelerator"] == "cpu"
    assert "test/all/intent_acc" in runs[0].data.metrics
    model = TrainedNlu.from_store("nlu-server-smoke@candidate", server_uri)
    assert model.intents and model.predict([]) == []


def test_a_micro_study_and_its_report_go_through_the_server(server_uri, tmp_path):
    from experiments.compare import build_report
    from experiments.runner import load_study, run_study
    from nlu.formats import write_utterances
    from nlu.tracking import client

    data = tmp_path / "data"
    data.mkdir()
    for name, made in {"en.train": utterances("en", 45, 1), "en.dev": utterances("en", 9, 2),
                       "xx.train": utterances("xx", 36, 3), "xx.dev": utterances("xx", 9, 4),
                       "xx.test": utterances("xx", 12, 5)}.items():
        write_utterances(made, data / f"{name}.jsonl", "jsonl")
    study_yaml = {**MICRO_STUDY, "tracking": {"experiment": "server-study"},
                  "tasks": MICRO_STUDY["tasks"][:1],
                  "profiles": {"server": {"seeds": [1], "only_arms": ["none", "upsample"]}}}
    study_file = data / "study.yaml"
    study_file.write_text(yaml.safe_dump(study_yaml, sort_keys=False), encoding="utf-8")
    study = load_study(study_file, "server")
    assert run_study(study, tracking_uri=server_uri, work_dir=tmp_path / "work") == {
        "ran": 2, "skipped": 0}

    report = build_report("server-study", server_uri, tmp_path / "report").read_text()
    assert "## test: intent accuracy (%)" in report and "| upsample | 1 |" in report
    store = client(server_uri)
    experiment = store.get_experiment_by_name("server-study").experiment_id
    compare_runs = store.search_runs([experiment], filter_string="tags.kind = 'compare'")
    assert len(compare_runs) == 1  # the report is logged as artifacts through the server
    logged = {entry.path for entry in store.list_artifacts(compare_runs[0].info.run_id, "report")}
    assert "report/report.md" in logged


def test_a_grpc_training_job_tracks_and_registers_through_the_server(server_uri, tmp_path):
    from nlu.formats import read_utterances
    from nlu.training import TrainedNlu
    from service import client
    from service.generated.nlu_bootstrap.v1 import training_pb2
    from service.server import ServerConfig, start_server

    xsid = SHARED_DATA / "xsid" / "xSID-0.7"
    german = read_utterances(xsid / "de.valid.conll", "conll")
    settings = yaml.safe_dump({"model": {"embedding_dim": 16, "hidden_dim": 16, "num_layers": 1,
                                         "vocab_size": 300, "batch_size": 8, "max_epochs": 1,
                                         "enable_progress_bar": False},
                               "tracking": {"registered_name": "nlu-grpc-de",
                                            "alias": "candidate"}})
    running = start_server(ServerConfig(tracking_uri=server_uri, state_dir=tmp_path / "state",
                                        address="127.0.0.1:0"), load_in_background=False)
    try:
        with client.connect(f"127.0.0.1:{running.port}") as channel:
            job = client.submit_job(channel, regime="monolingual", config_yaml=settings,
                                    uploads={"target_train": german[:12], "dev": german[12:18],
                                             "test": read_utterances(xsid / "de.test.conll",
                                                                     "conll")[:8]})
            list(client.watch_job(channel, job.job_id, timeout=120))
            finished = client.get_job(channel, job.job_id)
    finally:
        running.stop(grace=0)
    assert finished.state == training_pb2.JobState.JOB_STATE_SUCCEEDED, finished.error
    assert finished.registered_model == "nlu-grpc-de@candidate"
    model = TrainedNlu.from_store("nlu-grpc-de@candidate", server_uri)
    assert [utterance.tokens for utterance in model.predict(german[:2])] == [
        utterance.tokens for utterance in german[:2]]


def test_a_server_that_is_down_fails_fast_with_exit_code_2(tmp_path, capsys):
    uri = f"http://alice:s3cret@127.0.0.1:{_free_port()}"  # nobody listens there
    started = time.monotonic()
    assert main(["train", "--config", str(_job(tmp_path)), "--tracking-uri", uri]) == 2
    assert time.monotonic() - started < 20
    message = capsys.readouterr().err
    assert "127.0.0.1" in message and "s3cret" not in message
    assert not (tmp_path / "run").exists()  # no half-written local state


@pytest.mark.parametrize("status", [200, 401])
def test_the_health_check_sends_uri_credentials_as_basic_auth_and_never_shows_them(
        status):
    import base64
    import http.server
    import threading

    from nlu.tracking import TrackingServerUnreachable, resolve_tracking_uri

    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append((self.path, self.headers["Host"], self.headers["Authorization"]))
            self.send_response(status)
            self.end_headers()

        def log_message(self, *_):
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler) as fake:
        threading.Thread(target=fake.serve_forever, daemon=True).start()
        port = fake.server_address[1]
        uri = f"http://alice:s%40cret@127.0.0.1:{port}"
        try:
            if status == 200:
                assert resolve_tracking_uri(uri) == uri
            else:
                with pytest.raises(TrackingServerUnreachable) as error:
                    resolve_tracking_uri(uri)
                assert "s%40cret" not in str(error.value) and "cret" not in str(error.value)
                assert f"alice:***@127.0.0.1:{port}" in str(error.value)
        finally:
            fake.shutdown()
    expected = "Basic " + base64.b64encode(b"alice:s@cret").decode()
    assert seen == [("/health", f"127.0.0.1:{port}", expected)]
