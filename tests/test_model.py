"""Tiny joint models trained for a few epochs on 40 real SNIPS utterances (seconds each)."""

import dataclasses

import numpy as np
import pytest
import torch

from nlu.model import JointModelConfig, pretrained_piece_matrix
from nlu.tokenizer import WORD_BOUNDARY
from nlu.training import (EncodedUtterance, LengthBucketBatchSampler, TrainedNlu, collate,
                          encode, fit)
from nlu.utterance import Utterance, check_iob2
from test_tokenizer import snips_utterances  # pytest puts tests/ on sys.path

TINY = JointModelConfig(embedding_dim=16, hidden_dim=32, num_layers=1, num_heads=2,
                        batch_size=8, max_epochs=4, lr=1e-2, enable_progress_bar=False,
                        num_threads=1)


@pytest.fixture(scope="module")
def data() -> list[Utterance]:
    return snips_utterances(40)


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory) -> TrainedNlu:
    return fit(data[:32], data[32:], TINY, label_inventory=data,
               run_dir=tmp_path_factory.mktemp("run"))


def test_predictions_are_valid_utterances_with_the_same_tokens(trained, data):
    predicted = trained.predict(data)
    assert len(predicted) == len(data)
    for gold, guess in zip(data, predicted):
        assert isinstance(guess, Utterance)
        assert (guess.tokens, guess.language, guess.id) == (gold.tokens, gold.language, gold.id)
        assert guess.intent in trained.intents
        check_iob2(guess.tags)


def test_save_then_load_predicts_the_same(trained, data, tmp_path):
    trained.save(tmp_path / "model")
    loaded = TrainedNlu.load(tmp_path / "model")
    assert loaded.intents == trained.intents and loaded.tags == trained.tags
    assert loaded.predict(data) == trained.predict(data)


def test_word_vectors_average_the_word_pieces(trained):
    vectors = trained.word_vectors(["playlist", "qwzx"])
    table = trained.module.embedding.weight.detach().numpy()
    pieces = trained.tokenizer.encode_word_pieces(["qwzx"])[0]
    assert vectors["playlist"].shape == (TINY.embedding_dim,)
    np.testing.assert_allclose(vectors["qwzx"], table[pieces].mean(axis=0))


@pytest.mark.parametrize("encoder", ["bilstm", "transformer"])
@pytest.mark.parametrize("slot_head", ["crf", "softmax"])
def test_every_encoder_and_slot_head_trains(encoder, slot_head, data, tmp_path):
    config = dataclasses.replace(TINY, encoder=encoder, slot_head=slot_head, max_epochs=2)
    model = fit(data, None, config, run_dir=tmp_path)
    assert [u.tokens for u in model.predict(data[:5])] == [u.tokens for u in data[:5]]


def test_loss_falls_and_the_active_mlflow_run_gets_the_curves(data, tmp_path):
    import mlflow

    from nlu.tracking import client, start_run

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    with start_run("test", uri) as run:
        fit(data, data[:8], dataclasses.replace(TINY, max_epochs=6), run_dir=tmp_path / "run",
            tracking_uri=uri)
        assert client(uri).get_run(run.info.run_id).info.status == "RUNNING"
    mlflow_client = client(uri)
    losses = [m.value for m in mlflow_client.get_metric_history(run.info.run_id, "train_loss")]
    assert len(losses) == 6 and losses == sorted(losses, reverse=True)
    assert losses[-1] < 0.75 * losses[0]
    assert len(mlflow_client.get_metric_history(run.info.run_id, "dev_slot_f1")) == 6


def test_vec_file_initialises_piece_embeddings(trained, data, tmp_path):
    vec = tmp_path / "tiny.vec"
    vec.write_text("2 3\nplaylist 0.5 -1 2\nmusic 1 1 1\n")
    pieces = trained.tokenizer.pieces
    matrix, found = pretrained_piece_matrix(pieces, vec)
    assert found == 2 and matrix.shape == (len(pieces), 3)
    np.testing.assert_allclose(matrix[pieces.index(f"{WORD_BOUNDARY}playlist")], [0.5, -1, 2])

    # Frozen embeddings keep the vectors through training; the dimension follows the file.
    config = dataclasses.replace(TINY, embeddings_path=str(vec), freeze_encoder=True,
                                 max_epochs=1)
    model = fit(data, None, config, run_dir=tmp_path / "run")
    assert model.config.embedding_dim == 3
    row = model.tokenizer.pieces.index(f"{WORD_BOUNDARY}music")
    np.testing.assert_allclose(model.module.embedding.weight[row].detach().numpy(), [1, 1, 1])


def test_resume_continues_from_the_last_checkpoint(data, tmp_path):
    fit(data, None, dataclasses.replace(TINY, max_epochs=2), run_dir=tmp_path)
    fit(data, None, dataclasses.replace(TINY, max_epochs=3), run_dir=tmp_path, resume=True)
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    batches_per_epoch = -(-len(data) // TINY.batch_size)
    assert last["epoch"] == 2 and last["global_step"] == 3 * batches_per_epoch


def test_fine_tuning_keeps_the_tokenizer_and_the_parent_label_ids(trained, data, tmp_path):
    extra = data[0].replace(intent="NewIntent", tags=("B-new_slot",) + data[0].tags[1:])
    child = fit([extra] + data[:8], None, dataclasses.replace(TINY, max_epochs=1),
                init_from=trained, run_dir=tmp_path)
    assert child.tokenizer.model_proto == trained.tokenizer.model_proto
    assert child.intents[: len(trained.intents)] == trained.intents
    assert child.tags[: len(trained.tags)] == trained.tags
    assert "NewIntent" in child.intents and "I-new_slot" in child.tags


def test_length_buckets_cover_every_utterance_once_and_reshuffle_per_epoch():
    lengths = [index % 17 + 1 for index in range(500)]
    sampler = LengthBucketBatchSampler(lengths, batch_size=8, seed=3)
    first = list(sampler)
    assert len(first) == len(sampler) == 63
    assert sorted(index for batch in first for index in batch) == list(range(500))
    # Sorting windows by length keeps each batch's lengths close together.
    assert max(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in first) <= 2
    assert list(sampler) == first  # same epoch, same order (resumable)
    sampler.set_epoch(1)
    assert list(sampler) != first


def test_intent_conditioned_slot_head_grows_with_new_intents(data, tmp_path):
    config = dataclasses.replace(TINY, intent_conditioned_slots=True, max_epochs=1)
    parent = fit(data, None, config, run_dir=tmp_path / "parent")
    extra = data[0].replace(intent="NewIntent")
    child = fit([extra] + data[:8], None, config, init_from=parent, run_dir=tmp_path / "child")
    hidden = config.hidden_dim
    parent_weight = parent.module.slot_classifier.weight.detach()
    child_weight = child.module.slot_classifier.weight.detach()
    assert child_weight.shape == (len(child.tags), hidden + len(parent.intents) + 1)
    assert parent_weight.shape == (len(parent.tags), hidden + len(parent.intents))
    assert child.predict([extra])[0].tokens == extra.tokens


@pytest.mark.parametrize("encoder", ["bilstm", "transformer"])
def test_char_cnn_and_last_piece_options_train_predict_and_reload(encoder, data, tmp_path):
    config = dataclasses.replace(TINY, encoder=encoder, char_filters=8, char_embedding_dim=4,
                                 slot_last_piece=True, max_epochs=2)
    model = fit(data[:32], data[32:], config, label_inventory=data, run_dir=tmp_path / "run")
    assert model.module.slot_classifier.in_features == 2 * config.hidden_dim
    predicted = model.predict(data)
    assert [u.tokens for u in predicted] == [u.tokens for u in data]
    model.save(tmp_path / "model")
    assert TrainedNlu.load(tmp_path / "model").predict(data) == predicted
    # A word's character feature ignores the padding a longer word in the batch adds.
    module = model.module
    alone = collate(encode([data[0]], model.tokenizer, with_chars=True))["word_chars"]
    padded = collate(encode([data[0], data[0].replace(tokens=("x" * 20,) + data[0].tokens[1:])],
                            model.tokenizer, with_chars=True))["word_chars"][:1]
    assert padded.size(2) > alone.size(2)
    torch.testing.assert_close(module.char_features(padded), module.char_features(alone))


def test_collate_finds_each_word_s_last_piece_and_each_piece_s_word():
    items = [EncodedUtterance([5, 6, 7, 8], [0, 1], word_chars=[[3], [4, 5, 6]]),
             EncodedUtterance([9], [0], word_chars=[[7, 7]])]
    batch = collate(items)
    assert batch["last_piece"].tolist() == [[0, 3], [0, 0]]
    assert batch["piece_word"].tolist() == [[0, 1, 1, 1], [0, 0, 0, 0]]
    assert batch["word_chars"].tolist() == [[[3, 0, 0], [4, 5, 6]], [[7, 7, 0], [0, 0, 0]]]


def test_the_gan_uses_a_real_trained_model_for_embeddings_and_agreement(trained, data, tmp_path):
    """The two places the GAN meets a real ``TrainedNlu``: transferred embeddings (from a
    saved model directory, ``nlu:<dir>``) and the quality gate's NLU agreement."""
    from gan.gate import GateConfig, QualityGate
    from gan.config import GanConfig
    from gan.training import train_gan

    trained.save(tmp_path / "model")
    config = GanConfig(embeddings=f"nlu:{tmp_path / 'model'}", freeze_embeddings=True,
                       tag_dim=4, condition_dim=4, hidden_dim=16, d_hidden_dim=8, mle_epochs=1,
                       d_pretrain_steps=0, adversarial_steps=0, eval_samples=0)
    augmenter = train_gan(data[:32], config, run_dir=tmp_path / "gan", progress_bar=False)
    words = augmenter.vocab.tokens[4:12]
    expected = trained.word_vectors(words)
    table = augmenter.generator.token_embedding.weight.detach().numpy()
    for word in words:
        np.testing.assert_allclose(table[augmenter.vocab.token_index[word]], expected[word],
                                   rtol=1e-6)

    # The model's own predictions agree with it by definition; the gold data mostly does not.
    samples = trained.predict(data[:10]) + data[10:]
    gate = QualityGate(GateConfig(deduplicate=False, drop_train_copies=False,
                                  nlu_agreement=True), [], nlu_model=trained)
    kept, report = gate.filter(samples)
    agreeing = [sample for sample, guess in zip(samples, trained.predict(samples))
                if (guess.intent, guess.tags) == (sample.intent, sample.tags)]
    assert 10 <= len(agreeing) < len(samples)  # something to keep and something to drop
    assert kept == agreeing and report.disagreement == len(samples) - len(agreeing)
