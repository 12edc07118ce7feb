"""A study's finished runs as a small file that travels with the repository.

A long study runs in chunks, on whatever machine is free; its MLflow store stays behind.
``export_runs`` writes what the report needs from each finished arm run (tags, the study's
verdict bar, final metrics and the per-epoch dev curve — no models) as JSON lines;
``import_runs`` puts them into any store as FINISHED runs, so ``compare`` rebuilds the report
and ``experiment run`` skips those runs there (it finds finished runs by their tags).

    nlu-bootstrap experiment export --experiment study-lowres-verdict-converged \\
        --tracking-uri sqlite:///chunk.db --out experiments/results/runs/lowres-s1.jsonl
    nlu-bootstrap experiment import experiments/results/runs/*.jsonl --tracking-uri sqlite:///all.db
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from nlu.atomic import atomic_open

KEPT_PARAM_PREFIXES = ("study.verdict_bar.", "study.catalogue_bar.")  # what compare reads from the config
CURVES = ("dev_score",)  # per-epoch histories (experiments.patience replays them)


def export_runs(experiment: str, tracking_uri: str, path: Path | str) -> int:
    """Write the finished arm runs of ``experiment`` to ``path`` (JSON lines, sorted by task,
    arm and seed); return how many."""
    from experiments.compare.runs import finished_arm_runs
    from nlu.tracking import client

    store = client(tracking_uri)
    records = []
    for run in finished_arm_runs(experiment, tracking_uri):
        curves = {name: [metric.value for metric in sorted(
                      store.get_metric_history(run.info.run_id, name),
                      key=lambda metric: (metric.step, metric.timestamp))]
                  for name in CURVES}
        records.append({
            "experiment": experiment,
            "tags": {name: value for name, value in run.data.tags.items()
                     if not name.startswith("mlflow.")},
            "params": {name: value for name, value in run.data.params.items()
                       if name.startswith(KEPT_PARAM_PREFIXES)},
            "metrics": dict(run.data.metrics), "curves": curves})
    records.sort(key=lambda record: (record["tags"]["task"], record["tags"]["arm"],
                                     record["tags"]["seed"]))
    with atomic_open(Path(path)) as stream:
        for record in records:
            stream.write(json.dumps(record, sort_keys=True) + "\n")
    return len(records)


def read_records(paths: Iterable[Path | str]) -> list[dict]:
    records = []
    for path in paths:
        for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
            try:
                record = json.loads(line)
                record["tags"]["task"], record["tags"]["arm"], record["tags"]["seed"]
            except (ValueError, KeyError, TypeError) as error:
                raise ValueError(f"{path}:{number}: not an exported run ({error})") from None
            records.append(record)
    return records


def import_runs(paths: Iterable[Path | str], tracking_uri: str) -> dict[str, int]:
    """Log the exported runs in ``paths`` into ``tracking_uri`` as FINISHED runs of their
    experiment; a (task, arm, seed) the experiment already has finished is skipped. Returns
    counts of ``imported`` and ``skipped``."""
    from mlflow.entities import Metric, Param, RunTag

    from experiments.compare.runs import finished_arm_runs
    from nlu.tracking import client, experiment_id

    store = client(tracking_uri)
    counts = {"imported": 0, "skipped": 0}
    finished: dict[str, set[tuple[str, str, str]]] = {}
    for record in read_records(paths):
        experiment = record["experiment"]
        if experiment not in finished:
            finished[experiment] = {
                (run.data.tags["task"], run.data.tags["arm"], run.data.tags["seed"])
                for run in finished_arm_runs(experiment, tracking_uri, missing_ok=True)}
        tags = record["tags"]
        key = (tags["task"], tags["arm"], tags["seed"])
        if key in finished[experiment]:
            counts["skipped"] += 1
            continue
        run = store.create_run(experiment_id(experiment, tracking_uri),
                               run_name=f"{key[0]}/{key[1]}/{key[2]}",
                               tags=tags | {"imported": "true"})
        metrics = [Metric(name, value, 0, step) for name, values in record["curves"].items()
                   for step, value in enumerate(values)]
        metrics += [Metric(name, value, 0, 0) for name, value in record["metrics"].items()
                    if name not in record["curves"]]
        store.log_batch(run.info.run_id, metrics=metrics,
                        params=[Param(name, value) for name, value in record["params"].items()],
                        tags=[RunTag("status", "finished")])
        store.set_terminated(run.info.run_id, status="FINISHED")
        finished[experiment].add(key)
        counts["imported"] += 1
    return counts
