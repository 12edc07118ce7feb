"""Per-step rewards for the policy-gradient update of G, all in [0, 1] (D's probability of "real").

Every function takes a batch of sampled step sequences ``tokens, tags`` (B, T) with their
``intents, languages`` (B,) and returns rewards (B, T), 0 on padding steps:

* ``token``    — D's score of the prefix ending at each step (no rollouts);
* ``sentence`` — D's score of the finished sequence, given to every step;
* ``rollout``  — SeqGAN: for the prefix ending at step s < last, the mean D score of N
  completions sampled from a rollout copy of G; the last step gets D's score of the sequence.

``rollout_rewards`` continues *all* prefixes x N rollouts as one batch of B*(T-1)*N rows (one
pass over time to get every prefix's LSTM state in G and in D, then one batched sampling
loop in which rows with the same history share their computation, and D reads only the
continuations, each up to its own end);
````rollout_rewards_reference`` is the straightforward per-prefix, per-rollout Python loop, kept
as the executable specification for the equality test and the speed benchmark.

``REWARDS`` is the one registry of names (what ``GanConfig.reward`` accepts): a new reward is
one function of ``RewardInputs`` and one entry there. ``compute_rewards`` looks a name up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from gan.discriminator import Discriminator, last_hidden, last_step
from gan.generator import Generator
from gan.sampling import UNRESTRICTED

def _step_mask(tags: torch.Tensor, discriminator: Discriminator) -> torch.Tensor:
    return tags != discriminator.pad_tag


@torch.no_grad()
def token_rewards(discriminator: Discriminator, tokens, tags, intents, languages) -> torch.Tensor:
    scores = torch.sigmoid(discriminator.prefix_logits(tokens, tags, intents, languages))
    return scores * _step_mask(tags, discriminator)


@torch.no_grad()
def sentence_rewards(discriminator: Discriminator, tokens, tags, intents, languages) -> torch.Tensor:
    scores = torch.sigmoid(discriminator.sequence_logits(tokens, tags, intents, languages))
    return scores.unsqueeze(1) * _step_mask(tags, discriminator)


def rollout_uniforms(rollouts: int, tokens: torch.Tensor, max_length: int,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """The random numbers of every rollout draw: (N, T-1 prefixes, B, max_length, tag|token)."""
    batch, steps = tokens.shape
    # Drawn on the CPU (seeded generators are CPU ones), then moved: free on the CPU.
    return torch.rand(rollouts, steps - 1, batch, max_length, 2, generator=generator,
                      dtype=torch.get_default_dtype()).to(tokens.device)


def _finish(rollout_means: torch.Tensor, whole: torch.Tensor, tags: torch.Tensor,
            pad_tag: int) -> torch.Tensor:
    """(B, T-1) rollout means and (B,) D scores of the sequences -> (B, T) rewards: means
    before the last step, the sequence's score at the last step, 0 after it."""
    last = last_step(tags, pad_tag).unsqueeze(1)
    steps = torch.arange(tags.size(1), device=tags.device).unsqueeze(0)
    means = torch.cat([rollout_means, torch.zeros_like(rollout_means[:, :1])], dim=1)
    return torch.where(steps < last, means, torch.where(steps == last, whole.unsqueeze(1),
                                                        torch.zeros_like(means)))


@torch.no_grad()
def rollout_rewards(rollout_generator: Generator, discriminator: Discriminator, tokens, tags,
                    intents, languages, rollouts: int, *, uniforms: torch.Tensor | None = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Monte-Carlo rollout rewards, every prefix x rollout in one batch (see module doc)."""
    batch, steps = tokens.shape
    prefixes = steps - 1
    max_length = rollout_generator.max_length
    # D's state after every prefix; the last is the whole sequence's, which scores the last step
    d_hidden, d_cell = discriminator.prefix_states(tokens, tags, intents, languages, fast=True)
    whole = torch.sigmoid(discriminator.logits(last_hidden(d_hidden, tags,
                                                           discriminator.pad_tag)))
    if prefixes == 0:
        return _finish(whole.new_zeros((batch, 0)), whole, tags, discriminator.pad_tag)
    if uniforms is None:
        uniforms = rollout_uniforms(rollouts, tokens, max_length, generator)
    prefix_rows = prefixes * batch  # order: (prefix, utterance)
    rows = rollouts * prefix_rows  # order: (rollout, prefix, utterance)

    def per_prefix(per_utterance: torch.Tensor) -> torch.Tensor:
        """(B, ...) -> (P*B, ...)."""
        return per_utterance.unsqueeze(0).expand(prefixes, *per_utterance.shape).reshape(
            prefix_rows, *per_utterance.shape[1:])

    def state_per_prefix(state: tuple[torch.Tensor, torch.Tensor]):
        """Two (B, T, H) states after every step -> two (1, P*B, H) states after each prefix."""
        return tuple(part[:, :prefixes].transpose(0, 1).reshape(1, prefix_rows, -1)
                     for part in state)

    prefix_ends = torch.arange(prefixes, device=tokens.device).repeat_interleave(batch)
    prefix_intents, prefix_languages = per_prefix(intents), per_prefix(languages)
    sources = torch.arange(prefix_rows, device=tokens.device).repeat(rollouts)
    # Prefixes that already hold the whole sequence get no rollout reward, so they are not
    # rolled out (in a sampled batch that is about 40 % of them).
    live = (prefix_ends < per_prefix(last_step(tags, discriminator.pad_tag)))[sources]
    live_sources = sources[live]
    continuation_tokens, continuation_tags = rollout_generator.continue_sequences(
        state_per_prefix(rollout_generator.prefix_states(tokens, tags, intents, languages,
                                                         fast=True)),
        tokens[:, :prefixes].T.reshape(-1), tags[:, :prefixes].T.reshape(-1), prefix_ends + 1,
        prefix_intents, prefix_languages, max_length, UNRESTRICTED, sources=live_sources,
        uniforms=uniforms.reshape(rows, max_length, 2)[live])

    # D is left to right, so the continuations are scored by reading only them, starting
    # from D's state after the prefix: every rollout of a prefix shares that part of D's work.
    d_state = state_per_prefix((d_hidden, d_cell))
    scores = torch.zeros(rows, dtype=torch.get_default_dtype(), device=tokens.device)
    scores[live] = torch.sigmoid(discriminator.continuation_logits(
        continuation_tokens, continuation_tags, prefix_intents[live_sources],
        prefix_languages[live_sources],
        (d_state[0][:, live_sources], d_state[1][:, live_sources])))
    rollout_means = scores.view(rollouts, prefixes, batch).mean(dim=0).T
    return _finish(rollout_means, whole, tags, discriminator.pad_tag)


@torch.no_grad()
def rollout_rewards_reference(rollout_generator: Generator, discriminator: Discriminator, tokens,
                              tags, intents, languages, rollouts: int, *,
                              uniforms: torch.Tensor | None = None,
                              generator: torch.Generator | None = None) -> torch.Tensor:
    """The same rewards, one prefix and one rollout at a time (SeqGAN's original loop)."""
    batch, steps = tokens.shape
    max_length = rollout_generator.max_length
    if uniforms is None:
        uniforms = rollout_uniforms(rollouts, tokens, max_length, generator)
    rollout_means = torch.zeros(batch, steps - 1, dtype=torch.get_default_dtype(),
                                device=tokens.device)
    tables = rollout_generator.sampling_tables()
    for prefix_end in range(steps - 1):
        prefix_tokens = tokens[:, :prefix_end + 1]
        prefix_tags = tags[:, :prefix_end + 1]
        for rollout in range(rollouts):
            hidden, cell = rollout_generator.prefix_states(prefix_tokens, prefix_tags, intents,
                                                           languages)
            state = (hidden[:, -1].unsqueeze(0).contiguous(), cell[:, -1].unsqueeze(0).contiguous())
            positions = torch.full((batch,), prefix_end + 1, dtype=torch.long,
                                   device=tokens.device)
            continuation_tokens, continuation_tags = rollout_generator.continue_sequences(
                state, prefix_tokens[:, -1], prefix_tags[:, -1], positions, intents, languages,
                max_length, UNRESTRICTED, tables=tables, uniforms=uniforms[rollout, prefix_end])
            whole_tokens = torch.cat([prefix_tokens, continuation_tokens], dim=1)
            whole_tags = torch.cat([prefix_tags, continuation_tags], dim=1)
            scores = torch.sigmoid(discriminator.sequence_logits(whole_tokens, whole_tags,
                                                                 intents, languages))
            rollout_means[:, prefix_end] += scores / rollouts
    whole = torch.sigmoid(discriminator.sequence_logits(tokens, tags, intents, languages))
    return _finish(rollout_means, whole, tags, discriminator.pad_tag)


@dataclass(frozen=True)
class RewardInputs:
    """What any reward may read: the models and a batch of sampled sequences (see module doc)."""
    rollout_generator: Generator
    discriminator: Discriminator
    tokens: torch.Tensor
    tags: torch.Tensor
    intents: torch.Tensor
    languages: torch.Tensor
    rollouts: int


@dataclass(frozen=True)
class Reward:
    compute: Callable[[RewardInputs], torch.Tensor]  # -> (B, T) rewards, 0 on padding steps
    summary: str  # one line, for error messages and help texts


REWARDS: dict[str, Reward] = {
    "token": Reward(lambda i: token_rewards(i.discriminator, i.tokens, i.tags, i.intents,
                                            i.languages),
                    "D's score of each prefix"),
    "rollout": Reward(lambda i: rollout_rewards(i.rollout_generator, i.discriminator, i.tokens,
                                                i.tags, i.intents, i.languages, i.rollouts),
                      "SeqGAN: mean D score of N rollouts of each prefix"),
    "sentence": Reward(lambda i: sentence_rewards(i.discriminator, i.tokens, i.tags, i.intents,
                                                  i.languages),
                       "D's score of the whole sequence, at every step"),
}


def reward(name: str) -> Reward:
    """The registered reward ``name``; ``ValueError`` naming the registered ones otherwise."""
    if name not in REWARDS:
        raise ValueError(f"reward: {name!r} is not one of {', '.join(REWARDS)}")
    return REWARDS[name]


def compute_rewards(name: str, rollout_generator: Generator, discriminator: Discriminator,
                    tokens, tags, intents, languages, rollouts: int = 8) -> torch.Tensor:
    return reward(name).compute(RewardInputs(rollout_generator, discriminator, tokens, tags,
                                             intents, languages, rollouts))
