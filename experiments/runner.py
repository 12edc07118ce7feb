"""Run a study: one YAML file -> one MLflow run per task x arm x seed, resumable.

A study YAML (see ``experiments/study_*.yaml``) fully describes the experiment:

* ``base``: a YAML this one states only the differences from (``nlu.jobs.read_yaml``).
* ``study``: the study's name (a run tag); ``tracking.experiment``: its MLflow experiment.
* ``data.root``: folder the data paths are relative to (relative to the YAML's folder);
  ``data.source``: optional source-language data added to every task's training set
  (``train``, ``dev``), e.g. English for the new-language study.
* ``tasks``: the target settings. Each has a ``language``, ``train``/``dev``/``test`` data
  specs and optionally ``fractions`` (one task per fraction of the target train set, named
  ``<name>-<percent>``) and ``cut`` (``{intents: [...], keep: N}``: those intents are cut
  down to N training examples, become the only ones augmented, and get their own
  ``test-focus``/``dev-focus`` metrics). Instead of ``dev``, ``dev_fraction`` holds out that
  share of the target train file as dev (for xSID targets, whose only data is ``valid``).
  ``catalogue`` (``{name, values_of | cross_lingual | file, ...}``, see ``CatalogueSpec``):
  slot values a data team has without annotated utterances, for the arms with a
  ``catalogue_share``; never taken from a test file.
* A data spec is ``{path, format?, language?, labels?, sample?}``: ``labels`` names a
  label mapping (``nlu.schema.LabelMapping.load``), ``sample`` keeps about that many
  utterances (intent-stratified and seeded, as in every job: ``nlu.jobs.read_data``).
* ``augment``: ``scale`` (synthetic utterances = scale x the augmentable target train
  utterances) and the quality ``gate`` (``gan.gate.GateConfig`` fields).
* ``samplers``: named ``gan.sampling.SamplingConfig`` settings.
* ``arms``: name -> ``{augment: none|upsample|refill|generator, gan: {...}, sampler: NAME,
  embeddings: random|transferred, gate: {...}, scale: X, upsample_scale: Y,
  source_aware: BOOL, catalogue_share: R}`` (``refill``: upsampled copies with every slot
  value redrawn, ``gan.catalogue.refill``; ``catalogue_share``: the share of slot fills
  drawn from the task's catalogue, the rest from the target's own values, for refill arms
  and delexicalised generator arms; ``gate``: changes to the study's gate for this arm, e.g.
  ``{nlu_agreement: true}``; ``scale``: the arm's own augment scale; ``upsample_scale``: a
  generator arm also adds Y x the augmentable set as upsampled copies, the ``upsample+gen``
  arms; ``source_aware``: the generator trains on the source and target data together and
  writes the target language). ``grid`` adds
  ``gan-<reward>-<sampler>-<embeddings>`` arms for every combination of its ``rewards``,
  ``samplers`` and ``embeddings`` lists.
* ``seeds``, ``nlu`` (``JointModelConfig`` fields), ``gan`` (``GanConfig`` fields) and
  ``regime`` (``multilingual.regimes``: how source and target data train the NLU model;
  default ``mixed``, one model on both).
* ``profiles``: name -> a partial study deep-merged over the rest (mappings merge, anything
  else is replaced); ``only_arms`` / ``only_tasks`` keep a subset.

Every run is an ``nlu.jobs.TrackedRun`` tagged ``study, task, language, arm, seed`` (plus ``kind=arm``, ``sampler``,
``reward``, ``embeddings``) and logs dev and test metrics (``EvaluationReport.flat``), the
synthetic set's quality metrics (``synthetic/...``), gate counts (``gate/...``) and how its
NLU model's training ended (``train/...``: epochs, best epoch, optimiser steps, and whether
early stopping or the epoch cap ended it). A run
already FINISHED with the same tags is skipped, so an interrupted study is resumed by running
the same command again.

"transferred" embeddings come from the task's baseline NLU model (real data only, the same
model the ``none`` arm evaluates), trained once per task and seed and kept in the work folder;
generators are kept there too and shared by arms that differ only in their sampler.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from nlu.dataset import DataSpec, read_spec
from nlu.jobs import (JobConfigError, TrackedRun, TrackingConfig, data_spec, deep_merge,
                      read_data, read_yaml, refuse_renamed_keys)
from nlu.utterance import Utterance

log = logging.getLogger(__name__)

AUGMENTATIONS = ("none", "upsample", "refill", "generator")
EMBEDDINGS = ("random", "transferred")
EVALUATION_SEED = 0  # sub-samples of dev/test sets are the same for every run
SYNTHETIC_PREVIEW = 50  # synthetic utterances logged as an artifact per run


class StudyConfigError(JobConfigError):
    """A study YAML is malformed; the message names the offending key."""


# -- the study description -----------------------------------------------------------------

@dataclass(frozen=True)
class CatalogueSpec:
    """Where a task's catalogue of slot values comes from (exactly one source)."""

    name: str  # the runs' ``catalogue`` tag
    values_of: DataSpec | None = None  # the slot values of these annotated utterances, only
    cross_lingual: DataSpec | None = None  # source-language utterances: ``cross_lingual_catalogue``
    min_verbatim_share: float = 0.2  # cross_lingual: a slot type's share of shared values
    file: str | None = None  # a catalogue file (TSV or annotated), relative to the data root
    focus_slot_types: bool = False  # only the slot types of the task's cut intents


@dataclass(frozen=True)
class Task:
    name: str
    language: str
    train: DataSpec
    dev: DataSpec | None  # None: ``dev_fraction`` of the target train file is held out as dev
    test: DataSpec
    dev_fraction: float | None = None
    fraction: float | None = None
    focus_intents: tuple[str, ...] = ()
    focus_keep: int | None = None
    catalogue: CatalogueSpec | None = None


@dataclass(frozen=True)
class Arm:
    name: str
    augment: str
    gan: dict = field(default_factory=dict)
    sampler: str | None = None
    embeddings: str = "random"
    gate: dict = field(default_factory=dict)  # over the study's augment.gate
    scale: float | None = None  # None: the study's augment.scale
    upsample_scale: float = 0.0  # generator arms: upsampled copies added besides (upsample+gen)
    source_aware: bool = False  # generator arms: trained on source + target data
    catalogue_share: float | None = None  # refill / delexicalised generator arms: see above


@dataclass
class Study:
    name: str
    experiment: str
    data_root: Path
    tasks: list[Task]
    arms: list[Arm]
    seeds: list[int]
    samplers: dict[str, dict]
    nlu: dict
    gan: dict
    scale: float
    gate: dict
    source_train: DataSpec | None = None
    source_dev: DataSpec | None = None
    regime: str = "mixed"
    raw: dict = field(default_factory=dict)  # the resolved YAML, logged with every run


def _data_spec(value: Any, where: str) -> DataSpec:
    try:
        return data_spec(value, where)
    except JobConfigError as error:
        raise StudyConfigError(str(error)) from None


CATALOGUE_SOURCES = ("values_of", "cross_lingual", "file")


def _catalogue(raw: Any, where: str, test: DataSpec) -> CatalogueSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise StudyConfigError(f"{where}: expected a mapping, got {raw!r}")
    known = {field.name for field in dataclasses.fields(CatalogueSpec)}
    unknown = set(raw) - known
    if unknown:
        raise StudyConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
                               f"known: {', '.join(sorted(known))}")
    given = [name for name in CATALOGUE_SOURCES if raw.get(name) is not None]
    if len(given) != 1:
        raise StudyConfigError(f"{where}: give exactly one of {', '.join(CATALOGUE_SOURCES)}")
    if not isinstance(raw.get("name"), str) or not re.fullmatch(r"[\w\-.]+", raw["name"]):
        raise StudyConfigError(f"{where}.name: a name of letters, digits, '_', '-' and '.'")
    share = raw.get("min_verbatim_share", 0.2)
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
        raise StudyConfigError(f"{where}.min_verbatim_share: a number in 0..1, got {share!r}")
    spec = CatalogueSpec(
        name=raw["name"], min_verbatim_share=float(share),
        focus_slot_types=bool(raw.get("focus_slot_types", False)),
        values_of=(_data_spec(raw["values_of"], f"{where}.values_of")
                   if raw.get("values_of") is not None else None),
        cross_lingual=(_data_spec(raw["cross_lingual"], f"{where}.cross_lingual")
                       if raw.get("cross_lingual") is not None else None),
        file=raw.get("file"))
    path = (spec.values_of or spec.cross_lingual).path if spec.file is None else spec.file
    if not isinstance(path, str) or not path:
        raise StudyConfigError(f"{where}.file: expected a path")
    if Path(path) == Path(test.path):  # the one rule a catalogue study must never break
        raise StudyConfigError(f"{where}: {path} is the task's test file; a catalogue never "
                               "holds a value taken from a test file")
    return spec


def _tasks(raw_tasks: list[dict]) -> list[Task]:
    tasks = []
    for index, raw in enumerate(raw_tasks):
        where = f"tasks[{index}]"
        missing = {"name", "language", "train", "test"} - set(raw)
        if missing:
            raise StudyConfigError(f"{where}: missing {', '.join(sorted(missing))}")
        if ("dev" in raw) == ("dev_fraction" in raw):
            raise StudyConfigError(f"{where}: give either 'dev' or 'dev_fraction'")
        cut = raw.get("cut") or {}
        common = dict(language=raw["language"], train=_data_spec(raw["train"], f"{where}.train"),
                      dev=_data_spec(raw["dev"], f"{where}.dev") if "dev" in raw else None,
                      dev_fraction=raw.get("dev_fraction"),
                      test=_data_spec(raw["test"], f"{where}.test"),
                      focus_intents=tuple(cut.get("intents", ())), focus_keep=cut.get("keep"))
        common["catalogue"] = _catalogue(raw.get("catalogue"), f"{where}.catalogue",
                                         common["test"])
        if cut and (not common["focus_intents"] or not common["focus_keep"]):
            raise StudyConfigError(f"{where}.cut: needs 'intents' and 'keep'")
        fractions = raw.get("fractions")
        if fractions:
            tasks += [Task(name=f"{raw['name']}-{round(100 * fraction):g}", fraction=fraction,
                           **common) for fraction in fractions]
        else:
            tasks.append(Task(name=raw["name"], **common))
    return tasks


def _arms(raw_arms: dict, grid: dict | None, samplers: dict) -> list[Arm]:
    arms = []
    for name, raw in (raw_arms or {}).items():
        try:
            arms.append(Arm(name=name, **(raw or {})))
        except TypeError as error:
            raise StudyConfigError(f"arms.{name}: {error}") from None
    if grid:
        for reward, sampler, embeddings in itertools.product(
                grid["rewards"], grid["samplers"], grid.get("embeddings", ["random"])):
            arms.append(Arm(name=f"gan-{reward}-{sampler}-{embeddings}", augment="generator",
                            gan={"reward": reward}, sampler=sampler, embeddings=embeddings))
    for arm in arms:
        if arm.augment not in AUGMENTATIONS:
            raise StudyConfigError(f"arms.{arm.name}.augment: {arm.augment!r} is not one of "
                                   f"{', '.join(AUGMENTATIONS)}")
        if arm.embeddings not in EMBEDDINGS:
            raise StudyConfigError(f"arms.{arm.name}.embeddings: {arm.embeddings!r} is not one "
                                   f"of {', '.join(EMBEDDINGS)}")
        if arm.augment == "generator" and arm.sampler not in samplers:
            raise StudyConfigError(f"arms.{arm.name}.sampler: {arm.sampler!r} is not one of "
                                   f"the study's samplers ({', '.join(samplers)})")
        for name in ("scale", "upsample_scale"):
            value = getattr(arm, name)
            if value is not None and not (isinstance(value, (int, float)) and 0 <= value < 1e6):
                raise StudyConfigError(f"arms.{arm.name}.{name}: must be a number >= 0, "
                                       f"got {value!r}")
        if arm.augment != "generator" and (arm.upsample_scale or arm.source_aware):
            raise StudyConfigError(f"arms.{arm.name}: upsample_scale and source_aware are "
                                   "options of generator arms")
        share = arm.catalogue_share
        if share is not None and (isinstance(share, bool) or not isinstance(share, (int, float))
                                  or not 0 <= share <= 1):
            raise StudyConfigError(f"arms.{arm.name}.catalogue_share: a number in 0..1, "
                                   f"got {share!r}")
        if share is not None and arm.augment not in ("refill", "generator"):
            raise StudyConfigError(f"arms.{arm.name}.catalogue_share: an option of refill and "
                                   "generator arms")
        if arm.augment == "refill" and share is None:
            raise StudyConfigError(f"arms.{arm.name}: a refill arm needs catalogue_share "
                                   "(0: the target's own values only)")
    names = [arm.name for arm in arms]
    if len(set(names)) != len(names):
        raise StudyConfigError("arms: duplicate arm names")
    for name in names:  # the name goes into MLflow param keys and tags
        if not re.fullmatch(r"[\w\-.]+", name):
            raise StudyConfigError(f"arms.{name}: a name of letters, digits, '_', '-' and "
                                   "'.' only")
    return arms


def _subset(items: list, names: Sequence[str] | None, where: str, what: str) -> list:
    """The ``items`` (tasks or arms) named in ``names``, in the study's order (all if None)."""
    if names is None:
        return items
    unknown = set(names) - {item.name for item in items}
    if unknown:
        raise StudyConfigError(f"{where}: unknown {what} {', '.join(sorted(unknown))} "
                               f"(has: {', '.join(item.name for item in items)})")
    return [item for item in items if item.name in names]


MAX_EXTENDS = 8


def _profile(profiles: dict, name: str, path: Path, seen: tuple[str, ...] = ()) -> dict:
    """Profile ``name``, deep-merged over the profile it ``extends`` (if any)."""
    if name not in profiles:
        raise StudyConfigError(f"profile {name!r} not in {path} "
                               f"(has: {', '.join(profiles) or 'none'})")
    body = dict(profiles[name] or {})
    parent = body.pop("extends", None)
    if parent is None:
        return body
    if parent in seen or len(seen) >= MAX_EXTENDS:
        raise StudyConfigError(f"profiles.{name}.extends: a cycle or more than {MAX_EXTENDS} "
                               f"levels ({' -> '.join((*seen, name, parent))})")
    return deep_merge(_profile(profiles, parent, path, (*seen, name)), body)


def load_study(path: Path | str, profile: str | None = None,
               data_root: Path | str | None = None,
               seeds: Sequence[int] | None = None,
               devices: dict[str, Any] | None = None,
               tasks: Sequence[str] | None = None,
               arms: Sequence[str] | None = None) -> Study:
    """Read a study YAML, apply ``profile``, validate it into a ``Study``; ``data_root`` and
    ``seeds`` override the YAML's, ``devices`` (``DeviceConfig`` fields) the NLU models' and,
    as far as one process goes (accelerator, precision), the GANs' device options; ``tasks``
    and ``arms`` keep a subset of the profile's (e.g. to split one seed over two processes)."""
    path = Path(path)
    raw = read_yaml(path)
    profiles = raw.pop("profiles", {}) or {}
    if profile is not None:
        raw = deep_merge(raw, _profile(profiles, profile, path))
    try:
        refuse_renamed_keys(raw, {"data_root": "data.root", "source": "data.source",
                                  "experiment": "tracking.experiment"}, "")
        data = raw.get("data") or {}
        default_experiment = f"study-{raw.get('study')}" + (f"-{profile}" if profile else "")
        tracking = TrackingConfig.from_mapping(raw.get("tracking"),
                                               default_experiment=default_experiment)
    except JobConfigError as error:
        raise StudyConfigError(f"{path}: {error}") from None
    unknown = set(data) - {"root", "source"}
    if unknown:
        raise StudyConfigError(f"{path}: data: unknown key(s) {', '.join(sorted(unknown))}; "
                               "known: root, source")
    if devices:
        from nlu.devices import with_devices

        try:
            raw["nlu"] = with_devices(raw.get("nlu") or {}, devices)
            raw["gan"] = with_devices(raw.get("gan") or {}, {
                name: value for name, value in devices.items()
                if name in ("accelerator", "precision")})
        except ValueError as error:
            raise StudyConfigError(f"devices: {error}") from None
    only_arms = raw.pop("only_arms", None)
    only_tasks = raw.pop("only_tasks", None)
    for key in ("study", "tasks", "arms", "seeds"):
        if key not in raw:
            raise StudyConfigError(f"{path}: missing top-level key {key!r}")
    samplers = raw.get("samplers") or {}
    task_list = _tasks(raw["tasks"])
    arm_list = _arms(raw["arms"], raw.get("grid"), samplers)
    for where, names in (("only_tasks", only_tasks), ("tasks", tasks)):
        task_list = _subset(task_list, names, where, "tasks")
    for where, names in (("only_arms", only_arms), ("arms", arms)):
        arm_list = _subset(arm_list, names, where, "arms")
    source = data.get("source") or {}
    for arm in arm_list:
        if arm.source_aware and "train" not in source:
            raise StudyConfigError(f"arms.{arm.name}.source_aware: the study has no "
                                   "source.train to learn from")
        if arm.catalogue_share:
            for task in task_list:
                if task.catalogue is None:
                    raise StudyConfigError(f"arms.{arm.name}.catalogue_share: task {task.name} "
                                           "has no catalogue")
    check_verdict_bar(raw)
    check_catalogue_bar(raw)
    augment = raw.get("augment") or {}
    root = Path(data_root) if data_root is not None else path.parent / data.get("root", ".")
    if not root.is_dir():
        raise StudyConfigError(f"data root {root} is not a folder (set data.root in {path} "
                               "or pass --data-root)")
    study = Study(
        name=raw["study"], experiment=tracking.experiment, data_root=root.resolve(), tasks=task_list,
        arms=arm_list, seeds=[int(seed) for seed in (seeds or raw["seeds"])], samplers=samplers,
        nlu=raw.get("nlu") or {}, gan=raw.get("gan") or {}, scale=float(augment.get("scale", 1.0)),
        gate=augment.get("gate") or {},
        source_train=_data_spec(source["train"], "source.train") if "train" in source else None,
        source_dev=_data_spec(source["dev"], "source.dev") if "dev" in source else None,
        regime=raw.get("regime", "mixed"),
        raw=raw | {"profile": profile})
    check_settings(study)
    return study


def check_verdict_bar(raw: dict) -> None:
    """The study's pre-registered bar (read by ``compare`` from the runs' logged config)."""
    from experiments.compare import VerdictBar

    if "verdict_bar" in raw:
        try:
            VerdictBar.from_dict(raw["verdict_bar"])
        except ValueError as error:
            raise StudyConfigError(str(error)) from None


def check_catalogue_bar(raw: dict) -> None:
    """The study's pre-registered bar for its catalogue arms (read by ``compare`` as the
    verdict bar is)."""
    from experiments.compare import CatalogueBar

    if "catalogue_bar" in raw:
        try:
            CatalogueBar.from_dict(raw["catalogue_bar"])
        except ValueError as error:
            raise StudyConfigError(str(error)) from None


def check_settings(study: Study) -> None:
    """Every model and sampler setting of every run, checked before the first run starts
    (a bad value would otherwise stop the study hours in)."""
    from gan.config import GanConfig
    from gan.sampling import SamplingConfig

    for seed in study.seeds:
        try:
            nlu_config(study, seed)
        except (TypeError, ValueError) as error:
            raise StudyConfigError(f"nlu (seed {seed}): {error}") from None
    for name, settings in study.samplers.items():
        try:
            SamplingConfig(**settings)
        except (TypeError, ValueError) as error:
            raise StudyConfigError(f"samplers.{name}: {error}") from None
    for arm in study.arms:
        if arm.augment == "generator":
            try:
                config = GanConfig.from_dict(study_gan_config(study, arm) | {"seed": study.seeds[0]})
            except (TypeError, ValueError) as error:
                raise StudyConfigError(f"arms.{arm.name}.gan: {error}") from None
            if arm.catalogue_share is not None and not config.delexicalised:
                raise StudyConfigError(f"arms.{arm.name}.catalogue_share: only a delexicalised "
                                       "generator (gan.delexicalised: true) fills slots from a "
                                       "catalogue")


# -- data ----------------------------------------------------------------------------------

_READ_CACHE: dict[tuple, list[Utterance]] = {}


def read(spec: DataSpec, root: Path) -> list[Utterance]:
    """The utterances a spec's file holds, labels mapped (cached: a study reads each file
    once); ``nlu.jobs.read_data`` samples them."""
    key = (spec, str(root))
    if key not in _READ_CACHE:
        _READ_CACHE[key] = read_spec(spec, root)
    return _READ_CACHE[key]


@dataclass
class TaskData:
    source_train: list[Utterance]
    source_dev: list[Utterance]
    target_train: list[Utterance]
    dev: list[Utterance]
    test: list[Utterance]
    focus_intents: tuple[str, ...]

    @property
    def augmentable(self) -> list[Utterance]:
        """What the augmentation arms grow: the target train set, or its cut intents."""
        if not self.focus_intents:
            return self.target_train
        return [u for u in self.target_train if u.intent in self.focus_intents]


def task_data(study: Study, task: Task, seed: int) -> TaskData:
    """The data of one task and seed. Training data depends on the seed (each seed is a
    different draw of the few target examples, as a data team would get); sub-sampled dev and
    test sets do not, so every run of a task is scored on the same utterances."""
    from nlu.dataset import sample, split

    root = study.data_root
    source_train = (read_data(study.source_train, root, seed, reader=read)
                    if study.source_train else [])
    source_dev = (read_data(study.source_dev, root, EVALUATION_SEED, reader=read)
                  if study.source_dev else [])
    target_train = read_data(task.train, root, seed, reader=read)
    if task.dev is None:
        # the dev set is a seeded, intent-stratified part of the target's only data
        target_train, dev = split(target_train, (1 - task.dev_fraction, task.dev_fraction), seed)
    else:
        dev = read_data(task.dev, root, EVALUATION_SEED, reader=read)
    if task.fraction is not None:
        target_train = sample(target_train, fraction=task.fraction, seed=seed)
    if task.focus_intents:
        kept = [u for u in target_train if u.intent not in task.focus_intents]
        cut = sample([u for u in target_train if u.intent in task.focus_intents],
                     per_intent=task.focus_keep, seed=seed)
        target_train = kept + cut
    return TaskData(source_train=source_train, source_dev=source_dev, target_train=target_train,
                    dev=dev,
                    test=read_data(task.test, root, EVALUATION_SEED, reader=read),
                    focus_intents=task.focus_intents)


_CATALOGUE_CACHE: dict[tuple, Any] = {}


def task_catalogue(study: Study, task: Task, data: TaskData, seed: int):
    """The task's catalogue (``gan.lexicon.SlotLexicon`` in the task's language) and metrics
    describing it. A cross-lingual one is chosen from the target's train and dev data, which
    depend on the seed; the others do not."""
    from gan.catalogue import catalogue_from_utterances, cross_lingual_catalogue, read_catalogue

    spec = task.catalogue
    # tasks may share a spec (a YAML anchor): the catalogue is in the task's language and a
    # cross-lingual one is chosen from the task's own train and dev data
    key = (task.name, spec, str(study.data_root), seed if spec.cross_lingual else None)
    if key in _CATALOGUE_CACHE:
        return _CATALOGUE_CACHE[key]
    metrics: dict[str, float] = {}
    if spec.file is not None:
        catalogue, report = read_catalogue(study.data_root / spec.file, language=task.language)
        metrics["catalogue/duplicates"] = float(report.duplicates)
    elif spec.values_of is not None:
        utterances = read(spec.values_of, study.data_root)
        catalogue = catalogue_from_utterances(utterances, language=task.language)
        if spec.focus_slot_types:
            kept = {span.label for u in utterances if u.intent in task.focus_intents
                    for span in u.spans}
            catalogue = type(catalogue)({language: {slot: values for slot, values in slots.items()
                                                    if slot in kept}
                                         for language, slots in catalogue.values.items()})
    else:
        target = [u for u in data.target_train + data.dev if u.language == task.language]
        catalogue, shares = cross_lingual_catalogue(read(spec.cross_lingual, study.data_root),
                                                    target, language=task.language,
                                                    min_verbatim_share=spec.min_verbatim_share)
        metrics.update({f"catalogue/verbatim_share/{slot}": share
                        for slot, share in shares.items()})
    by_type = catalogue.values.get(task.language, {})
    metrics["catalogue/values"] = float(sum(len(values) for values in by_type.values()))
    metrics["catalogue/slot_types"] = float(len(by_type))
    _CATALOGUE_CACHE[key] = catalogue, metrics
    return catalogue, metrics


# -- one run -------------------------------------------------------------------------------

def run_tags(study: Study, task: Task, arm: Arm, seed: int) -> dict[str, str]:
    tags = {"kind": "arm", "study": study.name, "task": task.name, "language": task.language,
            "arm": arm.name, "seed": str(seed), "augment": arm.augment,
            "embeddings": arm.embeddings}
    if arm.augment != "none":
        tags["scale"] = f"{arm_scale(study, arm):g}"
    if arm.augment == "generator":
        from gan.config import GanConfig

        gan_config = GanConfig.from_dict(study_gan_config(study, arm))
        tags["sampler"] = arm.sampler
        tags["reward"] = "mle" if gan_config.adversarial_steps == 0 else gan_config.reward
        tags["generator_data"] = "source+target" if arm.source_aware else "target"
        tags["slot_values"] = "lexicon" if gan_config.delexicalised else "generated"
        tags["upsample_scale"] = f"{arm.upsample_scale:g}"
    if arm.catalogue_share is not None:
        tags["catalogue_share"] = f"{arm.catalogue_share:g}"
        if arm.catalogue_share > 0:
            tags["catalogue"] = task.catalogue.name
    if task.fraction is not None:
        tags["fraction"] = f"{task.fraction:g}"
    return tags


def study_gan_config(study: Study, arm: Arm) -> dict:
    return deep_merge(study.gan, arm.gan)


def arm_scale(study: Study, arm: Arm) -> float:
    return study.scale if arm.scale is None else float(arm.scale)


def arm_gate_config(study: Study, arm: Arm):
    from gan.gate import GateConfig

    return GateConfig(**(study.gate | arm.gate))


def nlu_config(study: Study, seed: int):
    from nlu.model import JointModelConfig

    return JointModelConfig.from_dict(study.nlu | {"seed": seed})


def train_nlu(study: Study, data: TaskData, target_train: list[Utterance], seed: int,
              run_dir: Path):
    """The study's transfer regime (``multilingual.regimes``) on source + ``target_train``,
    early-stopped on the dev sets."""
    from multilingual.regimes import train_regime

    return train_regime(study.regime, data.source_train, target_train, nlu_config(study, seed),
                        dev=data.dev + data.source_dev, run_dir=run_dir)


def kept_in_work_dir(saved: Path, marker: str, train: Callable[[Path], Any],
                     load: Callable[[Path], Any]):
    """What ``saved`` holds (a directory with ``marker`` in it), else ``train(scratch)``'s
    result, saved there: a complete directory or none, even if the job is killed."""
    if (saved / marker).exists():
        return load(saved)
    scratch = saved.with_name(f"{saved.name}.training")
    shutil.rmtree(scratch, ignore_errors=True)
    made = train(scratch)
    staged = saved.with_name(f"{saved.name}.partial")
    shutil.rmtree(staged, ignore_errors=True)
    made.save(staged)
    staged.replace(saved)
    shutil.rmtree(scratch, ignore_errors=True)
    return made


def baseline_model(study: Study, task: Task, data: TaskData, seed: int, work_dir: Path):
    """The NLU model trained on the real data only (the ``none`` arm; the source of
    transferred embeddings). Trained once per task and seed, then loaded from the work dir."""
    from nlu.training import TrainedNlu

    return kept_in_work_dir(
        work_dir / task.name / f"seed-{seed}" / "baseline-model", "weights.pt",
        lambda scratch: train_nlu(study, data, data.target_train, seed, scratch), TrainedNlu.load)


def trained_generator(study: Study, task: Task, arm: Arm, data: TaskData, seed: int,
                      work_dir: Path, baseline):
    """The arm's generator. Arms that differ only in their sampler train the same generator
    (same data, settings and seed), so it is trained once per task and seed, kept in the work
    folder under a hash of its settings, and loaded by the other arms."""
    from gan.augment import Augmenter
    from gan.config import GanConfig
    from gan.training import train_gan

    gan_settings = study_gan_config(study, arm) | {"seed": seed}
    if arm.embeddings == "transferred":
        gan_settings["embeddings"] = "nlu"  # the baseline model's piece embeddings, per word
    train = data.source_train + data.target_train if arm.source_aware else data.target_train
    identity = gan_settings | {"source_aware": arm.source_aware}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]
    return kept_in_work_dir(
        work_dir / task.name / f"seed-{seed}" / "generators" / key, "info.json",
        lambda scratch: train_gan(train, GanConfig.from_dict(gan_settings),
                                  run_dir=scratch, nlu_model=baseline, progress_bar=False),
        Augmenter.from_dir)


def upsampled_copies(augmentable: list[Utterance], scale: float, seed: int) -> list[Utterance]:
    """``scale`` x ``augmentable`` copies of real utterances (intent-stratified)."""
    from nlu.dataset import upsample

    count = round(scale * len(augmentable))
    # upsample returns the originals first (already in the training set), then the copies
    return upsample(augmentable, len(augmentable) + count, seed)[len(augmentable):]


def synthesize(study: Study, task: Task, arm: Arm, data: TaskData, seed: int, work_dir: Path,
               baseline) -> tuple[list[Utterance], list[Utterance], dict[str, float]]:
    """The arm's extra training utterances, as (upsampled copies, generated utterances), and
    the metrics describing the generated ones."""
    import mlflow

    augmentable = data.augmentable
    scale = arm_scale(study, arm)
    if arm.augment == "upsample":
        return upsampled_copies(augmentable, scale, seed), [], {}
    catalogue, metrics = (task_catalogue(study, task, data, seed) if arm.catalogue_share
                          else (None, {}))
    if arm.augment == "refill":
        from gan.catalogue import SlotFiller, refill
        from gan.lexicon import SlotLexicon

        filler = SlotFiller(own=SlotLexicon.build(data.target_train), catalogue=catalogue,
                            catalogue_share=arm.catalogue_share)
        # new slot values in real carriers: synthetic utterances, compared at the same size
        return [], refill(augmentable, filler, count=round(scale * len(augmentable)),
                          seed=seed), metrics
    copies = upsampled_copies(augmentable, arm.upsample_scale, seed)
    count = round(scale * len(augmentable))

    from gan.gate import GateReport
    from gan.quality import quality_metrics
    from gan.sampling import SamplingConfig

    augmenter = trained_generator(study, task, arm, data, seed, work_dir, baseline)
    quotas = None
    if data.focus_intents:
        share, rest = divmod(count, len(data.focus_intents))
        quotas = {intent: share + (index < rest)
                  for index, intent in enumerate(data.focus_intents)}
    if catalogue is not None and not catalogue.values.get(task.language):
        # An empty catalogue (ja's cross-lingual one: no English value matches verbatim)
        # leaves the target's own values, as in the refill arms; generate() would refuse it.
        catalogue = None
    # The generator refills what its gate drops (the NLU agreement check with the baseline)
    generation = augmenter.generate(
        count, sampling=SamplingConfig(**study.samplers[arm.sampler]), seed=seed, quotas=quotas,
        language=task.language, gate=arm_gate_config(study, arm), train=data.target_train,
        nlu_model=baseline, catalogue=catalogue, catalogue_share=arm.catalogue_share or 0.0)
    synthetic = list(generation)
    gate_report: GateReport = generation.report
    heldout = [u for u in data.dev if u.language == task.language]
    metrics.update({f"synthetic/{name}": value for name, value
                    in quality_metrics(synthetic, heldout, data.target_train,
                                       nlu_model=baseline, seed=seed).items()})
    metrics.update({f"gate/{name}": float(value) for name, value in gate_report.as_dict().items()})
    metrics["gate/kept_rate"] = gate_report.kept_rate
    mlflow.log_text("".join(json.dumps(u.to_dict(), ensure_ascii=False) + "\n"
                            for u in synthetic[:SYNTHETIC_PREVIEW]), "synthetic_preview.jsonl")
    return copies, synthetic, metrics


def evaluation_metrics(model, data: TaskData) -> tuple[dict[str, float], str]:
    """Dev and test metrics (plus ``*-focus`` on the cut intents) and the test report, with
    slot F1 on values seen vs unseen in the target's own training data (what a catalogue can
    add: ``slot_f1_unseen`` ...). The target's real train set decides what is seen, for every
    arm alike: neither the source language's data nor what an arm adds counts."""
    from nlu.metrics import evaluate, seen_slot_values

    seen_values = seen_slot_values(data.target_train)
    metrics: dict[str, float] = {}
    markdown = ""
    for split, gold in (("dev", data.dev), ("test", data.test)):
        predicted = model.predict(gold)
        report = evaluate(gold, predicted, seen_values=seen_values)
        metrics.update(report.flat(split))
        if split == "test":
            markdown = report.to_markdown()
        focus = [(g, p) for g, p in zip(gold, predicted) if g.intent in data.focus_intents]
        if focus:
            focus_gold, focus_predicted = zip(*focus)
            metrics.update(evaluate(focus_gold, focus_predicted, seen_values=seen_values)
                           .flat(f"{split}-focus"))
    return metrics, markdown


def run_one(study: Study, task: Task, arm: Arm, seed: int, *, tracking_uri: str,
            work_dir: Path) -> str:
    """Train and evaluate one arm on one task with one seed, as one MLflow run."""
    import mlflow

    from nlu.tracking import log_config

    run_dir = work_dir / task.name / f"seed-{seed}" / arm.name
    started, cpu_started = time.monotonic(), time.process_time()
    with TrackedRun(run_dir, TrackingConfig(experiment=study.experiment), tracking_uri=tracking_uri,
                    run_name=f"{task.name}/{arm.name}/{seed}",
                    tags=run_tags(study, task, arm, seed)) as run:
        shutil.rmtree(run_dir / "nlu", ignore_errors=True)  # an interrupted attempt starts over
        log_config({"study": study.raw, "task": dataclasses.asdict(task),
                    "arm": dataclasses.asdict(arm), "seed": seed}, "study.yaml")
        data = task_data(study, task, seed)
        needs_baseline = arm.augment == "none" or arm.augment == "generator"
        baseline = (baseline_model(study, task, data, seed, work_dir) if needs_baseline
                    else None)
        copies: list[Utterance] = []
        synthetic: list[Utterance] = []
        metrics: dict[str, float] = {}
        if arm.augment != "none":
            copies, synthetic, metrics = synthesize(study, task, arm, data, seed, work_dir,
                                                    baseline)
        if arm.augment == "none":
            model = baseline
        else:
            model = train_nlu(study, data, data.target_train + copies + synthetic, seed,
                              run_dir / "nlu")
        evaluated, markdown = evaluation_metrics(model, data)
        metrics.update(evaluated)
        metrics.update(training_metrics(model))
        metrics.update({"data/source_train": len(data.source_train),
                        "data/target_train": len(data.target_train),
                        # upsample arms: their copies count as the synthetic set
                        "data/synthetic": len(synthetic) if synthetic else len(copies),
                        "data/upsampled": len(copies),
                        # what the arm trains on beyond the source: compare arms at equal size
                        "data/target_total": len(data.target_train) + len(copies)
                        + len(synthetic),
                        "time/run_seconds": time.monotonic() - started,
                        # all of the process's threads: what a run costs on a shared machine
                        "time/cpu_seconds": time.process_time() - cpu_started})
        mlflow.log_metrics(metrics)
        mlflow.log_text(markdown, "test_report.md")
        mlflow.set_tag("status", "finished")
        return run.run_id


def training_metrics(model) -> dict[str, float]:
    """How the arm's NLU model trained (``TrainedNlu.training``): ``train/hit_cap`` is 1 when
    the epoch cap, not early stopping, ended it — a model still learning."""
    if model.training is None:
        return {}
    summary = model.training
    return {"train/epochs": summary["epochs"], "train/max_epochs": summary["max_epochs"],
            "train/best_epoch": summary["best_epoch"], "train/steps": summary["steps"],
            "train/hit_cap": float(not summary["stopped_early"])}


# -- the study -----------------------------------------------------------------------------

def finished_runs(study: Study, tracking_uri: str) -> set[tuple[str, str, str]]:
    """(task, arm, seed) of this study's runs that finished, from MLflow."""
    from nlu.tracking import client

    experiment = client(tracking_uri).get_experiment_by_name(study.experiment)
    if experiment is None:
        return set()
    import mlflow

    runs = mlflow.search_runs([experiment.experiment_id], output_format="list",
                              filter_string=f"tags.kind = 'arm' and tags.study = '{study.name}'")
    return {(run.data.tags["task"], run.data.tags["arm"], run.data.tags["seed"]) for run in runs
            if run.info.status == "FINISHED" or run.data.tags.get("status") == "finished"}


def plan(study: Study) -> Iterator[tuple[Task, Arm, int]]:
    """Every run of the study: seeds outermost (one full seed first), arms innermost so the
    baseline model is trained once per task and seed and shared by the arms."""
    for seed in study.seeds:
        for task in study.tasks:
            for arm in study.arms:
                yield task, arm, seed


def run_study(study: Study, *, tracking_uri: str, work_dir: Path) -> dict[str, int]:
    """Run what is not finished yet; return counts of ``ran`` and ``skipped`` runs."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    done = finished_runs(study, tracking_uri)
    counts = {"ran": 0, "skipped": 0}
    for task, arm, seed in plan(study):
        if (task.name, arm.name, str(seed)) in done:
            counts["skipped"] += 1
            log.info("skip %s / %s / seed %d: finished", task.name, arm.name, seed)
            continue
        log.info("run %s / %s / seed %d", task.name, arm.name, seed)
        run_one(study, task, arm, seed, tracking_uri=tracking_uri, work_dir=work_dir)
        counts["ran"] += 1
    return counts
