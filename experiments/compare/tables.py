"""Tables: summaries over seeds and the report's markdown tables (no verdict, no plots).

A cell is the mean ± standard error over seeds (sample std / sqrt(n)); a single seed shows
the mean alone, never "± 0.0".
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass

from experiments.compare.runs import ARM_ORDER_FIRST, RunRecord, arm_order, metric_key

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
GRID_FACTORS = ("reward", "sampler", "embeddings")  # of the gan-<reward>-<sampler>-<embeddings> arms
SIZE_TOLERANCE = 0.02  # a gate may keep a little less than asked: totals within 2% match
GAIN_METRICS = ("exact_match", "slot_f1", "intent_acc")  # of the equal-size gain tables
# metric name in EvaluationReport.flat (nlu.metrics.SeenUnseenScores.flat) -> table title
SEEN_UNSEEN_METRICS = {
    "slot_f1_seen": "slot F1, seen values",
    "slot_f1_unseen": "slot F1, unseen values",
    "exact_match_seen_utterances": "exact match, no unseen value",
    "exact_match_unseen_utterances": "exact match, an unseen value",
}


@dataclass(frozen=True)
class Summary:
    mean: float
    standard_error: float | None  # None with a single seed
    n: int


def metric_title(metric: str) -> str:
    if metric in SEEN_UNSEEN_METRICS:
        return SEEN_UNSEEN_METRICS[metric]
    return HEADLINE_METRICS[metric][0].split(" (")[0]


def summarize(values: list[float]) -> Summary:
    if len(values) == 1:
        return Summary(values[0], None, 1)
    return Summary(statistics.fmean(values), statistics.stdev(values) / math.sqrt(len(values)),
                   len(values))


def one_seed(records: list[RunRecord]) -> bool:
    """Whether every (task, arm) of the study has a single seed: no spread to show."""
    seeds: dict[tuple[str, str], set[str]] = defaultdict(set)
    for record in records:
        seeds[(record.task, record.arm)].add(record.seed)
    return all(len(found) == 1 for found in seeds.values())


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


def format_gain(summary: Summary, digits: int = 1) -> str:
    """A gain in points, signed: ``+4.0 ± 0.5``, or ``+4.0`` with one seed."""
    text = f"{100 * summary.mean:+.{digits}f}"
    if summary.standard_error is None:
        return text
    return f"{text} ± {100 * summary.standard_error:.{digits}f}"


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


def headline_sections(records: list[RunRecord], tasks: list[str], arms: list[str],
                      split: str = "test") -> list[str]:
    """Per split shown and headline metric, one table of arms x tasks."""
    sections: list[str] = []
    for shown in (SPLITS if split == "test" else (split, f"{split}-focus")):
        for metric, (title, higher_is_better) in HEADLINE_METRICS.items():
            cells = table_cells(records, lambda r: metric_key(r, shown, metric))
            if not cells:
                continue
            columns = [task for task in tasks if any(cell_task == task for _, cell_task in cells)]
            sections += [f"## {shown}: {title}", "",
                         markdown_table(cells, arms, columns, higher_is_better=higher_is_better),
                         ""]
    return sections


def seed_count_section(records: list[RunRecord], tasks: list[str], arms: list[str]) -> list[str]:
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for record in records:
        counts[(record.arm, record.task)] += 1
    return (["## Seeds per cell", "",
             "| arm | " + " | ".join(tasks) + " |", "|---|" + "---:|" * len(tasks)]
            + [f"| {arm} | " + " | ".join(str(counts.get((arm, task), 0)) for task in tasks)
               + " |" for arm in arms]
            + [""])


def equal_size_runs(record: RunRecord, records: list[RunRecord],
                    family: str = "upsample") -> list[RunRecord]:
    """The runs of ``family`` (upsample, refill) of the same task and seed whose training set
    is as large as ``record``'s (``data/target_total``)."""
    total = record.metrics.get("data/target_total")
    if total is None:
        return []
    return [other for other in records
            if other.family == family and other.task == record.task
            and other.seed == record.seed and other.metrics.get("data/target_total") is not None
            and abs(other.metrics["data/target_total"] - total) <= SIZE_TOLERANCE * total]


def equal_size_partner(record: RunRecord, records: list[RunRecord]) -> RunRecord | None:
    """The upsample run of the same task and seed whose training set is as large as
    ``record``'s (``data/target_total``), if the study has one."""
    partners = equal_size_runs(record, records)
    return partners[0] if partners else None


def mean_over_tasks(per_task: list[Summary]) -> Summary:
    """The mean of per-task means; its standard error combines theirs (independent tasks)."""
    errors = [summary.standard_error for summary in per_task]
    return Summary(statistics.fmean(summary.mean for summary in per_task),
                   None if None in errors else math.sqrt(sum(e * e for e in errors)) / len(errors),
                   min(summary.n for summary in per_task))


def equal_size_cells(records: list[RunRecord], split: str,
                     metric: str) -> dict[tuple[str, str], Summary]:
    """(generator or refill arm, task) -> the arm's gain over upsampling to the same size,
    paired by seed (the same real data), summarised over seeds."""
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
        for metric in GAIN_METRICS:
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
                         "Each generator (or refill) arm minus the upsample arm with as "
                         "many training utterances, paired by seed; > 0: the added data "
                         "helps more than copies.", "",
                         markdown_table(cells, arms, table_columns, higher_is_better=True), ""]
    return sections


def synthetic_sections(records: list[RunRecord], tasks: list[str], arms: list[str]) -> list[str]:
    """Per task, the quality metrics of every generator arm's synthetic set."""
    generator_arms = [arm for arm in arms
                      if any(f"synthetic/{name}" in record.metrics for record in records
                             if record.arm == arm for name in SYNTHETIC_METRICS)]
    if not generator_arms:
        return []
    sections = ["## Synthetic sets", "",
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
    return sections


CAP_HIT_WARNING_SHARE = 0.1  # above this share of runs ended by the epoch cap, say so first


def cap_hits(records: list[RunRecord]) -> tuple[int, int]:
    """(runs whose NLU model the epoch cap stopped, runs that recorded how training ended)."""
    recorded = [record for record in records if "train/hit_cap" in record.metrics]
    return sum(record.metrics["train/hit_cap"] > 0 for record in recorded), len(recorded)


def cap_hit_warning(records: list[RunRecord]) -> list[str]:
    """A first-screen line when many models were still learning when the cap stopped them:
    then the comparison measures who learns fastest, not what the data is worth."""
    hits, recorded = cap_hits(records)
    if not recorded or hits <= CAP_HIT_WARNING_SHARE * recorded:
        return []
    return [f"**Warning: the epoch cap, not early stopping, ended {hits} of {recorded} runs' "
            "training** (models still improving on dev): differences between arms may be "
            "differences in training length. See \"How training ended\".", ""]


def training_end_section(records: list[RunRecord], arms: list[str]) -> list[str]:
    """Per arm: runs the cap stopped, the mean best epoch and epochs trained, the cap, and
    what a run cost (wall and CPU minutes, where the runs logged them); then the totals."""
    lines = ["## How training ended", "",
             "Per arm: runs whose NLU model the epoch cap stopped (not early stopping), the "
             "mean epoch of the best dev score, the mean number of epochs trained, and the mean "
             "wall and CPU minutes of a run (data, generator and NLU model; CPU: every thread "
             "of the process, where the run logged it).", "",
             "| arm | cap hits | best epoch | epochs | cap | wall min | CPU min |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for arm in arms:
        recorded = [record for record in records
                    if record.arm == arm and "train/hit_cap" in record.metrics]
        if not recorded:
            lines.append(f"| {arm} | not recorded | | | | | |")
            continue
        hits, _ = cap_hits(recorded)
        caps = sorted({int(record.metrics["train/max_epochs"]) for record in recorded})
        lines.append(f"| {arm} | {hits} of {len(recorded)} | "
                     f"{statistics.fmean(r.metrics['train/best_epoch'] for r in recorded):.1f} | "
                     f"{statistics.fmean(r.metrics['train/epochs'] for r in recorded):.1f} | "
                     f"{', '.join(map(str, caps))} | {_mean_minutes(recorded, 'time/run_seconds')} | "
                     f"{_mean_minutes(recorded, 'time/cpu_seconds')} |")
    lines.append("")
    for metric, what in (("time/run_seconds", "wall"), ("time/cpu_seconds", "CPU")):
        timed = [record.metrics[metric] for record in records if metric in record.metrics]
        if timed:
            lines.append(f"- {what} time of the {len(timed)} of {len(records)} runs that logged "
                         f"it: {sum(timed) / 3600:.1f} h in all.")
    return lines + [""]


def _mean_minutes(records: list[RunRecord], metric: str) -> str:
    seconds = [record.metrics[metric] for record in records if metric in record.metrics]
    return f"{statistics.fmean(seconds) / 60:.1f}" if seconds else "–"
