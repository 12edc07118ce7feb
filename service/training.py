"""TrainingService: new-language NLU training jobs run in worker processes.

* A job is ``multilingual.bootstrap.run(config)`` in its own ``spawn``-ed process, so a
  crash, a leak or a cancel never takes the server down; the job tracks its runs and
  registers its model in MLflow itself.
* Job state and progress events live in a small sqlite file (``jobs.db``) beside the
  server's state, written by the server and the workers alike, so a restarted server still
  knows every finished job. Jobs that were running when a server died are marked failed.
* Training data is a dataset registered on the server (name -> file, set by the operator)
  or utterances uploaded in the request stream; clients never name a file.
"""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import yaml

from nlu.errors import NluDataError
from service.client import message_to_utterance
from service.generated.nlu_bootstrap.v1 import training_pb2, training_pb2_grpc

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"
FINISHED_STATES = frozenset({SUCCEEDED, FAILED, CANCELLED})
_STATE_TO_PROTO = {name: training_pb2.JobState.Value(f"JOB_STATE_{name}")
                   for name in (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY, state TEXT NOT NULL, spec TEXT NOT NULL,
    create_time REAL NOT NULL, update_time REAL NOT NULL,
    mlflow_run_id TEXT NOT NULL DEFAULT '', registered_model TEXT NOT NULL DEFAULT '',
    metrics TEXT NOT NULL DEFAULT '{}', error TEXT NOT NULL DEFAULT '');
CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL, sequence INTEGER NOT NULL, time REAL NOT NULL, state TEXT NOT NULL,
    message TEXT NOT NULL, metrics TEXT NOT NULL DEFAULT '{}', PRIMARY KEY (job_id, sequence));
"""


@dataclass
class JobRecord:
    job_id: str
    state: str
    spec: dict[str, str]
    create_time: float
    update_time: float
    mlflow_run_id: str = ""
    registered_model: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    error: str = ""

    @property
    def finished(self) -> bool:
        return self.state in FINISHED_STATES


@dataclass
class JobEvent:
    sequence: int
    time: float
    state: str
    message: str
    metrics: dict[str, float] = field(default_factory=dict)


class JobStore:
    """Jobs and their events in sqlite; safe to use from server threads and worker processes."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as connection:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        connection.row_factory = sqlite3.Row
        return connection

    def create(self, spec: dict[str, str]) -> JobRecord:
        now = time.time()
        job = JobRecord(uuid.uuid4().hex, QUEUED, spec, now, now)
        with self._connect() as connection:
            connection.execute(
                "INSERT INTO jobs (job_id, state, spec, create_time, update_time) VALUES (?,?,?,?,?)",
                (job.job_id, job.state, json.dumps(spec), now, now))
        self.add_event(job.job_id, QUEUED, "job accepted")
        return job

    def get(self, job_id: str) -> JobRecord | None:
        with self._connect() as connection:
            row = connection.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            return None
        return JobRecord(row["job_id"], row["state"], json.loads(row["spec"]), row["create_time"],
                         row["update_time"], row["mlflow_run_id"], row["registered_model"],
                         json.loads(row["metrics"]), row["error"])

    def jobs_in(self, states: set[str]) -> list[JobRecord]:
        with self._connect() as connection:
            ids = [row[0] for row in connection.execute(
                f"SELECT job_id FROM jobs WHERE state IN ({','.join('?' * len(states))})",
                tuple(states))]
        return [job for job_id in ids if (job := self.get(job_id)) is not None]

    def update(self, job_id: str, state: str, message: str, *, metrics: dict[str, float] | None = None,
               mlflow_run_id: str | None = None, registered_model: str | None = None,
               error: str | None = None) -> bool:
        """Move a job to ``state`` and record the event; a finished job never changes again.

        Returns False (and records nothing) when the job had already finished, e.g. a worker
        reporting success just after the job was cancelled.
        """
        changes = {"state": state, "update_time": time.time()}
        if metrics is not None:
            changes["metrics"] = json.dumps(metrics)
        for name, value in (("mlflow_run_id", mlflow_run_id),
                            ("registered_model", registered_model), ("error", error)):
            if value is not None:
                changes[name] = value
        assignments = ", ".join(f"{name} = ?" for name in changes)
        finished = ",".join("?" * len(FINISHED_STATES))
        with self._connect() as connection:
            cursor = connection.execute(
                f"UPDATE jobs SET {assignments} WHERE job_id = ? AND state NOT IN ({finished})",
                (*changes.values(), job_id, *FINISHED_STATES))
            if cursor.rowcount == 0:
                return False
        self.add_event(job_id, state, message, metrics or {})
        return True

    def add_event(self, job_id: str, state: str, message: str,
                  metrics: dict[str, float] | None = None) -> None:
        with self._connect() as connection:
            connection.execute("BEGIN IMMEDIATE")  # serialises sequence numbers across processes
            (last,) = connection.execute("SELECT COALESCE(MAX(sequence), 0) FROM events "
                                         "WHERE job_id = ?", (job_id,)).fetchone()
            connection.execute("INSERT INTO events VALUES (?,?,?,?,?,?)",
                               (job_id, last + 1, time.time(), state, message,
                                json.dumps(metrics or {})))
            connection.execute("COMMIT")

    def events_after(self, job_id: str, sequence: int) -> list[JobEvent]:
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT * FROM events WHERE job_id = ? AND sequence > ? ORDER BY sequence",
                (job_id, sequence)).fetchall()
        return [JobEvent(row["sequence"], row["time"], row["state"], row["message"],
                         json.loads(row["metrics"])) for row in rows]


def run_job(job_id: str, store_path: str, config: dict[str, Any], tracking_uri: str) -> None:
    """Worker-process entry point: run the bootstrap job and record how it ended."""
    store = JobStore(store_path)
    store.update(job_id, RUNNING, "training started")
    try:
        from multilingual import bootstrap

        result = bootstrap.run(config, tracking_uri=tracking_uri)
    except BaseException as error:  # the job's failure, recorded for the client to read
        store.update(job_id, FAILED, "training failed", error=f"{type(error).__name__}: {error}")
        raise
    store.update(job_id, SUCCEEDED, "training finished", **_job_outcome(result))


def _job_outcome(result: dict[str, Any]) -> dict[str, Any]:
    """The parts of ``bootstrap.run``'s result a client sees: run, registered model, metrics."""
    metrics = {name: float(value) for name, value in (result.get("metrics") or {}).items()
               if isinstance(value, (int, float))}
    return {"metrics": metrics, "mlflow_run_id": str(result.get("run_id") or ""),
            "registered_model": str(result.get("registered_model") or "")}


class JobRunner:
    """Starts jobs in worker processes, at most ``max_running`` at a time, and can kill them."""

    def __init__(self, store: JobStore, tracking_uri: str, work_dir: Path, max_running: int = 1):
        self.store = store
        self.tracking_uri = tracking_uri
        self.work_dir = Path(work_dir)
        self.max_running = max_running
        self._context = multiprocessing.get_context("spawn")
        self._workers: dict[str, multiprocessing.process.BaseProcess] = {}
        self._lock = threading.Lock()
        for job in store.jobs_in({QUEUED, RUNNING}):
            store.update(job.job_id, FAILED, "server restarted while the job was running",
                         error="interrupted by a server restart")

    def running(self) -> int:
        with self._lock:
            self._workers = {job_id: worker for job_id, worker in self._workers.items()
                             if worker.is_alive()}
            return len(self._workers)

    def start(self, job_id: str, config: dict[str, Any]) -> None:
        worker = self._context.Process(
            target=run_job, args=(job_id, str(self.store.path), config, self.tracking_uri),
            name=f"nlu-bootstrap-job-{job_id}", daemon=True)
        with self._lock:
            self._workers[job_id] = worker
        worker.start()
        threading.Thread(target=self._reap, args=(job_id, worker), daemon=True).start()

    def _reap(self, job_id: str, worker) -> None:
        """A worker that died without recording an outcome (killed, segfault) failed."""
        worker.join()
        self.store.update(job_id, FAILED, "worker process exited",
                          error=f"worker exited with code {worker.exitcode}")

    def cancel(self, job_id: str) -> None:
        with self._lock:
            worker = self._workers.get(job_id)
        self.store.update(job_id, CANCELLED, "cancelled by the client")
        if worker is not None and worker.is_alive():
            worker.terminate()
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()

    def shutdown(self) -> None:
        with self._lock:
            job_ids = list(self._workers)
        for job_id in job_ids:
            self.store.update(job_id, FAILED, "server shut down", error="interrupted by server shutdown")
            self.cancel(job_id)


class TrainingServicer(training_pb2_grpc.TrainingServiceServicer):
    def __init__(self, runner: JobRunner, datasets: dict[str, Path], *,
                 max_upload_utterances: int = 200_000, watch_poll_seconds: float = 0.2):
        self.runner = runner
        self.store = runner.store
        self.datasets = datasets
        self.max_upload_utterances = max_upload_utterances
        self.watch_poll_seconds = watch_poll_seconds

    def SubmitJob(self, request_iterator, context):
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("part") != "spec":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "spec: the first SubmitJobRequest must carry the job spec")
        spec = first.spec
        config = _parse_config(spec, context)
        if spec.dataset:
            if spec.dataset not in self.datasets:
                context.abort(grpc.StatusCode.NOT_FOUND,
                              f"spec.dataset: no registered dataset {spec.dataset!r} "
                              f"(registered: {', '.join(sorted(self.datasets)) or 'none'})")
        if self.runner.running() >= self.runner.max_running:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"{self.runner.max_running} job(s) already running; retry later")
        uploaded = self._receive_upload(request_iterator, context, expect_data=not spec.dataset)
        job = self.store.create({"dataset": spec.dataset, "regime": spec.regime,
                                 "config_yaml": spec.config_yaml})
        if uploaded:
            from nlu.formats import write_utterances

            data_path = self.runner.work_dir / job.job_id / "train.jsonl"
            data_path.parent.mkdir(parents=True, exist_ok=True)
            write_utterances(uploaded, data_path, "jsonl")
        else:
            data_path = self.datasets[spec.dataset]
        config = _job_config(config, spec.regime, data_path, job.job_id)
        self.runner.start(job.job_id, config)
        return training_pb2.SubmitJobResponse(job=_job_message(self.store.get(job.job_id)))

    def _receive_upload(self, request_iterator, context, *, expect_data: bool) -> list:
        utterances = []
        for position, request in enumerate(request_iterator, start=2):
            if request.WhichOneof("part") != "data":
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              f"spec: message {position} repeats the spec; only the first may")
            if not expect_data:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              "data: utterances uploaded although spec.dataset names a dataset")
            for index, message in enumerate(request.data.utterances):
                try:
                    utterances.append(message_to_utterance(message))
                except NluDataError as error:
                    context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                  f"data.utterances[{len(utterances)}]: {error}")
                if len(utterances) > self.max_upload_utterances:
                    context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                  f"data: more than {self.max_upload_utterances} utterances")
        if expect_data and not utterances:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "spec.dataset: name a registered dataset or upload utterances")
        return utterances

    def GetJob(self, request, context):
        return training_pb2.GetJobResponse(job=_job_message(self._job(request.job_id, context)))

    def WatchJob(self, request, context):
        job = self._job(request.job_id, context)
        sequence = 0
        while context.is_active():
            for event in self.store.events_after(job.job_id, sequence):
                sequence = event.sequence
                yield training_pb2.WatchJobResponse(event=_event_message(event))
            if self.store.get(job.job_id).finished and not self.store.events_after(job.job_id, sequence):
                return
            time.sleep(self.watch_poll_seconds)

    def CancelJob(self, request, context):
        job = self._job(request.job_id, context)
        if job.finished:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"job_id: job {job.job_id} already {job.state.lower()}")
        self.runner.cancel(job.job_id)
        return training_pb2.CancelJobResponse(job=_job_message(self.store.get(job.job_id)))

    def _job(self, job_id: str, context) -> JobRecord:
        if not job_id:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "job_id: required")
        job = self.store.get(job_id)
        if job is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"job_id: no job {job_id!r}")
        return job


def _parse_config(spec, context) -> dict[str, Any]:
    try:
        config = yaml.safe_load(spec.config_yaml) if spec.config_yaml.strip() else {}
    except yaml.YAMLError as error:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"spec.config_yaml: not valid YAML: {error}")
    if not isinstance(config, dict):
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, "spec.config_yaml: must be a mapping")
    return config


def _job_config(config: dict[str, Any], regime: str, data_path: Path, job_id: str) -> dict[str, Any]:
    """The client's config with what the server decides: the data file and the output place."""
    config = dict(config)
    if regime:
        config["regime"] = regime
    config["train"] = str(data_path)
    config.setdefault("run_name", f"job-{job_id}")
    return config


def _timestamp(seconds: float):
    from google.protobuf.timestamp_pb2 import Timestamp

    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def _job_message(job: JobRecord) -> training_pb2.Job:
    return training_pb2.Job(
        job_id=job.job_id, state=_STATE_TO_PROTO[job.state],
        spec=training_pb2.JobSpec(**job.spec), create_time=_timestamp(job.create_time),
        update_time=_timestamp(job.update_time), mlflow_run_id=job.mlflow_run_id,
        registered_model=job.registered_model, metrics=job.metrics, error=job.error)


def _event_message(event: JobEvent) -> training_pb2.JobEvent:
    return training_pb2.JobEvent(sequence=event.sequence, time=_timestamp(event.time),
                                 state=_STATE_TO_PROTO[event.state], message=event.message,
                                 metrics=event.metrics)

