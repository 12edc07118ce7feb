"""What G and D share about their LSTMs: the state type, the state after every step, and a fast
step for sampling and scoring without gradients, kept until a weight changes."""

from __future__ import annotations

from typing import Callable, TypeVar

import torch
from torch import nn

Derived = TypeVar("Derived")

LSTMState = tuple[torch.Tensor, torch.Tensor]


def states_after_each_step(lstm: nn.LSTM, inputs: torch.Tensor) -> LSTMState:
    """``(hidden, cell)``, each (B, T, H): the state of a one-layer, batch-first ``lstm`` after
    reading ``inputs[:, :s + 1]``, for every s. The cell state is not among ``lstm``'s
    outputs, hence one call per step; rollouts resume from these states."""
    hidden_states, cell_states = [], []
    state = None
    for step in range(inputs.size(1)):
        _, state = lstm(inputs[:, step:step + 1], state)
        hidden_states.append(state[0][0])
        cell_states.append(state[1][0])
    return torch.stack(hidden_states, dim=1), torch.stack(cell_states, dim=1)


class WeightCache:
    """Mix-in for modules that keep values derived from their weights (fast inference tables):
    ``derived(name, build)`` rebuilds a value only after a weight changed — every in-place
    update (an optimizer step, ``load_state_dict``) bumps a tensor's version. Not a fused
    optimizer's step: on torch 2.13 ``Adam(fused=True)`` leaves the versions as they were,
    so these models are trained with the default one. The values are not module attributes
    and are dropped from pickles and deep copies."""

    def derived(self, name: str, build: Callable[[], Derived]) -> Derived:
        versions = tuple(parameter._version for parameter in self.parameters())
        cache = self.__dict__.setdefault("_weight_cache", {})
        if name not in cache or cache[name][0] != versions:
            cache[name] = (versions, build())
        return cache[name][1]

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_weight_cache", None)
        return state


class EmbeddingLSTMStep:
    """One step of a one-layer ``nn.LSTM`` whose input is the concatenation
    ``[token embedding; tag embedding; intent embedding; language embedding]`` (G's and D's),
    for inference (no dropout, no gradient).

    Each embedding table is multiplied by its slice of the input weights once, and the intent
    and language parts (with the biases) are summed once per (intent, language) pair, so a
    step's input gates are a sum of three rows of one table (one ``embedding_bag``) and the
    only matrix product left per step is the recurrent one: on a CPU this takes about a third
    off every step of sampling and scoring. ``tanh`` is computed as ``2 sigmoid(2x) - 1`` (the
    candidate gate's weights are doubled, so all four gates are one ``sigmoid``): on some
    CPU builds of torch ``tanh`` costs several times ``sigmoid``, on others the same, and the
    form is never slower (``benchmarks/gan_speed.py`` times the whole step).
    Mathematically the same as the module's forward pass; floats may differ in the last bits.
    """

    def __init__(self, lstm: nn.LSTM, token: nn.Embedding, tag: nn.Embedding,
                 intent: nn.Embedding, language: nn.Embedding):
        # Rows of the one gate table: tokens, then tags, then (intent, language) pairs.
        self.tag_offset = token.num_embeddings
        self.condition_offset = self.tag_offset + tag.num_embeddings
        self.language_count = language.num_embeddings
        self.hidden_size = lstm.hidden_size
        tables = (token, tag, intent, language)
        with torch.no_grad():
            # Gate rows in the order (input, forget, output, candidate): the three sigmoids
            # of a step are then one call.
            order = torch.arange(4 * lstm.hidden_size, device=lstm.bias_ih_l0.device
                                 ).view(4, -1)[[0, 1, 3, 2]].flatten()
            candidate_doubled = torch.ones_like(lstm.bias_ih_l0)
            candidate_doubled[3 * lstm.hidden_size:] = 2.0
            token_part, tag_part, intent_part, language_part = torch.split(
                lstm.weight_ih_l0.index_select(0, order) * candidate_doubled.unsqueeze(1),
                [table.embedding_dim for table in tables], dim=1)
            # each product written in place: the table is rebuilt after every weight update
            self.gates = torch.empty(
                self.condition_offset + intent.num_embeddings * language.num_embeddings,
                4 * lstm.hidden_size, device=lstm.bias_ih_l0.device)
            torch.mm(token.weight, token_part.T, out=self.gates[:self.tag_offset])
            torch.mm(tag.weight, tag_part.T, out=self.gates[self.tag_offset:self.condition_offset])
            biases = (lstm.bias_ih_l0 + lstm.bias_hh_l0).index_select(0, order) * candidate_doubled
            torch.add((intent.weight @ intent_part.T + biases).unsqueeze(1),
                      (language.weight @ language_part.T).unsqueeze(0),
                      out=self.gates[self.condition_offset:].view(
                          intent.num_embeddings, language.num_embeddings, -1))
            self.recurrent = (lstm.weight_hh_l0.index_select(0, order).T
                              * candidate_doubled).contiguous()

    def condition_rows(self, intents: torch.Tensor, languages: torch.Tensor) -> torch.Tensor:
        """The gate-table row fixed for a whole sequence, (R, 1)."""
        return (intents * self.language_count + languages + self.condition_offset).unsqueeze(1)

    def zero_state(self, rows: int) -> LSTMState:
        zeros = self.recurrent.new_zeros(rows, self.hidden_size)
        return zeros, zeros

    def states_after_each_step(self, condition_rows: torch.Tensor, tokens: torch.Tensor,
                               tags: torch.Tensor) -> LSTMState:
        """The module-level ``states_after_each_step`` for (B, T) input steps read from the
        zero state: two (B, T, H)."""
        state = self.zero_state(tokens.size(0))
        hidden_states, cell_states = [], []
        for step in range(tokens.size(1)):
            state = self(condition_rows, tokens[:, step], tags[:, step], state)
            hidden_states.append(state[0])
            cell_states.append(state[1])
        return torch.stack(hidden_states, dim=1), torch.stack(cell_states, dim=1)

    def __call__(self, condition_rows: torch.Tensor, tokens: torch.Tensor, tags: torch.Tensor,
                 state: LSTMState) -> LSTMState:
        """Read one (token, tag) step per row: two (R, H) states -> the states after it."""
        hidden, cell = state
        rows = torch.cat([tokens.unsqueeze(1), (tags + self.tag_offset).unsqueeze(1),
                          condition_rows], dim=1)
        gates = nn.functional.embedding_bag(rows, self.gates, mode="sum").addmm_(
            hidden, self.recurrent).sigmoid_()
        in_gate, forget_gate, out_gate, half_candidate = gates.chunk(4, dim=1)
        # cell = f * cell + i * tanh(x), tanh(x) = 2 sigmoid(2x) - 1
        cell = torch.addcmul(forget_gate * cell, in_gate, half_candidate, value=2).sub_(in_gate)
        return torch.sigmoid(cell * 2).mul_(2).sub_(1).mul_(out_gate), cell
