"""A long command stopped by a scheduler (issue 25): SIGTERM during `train` exits 143 (not 0)
saying at which epoch it stopped and how to go on; `--resume` then continues, and says so
when there is nothing to resume; neither run prints Lightning's or MLflow's chatter. Real
subprocesses, a tiny model; `experiment run` counts its runs and estimates the time left."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
XSID = REPO / "experiments/data/xsid/xSID-0.7"
NOISE = ["litlogger", "LeafSpec", "GPU available", "TPU available", "Checkpoint directory",
         "Downloading artifacts", "Creating initial MLflow database", "Traceback"]


def job(tmp_path: Path, max_epochs: int) -> Path:
    path = tmp_path / "job.yaml"
    path.write_text(
        f"model: {{embedding_dim: 16, hidden_dim: 32, num_layers: 1, batch_size: 8, "
        f"max_epochs: {max_epochs}, patience: 1000, lr: 0.01, vocab_size: 300, "
        "enable_progress_bar: false, num_threads: 1, devices: {}}\n"
        f"data: {{root: {XSID}, target_language: de, "
        "target_train: [{path: de.valid.conll.gz, sample: 64}], "
        "test: [{path: de.test.conll.gz, sample: 8}]}\n"
        f"regime: monolingual\nrun_dir: {tmp_path / 'run'}\n")
    return path


def cli(*argv: str) -> list[str]:
    return [sys.executable, "-m", "service.cli", *argv]


def environment() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


def test_sigterm_during_train_exits_143_and_resume_goes_on_quietly(tmp_path):
    store = ["--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]
    checkpoint_dir = tmp_path / "run"
    process = subprocess.Popen(cli("train", "--config", str(job(tmp_path, 10_000)), "--resume",
                                   *store), cwd=tmp_path, env=environment(),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 240
        while not list(checkpoint_dir.rglob("last.ckpt")) and time.monotonic() < deadline:
            assert process.poll() is None, process.stdout.read()
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 143, output
    assert output.startswith(f"--resume: no checkpoint in {checkpoint_dir}; starting from epoch 0")
    last = output.strip().splitlines()[-1]
    match = re.fullmatch(rf"stopped at epoch (\d+) \(saved in {checkpoint_dir}\); "
                         r"continue with --resume", last)
    assert match and int(match.group(1)) >= 1, output
    assert not [noise for noise in NOISE if noise in output], output

    # the same job with fewer epochs: resumes from the checkpoint and finishes at once
    resumed = subprocess.run(cli("train", "--config", str(job(tmp_path, 1)), "--resume", *store),
                             cwd=tmp_path, env=environment(), capture_output=True, text=True,
                             timeout=300)
    output = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, output
    assert "no checkpoint" not in output
    assert re.search(r"^MLflow run \w+ in sqlite:///\S+; model: \w+$", resumed.stdout.strip(),
                     re.MULTILINE) and resumed.stdout.strip().splitlines()[-1].startswith("MLflow run")
    assert not [noise for noise in NOISE if noise in output], output


def test_experiment_run_says_run_n_of_m_with_the_time_left(tmp_path, monkeypatch, caplog):
    """The real runner's log lines through the CLI's progress filter (runs stubbed out)."""
    import experiments.runner as runner
    from experiments.runner import load_study, plan, run_study
    from service.commands.experiment import StudyProgress

    study = load_study(REPO / "experiments/study_bootstrap.yaml", "smoke")
    runs = list(plan(study))
    finished = {(runs[1][0].name, runs[1][1].name, str(runs[1][2]))}
    monkeypatch.setattr(runner, "finished_runs", lambda *_: finished)
    monkeypatch.setattr(runner, "run_one", lambda *_, **__: None)
    clock = iter(range(0, 6000, 300))  # every run takes 5 minutes
    progress = StudyProgress(len(runs), len(finished), clock=lambda: next(clock))
    log = logging.getLogger("experiments.runner")
    log.addFilter(progress)
    try:
        with caplog.at_level(logging.INFO, logger="experiments.runner"):
            run_study(study, tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
                      work_dir=tmp_path / "work")
    finally:
        log.removeFilter(progress)
    lines = [record.getMessage() for record in caplog.records]
    total = len(runs)
    assert len(lines) == total >= 4
    assert lines[0].startswith(f"run 1 of {total}: ") and "left" not in lines[0]
    assert lines[1].startswith(f"skip 2 of {total}: ") and lines[1].endswith(": finished")
    # after one run of 5 min, total - 2 runs are left to run (the third is starting)
    assert lines[2] == (f"run 3 of {total}: {runs[2][0].name} / {runs[2][1].name} / seed "
                        f"{runs[2][2]} (about {5 * (total - 2)} min left)")
    assert lines[-1].endswith("(about 5 min left)")
    assert progress.where() == f"run {total} of {total}"


def test_an_interrupt_that_a_library_drops_comes_again():
    """Raised inside a weakref callback during garbage collection, an ``Interrupted`` is
    printed and dropped by the interpreter: the signal is sent again until one gets out."""
    from service.commands import Interrupted, interruptible

    started = time.monotonic()
    with pytest.raises(Interrupted) as stopped:
        with interruptible():
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.5)
            except Interrupted:
                pass  # what the interpreter does with it in a weakref callback
            while time.monotonic() - started < 10:  # the job goes on
                time.sleep(0.01)
    assert stopped.value.exit_code == 130 and time.monotonic() - started < 5


def test_the_resend_does_not_cut_short_the_cleanup_of_an_interrupt_on_its_way_out(monkeypatch):
    """An ``Interrupted`` that got out is not sent again while the cleanup it passes through
    runs (there the MLflow run is marked FAILED; CI saw it left RUNNING on a slow machine)."""
    from service import commands
    from service.commands import Interrupted, interruptible

    monkeypatch.setattr(commands, "RESEND_SECONDS", 0.05)
    cleaned_up = []
    with pytest.raises(Interrupted) as stopped:
        with interruptible():
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)
            finally:
                time.sleep(0.5)  # ten resend periods
                cleaned_up.append(True)
    assert cleaned_up and stopped.value.exit_code == 130


def test_a_second_ctrl_c_still_stops_a_cleanup(monkeypatch):
    """Only the resend waits for the cleanup: a user who presses Ctrl-C again is obeyed."""
    from service import commands
    from service.commands import Interrupted, interruptible

    monkeypatch.setattr(commands, "RESEND_SECONDS", 60)
    cleaned_up = []
    with pytest.raises(Interrupted):
        with interruptible():
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(5)
            finally:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.5)
                cleaned_up.append(True)
    assert not cleaned_up


def test_an_interrupt_waits_for_the_mlflow_write_it_lands_in(tmp_path):
    """Ctrl-C inside an MLflow sqlite write (Lightning's logger logging a metric) stops the
    job once the write is done. Cut in half, the write was lost, or (seen in CI) it kept the
    database locked and the run stayed RUNNING where it should be FAILED."""
    import mlflow
    import sqlalchemy

    from service.commands import Interrupted, interruptible

    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    run_id = client.create_run(client.create_experiment("signals")).info.run_id
    sent = []

    def interrupt_mid_write(connection, cursor, statement, *rest):
        if "latest_metrics" in statement and not sent:  # the metric row is written by now
            sent.append(statement)
            os.kill(os.getpid(), signal.SIGINT)

    sqlalchemy.event.listen(sqlalchemy.engine.Engine, "before_cursor_execute", interrupt_mid_write)
    try:
        with pytest.raises(Interrupted) as stopped:
            with interruptible():
                try:
                    client.log_metric(run_id, "loss", 0.5)
                    time.sleep(5)
                finally:
                    client.set_terminated(run_id, "FAILED")  # what nlu.jobs.TrackedRun does
    finally:
        sqlalchemy.event.remove(sqlalchemy.engine.Engine, "before_cursor_execute",
                                interrupt_mid_write)
    assert sent and stopped.value.exit_code == 130
    run = client.get_run(run_id)
    assert run.info.status == "FAILED" and run.data.metrics == {"loss": 0.5}
