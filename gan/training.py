"""Train a generator/discriminator pair on real annotated utterances: ``train_gan``.

``adversarial_steps=0`` gives the MLE-only generator (the strongest known rival of text
GANs); otherwise G is fine-tuned adversarially with the ``token``, ``rollout`` or
``sentence`` reward. Checkpoints go to ``run_dir/checkpoints`` (``last.ckpt`` every
``steps_per_checkpoint`` steps); ``resume=True`` continues from it. With a tracking URI the run
is logged to MLflow: params + config YAML, per-step losses and mean rewards, sample
utterances, quality metrics, and the generator directory as the ``model/`` artifact
(registered as ``registered_name@alias`` when configured).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from nlu.atomic import atomic_open
from nlu.rundir import RunDirLock
from nlu.utterance import Utterance

from gan.config import GanConfig
from gan.lexicon import SlotLexicon, delexicalise
from gan.models import build_models, load_embeddings
from gan.sampling import SamplingConfig
from gan.vocab import Vocabulary

if TYPE_CHECKING:
    from gan.augment import Augmenter


def _write_samples(samples: Sequence[Utterance], path: Path) -> None:
    """Samples as jsonl (``Utterance.to_dict`` per line)."""
    with atomic_open(path) as stream:
        for utterance in samples:
            stream.write(json.dumps(utterance.to_dict(), ensure_ascii=False) + "\n")


def train_gan(train: Sequence[Utterance], config: GanConfig, *, run_dir: Path | str,
              tracking_uri: str | None = None, resume: bool = False, nlu_model=None,
              heldout: Sequence[Utterance] | None = None) -> "Augmenter":
    """Train G and D on ``train``; return the augmenter (also saved in ``run_dir/generator``).

    ``heldout`` (real utterances not trained on) are the BLEU references of the quality
    metrics; without them the metrics that need no references are still computed.
    ``nlu_model`` provides the embeddings when ``config.embeddings == "nlu"``.
    """
    import torch

    if not train:
        raise ValueError("train: no utterances")
    threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        with RunDirLock(run_dir):  # one live process per folder; stale temporaries removed
            return _train_gan(train, config, run_dir=Path(run_dir), tracking_uri=tracking_uri,
                              resume=resume, nlu_model=nlu_model, heldout=heldout)
    finally:
        torch.set_num_threads(threads)


def _train_gan(train: Sequence[Utterance], config: GanConfig, *, run_dir: Path,
               tracking_uri: str | None, resume: bool, nlu_model,
               heldout: Sequence[Utterance] | None) -> "Augmenter":
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.callbacks import ModelCheckpoint
    from torch.utils.data import DataLoader, RandomSampler, TensorDataset

    from gan.augment import Augmenter, GeneratorInfo
    from gan.module import GanModule

    run_dir.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(config.seed, workers=True, verbose=False)
    lexicon = None
    real = train
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
    module = GanModule(generator, discriminator, config, mle_steps=config.mle_epochs * batches_per_epoch)

    encoded = vocab.encode(train, config.max_length)
    dataset = TensorDataset(*(torch.from_numpy(encoded[name])
                              for name in ("tokens", "tags", "intents", "languages")))
    # One "epoch" = steps_per_checkpoint batches drawn with replacement; the phases are
    # counted in steps by the module, and a checkpoint is written at every epoch end.
    sampler = RandomSampler(dataset, replacement=True,
                            num_samples=config.steps_per_checkpoint * config.batch_size,
                            generator=torch.Generator().manual_seed(config.seed))
    loader = DataLoader(dataset, batch_size=config.batch_size, sampler=sampler)
    epochs = max(1, math.ceil(module.total_steps / config.steps_per_checkpoint))

    checkpoint_dir = run_dir / "checkpoints"
    last_checkpoint = checkpoint_dir / "last.ckpt"
    checkpoint = ModelCheckpoint(dirpath=checkpoint_dir, save_last=True, save_top_k=0,
                                 every_n_epochs=1)
    run_id_file = run_dir / "mlflow_run_id"

    run = None
    logger: Any = False
    if tracking_uri is not None:
        from pytorch_lightning.loggers import MLFlowLogger

        from nlu.tracking import log_config, start_run

        previous_run = run_id_file.read_text().strip() if resume and run_id_file.exists() else None
        run = start_run(config.experiment, tracking_uri, run_name=config.run_name,
                        run_id=previous_run, tags={"kind": "gan", "reward": config.reward})
        with atomic_open(run_id_file) as stream:
            stream.write(run.info.run_id)
        if previous_run is None:
            log_config({**config.to_dict(), "train_utterances": len(train),
                        "vocabulary": len(vocab.tokens), "tags": len(vocab.tags),
                        "intents": len(vocab.intents) - 1})
        logger = MLFlowLogger(tracking_uri=tracking_uri, run_id=run.info.run_id)
    try:
        trainer = pl.Trainer(**config.devices.trainer_kwargs(), max_epochs=epochs, logger=logger,
                             callbacks=[checkpoint], enable_progress_bar=config.progress_bar,
                             enable_model_summary=False, log_every_n_steps=config.log_every_n_steps,
                             num_sanity_val_steps=0, default_root_dir=str(run_dir))
        trainer.fit(module, loader,
                    ckpt_path=str(last_checkpoint) if resume and last_checkpoint.exists() else None)

        source = f"gan:{run.info.run_id}" if run is not None else f"gan:{run_dir.name}"
        info = GeneratorInfo(languages=vocab.languages, intents=vocab.intents[1:],
                             slot_types=vocab.slot_types, source=source)
        augmenter = Augmenter(config, vocab, module.generator, module.discriminator, info,
                              lexicon=lexicon, train=real)
        samples: list[Utterance] = []
        if config.eval_samples:
            from gan.quality import quality_metrics

            samples = list(augmenter.generate(config.eval_samples, sampling=SamplingConfig(),
                                              seed=config.seed))
            metrics = quality_metrics(samples, heldout or [], real)
            augmenter.info.metrics = {name: float(value) for name, value in metrics.items()}
            _write_samples(samples, run_dir / "samples.jsonl")
        model_dir = augmenter.save(run_dir / "generator")
        if run is not None:
            _log_outcome(augmenter, samples, run_dir, model_dir, config)
    except BaseException:
        if run is not None:
            import mlflow

            mlflow.end_run(status="FAILED")  # a resumed job reopens the same run
        raise
    if run is not None:
        import mlflow

        mlflow.end_run()
    return augmenter


def _log_outcome(augmenter: "Augmenter", samples: list[Utterance], run_dir: Path,
                 model_dir: Path, config: GanConfig) -> None:
    import mlflow

    from nlu.tracking import log_model_dir

    # Names with "/" (per-intent slot coverage) are valid MLflow metric keys.
    mlflow.log_metrics({f"quality/{name}": value for name, value in augmenter.info.metrics.items()})
    if samples:
        mlflow.log_artifact(str(run_dir / "samples.jsonl"), artifact_path="samples")
        readable = "\n".join(f"{u.intent}\t" + " ".join(f"{word}/{tag}" for word, tag
                                                        in zip(u.tokens, u.tags))
                             for u in samples)
        mlflow.log_text(readable + "\n", "samples/samples.txt")
    reference = log_model_dir(model_dir, registered_name=config.registered_name, alias=config.alias)
    mlflow.set_tag("model_reference", reference)


def load_job(path: Path | str) -> dict[str, Any]:
    """A GAN training job from YAML: ``data`` (root, train, heldout, format, language, and
    optionally ``source``: a path or ``{path, format, language, labels, sample}`` of
    source-language data the generator learns from too, so it is *source-aware*; ``sample``
    keeps about that many, intent-stratified), ``run_dir``
    and ``gan`` (GanConfig fields). Validated here, at the edge. Data paths are relative to
    ``data.root``, itself relative to the YAML's folder (default: that folder)."""
    import yaml

    path = Path(path)
    job = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    unknown = sorted(set(job) - {"data", "run_dir", "gan"})
    if unknown:
        raise ValueError(f"{path}: {unknown[0]}: not a job key (data, run_dir, gan)")
    data = job.get("data") or {}
    if "train" not in data:
        raise ValueError(f"{path}: data.train: missing")
    root = path.parent / data.get("root", ".")
    source = data.get("source")
    if source is not None:
        from nlu.dataset import DataSpec

        try:
            source = DataSpec(**source) if isinstance(source, dict) else DataSpec(path=source)
        except TypeError as error:
            raise ValueError(f"{path}: data.source: {error}") from None
        if not isinstance(source.path, str):
            raise ValueError(f"{path}: data.source: expected a path or a mapping with 'path'")
    data = {**data, "train": root / data["train"], "root": root, "source": source,
            "heldout": root / data["heldout"] if data.get("heldout") else None}
    return {"data": data, "run_dir": Path(job.get("run_dir") or Path("runs") / path.stem),
            "config": GanConfig.from_dict(job.get("gan") or {})}


def train_job(path: Path | str, *, tracking_uri: str | None = None,
              resume: bool = False, devices: dict[str, Any] | None = None,
              changes: dict[str, Any] | None = None) -> "Augmenter":
    """Read a job YAML (see ``load_job``) and its data, then ``train_gan``; ``devices``
    overrides fields of the config's ``devices`` (``DeviceConfig``), ``changes`` other
    GanConfig fields (e.g. ``delexicalised``)."""
    from nlu.dataset import read_spec
    from nlu.devices import with_devices
    from nlu.formats import read_utterances
    from nlu.tracking import resolve_tracking_uri

    job = load_job(path)
    if devices or changes:
        job["config"] = GanConfig.from_dict(with_devices(job["config"].to_dict(), devices or {})
                                            | (changes or {}))
    data = job["data"]
    train = read_utterances(data["train"], data.get("format"), language=data.get("language"))
    if data["source"] is not None:  # source-aware: one generator over both languages
        source = read_spec(data["source"], data["root"])
        if data["source"].sample is not None and data["source"].sample < len(source):
            from nlu.dataset import sample

            source = sample(source, fraction=data["source"].sample / len(source),
                            seed=job["config"].seed)  # intent-stratified
        train = source + train
    heldout = (read_utterances(data["heldout"], data.get("format"), language=data.get("language"))
               if data.get("heldout") else None)
    return train_gan(train, job["config"], run_dir=job["run_dir"],
                     tracking_uri=resolve_tracking_uri(tracking_uri), resume=resume,
                     heldout=heldout)
