"""The joint intent + slot model: one encoder over sub-word pieces, two heads.

* Input: the SentencePiece ids of an utterance (``nlu.tokenizer``), shared by all languages.
* Encoder: a BiLSTM (packed sequences, so padding costs nothing) or a Transformer encoder.
  Optionally (``char_filters > 0``) every piece's input also carries its word's character
  feature: a small CNN over the word's characters, max-pooled (spelling and shape of words
  the sub-word vocabulary splits into rare pieces).
* Intent head: a linear layer on the max-pooled encoding of all pieces.
* Slot head: one prediction per *word*, read from the encoding of the word's first piece
  (the other pieces are masked out; with ``slot_last_piece`` the word's last piece is
  concatenated to it); a softmax classifier or a linear-chain CRF (``pytorch-crf``).
  Optionally the predicted intent distribution is an extra slot input
  (``intent_conditioned_slots``), so the intent can veto slot types it never has.
* Loss: intent cross-entropy + slot loss (CRF negative log-likelihood or summed
  cross-entropy, both per utterance).

Batches are dicts of tensors made by ``nlu.training``:
``piece_ids`` [B, P] (0 = padding), ``piece_lengths`` [B], ``first_piece`` and
``last_piece`` [B, W], ``word_mask`` [B, W], with character features ``word_chars``
[B, W, C] (``char_ids``, 0 = padding) and ``piece_word`` [B, P] (the word of each piece) and,
for training, ``intent`` [B] and ``tags`` [B, W].
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torchcrf import CRF

from nlu.config import strict_from_dict
from nlu.devices import DeviceConfig
from nlu.embeddings import embedding_matrix, read_vec
from nlu.tokenizer import PAD_ID, UNK_ID, WORD_BOUNDARY
from nlu.viterbi import viterbi_decode

ENCODERS = ("bilstm", "transformer")
SLOT_HEADS = ("crf", "softmax")
# Characters are hashed into a fixed table (no character vocabulary to save; any script
# works; rare collisions only share an embedding). Id 0 is padding.
CHAR_BUCKETS = 2048
MAX_WORD_CHARS = 24  # longer words keep their first 24 characters
CHAR_KERNEL = 3  # characters each CNN filter sees
# Fields that fix the network's shape: a fine-tuned model inherits them from its parent.
ARCHITECTURE_FIELDS = ("encoder", "slot_head", "vocab_size", "tokenizer_model_type",
                       "embedding_dim", "hidden_dim", "num_layers", "num_heads",
                       "intent_conditioned_slots", "char_filters", "char_embedding_dim",
                       "slot_last_piece")


MAX_SIZE = 2 ** 31 - 1  # far above any sane size or epoch count; larger overflow in torch


def _check_range(name: str, value, *, low, high, above_low: bool = False,
                 below_high: bool = False) -> None:
    """``value`` within [low, high] (or open at an end), not NaN; else "name: ..." ValueError.
    An integer range (``low`` an int) takes integers only; no range takes a bool or a string."""
    integer = isinstance(low, int)
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise ValueError(f"{name}: must be {'an integer' if integer else 'a number'}, "
                         f"got {type(value).__name__}")
    inside = (value > low if above_low else value >= low) and (
        value < high if below_high else value <= high)
    if not inside:  # NaN fails every comparison
        opening, closing = "(" if above_low else "[", ")" if below_high else "]"
        raise ValueError(f"{name}: must be in {opening}{low}, {high}{closing}, got {value}")


@dataclass
class JointModelConfig:
    """Everything that defines a joint model and how it is trained."""

    encoder: Literal["bilstm", "transformer"] = "bilstm"
    slot_head: Literal["crf", "softmax"] = "crf"
    vocab_size: int = 8000  # upper bound; a small corpus yields fewer pieces
    tokenizer_model_type: Literal["unigram", "bpe"] = "unigram"
    embedding_dim: int = 128  # replaced by the .vec file's dimension when embeddings_path is set
    hidden_dim: int = 256  # encoder output size (both LSTM directions together)
    num_layers: int = 2
    num_heads: int = 4  # Transformer only
    intent_conditioned_slots: bool = False  # feed intent probabilities to the slot head
    char_filters: int = 0  # > 0: a character-CNN word feature of this size (0 = none)
    char_embedding_dim: int = 32
    slot_last_piece: bool = False  # slot head reads each word's last piece too
    dropout: float = 0.3
    piece_dropout: float = 0.0  # chance a training piece is replaced by <unk> (robustness to OOV)
    lr: float = 2e-3
    weight_decay: float = 0.0
    warmup_fraction: float = 0.05  # linear warm-up, then linear decay to 0 at max_epochs
    gradient_clip: float = 5.0
    batch_size: int = 32
    max_epochs: int = 30
    patience: int = 5  # epochs without a better dev score before early stopping
    seed: int = 0
    embeddings_path: str | None = None
    freeze_encoder: bool = False  # train only the heads (pretrain-then-fine-tune regime)
    # One torch thread per job: with several jobs sharing a few cores, more threads per job
    # oversubscribe the CPU and make every training step many times slower.
    num_threads: int = 1
    enable_progress_bar: bool = True
    devices: DeviceConfig = dataclasses.field(default_factory=DeviceConfig)  # where it trains

    def __post_init__(self) -> None:
        self.devices = DeviceConfig.from_dict(self.devices)  # a mapping from YAML or JSON
        # Checked here, so that a job is refused when submitted, not a minute into training
        for name in ("vocab_size", "embedding_dim", "hidden_dim", "num_layers", "num_heads",
                     "char_embedding_dim", "batch_size", "max_epochs", "num_threads"):
            _check_range(name, getattr(self, name), low=1, high=MAX_SIZE)
        for name in ("char_filters", "patience"):
            _check_range(name, getattr(self, name), low=0, high=MAX_SIZE)
        _check_range("seed", self.seed, low=0, high=2 ** 32 - 1)  # numpy's seed range
        for name in ("dropout", "piece_dropout", "warmup_fraction"):
            _check_range(name, getattr(self, name), low=0.0, high=1.0, below_high=True)
        _check_range("weight_decay", self.weight_decay, low=0.0, high=MAX_SIZE)
        for name in ("lr", "gradient_clip"):
            _check_range(name, getattr(self, name), low=0.0, high=MAX_SIZE, above_low=True)
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder must be one of {ENCODERS}, not {self.encoder!r}")
        if self.slot_head not in SLOT_HEADS:
            raise ValueError(f"slot_head must be one of {SLOT_HEADS}, not {self.slot_head!r}")
        if self.encoder == "bilstm" and self.hidden_dim % 2:
            raise ValueError("hidden_dim must be even for a BiLSTM (two directions)")
        if self.encoder == "transformer" and self.hidden_dim % self.num_heads:
            raise ValueError("hidden_dim must be a multiple of num_heads")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "JointModelConfig":
        return strict_from_dict(cls, values)


def char_ids(word: str) -> list[int]:
    """A word's characters as ids in ``1..CHAR_BUCKETS-1`` (hashed code points)."""
    return [1 + ord(character) % (CHAR_BUCKETS - 1) for character in word[:MAX_WORD_CHARS]]


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """The Transformer paper's fixed position encodings, [length, dim]."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    encoding = torch.zeros(length, dim)
    encoding[:, 0::2] = torch.sin(position * frequency)
    encoding[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return encoding


def pretrained_piece_matrix(pieces: list[str], vec_path: Path | str,
                            seed: int = 0) -> tuple[np.ndarray, int]:
    """Embedding rows for ``pieces`` from a ``.vec`` file; returns the matrix and hits.

    A word-initial piece ``▁word`` takes the vector of ``word`` (or ``word`` lower-cased);
    continuation pieces and special pieces have no word of their own and start random.
    """
    words = [piece[1:] if piece.startswith(WORD_BOUNDARY) and len(piece) > 1 else ""
             for piece in pieces]
    wanted = {word for word in words if word} | {word.lower() for word in words if word}
    vectors, dim = read_vec(vec_path, keep=wanted)
    matrix, found = embedding_matrix(words, vectors, dim, seed=seed)
    matrix[PAD_ID] = 0.0
    return matrix, found


class JointNluModule(pl.LightningModule):
    """Encoder + intent head + per-word slot head, trained with one joint loss."""

    def __init__(self, config: JointModelConfig, vocab_size: int, num_intents: int,
                 num_tags: int):
        super().__init__()
        self.config = config
        self.embedding = nn.Embedding(vocab_size, config.embedding_dim, padding_idx=PAD_ID)
        input_dim = config.embedding_dim + config.char_filters
        if config.char_filters:
            self.char_embedding = nn.Embedding(CHAR_BUCKETS, config.char_embedding_dim,
                                               padding_idx=0)
            self.char_cnn = nn.Conv1d(config.char_embedding_dim, config.char_filters,
                                      CHAR_KERNEL, padding=CHAR_KERNEL // 2)
        if config.encoder == "bilstm":
            self.encoder = nn.LSTM(input_dim, config.hidden_dim // 2,
                                   num_layers=config.num_layers, bidirectional=True,
                                   batch_first=True,
                                   dropout=config.dropout if config.num_layers > 1 else 0.0)
        else:
            self.input_projection = nn.Linear(input_dim, config.hidden_dim)
            layer = nn.TransformerEncoderLayer(config.hidden_dim, config.num_heads,
                                               dim_feedforward=4 * config.hidden_dim,
                                               dropout=config.dropout, batch_first=True,
                                               norm_first=True)
            self.encoder = nn.TransformerEncoder(layer, config.num_layers,
                                                 enable_nested_tensor=False)
        self.dropout = nn.Dropout(config.dropout)
        self.intent_classifier = nn.Linear(config.hidden_dim, num_intents)
        word_dim = config.hidden_dim * (2 if config.slot_last_piece else 1)
        slot_inputs = word_dim + (num_intents if config.intent_conditioned_slots else 0)
        self.slot_classifier = nn.Linear(slot_inputs, num_tags)
        self.crf = CRF(num_tags, batch_first=True) if config.slot_head == "crf" else None
        if config.freeze_encoder:
            self.freeze_encoder_parameters()

    def encoder_modules(self) -> list[nn.Module]:
        modules = [self.embedding, self.encoder]
        if self.config.encoder == "transformer":
            modules.append(self.input_projection)
        if self.config.char_filters:
            modules += [self.char_embedding, self.char_cnn]
        return modules

    def freeze_encoder_parameters(self) -> None:
        for module in self.encoder_modules():
            module.requires_grad_(False)

    def set_piece_embeddings(self, matrix: np.ndarray) -> None:
        with torch.no_grad():
            self.embedding.weight.copy_(torch.from_numpy(matrix))

    def load_parent_weights(self, parent: "JointNluModule") -> None:
        """Start from ``parent``'s weights. Label dimensions may have grown: the parent's
        labels come first in this model's label lists, so its rows are copied as a prefix."""
        own = self.state_dict()
        with torch.no_grad():
            for name, source in parent.state_dict().items():
                target = own[name]
                if source.dim() != target.dim() or any(
                        s > t for s, t in zip(source.shape, target.shape)):
                    raise ValueError(f"cannot fit parent weight {name} {tuple(source.shape)} "
                                     f"into {tuple(target.shape)}")
                target[tuple(slice(0, size) for size in source.shape)].copy_(source)

    # -- forward ---------------------------------------------------------------------------

    def char_features(self, word_chars: torch.Tensor) -> torch.Tensor:
        """Character ids [B, W, C] -> one max-pooled CNN feature per word [B, W, filters]."""
        batch, words, length = word_chars.shape
        embedded = self.char_embedding(word_chars.view(batch * words, length))
        convolved = torch.relu(self.char_cnn(embedded.transpose(1, 2)))  # [B*W, filters, C]
        # Padding characters count as 0, below or equal to every real (ReLU) value, so a
        # word's feature does not depend on how long the batch's longest word is.
        padding = (word_chars.view(batch * words, 1, length) == 0)
        pooled = convolved.masked_fill(padding, 0.0).max(dim=2).values
        return pooled.view(batch, words, -1)

    def encode(self, piece_ids: torch.Tensor, piece_lengths: torch.Tensor,
               piece_features: torch.Tensor | None = None) -> torch.Tensor:
        """Piece ids [B, P] (and extra per-piece inputs [B, P, F], e.g. the character
        feature of each piece's word) -> encodings [B, P, hidden_dim] (padding is zero)."""
        if self.training and self.config.piece_dropout > 0:
            dropped = torch.rand(piece_ids.shape, device=piece_ids.device) < self.config.piece_dropout
            piece_ids = piece_ids.masked_fill(dropped & (piece_ids != PAD_ID), UNK_ID)
        embedded = self.embedding(piece_ids)
        if piece_features is not None:
            embedded = torch.cat([embedded, piece_features], dim=-1)
        embedded = self.dropout(embedded)
        if self.config.encoder == "bilstm":
            lengths = piece_lengths.cpu()
            # Longest first (as inference batches are): no reordering of the rows in and out
            longest_first = bool((lengths[:-1] >= lengths[1:]).all())
            packed = pack_padded_sequence(embedded, lengths, batch_first=True,
                                          enforce_sorted=longest_first)
            encoded, _ = self.encoder(packed)
            encoded, _ = pad_packed_sequence(encoded, batch_first=True,
                                             total_length=piece_ids.size(1))
            return encoded
        hidden = self.input_projection(embedded)
        hidden = hidden + sinusoidal_positions(hidden.size(1), hidden.size(2)).to(hidden)
        padding = piece_ids == PAD_ID
        encoded = self.encoder(hidden, src_key_padding_mask=padding)
        return encoded.masked_fill(padding.unsqueeze(-1), 0.0)

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Intent logits [B, intents] and per-word slot scores [B, W, tags]."""
        piece_features = None
        if self.config.char_filters:
            words = self.char_features(batch["word_chars"])
            piece_word = batch["piece_word"].unsqueeze(-1).expand(-1, -1, words.size(-1))
            piece_features = words.gather(1, piece_word)
        encoded = self.encode(batch["piece_ids"], batch["piece_lengths"], piece_features)
        padding = (batch["piece_ids"] == PAD_ID).unsqueeze(-1)
        pooled = encoded.masked_fill(padding, float("-inf")).max(dim=1).values
        intent_logits = self.intent_classifier(self.dropout(pooled))
        word_states = self.pieces_of_words(encoded, batch["first_piece"])
        if self.config.slot_last_piece:
            word_states = torch.cat(
                [word_states, self.pieces_of_words(encoded, batch["last_piece"])], dim=-1)
        word_states = self.dropout(word_states)
        if self.config.intent_conditioned_slots:
            intent_probabilities = intent_logits.softmax(dim=-1).unsqueeze(1)
            word_states = torch.cat(
                [word_states, intent_probabilities.expand(-1, word_states.size(1), -1)], dim=-1)
        slot_scores = self.slot_classifier(word_states)
        return intent_logits, slot_scores

    @staticmethod
    def pieces_of_words(encoded: torch.Tensor, piece_index: torch.Tensor) -> torch.Tensor:
        """The encodings [B, W, hidden] at one piece index [B, W] per word."""
        return encoded.gather(1, piece_index.unsqueeze(-1).expand(-1, -1, encoded.size(-1)))

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        intent_logits, slot_scores = self(batch)
        intent_loss = nn.functional.cross_entropy(intent_logits, batch["intent"])
        mask = batch["word_mask"]
        if self.crf is not None:
            slot_loss = -self.crf(slot_scores, batch["tags"], mask=mask, reduction="mean")
        else:
            per_word = nn.functional.cross_entropy(slot_scores.transpose(1, 2), batch["tags"],
                                                   reduction="none")
            slot_loss = (per_word * mask).sum() / mask.size(0)
        return intent_loss + slot_loss

    @torch.inference_mode()
    def decode(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, list[list[int]]]:
        """Intent probabilities per utterance ([B, intents], softmax) and the best tag id per
        word (not yet IOB2-repaired). The CRF's best tags come from ``nlu.viterbi`` (exactly
        ``self.crf.decode``'s, batched)."""
        intent_logits, slot_scores = self(batch)
        mask = batch["word_mask"]
        if self.crf is not None:
            tag_ids = viterbi_decode(self.crf, slot_scores, mask)
        else:
            best = slot_scores.argmax(dim=-1).tolist()
            tag_ids = [row[:length] for row, length in zip(best, mask.sum(dim=1).tolist())]
        return intent_logits.softmax(dim=-1), tag_ids

    # -- Lightning hooks -------------------------------------------------------------------

    def training_step(self, batch: dict[str, torch.Tensor], batch_index: int) -> torch.Tensor:
        loss = self.loss(batch)
        # sync_dist: under DDP the logged loss is over all processes' shares of the batches
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=batch["piece_ids"].size(0), sync_dist=True)
        return loss

    def configure_optimizers(self):
        parameters = [parameter for parameter in self.parameters() if parameter.requires_grad]
        optimizer = torch.optim.AdamW(parameters, lr=self.config.lr,
                                      weight_decay=self.config.weight_decay)
        total_steps = max(1, int(self.trainer.estimated_stepping_batches))
        warmup_steps = max(1, int(self.config.warmup_fraction * total_steps))

        def warmup_then_linear_decay(step: int) -> float:
            if step < warmup_steps:
                return (step + 1) / warmup_steps
            return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_then_linear_decay)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
