"""What G and D share about their LSTMs: the state type and the state after every step."""

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
