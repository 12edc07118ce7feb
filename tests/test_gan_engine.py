"""GAN building blocks on real xSID German utterances: vocabulary masks, samplers, G, D, rewards."""

from __future__ import annotations

import threading
import time

import pytest
import torch
from torch import nn

from gan import rewards, sampling
from gan.batching import SharedSampler
from gan.discriminator import Discriminator
from gan.generator import Generator
from gan.lstm import EmbeddingLSTMStep
from gan.sampling import SamplingConfig, inverse_cdf_sample, pick
from gan.vocab import BOS_ID, Vocabulary
from nlu.formats import read_utterances
from nlu.utterance import Utterance
from shared_data import SHARED_DATA

XSID_DE_VALID = SHARED_DATA / "xsid/xSID-0.7/de.valid.conll"


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def utterances() -> list[Utterance]:
    return read_utterances(XSID_DE_VALID, "conll")[:50]


@pytest.fixture(scope="module")
def vocab(utterances) -> Vocabulary:
    return Vocabulary.build(utterances)


def tiny_models(vocab: Vocabulary, max_length: int = 12) -> tuple[Generator, Discriminator]:
    torch.manual_seed(0)
    generator = Generator(vocab, embedding_dim=16, tag_dim=8, condition_dim=8, hidden_dim=24,
                          max_length=max_length)
    discriminator = Discriminator(vocab, embedding_dim=16, tag_dim=8, condition_dim=8,
                                  hidden_dim=16)
    return generator.eval(), discriminator.eval()


def conditions(vocab: Vocabulary, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    intents = torch.arange(rows) % (len(vocab.intents) - 1) + 1  # skip <unk>
    return intents, torch.zeros(rows, dtype=torch.long)


def temperature_samples(generator: Generator, intents, languages, seed: int):
    """Whole utterances drawn at temperature 1 from a seeded generator: (tokens, tags)."""
    with torch.no_grad():
        return generator.sample(intents, languages, SamplingConfig(method="temperature"),
                                generator=torch.Generator().manual_seed(seed))


def as_utterances(vocab, tokens, tags, intents) -> list[Utterance]:
    """Decode step sequences; ``Utterance`` raises if tags are not IOB2."""
    result = []
    for row in range(tokens.size(0)):
        words, labels = vocab.decode(tokens[row].tolist(), tags[row].tolist())
        result.append(Utterance(words, labels, vocab.intents[int(intents[row])], "de"))
    return result


def test_vocabulary_round_trips_and_masks_specials(utterances, vocab):
    assert Vocabulary.from_dict(vocab.to_dict()).tokens == vocab.tokens
    encoded = vocab.encode(utterances[:3], max_length=40)
    words, labels = vocab.decode(encoded["tokens"][0], encoded["tags"][0])
    assert (tuple(words), tuple(labels)) == (utterances[0].tokens, utterances[0].tags)
    allowed_tokens = vocab.language_token_mask()[0]
    assert not allowed_tokens[:4].any()  # <pad> <bos> <eos> <unk> are never sampled
    assert allowed_tokens.sum() == len(vocab.language_tokens["de"])
    transitions = vocab.tag_transition_mask()
    bos, eos = vocab.tag_index["<bos>"], vocab.tag_index["<eos>"]
    assert not transitions[bos, eos]  # no empty utterance
    assert not transitions[bos, vocab.tag_index["I-datetime"]]
    assert transitions[vocab.tag_index["B-datetime"], vocab.tag_index["I-datetime"]]
    assert not transitions[vocab.tag_index["B-reference"], vocab.tag_index["I-datetime"]]


@pytest.mark.parametrize("field, value", [("method", "beam"), ("temperature", 0.0),
                                          ("top_p", 1.5), ("top_k", -1)])
def test_sampling_config_names_the_bad_field(field, value):
    with pytest.raises(ValueError, match=field):
        SamplingConfig(**{field: value})


@pytest.mark.parametrize("field, value", [("temperature", "1"), ("temperature", True),
                                          ("top_k", 2.0), ("top_k", True), ("top_p", None)])
def test_sampling_config_refuses_values_of_the_wrong_type_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"{field}: must be"):
        SamplingConfig(**{"method": "top-k", "top_k": 2, field: value})


TINY_POSITIVE = [1e-30, 1.2e-38, 1e-38, 1e-45, 1e-300, 5e-324]


@pytest.mark.parametrize("method", ["temperature", "top-k", "top-p"])
@pytest.mark.parametrize("temperature", TINY_POSITIVE)
def test_a_tiny_positive_temperature_samples_the_best_entry(method, temperature):
    torch.manual_seed(0)
    logits = torch.randn(64, 40) * 4
    logits[1, 5:] = float("-inf")  # a masked row keeps its best allowed entry
    config = SamplingConfig(method=method, temperature=temperature, top_k=3, top_p=0.5)
    picked = pick(logits, config, generator=torch.Generator().manual_seed(0))
    assert torch.equal(picked, logits.argmax(dim=-1))


@pytest.mark.parametrize("method", ["temperature", "top-k", "top-p"])
@pytest.mark.parametrize("temperature", [1e30, 1e300, 1.7e308])
def test_a_huge_temperature_samples_only_allowed_entries_uniformly(method, temperature):
    logits = torch.randn(4000, 8) * 4
    logits[:, 6:] = float("-inf")
    config = SamplingConfig(method=method, temperature=temperature, top_k=6, top_p=1.0)
    picked = pick(logits, config, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(picked, minlength=8)
    assert counts[6:].sum() == 0 and counts[:6].min() > 550  # ~667 each


@pytest.mark.parametrize("top_p", TINY_POSITIVE)
def test_a_tiny_positive_top_p_keeps_only_the_best_entry(top_p):
    torch.manual_seed(0)
    logits = torch.randn(64, 40) * 4
    picked = pick(logits, SamplingConfig(method="top-p", top_p=top_p),
                  generator=torch.Generator().manual_seed(0))
    assert torch.equal(picked, logits.argmax(dim=-1))


def test_inverse_cdf_never_picks_zero_probability_entries():
    probabilities = torch.tensor([[0.0, 0.5, 0.0, 0.5, 0.0]]).expand(5, -1)
    uniforms = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0 - 1e-9])
    assert inverse_cdf_sample(probabilities, uniforms).tolist() == [1, 1, 3, 3, 3]


def test_top_k_and_top_p_keep_only_the_best_entries():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]])).expand(2000, -1)
    random = torch.Generator().manual_seed(0)
    top_k = pick(logits, SamplingConfig(method="top-k", top_k=2), generator=random)
    assert set(top_k.tolist()) == {0, 1}
    top_p = pick(logits, SamplingConfig(method="top-p", top_p=0.7), generator=random)
    assert set(top_p.tolist()) == {0, 1}  # 0.5 + 0.3 >= 0.7
    greedy = pick(logits, SamplingConfig(method="greedy"))
    assert set(greedy.tolist()) == {0}


@pytest.mark.parametrize("gather_limit", [1 << 30, 0])  # rows copied per draw / searched as a grid
@pytest.mark.parametrize("method", ["greedy", "temperature", "top-k", "top-p"])
def test_draws_that_share_a_row_equal_draws_from_copies_of_it(method, gather_limit, monkeypatch):
    monkeypatch.setattr(sampling, "GATHER_LIMIT", gather_limit)
    torch.manual_seed(0)
    logits = torch.randn(5, 30) * 3
    logits[1, 4:] = float("-inf")
    rows = torch.tensor([3, 0, 3, 1, 1, 1, 4, 3, 0])
    uniforms = torch.rand(rows.shape)
    config = SamplingConfig(method=method, top_k=4, top_p=0.6, temperature=0.8)
    shared = pick(logits, config, uniforms, torch.Generator().manual_seed(1), rows=rows)
    copied = pick(logits[rows], config, uniforms, torch.Generator().manual_seed(1))
    assert torch.equal(shared, copied)


def test_the_fast_lstm_step_equals_the_modules_forward_pass():
    torch.manual_seed(0)
    token, tag = nn.Embedding(30, 8), nn.Embedding(7, 4)
    intent, language = nn.Embedding(5, 3), nn.Embedding(3, 3)  # several languages
    lstm = nn.LSTM(8 + 4 + 3 + 3, 10, batch_first=True)
    step = EmbeddingLSTMStep(lstm, token, tag, intent, language)
    tokens, tags = torch.randint(0, 30, (9, 4)), torch.randint(0, 7, (9, 4))
    intents, languages = torch.randint(0, 5, (9,)), torch.arange(9) % 3
    inputs = torch.cat([token(tokens), tag(tags),
                        intent(intents).unsqueeze(1).expand(-1, 4, -1),
                        language(languages).unsqueeze(1).expand(-1, 4, -1)], dim=-1)
    with torch.no_grad():
        expected_output, (_, expected_cell) = lstm(inputs)
    state = step.zero_state(9)
    for position in range(4):
        state = step(step.condition_rows(intents, languages), tokens[:, position],
                     tags[:, position], state)
        torch.testing.assert_close(state[0], expected_output[:, position])
    torch.testing.assert_close(state[1], expected_cell[0])
    every_hidden, every_cell = step.states_after_each_step(
        step.condition_rows(intents, languages), tokens, tags)
    torch.testing.assert_close(every_hidden, expected_output)
    torch.testing.assert_close(every_cell[:, -1], expected_cell[0])


def test_fast_prefix_states_equal_the_modules(vocab):
    generator, discriminator = tiny_models(vocab)
    intents, languages = conditions(vocab, 16)
    tokens, tags = temperature_samples(generator, intents, languages, seed=0)
    for model in (generator, discriminator):
        model.eval()
        with torch.no_grad():
            expected = model.prefix_states(tokens, tags, intents, languages)
        fast = model.prefix_states(tokens, tags, intents, languages, fast=True)
        for part, expected_part in zip(fast, expected):
            torch.testing.assert_close(part, expected_part)


def test_scoring_continuations_from_a_prefix_state_equals_scoring_whole_sequences(vocab):
    generator, discriminator = tiny_models(vocab)
    intents, languages = conditions(vocab, 16)
    tokens, tags = temperature_samples(generator, intents, languages, seed=0)
    with torch.no_grad():
        states = discriminator.prefix_states(tokens, tags, intents, languages)
        continued = discriminator.continuation_logits(
            tokens[:, 1:], tags[:, 1:], intents, languages,
            (states[0][:, 0].unsqueeze(0), states[1][:, 0].unsqueeze(0)))
        whole = discriminator.sequence_logits(tokens, tags, intents, languages)
    long_enough = (tags != vocab.tag_index["<pad>"]).sum(1) > 1  # else nothing is continued
    torch.testing.assert_close(continued[long_enough], whole[long_enough])


def test_sampling_ignores_dropout_and_shares_rows_without_changing_draws(vocab):
    generator, _ = tiny_models(vocab)
    intents, languages = conditions(vocab, 24)
    config = SamplingConfig(method="top-p", top_p=0.9)
    evaluated = generator.sample(intents, languages, config,
                                 generator=torch.Generator().manual_seed(5))
    generator.train()
    trained_mode = generator.sample(intents, languages, config,
                                    generator=torch.Generator().manual_seed(5))
    one_row_each = generator.continue_sequences(  # no two rows share an input row
        None, torch.full((24,), BOS_ID), torch.full((24,), generator.bos_tag),
        torch.zeros(24, dtype=torch.long), intents, languages, generator.max_length + 1, config,
        generator=torch.Generator().manual_seed(5))
    for left, right in ((evaluated, trained_mode), (evaluated, one_row_each)):
        assert torch.equal(left[0], right[0]) and torch.equal(left[1], right[1])


@pytest.mark.parametrize("method", ["greedy", "temperature", "top-k", "top-p"])
def test_untrained_generator_samples_are_valid_iob2_in_the_language(vocab, method):
    generator, _ = tiny_models(vocab)
    intents, languages = conditions(vocab, 64)
    config = SamplingConfig(method=method, temperature=1.5, top_k=5)
    with torch.no_grad():
        tokens, tags = generator.sample(intents, languages, config,
                                        generator=torch.Generator().manual_seed(0))
    samples = as_utterances(vocab, tokens, tags, intents)
    german = set(vocab.language_tokens["de"])
    for sample in samples:
        assert 1 <= len(sample.tokens) <= generator.max_length
        assert set(sample.tokens) <= german
        allowed_types = set(vocab.intent_slot_types[sample.intent])
        assert sample.slot_types <= allowed_types


def test_step_log_probs_are_finite_on_real_data_and_zero_on_padding(utterances, vocab):
    generator, _ = tiny_models(vocab, max_length=30)
    encoded = {k: torch.from_numpy(v) for k, v in vocab.encode(utterances, 30).items()}
    log_probs = generator.step_log_probs(encoded["tokens"], encoded["tags"], encoded["intents"],
                                         encoded["languages"])
    padding = encoded["tags"] == vocab.tag_index["<pad>"]
    assert torch.isfinite(log_probs).all()
    assert (log_probs[~padding] < 0).all() and (log_probs[padding] == 0).all()
    # step_log_probs applies the heads at real steps only; over the whole grid they agree
    # there (and give probability 1 to padding)
    generator.eval()
    tokens, tags, intents, languages = (encoded[key] for key in
                                        ("tokens", "tags", "intents", "languages"))
    previous_tokens, previous_tags = generator._shifted(tokens, tags)
    with torch.no_grad():
        hidden, _ = generator.lstm(generator._inputs(previous_tokens, previous_tags, intents,
                                                     languages))
        positions = torch.arange(tokens.size(1)).expand_as(tokens)
        grid = (torch.log_softmax(generator.tag_logits(hidden, previous_tags, intents, languages,
                                                       positions), -1)
                .gather(-1, tags.unsqueeze(-1)).squeeze(-1)
                + torch.log_softmax(generator.token_logits(hidden, tags, languages), -1)
                .gather(-1, tokens.unsqueeze(-1)).squeeze(-1))
        assert torch.allclose(generator.step_log_probs(tokens, tags, intents, languages), grid,
                              atol=1e-5)


@pytest.mark.parametrize("kind", ["token", "rollout", "sentence"])
def test_rewards_have_the_batch_shape_and_are_probabilities(vocab, kind):
    generator, discriminator = tiny_models(vocab)
    intents, languages = conditions(vocab, 16)
    with torch.no_grad():
        tokens, tags = generator.sample(intents, languages, SamplingConfig(method="temperature"))
    reward = rewards.compute_rewards(kind, generator, discriminator, tokens, tags, intents,
                                     languages, rollouts=3)
    real_steps = tags != vocab.tag_index["<pad>"]
    assert reward.shape == tokens.shape
    assert ((reward[real_steps] > 0) & (reward[real_steps] < 1)).all()
    assert (reward[~real_steps] == 0).all()
    if kind == "sentence":  # one value per sequence
        first = reward[:, :1].expand_as(reward)
        assert torch.equal(reward[real_steps], first[real_steps])


@pytest.mark.parametrize("name", sorted(rewards.REWARDS))
def test_every_registered_reward_trains_one_adversarial_step(utterances, vocab, name):
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader, TensorDataset

    from gan.config import GanConfig
    from gan.module import GanModule

    generator, discriminator = tiny_models(vocab)
    config = GanConfig(reward=name, rollout_n=2, mle_epochs=0, d_pretrain_steps=0,
                       adversarial_steps=1)
    module = GanModule(generator.train(), discriminator.train(), config, mle_steps=0)
    encoded = vocab.encode(utterances[:8], max_length=12)
    loader = DataLoader(TensorDataset(*(torch.from_numpy(encoded[key]) for key in
                                        ("tokens", "tags", "intents", "languages"))),
                        batch_size=8)
    before = [parameter.detach().clone() for parameter in generator.parameters()]
    trainer = pl.Trainer(max_steps=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False,
                         log_every_n_steps=1, accelerator="cpu")
    trainer.fit(module, loader)
    assert int(module.steps_done) == 1 and module.phase() == "done"
    assert any(not torch.equal(old, new) for old, new in zip(before, generator.parameters()))


def test_an_unknown_reward_name_lists_the_registered_ones():
    from gan.config import GanConfig

    with pytest.raises(ValueError, match="'rolout' is not one of token, rollout, sentence"):
        GanConfig(reward="rolout")
    with pytest.raises(ValueError, match=", ".join(rewards.REWARDS)):
        rewards.reward("bleu")


def test_batched_rollout_equals_the_per_prefix_reference(vocab):
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # so both orders of float sums round alike
    try:
        generator, discriminator = tiny_models(vocab)
        intents, languages = conditions(vocab, 12)
        tokens, tags = temperature_samples(generator, intents, languages, seed=1)
        uniforms = rewards.rollout_uniforms(4, tokens, generator.max_length,
                                            torch.Generator().manual_seed(2))
        batched = rewards.rollout_rewards(generator, discriminator, tokens, tags, intents,
                                          languages, 4, uniforms=uniforms)
        reference = rewards.rollout_rewards_reference(generator, discriminator, tokens, tags,
                                                      intents, languages, 4, uniforms=uniforms)
    finally:
        torch.set_default_dtype(default)
    assert tokens.size(1) > 2  # there are prefixes to roll out
    torch.testing.assert_close(batched, reference)
    last = (tags != vocab.tag_index["<pad>"]).sum(1) - 1
    whole = torch.sigmoid(discriminator.sequence_logits(tokens, tags, intents, languages).float())
    torch.testing.assert_close(batched[torch.arange(12), last].float(), whole)


def test_discriminator_prefix_scores_do_not_see_the_future(vocab, utterances):
    _, discriminator = tiny_models(vocab)
    encoded = {k: torch.from_numpy(v) for k, v in vocab.encode(utterances[:2], 30).items()}
    inputs = (encoded["tokens"], encoded["tags"], encoded["intents"], encoded["languages"])
    before = discriminator.prefix_logits(*inputs)
    changed_tokens = encoded["tokens"].clone()
    changed_tokens[:, 2] = 5
    after = discriminator.prefix_logits(changed_tokens, *inputs[1:])
    torch.testing.assert_close(before[:, :2], after[:, :2])
    assert not torch.allclose(before[:, 2], after[:, 2])


@pytest.mark.parametrize("attempts", [8, 1])  # 1: rejected draws go to the full-sort path
def test_nucleus_sampling_follows_the_sorted_nucleus_distribution(attempts, monkeypatch):
    from gan import sampling

    monkeypatch.setattr(sampling, "NUCLEUS_ATTEMPTS", attempts)
    torch.manual_seed(0)
    logits = torch.randn(6, 40) * 2
    logits[0] /= 20  # a flat row: a large nucleus
    probabilities = torch.softmax(logits, dim=-1)
    ordered, order = probabilities.sort(dim=-1, descending=True)
    in_nucleus = (ordered.cumsum(dim=-1) - ordered) < 0.9  # the textbook definition
    expected = torch.zeros_like(probabilities).scatter(-1, order, ordered * in_nucleus)
    expected /= expected.sum(dim=-1, keepdim=True)
    draws = 20_000
    picks = pick(logits.repeat(draws, 1), SamplingConfig(method="top-p", top_p=0.9),
                 generator=torch.Generator().manual_seed(1)).view(draws, 6)
    frequency = torch.zeros(6, 40).scatter_add_(1, picks.T, torch.ones(6, draws)) / draws
    assert (frequency[expected == 0] == 0).all()  # never outside the nucleus
    assert (frequency - expected).abs().max() < 0.015  # > 4 standard errors

def test_concurrent_calls_share_a_batch_and_draw_what_they_would_alone(vocab, monkeypatch):
    generator, _ = tiny_models(vocab)
    sampler = SharedSampler(generator)
    top_p, temperature = SamplingConfig(method="top-p", top_p=0.8), SamplingConfig("temperature")
    requests = [(*conditions(vocab, rows), config)
                for rows, config in ((5, top_p), (9, temperature), (3, top_p))]
    alone = [generator.sample(intents, languages, config,
                              generator=torch.Generator().manual_seed(seed))
             for seed, (intents, languages, config) in enumerate(requests)]
    # The first call holds the generator until the three requests wait: then the two top-p
    # calls run as one batch and the temperature call as another.
    release, original = threading.Event(), generator.sample

    def first_call_blocks(*args, **kwargs):
        release.wait(timeout=30)
        return original(*args, **kwargs)

    monkeypatch.setattr(generator, "sample", first_call_blocks)
    results = {}

    def call(name, intents, languages, config, seed):
        results[name] = sampler.sample(intents, languages, config,
                                       torch.Generator().manual_seed(seed))

    first = threading.Thread(target=call, args=("first", *conditions(vocab, 2), top_p, 99))
    first.start()
    queued = [threading.Thread(target=call, args=(index, *request, index))
              for index, request in enumerate(requests)]
    for thread in queued:
        thread.start()
    while sampler.waiting < len(requests):
        time.sleep(0.01)
    release.set()
    for thread in [first, *queued]:
        thread.join(timeout=30)
    assert sampler.batches_run == 3
    for index, (tokens, tags) in enumerate(alone):
        merged_tokens, merged_tags = results[index]
        width = tokens.size(1)
        assert torch.equal(merged_tokens[:, :width], tokens)
        assert torch.equal(merged_tags[:, :width], tags)
        assert (merged_tags[:, width:] == vocab.tag_index["<pad>"]).all()


def test_a_failed_shared_batch_raises_in_every_caller(vocab, monkeypatch):
    generator, _ = tiny_models(vocab)
    sampler = SharedSampler(generator)

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(generator, "sample", broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        sampler.sample(*conditions(vocab, 3), SamplingConfig(), torch.Generator())
    monkeypatch.undo()
    tokens, _ = sampler.sample(*conditions(vocab, 3), SamplingConfig(), torch.Generator())
    assert tokens.size(0) == 3  # the sampler is not left busy


def test_fast_tables_are_rebuilt_after_a_weight_update_only(vocab):
    import copy
    import pickle

    from gan.generator import SamplingTables

    generator, discriminator = tiny_models(vocab)
    tables, step = generator.sampling_tables(), discriminator.scoring_step()
    # unchanged weights: the same tables
    assert generator.sampling_tables() is tables and discriminator.scoring_step() is step
    intents, languages = conditions(vocab, 8)
    tokens, tags = generator.sample(intents, languages, SamplingConfig(method="greedy"))
    for model, loss in ((generator, generator.step_log_probs(tokens, tags, intents, languages)),
                        (discriminator, discriminator.prefix_logits(tokens, tags, intents,
                                                                    languages))):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        loss.sum().backward()
        optimizer.step()
    rebuilt = generator.sampling_tables()
    assert rebuilt is not tables
    fresh = SamplingTables(generator)
    assert torch.equal(rebuilt.block_bias, fresh.block_bias)
    assert torch.equal(rebuilt.tag_from_hidden, fresh.tag_from_hidden)
    rebuilt_step = discriminator.scoring_step()
    assert rebuilt_step is not step and not torch.equal(rebuilt_step.gates, step.gates)
    for model in (generator, discriminator):
        assert "_weight_cache" not in pickle.loads(pickle.dumps(model)).__dict__
        assert "_weight_cache" not in copy.deepcopy(model).__dict__


def test_sampling_tables_give_the_heads_masked_logits(vocab):
    generator, _ = tiny_models(vocab, max_length=3)
    tables = generator.sampling_tables()
    torch.manual_seed(0)
    hidden = torch.randn(40, generator.lstm.hidden_size)
    previous_tags = torch.randint(0, len(vocab.tags), (40,))
    intents = torch.randint(0, len(vocab.intents), (40,))
    positions = torch.randint(0, 5, (40,))  # some at the length limit
    languages = torch.zeros(40, dtype=torch.long)
    tag_logits = generator._sampled_tag_logits(tables, hidden, previous_tags, intents, languages,
                                               positions)
    torch.testing.assert_close(torch.softmax(tag_logits, -1), torch.softmax(
        generator.tag_logits(hidden, previous_tags, intents, languages, positions), -1))
    # The token head is only asked for tags that go on, in (language, tag) block order; a
    # block's columns are its words, the padding columns impossible.
    tags = torch.randint(0, len(vocab.tags), (40,))
    tags = tags[generator.language_tag_mask[0, tags] & ~generator.end_tags[tags]].sort().values
    blocks = languages[:len(tags)] * len(vocab.tags) + tags
    assert tables.token_columns % tables.COLUMN_MULTIPLE == 0
    assert tables.token_columns < len(vocab.tokens)  # the largest block (O) is not every word
    probabilities = torch.softmax(generator._sampled_token_logits(
        tables, hidden[:len(tags)], blocks), -1)
    words = tables.block_tokens[blocks]
    in_full = torch.zeros(len(tags), len(vocab.tokens)).scatter_add_(1, words, probabilities)
    torch.testing.assert_close(in_full, torch.softmax(
        generator.token_logits(hidden[:len(tags)], tags, languages[:len(tags)]), -1))
    assert torch.all(probabilities[words == 0] == 0)  # padding columns (PAD_ID) never drawn


def test_words_go_only_with_the_tags_they_were_seen_with(vocab):
    generator, _ = tiny_models(vocab)
    intents, languages = conditions(vocab, 400)
    tokens, tags = temperature_samples(generator, intents, languages, seed=0)
    seen = {(word, tag) for tag, words in vocab.tag_tokens.items() for word in words}
    pairs = {(word, tag) for utterance in as_utterances(vocab, tokens, tags, intents)
             for word, tag in zip(utterance.tokens, utterance.tags)}
    assert len(pairs) > 100 and pairs <= seen  # an untrained G, yet never "der" as a city
    # A vocabulary saved before words were tied to tags lets every word go with every tag.
    legacy = Vocabulary.from_dict({key: value for key, value in vocab.to_dict().items()
                                   if key != "tag_tokens"})
    mask = legacy.tag_token_mask()
    assert mask[legacy.tag_index["O"]].sum() == len(vocab.tokens) - 4
    assert mask.sum() > Vocabulary.from_dict(vocab.to_dict()).tag_token_mask().sum()
