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

from gan.vocab import PAD, PAD_ID, Vocabulary


class Discriminator(nn.Module):
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

    def prefix_logits(self, tokens: torch.Tensor, tags: torch.Tensor, intents: torch.Tensor,
                      languages: torch.Tensor) -> torch.Tensor:
        """Real-vs-generated logit of every prefix (steps 0..s), (B, T)."""
        condition = torch.cat([self.intent_embedding(intents), self.language_embedding(languages)],
                              dim=-1).unsqueeze(1).expand(-1, tokens.size(1), -1)
        inputs = torch.cat([self.token_embedding(tokens), self.tag_embedding(tags), condition],
                           dim=-1)
        hidden, _ = self.lstm(self.dropout(inputs))
        return self.head(self.dropout(hidden)).squeeze(-1)

    def sequence_logits(self, tokens: torch.Tensor, tags: torch.Tensor, intents: torch.Tensor,
                        languages: torch.Tensor) -> torch.Tensor:
        """Logit of each whole sequence (its last non-padding step), (B,)."""
        logits = self.prefix_logits(tokens, tags, intents, languages)
        return logits.gather(1, last_step(tags, self.pad_tag).unsqueeze(1)).squeeze(1)


def last_step(tags: torch.Tensor, pad_tag: int) -> torch.Tensor:
    """Index of the last non-padding step of each row (B,)."""
    return (tags != pad_tag).sum(dim=1).clamp(min=1) - 1
