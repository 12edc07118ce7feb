"""Crash-safe training: a run killed with SIGKILL at an epoch resumes to exactly the model
the uninterrupted run makes (RNG states in the checkpoint); last.ckpt is written every
epoch; a second process on a live run folder is refused naming the first; temporary files
a killed writer left are removed on the next start."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from nlu.formats import read_utterances
from nlu.model import JointModelConfig
from nlu.rundir import RunDirBusyError, RunDirLock
from nlu.training import ReshuffleEveryEpoch, fit
from shared_data import SHARED_DATA

XSID_DE_VALID = SHARED_DATA / "xsid/xSID-0.7/de.valid.conll"
# dropout and piece dropout draw from the RNGs every step: a resumed run that did not
# restore them would train on other masks
CONFIG = JointModelConfig(embedding_dim=16, hidden_dim=32, num_layers=1, batch_size=8,
                          max_epochs=5, patience=10, lr=1e-2, dropout=0.3, piece_dropout=0.1,
                          vocab_size=300, enable_progress_bar=False, num_threads=1)
KILLED_AT_EPOCH = 3


def data():
    utterances = read_utterances(XSID_DE_VALID, "conll")
    return utterances[:48], utterances[48:64]


def test_last_checkpoint_holds_every_finished_epoch(tmp_path, monkeypatch):
    seen = []
    original = ReshuffleEveryEpoch.on_train_epoch_start

    def record(self, trainer, module):
        if trainer.current_epoch:
            last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
            seen.append((trainer.current_epoch, last["epoch"]))
        original(self, trainer, module)

    monkeypatch.setattr(ReshuffleEveryEpoch, "on_train_epoch_start", record)
    train, dev = data()
    fit(train, dev, CONFIG, run_dir=tmp_path)
    assert seen == [(epoch, epoch - 1) for epoch in range(1, CONFIG.max_epochs)]


KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, sys.argv[2])
    import test_resume
    from nlu.training import ReshuffleEveryEpoch, fit

    original = ReshuffleEveryEpoch.on_train_epoch_start

    def die(self, trainer, module):  # kill -9 once epochs 0 .. N-1 are checkpointed
        if trainer.current_epoch == test_resume.KILLED_AT_EPOCH:
            os.kill(os.getpid(), signal.SIGKILL)
        original(self, trainer, module)

    ReshuffleEveryEpoch.on_train_epoch_start = die
    train, dev = test_resume.data()
    fit(train, dev, test_resume.CONFIG, run_dir=sys.argv[1])
""")


def test_a_run_killed_at_an_epoch_resumes_to_the_uninterrupted_model(tmp_path):
    from pathlib import Path

    train, dev = data()
    uninterrupted = fit(train, dev, CONFIG, run_dir=tmp_path / "uninterrupted")

    run_dir = tmp_path / "killed"
    killed = subprocess.run([sys.executable, "-c", KILLED_RUN, str(run_dir),
                             str(Path(__file__).parent)], capture_output=True, text=True,
                            timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == KILLED_AT_EPOCH - 1
    (run_dir / "checkpoints" / ".last.ckpt.0123456789ab.tmp").write_bytes(b"half a write")

    resumed = fit(train, dev, CONFIG, run_dir=run_dir, resume=True)
    assert not list(run_dir.rglob("*.tmp"))  # the killed writer's leftover is gone
    final = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert final["epoch"] == CONFIG.max_epochs - 1
    expected = uninterrupted.module.state_dict()
    for name, tensor in resumed.module.state_dict().items():
        torch.testing.assert_close(tensor, expected[name], rtol=0, atol=1e-6, msg=name)
    assert resumed.predict(dev) == uninterrupted.predict(dev)


def test_without_the_random_states_a_resumed_run_would_differ(tmp_path, monkeypatch):
    """The control: the same resume with the RNG restore switched off ends elsewhere, so
    the test above checks something."""
    from nlu import training

    train, dev = data()
    config = dataclasses.replace(CONFIG, max_epochs=3)
    uninterrupted = fit(train, dev, config, run_dir=tmp_path / "uninterrupted")
    fit(train, dev, dataclasses.replace(config, max_epochs=2), run_dir=tmp_path / "resumed")
    monkeypatch.setattr(training.RandomState, "load_state_dict", lambda self, state: None)
    resumed = fit(train, dev, config, run_dir=tmp_path / "resumed", resume=True)
    expected = uninterrupted.module.state_dict()
    assert any(not torch.allclose(tensor, expected[name])
               for name, tensor in resumed.module.state_dict().items())


HOLDER = textwrap.dedent("""
    import sys, time
    from nlu.rundir import RunDirLock
    with RunDirLock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(600)
""")


def test_a_run_resumed_with_fewer_epochs_than_it_holds_finishes_at_once(tmp_path):
    # Lightning refuses a checkpoint past max_epochs; a job whose YAML lowered max_epochs
    # after a kill keeps the epochs it has instead
    train, dev = data()
    fit(train, dev, dataclasses.replace(CONFIG, max_epochs=3), run_dir=tmp_path)
    resumed = fit(train, dev, dataclasses.replace(CONFIG, max_epochs=1), run_dir=tmp_path,
                  resume=True)
    assert resumed.training["epochs"] == 3


def test_a_live_run_folder_is_refused_and_a_dead_holder_does_not_block(tmp_path, capsys):
    import yaml

    from service.cli import main

    run_dir = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirBusyError, match=f"process {holder.pid} on "):
            with RunDirLock(run_dir):
                pass
        xsid = SHARED_DATA / "xsid/xSID-0.7"
        job = tmp_path / "job.yaml"
        job.write_text(yaml.safe_dump({
            "model": dataclasses.asdict(CONFIG) | {"max_epochs": 1, "devices": {}},
            "data": {"root": str(xsid), "target_language": "de",
                     "target_train": [{"path": "de.valid.conll", "sample": 16}],
                     "test": [{"path": "de.test.conll", "sample": 8}]},
            "regime": "monolingual", "run_dir": str(run_dir)}), encoding="utf-8")
        arguments = ["train", "--config", str(job), "--resume",
                     "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]
        assert main(arguments) == 2
        assert f"is being trained by process {holder.pid}" in capsys.readouterr().err
    finally:
        holder.kill()  # kill -9: the OS drops the lock with the process
        holder.wait()
    time.sleep(0.1)
    assert main(arguments) == 0
