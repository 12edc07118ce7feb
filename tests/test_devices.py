"""Device options (``nlu.devices.DeviceConfig``) in configs and on the command line, and a
real two-process DDP training of the joint model on the CPU (gloo) that must match the
single-process run and log exactly one MLflow run."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nlu.devices import DeviceConfig, is_primary_process, with_devices
from shared_data import SHARED_DATA

REPO = Path(__file__).resolve().parents[1]


def test_defaults_pick_the_device_but_keep_one_process():
    assert DeviceConfig().trainer_kwargs() == {"accelerator": "auto", "devices": 1,
                                               "strategy": "auto", "num_nodes": 1,
                                               "precision": "32-true"}
    assert DeviceConfig().single_process
    assert not DeviceConfig(strategy="ddp", devices=2).single_process


@pytest.mark.parametrize("values, field", [
    ({"accelerator": "tpu9"}, "accelerator"), ({"devices": 0}, "devices"),
    ({"num_nodes": 0}, "num_nodes"), ({"precision": "8-bit"}, "precision"),
    ({"device": 1}, "device")])
def test_bad_values_are_named(values, field):
    with pytest.raises(ValueError, match=field):
        DeviceConfig.from_dict(values)


def test_model_configs_carry_devices_from_yaml_and_json():
    from gan.config import GanConfig
    from nlu.model import JointModelConfig

    config = JointModelConfig.from_dict({"devices": {"accelerator": "cpu", "precision": "bf16-mixed"}})
    assert config.devices == DeviceConfig(accelerator="cpu", precision="bf16-mixed")
    assert JointModelConfig.from_dict(config.to_dict()) == config
    assert GanConfig.from_dict(GanConfig(devices={"accelerator": "cpu"}).to_dict()).devices.accelerator == "cpu"


def test_the_gan_refuses_more_than_one_process():
    from gan.config import GanConfig

    with pytest.raises(ValueError, match="the GAN trains in one process"):
        GanConfig(devices={"strategy": "ddp", "devices": 2})


def test_cli_flags_override_the_config():
    from service.cli import build_parser

    args = build_parser("train").parse_args(
        ["train", "--config", "job.yaml", "--accelerator", "cpu", "--devices", "2",
         "--strategy", "ddp", "--num-nodes", "1", "--precision", "32-true"])
    from nlu.devices import device_overrides

    overrides = device_overrides(args)
    assert with_devices({"lr": 0.1}, overrides) == {"lr": 0.1, "devices": {
        "accelerator": "cpu", "devices": 2, "strategy": "ddp", "num_nodes": 1,
        "precision": "32-true"}}
    with pytest.raises(ValueError, match="devices"):
        with_devices({}, {"devices": 0})


def test_bad_device_flags_exit_with_code_2(tmp_path, capsys):
    from service.cli import main

    job = tmp_path / "gan.yaml"
    job.write_text("data: {train: x.conll}\n", encoding="utf-8")
    assert main(["gan", "train", "--config", str(job), "--num-nodes", "0"]) == 2
    assert "num_nodes" in capsys.readouterr().err


def test_rank_detection(monkeypatch):
    for name in ("RANK", "LOCAL_RANK", "NODE_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert is_primary_process()
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert not is_primary_process()
    monkeypatch.setenv("RANK", "0")  # torchrun's global rank wins
    assert is_primary_process()


def _train(tmp_path: Path, name: str, tracking_uri: str, *device_flags: str) -> None:
    """``nlu-bootstrap train`` of a tiny job (36 utterances, no dropout: the runs must agree)."""
    xsid = SHARED_DATA / "xsid" / "xSID-0.7"
    job = {"model": {"embedding_dim": 16, "hidden_dim": 16, "num_layers": 1, "vocab_size": 300,
                     "batch_size": 8, "max_epochs": 3, "lr": 0.01, "dropout": 0.0,
                     "enable_progress_bar": False, "num_threads": 1, "patience": 5},
           # sample: intent-stratified, at least one per intent: 18 + 18 utterances
           "data": {"root": str(xsid), "source": [{"path": "en.valid.conll", "sample": 16}],
                    "target_language": "de",
                    "target_train": [{"path": "de.valid.conll", "sample": 16}],
                    "dev": [{"path": "en.test.conll", "sample": 16}],
                    "test": [{"path": "de.test.conll", "sample": 16}]},
           "regime": "mixed", "tracking": {"experiment": name},
           "run_dir": str(tmp_path / name)}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(job), encoding="utf-8")
    environment = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONWARNINGS": "ignore"}
    for variable in ("RANK", "LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_PORT"):
        environment.pop(variable, None)
    # Lightning's ddp re-runs this command line once per extra process: a real subprocess.
    subprocess.run([sys.executable, "-m", "service.cli", "train", "--config", str(path),
                    "--tracking-uri", tracking_uri, "--accelerator", "cpu", *device_flags],
                   cwd=tmp_path, env=environment, check=True, timeout=240,
                   stdout=subprocess.DEVNULL)


def test_ddp_on_two_cpu_processes_matches_one_process_and_logs_one_run(tmp_path):
    from nlu.tracking import client

    tracking_uri = f"sqlite:///{tmp_path}/mlflow.db"
    _train(tmp_path, "single", tracking_uri, "--devices", "1")
    _train(tmp_path, "ddp", tracking_uri, "--devices", "2", "--strategy", "ddp")

    store = client(tracking_uri)
    runs = {}
    for name in ("single", "ddp"):
        experiment = store.get_experiment_by_name(name)
        found = store.search_runs([experiment.experiment_id])
        assert len(found) == 1, f"{name}: {len(found)} runs"  # rank 1 logs nothing
        runs[name] = found[0]
    assert runs["ddp"].data.params["model.devices.strategy"] == "ddp"
    assert runs["ddp"].data.params["devices.devices"] == "2"
    single, ddp = runs["single"].data.metrics, runs["ddp"].data.metrics
    # Every process takes half of each batch: the same steps, up to float rounding.
    assert ddp["train_loss"] == pytest.approx(single["train_loss"], rel=0.02)
    for name in ("test/all/intent_acc", "test/all/slot_f1", "dev/all/intent_acc"):
        assert abs(ddp[name] - single[name]) <= 0.07, name
    assert not (tmp_path / "lightning_logs").exists()
