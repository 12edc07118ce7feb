"""Tiny end-to-end GAN training on 50 real xSID German utterances, for each reward type."""

from __future__ import annotations

import dataclasses
import functools
import json
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from gan.augment import Augmenter, _spares
from gan.gate import GateConfig
from gan.sampling import SamplingConfig
from gan.config import GanConfig
from gan.training import train_gan as train_gan_with_bar
from nlu.formats import read_utterances
from nlu.jobs import RUN_ID_FILENAME, TrackingConfig
from nlu.utterance import Utterance, check_iob2
from shared_data import SHARED_DATA

XSID_DE_VALID = SHARED_DATA / "xsid/xSID-0.7/de.valid.conll"
train_gan = functools.partial(train_gan_with_bar, progress_bar=False)


@pytest.fixture(scope="module")
def utterances() -> list[Utterance]:
    return read_utterances(XSID_DE_VALID, "conll")


def tiny_config(**changes) -> GanConfig:
    settings = dict(embedding_dim=16, tag_dim=8, condition_dim=8, hidden_dim=32, d_hidden_dim=16,
                    batch_size=16, mle_epochs=2, d_pretrain_steps=3, adversarial_steps=3,
                    rollout_n=2, steps_per_checkpoint=4, eval_samples=40,
                    log_every_n_steps=1, max_length=20)
    settings.update(changes)
    return GanConfig(**settings)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.mark.parametrize("reward", ["token", "rollout", "sentence"])
def test_each_reward_trains_and_samples_valid_annotated_utterances(utterances, tmp_path, reward):
    train = utterances[:50]
    augmenter = train_gan(train, tiny_config(reward=reward), run_dir=tmp_path,
                          heldout=utterances[250:])
    samples = list(augmenter.generate(100, sampling=SamplingConfig(), seed=3, batch_size=32))
    assert len(samples) == 100
    train_intents = {u.intent for u in train}
    for sample in samples:
        check_iob2(sample.tags)
        assert sample.language == "de" and sample.intent in train_intents
        assert "<unk>" not in sample.tokens and 1 <= len(sample.tokens) <= 20
    metrics = augmenter.info.metrics
    assert metrics["validity"] == 1.0 and 0 <= metrics["novelty"] <= 1
    assert "bleu4" in metrics and (tmp_path / "generator" / "generator.pt").exists()
    assert (tmp_path / "checkpoints" / "last.ckpt").exists()


def test_policy_gradient_uses_the_sampling_policy_without_dropout(utterances, tmp_path,
                                                                  monkeypatch):
    from gan.generator import Generator

    modes = []  # (dropout on, gradients on) at each log-probability call
    original = Generator.step_log_probs

    def recording(self, *args):
        modes.append((self.training, torch.is_grad_enabled()))
        return original(self, *args)

    monkeypatch.setattr(Generator, "step_log_probs", recording)
    config = tiny_config(adversarial_steps=2, g_steps=2, dropout=0.5)
    train_gan(utterances[:32], config, run_dir=tmp_path)
    mle_calls = config.mle_epochs * 2  # 32 utterances in batches of 16
    assert modes[:mle_calls] == [(True, True)] * mle_calls  # MLE keeps its dropout
    assert modes[mle_calls:] == [(False, True)] * 4  # 2 steps x 2 G updates: on-policy


def test_fast_tables_follow_every_training_update(utterances, tmp_path):
    from gan.generator import SamplingTables
    from gan.lstm import EmbeddingLSTMStep

    # G and D keep fast tables until a step of their optimisers bumps the weights' versions;
    # a stale table would sample and score with old weights (a fused Adam does not bump them)
    augmenter = train_gan(utterances[:32], tiny_config(adversarial_steps=3, eval_samples=0),
                          run_dir=tmp_path)
    generator, discriminator = augmenter.generator, augmenter.discriminator
    assert torch.equal(generator.sampling_tables().block_bias,
                       SamplingTables(generator).block_bias)
    fresh = EmbeddingLSTMStep(discriminator.lstm, discriminator.token_embedding,
                              discriminator.tag_embedding, discriminator.intent_embedding,
                              discriminator.language_embedding)
    assert torch.equal(discriminator.scoring_step().gates, fresh.gates)


def test_saved_generator_reproduces_samples_for_a_seed(utterances, tmp_path):
    augmenter = train_gan(utterances[:50], tiny_config(adversarial_steps=0, eval_samples=0),
                          run_dir=tmp_path)
    loaded = Augmenter.from_dir(tmp_path / "generator")
    sampling = SamplingConfig(method="top-k", top_k=10, temperature=0.8)
    first = list(augmenter.generate(60, sampling=sampling, seed=7, batch_size=16))
    again = list(loaded.generate(60, sampling=sampling, seed=7, batch_size=16))
    other = list(loaded.generate(60, sampling=sampling, seed=8, batch_size=16))
    assert [u.key() for u in first] == [u.key() for u in again]
    assert [u.key() for u in first] != [u.key() for u in other]
    scores = loaded.discriminator_scores(first[:10])
    assert scores.shape == (10,) and ((scores >= 0) & (scores <= 1)).all()


def test_words_can_be_untied_from_their_tags(utterances, tmp_path):
    train = utterances[:50]
    seen = {pair for u in train for pair in zip(u.tokens, u.tags)}
    augmenter = train_gan(train, tiny_config(adversarial_steps=0, eval_samples=0,
                                             tie_words_to_tags=False), run_dir=tmp_path)
    loaded = Augmenter.from_dir(tmp_path / "generator")
    assert loaded.vocab.tag_tokens is None  # saved untied: loads untied
    samples = list(augmenter.generate(200, sampling=SamplingConfig(method="temperature"),
                                      seed=0, batch_size=64))
    pairs = {pair for u in samples for pair in zip(u.tokens, u.tags)}
    assert pairs - seen  # some word with a tag it never had in training


def test_quotas_language_and_gate(utterances, tmp_path):
    augmenter = train_gan(utterances[:50], tiny_config(adversarial_steps=0, eval_samples=0),
                          run_dir=tmp_path)
    intent = utterances[0].intent
    generation = augmenter.generate(0, sampling=SamplingConfig(), seed=1, quotas={intent: 30},
                                    language="de", gate=GateConfig(), train=utterances[:50])
    samples = list(generation)
    assert len(samples) == 30 and {u.intent for u in samples} == {intent}
    assert len({u.key() for u in samples}) == 30  # de-duplicated
    assert not {u.tokens for u in samples} & {u.tokens for u in utterances[:50]}
    report = generation.report
    assert report.kept == 30 and report.seen >= 30
    dropped = report.malformed + report.duplicates + report.train_copies + report.low_score
    assert report.seen == dropped + report.kept + report.surplus
    assert report.surplus >= 1  # the spare rows of the last round, at least one
    with pytest.raises(ValueError, match="quotas"):
        next(augmenter.generate(0, sampling=SamplingConfig(), seed=1, quotas={"no/such": 1}))


def test_vec_file_initialises_the_embeddings(utterances, tmp_path):
    train = utterances[:50]
    vec = tmp_path / "tiny.vec"
    vec.write_text("2 16\n" + f"heute {' '.join(['0.5'] * 16)}\n"
                   + f"wecker {' '.join(['-0.25'] * 16)}\n", encoding="utf-8")
    augmenter = train_gan(train, tiny_config(embeddings=str(vec), freeze_embeddings=True,
                                             mle_epochs=1, d_pretrain_steps=0,
                                             adversarial_steps=0, eval_samples=0),
                          run_dir=tmp_path / "run")
    table = augmenter.generator.token_embedding.weight
    vocab = augmenter.vocab
    assert torch.all(table[vocab.token_index["heute"]] == 0.5)
    assert torch.all(table[vocab.token_index["Wecker"]] == -0.25)  # lower-cased lookup


class WordVectorStandIn:
    """Has the one method the GAN uses of ``nlu.training.TrainedNlu``: ``word_vectors``."""

    def word_vectors(self, words):
        return {word: np.full(12, float(len(word)), dtype=np.float32) for word in words}


def test_embeddings_transfer_from_an_nlu_model(utterances, tmp_path):
    augmenter = train_gan(utterances[:50], tiny_config(embeddings="nlu", freeze_embeddings=True,
                                                       mle_epochs=1, d_pretrain_steps=0,
                                                       adversarial_steps=0, eval_samples=0),
                          run_dir=tmp_path, nlu_model=WordVectorStandIn())
    table = augmenter.generator.token_embedding.weight
    assert table.shape[1] == 12  # the NLU model's size replaces embedding_dim
    assert torch.all(table[augmenter.vocab.token_index["Wecker"]] == 6.0)
    reloaded = Augmenter.from_dir(tmp_path / "generator")
    assert torch.equal(reloaded.generator.token_embedding.weight, table)


def test_slot_quotas_yield_utterances_with_that_slot_type(utterances, tmp_path):
    train = utterances[:50]
    augmenter = train_gan(train, tiny_config(adversarial_steps=0, eval_samples=0),
                          run_dir=tmp_path)
    slot = Counter(t for u in train for t in u.slot_types).most_common(1)[0][0]
    with_slot = {u.intent for u in train if slot in u.slot_types}
    intent = sorted({u.intent for u in train} - with_slot)[0]
    plan = augmenter.plan(0, quotas={intent: 5}, slot_quotas={slot: 20})
    assert sum(plan.values()) == 25 and {i for i, _, s in plan if s == slot} <= with_slot
    generation = augmenter.generate(0, sampling=SamplingConfig(), seed=2, quotas={intent: 5},
                                    slot_quotas={slot: 20}, gate=GateConfig(), batch_size=16)
    samples = list(generation)
    assert len(samples) == 25
    assert sum(u.intent == intent for u in samples) == 5
    assert sum(slot in u.slot_types for u in samples if u.intent in with_slot) >= 20
    report = generation.report
    dropped = report.malformed + report.duplicates + report.train_copies + report.low_score
    # samples lacking the slot type wait for another share; those never needed are surplus
    assert report.kept == 25 and report.seen == dropped + report.kept + report.surplus
    for bad, reason in (({"no_such_slot": 3}, "unknown"), ({slot: -1}, "negative")):
        with pytest.raises(ValueError, match=f"slot_quotas.*{reason}"):
            augmenter.generate(0, sampling=SamplingConfig(), seed=1, slot_quotas=bad)


class EvenLengthAgreeing:
    """An NLU model stand-in that agrees with utterances of an even length only."""

    def predict(self, utterances):
        return [u if len(u.tokens) % 2 == 0 else dataclasses.replace(u, intent="other/intent")
                for u in utterances]


def test_nlu_agreement_gate_refills_what_the_model_disagrees_with(utterances, tmp_path):
    augmenter = train_gan(utterances[:50], tiny_config(adversarial_steps=0, eval_samples=0),
                          run_dir=tmp_path)
    generation = augmenter.generate(30, sampling=SamplingConfig(), seed=4,
                                    gate=GateConfig(nlu_agreement=True),
                                    nlu_model=EvenLengthAgreeing(), batch_size=16)
    samples = list(generation)
    assert len(samples) == 30 and all(len(u.tokens) % 2 == 0 for u in samples)
    report = generation.report
    assert report.disagreement > 0 and report.kept == 30
    dropped = (report.malformed + report.duplicates + report.train_copies + report.low_score
               + report.disagreement)
    assert report.seen == dropped + report.kept + report.surplus
    with pytest.raises(ValueError, match="nlu_model"):
        augmenter.generate(5, sampling=SamplingConfig(), seed=4,
                           gate=GateConfig(nlu_agreement=True))


def test_a_gated_round_has_one_spare_row_per_condition_and_a_fifth_of_its_rows():
    conditions = [("book", "en")] * 25 + [("play", "en")] * 3 + [("book", "de")] * 10
    assert Counter(_spares(conditions)) == {("book", "en"): 6, ("play", "en"): 1,
                                            ("book", "de"): 3}


def test_spare_survivors_fill_later_rounds(utterances, tmp_path):
    augmenter = train_gan(utterances[:50], tiny_config(adversarial_steps=0, eval_samples=0),
                          run_dir=tmp_path)
    intent = utterances[0].intent
    generation = augmenter.generate(0, sampling=SamplingConfig(), seed=3, quotas={intent: 60},
                                    language="de", gate=GateConfig(), batch_size=10)
    samples = list(generation)
    assert len(samples) == 60 and len({u.key() for u in samples}) == 60
    report = generation.report
    assert report.kept == 60
    # Six or more rounds of 10 rows and 3 spares each; unused survivors wait for the next
    # round, so at most one round's spares are left over at the end.
    assert report.surplus <= len(_spares([(intent, "de")] * 10))


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="reward"):
        GanConfig(reward="policy")
    with pytest.raises(ValueError, match="rollout_n"):
        GanConfig(rollout_n=0)
    with pytest.raises(ValueError, match="bogus"):
        GanConfig.from_dict({"bogus": 1})


def test_mlflow_run_registers_the_generator_and_resume_continues(utterances, tmp_path,
                                                                 monkeypatch):
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracking = TrackingConfig("gan-test", registered_name="gan-test", alias="candidate")
    train_gan(utterances[:50], tiny_config(), run_dir=tmp_path / "run", tracking=tracking,
              tracking_uri=uri, heldout=utterances[250:])
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(downloads))
    loaded = Augmenter.load("gan-test@candidate", uri)
    assert list(downloads.iterdir()) == []  # loaded into memory; the download is gone
    assert loaded.info.languages == ["de"] and loaded.info.metrics["count"] == 40
    run_id = json.loads((tmp_path / "run" / RUN_ID_FILENAME).read_text())["run_id"]
    run = MlflowClient(uri).get_run(run_id)
    assert {"d/loss", "adv/reward", "mle/nll", "quality/bleu4"} <= set(run.data.metrics)
    assert run.data.params["reward"] == "rollout"
    artifacts = {a.path for a in MlflowClient(uri).list_artifacts(run_id, "samples")}
    assert artifacts == {"samples/samples.jsonl", "samples/samples.txt"}

    # Resume with more adversarial steps: the same run continues from the last checkpoint.
    longer = tiny_config(adversarial_steps=6)
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    steps_before = int(torch.load(checkpoint, weights_only=False)["state_dict"]["steps_done"])
    train_gan(utterances[:50], longer, run_dir=tmp_path / "run", tracking=tracking,
              tracking_uri=uri, resume=True)
    assert json.loads((tmp_path / "run" / RUN_ID_FILENAME).read_text())["run_id"] == run_id
    steps_after = int(torch.load(checkpoint, weights_only=False)["state_dict"]["steps_done"])
    assert steps_after == steps_before + 3  # only the 3 extra adversarial steps ran
    assert mlflow.active_run() is None


def test_augment_cli_writes_conll_from_a_registered_generator(utterances, tmp_path):
    from service.cli import main

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    train_gan(utterances[:50], tiny_config(adversarial_steps=0, eval_samples=0),
              run_dir=tmp_path / "run", tracking_uri=uri,
              tracking=TrackingConfig("gan-cli", registered_name="gan-cli", alias="prod"))
    out = tmp_path / "synthetic.conll"
    code = main(["augment", "--generator", "gan-cli@prod", "--tracking-uri", uri, "--count", "25",
                 "--sampling", "top-p", "--top-p", "0.9", "--seed", "5", "--out", str(out),
                 "--format", "conll"])
    assert code == 0
    written = read_utterances(out, "conll", language="de")
    assert len(written) == 25
    slot = Counter(t for u in utterances[:50] for t in u.slot_types).most_common(1)[0][0]
    intent = utterances[0].intent
    assert main(["augment", "--generator", "gan-cli@prod", "--tracking-uri", uri,
                 "--slot-quota", f"{slot}=7", "--quota", f"{intent}=3", "--out", str(out),
                 "--format", "conll"]) == 0
    written = read_utterances(out, "conll", language="de")
    assert len(written) == 10 and sum(slot in u.slot_types for u in written) >= 7
    assert main(["augment", "--generator", "missing@none", "--tracking-uri", uri,
                 "--out", str(out)]) == 2


def test_augment_cli_keeps_what_a_registered_nlu_model_agrees_with(utterances, tmp_path,
                                                                    capsys):
    import mlflow

    from gan.gate import agrees
    from nlu.model import JointModelConfig
    from nlu.tracking import log_model_dir, start_run
    from nlu.training import TrainedNlu, fit
    from service.cli import main

    train = utterances[:50]
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    train_gan(train, tiny_config(adversarial_steps=0, eval_samples=0), run_dir=tmp_path / "gan")
    nlu = fit(train, None, JointModelConfig(embedding_dim=16, hidden_dim=32, num_layers=1,
                                            batch_size=8, max_epochs=8, lr=1e-2,
                                            enable_progress_bar=False, num_threads=1),
              run_dir=tmp_path / "nlu")
    nlu.save(tmp_path / "nlu-model")
    with start_run("nlu-cli", uri):
        log_model_dir(tmp_path / "nlu-model", registered_name="nlu-cli", alias="prod")
    mlflow.end_run()

    out = tmp_path / "agreed.jsonl"
    assert main(["augment", "--generator", str(tmp_path / "gan" / "generator"), "--count", "10",
                 "--seed", "3", "--agree-with", "nlu-cli@prod", "--tracking-uri", uri,
                 "--out", str(out), "--format", "jsonl"]) == 0
    written = read_utterances(out, "jsonl")
    printed = capsys.readouterr()
    assert "disagreement" in printed.out
    # a tiny model agrees with few samples: fewer than asked within the attempt budget, said
    assert 0 < len(written) <= 10 and (len(written) < 10) == ("warning: " in printed.err)
    assert all(agrees(u, p) for u, p in
               zip(written, TrainedNlu.from_store("nlu-cli@prod", uri).predict(written)))
    assert main(["augment", "--generator", str(tmp_path / "gan" / "generator"),
                 "--agree-with", "no-such@model", "--tracking-uri", uri, "--out", str(out)]) == 2
    assert main(["augment", "--generator", "gan@x", "--server", "localhost:1",
                 "--agree-with", "nlu-cli@prod", "--out", str(out)]) == 2


def test_gan_train_cli_runs_a_job_yaml_with_data_relative_to_it(utterances, tmp_path, capsys):
    import yaml

    from gan.training import load_job
    from nlu.formats import write_utterances
    from service.cli import main

    # The shipped jobs name the shared data relative to themselves.
    shipped = load_job(Path(__file__).resolve().parents[1] / "experiments/gan_xsid_de.yaml")
    assert (shipped.root / shipped.train.path).resolve() == XSID_DE_VALID.resolve()

    (tmp_path / "data").mkdir()
    write_utterances(utterances[:40], tmp_path / "data/train.conll", "conll")
    config = dataclasses.asdict(tiny_config(adversarial_steps=2, eval_samples=10))
    job = {"data": {"root": "data", "train": "train.conll", "format": "conll", "language": "de"},
           "run_dir": str(tmp_path / "run"), "gan": config, "tracking": {"experiment": "job-test"}}
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs/job.yaml").write_text(yaml.safe_dump(job))
    (tmp_path / "jobs/data").symlink_to(tmp_path / "data")  # root is relative to the YAML
    assert main(["gan", "train", "--config", str(tmp_path / "jobs/job.yaml"),
                 "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]) == 0
    assert "quality of 10 samples" in capsys.readouterr().out
    assert (tmp_path / "run" / "generator" / "info.json").exists()


KILLED_GAN = """
import os, signal, sys
sys.path.insert(0, sys.argv[2])
import torch
import test_gan_training as here
from gan.module import GanModule
from gan.training import train_gan

def die(self):  # kill -9 once epochs 0 .. N-1 are checkpointed, in the adversarial phase
    if self.trainer.current_epoch == here.GAN_KILLED_AT_EPOCH:
        os.kill(os.getpid(), signal.SIGKILL)

GanModule.on_train_epoch_start = die
torch.set_num_threads(1)
train_gan(here.resume_data(), here.RESUME_CONFIG, run_dir=sys.argv[1], progress_bar=False)
"""
# 50 utterances / 16 = 4 batches: 8 MLE, 3 D and 6 adversarial steps, a checkpoint every 4
RESUME_CONFIG = tiny_config(adversarial_steps=6, eval_samples=0)
GAN_KILLED_AT_EPOCH = 3


def resume_data() -> list[Utterance]:
    return read_utterances(XSID_DE_VALID, "conll")[:50]


def test_a_gan_killed_mid_training_resumes_to_the_uninterrupted_weights(tmp_path):
    torch.set_num_threads(1)
    uninterrupted = train_gan(resume_data(), RESUME_CONFIG, run_dir=tmp_path / "uninterrupted")

    run_dir = tmp_path / "killed"
    killed = subprocess.run([sys.executable, "-c", KILLED_GAN, str(run_dir),
                             str(Path(__file__).parent)], capture_output=True, text=True,
                            timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == GAN_KILLED_AT_EPOCH - 1  # a checkpoint every steps_per_checkpoint
    assert int(last["state_dict"]["steps_done"]) == GAN_KILLED_AT_EPOCH * 4

    resumed = train_gan(resume_data(), RESUME_CONFIG, run_dir=run_dir, resume=True)
    for part in ("generator", "discriminator"):
        expected = getattr(uninterrupted, part).state_dict()
        for name, tensor in getattr(resumed, part).state_dict().items():
            torch.testing.assert_close(tensor, expected[name], rtol=0, atol=1e-6,
                                       msg=f"{part}.{name}")
