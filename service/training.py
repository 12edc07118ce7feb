"""TrainingService: new-language NLU training jobs run in worker processes.

* A job is ``multilingual.bootstrap.run(config)`` in its own ``spawn``-ed process, so a
  crash, a leak or a cancel never takes the server down; the job tracks its runs and
  registers its model in MLflow itself.
* Job state and progress events live in a small sqlite file (``jobs.db``) beside the
  server's state, written by the server and the workers alike, so a restarted server still
  knows every finished job. A worker dies with its server (even one killed with -9): it
  marks its job and its MLflow run FAILED first, and a restarted server marks any job still
  left queued or running FAILED in both, so the job table and MLflow agree.
* Training data is a dataset registered on the server (a name the operator maps to a YAML
  file holding a bootstrap job's ``data:`` section) or utterances uploaded in the request
  stream, each chunk naming its split. Clients never name a file, a folder or a store: the
  server fills in the data files, the run folder and the tracking URI.
* Progress: the worker records when the MLflow run starts and, every few seconds, the run's
  latest metrics (training curves, then the final dev/test metrics) as job events.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import shutil
import signal
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
from nlu.utterance import check_language, type_name
from service.generated.nlu_bootstrap.v1 import training_pb2, training_pb2_grpc
from service.messages import SPLIT_KEYS, RequestError, message_to_utterance

log = logging.getLogger(__name__)

# What a client may set in ``JobSpec.config_yaml``: everything else names files or stores.
CLIENT_SETTINGS = {"model": None, "finetune_model": None, "regime": None,
                   "tracking": {"experiment", "registered_name", "alias"},
                   "data": {"target_language", "target_fraction", "target_per_intent", "seed"}}
# Settings a client may give only as strings (a list here was queued, then failed in SQL).
STRING_SETTINGS = {"tracking": ("experiment", "registered_name", "alias"),
                   "data": ("target_language",)}
# Model settings that name a server file: a client never names one.
MODEL_FILE_SETTINGS = ("embeddings_path",)
# A job shares the server's machine: sizes far beyond any study's (experiments/ use at most
# hidden_dim 256, vocab_size 8000, 20 epochs) are refused at submission, not run for hours.
MODEL_LIMITS = {"vocab_size": 100_000, "embedding_dim": 2048, "hidden_dim": 2048,
                "num_layers": 8, "num_heads": 32, "char_filters": 1024, "char_embedding_dim": 512,
                "batch_size": 4096, "max_epochs": 500, "patience": 500}
DEFAULT_EXPERIMENT = "service-jobs"
PROGRESS_POLL_SECONDS = 2.0
RUN_FOLDER = "run"  # a job's run_dir, inside its job folder
PARENT_POLL_SECONDS = 0.5  # how soon a worker notices that its server died
SERVER_DIED = "the server process died while the job was running"

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "QUEUED", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"
FINISHED_STATES = frozenset({SUCCEEDED, FAILED, CANCELLED})
_STATE_TO_PROTO = {name: training_pb2.JobState.Value(f"JOB_STATE_{name}")
                   for name in (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY, state TEXT NOT NULL, spec TEXT NOT NULL,
    create_time REAL NOT NULL, update_time REAL NOT NULL,
    mlflow_run_id TEXT NOT NULL DEFAULT '', registered_model TEXT NOT NULL DEFAULT '',
    metrics TEXT NOT NULL DEFAULT '{}', error TEXT NOT NULL DEFAULT '',
    worker_pid INTEGER NOT NULL DEFAULT 0);
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
    worker_pid: int = 0

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


def _active_jobs(connection: sqlite3.Connection) -> int:
    (count,) = connection.execute("SELECT COUNT(*) FROM jobs WHERE state IN (?, ?)",
                                  (QUEUED, RUNNING)).fetchone()
    return count


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

    def create(self, job_id: str, spec: dict[str, str], *,
               max_active: int | None = None) -> JobRecord | None:
        """Record a new QUEUED job. With ``max_active``, only while fewer jobs are queued or
        running: counted and inserted in one write transaction, so concurrent submissions,
        from any thread or server process sharing this store, cannot overshoot the limit.
        Returns None when refused."""
        now = time.time()
        job = JobRecord(job_id, QUEUED, spec, now, now)
        connection = self._connect()
        try:
            connection.execute("BEGIN IMMEDIATE")  # takes the write lock before counting
            if max_active is not None and _active_jobs(connection) >= max_active:
                connection.execute("ROLLBACK")
                return None
            connection.execute(
                "INSERT INTO jobs (job_id, state, spec, create_time, update_time) VALUES (?,?,?,?,?)",
                (job.job_id, job.state, json.dumps(spec), now, now))
            connection.execute("COMMIT")
        finally:
            connection.close()
        self.add_event(job.job_id, QUEUED, "job accepted")
        return job

    def get(self, job_id: str) -> JobRecord | None:
        with self._connect() as connection:
            row = connection.execute("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        if row is None:
            return None
        return JobRecord(row["job_id"], row["state"], json.loads(row["spec"]), row["create_time"],
                         row["update_time"], row["mlflow_run_id"], row["registered_model"],
                         json.loads(row["metrics"]), row["error"], row["worker_pid"])

    def active_jobs(self) -> int:
        """How many jobs are queued or running."""
        with self._connect() as connection:
            return _active_jobs(connection)

    def jobs_in(self, states: set[str]) -> list[JobRecord]:
        with self._connect() as connection:
            ids = [row[0] for row in connection.execute(
                f"SELECT job_id FROM jobs WHERE state IN ({','.join('?' * len(states))})",
                tuple(states))]
        return [job for job_id in ids if (job := self.get(job_id)) is not None]

    def record_worker(self, job_id: str, pid: int) -> None:
        with self._connect() as connection:
            connection.execute("UPDATE jobs SET worker_pid = ? WHERE job_id = ?", (pid, job_id))

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


def watch_parent(on_orphaned, poll_seconds: float = PARENT_POLL_SECONDS) -> None:
    """Call ``on_orphaned()`` from a daemon thread once this process's parent has died (the
    kernel then re-parents it, and ``getppid`` changes), e.g. a server killed with -9.

    A polled parent pid, not Linux's ``PR_SET_PDEATHSIG``: that fires when the *thread*
    that started the process ends, and workers are started from gRPC's pool threads.
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        on_orphaned()

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def run_job(job_id: str, store_path: str, config, tracking_uri: str) -> None:
    """Worker-process entry point: run the bootstrap job and record how it ended. A worker
    whose server died records the job and its MLflow run as failed and exits: no job trains
    on unseen, outside the server's job limit."""
    from multilingual import bootstrap

    store = JobStore(store_path)

    def orphaned() -> None:
        try:
            fail_interrupted_job(store, store.get(job_id), tracking_uri, Path(config.run_dir),
                                 SERVER_DIED)
        finally:
            os._exit(1)

    watch_parent(orphaned)
    store.update(job_id, RUNNING, "training started")
    reporter = threading.Thread(target=_report_progress,
                                args=(store, job_id, Path(config.run_dir), tracking_uri),
                                name="progress", daemon=True)
    reporter.start()
    try:
        result = bootstrap.run(config, tracking_uri=tracking_uri)
    except BaseException as error:  # the job's failure, recorded for the client to read
        store.update(job_id, FAILED, "training failed", error=f"{type(error).__name__}: {error}")
        raise
    model_ref = str(result["model_ref"])
    store.update(job_id, SUCCEEDED, "training finished", mlflow_run_id=result["run_id"],
                 registered_model="" if model_ref == result["run_id"] else model_ref,
                 metrics={name: float(value) for name, value in result["metrics"].items()})


def _report_progress(store: JobStore, job_id: str, run_dir: Path, tracking_uri: str) -> None:
    """Record the job's MLflow run once it exists, then its latest metrics when they change."""
    from nlu.jobs import RUN_ID_FILENAME
    from nlu.tracking import client

    run_id: str | None = None
    last_metrics = ""
    while not store.get(job_id).finished:
        time.sleep(PROGRESS_POLL_SECONDS)
        if run_id is None:
            record = run_dir / RUN_ID_FILENAME
            if not record.exists():
                continue
            run_id = json.loads(record.read_text(encoding="utf-8"))["run_id"]
            store.update(job_id, RUNNING, f"MLflow run {run_id} started", mlflow_run_id=run_id)
        metrics = client(tracking_uri).get_run(run_id).data.metrics
        if metrics and json.dumps(metrics, sort_keys=True) != last_metrics:
            last_metrics = json.dumps(metrics, sort_keys=True)
            store.update(job_id, RUNNING, "progress", metrics=metrics)


def fail_interrupted_job(store: JobStore, job: JobRecord, tracking_uri: str, run_dir: Path,
                         reason: str) -> None:
    """Mark a job whose server died FAILED, and its MLflow run too (with the reason as the
    ``failure_reason`` tag), so that the job table and MLflow agree."""
    from nlu.jobs import RUN_ID_FILENAME

    store.update(job.job_id, FAILED, reason, error=reason)
    run_id = job.mlflow_run_id
    record = run_dir / RUN_ID_FILENAME
    if not run_id and record.is_file():  # the run started before the progress poll saw it
        run_id = json.loads(record.read_text(encoding="utf-8"))["run_id"]
    if run_id:
        from nlu.tracking import client

        try:
            tracking = client(tracking_uri)
            if tracking.get_run(run_id).info.status == "RUNNING":
                tracking.set_tag(run_id, "failure_reason", reason)
                tracking.set_terminated(run_id, status="FAILED")
        except Exception:  # a tracking server that is down must not stop a server's start
            log.exception("could not mark MLflow run %s of job %s FAILED", run_id, job.job_id)


def recover_interrupted_jobs(store: JobStore, tracking_uri: str, work_dir: Path) -> None:
    """Jobs a previous server left queued or running have no worker any more (a worker
    exits when its server dies): failed, in the job table and in MLflow."""
    for job in store.jobs_in({QUEUED, RUNNING}):
        fail_interrupted_job(store, job, tracking_uri, Path(work_dir) / job.job_id / RUN_FOLDER,
                             "interrupted: the server stopped while the job was running")


class JobRunner:
    """Starts jobs in worker processes, at most ``max_running`` at a time, and can kill them.

    Several server processes may share one store (``serve --processes``): the limit counts
    the store's active jobs, and a job is cancelled through its recorded worker pid when
    another process started it. ``recover``: first mark the jobs a dead server left running
    as failed (a multi-process server does that once, before its processes start).
    """

    def __init__(self, store: JobStore, tracking_uri: str, work_dir: Path, max_running: int = 1,
                 *, recover: bool = True):
        self.store = store
        self.tracking_uri = tracking_uri
        # Absolute: a job's data root is anchored at its folder, and a relative work_dir
        # would be joined to itself (state/jobs/<id>/state/jobs/<id>/data).
        self.work_dir = Path(work_dir).resolve()
        self.max_running = max_running
        self._context = multiprocessing.get_context("spawn")
        # Each worker with the one thread that waits for it (the only waiter: two threads
        # waiting for one process race, and the loser can see it alive after it died).
        self._workers: dict[str, tuple[multiprocessing.process.BaseProcess,
                                       threading.Thread]] = {}
        self._lock = threading.Lock()
        if recover:
            recover_interrupted_jobs(store, tracking_uri, self.work_dir)

    def job_dir(self, job_id: str) -> Path:
        return self.work_dir / job_id

    def live_workers(self) -> int:
        """Worker processes of this server process that have not exited (or not been reaped)."""
        with self._lock:
            return len(self._workers)

    def at_capacity(self) -> bool:
        return self.store.active_jobs() >= self.max_running

    def start(self, job_id: str, config) -> None:
        worker = self._context.Process(
            target=run_job, args=(job_id, str(self.store.path), config, self.tracking_uri),
            name=f"nlu-bootstrap-job-{job_id}", daemon=True)
        reaper = threading.Thread(target=self._reap, args=(job_id, worker), daemon=True)
        with self._lock:  # so that cancel sees both started, and the reaper pops after this
            worker.start()
            reaper.start()
            self._workers[job_id] = worker, reaper
        self.store.record_worker(job_id, worker.pid)

    def _reap(self, job_id: str, worker) -> None:
        """A worker that died without recording an outcome (killed, segfault) failed."""
        worker.join()
        with self._lock:
            self._workers.pop(job_id, None)
        self.store.update(job_id, FAILED, "worker process exited",
                          error=f"worker exited with code {worker.exitcode}")

    def cancel(self, job_id: str, message: str = "cancelled by the client") -> None:
        """Mark the job cancelled, kill its worker and close its MLflow run as KILLED."""
        with self._lock:
            worker, reaper = self._workers.get(job_id, (None, None))
        cancelled = self.store.update(job_id, CANCELLED, message)  # False: it had just ended
        job = self.store.get(job_id)
        if worker is not None:  # started here; its reaper waits for it
            worker.terminate()
            reaper.join(timeout=10)
            if reaper.is_alive():
                worker.kill()
                reaper.join()
        elif worker is None and cancelled and job.worker_pid:
            # Started by another server process, which reaps it (so the pid is not reused).
            try:
                os.kill(job.worker_pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        run_id = job.mlflow_run_id
        if cancelled and run_id:
            from nlu.tracking import client

            client(self.tracking_uri).set_terminated(run_id, status="KILLED")

    def shutdown(self) -> None:
        with self._lock:
            job_ids = list(self._workers)
        for job_id in job_ids:
            self.cancel(job_id, "cancelled: the server shut down")


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
        try:
            settings = client_settings(spec.config_yaml)
            if spec.dataset and spec.dataset not in self.datasets:
                raise RequestError(grpc.StatusCode.NOT_FOUND,
                               f"spec.dataset: no registered dataset {spec.dataset!r} (registered: "
                               f"{', '.join(sorted(self.datasets)) or 'none'})")
            if self.runner.at_capacity():  # early, before the upload; checked again on create
                raise RequestError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                               f"{self.runner.max_running} job(s) already running; retry later")
            splits = self._receive_upload(request_iterator, expect_data=not spec.dataset)
        except RequestError as refused:
            context.abort(refused.code, str(refused))

        job_id = uuid.uuid4().hex
        job_dir = self.runner.job_dir(job_id)
        try:
            config = self._job_config(spec, settings, splits, job_dir)
        except NluDataError as error:  # multilingual.bootstrap's JobConfigError names the field
            shutil.rmtree(job_dir, ignore_errors=True)
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"spec.config_yaml: {error}")
        job = self.store.create(job_id, {"dataset": spec.dataset, "regime": config.regime,
                                         "config_yaml": spec.config_yaml},
                                max_active=self.runner.max_running)
        if job is None:  # another submission took the last slot while this one uploaded
            shutil.rmtree(job_dir, ignore_errors=True)
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"{self.runner.max_running} job(s) already running; retry later")
        self.runner.start(job_id, config)
        return training_pb2.SubmitJobResponse(job=_job_message(self.store.get(job_id)))

    def _receive_upload(self, request_iterator, *, expect_data: bool) -> dict[str, list]:
        """Uploaded utterances by split key (``source``, ``target_train``, ``dev``, ``test``)."""
        splits: dict[str, list] = {}
        total = 0
        for position, request in enumerate(request_iterator, start=2):
            if request.WhichOneof("part") != "data":
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"spec: message {position} repeats the spec; only the first may")
            if not expect_data:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               "data: utterances uploaded although spec.dataset names a dataset")
            if request.data.split not in SPLIT_KEYS:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"data.split: message {position} names no split")
            key = SPLIT_KEYS[request.data.split]
            for message in request.data.utterances:
                total += 1
                if total > self.max_upload_utterances:
                    raise RequestError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                   f"data: more than {self.max_upload_utterances} utterances")
                try:
                    utterance = message_to_utterance(message)
                except NluDataError as error:
                    raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"data.utterances[{len(splits.get(key, []))}] ({key}): "
                                   f"{error}") from None
                splits.setdefault(key, []).append(utterance)
        if expect_data and not splits:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           "spec.dataset: name a registered dataset or upload utterances")
        return splits

    def _job_config(self, spec, settings: dict[str, Any], splits: dict[str, list], job_dir: Path):
        """The bootstrap ``JobConfig``: client settings + server-chosen files, folder, store."""
        from multilingual.bootstrap import JobConfigError, parse_config
        from nlu.devices import DeviceConfig

        raw = dict(settings)
        client_data = raw.pop("data", {})
        if spec.dataset:
            data = registered_data(self.datasets[spec.dataset])
        else:
            data = write_uploaded(splits, job_dir / "data")
            languages = {utterance.language for utterance in splits.get("target_train", [])
                         or splits.get("test", [])}
            if len(languages) == 1:
                data["target_language"] = languages.pop()
        raw["data"] = {**data, **client_data}
        if spec.regime:
            raw["regime"] = spec.regime
        raw["tracking"] = {"experiment": DEFAULT_EXPERIMENT, **raw.get("tracking", {})}
        raw["run_dir"] = str(job_dir / RUN_FOLDER)
        config = parse_config(raw, base=job_dir, source_yaml=spec.config_yaml)
        if not DeviceConfig.from_dict(config.model.get("devices")).single_process:
            # DDP relaunches the command line of the process: here, the server's.
            raise JobConfigError("a service job trains in one process (strategy auto, devices "
                                 "1, num_nodes 1); run multi-process jobs with `nlu-bootstrap "
                                 "train`", field="model.devices")
        return config

    def GetJob(self, request, context):
        return training_pb2.GetJobResponse(job=_job_message(self._job(request.job_id, context)))

    def WatchJob(self, request, context):
        job = self._job(request.job_id, context)
        sequence = 0
        while context.is_active():
            finished = self.store.get(job.job_id).finished  # read before the events: none lost
            for event in self.store.events_after(job.job_id, sequence):
                sequence = event.sequence
                yield training_pb2.WatchJobResponse(event=_event_message(event))
            if finished:
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


def client_settings(config_yaml: str) -> dict[str, Any]:
    """Parse ``JobSpec.config_yaml`` and refuse every key outside ``CLIENT_SETTINGS``."""
    try:
        settings = yaml.safe_load(config_yaml) if config_yaml.strip() else {}
    except yaml.YAMLError as error:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                       f"spec.config_yaml: not valid YAML: {error}") from None
    except RecursionError:  # PyYAML's composer recurses once per nesting level
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           "spec.config_yaml: nested too deeply") from None
    if not isinstance(settings, dict):
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, "spec.config_yaml: must be a mapping")
    for key, value in settings.items():
        if key not in CLIENT_SETTINGS:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"spec.config_yaml.{key}: not a client setting (the server sets "
                           f"files, folders and stores); allowed: {', '.join(CLIENT_SETTINGS)}")
        allowed = CLIENT_SETTINGS[key]
        if allowed is not None:
            if not isinstance(value, dict):
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"spec.config_yaml.{key}: must be a mapping")
            for inner in value:
                if inner not in allowed:
                    raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"spec.config_yaml.{key}.{inner}: not a client setting; "
                                   f"allowed: {', '.join(sorted(allowed))}")
    _check_setting_types(settings)
    return settings


def _check_setting_types(settings: dict[str, Any]) -> None:
    """Refuse, at submission, settings of the wrong type and models too big for a shared
    server. The model's own ranges and number types are ``JointModelConfig``'s to check."""
    def refuse(where: str, message: str) -> RequestError:
        return RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"spec.config_yaml.{where}: {message}")

    for section, names in STRING_SETTINGS.items():
        for name in names:
            value = (settings.get(section) or {}).get(name)
            if value is not None and not isinstance(value, str):
                raise refuse(f"{section}.{name}", f"must be a string, got {type_name(value)}")
    language = (settings.get("data") or {}).get("target_language")
    if language is not None:
        try:
            check_language(language)
        except NluDataError as error:
            raise refuse("data.target_language", error.message) from None
    for section in ("model", "finetune_model"):
        model = settings.get(section) or {}
        if not isinstance(model, dict):
            raise refuse(section, "must be a mapping")
        for name in MODEL_FILE_SETTINGS:
            if name in model:
                raise refuse(f"{section}.{name}", "not a client setting (names a server file)")
        limits = {**MODEL_LIMITS, "num_threads": os.cpu_count() or 1}
        for name, limit in limits.items():
            value = model.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and value > limit:
                raise refuse(f"{section}.{name}", f"at most {limit} on this server, got {value}")


def registered_data(path: Path) -> dict[str, Any]:
    """A registered dataset: the ``data:`` section of an operator's YAML, with ``root``
    anchored at the YAML's folder (as ``multilingual.bootstrap.load_config`` does)."""
    document = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    data = dict(document.get("data", document))
    data["root"] = str((Path(path).parent / data.get("root", ".")).resolve())
    return data


def write_uploaded(splits: dict[str, list], folder: Path) -> dict[str, Any]:
    """Write each uploaded split as jsonl; return the ``data:`` section that reads them."""
    from nlu.formats import write_utterances

    folder.mkdir(parents=True, exist_ok=True)
    data: dict[str, Any] = {"root": str(folder)}
    for key, utterances in splits.items():
        write_utterances(utterances, folder / f"{key}.jsonl", "jsonl")
        data[key] = [{"path": f"{key}.jsonl", "format": "jsonl"}]
    return data


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

