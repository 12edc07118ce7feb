"""A newcomer's first generator (issue 25): `gan train` ends naming its MLflow run and what it
registered and says when it replaces an earlier run; the gate drops copies of the data the
generator was trained on without `--train`, locally and over gRPC; `augment` without
`--seed` draws one, prints it and keeps it in each id; `models` lists what is registered;
an unknown model lists what exists; Ctrl-C during `gan train` exits 130 saying where it
stopped. The generator memorises 8 utterances, so greedy sampling writes copies of them."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from gan.gate import copy_key
from nlu.jobs import RUN_ID_FILENAME
from nlu.formats import read_utterances, write_utterances
from service.cli import main

REPO = Path(__file__).resolve().parents[1]
DE_VALID = REPO / "experiments/data/xsid/xSID-0.7/de.valid.conll.gz"
MEMO_GAN = ("embedding_dim: 16, tag_dim: 8, condition_dim: 8, hidden_dim: 48, d_hidden_dim: 16, "
            "batch_size: 8, dropout: 0.0, g_lr: 0.02, d_pretrain_steps: 2, "
            "adversarial_steps: 0, eval_samples: 0, max_length: 40")


def gan_job(folder: Path, name: str, settings: str, tracking: str = "") -> Path:
    job = folder / f"{name}.yaml"
    job.write_text(f"data: {{train: train.conll, format: conll, language: de}}\n"
                   f"run_dir: {folder / name}\ngan: {{{MEMO_GAN}, {settings}}}\n"
                   f"tracking: {{experiment: {name}{', ' + tracking if tracking else ''}}}\n")
    return job


def call(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store with the memorising generator memo-gan@prod (trained through the CLI) and an
    NLU model nlu-memo@candidate; returns (folder, tracking URI, training utterances,
    `gan train`'s stdout)."""
    from nlu.tracking import log_model_dir, start_run

    folder = tmp_path_factory.mktemp("newcomer")
    uri = f"sqlite:///{folder}/mlflow.db"
    train = read_utterances(DE_VALID)[:8]
    write_utterances(train, folder / "train.conll", "conll")
    job = gan_job(folder, "memo", "mle_epochs: 40, steps_per_checkpoint: 20",
                  "registered_name: memo-gan, alias: prod")
    code, out, err = call(["gan", "train", "--config", str(job), "--tracking-uri", uri])
    assert code == 0, err
    (folder / "nlu-model").mkdir()
    (folder / "nlu-model" / "weights.txt").write_text("a stand-in for a TrainedNlu folder\n")
    with start_run("nlu-memo", uri):
        log_model_dir(folder / "nlu-model", registered_name="nlu-memo", alias="candidate")
    return folder, uri, train, out


def test_gan_train_ends_naming_its_mlflow_run_and_what_it_registered(store):
    folder, uri, _, out = store
    last = out.strip().splitlines()[-1]
    run_id = json.loads((folder / "memo" / RUN_ID_FILENAME).read_text())["run_id"]
    assert last == (f"MLflow run {run_id} in {uri}; generator: memo-gan@prod "
                    f"(saved in {folder / 'memo' / 'generator'})")


def test_a_saved_generator_keeps_the_keys_of_its_training_data_not_the_sentences(store):
    folder, _, train, _ = store
    saved = (folder / "memo" / "generator" / "train_keys.json").read_text()
    assert json.loads(saved) == sorted({copy_key(utterance) for utterance in train})
    assert train[0].tokens[1] not in saved


def test_the_gate_drops_copies_of_the_generators_training_data_without_train(store, tmp_path):
    folder, uri, train, _ = store
    out = tmp_path / "gated.jsonl"
    code, printed, err = call(["augment", "--generator", "memo-gan@prod", "--tracking-uri", uri,
                               "--sampling", "greedy", "--count", "8", "--gate", "--seed", "1",
                               "--out", str(out)])
    assert code == 0, err
    copies = int(printed.split("'train_copies': ")[1].split(",")[0])
    assert copies > 0
    training = {copy_key(utterance) for utterance in train}
    written = read_utterances(out) if out.read_text().strip() else []  # all may be copies
    assert not {copy_key(utterance) for utterance in written} & training
    assert "Downloading artifacts" not in err  # MLflow's progress bar stays quiet

    # a generator saved before it kept the keys: no pretended check, and a warning saying so
    old = tmp_path / "old-generator"
    shutil.copytree(folder / "memo" / "generator", old)
    (old / "train_keys.json").unlink()
    code, printed, err = call(["augment", "--generator", str(old), "--sampling", "greedy",
                               "--count", "8", "--gate", "--seed", "1", "--out", str(out)])
    assert code == 0 and "'train_copies': 0" in printed
    assert "without its training data's keys" in err


def test_the_gate_over_grpc_drops_copies_of_the_training_data_too(store):
    from service import client
    from service.server import ServerConfig, start_server

    folder, uri, train, _ = store
    config = ServerConfig(tracking_uri=uri, state_dir=folder / "state", address="127.0.0.1:0")
    running = start_server(config, load_in_background=False)
    try:
        running.load_generators()
        with client.connect(f"127.0.0.1:{running.port}") as channel:
            stream = client.augment(channel, "memo-gan@prod", 8, timeout=60, seed=1,
                                    sampling=client.sampling_options("greedy"))
            received = list(stream)
    finally:
        running.stop(grace=0)
    assert stream.gate_report.train_copies > 0
    training = {copy_key(utterance) for utterance in train}
    assert not {copy_key(utterance) for utterance in received} & training


def test_augment_without_a_seed_draws_one_prints_it_and_keeps_it_in_each_id(store, tmp_path):
    _, uri, _, _ = store
    first, again = tmp_path / "first.jsonl", tmp_path / "again.jsonl"
    code, printed, err = call(["augment", "--generator", "memo-gan@prod", "--tracking-uri", uri,
                               "--count", "6", "--out", str(first)])
    assert code == 0, err
    seed = int(err.split("seed ", 1)[1].split(" ", 1)[0])
    assert f"--seed {seed} writes the same again" in err
    assert printed.strip().endswith(f"(jsonl, seed {seed})")
    assert all(f"-seed{seed}-" in utterance.id for utterance in read_utterances(first))
    assert call(["augment", "--generator", "memo-gan@prod", "--tracking-uri", uri,
                 "--count", "6", "--seed", str(seed), "--out", str(again)])[0] == 0
    assert again.read_text() == first.read_text()
    _, _, other = call(["augment", "--generator", "memo-gan@prod", "--tracking-uri", uri,
                        "--count", "6", "--out", str(again)])
    assert f"seed {seed} " not in other  # another call, another seed


def test_augment_prints_progress_while_it_generates(store, tmp_path, monkeypatch):
    from service.commands import augment

    _, uri, _, _ = store
    monkeypatch.setattr(augment, "PROGRESS_SECONDS", 0.0)
    code, _, err = call(["augment", "--generator", "memo-gan@prod", "--tracking-uri", uri,
                         "--count", "3", "--gate", "--seed", "2", "--out",
                         str(tmp_path / "x.conll")])
    assert code == 0
    assert "augment: 1 of 3 written, " in err and " sampled after " in err


def test_models_lists_generators_and_nlu_models_with_their_aliases(store):
    _, uri, _, _ = store
    code, printed, _ = call(["models", "--tracking-uri", uri])
    assert code == 0
    rows = [line.split() for line in printed.strip().splitlines()]
    assert rows[0] == ["kind", "name", "latest", "aliases"]
    assert ["generator", "memo-gan", "1", "prod", "->", "v1"] in rows
    assert ["nlu", "nlu-memo", "1", "candidate", "->", "v1"] in rows
    assert printed.strip().endswith(f"2 registered model(s) in {uri}")
    code, printed, _ = call(["models", "--tracking-uri", uri, "--kind", "nlu"])
    assert "memo-gan" not in printed and "nlu-memo" in printed


def test_models_and_a_wrong_name_over_grpc_list_the_servers_generators(store):
    from service.server import ServerConfig, start_server

    folder, uri, _, _ = store
    config = ServerConfig(tracking_uri=uri, state_dir=folder / "state2", address="127.0.0.1:0")
    running = start_server(config, load_in_background=False)
    try:
        running.load_generators()
        code, printed, err = call(["models", "--server", f"127.0.0.1:{running.port}"])
        missing = call(["augment", "--server", f"127.0.0.1:{running.port}", "--generator",
                        "gan-xsid-de@rollout", "--seed", "1", "--out", str(folder / "x.conll")])
    finally:
        running.stop(grace=0)
    assert code == 0, err
    assert printed.split("\n")[1].split() == ["generator", "memo-gan", "1", "prod", "->", "v1"]
    assert re.search(rf"^\d registered model\(s\) on 127.0.0.1:{running.port}",
                     printed.strip().splitlines()[-1])
    assert missing[0] == 2
    assert missing[2].strip().splitlines()[-1].endswith(
        "no model 'gan-xsid-de@rollout' in the server's store; its registered generators: "
        "memo-gan@prod")


def test_an_unknown_model_lists_the_aliases_that_exist(store, tmp_path):
    _, uri, _, _ = store
    code, _, err = call(["augment", "--generator", "gan-xsid-de@rollout", "--tracking-uri", uri,
                         "--seed", "1", "--out", str(tmp_path / "x.conll")])
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        f"error: no model 'gan-xsid-de@rollout' in {uri}; registered: memo-gan@prod "
        "(generator), nlu-memo@candidate (nlu)")


def test_a_fresh_gan_train_over_an_earlier_run_says_it_replaces_it(store, tmp_path):
    folder, _, _, _ = store
    shutil.copy(folder / "train.conll", tmp_path / "train.conll")
    job = gan_job(tmp_path, "again", "mle_epochs: 1, steps_per_checkpoint: 1",
                  "registered_name: again-gan, alias: prod")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    code, _, err = call(["gan", "train", "--config", str(job), "--tracking-uri", uri])
    assert code == 0 and "earlier run" not in err
    code, _, err = call(["gan", "train", "--config", str(job), "--tracking-uri", uri])
    assert code == 0
    assert (f"note: {tmp_path / 'again'} holds an earlier run: training from scratch replaces "
            "it and moves again-gan@prod to the new version (--resume continues it instead)") in err


def test_ctrl_c_during_gan_train_exits_130_saying_where_it_stopped(store, tmp_path):
    import mlflow

    folder, _, _, _ = store
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN where the tests run in the background
    shutil.copy(folder / "train.conll", tmp_path / "train.conll")
    job = gan_job(tmp_path, "long", "mle_epochs: 20000, steps_per_checkpoint: 2")
    run_id_file = tmp_path / "long" / RUN_ID_FILENAME  # written just before the fit starts
    running = threading.Event()

    def interrupt_while_it_trains():
        deadline = time.monotonic() + 120
        while not run_id_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(2)
        if running.is_set():  # only while main() trains: pytest must not get the signal
            os.kill(os.getpid(), signal.SIGINT)

    sender = threading.Thread(target=interrupt_while_it_trains)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    running.set()
    sender.start()
    try:
        code, _, err = call(["gan", "train", "--config", str(job), "--tracking-uri", uri])
    finally:
        running.clear()
        sender.join()
    assert code == 130
    line = err.strip().splitlines()[-1]
    # last.ckpt is written every steps_per_checkpoint steps: a later epoch is saved
    assert re.fullmatch(rf"stopped at epoch (0 \(none saved yet: --resume starts over\)|"
                        rf"[1-9]\d* \(saved in {tmp_path / 'long'}\)); continue with --resume",
                        line), line
    assert "Traceback" not in err
    run_id = json.loads(run_id_file.read_text())["run_id"]
    assert mlflow.MlflowClient(uri).get_run(run_id).info.status == "FAILED"
    assert signal.getsignal(signal.SIGINT) is before  # the handler is given back


def test_the_gan_progress_bar_names_the_phase_in_its_own_units():
    from gan.config import GanConfig
    from gan.module import GanModule

    # only the schedule: no models needed (5 batches per MLE epoch)
    module = SimpleNamespace(config=GanConfig(mle_epochs=2, d_pretrain_steps=3,
                                              adversarial_steps=4), phase_ends=(10, 13, 17))
    module.phase = lambda step=None: GanModule.phase(module, step)
    module.phase_description = lambda step: GanModule.phase_description(module, step)
    assert [module.phase_description(step) for step in (0, 4, 5, 9, 10, 12, 13, 16, 17)] == [
        "MLE epoch 1/2", "MLE epoch 1/2", "MLE epoch 2/2", "MLE epoch 2/2", "D step 1/3",
        "D step 3/3", "adversarial step 1/4", "adversarial step 4/4", "done"]
