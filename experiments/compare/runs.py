"""Collect: a study's finished arm runs from one or more MLflow stores, as ``RunRecord``s.

Everything the report needs is read from the runs' tags, metrics and params (the study
config each run logged, flattened to ``study.<key>...`` params by ``nlu.tracking.log_config``),
so the report depends on the store alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

ARM_ORDER_FIRST = ("none", "upsample", "mle")  # the baselines lead every table
# the study config's verdict bars, as every arm run logged them (see experiments.compare.verdict)
VERDICT_BAR_PARAM = "study.verdict_bar."
CATALOGUE_BAR_PARAM = "study.catalogue_bar."


@dataclass(frozen=True)
class RunRecord:
    task: str
    language: str
    arm: str
    seed: str
    sampler: str | None
    metrics: dict[str, float]
    reward: str | None = None  # a name in gan.rewards.REWARDS or "mle", for generator arms
    embeddings: str | None = None
    # upsample | refill | generated data's kind, e.g. "source+target/lexicon" (+ "+upsample"
    # when upsampled copies are added too, + "+catalogue" when filled from a catalogue); None
    # for the none arm
    family: str | None = None
    # the study's verdict_bar as logged with the run, flat: {"new_language.exact_match": "3.0"}
    verdict_bar: dict[str, str] = field(default_factory=dict)
    # the name of the slot-value catalogue the arm used (tag ``catalogue``); None: none
    catalogue: str | None = None
    # the study's catalogue_bar as logged with the run, flat: {"slot_f1_unseen": "8.0"}
    catalogue_bar: dict[str, str] = field(default_factory=dict)
    # the share of slot fills drawn from the catalogue (tag ``catalogue_share``); None: none
    catalogue_share: float | None = None

    @property
    def generated(self) -> bool:
        """Whether the arm adds generated utterances (not copies, refilled or not)."""
        return self.family not in (None, "upsample", "refill")

    @property
    def uses_catalogue(self) -> bool:
        """A catalogue arm: refill, or generated carriers filled from a catalogue."""
        return bool(self.catalogue) and (self.family == "refill" or self.generated)


def arm_family(tags: dict[str, str]) -> str | None:
    """What kind of data an arm adds (see ``RunRecord.family``), from its run tags."""
    if tags.get("augment") in ("upsample", "refill"):
        return tags["augment"]
    if tags.get("augment") != "generator":
        return None
    family = f"{tags.get('generator_data', 'target')}/{tags.get('slot_values', 'generated')}"
    family += "+upsample" if float(tags.get("upsample_scale", 0)) else ""
    return family + ("+catalogue" if tags.get("catalogue") else "")


def with_derived_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """``metrics`` plus ``synthetic/copy_rate``: the share of the generator's well-formed
    samples that repeat a real target-train utterance (what the gate dropped as copies; the
    kept set's ``novelty`` is measured after that drop)."""
    formed = metrics.get("gate/seen", 0.0) - metrics.get("gate/malformed", 0.0)
    if formed > 0 and "gate/train_copies" in metrics:
        return metrics | {"synthetic/copy_rate": metrics["gate/train_copies"] / formed}
    return metrics


def finished_arm_runs(experiment: str, tracking_uri: str, *, missing_ok: bool = False) -> list:
    """The FINISHED arm runs (MLflow ``Run``s) of ``experiment``. An unknown experiment is an
    error that names the experiments the store has, or none at all with ``missing_ok``."""
    import mlflow

    from nlu.tracking import client

    store = client(tracking_uri)
    found = store.get_experiment_by_name(experiment)
    if found is None:
        if missing_ok:
            return []
        names = sorted(known.name for known in store.search_experiments())
        raise LookupError(f"no MLflow experiment {experiment!r} in {tracking_uri} "
                          f"(it has: {', '.join(names) or 'none'})")
    mlflow.set_tracking_uri(tracking_uri)
    return mlflow.search_runs([found.experiment_id], output_format="list",
                              filter_string="tags.kind = 'arm' and attributes.status = 'FINISHED'")


def collect(experiment: str, tracking_uri: str) -> list[RunRecord]:
    """The finished arm runs of ``experiment`` as records (see ``finished_arm_runs``)."""
    runs = finished_arm_runs(experiment, tracking_uri)
    return [RunRecord(task=run.data.tags["task"], language=run.data.tags["language"],
                      arm=run.data.tags["arm"], seed=run.data.tags["seed"],
                      sampler=run.data.tags.get("sampler"),
                      metrics=with_derived_metrics(dict(run.data.metrics)),
                      reward=run.data.tags.get("reward"),
                      embeddings=run.data.tags.get("embeddings"),
                      family=arm_family(run.data.tags),
                      verdict_bar=params_below(run.data.params, VERDICT_BAR_PARAM),
                      catalogue=run.data.tags.get("catalogue") or None,
                      catalogue_bar=params_below(run.data.params, CATALOGUE_BAR_PARAM),
                      catalogue_share=(float(run.data.tags["catalogue_share"])
                                       if "catalogue_share" in run.data.tags else None))
            for run in runs]  # collect_stores sorts


def params_below(params: dict[str, str], prefix: str) -> dict[str, str]:
    """The params whose name starts with ``prefix``, named without it."""
    return {name[len(prefix):]: value for name, value in params.items()
            if name.startswith(prefix)}


def collect_stores(experiment: str, tracking_uris: Sequence[str]) -> list[RunRecord]:
    """The finished arm runs of ``experiment`` in several stores (a study run by parallel
    processes, one store each). A (task, arm, seed) found twice is an error, not averaged."""
    records: list[RunRecord] = []
    for uri in tracking_uris:
        records += collect(experiment, uri)
    seen: set[tuple[str, str, str]] = set()
    for record in records:
        key = (record.task, record.arm, record.seed)
        if key in seen:
            raise LookupError(f"run {'/'.join(key)} of {experiment!r} is in more than one store")
        seen.add(key)
    return sorted(records, key=lambda record: (record.task, record.arm, record.seed))


def arm_order(arms: Iterable[str]) -> list[str]:
    return sorted(set(arms), key=lambda arm: (arm not in ARM_ORDER_FIRST,
                                              ARM_ORDER_FIRST.index(arm)
                                              if arm in ARM_ORDER_FIRST else 0, arm))


def task_order(task: str) -> tuple:
    """Natural order: ``es-5`` before ``es-10`` before ``es-20``."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", task))


def metric_key(record: RunRecord, split: str, metric: str) -> str:
    """The flat metric name of a task's own language (the ``all`` group for focus splits)."""
    group = "all" if split.endswith("-focus") else record.language
    return f"{split}/{group}/{metric}"
