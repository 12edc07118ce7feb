"""The comparison report of a study, built from the MLflow store alone.

``build_report(experiment, tracking_uri, out_dir)`` reads every FINISHED arm run of the
experiment (tag ``kind=arm``; see ``experiments/runner.py``), and writes to ``out_dir``:

* ``report.md``: per split and headline metric a table with one row per arm and one column
  per task, each cell the mean ± standard error over seeds (sample std / sqrt(n); a single
  seed shows the mean alone), the best mean of each column in bold; the dev-selected arm per
  task with its test scores; the synthetic-set quality metrics; the number of seeds per cell.
  Per metric, the gain of every generator arm over the upsample arm of the same total size,
  paired by seed (``equal_size_sections``): the comparison a generator has to win. First of
  all, the verdict table (``verdict_section``): one generator arm (named, or chosen on dev)
  against that baseline per task, with the bar of issue 17. ``split="dev"`` makes a report
  without a single test number, for choosing settings before the test run.
* PNG plots (matplotlib, Agg): per headline metric, bars per arm with error bars per task;
  BLEU vs self-BLEU of the synthetic sets per sampling setting; the synthetic-set metrics;
  exact match against the training set's size per kind of added data.

The same files are logged as artifacts of a ``kind=compare`` run in the same experiment.
Tables depend only on the runs' tags and metrics, sorted and formatted deterministically, so
re-running on the same store reproduces them byte for byte.
"""

from __future__ import annotations

import math
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from nlu.atomic import atomic_open

# metric name in EvaluationReport.flat -> (table title, higher is better)
HEADLINE_METRICS = {
    "intent_acc": ("intent accuracy (%)", True),
    "slot_f1": ("slot F1 (%)", True),
    "exact_match": ("exact match (%)", True),
    "semer": ("SemER (%, lower is better)", False),
}
SPLITS = ("test", "test-focus", "dev", "dev-focus")
SYNTHETIC_METRICS = ("bleu4", "self_bleu4", "distinct_1", "distinct_2", "novelty", "copy_rate",
                     "validity", "slot_coverage", "nlu_agreement")
ARM_ORDER_FIRST = ("none", "upsample", "mle")  # the baselines lead every table
GRID_FACTORS = ("reward", "sampler", "embeddings")  # of the gan-<reward>-<sampler>-<embeddings> arms


@dataclass(frozen=True)
class RunRecord:
    task: str
    language: str
    arm: str
    seed: str
    sampler: str | None
    metrics: dict[str, float]
    reward: str | None = None  # token | rollout | sentence | mle, for generator arms
    embeddings: str | None = None
    # upsample | generated data's kind, e.g. "source+target/lexicon" (+ "+upsample" when
    # upsampled copies are added too); None for the none arm
    family: str | None = None


def arm_family(tags: dict[str, str]) -> str | None:
    """What kind of data an arm adds (see ``RunRecord.family``), from its run tags."""
    if tags.get("augment") == "upsample":
        return "upsample"
    if tags.get("augment") != "generator":
        return None
    family = f"{tags.get('generator_data', 'target')}/{tags.get('slot_values', 'generated')}"
    return family + ("+upsample" if float(tags.get("upsample_scale", 0)) else "")


@dataclass(frozen=True)
class Summary:
    mean: float
    standard_error: float | None  # None with a single seed
    n: int


def summarize(values: list[float]) -> Summary:
    if len(values) == 1:
        return Summary(values[0], None, 1)
    return Summary(statistics.fmean(values), statistics.stdev(values) / math.sqrt(len(values)),
                   len(values))


def with_derived_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """``metrics`` plus ``synthetic/copy_rate``: the share of the generator's well-formed
    samples that repeat a real target-train utterance (what the gate dropped as copies; the
    kept set's ``novelty`` is measured after that drop)."""
    formed = metrics.get("gate/seen", 0.0) - metrics.get("gate/malformed", 0.0)
    if formed > 0 and "gate/train_copies" in metrics:
        return metrics | {"synthetic/copy_rate": metrics["gate/train_copies"] / formed}
    return metrics


def collect(experiment: str, tracking_uri: str) -> list[RunRecord]:
    """The finished arm runs of ``experiment`` (an unknown experiment is an error)."""
    import mlflow

    from nlu.tracking import client

    found = client(tracking_uri).get_experiment_by_name(experiment)
    if found is None:
        raise LookupError(f"no MLflow experiment {experiment!r} in {tracking_uri}")
    mlflow.set_tracking_uri(tracking_uri)
    runs = mlflow.search_runs([found.experiment_id], output_format="list",
                              filter_string="tags.kind = 'arm' and attributes.status = 'FINISHED'")
    return [RunRecord(task=run.data.tags["task"], language=run.data.tags["language"],
                      arm=run.data.tags["arm"], seed=run.data.tags["seed"],
                      sampler=run.data.tags.get("sampler"),
                      metrics=with_derived_metrics(dict(run.data.metrics)),
                      reward=run.data.tags.get("reward"),
                      embeddings=run.data.tags.get("embeddings"),
                      family=arm_family(run.data.tags))
            for run in runs]  # collect_stores sorts


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


def table_cells(records: list[RunRecord], key_of) -> dict[tuple[str, str], Summary]:
    """(arm, task) -> summary over seeds of the metric ``key_of(record)`` names."""
    values: dict[tuple[str, str], list[float]] = defaultdict(list)
    for record in records:
        key = key_of(record)
        if key in record.metrics:
            values[(record.arm, record.task)].append(record.metrics[key])
    return {cell: summarize(cell_values) for cell, cell_values in values.items()}


def format_summary(summary: Summary, scale: float, digits: int = 2) -> str:
    if summary.standard_error is None:
        return f"{scale * summary.mean:.{digits}f}"
    return f"{scale * summary.mean:.{digits}f} ± {scale * summary.standard_error:.{digits}f}"


def markdown_table(cells: dict[tuple[str, str], Summary], rows: list[str], columns: list[str],
                   *, higher_is_better: bool | dict[str, bool] = True, scale: float = 100.0,
                   first_header: str = "arm", headers: dict[str, str] | None = None) -> str:
    """Rows x columns of ``mean ± se``; the best mean of each column in bold (compared as
    printed, so means that print the same are all bold). ``higher_is_better`` may differ per
    column; ``headers`` renames columns."""
    def printed(summary: Summary) -> float:
        return round(scale * summary.mean, 2)

    best: dict[str, float] = {}
    for column in columns:
        means = [printed(cells[(row, column)]) for row in rows if (row, column) in cells]
        higher = (higher_is_better if isinstance(higher_is_better, bool)
                  else higher_is_better[column])
        if means:
            best[column] = max(means) if higher else min(means)
    headers = headers or {}
    lines = [f"| {first_header} | " + " | ".join(headers.get(c, c) for c in columns) + " |",
             "|---|" + "---:|" * len(columns)]
    for row in rows:
        rendered = []
        for column in columns:
            summary = cells.get((row, column))
            if summary is None:
                rendered.append("–")
                continue
            text = format_summary(summary, scale)
            rendered.append(f"**{text}**" if printed(summary) == best[column] else text)
        lines.append(f"| {row} | " + " | ".join(rendered) + " |")
    return "\n".join(lines)


def dev_selection(records: list[RunRecord], tasks: list[str], arms: list[str]) -> str:
    """Per task, the arm with the best mean dev score (mean of intent accuracy and slot F1,
    what NLU early stopping watches) and that arm's test scores: tuned on dev, reported on test."""
    scores: dict[tuple[str, str], list[float]] = defaultdict(list)
    for record in records:
        intent = record.metrics.get(metric_key(record, "dev", "intent_acc"))
        slots = record.metrics.get(metric_key(record, "dev", "slot_f1"))
        if intent is not None and slots is not None:
            scores[(record.arm, record.task)].append((intent + slots) / 2)
    test_intent = table_cells(records, lambda r: metric_key(r, "test", "intent_acc"))
    test_slots = table_cells(records, lambda r: metric_key(r, "test", "slot_f1"))
    lines = ["| task | arm chosen on dev | dev score (%) | test intent accuracy (%) "
             "| test slot F1 (%) |", "|---|---|---:|---:|---:|"]
    for task in tasks:
        candidates = [(statistics.fmean(scores[(arm, task)]), arm) for arm in arms
                      if scores.get((arm, task))]
        if not candidates:
            continue
        # best dev score; ties go to the earlier arm in table order (the simpler baseline)
        score, arm = max(candidates, key=lambda item: (item[0], -arms.index(item[1])))
        lines.append(f"| {task} | {arm} | {100 * score:.2f} "
                     f"| {format_summary(test_intent[(arm, task)], 100)} "
                     f"| {format_summary(test_slots[(arm, task)], 100)} |")
    return "\n".join(lines)


def factor_cells(records: list[RunRecord], factor: str, key_of) -> dict[tuple[str, str], Summary]:
    """(level of ``factor``, task) -> summary over seeds of the adversarial arms' metric,
    averaged within each seed over the other grid factors (so n = seeds)."""
    per_seed: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for record in records:
        key = key_of(record)
        if record.reward not in (None, "mle") and key in record.metrics:
            per_seed[(getattr(record, factor), record.task, record.seed)].append(
                record.metrics[key])
    per_level: dict[tuple[str, str], list[float]] = defaultdict(list)
    for (level, task, _), values in per_seed.items():
        per_level[(level, task)].append(statistics.fmean(values))
    return {cell: summarize(values) for cell, values in per_level.items()}


def grid_factor_sections(records: list[RunRecord], tasks: list[str],
                         split: str = "test") -> list[str]:
    """One table per grid factor with two or more levels: each level's mean over the other
    factors, next to the baselines, for ``split``'s intent accuracy and slot F1 (and the focus
    split's, where there is one)."""
    sections: list[str] = []
    baselines = [arm for arm in ARM_ORDER_FIRST if any(r.arm == arm for r in records)]
    for factor in GRID_FACTORS:
        levels = sorted({getattr(r, factor) for r in records if r.reward not in (None, "mle")})
        if len(levels) < 2:
            continue
        for shown in (split, f"{split}-focus"):
            for metric in ("intent_acc", "slot_f1"):
                def key_of(record, shown=shown, metric=metric):
                    return metric_key(record, shown, metric)

                cells = factor_cells(records, factor, key_of)
                if not cells:
                    continue
                cells.update({cell: summary for cell, summary in table_cells(records, key_of).items()
                              if cell[0] in baselines})
                title = HEADLINE_METRICS[metric][0]
                sections += [f"### {factor}, {shown}: {title}", "",
                             markdown_table(cells, baselines + levels, tasks,
                                            first_header=f"{factor} (adversarial arms) / baseline"),
                             ""]
    if sections:
        sections = ["## GAN grid, one factor at a time", "",
                    "Each level of a factor is the mean over the adversarial arms that share it "
                    "(averaged over the other factors within a seed, then over seeds), shown with "
                    "the baselines.", ""] + sections
    return sections


def task_sections(records: list[RunRecord], tasks: list[str], arms: list[str],
                  split: str = "test") -> list[str]:
    """Per task, one table of every ``split`` metric per arm (and the focus split's, if any)."""
    sections: list[str] = []
    for task in tasks:
        task_records = [record for record in records if record.task == task]
        cells: dict[tuple[str, str], Summary] = {}
        directions: dict[str, bool] = {}
        headers: dict[str, str] = {}
        for shown in (split, f"{split}-focus"):
            for metric, (title, higher_is_better) in HEADLINE_METRICS.items():
                column = f"{shown}/{metric}"
                for (arm, _), summary in table_cells(
                        task_records, lambda r: metric_key(r, shown, metric)).items():
                    cells[(arm, column)] = summary
                directions[column] = higher_is_better
                headers[column] = f"{shown} {title.split(' (')[0]}"
        columns = [column for column in directions if any(c == column for _, c in cells)]
        sections += [f"## {task}: every {split} metric (%)", "",
                     markdown_table(cells, [arm for arm in arms if any(a == arm for a, _ in cells)],
                                    columns, higher_is_better=directions, headers=headers), ""]
    return sections


SIZE_TOLERANCE = 0.02  # a gate may keep a little less than asked: totals within 2% match
VERDICT_METRICS = ("exact_match", "slot_f1", "intent_acc")


def equal_size_partner(record: RunRecord, records: list[RunRecord]) -> RunRecord | None:
    """The upsample run of the same task and seed whose training set is as large as
    ``record``'s (``data/target_total``), if the study has one."""
    total = record.metrics.get("data/target_total")
    if total is None:
        return None
    for other in records:
        other_total = other.metrics.get("data/target_total")
        if (other.family == "upsample" and other.task == record.task
                and other.seed == record.seed and other_total is not None
                and abs(other_total - total) <= SIZE_TOLERANCE * total):
            return other
    return None


def mean_over_tasks(per_task: list[Summary]) -> Summary:
    """The mean of per-task means; its standard error combines theirs (independent tasks)."""
    errors = [summary.standard_error for summary in per_task]
    return Summary(statistics.fmean(summary.mean for summary in per_task),
                   None if None in errors else math.sqrt(sum(e * e for e in errors)) / len(errors),
                   min(summary.n for summary in per_task))


def equal_size_cells(records: list[RunRecord], split: str,
                     metric: str) -> dict[tuple[str, str], Summary]:
    """(generator arm, task) -> the arm's gain over upsampling to the same size, paired by
    seed (the same real data), summarised over seeds."""
    gains: dict[tuple[str, str], list[float]] = defaultdict(list)
    for record in records:
        if record.family in (None, "upsample"):
            continue
        partner = equal_size_partner(record, records)
        key = metric_key(record, split, metric)
        if partner is not None and key in record.metrics and key in partner.metrics:
            gains[(record.arm, record.task)].append(record.metrics[key] - partner.metrics[key])
    return {cell: summarize(values) for cell, values in gains.items()}


def equal_size_sections(records: list[RunRecord], tasks: list[str],
                        split: str = "test") -> list[str]:
    """Per metric, every generator arm's gain over upsampling at the same total size (the
    baseline a generator has to beat), per task and averaged over tasks."""
    sections: list[str] = []
    for shown in (split, f"{split}-focus"):
        for metric in VERDICT_METRICS:
            cells = equal_size_cells(records, shown, metric)
            if not cells:
                continue
            columns = [task for task in tasks if any(task == cell[1] for cell in cells)]
            arms = arm_order(arm for arm, _ in cells)
            for arm in arms:
                per_task = [cells[(arm, task)] for task in columns if (arm, task) in cells]
                if len(per_task) == len(columns) and len(columns) > 1:
                    cells[(arm, "mean")] = mean_over_tasks(per_task)
            table_columns = columns + (["mean"] if len(columns) > 1 else [])
            sections += [f"## {shown}: {HEADLINE_METRICS[metric][0]} gain over upsampling to "
                         "the same size (points)", "",
                         "Each generator arm minus the upsample arm with as many training "
                         "utterances, paired by seed; > 0: the generated data helps more "
                         "than copies.", "",
                         markdown_table(cells, arms, table_columns, higher_is_better=True), ""]
    return sections


# -- the verdict ---------------------------------------------------------------------------

# What the verdict asks of the best generated arm (issue 17), in points over upsampling to the
# same size: new-language tasks (averaged), and the cut intents of a task with focus intents.
VERDICT_BAR = {"exact_match": 3.0, "slot_f1": 2.0, "focus_intent_acc": 5.0}


def has_focus(records: list[RunRecord], task: str, split: str) -> bool:
    """Whether ``task`` has cut (focus) intents: its runs carry ``<split>-focus`` metrics."""
    return any(record.task == task and any(key.startswith(f"{split}-focus/")
                                           for key in record.metrics) for record in records)


def verdict_gauge(records: list[RunRecord], task: str, split: str) -> tuple[str, str]:
    """(split, metric) a task is judged by: intent accuracy on the cut intents where there are
    any, else exact match (what a joint NLU model gets wholly right)."""
    if has_focus(records, task, split):
        return f"{split}-focus", "intent_acc"
    return split, "exact_match"


def choose_on_dev(records: list[RunRecord], tasks: list[str]) -> tuple[str, float] | None:
    """The generator arm with the largest mean dev gain over upsampling to the same size (in
    each task's gauge, paired by seed, averaged over tasks), and that gain in points."""
    gains: dict[str, list[float]] = defaultdict(list)
    for task in tasks:
        split, metric = verdict_gauge(records, task, "dev")
        for (arm, cell_task), summary in equal_size_cells(records, split, metric).items():
            if cell_task == task:
                gains[arm].append(summary.mean)
    complete = {arm: statistics.fmean(values) for arm, values in gains.items()
                if len(values) == len(tasks)}
    if not complete:
        return None
    arm = max(sorted(complete), key=lambda name: complete[name])
    return arm, 100 * complete[arm]


def verdict_section(records: list[RunRecord], tasks: list[str], split: str,
                    arm: str, how_chosen: str) -> list[str]:
    """One table: per task, ``arm`` against the upsample arm of the same size (mean ± se over
    seeds; the gain paired by seed), the mean over the new-language tasks, and the bar."""
    columns = [(split, "exact_match"), (split, "slot_f1"), (split, "intent_acc")]
    focus_tasks = {task for task in tasks if has_focus(records, task, split)}
    if focus_tasks:
        columns.append((f"{split}-focus", "intent_acc"))
    arm_records = [record for record in records if record.arm == arm]
    pairs = [(record, equal_size_partner(record, records)) for record in arm_records]
    pairs = [(record, partner) for record, partner in pairs if partner is not None]
    title = f"## Verdict on {split}: {arm} against upsampling to the same size"
    if not pairs:
        return [title, "", f"{how_chosen} It has no upsample arm of the same total size in "
                "this study, so there is no verdict.", ""]

    def cell(task_pairs, shown, metric) -> tuple[Summary, Summary, Summary] | None:
        key_pairs = [(r.metrics.get(metric_key(r, shown, metric)),
                      u.metrics.get(metric_key(u, shown, metric))) for r, u in task_pairs]
        key_pairs = [(a, b) for a, b in key_pairs if a is not None and b is not None]
        if not key_pairs:
            return None
        return (summarize([b for _, b in key_pairs]), summarize([a for a, _ in key_pairs]),
                summarize([a - b for a, b in key_pairs]))

    header = ["task", "seeds", "upsample arm"] + [
        f"{'cut-intent ' if shown.endswith('-focus') else ''}{HEADLINE_METRICS[metric][0]}: "
        "upsample → generated (gain)" for shown, metric in columns]
    lines = ["| " + " | ".join(header) + " |", "|---|---:|---|" + "---:|" * len(columns)]
    new_language_gains: dict[tuple[str, str], list[Summary]] = defaultdict(list)
    focus_gains: list[Summary] = []
    for task in tasks:
        task_pairs = [(r, u) for r, u in pairs if r.task == task]
        if not task_pairs:
            continue
        rendered = []
        for shown, metric in columns:
            found = cell(task_pairs, shown, metric)
            if found is None:
                rendered.append("–")
                continue
            upsampled, generated, gain = found
            rendered.append(f"{format_summary(upsampled, 100, 1)} → "
                            f"{format_summary(generated, 100, 1)} "
                            f"({100 * gain.mean:+.1f}"
                            + ("" if gain.standard_error is None
                               else f" ± {100 * gain.standard_error:.1f}") + ")")
            if task in focus_tasks:
                if shown.endswith("-focus"):
                    focus_gains.append(gain)
            else:
                new_language_gains[(shown, metric)].append(gain)
        partners = sorted({u.arm for _, u in task_pairs})
        lines.append(f"| {task} | {len(task_pairs)} | {', '.join(partners)} | "
                     + " | ".join(rendered) + " |")
    verdicts = []
    if new_language_gains:
        exact = mean_over_tasks(new_language_gains[(split, "exact_match")])
        slots = mean_over_tasks(new_language_gains[(split, "slot_f1")])
        met = (100 * exact.mean >= VERDICT_BAR["exact_match"]
               and 100 * slots.mean >= VERDICT_BAR["slot_f1"])
        count = len(new_language_gains[(split, "exact_match")])
        verdicts.append(
            f"- New-language tasks ({count}), mean gain: exact match "
            f"{100 * exact.mean:+.1f} ± {100 * (exact.standard_error or 0):.1f}, slot F1 "
            f"{100 * slots.mean:+.1f} ± {100 * (slots.standard_error or 0):.1f} points; the bar "
            f"(≥ {VERDICT_BAR['exact_match']:.0f} and ≥ {VERDICT_BAR['slot_f1']:.0f}) is "
            f"**{'met' if met else 'not met'}**.")
    if focus_gains:
        focus = mean_over_tasks(focus_gains)
        met = 100 * focus.mean >= VERDICT_BAR["focus_intent_acc"]
        verdicts.append(
            f"- Cut intents, gain in their intent accuracy: {100 * focus.mean:+.1f} ± "
            f"{100 * (focus.standard_error or 0):.1f} points; the bar "
            f"(≥ {VERDICT_BAR['focus_intent_acc']:.0f}) is **{'met' if met else 'not met'}**.")
    return [title, "", f"{how_chosen} Cells: mean ± standard error over seeds, in %; the gain "
            "is paired by seed (the same real data).", "", *lines, "", *verdicts, ""]


def report_markdown(experiment: str, records: list[RunRecord], *, split: str = "test",
                    verdict_arm: str | None = None) -> str:
    """The report. ``split="dev"`` leaves out every test number (for choosing settings);
    ``verdict_arm`` is the arm the verdict judges (default: the one chosen on dev)."""
    tasks = sorted({record.task for record in records}, key=task_order)
    arms = arm_order(record.arm for record in records)
    sections = [f"# Comparison report: {experiment}"
                + (" (dev only: no test number in it)" if split == "dev" else ""), "",
                f"{len(records)} finished runs; cells are mean ± standard error over seeds "
                "(a cell without ± has one seed); the best mean of each column is in bold "
                "(ties: all). Metrics of the task's target language, in %.", ""]
    if verdict_arm is not None:
        if verdict_arm not in arms:
            raise LookupError(f"verdict arm {verdict_arm!r} has no finished runs "
                              f"(arms: {', '.join(arms)})")
        how_chosen = f"The arm named before this run (--verdict-arm {verdict_arm})."
    else:
        chosen = choose_on_dev(records, tasks)
        verdict_arm, how_chosen = (None, "") if chosen is None else (
            chosen[0], f"The generator arm with the largest mean dev gain over upsampling to "
                       f"the same size ({chosen[1]:+.1f} points in exact match, or in the cut "
                       "intents' intent accuracy where a task has them).")
    if verdict_arm is not None:
        sections += verdict_section(records, tasks, split, verdict_arm, how_chosen)

    counts: dict[tuple[str, str], int] = defaultdict(int)
    for record in records:
        counts[(record.arm, record.task)] += 1
    sections += ["## Seeds per cell", "",
                 "| arm | " + " | ".join(tasks) + " |", "|---|" + "---:|" * len(tasks)]
    sections += [f"| {arm} | " + " | ".join(str(counts.get((arm, task), 0)) for task in tasks)
                 + " |" for arm in arms]
    sections.append("")

    if split == "test":
        sections += ["## Arm chosen on dev, scored on test", "",
                     dev_selection(records, tasks, arms), ""]
    sections += task_sections(records, tasks, arms, split)
    for shown in (SPLITS if split == "test" else (split, f"{split}-focus")):
        for metric, (title, higher_is_better) in HEADLINE_METRICS.items():
            cells = table_cells(records, lambda r: metric_key(r, shown, metric))
            if not cells:
                continue
            columns = [task for task in tasks if any(cell_task == task for _, cell_task in cells)]
            sections += [f"## {shown}: {title}", "",
                         markdown_table(cells, arms, columns, higher_is_better=higher_is_better),
                         ""]

    sections += equal_size_sections(records, tasks, split)
    sections += grid_factor_sections(records, tasks, split)

    generator_arms = [arm for arm in arms
                      if any(f"synthetic/{name}" in record.metrics for record in records
                             if record.arm == arm for name in SYNTHETIC_METRICS)]
    if generator_arms:
        sections += ["## Synthetic sets", "",
                     "BLEU-4 against same-intent real dev utterances and self-BLEU-4 (0-100, "
                     "sacrebleu); the others are shares in %: novelty of the kept set, copy "
                     "rate = well-formed samples that repeated a real train utterance (before "
                     "the gate dropped them); kept = share of generated samples that passed "
                     "the quality gate.", ""]
        names = [name for name in SYNTHETIC_METRICS
                 if any(f"synthetic/{name}" in record.metrics for record in records)]
        for task in tasks:
            columns = names + ["kept"]
            cells: dict[tuple[str, str], Summary] = {}
            for name in columns:
                key = "gate/kept_rate" if name == "kept" else f"synthetic/{name}"
                for (arm, cell_task), summary in table_cells(records, lambda r: key).items():
                    if cell_task == task:
                        cells[(arm, name)] = summary
            rows = [arm for arm in generator_arms if any((arm, name) in cells for name in columns)]
            if not rows:
                continue
            lines = [f"### {task}", "", "| arm | " + " | ".join(columns) + " |",
                     "|---|" + "---:|" * len(columns)]
            for arm in rows:
                rendered = []
                for name in columns:
                    summary = cells.get((arm, name))
                    scale = 1.0 if name in ("bleu4", "self_bleu4") else 100.0
                    rendered.append("–" if summary is None else format_summary(summary, scale))
                lines.append(f"| {arm} | " + " | ".join(rendered) + " |")
            sections += lines + [""]
    return "\n".join(sections).rstrip() + "\n"


# -- plots ---------------------------------------------------------------------------------

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure, path: Path) -> Path:
    # no timestamp in the PNG metadata, so identical data gives identical files
    with atomic_open(path, "wb") as stream:
        figure.savefig(stream, format="png", dpi=110, bbox_inches="tight",
                       metadata={"Software": None})
    return path


def plot_arm_bars(records: list[RunRecord], metric: str, title: str, path: Path,
                  split: str = "test") -> Path | None:
    """Grouped bars: one group per task, one bar per arm, error bars = std-err over seeds."""
    cells = table_cells(records, lambda r: metric_key(r, split, metric))
    if not cells:
        return None
    plt = _pyplot()
    tasks = sorted({task for _, task in cells}, key=task_order)
    arms = arm_order(arm for arm, _ in cells)
    width = 0.8 / len(arms)
    figure, axes = plt.subplots(figsize=(max(6.0, 1.2 * len(tasks) * max(1, len(arms) / 3)), 4))
    for index, arm in enumerate(arms):
        positions = [task_index + (index - (len(arms) - 1) / 2) * width
                     for task_index, task in enumerate(tasks) if (arm, task) in cells]
        summaries = [cells[(arm, task)] for task in tasks if (arm, task) in cells]
        axes.bar(positions, [100 * s.mean for s in summaries], width, label=arm,
                 yerr=[100 * (s.standard_error or 0.0) for s in summaries], capsize=2)
    axes.set_xticks(range(len(tasks)), tasks)
    axes.set_ylabel(title)
    axes.set_title(f"{split} {title} per arm (mean ± std-err over seeds)")
    axes.legend(fontsize="small", ncols=2)
    path = _save(figure, path)
    plt.close(figure)
    return path


def plot_quality_diversity(records: list[RunRecord], path: Path) -> Path | None:
    """BLEU-4 (quality) against self-BLEU-4 (lack of diversity), one colour per sampler."""
    points: dict[tuple[str, str, str], tuple[list[float], list[float]]] = defaultdict(
        lambda: ([], []))
    for record in records:
        bleu = record.metrics.get("synthetic/bleu4")
        self_bleu = record.metrics.get("synthetic/self_bleu4")
        if record.sampler is not None and bleu is not None and self_bleu is not None:
            xs, ys = points[(record.sampler, record.arm, record.task)]
            xs.append(self_bleu)
            ys.append(bleu)
    if not points:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6, 4.5))
    samplers = sorted({sampler for sampler, _, _ in points})
    colours = plt.get_cmap("tab10")
    for index, sampler in enumerate(samplers):
        keys = sorted(key for key in points if key[0] == sampler)
        xs = [statistics.fmean(points[key][0]) for key in keys]
        ys = [statistics.fmean(points[key][1]) for key in keys]
        axes.scatter(xs, ys, color=colours(index % 10), label=sampler)
        for key, x, y in zip(keys, xs, ys):
            axes.annotate(f"{key[1]} ({key[2]})", (x, y), fontsize=6, alpha=0.7)
    axes.set_xlabel("self-BLEU-4 (lower = more diverse)")
    axes.set_ylabel("BLEU-4 vs real dev (higher = closer to real)")
    axes.set_title("quality vs diversity of the synthetic sets per sampling setting")
    axes.legend(fontsize="small")
    path = _save(figure, path)
    plt.close(figure)
    return path


def plot_synthetic_metrics(records: list[RunRecord], path: Path) -> Path | None:
    """Shares in % per generator arm (over every task and seed): diversity, novelty, validity,
    slot coverage, agreement and what the gate kept."""
    names = [name for name in ("distinct_1", "distinct_2", "novelty", "validity",
                               "slot_coverage", "nlu_agreement")
             if any(f"synthetic/{name}" in record.metrics for record in records)]
    keys = [f"synthetic/{name}" for name in names] + ["gate/kept_rate"]
    arms = arm_order(record.arm for record in records if "gate/kept_rate" in record.metrics)
    if not arms:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(max(6.0, 1.1 * len(keys) * max(1, len(arms) / 3)), 4))
    width = 0.8 / len(arms)
    for index, arm in enumerate(arms):
        summaries = [summarize([r.metrics[key] for r in records if r.arm == arm and key in r.metrics]
                               or [math.nan]) for key in keys]
        positions = [position + (index - (len(arms) - 1) / 2) * width
                     for position in range(len(keys))]
        axes.bar(positions, [100 * s.mean for s in summaries], width, label=arm,
                 yerr=[100 * (s.standard_error or 0.0) for s in summaries], capsize=2)
    axes.set_xticks(range(len(keys)), [key.split("/", 1)[1] for key in keys], rotation=20)
    axes.set_ylabel("%")
    axes.set_title("synthetic-set metrics per arm (mean ± std-err over tasks and seeds)")
    axes.legend(fontsize="small", ncols=2)
    path = _save(figure, path)
    plt.close(figure)
    return path


def plot_scale(records: list[RunRecord], metric: str, path: Path,
               split: str = "test") -> Path | None:
    """``split``'s ``metric`` against the training set's size (multiples of the real target train
    set), one line per kind of added data (``RunRecord.family``), mean over tasks and seeds."""
    points: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for record in records:
        total = record.metrics.get("data/target_total")
        real = record.metrics.get("data/target_train")
        value = record.metrics.get(metric_key(record, split, metric))
        if total is None or not real or value is None:
            continue
        families = ([record.family] if record.family else  # none: every line's start
                    sorted({other.family for other in records if other.family}))
        for family in families:
            points[family][round(total / real, 1)].append(value)
    if len(points) < 2:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(6.5, 4.5))
    for family in sorted(points):
        sizes = sorted(points[family])
        axes.plot(sizes, [100 * statistics.fmean(points[family][size]) for size in sizes],
                  marker="o", label=family)
    axes.set_xscale("log")
    axes.set_xlabel("target training utterances (x the real target train set)")
    axes.set_ylabel(f"{split} {HEADLINE_METRICS[metric][0]}")
    axes.set_title(f"{split} {HEADLINE_METRICS[metric][0]} against synthetic scale "
                   "(mean over tasks and seeds)")
    axes.legend(fontsize="small")
    path = _save(figure, path)
    plt.close(figure)
    return path


# -- the whole report ----------------------------------------------------------------------

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


def build_report(experiment: str, tracking_uri: str, out_dir: Path | str, *,
                 log_to_mlflow: bool = True, more_tracking_uris: Sequence[str] = (),
                 split: str = "test", verdict_arm: str | None = None) -> Path:
    """Write ``report.md`` and the plots to ``out_dir``; log them on a ``kind=compare`` run
    (in ``tracking_uri``). ``more_tracking_uris``: further stores holding runs of the study;
    ``split="dev"``: dev numbers only; ``verdict_arm``: see ``report_markdown``."""
    if split not in ("dev", "test"):
        raise ValueError(f"split: expected dev or test, got {split!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = collect_stores(experiment, [tracking_uri, *more_tracking_uris])
    if not records:
        raise LookupError(f"experiment {experiment!r} has no finished arm runs")
    report = out_dir / "report.md"
    with atomic_open(report) as stream:
        stream.write(report_markdown(experiment, records, split=split, verdict_arm=verdict_arm))
    for metric, (title, _) in HEADLINE_METRICS.items():
        plot_arm_bars(records, metric, title, out_dir / f"{split}_{metric}.png", split)
    plot_quality_diversity(records, out_dir / "quality_vs_diversity.png")
    plot_synthetic_metrics(records, out_dir / "synthetic_metrics.png")
    plot_scale(records, "exact_match", out_dir / "exact_match_vs_scale.png", split)
    if log_to_mlflow:
        import mlflow

        from nlu.tracking import start_run

        with start_run(experiment, tracking_uri, run_name=f"compare-{split}",
                       tags={"kind": "compare", "runs": str(len(records)), "split": split}):
            mlflow.log_artifacts(str(out_dir), artifact_path="report")
    return report
