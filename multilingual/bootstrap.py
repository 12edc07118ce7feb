"""The "bootstrap a new language" job: one YAML config -> one trained, evaluated, tracked model.

The config (LightningCLI style: one section per concern; see experiments/bootstrap_xsid.yaml):

.. code-block:: yaml

    model:                 # nlu.model.JointModelConfig fields (defaults for the rest)
      encoder: bilstm
      max_epochs: 10
    finetune_model:        # optional: fields that differ in the fine-tuning stage
      freeze_encoder: true
    data:
      root: ../../shared/data/xsid   # data paths are relative to this (itself relative to the YAML)
      source:                        # labelled source-language data, a list of data specs
        - {path: en-train-v0.1, format: xsid-pair, labels: xsid-train-0.1-to-0.7, sample: 5000}
      target_language: de
      target_train: [xSID-0.7/de.valid.conll]   # the labelled target data
      target_fraction: null          # or keep a fraction of it (per intent) ...
      target_per_intent: null        # ... or at most N utterances per intent
      dev: [xSID-0.7/en.valid.conll] # early stopping and dev metrics
      test: [xSID-0.7/de.test.conll] # final metrics, per language
      seed: 0                        # sampling seed
    regime: finetune                 # monolingual | mixed | finetune | zeroshot
    tracking:
      uri: null                      # null: --tracking-uri, $MLFLOW_TRACKING_URI or the sqlite default
      experiment: bootstrap-xsid
      registered_name: null          # register the model as name@alias when set
      alias: null
    run_dir: runs/bootstrap-xsid-de  # checkpoints, models and the MLflow run id (relative to CWD)

A data spec is a path or ``{path, format?, language?, labels?, sample?}``: ``labels`` names a
label mapping (``nlu.schema.LabelMapping.load``) and ``sample`` keeps about that many
utterances, intent-stratified and seeded (``nlu.jobs.read_data``, as in every job), e.g. to
cut a large source set down for time.

``run`` trains the regime, evaluates on dev and test (per language, ``nlu.metrics``), trains
the MaxEnt domain classifier on the same labelled data, and logs to one MLflow run: the
resolved config as params and ``config.yaml``, the YAML as written as ``job.yaml``, per-epoch
curves, final metrics (``test/<language>/intent_acc`` ...), the reports as markdown and JSON,
and the model directory (joint model + ``domain.joblib``) as the ``model/`` artifact,
optionally registered as ``name@alias``. The run is an ``nlu.jobs.TrackedRun``: its id is
stored in ``run_dir/mlflow_run.json`` and ``resume=True`` continues the same run from the last
checkpoint.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from nlu.dataset import DataSpec
from nlu.jobs import (JobConfigError, TrackedRun, TrackingConfig, config_mapping, data_spec,
                      read_data, read_yaml)
from nlu.utterance import Utterance
from multilingual.regimes import REGIME_NAMES

DOMAIN_FILENAME = "domain.joblib"
DEFAULT_EXPERIMENT = "bootstrap"


@dataclass(frozen=True)
class DataConfig:
    root: Path
    source: tuple[DataSpec, ...]
    target_language: str
    target_train: tuple[DataSpec, ...]
    dev: tuple[DataSpec, ...]
    test: tuple[DataSpec, ...]
    target_fraction: float | None = None
    target_per_intent: int | None = None
    seed: int = 0


@dataclass(frozen=True)
class JobConfig:
    model: dict[str, Any]  # JointModelConfig fields, checked when the job is parsed
    data: DataConfig
    regime: str
    tracking: TrackingConfig
    run_dir: Path
    finetune_model: dict[str, Any] = field(default_factory=dict)
    source_yaml: str = ""  # the YAML text as written, logged as an artifact

    def with_regime(self, regime: str) -> "JobConfig":
        _check_regime(regime, "regime (--regime)")
        _check_regime_data(regime, self.data)
        return dataclasses.replace(self, regime=regime)

    def with_target_train(self, paths: Sequence[Path]) -> "JobConfig":
        """More labelled target data beside ``data.target_train`` (e.g. what ``augment
        --method refill`` wrote), as absolute paths: they are logged with the resolved config,
        so the run still says what it trained on. Refused where the config samples its target
        data: the added data would be sampled with it, not trained beside it."""
        if self.data.target_fraction is not None or self.data.target_per_intent is not None:
            raise JobConfigError("the config samples its target data (data.target_fraction / "
                                 "data.target_per_intent), and added data would be sampled "
                                 "with it; use the whole target data",
                                 field="--add-target-train")
        added = tuple(DataSpec(path=str(Path(path).resolve())) for path in paths)
        return dataclasses.replace(self, data=dataclasses.replace(
            self.data, target_train=self.data.target_train + added))

    def resolved(self) -> dict[str, Any]:
        """The complete config, defaults filled in, as plain data (for params and YAML)."""
        from nlu.model import JointModelConfig

        model = JointModelConfig(**self.model)
        resolved = {
            "model": model.to_dict(),
            "data": _plain(dataclasses.asdict(self.data)),
            "regime": self.regime,
            "tracking": dataclasses.asdict(self.tracking),
            "run_dir": str(self.run_dir),
        }
        if self.regime == "finetune":
            resolved["finetune_model"] = dataclasses.replace(model, **self.finetune_model).to_dict()
        return resolved


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return str(value) if isinstance(value, Path) else value


# -- parsing and validation (once, at the edge) --------------------------------------------

def load_config(path: Path | str) -> JobConfig:
    """Read and validate a job YAML; ``JobConfigError`` names the file and the bad field."""
    path = Path(path)
    raw = read_yaml(path)
    try:
        return parse_config(raw, base=path.parent, source_yaml=path.read_text(encoding="utf-8"))
    except JobConfigError as error:
        raise error.at(path=str(path)) from None


def parse_config(raw: Any, *, base: Path | str = ".", source_yaml: str = "") -> JobConfig:
    """Validate a config mapping (as loaded from YAML); ``base`` anchors ``data.root``."""
    section = config_mapping(raw, "config", {"model", "finetune_model", "data", "regime",
                                             "tracking", "run_dir"})
    model = config_mapping(section.get("model") or {}, "model")
    finetune_model = config_mapping(section.get("finetune_model") or {}, "finetune_model")
    _check_model_fields(model, "model")
    _check_model_fields({**model, **finetune_model}, "finetune_model")
    regime = section.get("regime")
    _check_regime(regime, "regime")
    if "run_dir" not in section:
        raise JobConfigError("missing: the folder for checkpoints and the run id", field="run_dir")
    tracking = TrackingConfig.from_mapping(section.get("tracking"),
                                           default_experiment=DEFAULT_EXPERIMENT)
    data = _data_config(section.get("data"), Path(base))
    _check_regime_data(regime, data)
    return JobConfig(model=model, data=data, regime=regime, tracking=tracking,
                     run_dir=Path(section["run_dir"]), finetune_model=finetune_model,
                     source_yaml=source_yaml)


def _check_regime(regime: Any, where: str) -> None:
    if regime not in REGIME_NAMES:
        raise JobConfigError(f"{regime!r} is not one of {', '.join(REGIME_NAMES)}", field=where)


def _check_regime_data(regime: str, data: "DataConfig") -> None:
    if regime != "monolingual" and not data.source:
        raise JobConfigError(f"the {regime} regime needs source data", field="data.source")
    if regime != "zeroshot" and not data.target_train:
        raise JobConfigError(f"the {regime} regime needs target data", field="data.target_train")


def _check_model_fields(values: dict, where: str) -> None:
    from nlu.model import JointModelConfig

    known = {item.name for item in dataclasses.fields(JointModelConfig)}
    for key in values:
        if key not in known:
            raise JobConfigError(f"unknown model setting {key!r}", field=f"{where}.{key}")
    try:
        JointModelConfig(**values)
    except (TypeError, ValueError) as error:
        raise JobConfigError(str(error), field=where) from None


def _data_config(raw: Any, base: Path) -> DataConfig:
    data = config_mapping(raw, "data", {"root", "source", "target_language", "target_train",
                                  "target_fraction", "target_per_intent", "dev", "test", "seed"})
    for required in ("target_language", "test"):
        if not data.get(required):
            raise JobConfigError("missing", field=f"data.{required}")
    fraction, per_intent = data.get("target_fraction"), data.get("target_per_intent")
    if fraction is not None and per_intent is not None:
        raise JobConfigError("give target_fraction or target_per_intent, not both",
                             field="data.target_fraction")
    if fraction is not None and not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise JobConfigError(f"must be in (0, 1], got {fraction!r}", field="data.target_fraction")
    if per_intent is not None and not (isinstance(per_intent, int) and per_intent > 0):
        raise JobConfigError(f"must be a positive integer, got {per_intent!r}",
                             field="data.target_per_intent")
    root = (base / data.get("root", ".")).resolve()
    return DataConfig(
        root=root,
        source=_data_specs(data.get("source"), "data.source", root),
        target_language=str(data["target_language"]),
        target_train=_data_specs(data.get("target_train"), "data.target_train", root),
        dev=_data_specs(data.get("dev"), "data.dev", root),
        test=_data_specs(data["test"], "data.test", root),
        target_fraction=fraction, target_per_intent=per_intent,
        seed=int(data.get("seed", 0)))


def _data_specs(raw: Any, where: str, root: Path) -> tuple[DataSpec, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raw = [raw]
    specs = []
    for index, item in enumerate(raw):
        here = f"{where}[{index}]"
        spec = data_spec(item, here)
        if not (root / spec.path).exists():
            raise JobConfigError(f"{root / spec.path} does not exist", field=f"{here}.path")
        specs.append(spec)
    return tuple(specs)


# -- data ----------------------------------------------------------------------------------

def read_specs(specs: Sequence[DataSpec], root: Path, seed: int) -> list[Utterance]:
    """Read, label-map and sample every spec (``nlu.jobs.read_data``); concatenate."""
    return [utterance for spec in specs for utterance in read_data(spec, root, seed)]


@dataclass
class JobData:
    source: list[Utterance]
    target: list[Utterance]
    dev: list[Utterance]
    test: list[Utterance]

    def counts(self) -> dict[str, float]:
        return {f"data/{name}": float(len(getattr(self, name)))
                for name in ("source", "target", "dev", "test")}


def target_share(target: list[Utterance], config: DataConfig) -> list[Utterance]:
    """How much target data the job may use: all of it, or a seeded sample stratified by
    intent (a fraction of each intent, or at most N per intent)."""
    if config.target_fraction is None and config.target_per_intent is None:
        return target
    from nlu.dataset import sample

    return sample(target, fraction=config.target_fraction,
                  per_intent=config.target_per_intent, seed=config.seed)


def load_data(config: DataConfig) -> JobData:
    target = read_specs(config.target_train, config.root, config.seed)
    wrong = {u.language for u in target} - {config.target_language}
    if wrong:
        raise JobConfigError(f"target_train holds languages {sorted(wrong)}, not only "
                             f"{config.target_language!r}", field="data.target_train")
    return JobData(
        source=read_specs(config.source, config.root, config.seed),
        target=target_share(target, config),
        dev=read_specs(config.dev, config.root, config.seed),
        test=read_specs(config.test, config.root, config.seed))


def regime_training_data(regime: str, data: JobData) -> list[Utterance]:
    """The labelled utterances a regime learns from (also the domain classifier's data)."""
    return {"monolingual": data.target, "mixed": data.source + data.target,
            "finetune": data.source + data.target, "zeroshot": data.source}[regime]


# -- the job -------------------------------------------------------------------------------

def run(config: JobConfig, *, tracking_uri: str | None = None,
        resume: bool = False) -> dict | None:
    """Train, evaluate and track the job; return run id, model reference and final metrics
    (``None`` in the processes of a DDP job other than rank 0).

    ``tracking_uri`` overrides the config's; ``resume`` continues the MLflow run and the
    checkpoints recorded in ``config.run_dir`` (a fresh run if there is nothing to resume).
    """
    import mlflow

    from multilingual.regimes import train_regime
    from nlu import tracking
    from nlu.devices import is_primary_process
    from nlu.domain import SNIPS_DOMAINS, DomainClassifier
    from nlu.metrics import evaluate
    from nlu.model import JointModelConfig

    model_config = JointModelConfig(**config.model)
    options: dict[str, Any] = {}
    if config.regime == "finetune":
        options["finetune_config"] = dataclasses.replace(model_config, **config.finetune_model)
    data = load_data(config.data)
    if config.regime == "zeroshot":
        data.target = []  # zero-shot uses no target data (logged as data/target = 0)
    if not data.test:
        raise JobConfigError("the test files hold no utterances", field="data.test")
    if not is_primary_process():
        # A DDP process other than rank 0 (which tracks, saves and evaluates) only trains.
        train_regime(config.regime, data.source, data.target, model_config,
                     dev=data.dev or None, run_dir=config.run_dir / config.regime,
                     resume=resume, **options)
        return None
    run_dir = config.run_dir
    resolved = config.resolved()
    with TrackedRun(run_dir, config.tracking, tracking_uri=tracking_uri, resume=resume,
                    run_name=f"{config.data.target_language}-{config.regime}",
                    tags={"regime": config.regime,
                          "target_language": config.data.target_language}) as run:
        if not run.resumed:
            tracking.log_config(resolved)
            if config.source_yaml:
                mlflow.log_text(config.source_yaml, "job.yaml")
            mlflow.log_metrics(data.counts())

        model = train_regime(config.regime, data.source, data.target, model_config,
                             dev=data.dev or None, run_dir=run_dir / config.regime,
                             tracking_uri=run.tracking_uri, resume=resume, **options)

        model_dir = model.save(run_dir / "model")
        domain_classifier = DomainClassifier(domain_map=SNIPS_DOMAINS)
        domain_classifier.fit(regime_training_data(config.regime, data))
        domain_classifier.save(model_dir / DOMAIN_FILENAME)

        metrics: dict[str, float] = {}
        for split, gold in (("dev", data.dev), ("test", data.test)):
            if not gold:
                continue
            report = evaluate(gold, model.predict(gold), seed=config.data.seed)
            metrics.update(report.flat(split))
            metrics.update({f"{split}/{group}/domain_acc": accuracy for group, accuracy
                            in domain_classifier.accuracy(gold).items()})
            mlflow.log_text(report.to_markdown(), f"reports/{split}.md")
            mlflow.log_dict(report.to_dict(), f"reports/{split}.json")
        mlflow.log_metrics(metrics)
        from nlu.pyfunc import log_nlu_model  # an MLflow pyfunc model TrainedNlu reads too

        model_ref = log_nlu_model(model_dir, registered_name=config.tracking.registered_name,
                                  alias=config.tracking.alias,
                                  language=config.data.target_language)
    return {"run_id": run.run_id, "tracking_uri": run.tracking_uri, "model_ref": model_ref,
            "model_dir": str(model_dir), "metrics": metrics}

