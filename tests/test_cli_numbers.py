"""Every numeric flag of serve, data and experiment run (augment's are in
test_service_augment.py) refuses inf, NaN, negatives, 0 where it makes no sense and the
type's extremes with a usage error naming the flag and exit code 2, before anything runs;
ServerConfig checks the same settings for library callers."""

from __future__ import annotations

import math

import pytest

from service.cli import main
from service.commands.serve import usable_cpus
from service.server import ServerConfig
from shared_data import SHARED_DATA

DATA = str(SHARED_DATA / "xsid/xSID-0.7/de.valid.conll")
STUDY = "experiments/study_bootstrap.yaml"
BAD = {"int": ["-1", "0", "nan", "inf", "1.5", str(2 ** 63)], "fraction": ["0", "-0.5", "1.5",
                                                                         "nan", "inf", "-inf"]}


def cases():
    serve = ["--max-count", "--max-streams", "--max-jobs", "--processes", "--torch-threads",
             "--max-catalogue-values"]
    for flag in serve:
        for value in BAD["int"]:
            yield ["serve", flag, value], flag
    for value in ["-1", "70000", "nan"]:
        yield ["serve", "--port", value], "--port"
    yield ["serve", "--processes", str(usable_cpus() + 1)], "--processes"  # took a host down
    for value in ["0", "-1", "nan", "inf"]:
        yield ["serve", "--call-budget-seconds", value], "--call-budget-seconds"
    for value in ["-1", "nan", "inf"]:
        yield ["serve", "--grace", value], "--grace"
    for value in ["0", "-3", "nan"]:
        yield ["data", "stats", DATA, "--top", value], "--top"
    for value in ["-1", "inf"]:
        yield ["data", "validate", DATA, "--show", value], "--show"
    for value in BAD["int"][:-1]:  # any large K works: it keeps every utterance
        yield ["data", "sample", DATA, "--per-intent", value, "--seed", "1", "--out", "x"], \
            "--per-intent"
    for value in BAD["fraction"]:
        yield ["data", "sample", DATA, "--fraction", value, "--seed", "1", "--out", "x"], \
            "--fraction"
    for value in ["-1", "nan", str(2 ** 63)]:
        yield ["data", "sample", DATA, "--fraction", "0.5", "--seed", value, "--out", "x"], \
            "--seed"
    for value in ["0", "-1", "nan"]:
        yield ["augment", "--generator", "g@a", "--server", "127.0.0.1:1", "--timeout", value,
               "--out", "x"], "--timeout"
    for value in ["-0.1", "1.5", "nan", "inf"]:
        yield ["augment", "--method", "refill", "--data", "x", "--catalogue", "y",
               "--catalogue-share", value, "--out", "x.jsonl"], "--catalogue-share"


@pytest.mark.parametrize("argv, flag", list(cases()), ids=lambda value: " ".join(value)
                         if isinstance(value, list) else value)
def test_a_bad_number_is_a_usage_error_naming_the_flag(argv, flag, capsys, tmp_path,
                                                       monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may be written: any output would land here
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert f"argument {flag}: " in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("seeds", ["-1", str(2 ** 32)])
def test_study_seeds_out_of_range_are_refused_before_the_first_run(seeds, capsys, tmp_path):
    from pathlib import Path

    study = Path(__file__).resolve().parents[1] / STUDY
    assert main(["experiment", "run", str(study), "--profile", "smoke", "--seeds", seeds,
                 "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db",
                 "--work-dir", str(tmp_path / "work")]) == 2
    assert f"seed: must be in [0, 4294967295], got {seeds}" in capsys.readouterr().err
    assert not (tmp_path / "work").exists() and not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize("field, value", [
    ("max_augment_count", 0), ("max_augment_count", 2 ** 31), ("max_augment_streams", -1),
    ("max_running_jobs", 0), ("torch_threads", 0), ("threads", 1.5), ("max_catalogue_values", 0),
    ("call_budget_seconds", 0.0), ("call_budget_seconds", math.inf),
    ("call_budget_seconds", math.nan), ("call_budget_seconds", -1.0)])
def test_server_config_refuses_out_of_range_settings(field, value, tmp_path):
    with pytest.raises(ValueError, match=f"^{field}: must be"):
        ServerConfig(tracking_uri="sqlite:///x.db", state_dir=tmp_path, **{field: value})


@pytest.mark.parametrize("setting", ["max_epochs: -1", "lr: .nan", "batch_size: 0",
                                     "dropout: 1.0", "seed: -5"])
def test_train_config_out_of_range_exits_2_naming_the_field(setting, capsys, tmp_path):
    job = tmp_path / "job.yaml"
    job.write_text(f"model: {{{setting}}}\n"
                   f"data: {{root: {SHARED_DATA / 'xsid/xSID-0.7'}, target_language: de,\n"
                   "       target_train: [{path: de.valid.conll}], test: [{path: de.test.conll}]}\n"
                   f"run_dir: {tmp_path / 'run'}\n", encoding="utf-8")
    assert main(["train", "--config", str(job),
                 "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]) == 2
    assert setting.split(":")[0] in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
