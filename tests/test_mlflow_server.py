"""Against a real ``mlflow server`` (sqlite store and artifacts in tmp, 127.0.0.1, one worker):
a tiny ``train`` job logs and registers its model, which is read back as ``name@alias``; and
a server that is down fails the CLI fast, with exit code 2, naming the URI without its
password, before anything is written locally."""

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


def test_a_server_that_is_down_fails_fast_with_exit_code_2(tmp_path, capsys):
    uri = f"http://alice:s3cret@127.0.0.1:{_free_port()}"  # nobody listens there
    started = time.monotonic()
    assert main(["train", "--config", str(_job(tmp_path)), "--tracking-uri", uri]) == 2
    assert time.monotonic() - started < 20
    message = capsys.readouterr().err
    assert "127.0.0.1" in message and "s3cret" not in message
    assert not (tmp_path / "run").exists()  # no half-written local state
