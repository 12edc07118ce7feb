"""Train a generator/discriminator pair on real annotated utterances: ``train_gan``.

``adversarial_steps=0`` gives the MLE-only generator (the strongest known rival of text
GANs); otherwise G is fine-tuned adversarially with the ``token``, ``rollout`` or
``sentence`` reward. ``train_gan`` is Lightning's three steps:

1. ``build``: the models, the ``GanModule`` schedule and the batches;
2. inside an ``nlu.jobs.TrackedRun`` (run folder locked, MLflow run started or resumed):
   ``trainer.fit``, with ``last.ckpt`` (weights, optimisers, schedule position and random
   states) written every ``steps_per_checkpoint`` steps, so a job killed at any point
   resumes (``resume=True``) to the weights the uninterrupted run makes;
3. ``save``: the generator folder, quality metrics of a few samples, and with tracking the
   run's params, curves, samples and the ``model/`` artifact (registered as
   ``registered_name@alias`` when the tracking section says so).

A job YAML (``load_job``) names the data, the run folder, ``tracking`` and ``gan``
(``GanConfig`` fields), optionally a ``catalogue`` of slot values the generator keeps as its
default; ``profiles`` state only what differs from it (``--profile``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from nlu.atomic import atomic_open
from nlu.dataset import DataSpec
from nlu.jobs import (JobConfigError, TrackedRun, TrackingConfig, config_mapping, data_spec,
                      deep_merge, read_data, read_yaml, refuse_renamed_keys)
from nlu.utterance import Utterance

from gan.catalogue import DEFAULT_CATALOGUE_SHARE, CatalogueReport, read_catalogue
from gan.config import TRACKING_FIELDS, GanConfig
from gan.lexicon import SlotLexicon, delexicalise
from gan.models import build_models, load_embeddings
from gan.sampling import SamplingConfig
from gan.vocab import Vocabulary

if TYPE_CHECKING:
    from gan.augment import Augmenter
    from gan.module import GanModule

DEFAULT_EXPERIMENT = "gan"
log = logging.getLogger(__name__)


def _write_samples(samples: Sequence[Utterance], path: Path) -> None:
    """Samples as jsonl (``Utterance.to_dict`` per line)."""
    with atomic_open(path) as stream:
        for utterance in samples:
            stream.write(json.dumps(utterance.to_dict(), ensure_ascii=False) + "\n")


@dataclass
class GanParts:
    """What ``build`` makes: the schedule module and its batches, and what ``save`` needs."""

    config: GanConfig  # with the embedding size the pretrained vectors fix
    vocab: Vocabulary
    module: "GanModule"
    loader: Any  # torch DataLoader
    epochs: int  # one "epoch" = steps_per_checkpoint batches
    lexicon: SlotLexicon | None
    train_size: int


class EpochSampler:
    """``num_samples`` indices drawn with replacement, seeded by the seed and the epoch.

    Lightning calls ``set_epoch`` before each epoch (a resumed run too, with the epoch it
    continues at), so a resumed job draws the batches the uninterrupted one would have."""

    def __init__(self, size: int, num_samples: int, seed: int):
        self.size, self.num_samples, self.seed = size, num_samples, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        import torch

        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randint(self.size, (self.num_samples,), generator=generator).tolist())

    def __len__(self) -> int:
        return self.num_samples


def build(train: Sequence[Utterance], config: GanConfig, nlu_model=None) -> GanParts:
    """Step 1: vocabulary, G and D, the three-phase schedule and the batches."""
    import pytorch_lightning as pl
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from gan.module import GanModule

    pl.seed_everything(config.seed, workers=True, verbose=False)
    lexicon = None
    if config.delexicalised:
        lexicon = SlotLexicon.build(train)
        train = [delexicalise(utterance) for utterance in train]  # G and D see carrier phrases
    vocab = Vocabulary.build(train)
    if not config.tie_words_to_tags:
        vocab = dataclasses.replace(vocab, tag_tokens=None)
    embeddings = load_embeddings(config, vocab, nlu_model)
    if embeddings is not None and embeddings.shape[1] != config.embedding_dim:
        # The pretrained vectors fix the size; the saved config must say so to load again.
        config = dataclasses.replace(config, embedding_dim=int(embeddings.shape[1]))
    generator, discriminator = build_models(config, vocab, embeddings)
    batches_per_epoch = math.ceil(len(train) / config.batch_size)
    module = GanModule(generator, discriminator, config,
                       mle_steps=config.mle_epochs * batches_per_epoch)
    encoded = vocab.encode(train, config.max_length)
    dataset = TensorDataset(*(torch.from_numpy(encoded[name])
                              for name in ("tokens", "tags", "intents", "languages")))
    # The phases are counted in steps by the module; batches are drawn with replacement, and
    # an "epoch" of steps_per_checkpoint batches ends with a checkpoint.
    sampler = EpochSampler(len(dataset), config.steps_per_checkpoint * config.batch_size,
                           config.seed)
    loader = DataLoader(dataset, batch_size=config.batch_size, sampler=sampler)
    epochs = max(1, math.ceil(module.total_steps / config.steps_per_checkpoint))
    return GanParts(config, vocab, module, loader, epochs, lexicon, len(train))


def _trainer(parts: GanParts, run_dir: Path, run: TrackedRun, progress_bar: bool):
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint

    from nlu.training import ActiveRunLogger, AtomicCheckpointIO, RandomState

    # last.ckpt after every epoch (Lightning's save_last writes only when it saves a top-k).
    every_epoch = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="last", monitor=None,
                                  save_top_k=1, every_n_epochs=1, enable_version_counter=False)
    logger = (ActiveRunLogger(tracking_uri=run.tracking_uri, run_id=run.run_id)
              if run.tracked else False)
    return pl.Trainer(**parts.config.devices.trainer_kwargs(), max_epochs=parts.epochs,
                      logger=logger, callbacks=[RandomState(), every_epoch],
                      enable_progress_bar=progress_bar, enable_model_summary=False,
                      log_every_n_steps=parts.config.log_every_n_steps, num_sanity_val_steps=0,
                      default_root_dir=str(run_dir), plugins=[AtomicCheckpointIO()])


def train_gan(train: Sequence[Utterance], config: GanConfig, *, run_dir: Path | str,
              tracking: TrackingConfig | None = None, tracking_uri: str | None = None,
              resume: bool = False, nlu_model=None,
              heldout: Sequence[Utterance] | None = None,
              progress_bar: bool = True, catalogue: SlotLexicon | None = None,
              catalogue_share: float = DEFAULT_CATALOGUE_SHARE) -> "Augmenter":
    """Train G and D on ``train``; return the augmenter (also saved in ``run_dir/generator``).

    ``tracking`` (or just a ``tracking_uri``, for the default experiment) logs the run to
    MLflow. ``heldout`` (real utterances not trained on) are the BLEU references of the
    quality metrics; without them the metrics that need no references are still computed.
    ``nlu_model`` provides the embeddings when ``config.embeddings == "nlu"``.
    ``catalogue`` (a delexicalised generator only; ``gan.catalogue``) is kept with the
    generator, filled from at ``catalogue_share`` by default (its quality samples too).
    """
    import torch

    if not train:
        raise ValueError("train: no utterances")
    if catalogue is not None and not config.delexicalised:
        raise ValueError("catalogue: only a delexicalised generator fills slots from one")
    if not 0 <= catalogue_share <= 1:
        raise ValueError(f"catalogue_share: must be in [0, 1], got {catalogue_share}")
    if tracking is None and tracking_uri is not None:
        tracking = TrackingConfig(experiment=DEFAULT_EXPERIMENT)
    run_dir = Path(run_dir)
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        parts = build(train, config, nlu_model)
        with TrackedRun(run_dir, tracking, tracking_uri=tracking_uri, resume=resume,
                        tags={"kind": "gan", "reward": config.reward}) as run:
            if run.tracked and not run.resumed:
                from nlu.tracking import log_config

                kept = ({"catalogue": {"values": catalogue.size(), "share": catalogue_share}}
                        if catalogue is not None else {})
                log_config({**parts.config.to_dict(), "train_utterances": parts.train_size,
                            "vocabulary": len(parts.vocab.tokens), "tags": len(parts.vocab.tags),
                            "intents": len(parts.vocab.intents) - 1, **kept})
            last = run_dir / "checkpoints" / "last.ckpt"
            _trainer(parts, run_dir, run, progress_bar).fit(
                parts.module, parts.loader, ckpt_path=str(last) if resume and last.exists() else None)
            return save(parts, train, run, run_dir, heldout, catalogue=catalogue,
                        catalogue_share=catalogue_share)
    finally:
        torch.set_num_threads(threads)


def save(parts: GanParts, real: Sequence[Utterance], run: TrackedRun, run_dir: Path,
         heldout: Sequence[Utterance] | None, *, catalogue: SlotLexicon | None = None,
         catalogue_share: float = DEFAULT_CATALOGUE_SHARE) -> "Augmenter":
    """Step 3: the generator folder (with the catalogue it keeps), its quality metrics, and
    what the run logs."""
    from gan.augment import Augmenter, GeneratorInfo

    vocab, config = parts.vocab, parts.config
    source = f"gan:{run.run_id}" if run.tracked else f"gan:{run_dir.name}"
    info = GeneratorInfo(languages=vocab.languages, intents=vocab.intents[1:],
                         slot_types=vocab.slot_types, source=source)
    augmenter = Augmenter(config, vocab, parts.module.generator, parts.module.discriminator, info,
                          lexicon=parts.lexicon, train=real, catalogue=catalogue,
                          catalogue_share=catalogue_share)
    samples: list[Utterance] = []
    if config.eval_samples:
        from gan.quality import quality_metrics

        samples = list(augmenter.generate(config.eval_samples, sampling=SamplingConfig(),
                                          seed=config.seed))
        metrics = quality_metrics(samples, heldout or [], real)
        augmenter.info.metrics = {name: float(value) for name, value in metrics.items()}
        _write_samples(samples, run_dir / "samples.jsonl")
    model_dir = augmenter.save(run_dir / "generator")
    if run.tracked:
        _log_outcome(augmenter, samples, run_dir, model_dir, run)
    return augmenter


def _log_outcome(augmenter: "Augmenter", samples: list[Utterance], run_dir: Path,
                 model_dir: Path, run: TrackedRun) -> None:
    import mlflow

    # Names with "/" (per-intent slot coverage) are valid MLflow metric keys.
    mlflow.log_metrics({f"quality/{name}": value for name, value in augmenter.info.metrics.items()})
    if samples:
        mlflow.log_artifact(str(run_dir / "samples.jsonl"), artifact_path="samples")
        readable = "\n".join(f"{u.intent}\t" + " ".join(f"{word}/{tag}" for word, tag
                                                        in zip(u.tokens, u.tags))
                             for u in samples)
        mlflow.log_text(readable + "\n", "samples/samples.txt")
    mlflow.set_tag("model_reference", run.log_model(model_dir))


# -- the job YAML --------------------------------------------------------------------------

@dataclass(frozen=True)
class JobCatalogue:
    """A job's ``catalogue`` section: slot values the generator keeps as its default."""

    file: Path  # catalogue.file joined to the YAML's folder (as data.root is)
    share: float = DEFAULT_CATALOGUE_SHARE  # of the slot fills, when both have the slot type


@dataclass(frozen=True)
class GanJob:
    """A GAN training job, as its YAML describes it (``load_job``)."""

    root: Path  # data paths are relative to this
    train: DataSpec
    heldout: DataSpec | None  # BLEU references of the quality metrics, never trained on
    source: DataSpec | None  # source-language data G learns from too: a source-aware G
    run_dir: Path
    tracking: TrackingConfig
    config: GanConfig
    catalogue: JobCatalogue | None = None  # the generator's default catalogue

    def read(self) -> tuple[list[Utterance], list[Utterance] | None]:
        """(training utterances: source + target, held-out utterances)."""
        train = read_data(self.train, self.root, self.config.seed)
        if self.source is not None:  # source-aware: one generator over both languages
            train = read_data(self.source, self.root, self.config.seed) + train
        heldout = (read_data(self.heldout, self.root, self.config.seed)
                   if self.heldout is not None else None)
        return train, heldout

    def read_catalogue(self, train: Sequence[Utterance]
                       ) -> tuple[SlotLexicon, CatalogueReport]:
        """The job's catalogue, checked by ``gan.catalogue.read_catalogue`` (errors name its
        ``file:line``): lines without a language take the target's (``data.language`` or
        ``data.train.language``; none there: each line must name its own), and a slot type
        the training data has not is an error."""
        return read_catalogue(self.catalogue.file, language=self.train.language,
                              slot_types={slot for utterance in train
                                          for slot in utterance.slot_types})


JOB_KEYS = {"data", "run_dir", "tracking", "gan", "profiles", "catalogue"}
DATA_KEYS = {"root", "train", "heldout", "format", "language", "source"}
CATALOGUE_KEYS = {"file", "share"}


def load_job(path: Path | str, profile: str | None = None, *,
             changes: dict[str, Any] | None = None) -> GanJob:
    """A GAN job from YAML, validated here, at the edge:

    * ``data``: ``train`` and ``heldout`` (paths; ``format`` and ``language`` apply to both)
      and optionally ``source`` (a data spec of source-language data the generator learns
      from too: *source-aware*; ``sample: N`` keeps about N, intent-stratified). Paths are
      relative to ``data.root``, itself relative to the YAML's folder (default: that folder);
    * ``run_dir`` (default ``runs/<YAML name>``), ``tracking`` (``nlu.jobs.TrackingConfig``),
      ``gan`` (``GanConfig`` fields, with ``changes`` over them);
    * ``catalogue`` (optional; a delexicalised generator only): ``{file: PATH, share: R}``,
      slot values a team brings (``gan.catalogue``: TSV ``slot_type<TAB>value[<TAB>language]``
      or an annotated file). ``file`` is relative to the YAML's folder (as ``data.root`` is,
      not to ``data.root``: a team's catalogue lives beside its job, not in shared data);
      ``share`` (0..1, default 1) is the share of slot fills drawn from it. It is read at
      job start, checked against the training data's slot types (``GanJob.read_catalogue``),
      and kept with the generator as the default catalogue of ``augment``;
    * ``profiles``: name -> the differences a variant makes (deep-merged; ``profile``).
    """
    path = Path(path)
    raw = read_yaml(path)
    try:
        config_mapping(raw, "job", JOB_KEYS)
        profiles = config_mapping(raw.get("profiles") or {}, "profiles")
        if profile is not None:
            if profile not in profiles:
                raise JobConfigError(f"no profile {profile!r} (has: "
                                     f"{', '.join(profiles) or 'none'})", field="profile")
            raw = deep_merge(raw, config_mapping(profiles[profile], f"profiles.{profile}", JOB_KEYS))
        return _parse_job(raw, path, profile, changes or {})
    except JobConfigError as error:
        raise error.at(path=str(path)) from None


def _parse_job(raw: dict, path: Path, profile: str | None, changes: dict[str, Any]) -> GanJob:
    data = config_mapping(raw.get("data"), "data", DATA_KEYS)
    if "train" not in data:
        raise JobConfigError("missing", field="data.train")
    shared = {name: data[name] for name in ("format", "language") if data.get(name) is not None}

    def spec(name: str) -> DataSpec | None:
        if data.get(name) is None:
            return None
        value = data[name] if isinstance(data[name], dict) else {"path": data[name]}
        return data_spec(shared | value, f"data.{name}")

    gan = dict(config_mapping(raw.get("gan") or {}, "gan"))
    refuse_renamed_keys(gan, {name: f"tracking.{name}" for name in TRACKING_FIELDS}, "gan")
    try:
        config = GanConfig.from_dict(gan | changes)
    except (TypeError, ValueError) as error:  # the message starts with the field's name
        raise JobConfigError(f"gan.{error}") from None
    run_dir = raw.get("run_dir") or Path("runs") / (f"{path.stem}-{profile}" if profile
                                                    else path.stem)
    source = data.get("source")
    return GanJob(root=path.parent / data.get("root", "."), train=spec("train"),
                  heldout=spec("heldout"),
                  source=data_spec(source, "data.source") if source is not None else None,
                  run_dir=Path(run_dir),
                  tracking=TrackingConfig.from_mapping(raw.get("tracking"),
                                                       default_experiment=DEFAULT_EXPERIMENT),
                  config=config, catalogue=_job_catalogue(raw.get("catalogue"), path, config))


def _job_catalogue(section: Any, path: Path, config: GanConfig) -> JobCatalogue | None:
    """The ``catalogue`` section checked (its file is read at job start: ``train_job``)."""
    if section is None:
        return None
    section = config_mapping(section, "catalogue", CATALOGUE_KEYS)
    if not config.delexicalised:
        raise JobConfigError("only a delexicalised generator (gan.delexicalised: true) fills "
                             "slots from a catalogue", field="catalogue")
    file = section.get("file")
    if not isinstance(file, str) or not file:
        raise JobConfigError("expected a path (relative to the YAML's folder)",
                             field="catalogue.file")
    if not (path.parent / file).exists():
        raise JobConfigError(f"no such file or folder: {file} (relative to the YAML's folder, "
                             f"{path.parent})", field="catalogue.file")
    share = section.get("share", DEFAULT_CATALOGUE_SHARE)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
        raise JobConfigError(f"must be a number in 0..1, got {share!r}", field="catalogue.share")
    return JobCatalogue(path.parent / file, float(share))


def train_job(path: Path | str, *, profile: str | None = None, tracking_uri: str | None = None,
              resume: bool = False, devices: dict[str, Any] | None = None,
              changes: dict[str, Any] | None = None, progress_bar: bool = True) -> "Augmenter":
    """Read a job YAML (see ``load_job``), its data and its catalogue (its counts logged; a
    bad one is a ``gan.catalogue.CatalogueError`` before any training), then ``train_gan``;
    ``devices`` overrides fields of the config's ``devices`` (``DeviceConfig``), ``changes``
    other GanConfig fields (e.g. ``delexicalised``)."""
    from nlu.devices import with_devices

    job = load_job(path, profile, changes=changes)
    if devices:
        config = GanConfig.from_dict(with_devices(job.config.to_dict(), devices))
        job = dataclasses.replace(job, config=config)
    train, heldout = job.read()
    catalogue, share = None, DEFAULT_CATALOGUE_SHARE
    if job.catalogue is not None:
        catalogue, report = job.read_catalogue(train)
        share = job.catalogue.share
        log.info("%s: %s, share %g", job.catalogue.file, report.summary(), share)
    return train_gan(train, job.config, run_dir=job.run_dir, tracking=job.tracking,
                     tracking_uri=tracking_uri, resume=resume, heldout=heldout,
                     progress_bar=progress_bar, catalogue=catalogue, catalogue_share=share)
