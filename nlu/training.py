"""Train the joint model (a Lightning job) and use the result (``TrainedNlu``).

``fit`` trains a shared SentencePiece vocabulary and a ``JointNluModule``:

* batches of similar length (less padding), reshuffled every epoch from ``config.seed``;
* a checkpoint every epoch in ``run_dir/checkpoints`` (``last.ckpt`` plus the best on dev),
  written atomically; ``resume=True`` continues from ``last.ckpt``;
* with a dev set: after each epoch the dev set is predicted exactly as ``TrainedNlu.predict``
  does, intent accuracy / slot F1 (seqeval, strict IOB2) / exact match are logged, training
  stops early on ``dev_score`` = mean of intent accuracy and slot F1, and the best epoch's
  weights are returned;
* if an MLflow run is active, per-epoch train loss and dev metrics go into that run.

``TrainedNlu`` is what every later step uses: ``predict`` returns ``Utterance`` records with
valid IOB2 tags, ``parse`` takes raw text or words and returns ``nlu.parse.Parse`` results
(intent probability, ranking, slots with offsets) through the same batched inference,
``save``/``load`` use a plain directory (``load`` also reads the MLflow pyfunc folder of
``nlu.pyfunc`` that wraps one), ``word_vectors`` hands the learned piece embeddings to the
GAN, and ``training`` says how the training ended (epochs, best epoch, optimiser steps, early
stop or epoch cap), so a comparison can show which of its models were still learning when the
cap stopped them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import MLFlowLogger
from pytorch_lightning.plugins.io import TorchCheckpointIO
from pytorch_lightning.utilities import rank_zero_info
from seqeval.metrics import f1_score
from seqeval.scheme import IOB2
from torch.utils.data import DataLoader, Sampler

from nlu.atomic import save_torch, write_json
from nlu.devices import DeviceConfig, is_primary_process
from nlu.rundir import RunDirLock
from nlu.model import (ARCHITECTURE_FIELDS, JointModelConfig, JointNluModule, char_ids,
                       pretrained_piece_matrix)
from nlu.parse import Parse, build_parse, check_language, prepare_inputs
from nlu.tokenizer import PAD_ID, SubwordTokenizer
from nlu.tracking import find_model_folder
from nlu.utterance import OUTSIDE, Utterance, repair_tags

WEIGHTS_FILENAME = "weights.pt"
CONFIG_FILENAME = "config.json"
LABELS_FILENAME = "labels.json"
TRAINING_FILENAME = "training.json"  # how the training ended (TrainedNlu.training)
TOKENIZER_DIRNAME = "tokenizer"


# -- labels and encoding -------------------------------------------------------------------

def label_lists(utterances: Sequence[Utterance], start: tuple[list[str], list[str]] = ([], [])
                ) -> tuple[list[str], list[str]]:
    """Intents and IOB2 tags known to a model: ``start``'s labels first (so a fine-tuned
    model keeps its parent's label ids), then new ones sorted. Every slot type gets both
    its ``B-`` and ``I-`` tag, and ``O`` is always there."""
    intents, tags = list(start[0]), list(start[1]) or [OUTSIDE]
    new_intents = sorted({u.intent for u in utterances} - set(intents))
    slot_types = sorted({slot for u in utterances for slot in u.slot_types})
    new_tags = [tag for slot in slot_types for tag in (f"B-{slot}", f"I-{slot}")
                if tag not in tags]
    return intents + new_intents, tags + new_tags


@dataclasses.dataclass
class EncodedUtterance:
    piece_ids: list[int]
    first_piece: list[int]
    intent: int = 0  # label ids are only meaningful for training data
    tags: list[int] | None = None
    word_chars: list[list[int]] | None = None  # character ids per word (char-CNN models)


def encode_tokens(token_lists: Sequence[Sequence[str]], tokenizer: SubwordTokenizer,
                  with_chars: bool = False) -> list[EncodedUtterance]:
    """Piece ids of each utterance's words (and, ``with_chars``, each word's character ids)."""
    return [EncodedUtterance(piece_ids, first_piece,
                             word_chars=[char_ids(word) for word in tokens] if with_chars
                             else None)
            for tokens, (piece_ids, first_piece)
            in zip(token_lists, tokenizer.encode_utterances(token_lists))]


def encode(utterances: Sequence[Utterance], tokenizer: SubwordTokenizer,
           intents: list[str] | None = None, tags: list[str] | None = None,
           with_chars: bool = False) -> list[EncodedUtterance]:
    """Piece ids for every utterance (and, ``with_chars``, each word's character ids);
    with label lists, also label ids (all must be known)."""
    intent_ids = {intent: index for index, intent in enumerate(intents or [])}
    tag_ids = {tag: index for index, tag in enumerate(tags or [])}
    encoded = encode_tokens([utterance.tokens for utterance in utterances], tokenizer, with_chars)
    if intents is not None:
        for item, utterance in zip(encoded, utterances):
            item.intent = intent_ids[utterance.intent]
            item.tags = [tag_ids[tag] for tag in utterance.tags]
    return encoded


def collate(items: Sequence[EncodedUtterance]) -> dict[str, torch.Tensor]:
    """Pad a list of encoded utterances into the batch dict ``JointNluModule`` reads."""
    longest_pieces = max(len(item.piece_ids) for item in items)
    longest_words = max(len(item.first_piece) for item in items)

    def padded(rows: list[list], value, width: int, dtype: torch.dtype) -> torch.Tensor:
        # one tensor from padded lists: a tensor per row cost more than the model at batch 1
        return torch.tensor([row + [value] * (width - len(row)) for row in rows], dtype=dtype)

    words = [len(item.first_piece) for item in items]
    piece_ids = padded([item.piece_ids for item in items], PAD_ID, longest_pieces, torch.long)
    batch = {"piece_ids": piece_ids,
             "piece_lengths": torch.tensor([len(item.piece_ids) for item in items]),
             "first_piece": padded([item.first_piece for item in items], 0, longest_words,
                                   torch.long),
             # A word's last piece is just before the next word's first (or the utterance end).
             "last_piece": padded([[start - 1 for start in item.first_piece[1:]]
                                   + [len(item.piece_ids) - 1] for item in items], 0,
                                  longest_words, torch.long),
             "word_mask": padded([[True] * count for count in words], False, longest_words,
                                 torch.bool),
             "tags": padded([item.tags or [] for item in items], 0, longest_words, torch.long),
             "intent": torch.tensor([item.intent for item in items])}
    if items[0].word_chars is not None:
        longest_word = max(len(chars) for item in items for chars in item.word_chars)
        word_chars = torch.zeros((len(items), longest_words, longest_word), dtype=torch.long)
        piece_word = torch.zeros_like(piece_ids)
        for row, item in enumerate(items):
            for word, chars in enumerate(item.word_chars):
                word_chars[row, word, : len(chars)] = torch.tensor(chars)
            word_starts = item.first_piece + [len(item.piece_ids)]
            for word, (start, end) in enumerate(zip(word_starts, word_starts[1:])):
                piece_word[row, start:end] = word
        batch.update(word_chars=word_chars, piece_word=piece_word)
    return batch


class LengthBucketBatchSampler(Sampler[list[int]]):
    """Batches of similar length, so little compute goes to padding.

    Each epoch: shuffle (seeded by ``seed`` and the epoch, so a resumed run sees the same
    batches), sort windows of 50 batches by length, cut them into batches, shuffle batches.

    With ``replicas`` > 1 (DDP) every process sees the same batches and takes its share of
    each (``rank``, ``rank + replicas``, ...): the step's averaged gradient is about the one
    of the whole batch, so results do not depend on the process count.
    """

    window_batches = 50

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int,
                 rank: int = 0, replicas: int = 1):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.seed = seed
        self.epoch = 0
        self.rank = rank
        self.replicas = replicas

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        generator = random.Random(f"{self.seed}:{self.epoch}")
        order = list(range(len(self.lengths)))
        generator.shuffle(order)
        window = self.batch_size * self.window_batches
        batches = []
        for start in range(0, len(order), window):
            chunk = sorted(order[start:start + window], key=self.lengths.__getitem__)
            batches.extend(chunk[i:i + self.batch_size]
                           for i in range(0, len(chunk), self.batch_size))
        generator.shuffle(batches)
        # A batch smaller than the process count gives some processes its first item again
        # (every process must take every step).
        return iter(batch[self.rank::self.replicas] or batch[:1] for batch in batches)

    def __len__(self) -> int:
        return math.ceil(len(self.lengths) / self.batch_size)


# -- the trained model ---------------------------------------------------------------------

class TrainedNlu:
    """A trained joint model with its tokenizer and label lists, ready to predict and parse.

    ``languages`` are those the model was built for (its training, vocabulary and label data,
    plus any declared later, e.g. a zero-shot model's target): ``parse`` refuses others. A
    model saved before languages were recorded has none and parses any language."""

    def __init__(self, config: JointModelConfig, tokenizer: SubwordTokenizer,
                 intents: Sequence[str], tags: Sequence[str], module: JointNluModule,
                 languages: Sequence[str] = (), training: dict[str, int | bool] | None = None):
        self.config = config
        self.tokenizer = tokenizer
        self.intents = tuple(intents)
        self.tags = tuple(tags)
        self.module = module
        self.languages = tuple(sorted(set(languages)))
        # epochs, max_epochs, best_epoch (1-based), steps, stopped_early (False: the cap or
        # no dev set ended it); None for a model that was not trained by ``fit``
        self.training = training

    @property
    def slot_types(self) -> tuple[str, ...]:
        """Every slot type the model can tag (sorted)."""
        return tuple(sorted({tag[2:] for tag in self.tags if tag != OUTSIDE}))

    def predict(self, utterances: Sequence[Utterance], batch_size: int = 256) -> list[Utterance]:
        """Copies of ``utterances`` (same tokens, language, id...) with the predicted intent
        and slot tags. CRF/softmax output is repaired to valid IOB2 (``I-x`` opening a slot
        becomes ``B-x``)."""
        inferred = self._infer([utterance.tokens for utterance in utterances], batch_size)
        return [utterance.replace(intent=self.intents[int(probabilities.argmax())], tags=tags)
                for utterance, (probabilities, tags) in zip(utterances, inferred)]

    def parse(self, inputs: Sequence[str | Sequence[str]], *, language: str, top_k: int = 3,
              batch_size: int = 256) -> list[Parse]:
        """Parse raw texts (``str``, tokenised by ``nlu.parse.tokenize``) or pre-tokenised
        utterances (lists of words) of one ``language``: intent, probability, the ``top_k``
        intents, IOB2 tags and slots (see ``nlu.parse``). Bad input raises
        ``ParseInputError`` naming it; nothing is run then."""
        language = check_language(language, self.languages)
        prepared = prepare_inputs(inputs, language)
        inferred = self._infer([item.tokens for item in prepared], batch_size)
        return [build_parse(item, language, self.intents, probabilities.tolist(), tags, top_k)
                for item, (probabilities, tags) in zip(prepared, inferred)]

    def _infer(self, token_lists: Sequence[Sequence[str]], batch_size: int
               ) -> list[tuple[np.ndarray, tuple[str, ...]]]:
        """Intent probabilities and valid IOB2 tags for each token list: batches of similar
        length, on the module's device, without gradients, in eval mode (restored after)."""
        encoded = encode_tokens(token_lists, self.tokenizer,
                                with_chars=self.config.char_filters > 0)
        # longest first: similar lengths in a batch, and already in the order the LSTM packs
        order = sorted(range(len(encoded)), key=lambda index: -len(encoded[index].piece_ids))
        inferred: list = [None] * len(encoded)
        was_training = self.module.training
        if was_training:  # switching walks every submodule: a share of a one-utterance call
            self.module.eval()
        try:
            for start in range(0, len(order), batch_size):
                indices = order[start:start + batch_size]
                batch = collate([encoded[i] for i in indices])
                probabilities, tag_ids = self.module.decode(
                    {name: values.to(self.module.device) for name, values in batch.items()})
                probabilities = probabilities.cpu().numpy()
                for row, (index, word_tag_ids) in enumerate(zip(indices, tag_ids)):
                    tags, _ = repair_tags([self.tags[tag_id] for tag_id in word_tag_ids])
                    inferred[index] = (probabilities[row], tags)
        finally:
            if was_training:
                self.module.train()
        return inferred

    def word_vectors(self, words: Sequence[str]) -> dict[str, np.ndarray]:
        """Each word's vector: the mean of its pieces' embeddings (to seed the GAN's)."""
        table = self.module.embedding.weight.detach().cpu().numpy()
        return {word: table[pieces].mean(axis=0)
                for word, pieces in zip(words, self.tokenizer.encode_word_pieces(words))}

    def save(self, directory: Path | str) -> Path:
        """Write weights, tokenizer, ``config.json`` and ``labels.json`` (each atomically)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save(directory / TOKENIZER_DIRNAME)
        write_json(directory / CONFIG_FILENAME, self.config.to_dict())
        write_json(directory / LABELS_FILENAME, {"intents": self.intents, "tags": self.tags,
                                                 "languages": self.languages})
        if self.training is not None:
            write_json(directory / TRAINING_FILENAME, self.training)
        save_torch(self.module.state_dict(), directory / WEIGHTS_FILENAME)
        return directory

    @classmethod
    def load(cls, directory: Path | str) -> "TrainedNlu":
        """From a folder ``save`` wrote, or an MLflow pyfunc model folder holding one."""
        directory = find_model_folder(Path(directory))
        config = JointModelConfig.from_dict(json.loads((directory / CONFIG_FILENAME).read_text()))
        labels = json.loads((directory / LABELS_FILENAME).read_text())
        tokenizer = SubwordTokenizer.load(directory / TOKENIZER_DIRNAME)
        module = JointNluModule(config, tokenizer.vocab_size, len(labels["intents"]),
                                len(labels["tags"]))
        module.load_state_dict(torch.load(directory / WEIGHTS_FILENAME, weights_only=True))
        module.eval()
        training_file = directory / TRAINING_FILENAME
        training = json.loads(training_file.read_text()) if training_file.exists() else None
        return cls(config, tokenizer, labels["intents"], labels["tags"], module,
                   labels.get("languages", ()), training)

    @classmethod
    def from_store(cls, reference: str, tracking_uri: str) -> "TrainedNlu":
        """From a run id, ``runs:/<id>/model``, ``name@alias`` or ``models:/name@alias``."""
        from nlu.tracking import load_model

        return load_model(reference, tracking_uri, cls.load)  # load reads it all


# -- evaluation on dev during training -----------------------------------------------------

def dev_metrics(gold: Sequence[Utterance], predicted: Sequence[Utterance]) -> dict[str, float]:
    """Intent accuracy, slot micro-F1 (seqeval strict IOB2), exact match and their
    mean of the first two (``dev_score``, what early stopping watches)."""
    intent_accuracy = float(np.mean([g.intent == p.intent for g, p in zip(gold, predicted)]))
    slot_f1 = float(f1_score([list(g.tags) for g in gold], [list(p.tags) for p in predicted],
                             mode="strict", scheme=IOB2))
    exact_match = float(np.mean([g.intent == p.intent and g.tags == p.tags
                                 for g, p in zip(gold, predicted)]))
    return {"dev_intent_accuracy": intent_accuracy, "dev_slot_f1": slot_f1,
            "dev_exact_match": exact_match, "dev_score": (intent_accuracy + slot_f1) / 2}


class ReshuffleEveryEpoch(Callback):
    """Tell the batch sampler the epoch. Lightning calls ``set_epoch`` only on a batch
    sampler's inner ``.sampler``, so without this every epoch would repeat one order.

    A resumed run builds its first batch iterator before any epoch hook runs, so the epoch
    to continue with is restored from the checkpoint (saved at the end of an epoch)."""

    def __init__(self, sampler: LengthBucketBatchSampler):
        self.sampler = sampler

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # Known once the processes are up, before the first batch is drawn.
        self.sampler.rank, self.sampler.replicas = trainer.global_rank, trainer.world_size

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.sampler.set_epoch(trainer.current_epoch)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.sampler.epoch}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        self.sampler.set_epoch(state_dict["epoch"] + 1)


class RandomState(Callback):
    """The random generators' states in every checkpoint, restored on resume, so a resumed
    run draws the same dropout masks (and piece dropout) as the uninterrupted run would.
    (The batch order needs none: it is seeded by the seed and the epoch.)"""

    def state_dict(self) -> dict:
        name, keys, position, has_gauss, gauss = np.random.get_state()
        # tensors and plain numbers only: checkpoints are read with weights_only=True
        state = {"torch": torch.get_rng_state(), "python": random.getstate(),
                 "numpy": [name, torch.from_numpy(keys.astype(np.int64)), position, has_gauss,
                           gauss]}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        torch.set_rng_state(state_dict["torch"])
        name, keys, position, has_gauss, gauss = state_dict["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
        random.setstate(state_dict["python"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])


class DevEvaluation(Callback):
    """Predict the dev set after each training epoch and log ``dev_metrics``."""

    def __init__(self, dev: Sequence[Utterance], model: TrainedNlu):
        self.dev = dev
        self.model = model

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        metrics = dev_metrics(self.dev, self.model.predict(self.dev))
        pl_module.log_dict(metrics, prog_bar=True)
        # One line per epoch survives where a progress bar does not (logs, CI).
        rank_zero_info(f"epoch {trainer.current_epoch}: " + ", ".join(
            f"{name} {value:.4f}" for name, value in metrics.items()))


def checkpoint_epochs(checkpoint: Path) -> int:
    """The epochs a Lightning checkpoint holds (its fit loop resumes after them)."""
    state = torch.load(checkpoint, weights_only=True, map_location="cpu")
    return int(state.get("epoch", -1)) + 1


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoints through a temporary file, so a killed job never leaves half
    a ``last.ckpt`` to resume from."""

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        save_torch(checkpoint, path)


class ActiveRunLogger(MLFlowLogger):
    """Lightning's MLflow logger writing into a run someone else started and will end:
    it must not mark that run finished when training ends."""

    def finalize(self, status: str = "success") -> None:
        pass


def _active_run_logger(tracking_uri: str | None, prefix: str) -> ActiveRunLogger | None:
    import mlflow

    run = mlflow.active_run()
    if run is None:
        return None
    return ActiveRunLogger(tracking_uri=tracking_uri or mlflow.get_tracking_uri(),
                           run_id=run.info.run_id, prefix=prefix)


def _log_device_params(devices: DeviceConfig) -> None:
    """The device options as params of the active run (a run trains all its models alike)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        mlflow.log_params({f"devices.{name}": value
                           for name, value in devices.trainer_kwargs().items()})
    except MlflowException:  # a run resumed on other devices keeps its first ones
        pass


# -- training ------------------------------------------------------------------------------

def _vocabulary(train: Sequence[Utterance], config: JointModelConfig,
                vocabulary_text: Sequence[Utterance] | None,
                label_inventory: Sequence[Utterance] | None, init_from: TrainedNlu | None,
                saved: Path, resume: bool) -> tuple[SubwordTokenizer, list[str], list[str]]:
    """Tokenizer and label lists of a job: reloaded when resuming, else built and saved."""
    if resume and (saved / LABELS_FILENAME).exists():
        labels = json.loads((saved / LABELS_FILENAME).read_text())
        return SubwordTokenizer.load(saved / TOKENIZER_DIRNAME), labels["intents"], labels["tags"]
    if init_from is not None:
        tokenizer = init_from.tokenizer
        intents, tags = label_lists([*(label_inventory or []), *train],
                                    (init_from.intents, init_from.tags))
    else:
        tokenizer = SubwordTokenizer.train(vocabulary_text or train, config.vocab_size,
                                           config.tokenizer_model_type, seed=config.seed)
        intents, tags = label_lists([*(label_inventory or []), *train])
    if is_primary_process():  # the other processes of a DDP job build the same, unsaved
        tokenizer.save(saved / TOKENIZER_DIRNAME)
        write_json(saved / LABELS_FILENAME, {"intents": intents, "tags": tags})
    return tokenizer, intents, tags


def fit(train: Sequence[Utterance], dev: Sequence[Utterance] | None, config: JointModelConfig,
        *, vocabulary_text: Sequence[Utterance] | None = None,
        label_inventory: Sequence[Utterance] | None = None,
        init_from: TrainedNlu | None = None, run_dir: Path | str,
        tracking_uri: str | None = None, resume: bool = False,
        metric_prefix: str = "") -> TrainedNlu:
    """Train a joint model on ``train`` (early-stopped on ``dev`` when given).

    * ``vocabulary_text``: utterances whose text trains the SentencePiece vocabulary
      (default ``train``); pass every language of the job for a shared vocabulary.
    * ``label_inventory``: utterances whose intents/slot types the model can predict, on
      top of ``train``'s own.
    * ``init_from``: fine-tune: reuse that model's tokenizer, architecture and weights (its
      labels keep their ids, new ones are added); ``config.freeze_encoder`` trains only the
      heads.
    * ``resume``: continue from ``run_dir/checkpoints/last.ckpt`` if it exists.
    * ``metric_prefix``: prefix for the MLflow metric names (e.g. ``"pretrain"``), so two
      trainings in one run keep separate curves.

    The model's ``languages`` are those of ``train``, ``vocabulary_text``,
    ``label_inventory`` and ``init_from``.
    """
    if not train:
        raise ValueError("no training utterances")
    with RunDirLock(run_dir):  # one live process per folder; stale temporaries removed
        return _fit(train, dev, config, vocabulary_text=vocabulary_text,
                    label_inventory=label_inventory, init_from=init_from,
                    run_dir=Path(run_dir), tracking_uri=tracking_uri, resume=resume,
                    metric_prefix=metric_prefix)


def _fit(train: Sequence[Utterance], dev: Sequence[Utterance] | None, config: JointModelConfig,
         *, vocabulary_text: Sequence[Utterance] | None,
         label_inventory: Sequence[Utterance] | None, init_from: TrainedNlu | None,
         run_dir: Path, tracking_uri: str | None, resume: bool,
         metric_prefix: str) -> TrainedNlu:
    torch.set_num_threads(config.num_threads)
    pl.seed_everything(config.seed, workers=True, verbose=False)
    if init_from is not None:
        config = dataclasses.replace(
            config, **{name: getattr(init_from.config, name) for name in ARCHITECTURE_FIELDS})

    tokenizer, intents, tags = _vocabulary(train, config, vocabulary_text, label_inventory,
                                           init_from, run_dir / "vocabulary", resume)
    piece_matrix = None
    if config.embeddings_path and init_from is None:
        piece_matrix, found = pretrained_piece_matrix(tokenizer.pieces, config.embeddings_path,
                                                      seed=config.seed)
        rank_zero_info(f"{found} of {tokenizer.vocab_size} piece embeddings initialised from "
                       f"{config.embeddings_path}")
        config = dataclasses.replace(config, embedding_dim=piece_matrix.shape[1])
    module = JointNluModule(config, tokenizer.vocab_size, len(intents), len(tags))
    if init_from is not None:
        module.load_parent_weights(init_from.module)
    elif piece_matrix is not None:
        module.set_piece_embeddings(piece_matrix)
    languages = {utterance.language for group in (train, vocabulary_text, label_inventory)
                 for utterance in group or ()}
    model = TrainedNlu(config, tokenizer, intents, tags, module,
                       languages | set(init_from.languages if init_from else ()))

    encoded = encode(train, tokenizer, intents, tags, with_chars=config.char_filters > 0)
    sampler = LengthBucketBatchSampler([len(item.piece_ids) for item in encoded],
                                       config.batch_size, config.seed)
    loader = DataLoader(encoded, collate_fn=collate, batch_sampler=sampler)
    checkpoints = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best",
                                  monitor="dev_score" if dev else None, mode="max",
                                  save_top_k=1, enable_version_counter=False)
    # Lightning's save_last writes last.ckpt only in an epoch that also saved a best
    # checkpoint, so a resume would repeat every epoch since the last improvement: last.ckpt
    # gets its own callback, listed after the best one so it holds that one's new state.
    last_checkpoint = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="last",
                                      monitor=None, save_top_k=1, every_n_epochs=1,
                                      enable_version_counter=False)
    callbacks: list[Callback] = [ReshuffleEveryEpoch(sampler), RandomState(), checkpoints,
                                 last_checkpoint]
    early_stopping = EarlyStopping(monitor="dev_score", mode="max", patience=config.patience)
    if dev:
        callbacks += [DevEvaluation(dev, model), early_stopping]
    logger = _active_run_logger(tracking_uri, metric_prefix)
    if logger is not None:
        _log_device_params(config.devices)
    last = run_dir / "checkpoints" / "last.ckpt"
    resume_from = last if resume and last.exists() else None
    # a job resumed with a lower max_epochs than it already trained finishes at once (Lightning
    # would refuse the checkpoint): its cap is never below the epochs the checkpoint holds
    max_epochs = max(config.max_epochs, checkpoint_epochs(resume_from) if resume_from else 0)
    trainer = pl.Trainer(
        **config.devices.trainer_kwargs(), max_epochs=max_epochs, callbacks=callbacks,
        logger=logger or False, enable_progress_bar=config.enable_progress_bar,
        enable_model_summary=False, gradient_clip_val=config.gradient_clip,
        log_every_n_steps=1, num_sanity_val_steps=0, plugins=[AtomicCheckpointIO()],
        use_distributed_sampler=False)  # the batch sampler shards itself (DDP)
    trainer.fit(module, train_dataloaders=loader, ckpt_path=resume_from)

    best_epoch = trainer.current_epoch
    if dev and checkpoints.best_model_path and trainer.is_global_zero:
        best = torch.load(checkpoints.best_model_path, weights_only=True, map_location="cpu")
        module.load_state_dict(best["state_dict"])
        best_epoch = best["epoch"] + 1  # the checkpoint counts from 0
    model.training = {"epochs": trainer.current_epoch, "max_epochs": config.max_epochs,
                      "best_epoch": best_epoch, "steps": trainer.global_step,
                      "stopped_early": bool(dev) and early_stopping.stopped_epoch > 0}
    module.eval()
    return model
