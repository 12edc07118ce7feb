"""The verdict: one generator arm against upsampling the real data to the same size, per task,
judged by the bar the study pre-registered.

The bar lives in the study YAML, not here (``verdict_bar:``; see ``VerdictBar``). Every arm
run logs its study config, so ``study_verdict_bar`` reads the bar the runs were made with
from their params; ``build_report(verdict_bar=...)`` (CLI: ``compare --study FILE``) passes
one explicitly instead, e.g. for runs logged before the study had one. Without a bar the
verdict table shows the gains and says that there is no bar to judge them by.

With one seed a gain has no spread: the verdict lines then say that the run is a pipeline
check, not a verdict, whatever the bar says.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable

from experiments.compare.runs import RunRecord, metric_key
from experiments.compare.tables import (GAIN_METRICS, HEADLINE_METRICS, SEEN_UNSEEN_METRICS,
                                        Summary, equal_size_cells, equal_size_partner,
                                        format_gain, format_summary, mean_over_tasks,
                                        metric_title, one_seed, summarize)

BAR_GROUPS = ("new_language", "cut_intents")
BESIDE_THE_BAR = ("slot_f1_unseen",)  # in the verdict table, not judged: where a gain comes from


@dataclass(frozen=True)
class VerdictBar:
    """The least gain, in points over upsampling to the same size, that counts as a win, per
    metric: ``new_language`` averaged over the tasks without cut intents, ``cut_intents`` on
    the cut (focus) intents of the tasks that have them. Every listed metric must reach its
    threshold."""
    new_language: dict[str, float]
    cut_intents: dict[str, float]

    @classmethod
    def from_dict(cls, data: Any, where: str = "verdict_bar") -> "VerdictBar":
        """From the YAML mapping, e.g. ``{new_language: {exact_match: 3}, cut_intents:
        {intent_acc: 5}}``; ``ValueError`` naming the bad key."""
        if not isinstance(data, dict):
            raise ValueError(f"{where}: expected a mapping of {' / '.join(BAR_GROUPS)}")
        unknown = sorted(set(data) - set(BAR_GROUPS))
        if unknown:
            raise ValueError(f"{where}.{unknown[0]}: not one of {', '.join(BAR_GROUPS)}")
        groups: dict[str, dict[str, float]] = {}
        for group in BAR_GROUPS:
            metrics = data.get(group) or {}
            if not isinstance(metrics, dict):
                raise ValueError(f"{where}.{group}: expected a mapping of metric: points")
            groups[group] = {}
            for metric, points in metrics.items():
                if metric not in GAIN_METRICS:
                    raise ValueError(f"{where}.{group}.{metric}: not one of "
                                     f"{', '.join(GAIN_METRICS)}")
                try:
                    groups[group][metric] = float(points)
                except (TypeError, ValueError):
                    raise ValueError(f"{where}.{group}.{metric}: expected a number of points, "
                                     f"got {points!r}") from None
        return cls(**groups)

    @classmethod
    def from_params(cls, flat: dict[str, str]) -> "VerdictBar":
        """From a run's flat params below ``study.verdict_bar.`` (``RunRecord.verdict_bar``)."""
        nested: dict[str, dict[str, str]] = defaultdict(dict)
        for name, value in flat.items():
            group, _, metric = name.partition(".")
            nested[group][metric] = value
        return cls.from_dict(dict(nested), "study.verdict_bar (logged with the runs)")


def study_verdict_bar(records: list[RunRecord]) -> VerdictBar | None:
    """The bar the runs logged with their study config; None if they logged none. Runs that
    logged different bars are an error (pass one explicitly)."""
    logged = {tuple(sorted(record.verdict_bar.items())) for record in records}
    if len(logged) > 1:
        raise LookupError("the runs of this study logged different verdict bars "
                          f"({len(logged)} kinds, some maybe none); pass the bar to judge them "
                          "by (compare --study FILE)")
    flat = dict(logged.pop()) if logged else {}
    return VerdictBar.from_params(flat) if flat else None


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


def choose_on_dev(records: list[RunRecord], tasks: list[str], *,
                  candidate: Callable[[RunRecord], bool] = lambda record: record.generated,
                  metric: str | None = None) -> tuple[str, float] | None:
    """The ``candidate`` arm (default: a generator arm) with the largest mean dev gain over
    upsampling to the same size (in each task's gauge, or in ``metric`` on the gauge's split,
    paired by seed, averaged over tasks), and that gain in points."""
    gains: dict[str, list[float]] = defaultdict(list)
    compared = [record for record in records
                if candidate(record) or record.family == "upsample"]
    for task in tasks:
        split, gauge = verdict_gauge(records, task, "dev")
        for (arm, cell_task), summary in equal_size_cells(compared, split,
                                                          metric or gauge).items():
            if cell_task == task:
                gains[arm].append(summary.mean)
    complete = {arm: statistics.fmean(values) for arm, values in gains.items()
                if len(values) == len(tasks)}
    if not complete:
        return None
    arm = max(sorted(complete), key=lambda name: complete[name])
    return arm, 100 * complete[arm]


CUT_MARGIN = 2.0  # points: the rule that stops a dominated arm's later seeds (issue 27)


def dominated_arms(records: list[RunRecord], tasks: list[str],
                   margin: float = CUT_MARGIN) -> dict[str, dict[str, float]]:
    """Arms whose mean dev gain over upsampling to the same size is below ``-margin`` points
    on every task (each task's gauge; paired by seed) -> their gain per task. The rule a
    study states before its first seed, to spend later seeds on arms still in the race."""
    per_arm: dict[str, dict[str, float]] = defaultdict(dict)
    for task in tasks:
        split, gauge = verdict_gauge(records, task, "dev")
        for (arm, cell_task), summary in equal_size_cells(records, split, gauge).items():
            if cell_task == task:
                per_arm[arm][task] = 100 * summary.mean
    return {arm: gains for arm, gains in sorted(per_arm.items())
            if len(gains) == len(tasks) and all(gain < -margin for gain in gains.values())}


def dominated_section(records: list[RunRecord], tasks: list[str],
                      margin: float = CUT_MARGIN) -> list[str]:
    """The dev report's list of dominated arms (``dominated_arms``)."""
    dominated = dominated_arms(records, tasks, margin)
    lines = [f"## Dominated on dev: more than {margin:g} points below upsampling to the same "
             "size on every task", "",
             "In each task's gauge (exact match; the cut intents' intent accuracy where a task "
             "has them), paired by seed: arms a study may stop running for later seeds.", ""]
    if not dominated:
        return lines + ["None.", ""]
    lines += [f"| arm | {' | '.join(tasks)} |", "|---|" + "---:|" * len(tasks)]
    lines += [f"| {arm} | " + " | ".join(f"{gains[task]:+.1f}" for task in tasks) + " |"
              for arm, gains in dominated.items()]
    return lines + [""]


def _column_title(metric: str) -> str:
    return HEADLINE_METRICS[metric][0] if metric in HEADLINE_METRICS else \
        f"{SEEN_UNSEEN_METRICS[metric]} (%)"


def _judgement(gains: dict[str, Summary], bar: dict[str, float] | None) -> str:
    """'the bar (≥ 3 and ≥ 2) is **met**', or why there is no verdict."""
    if not bar:
        return "the study config has no verdict_bar for these, so there is no verdict"
    met = all(100 * gains[metric].mean >= points for metric, points in bar.items())
    rule = " and ".join(f"≥ {points:g}" for points in bar.values())
    if min(gains[metric].n for metric in bar) < 2:
        return (f"on one seed this is a pipeline check, not a verdict (the bar, {rule}, is "
                f"**{'met' if met else 'not met'}** here)")
    return f"the bar ({rule}) is **{'met' if met else 'not met'}**"


def verdict_section(records: list[RunRecord], tasks: list[str], split: str,
                    arm: str, how_chosen: str, bar: VerdictBar | None = None) -> list[str]:
    """One table: per task, ``arm`` against the upsample arm of the same size (mean ± se over
    seeds; the gain paired by seed), the mean over the new-language tasks, and ``bar``. Slot
    F1 on unseen values is shown beside the bar where the runs logged it: where a gain comes
    from."""
    focus_metrics = list(bar.cut_intents) if bar and bar.cut_intents else ["intent_acc"]
    language_metrics = (list(bar.new_language) if bar and bar.new_language
                        else ["exact_match", "slot_f1"])
    columns = [(split, "exact_match"), (split, "slot_f1"), (split, "intent_acc")]
    beside_bar = [metric for metric in BESIDE_THE_BAR
                  if any(metric_key(record, split, metric) in record.metrics
                         for record in records)]
    columns += [(split, metric) for metric in beside_bar]
    focus_tasks = {task for task in tasks if has_focus(records, task, split)}
    if focus_tasks:
        columns += [(f"{split}-focus", metric) for metric in focus_metrics]
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
        f"{'cut-intent ' if shown.endswith('-focus') else ''}{_column_title(metric)}: "
        "upsample → generated (gain)" for shown, metric in columns]
    lines = ["| " + " | ".join(header) + " |", "|---|---:|---|" + "---:|" * len(columns)]
    new_language_gains: dict[str, list[Summary]] = defaultdict(list)
    focus_gains: dict[str, list[Summary]] = defaultdict(list)
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
                            f"{format_summary(generated, 100, 1)} ({format_gain(gain)})")
            if task in focus_tasks:
                if shown.endswith("-focus"):
                    focus_gains[metric].append(gain)
            elif shown == split:
                new_language_gains[metric].append(gain)
        partners = sorted({u.arm for _, u in task_pairs})
        lines.append(f"| {task} | {len(task_pairs)} | {', '.join(partners)} | "
                     + " | ".join(rendered) + " |")
    verdicts = []
    if all(new_language_gains.get(metric) for metric in language_metrics):
        means = {metric: mean_over_tasks(new_language_gains[metric])
                 for metric in language_metrics}
        count = len(new_language_gains[language_metrics[0]])
        beside = [f"{metric_title(metric)} "
                  f"{format_gain(mean_over_tasks(new_language_gains[metric]))}"
                  for metric in beside_bar if len(new_language_gains[metric]) == count]
        verdicts.append(
            f"- New-language tasks ({count}), mean gain: "
            + ", ".join(f"{metric_title(metric)} {format_gain(means[metric])}"
                        for metric in language_metrics)
            + f" points; {_judgement(means, bar.new_language if bar else None)}"
            + (f"; beside the bar: {', '.join(beside)}" if beside else "") + ".")
    if all(focus_gains.get(metric) for metric in focus_metrics):
        means = {metric: mean_over_tasks(focus_gains[metric]) for metric in focus_metrics}
        verdicts.append(
            "- Cut intents, gain in their "
            + ", ".join(f"{metric_title(metric)}: {format_gain(means[metric])}"
                        for metric in focus_metrics)
            + f" points; {_judgement(means, bar.cut_intents if bar else None)}.")
    spread = ("one seed, in %" if one_seed([record for pair in pairs for record in pair])
              else "mean ± standard error over seeds, in %")
    return [title, "", f"{how_chosen} Cells: {spread}; the gain is paired by seed (the same "
            "real data).", "", *lines, "", *verdicts, ""]
