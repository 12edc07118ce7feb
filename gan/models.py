"""Build a generator/discriminator pair from a ``GanConfig``, with its initial embeddings."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from gan.config import GanConfig
from gan.vocab import Vocabulary

if TYPE_CHECKING:
    import numpy as np

    from gan.discriminator import Discriminator
    from gan.generator import Generator

log = logging.getLogger(__name__)


def load_embeddings(config: GanConfig, vocab: Vocabulary, nlu_model=None) -> "np.ndarray | None":
    """The initial token embedding matrix, or None for a random one."""
    from nlu.embeddings import embedding_matrix, read_vec

    if config.embeddings is None:
        return None
    if config.embeddings == "nlu" or config.embeddings.startswith("nlu:"):
        if config.embeddings != "nlu":
            from nlu.training import TrainedNlu

            nlu_model = TrainedNlu.load(config.embeddings[len("nlu:"):])
        if nlu_model is None:
            raise ValueError("embeddings: 'nlu' needs the nlu_model argument")
        vectors = nlu_model.word_vectors(vocab.tokens[4:])  # the words, not the specials
        dim = len(next(iter(vectors.values())))
    else:
        words = set(vocab.tokens)
        vectors, dim = read_vec(config.embeddings, keep=words | {w.lower() for w in words})
    matrix, found = embedding_matrix(vocab.tokens, vectors, dim, seed=config.seed)
    log.info("embeddings: %d of %d words found in %s", found, len(vocab.tokens), config.embeddings)
    return matrix


def build_models(config: GanConfig, vocab: Vocabulary, embeddings: "np.ndarray | None"
                 ) -> tuple["Generator", "Discriminator"]:
    from gan.discriminator import Discriminator
    from gan.generator import Generator

    embedding_dim = config.embedding_dim
    generator = Generator(vocab, embedding_dim=embedding_dim, tag_dim=config.tag_dim,
                          condition_dim=config.condition_dim, hidden_dim=config.hidden_dim,
                          dropout=config.dropout, max_length=config.max_length,
                          embeddings=embeddings, freeze_embeddings=config.freeze_embeddings)
    discriminator = Discriminator(vocab, embedding_dim=embedding_dim, tag_dim=config.tag_dim,
                                  condition_dim=config.condition_dim,
                                  hidden_dim=config.d_hidden_dim, dropout=config.dropout,
                                  embeddings=embeddings)
    return generator, discriminator
