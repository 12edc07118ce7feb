"""What every job shares: its data specs, its ``tracking:`` section and its tracked run.

The GAN job (``gan.training``), the bootstrap job (``multilingual.bootstrap``) and the study
runner (``experiments.runner``) all read their YAML through these pieces, so one key means
one thing everywhere:

* ``read_data(spec, root, seed)``: the utterances a data spec names, label-mapped, and — when
  the spec says ``sample: N`` — an **intent-stratified** seeded sample of about N of them
  (``nlu.dataset.sample``: each intent keeps its share, at least one utterance each).
* ``read_yaml(path)``: a job YAML; ``base: other.yaml`` in it names a YAML it states only the
  differences from (deep-merged: mappings key by key, anything else replaced; ``deep_merge``).
* ``TrackingConfig``: a job's ``tracking:`` section (experiment, uri, run_name,
  registered_name, alias), validated once.
* ``TrackedRun``: ``with TrackedRun(run_dir, tracking, ...) as run:`` — the run folder locked
  for this process (``nlu.rundir.RunDirLock``), the MLflow run started or resumed (its id in
  ``run_dir/mlflow_run.json``), ended FAILED if the block raises, and all of it on global
  rank 0 only: the other processes of a DDP job get an untracked, unlocked run.

Keys that older YAML dialects used are refused with a message naming the new key
(``refuse_renamed_keys``), so a config never half-works.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from nlu.atomic import write_json
from nlu.dataset import DataSpec, read_spec
from nlu.errors import NluDataError
from nlu.utterance import Utterance

RUN_ID_FILENAME = "mlflow_run.json"


class JobConfigError(NluDataError):
    """A job config (GAN job, bootstrap job or study) is malformed; ``field`` names the key."""


# -- config sections -----------------------------------------------------------------------

def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict:
    """Mappings merge key by key; any other value in ``override`` replaces."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


MAX_BASE_DEPTH = 8


def read_yaml(path: Path | str, *, _depth: int = 0) -> dict:
    """A job YAML as a mapping, with the ``base:`` YAML it builds on merged under it (that
    path is relative to this file's folder). Unreadable or malformed: ``JobConfigError``."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise JobConfigError(f"cannot read the config: {reason}", path=str(path)) from None
    try:
        raw = yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as error:
        mark = getattr(error, "problem_mark", None)
        raise JobConfigError(f"not valid YAML ({getattr(error, 'problem', None) or error})",
                             path=str(path), line=mark.line + 1 if mark else None) from None
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise JobConfigError(f"expected a mapping, got {type(raw).__name__}", path=str(path))
    base = raw.pop("base", None)
    if base is None:
        return raw
    if not isinstance(base, str) or _depth >= MAX_BASE_DEPTH:
        raise JobConfigError(f"expected the path of a YAML file (at most {MAX_BASE_DEPTH} "
                             f"levels of base), got {base!r}", path=str(path), field="base")
    return deep_merge(read_yaml(path.parent / base, _depth=_depth + 1), raw)


def config_mapping(value: Any, where: str, allowed: set[str] | None = None) -> dict:
    """``value`` as a mapping whose keys are all in ``allowed`` (any keys when None)."""
    if not isinstance(value, dict):
        raise JobConfigError(f"expected a mapping, got {type(value).__name__}", field=where)
    unknown = sorted(set(value) - allowed) if allowed is not None else []
    if unknown:
        raise JobConfigError(f"unknown key(s) {', '.join(map(str, unknown))}; known: "
                             f"{', '.join(sorted(allowed))}", field=where)
    return value


def refuse_renamed_keys(raw: Mapping[str, Any], renamed: Mapping[str, str], where: str) -> None:
    """A key of an older dialect is an error that names its new place."""
    for old, new in renamed.items():
        if old in raw:
            name = f"{where}.{old}" if where else old
            raise JobConfigError(f"this key is now {new!r}", field=name)


def data_spec(value: Any, where: str) -> DataSpec:
    """A data spec from YAML: a path, or ``{path, format?, language?, labels?, sample?}``."""
    if isinstance(value, str):
        value = {"path": value}
    item = config_mapping(value, where, {field.name for field in dataclasses.fields(DataSpec)})
    if not isinstance(item.get("path"), str) or not item["path"]:
        raise JobConfigError("expected a path", field=f"{where}.path")
    sample = item.get("sample")
    if sample is not None and (isinstance(sample, bool) or not isinstance(sample, int)
                               or sample < 1):
        raise JobConfigError(f"must be a positive integer, got {sample!r}",
                             field=f"{where}.sample")
    for name in ("format", "language", "labels"):
        if item.get(name) is not None and not isinstance(item[name], str):
            raise JobConfigError(f"expected a string, got {item[name]!r}", field=f"{where}.{name}")
    return DataSpec(**item)


def keep_sample(utterances: Sequence[Utterance], count: int | None,
                seed: int) -> list[Utterance]:
    """About ``count`` of ``utterances``, intent-stratified and seeded (all when ``count`` is
    None or not smaller): what ``sample: N`` means in every job."""
    from nlu.dataset import sample

    if count is None or count >= len(utterances):
        return list(utterances)
    return sample(utterances, fraction=count / len(utterances), seed=seed)


def read_data(spec: DataSpec, root: Path | str, seed: int, *,
              reader: Callable[[DataSpec, Path], list[Utterance]] = read_spec
              ) -> list[Utterance]:
    """The utterances ``spec`` names (relative to ``root``), label-mapped, sampled as
    ``keep_sample`` says. ``reader`` reads the file (a study passes a cached one)."""
    return keep_sample(reader(spec, Path(root)), spec.sample, seed)


@dataclass(frozen=True)
class TrackingConfig:
    """A job's ``tracking:`` section. ``uri`` None: ``--tracking-uri``,
    ``$MLFLOW_TRACKING_URI`` or the embedded sqlite store (``nlu.tracking``)."""

    experiment: str
    uri: str | None = None
    run_name: str | None = None
    registered_name: str | None = None  # register the job's model as name@alias when set
    alias: str | None = None

    @classmethod
    def from_mapping(cls, raw: Any, *, default_experiment: str,
                     where: str = "tracking") -> "TrackingConfig":
        values = dict(config_mapping(raw if raw is not None else {}, where,
                                     {field.name for field in dataclasses.fields(cls)}))
        values.setdefault("experiment", default_experiment)
        for name, value in values.items():
            if value is not None and not (isinstance(value, str) and value.strip()):
                raise JobConfigError(f"expected a non-empty string, got {value!r}",
                                     field=f"{where}.{name}")
        if values.get("alias") and not values.get("registered_name"):
            raise JobConfigError("an alias needs a registered_name", field=f"{where}.alias")
        return cls(**values)


# -- the tracked run -----------------------------------------------------------------------

def stored_run_id(run_dir: Path, tracking_uri: str) -> str | None:
    """The MLflow run a previous attempt in ``run_dir`` started, if it is in this store."""
    stored = run_dir / RUN_ID_FILENAME
    if not stored.exists():
        return None
    record = json.loads(stored.read_text(encoding="utf-8"))
    if record.get("tracking_uri") != tracking_uri:
        from nlu.tracking import redact_uri

        raise JobConfigError(f"the run to resume is in {redact_uri(record.get('tracking_uri', ''))}"
                             f", not in {redact_uri(tracking_uri)}; pass that --tracking-uri",
                             path=str(stored))
    return record["run_id"]


class TrackedRun:
    """``with TrackedRun(run_dir, tracking, resume=..., tags=...) as run:`` — one job's run.

    On entry (global rank 0 only): lock ``run_dir``, start the MLflow run (or, with
    ``resume``, reopen the one ``run_dir/mlflow_run.json`` names) and record its id. On exit:
    end the run FINISHED, or FAILED if the block raised (a later ``resume`` reopens it), and
    release the folder. ``tracking=None`` gives a locked, untracked run.
    """

    def __init__(self, run_dir: Path | str, tracking: TrackingConfig | None, *,
                 tracking_uri: str | None = None, resume: bool = False,
                 run_name: str | None = None, tags: dict[str, str] | None = None):
        self.run_dir = Path(run_dir)
        self.tracking = tracking
        self._uri = tracking_uri
        self._resume = resume
        self._run_name = run_name
        self._tags = tags or {}
        self._lock = None
        self.run_id: str | None = None
        self.tracking_uri: str | None = None
        self.resumed = False  # True when an MLflow run of an earlier attempt was reopened

    @property
    def tracked(self) -> bool:
        return self.run_id is not None

    def __enter__(self) -> "TrackedRun":
        from nlu.devices import is_primary_process
        from nlu.rundir import RunDirLock

        if not is_primary_process():
            return self  # a DDP worker of rank > 0: trains its share, writes nothing
        if self.tracking is not None:  # a server that does not answer: nothing written yet
            from nlu import tracking

            self.tracking_uri = tracking.resolve_tracking_uri(self._uri or self.tracking.uri)
        self._lock = RunDirLock(self.run_dir).__enter__()
        if self.tracking is None:
            return self
        try:
            previous = stored_run_id(self.run_dir, self.tracking_uri) if self._resume else None
            run = tracking.start_run(self.tracking.experiment, self.tracking_uri,
                                     run_name=self.tracking.run_name or self._run_name,
                                     run_id=previous, tags=self._tags)
            self.run_id, self.resumed = run.info.run_id, previous is not None
            write_json(self.run_dir / RUN_ID_FILENAME,
                       {"run_id": self.run_id, "tracking_uri": self.tracking_uri})
        except BaseException:
            self._end(failed=True)
            raise
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        self._end(failed=exc_type is not None)

    def _end(self, *, failed: bool) -> None:
        if self.run_id is not None:
            import mlflow

            mlflow.end_run(status="FAILED" if failed else "FINISHED")
        if self._lock is not None:
            self._lock.__exit__(None, None, None)
            self._lock = None

    def log_model(self, model_dir: Path | str) -> str:
        """Log ``model_dir`` as the run's ``model/`` artifact, registered as the tracking
        section says; return its reference (``name@alias``, ``name/version`` or run id)."""
        from nlu.tracking import log_model_dir

        return log_model_dir(model_dir, registered_name=self.tracking.registered_name,
                             alias=self.tracking.alias)
