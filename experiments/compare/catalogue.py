"""Where a slot-value catalogue matters: scores on seen vs unseen slot values, and the
catalogue verdict (issue 28).

Every arm run logs slot F1 on test (and dev) spans whose value was seen vs unseen in the
target's own training data, and exact match on utterances without vs with an unseen value
(``nlu.metrics.SeenUnseenScores``; the runner passes the target train set's values).
``seen_unseen_sections`` tables them per task and arm.

The catalogue verdict judges two things, each paired by seed at the same total size
(``data/target_total``, as the generator verdict pairs arms):

* the best catalogue arm (tag ``catalogue``: ``refill``, or generated carriers filled from
  the catalogue), chosen on dev by its gain over upsampling in the bar's first metric,
  against upsampling: the study YAML's ``catalogue_bar`` (``{slot_f1: 3, slot_f1_unseen:
  8}``: the least gain in points, each met by the mean over the new-language tasks);
* the best generated catalogue arm, chosen the same way, against ``refill``, the baseline that
  uses the same catalogue without a generator: it beats refill when its mean gain in that
  metric exceeds two standard errors; the row shows its gains on seen and on unseen values
  beside, the evidence for why it wins or loses;
* where the study has refill arms without a catalogue (``catalogue_share: 0``: the target's
  own values redrawn), the best catalogue arm against them: what the catalogue itself adds,
  beyond redrawing the values the copies already hold.

Tasks with cut intents are scored on those intents and left out of the means.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Callable

from experiments.compare.runs import RunRecord, metric_key
from experiments.compare.tables import (GAIN_METRICS, SEEN_UNSEEN_METRICS, Summary,
                                        equal_size_runs, format_gain, format_summary,
                                        markdown_table, mean_over_tasks, metric_title, one_seed,
                                        summarize, table_cells)
from experiments.compare.verdict import choose_on_dev, has_focus

CATALOGUE_BAR_METRICS = GAIN_METRICS + tuple(SEEN_UNSEEN_METRICS)
DEFAULT_CATALOGUE_METRICS = ("slot_f1", "slot_f1_unseen")  # shown when there is no bar
STANDARD_ERRORS_FOR_A_WIN = 2  # "beats refill": a mean gain above this many standard errors


@dataclass(frozen=True)
class CatalogueBar:
    """The least gain, in points over upsampling to the same size, that counts as a win for
    the best catalogue arm, per metric, on the mean over the new-language tasks (those without
    cut intents). Every listed metric must reach its threshold."""
    gains: dict[str, float]

    @classmethod
    def from_dict(cls, data: Any, where: str = "catalogue_bar") -> "CatalogueBar":
        """From the YAML mapping, e.g. ``{slot_f1: 3.0, slot_f1_unseen: 8.0}``; ``ValueError``
        naming the bad key."""
        if not isinstance(data, dict) or not data:
            raise ValueError(f"{where}: expected a mapping of metric: points (metrics: "
                             f"{', '.join(CATALOGUE_BAR_METRICS)})")
        gains: dict[str, float] = {}
        for metric, points in data.items():
            if metric not in CATALOGUE_BAR_METRICS:
                raise ValueError(f"{where}.{metric}: not one of {', '.join(CATALOGUE_BAR_METRICS)}")
            try:
                gains[metric] = float(points)
            except (TypeError, ValueError):
                raise ValueError(f"{where}.{metric}: expected a number of points, got "
                                 f"{points!r}") from None
        return cls(gains)

    @classmethod
    def from_params(cls, flat: dict[str, str]) -> "CatalogueBar":
        """From a run's flat params below ``study.catalogue_bar.`` (``RunRecord.catalogue_bar``)."""
        return cls.from_dict(dict(flat), "study.catalogue_bar (logged with the runs)")


def study_catalogue_bar(records: list[RunRecord]) -> CatalogueBar | None:
    """The catalogue bar the runs logged with their study config; None if none did. Runs
    that logged none are left out (runs made before studies had one, resumed after), but runs
    that logged different bars are an error (pass one explicitly)."""
    logged = {tuple(sorted(record.catalogue_bar.items())) for record in records
              if record.catalogue_bar}
    if len(logged) > 1:
        raise LookupError(f"the runs of this study logged {len(logged)} different catalogue "
                          "bars; pass the bar to judge them by")
    return CatalogueBar.from_params(dict(logged.pop())) if logged else None


def gauge_split(records: list[RunRecord], task: str, split: str) -> str:
    """The split a task's catalogue arms are scored on: its cut intents where it has any
    (only they are augmented), else the whole split."""
    return f"{split}-focus" if has_focus(records, task, split) else split


# -- seen vs unseen slot values, per task and arm ------------------------------------------

def seen_unseen_sections(records: list[RunRecord], tasks: list[str], arms: list[str],
                         split: str = "test") -> list[str]:
    """Per task, arms x seen/unseen scores (mean ± se over seeds), headed by the share of gold
    spans whose value is unseen; nothing when no run logged them."""
    sections: list[str] = []
    for task in tasks:
        task_records = [record for record in records if record.task == task]
        for shown in (split, f"{split}-focus"):
            cells = {(arm, metric): summary for metric in SEEN_UNSEEN_METRICS
                     for (arm, _), summary in table_cells(
                         task_records, lambda r, m=metric: metric_key(r, shown, m)).items()}
            if not cells:
                continue
            columns = [metric for metric in SEEN_UNSEEN_METRICS
                       if any(column == metric for _, column in cells)]
            rows = [arm for arm in arms if any(row == arm for row, _ in cells)]
            facts = []
            shares = [record.metrics[key] for record in task_records
                      for key in [metric_key(record, shown, "unseen_span_share")]
                      if key in record.metrics]
            if shares:
                facts.append(f"{100 * statistics.fmean(shares):.1f} % of gold spans unseen")
            with_unseen = [record.metrics[unseen] / record.metrics[total]
                           for record in task_records
                           for unseen, total in [(metric_key(record, shown, "n_unseen_utterances"),
                                                  metric_key(record, shown, "n"))]
                           if unseen in record.metrics and record.metrics.get(total)]
            if with_unseen:
                facts.append(f"{100 * statistics.fmean(with_unseen):.1f} % of utterances "
                             "with an unseen value")
            sections += [f"### {task}, {shown}" + (f" ({'; '.join(facts)})" if facts else ""),
                         "", markdown_table(cells, rows, columns,
                                            headers=SEEN_UNSEEN_METRICS), ""]
    if sections:
        sections = ["## Seen vs unseen slot values", "",
                    "A span's value (its slot type and lower-cased tokens) is seen when it "
                    "occurs in the task's real target training data (the same for every arm: "
                    "what an arm adds does not count); gold and predicted spans are each "
                    "classed by their own value. Exact match is split by utterance: without "
                    "/ with at least one unseen gold value. In %; the shares in the headings "
                    "are means over the task's runs.", ""] + sections
    return sections


# -- the catalogue verdict -----------------------------------------------------------------

def _paired_gains(pairs: list[tuple[RunRecord, RunRecord]], split_of: Callable[[str], str],
                  metric: str) -> tuple[Summary, Summary, Summary] | None:
    """(baseline, arm, arm - baseline) summaries over the seeds of ``pairs`` (arm, baseline)."""
    values = [(arm.metrics.get(metric_key(arm, split_of(arm.task), metric)),
               base.metrics.get(metric_key(base, split_of(base.task), metric)))
              for arm, base in pairs]
    values = [(a, b) for a, b in values if a is not None and b is not None]
    if not values:
        return None
    return (summarize([b for _, b in values]), summarize([a for a, _ in values]),
            summarize([a - b for a, b in values]))


def _comparison_rows(label: str, pairs: list[tuple[RunRecord, RunRecord]], tasks: list[str],
                     judged_tasks: set[str], split_of: Callable[[str], str],
                     metrics: list[str], verdict: Callable[[dict[str, Summary]], str]
                     ) -> list[str]:
    """One row per task of ``pairs`` (arm run, baseline run), then the mean gain per metric
    over ``judged_tasks`` with ``verdict(means)`` (means only where every judged task has
    the metric)."""
    rows, per_task_gains = [], defaultdict(list)
    for task in tasks:
        task_pairs = [(arm, base) for arm, base in pairs if arm.task == task]
        if not task_pairs:
            continue
        rendered = []
        for metric in metrics:
            found = _paired_gains(task_pairs, split_of, metric)
            if found is None:
                rendered.append("–")
                continue
            baseline, arm, gain = found
            rendered.append(f"{format_summary(baseline, 100, 1)} → {format_summary(arm, 100, 1)}"
                            f" ({format_gain(gain)})")
            if task in judged_tasks:
                per_task_gains[metric].append(gain)
        baselines = ", ".join(sorted({base.arm for _, base in task_pairs}))
        rows.append(f"| {label} | {task} ({split_of(task)}) | {len(task_pairs)} | {baselines} | "
                    + " | ".join(rendered) + " | |")
    means = {metric: mean_over_tasks(gains) for metric, gains in per_task_gains.items()
             if len(gains) == len(judged_tasks)}
    rows.append(f"| {label} | mean over the {len(judged_tasks)} new-language tasks | | | "
                + " | ".join(format_gain(means[metric]) if metric in means else "–"
                             for metric in metrics)
                + f" | {verdict(means)} |")
    return rows


def _bar_judgement(means: dict[str, Summary], bar: CatalogueBar | None) -> str:
    if bar is None:
        return "the study config has no catalogue_bar, so there is no verdict"
    if any(metric not in means for metric in bar.gains):
        return ("not every new-language task has paired runs with every metric of the bar, "
                "so there is no verdict")
    met = all(100 * means[metric].mean >= points for metric, points in bar.gains.items())
    rule = " and ".join(f"{metric_title(metric)} ≥ {points:g}"
                        for metric, points in bar.gains.items())
    if min(means[metric].n for metric in bar.gains) < 2:
        return (f"one seed: a pipeline check, not a verdict (the bar, {rule}, is "
                f"**{'met' if met else 'not met'}** here)")
    return f"the bar ({rule}) is **{'met' if met else 'not met'}**"


def _win_judgement(means: dict[str, Summary], headline: str,
                   wins: tuple[str, str, str, str]) -> str:
    """Whether an arm's mean gain over a baseline in ``headline`` exceeds two standard errors,
    with its gains on seen and on unseen values as the evidence why. ``wins``: the verdict's
    words for a win, a gain within the errors, no gain, and the baseline's name."""
    beats, unclear, loses, baseline = wins
    if headline not in means:
        return "no paired runs on the new-language tasks, so no verdict"
    gain = means[headline]
    evidence = [f"{metric_title(metric)} {format_gain(means[metric])}"
                for metric in ("slot_f1_seen", "slot_f1_unseen") if metric in means]
    why = f" ({', '.join(evidence)})" if evidence else ""
    if gain.standard_error is None:
        return (f"one seed: a pipeline check, not a verdict ({metric_title(headline)} "
                f"{format_gain(gain)} against {baseline} here{why})")
    if gain.mean > STANDARD_ERRORS_FOR_A_WIN * gain.standard_error:
        return f"**{beats}**: {metric_title(headline)} {format_gain(gain)}{why}"
    if gain.mean > 0:
        return (f"**{unclear}**: {metric_title(headline)} {format_gain(gain)}, within "
                f"{STANDARD_ERRORS_FOR_A_WIN} standard errors{why}")
    return f"**{loses}**: {metric_title(headline)} {format_gain(gain)}{why}"


AGAINST_REFILL = ("beats refill", "does not clearly beat refill", "does not beat refill",
                  "refill")
AGAINST_OWN_VALUES = ("the catalogue adds to redrawing the own values",
                      "the catalogue adds nothing clear to redrawing the own values",
                      "the catalogue adds nothing to redrawing the own values",
                      "refill without a catalogue")


def _refill_partners(records: list[RunRecord], arm: str, metric: str,
                     with_catalogue: bool = True) -> list[tuple[RunRecord, RunRecord]]:
    """(run of ``arm``, refill run of the same task, seed and size): a refill run that uses
    the same catalogue (preferring the same share), or with ``with_catalogue=False`` one that
    uses none (the target's own values redrawn). Where several refill arms still match, the
    one paired most often, then the one with the best mean dev ``metric``."""
    candidates: dict[str, list[tuple[RunRecord, RunRecord]]] = defaultdict(list)
    for record in records:
        if record.arm != arm:
            continue
        partners = [partner for partner in equal_size_runs(record, records, "refill")
                    if (partner.catalogue == record.catalogue if with_catalogue
                        else partner.catalogue is None)]
        same_share = [partner for partner in partners
                      if partner.catalogue_share == record.catalogue_share]
        for partner in same_share if with_catalogue and same_share else partners:
            candidates[partner.arm].append((record, partner))

    def dev_score(refill_arm: str) -> float:
        scores = [partner.metrics.get(metric_key(partner, gauge_split(records, partner.task,
                                                                      "dev"), metric))
                  for _, partner in candidates[refill_arm]]
        scores = [score for score in scores if score is not None]
        return statistics.fmean(scores) if scores else float("-inf")

    if not candidates:
        return []
    chosen = max(sorted(candidates), key=lambda name: (len(candidates[name]), dev_score(name)))
    return candidates[chosen]


def catalogue_verdict_section(records: list[RunRecord], tasks: list[str], split: str,
                              bar: CatalogueBar | None = None, arm: str | None = None,
                              generated_arm: str | None = None) -> list[str]:
    """The catalogue verdict (see the module docstring): one table, ``arm`` (default: the
    catalogue arm chosen on dev) against upsampling, and ``generated_arm`` (default: ``arm``
    itself if it is a generated one, else the generated catalogue arm chosen on dev) against
    refill, per task, each with its verdict row. Says so when there is no catalogue arm."""
    title = f"## Catalogue verdict on {split}"
    catalogue_arms = sorted({record.arm for record in records if record.uses_catalogue})
    generated_arms = sorted({r.arm for r in records if r.uses_catalogue and r.generated})
    if arm is not None and arm not in catalogue_arms:
        raise LookupError(f"catalogue arm {arm!r} has no finished runs (catalogue arms: "
                          f"{', '.join(catalogue_arms) or 'none'})")
    if generated_arm is not None and generated_arm not in generated_arms:
        raise LookupError(f"{generated_arm!r} is not a generated catalogue arm with finished "
                          f"runs (those: {', '.join(generated_arms) or 'none'})")
    if not catalogue_arms:
        return [title, "", "No catalogue arms in this study (no run of a refill or generator "
                "arm carries a `catalogue` tag), so there is no catalogue verdict.", ""]
    # exact match and intent accuracy beside the bar: a catalogue arm that lifts slot F1 but
    # costs intents should say so in the same table
    metrics = list(dict.fromkeys(["slot_f1", "slot_f1_seen", "slot_f1_unseen",
                                  *(bar.gains if bar else DEFAULT_CATALOGUE_METRICS),
                                  "exact_match", "intent_acc"]))
    headline = next(iter(bar.gains)) if bar else "slot_f1"
    judged_tasks = {task for task in tasks if not has_focus(records, task, split)}

    def split_of(task: str) -> str:
        return gauge_split(records, task, split)

    def chosen(candidate: Callable[[RunRecord], bool], what: str) -> tuple[str | None, str]:
        found = choose_on_dev(records, tasks, candidate=candidate, metric=headline)
        if found is None:
            return None, f"no {what} has runs paired with upsampling to the same size on dev."
        return found[0], (f"{found[0]}, the {what} with the largest mean dev gain over "
                          f"upsampling to the same size ({found[1]:+.1f} points in "
                          f"{metric_title(headline)}).")

    def named(name: str) -> str:
        return f"{name}, the arm named before this run."

    best, best_how = (arm, named(arm)) if arm else chosen(lambda r: r.uses_catalogue,
                                                          "catalogue arm")
    if generated_arm is None and arm in generated_arms:
        generated_arm = arm
    if generated_arm is not None:
        generated, generated_how = generated_arm, named(generated_arm)
    else:
        generated, generated_how = chosen(lambda r: r.uses_catalogue and r.generated,
                                          "generated catalogue arm")

    header = (["comparison", "task (split)", "seeds", "baseline arm"]
              + [f"{metric_title(metric)}: baseline → arm (gain)" for metric in metrics]
              + ["verdict"])
    lines = ["| " + " | ".join(header) + " |",
             "|---|---|---:|---|" + "---:|" * len(metrics) + "---|"]
    empty = " | ".join("–" for _ in metrics)
    compared: list[RunRecord] = []
    if best is None:
        lines.append(f"| catalogue vs upsample | | | | {empty} | no catalogue arm is paired "
                     "with upsampling to the same size, so there is no verdict |")
    else:
        pairs = [(record, partners[0]) for record in records if record.arm == best
                 for partners in [equal_size_runs(record, records)] if partners]
        compared += [run for pair in pairs for run in pair]
        lines += _comparison_rows(f"{best} vs upsample", pairs, tasks, judged_tasks, split_of,
                                  metrics, lambda means: _bar_judgement(means, bar))
    if generated is None:
        lines.append(f"| generated vs refill | | | | {empty} | no generated catalogue arm, so "
                     "none is judged against refill |")
    else:
        pairs = _refill_partners(records, generated, headline)
        compared += [run for pair in pairs for run in pair]
        if pairs:
            lines += _comparison_rows(f"{generated} vs refill", pairs, tasks, judged_tasks,
                                      split_of, metrics,
                                      lambda means: _win_judgement(means, headline,
                                                                   AGAINST_REFILL))
        else:
            lines.append(f"| {generated} vs refill | | | | {empty} | no refill arm of the same "
                         "size, so it is not judged against refill |")
    own_values = [] if best is None else _refill_partners(records, best, headline,
                                                          with_catalogue=False)
    if own_values:
        compared += [run for pair in own_values for run in pair]
        lines += _comparison_rows(f"{best} vs refill, own values", own_values, tasks,
                                  judged_tasks, split_of, metrics,
                                  lambda means: _win_judgement(means, headline,
                                                               AGAINST_OWN_VALUES))
    spread = ("one seed, in %" if compared and one_seed(compared)
              else "mean ± standard error over seeds, in %")
    own_values_how = ([f"- Against refill without a catalogue: {best}, paired with the "
                       "refill arm of its size that redraws the target's own values (what the "
                       "catalogue itself adds)."] if own_values else [])
    return [title, "", f"- Against upsampling: {best_how}",
            f"- Against refill: {generated_how}", *own_values_how, "",
            f"Cells: {spread}; gains in points, paired by seed (the same real data) at the "
            "same total training size; tasks with cut intents are scored on those intents and "
            "left out of the means.", "", *lines, ""]
