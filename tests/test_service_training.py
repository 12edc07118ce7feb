"""TrainingService end to end: real "bootstrap a new language" jobs (tiny model, a dozen
real xSID utterances) in spawned worker processes, tracked in MLflow, visible after a
server restart; cancel, limits and every refused request."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest
import yaml

from nlu.formats import read_utterances
from service import client
from service.generated.nlu_bootstrap.v1 import training_pb2, training_pb2_grpc, utterance_pb2
from service.server import ServerConfig, start_server
from shared_data import SHARED_DATA

XSID = SHARED_DATA / "xsid/xSID-0.7"
TINY_MODEL = {"embedding_dim": 16, "hidden_dim": 16, "num_layers": 1, "vocab_size": 300,
              "batch_size": 8, "max_epochs": 2, "lr": 0.01, "enable_progress_bar": False,
              "num_threads": 1}
SETTINGS = yaml.safe_dump({"model": TINY_MODEL,
                           "tracking": {"registered_name": "nlu-de", "alias": "candidate"}})
JobState = training_pb2.JobState


@pytest.fixture(scope="module")
def state(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("training")
    dataset = root / "xsid-de.yaml"  # an operator-registered dataset: a job's data section
    dataset.write_text(yaml.safe_dump({"data": {
        "root": str(XSID), "target_language": "de",
        "target_train": [{"path": "de.valid.conll", "sample": 12}],
        "test": [{"path": "de.test.conll", "sample": 8}]}}), encoding="utf-8")
    return {"tracking_uri": f"sqlite:///{root}/mlflow.db", "state_dir": root / "state",
            "datasets": {"xsid-de": dataset}}


def start(state):
    running = start_server(ServerConfig(address="127.0.0.1:0", **state), load_in_background=False)
    running.load_generators()
    return running


@pytest.fixture(scope="module")
def server(state):
    running = start(state)
    yield running
    running.stop(grace=0)


@pytest.fixture
def channel(server):
    with client.connect(f"127.0.0.1:{server.port}") as channel:
        yield channel


def uploads() -> dict:
    german = read_utterances(XSID / "de.valid.conll", "conll")
    return {"target_train": german[:12], "dev": german[12:18],
            "test": read_utterances(XSID / "de.test.conll", "conll")[:8]}


def refused(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call()
    return raised.value


def test_uploaded_job_finishes_registers_and_survives_a_restart(state):
    from nlu.tracking import client as mlflow_client
    from nlu.tracking import model_run_id

    first = start(state)
    try:
        with client.connect(f"127.0.0.1:{first.port}") as channel:
            job = client.submit_job(channel, regime="monolingual", config_yaml=SETTINGS,
                                    uploads=uploads())
            assert job.state == JobState.JOB_STATE_QUEUED
            events = list(client.watch_job(channel, job.job_id, timeout=120))
            finished = client.get_job(channel, job.job_id)
    finally:
        first.stop(grace=0)
    assert [event.sequence for event in events] == list(range(1, len(events) + 1))
    assert events[-1].state == JobState.JOB_STATE_SUCCEEDED, finished.error
    assert [event.state for event in events[:2]] == [JobState.JOB_STATE_QUEUED,
                                                      JobState.JOB_STATE_RUNNING]
    assert finished.registered_model == "nlu-de@candidate"
    assert model_run_id("nlu-de@candidate", state["tracking_uri"]) == finished.mlflow_run_id
    assert "test/de/intent_acc" in finished.metrics
    run = mlflow_client(state["tracking_uri"]).get_run(finished.mlflow_run_id)
    assert run.data.params["regime"] == "monolingual" and run.info.status == "FINISHED"

    restarted = start(state)  # a new server over the same state folder and MLflow store
    try:
        with client.connect(f"127.0.0.1:{restarted.port}") as channel:
            again = client.get_job(channel, job.job_id)
            assert again.state == JobState.JOB_STATE_SUCCEEDED
            assert dict(again.metrics) == dict(finished.metrics)
            replayed = list(client.watch_job(channel, job.job_id, timeout=10))
            assert [event.message for event in replayed] == [event.message for event in events]
            # The registered NLU model is no generator: refused by name, not by a crash.
            with pytest.raises(grpc.RpcError) as raised:
                list(client.augment(channel, "nlu-de@candidate", 5, timeout=30))
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "not a GAN generator" in raised.value.details()
            assert client.list_generators(channel) == []
    finally:
        restarted.stop(grace=0)


def test_cancel_kills_the_worker_and_one_job_runs_at_a_time(channel, server):
    job = client.submit_job(channel, regime="monolingual", dataset="xsid-de",
                            config_yaml=yaml.safe_dump({"model": {**TINY_MODEL, "max_epochs": 50}}))
    busy = refused(lambda: client.submit_job(channel, dataset="xsid-de", regime="monolingual"))
    assert busy.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    cancelled = client.cancel_job(channel, job.job_id)
    assert cancelled.state == JobState.JOB_STATE_CANCELLED
    assert server.runner.live_workers() == 0
    assert client.get_job(channel, job.job_id).state == JobState.JOB_STATE_CANCELLED
    again = refused(lambda: client.cancel_job(channel, job.job_id))
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION


@pytest.mark.parametrize("settings, field", [
    ({"run_dir": "/tmp/x"}, "spec.config_yaml.run_dir"),
    ({"data": {"root": "/etc"}}, "spec.config_yaml.data.root"),
    ({"tracking": {"uri": "sqlite:////tmp/other.db"}}, "spec.config_yaml.tracking.uri"),
    ({"model": {"encoder": "rnn"}}, "spec.config_yaml: model"),
    ({"model": {"devices": {"strategy": "ddp", "devices": 2}}}, "spec.config_yaml: model.devices"),
])
def test_settings_that_name_files_or_are_invalid_are_refused(channel, settings, field):
    error = refused(lambda: client.submit_job(channel, regime="monolingual", dataset="xsid-de",
                                              config_yaml=yaml.safe_dump(settings)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(field), error.details()


BAD_MODEL_NUMBERS = [
    *[("max_epochs", value) for value in (-1, 0, 2 ** 63)],
    *[("batch_size", value) for value in (0, -1, 2 ** 31)],
    *[("lr", value) for value in (0.0, -1.0, float("inf"), float("nan"))],
    *[("dropout", value) for value in (1.0, -0.1, float("nan"))],
    *[("seed", value) for value in (-1, 2 ** 32)],
    ("patience", -1), ("num_layers", 0), ("hidden_dim", -2), ("vocab_size", 0),
    ("gradient_clip", float("inf")), ("weight_decay", -1.0), ("warmup_fraction", 2.0),
    ("num_heads", 0), ("char_filters", -1), ("num_threads", 0),
]


@pytest.mark.parametrize("name, value", BAD_MODEL_NUMBERS)
def test_out_of_range_model_settings_are_refused_before_queueing(channel, name, value):
    error = refused(lambda: client.submit_job(
        channel, regime="monolingual", dataset="xsid-de",
        config_yaml=yaml.safe_dump({"model": {name: value}})))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(("spec.config_yaml: model: ",  # the model's range
                                       f"spec.config_yaml.model.{name}: at most"))  # a server's
    assert f"{name}:" in error.details()


@pytest.mark.parametrize("config_yaml, field", [
    ("model: " + "[" * 3000 + "]" * 3000, "spec.config_yaml: nested too deeply"),
    ("tracking: " + "{a: " * 3000 + "1" + "}" * 3000, "spec.config_yaml: nested too deeply"),
    ("tracking: {experiment: [a, b]}", "spec.config_yaml.tracking.experiment: must be a string"),
    ("tracking: {registered_name: 7}", "spec.config_yaml.tracking.registered_name: must be"),
    ("data: {target_language: ../../x}", "spec.config_yaml.data.target_language: '../../x' is"),
    ("model: {max_epochs: true}", "spec.config_yaml: model: max_epochs: must be an integer"),
    ("model: {max_epochs: '3'}", "spec.config_yaml: model: max_epochs: must be an integer"),
    ("model: {lr: '0.1'}", "spec.config_yaml: model: lr: must be a number"),
    ("model: {hidden_dim: 1000000}", "spec.config_yaml.model.hidden_dim: at most 2048"),
    ("finetune_model: {vocab_size: 100000000}", "spec.config_yaml.finetune_model.vocab_size"),
    ("model: {num_threads: 100000}", "spec.config_yaml.model.num_threads: at most"),
    ("model: {embeddings_path: /etc/passwd}", "spec.config_yaml.model.embeddings_path: not a"),
])
def test_job_settings_are_type_checked_and_bounded_when_submitted(channel, config_yaml, field):
    error = refused(lambda: client.submit_job(channel, regime="monolingual", dataset="xsid-de",
                                              config_yaml=config_yaml))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(field), error.details()


def test_uploaded_data_is_found_under_a_relative_state_dir(tmp_path, monkeypatch):
    from service.training import JobRunner, JobStore, TrainingServicer

    monkeypatch.chdir(tmp_path)
    runner = JobRunner(JobStore("state/jobs.db"), "sqlite:///mlflow.db", Path("state/jobs"))
    servicer = TrainingServicer(runner, {})
    spec = training_pb2.JobSpec(regime="monolingual")
    config = servicer._job_config(spec, {}, uploads(), runner.job_dir("job"))
    assert config.data.root == tmp_path / "state" / "jobs" / "job" / "data"
    assert all((config.data.root / spec.path).is_file()
               for spec in (*config.data.target_train, *config.data.test))


def test_refused_submissions(channel):
    error = refused(lambda: client.submit_job(channel, dataset="nope", regime="monolingual"))
    assert error.code() == grpc.StatusCode.NOT_FOUND and error.details().startswith("spec.dataset")
    error = refused(lambda: client.submit_job(channel, dataset="xsid-de", regime="sideways"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "regime" in error.details()
    error = refused(lambda: client.submit_job(channel, regime="monolingual"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "upload" in error.details()

    broken = utterance_pb2.AnnotatedUtterance(tokens=["wecke", "mich"], tags=["I-x", "O"],
                                              intent="alarm", language="de")
    requests = [training_pb2.SubmitJobRequest(spec=training_pb2.JobSpec(regime="monolingual")),
                training_pb2.SubmitJobRequest(data=training_pb2.UtteranceChunk(
                    split=training_pb2.DATA_SPLIT_TEST, utterances=[broken]))]
    stub = training_pb2_grpc.TrainingServiceStub(channel)
    error = refused(lambda: stub.SubmitJob(iter(requests), timeout=10))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("data.utterances[0] (test): tags")


def test_unknown_jobs(channel):
    for call in (client.get_job, client.cancel_job, lambda c, j: list(client.watch_job(c, j))):
        assert refused(lambda: call(channel, "no-such-job")).code() == grpc.StatusCode.NOT_FOUND


def test_the_job_limit_holds_under_concurrent_submissions_from_several_processes(tmp_path):
    import threading

    from service.training import JobStore

    # Two stores on one file stand for two server processes; 8 threads race for 2 slots.
    stores = [JobStore(tmp_path / "jobs.db"), JobStore(tmp_path / "jobs.db")]
    barrier = threading.Barrier(8)
    accepted = []

    def submit(index: int) -> None:
        barrier.wait()
        if stores[index % 2].create(f"job-{index}", {}, max_active=2) is not None:
            accepted.append(index)

    threads = [threading.Thread(target=submit, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(accepted) == 2
    assert {job.job_id for job in stores[0].jobs_in({"QUEUED"})} == {f"job-{i}" for i in accepted}


def test_a_server_killed_with_sigkill_takes_its_job_worker_with_it_and_mlflow_agrees(
        state, tmp_path):
    import os
    import re
    import signal
    import subprocess
    import sys

    from nlu.tracking import client as mlflow_client
    from service.training import JobStore

    log = tmp_path / "serve.log"
    state_dir = tmp_path / "state"
    (dataset,) = state["datasets"].values()
    with log.open("w") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--port", "0", "--state-dir",
             str(state_dir), "--tracking-uri", state["tracking_uri"], "--dataset",
             f"xsid-de={dataset}"], stdout=subprocess.DEVNULL, stderr=stderr)
    worker = None
    try:
        port = wait_for(lambda: re.search(r"listening on port (\d+)", log.read_text()), 60)[1]
        with client.connect(f"127.0.0.1:{port}") as channel:
            long_job = yaml.safe_dump({"model": {**TINY_MODEL, "max_epochs": 500}})
            job = client.submit_job(channel, regime="monolingual", dataset="xsid-de",
                                    config_yaml=long_job)
            wait_for(lambda: client.get_job(channel, job.job_id).mlflow_run_id, 120)
        store = JobStore(state_dir / "jobs.db")
        worker = store.get(job.job_id).worker_pid
        os.kill(server.pid, signal.SIGKILL)
        server.wait()
        wait_for(lambda: not alive(worker), 15)
        ended = store.get(job.job_id)
        assert ended.state == "FAILED" and "server process died" in ended.error
        run = mlflow_client(state["tracking_uri"]).get_run(ended.mlflow_run_id)
        assert run.info.status == "FAILED" and "server process died" in run.data.tags[
            "failure_reason"]
        assert store.active_jobs() == 0  # nothing left to count against --max-jobs
    finally:
        if server.poll() is None:
            server.kill()
        if worker and alive(worker):  # an orphan would train on for 500 epochs
            os.kill(worker, signal.SIGKILL)


def wait_for(condition, seconds: float):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.2)
    raise AssertionError(f"not within {seconds} s")


def alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
