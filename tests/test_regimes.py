"""The four transfer regimes and the "bootstrap a new language" job, end to end on a handful
of real xSID utterances with a tiny model (a few seconds per job)."""

from pathlib import Path

import pytest
import yaml

from multilingual.bootstrap import JobConfigError, load_config, load_data, parse_config, run
from multilingual.regimes import REGIME_NAMES, train_regime
from nlu.formats import read_utterances
from nlu.utterance import Utterance
from shared_data import SHARED_DATA

XSID = SHARED_DATA / "xsid"
TINY_MODEL = {"embedding_dim": 16, "hidden_dim": 16, "num_layers": 1, "vocab_size": 300,
              "batch_size": 8, "max_epochs": 2, "lr": 0.01, "enable_progress_bar": False,
              "num_threads": 1}


def job_yaml(tmp_path: Path, regime: str, tracking_uri: str = "", **changes) -> Path:
    # ``changes`` replace whole top-level sections (or add unknown keys, to test errors)
    """A tiny job: 24 English source, 12 German target utterances; 8 test, 8 dev."""
    config = {
        "model": TINY_MODEL,
        "finetune_model": {"freeze_encoder": True},
        "data": {
            "root": str(XSID / "xSID-0.7"),
            "source": [{"path": "en.valid.conll", "sample": 24}],
            "target_language": "de",
            "target_train": [{"path": "de.valid.conll", "sample": 12}],
            "dev": [{"path": "en.test.conll", "sample": 8}],
            "test": [{"path": "de.test.conll", "sample": 8}],
        },
        "regime": regime,
        "tracking": {"uri": tracking_uri or None, "experiment": f"tiny-{tmp_path.name}"},
        "run_dir": str(tmp_path / "run"),
    }
    config.update(changes)
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


@pytest.mark.parametrize("regime", REGIME_NAMES)
def test_each_regime_runs_end_to_end_into_mlflow(regime, tmp_path, tracking_uri):
    from nlu.tracking import client, download_model
    from nlu.training import TrainedNlu

    config = load_config(job_yaml(tmp_path, regime, tracking_uri))
    result = run(config)

    run_info = client(result["tracking_uri"]).get_run(result["run_id"])
    assert run_info.data.params["regime"] == regime
    assert run_info.data.params["model.encoder"] == "bilstm"
    metrics = run_info.data.metrics
    for name in ("test/all/intent_acc", "test/de/slot_f1", "test/de/semer_se",
                 "dev/en/exact_match", "test/de/domain_acc", "data/target"):
        assert name in metrics
    # sample: 12 is intent-stratified with at least one of each of the 16 intents: 17 in all
    assert metrics["data/target"] == (0 if regime == "zeroshot" else 17)
    history = client(result["tracking_uri"]).get_metric_history(
        result["run_id"], "finetune-train_loss" if regime == "finetune" else "train_loss")
    assert len(history) >= 2  # per step/epoch curves from training

    model_dir = download_model(result["run_id"], result["tracking_uri"], tmp_path / "download")
    loaded = TrainedNlu.load(model_dir)
    assert (model_dir / "domain.joblib").exists()
    test = read_utterances(XSID / "xSID-0.7" / "de.test.conll")[:5]
    predicted = loaded.predict(test)
    assert [p.tokens for p in predicted] == [t.tokens for t in test]
    assert all(isinstance(p, Utterance) and p.intent in loaded.intents for p in predicted)


@pytest.mark.filterwarnings("ignore:Checkpoint directory .* exists and is not empty")
def test_resume_continues_the_same_mlflow_run_from_the_last_checkpoint(tmp_path, tracking_uri):
    from nlu.tracking import client

    # A job stopped after its first epoch, then resumed with the full budget of two.
    stopped = load_config(job_yaml(tmp_path, "mixed", tracking_uri,
                                   model={**TINY_MODEL, "max_epochs": 1}))
    first = run(stopped)
    resumed = run(load_config(job_yaml(tmp_path, "mixed", tracking_uri)), resume=True)
    assert resumed["run_id"] == first["run_id"]
    mlflow_client = client(first["tracking_uri"])
    experiment = mlflow_client.get_experiment_by_name(f"tiny-{tmp_path.name}")
    assert len(mlflow_client.search_runs([experiment.experiment_id])) == 1
    epochs = mlflow_client.get_metric_history(first["run_id"], "train_loss")
    assert len(epochs) == 2  # one epoch before the stop, one after resuming (not 1 + 2)


def test_finetune_keeps_its_pretrained_model_and_freezes_the_encoder(tmp_path):
    from nlu.model import JointModelConfig

    source = read_utterances(XSID / "xSID-0.7" / "en.valid.conll")[:24]
    target = read_utterances(XSID / "xSID-0.7" / "de.valid.conll")[:12]
    config = JointModelConfig(**TINY_MODEL)
    frozen = JointModelConfig(**{**TINY_MODEL, "freeze_encoder": True})
    model = train_regime("finetune", source, target, config, run_dir=tmp_path,
                         finetune_config=frozen)
    from nlu.training import TrainedNlu

    pretrained = TrainedNlu.load(tmp_path / "pretrained")
    for before, after in zip(pretrained.module.encoder_modules(), model.module.encoder_modules()):
        for name, weight in before.state_dict().items():
            assert weight.equal(after.state_dict()[name]), name
    assert not pretrained.module.intent_classifier.weight.equal(
        model.module.intent_classifier.weight[: len(pretrained.intents)])  # the heads trained
    # German labels the English sample lacks are still in the fine-tuned model
    assert {u.intent for u in target} <= set(model.intents)


@pytest.mark.parametrize("change, field", [
    ({"regime": "transfer"}, "regime"),
    ({"model": {"encoder": "gru"}}, "model"),
    ({"model": {"hidden_size": 3}}, "model.hidden_size"),
    ({"colour": "blue"}, "config"),
    ({"tracking": {"alias": "prod"}}, "tracking.alias"),
])
def test_config_errors_name_the_field(change, field, tmp_path):
    with pytest.raises(JobConfigError) as caught:
        change = dict(change)
        load_config(job_yaml(tmp_path, change.pop("regime", "mixed"), **change))
    assert caught.value.field == field
    assert caught.value.path == str(tmp_path / "job.yaml")


def test_data_errors_name_the_field(tmp_path):
    raw = yaml.safe_load(job_yaml(tmp_path, "mixed").read_text())
    raw["data"]["test"] = ["xx.test.conll"]
    with pytest.raises(JobConfigError, match="does not exist") as caught:
        parse_config(raw)
    assert caught.value.field == "data.test[0].path"
    raw = yaml.safe_load(job_yaml(tmp_path, "monolingual").read_text())
    del raw["data"]["target_train"]
    with pytest.raises(JobConfigError) as caught:
        parse_config(raw)
    assert caught.value.field == "data.target_train"
    zeroshot = parse_config(raw | {"regime": "zeroshot"})
    with pytest.raises(JobConfigError, match="needs target data"):
        zeroshot.with_regime("mixed")


def test_how_much_target_data_the_job_uses(tmp_path):
    from collections import Counter

    raw = yaml.safe_load(job_yaml(tmp_path, "mixed").read_text())
    raw["data"]["target_train"] = ["de.valid.conll"]
    every = load_data(parse_config(raw).data).target
    raw["data"]["target_per_intent"] = 2
    few = load_data(parse_config(raw).data).target
    assert len(every) == 300
    available = Counter(u.intent for u in every)
    assert Counter(u.intent for u in few) == {intent: min(2, count)
                                              for intent, count in available.items()}
    raw["data"]["target_fraction"] = 0.5
    with pytest.raises(JobConfigError, match="not both"):
        parse_config(raw)


def test_cli_train_adds_target_data_beside_the_configs_and_logs_where_from(
        tmp_path, tracking_uri, capsys, monkeypatch):
    import re

    from mlflow import MlflowClient

    from nlu.formats import write_utterances
    from service.cli import main

    config = job_yaml(tmp_path, "mixed", tracking_uri)
    german = read_utterances(XSID / "xSID-0.7" / "de.valid.conll")[-5:]
    write_utterances(german, tmp_path / "de.refill.jsonl", "jsonl")
    monkeypatch.chdir(tmp_path)  # the file is named relative to the current folder
    assert main(["train", "--config", str(config),
                 "--add-target-train", "de.refill.jsonl"]) == 0
    run_id = re.search(r"MLflow run (\w+)", capsys.readouterr().out).group(1)
    run = MlflowClient(tracking_uri).get_run(run_id)
    assert run.data.metrics["data/target"] == len(load_data(load_config(config).data).target) + 5
    assert str(tmp_path / "de.refill.jsonl") in run.data.params["data.target_train"]


@pytest.mark.parametrize("changes, added, message", [
    ({}, "missing.conll", "--add-target-train: no such file or folder: missing.conll"),
    ({"target_per_intent": 2}, "de.refill.jsonl", "the config samples its target data"),
    ({}, "en.refill.jsonl", "target_train holds languages ['en'], not only 'de'"),
])
def test_cli_train_refuses_added_target_data_that_does_not_fit_with_exit_2(
        tmp_path, capsys, monkeypatch, changes, added, message):
    from nlu.formats import write_utterances
    from service.cli import main

    config = job_yaml(tmp_path, "mixed")
    raw = yaml.safe_load(config.read_text())
    raw["data"].update(changes)
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    for language in ("de", "en"):
        write_utterances(read_utterances(XSID / "xSID-0.7" / f"{language}.valid.conll")[:3],
                         tmp_path / f"{language}.refill.jsonl", "jsonl")
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--config", str(config), "--add-target-train", added]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and "Traceback" not in captured.err


def test_cli_train_runs_the_job_with_a_regime_override(tmp_path, tracking_uri, capsys):
    from service.cli import main

    config = job_yaml(tmp_path, "mixed")
    assert main(["train", "--config", str(config), "--tracking-uri", tracking_uri,
                 "--regime", "zeroshot"]) == 0
    printed = capsys.readouterr().out
    assert "regime zeroshot, target de" in printed and "MLflow run" in printed
    assert main(["train", "--config", str(tmp_path / "missing.yaml")]) == 2  # typed error
