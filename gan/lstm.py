"""What G and D share about their LSTMs: the state type, the state after every step, and a fast
step for sampling and scoring without gradients."""

from __future__ import annotations

import torch
from torch import nn

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


class EmbeddingLSTMStep:
    """One step of a one-layer ``nn.LSTM`` whose input is the concatenation
    ``[token embedding; tag embedding; intent embedding; language embedding]`` (G's and D's),
    for inference (no dropout, no gradient).

    Each embedding table is multiplied by its slice of the input weights once, so a step's
    input gates are a sum of four table rows and the only matrix product left per step is the
    recurrent one: on a CPU this takes about a third off every step of sampling and scoring.
    Mathematically the same as the module's forward pass; floats may differ in the last bits.
    """

    def __init__(self, lstm: nn.LSTM, token: nn.Embedding, tag: nn.Embedding,
                 intent: nn.Embedding, language: nn.Embedding):
        with torch.no_grad():
            parts = torch.split(lstm.weight_ih_l0, [token.embedding_dim, tag.embedding_dim,
                                                    intent.embedding_dim,
                                                    language.embedding_dim], dim=1)
            self.token_gates = token.weight @ parts[0].T
            self.tag_gates = tag.weight @ parts[1].T
            self.intent_gates = intent.weight @ parts[2].T + lstm.bias_ih_l0 + lstm.bias_hh_l0
            self.language_gates = language.weight @ parts[3].T
            self.recurrent = lstm.weight_hh_l0.T.contiguous()
        self.hidden_size = lstm.hidden_size

    def condition_gates(self, intents: torch.Tensor, languages: torch.Tensor) -> torch.Tensor:
        """The part of the input gates fixed for a whole sequence (with the biases), (R, 4H)."""
        return self.intent_gates[intents] + self.language_gates[languages]

    def zero_state(self, rows: int) -> LSTMState:
        zeros = self.recurrent.new_zeros(rows, self.hidden_size)
        return zeros, zeros

    def __call__(self, condition_gates: torch.Tensor, tokens: torch.Tensor, tags: torch.Tensor,
                 state: LSTMState) -> LSTMState:
        """Read one (token, tag) step per row: two (R, H) states -> the states after it."""
        hidden, cell = state
        inputs = condition_gates + self.token_gates[tokens] + self.tag_gates[tags]
        in_gate, forget_gate, candidate, out_gate = torch.addmm(
            inputs, hidden, self.recurrent).chunk(4, dim=1)
        cell = torch.sigmoid(forget_gate) * cell + torch.sigmoid(in_gate) * torch.tanh(candidate)
        return torch.sigmoid(out_gate) * torch.tanh(cell), cell

