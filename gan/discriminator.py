"""The discriminator D: is this annotated utterance real or generated?

D reads the same step sequences G writes — (token, tag) pairs ending with EOS — together
with the intent and language, so an utterance with a wrong intent or wrong slot tags is as
detectable as one with odd words. A left-to-right LSTM makes the score at step s depend on
steps 0..s only, which gives a score for every prefix (the ``token`` reward) and, at the
last step, for the whole sequence (the ``sentence`` and ``rollout`` rewards).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from gan.lstm import EmbeddingLSTMStep, LSTMState, WeightCache, states_after_each_step
from gan.vocab import PAD, PAD_ID, Vocabulary


class Discriminator(WeightCache, nn.Module):
    def __init__(self, vocab: Vocabulary, *, embedding_dim: int = 64, tag_dim: int = 16,
                 condition_dim: int = 16, hidden_dim: int = 64, dropout: float = 0.2,
                 embeddings: np.ndarray | None = None):
        super().__init__()
        self.token_embedding = nn.Embedding(len(vocab.tokens), embedding_dim, padding_idx=PAD_ID)
        if embeddings is not None:
            self.token_embedding.weight.data.copy_(torch.as_tensor(embeddings))
        self.tag_embedding = nn.Embedding(len(vocab.tags), tag_dim)
        self.intent_embedding = nn.Embedding(len(vocab.intents), condition_dim)
        self.language_embedding = nn.Embedding(len(vocab.languages), condition_dim)
        self.lstm = nn.LSTM(embedding_dim + tag_dim + 2 * condition_dim, hidden_dim,
                            batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Sequential(nn.Linear(hidden_dim, hidden_dim), nn.ReLU(),
                                  nn.Linear(hidden_dim, 1))
        self.pad_tag = vocab.tag_index[PAD]

    def _inputs(self, tokens: torch.Tensor, tags: torch.Tensor, intents: torch.Tensor,
                languages: torch.Tensor) -> torch.Tensor:
        condition = torch.cat([self.intent_embedding(intents), self.language_embedding(languages)],
                              dim=-1).unsqueeze(1).expand(-1, tokens.size(1), -1)
        return self.dropout(torch.cat([self.token_embedding(tokens), self.tag_embedding(tags),
                                       condition], dim=-1))

    def hidden_states(self, tokens: torch.Tensor, tags: torch.Tensor, intents: torch.Tensor,
                      languages: torch.Tensor, state: LSTMState | None = None
                      ) -> tuple[torch.Tensor, LSTMState]:
        """LSTM outputs for every step (B, T, H) and the state after the last, starting from
        ``state`` (the state after an earlier part of the same sequences) if given."""
        return self.lstm(self._inputs(tokens, tags, intents, languages), state)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Real-vs-generated logit for LSTM outputs (..., H) -> (...)."""
        return self.head(self.dropout(hidden)).squeeze(-1)

    def prefix_logits(self, tokens: torch.Tensor, tags: torch.Tensor, intents: torch.Tensor,
                      languages: torch.Tensor) -> torch.Tensor:
        """Real-vs-generated logit of every prefix (steps 0..s), (B, T)."""
        return self.logits(self.hidden_states(tokens, tags, intents, languages)[0])

    def sequence_logits(self, tokens: torch.Tensor, tags: torch.Tensor, intents: torch.Tensor,
                        languages: torch.Tensor) -> torch.Tensor:
        """Logit of each whole sequence (its last non-padding step), (B,)."""
        hidden, _ = self.hidden_states(tokens, tags, intents, languages)
        return self.logits(last_hidden(hidden, tags, self.pad_tag))

    def prefix_states(self, tokens: torch.Tensor, tags: torch.Tensor, intents: torch.Tensor,
                      languages: torch.Tensor, *, fast: bool = False) -> LSTMState:
        """LSTM state after steps 0..s, for every s: two (B, T, H). Lets the rollouts of a
        prefix be scored by reading only their continuations. ``fast``: the same states from
        ``scoring_step`` (no dropout, no gradient)."""
        if fast:
            step = self.scoring_step()
            with torch.no_grad():
                return step.states_after_each_step(step.condition_rows(intents, languages),
                                                   tokens, tags)
        return states_after_each_step(self.lstm, self._inputs(tokens, tags, intents, languages))

    def scoring_step(self) -> EmbeddingLSTMStep:
        """D's LSTM step for scoring without gradients, rebuilt only after a weight changed."""
        return self.derived("scoring_step", lambda: EmbeddingLSTMStep(
            self.lstm, self.token_embedding, self.tag_embedding, self.intent_embedding,
            self.language_embedding))

    @torch.no_grad()
    def continuation_logits(self, tokens: torch.Tensor, tags: torch.Tensor, intents: torch.Tensor,
                            languages: torch.Tensor, state: LSTMState) -> torch.Tensor:
        """Logit of each whole sequence, (R,), from D's ``state`` (two (1, R, H)) after its
        first part and the rest of it, ``tokens, tags`` (R, T), PAD after the end.

        Each row is read only up to its own end: rows are sorted by length, so the rows still
        reading at a step are a leading slice. Rollouts end at very different lengths, and
        reading them padded to the longest was most of D's work.
        """
        step = self.scoring_step()
        lengths = (tags != self.pad_tag).sum(dim=1)
        order = lengths.argsort(descending=True)
        tokens, tags, intents, languages = (values.index_select(0, order)
                                            for values in (tokens, tags, intents, languages))
        # copies: updated in place
        hidden, cell = state[0][0].index_select(0, order), state[1][0].index_select(0, order)
        conditions = step.condition_rows(intents, languages)
        reading = (lengths.unsqueeze(0) > torch.arange(tokens.size(1), device=tokens.device).unsqueeze(1)).sum(dim=1)
        for position, rows in enumerate(reading.tolist()):
            hidden[:rows], cell[:rows] = step(conditions[:rows], tokens[:rows, position],
                                              tags[:rows, position], (hidden[:rows], cell[:rows]))
        logits = torch.empty_like(hidden[:, 0])
        logits[order] = self.logits(hidden)
        return logits


def last_step(tags: torch.Tensor, pad_tag: int) -> torch.Tensor:
    """Index of the last non-padding step of each row (B,)."""
    return (tags != pad_tag).sum(dim=1).clamp(min=1) - 1


def last_hidden(hidden: torch.Tensor, tags: torch.Tensor, pad_tag: int) -> torch.Tensor:
    """(B, T, H) LSTM outputs -> (B, H) at each row's last non-padding step."""
    index = last_step(tags, pad_tag).view(-1, 1, 1).expand(-1, 1, hidden.size(-1))
    return hidden.gather(1, index).squeeze(1)
