"""The whole report: ``report.md`` and the plots of a study, logged on a ``kind=compare`` run."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from experiments.compare.catalogue import (CatalogueBar, catalogue_verdict_section,
                                           seen_unseen_sections, study_catalogue_bar)
from experiments.compare.plots import (plot_arm_bars, plot_catalogue_share,
                                       plot_quality_diversity, plot_scale,
                                       plot_synthetic_metrics)
from experiments.compare.runs import RunRecord, arm_order, collect_stores, task_order
from experiments.compare.tables import (HEADLINE_METRICS, cap_hit_warning, dev_selection,
                                        equal_size_sections, grid_factor_sections,
                                        headline_sections, one_seed, seed_count_section,
                                        synthetic_sections, task_sections, training_end_section)
from experiments.compare.verdict import (VerdictBar, choose_on_dev, dominated_section,
                                         study_verdict_bar, verdict_section)
from nlu.atomic import atomic_open


def report_markdown(experiment: str, records: list[RunRecord], *, split: str = "test",
                    verdict_arm: str | None = None,
                    verdict_bar: VerdictBar | None = None,
                    catalogue_arm: str | None = None,
                    catalogue_generated_arm: str | None = None,
                    catalogue_bar: CatalogueBar | None = None) -> str:
    """The report. ``split="dev"`` leaves out every test number (for choosing settings);
    ``verdict_arm`` is the arm the verdict judges (default: the one chosen on dev);
    ``verdict_bar`` the bar it is judged by (default: the one logged with the runs);
    ``catalogue_arm`` and ``catalogue_bar`` the same for the catalogue verdict, shown when the
    study has catalogue arms or a catalogue bar, and ``catalogue_generated_arm`` the generated
    arm it judges against refill."""
    tasks = sorted({record.task for record in records}, key=task_order)
    arms = arm_order(record.arm for record in records)
    cells_are = ("every cell has one seed, so no cell has a standard error"
                 if one_seed(records) else
                 "cells are mean ± standard error over seeds (a cell without ± has one seed)")
    sections = [f"# Comparison report: {experiment}"
                + (" (dev only: no test number in it)" if split == "dev" else ""), "",
                f"{len(records)} finished runs; {cells_are}; the best mean of each column is "
                "in bold (ties: all). Metrics of the task's target language, in %.", "",
                *cap_hit_warning(records)]
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
        bar = verdict_bar if verdict_bar is not None else study_verdict_bar(records)
        sections += verdict_section(records, tasks, split, verdict_arm, how_chosen, bar)
    if catalogue_bar is None:
        catalogue_bar = study_catalogue_bar(records)
    if (catalogue_bar is not None or catalogue_arm is not None
            or catalogue_generated_arm is not None
            or any(record.uses_catalogue for record in records)):
        sections += catalogue_verdict_section(records, tasks, split, catalogue_bar,
                                              catalogue_arm, catalogue_generated_arm)
    if split == "dev":
        sections += dominated_section(records, tasks)
    sections += seed_count_section(records, tasks, arms)
    sections += training_end_section(records, arms)
    if split == "test":
        sections += ["## Arm chosen on dev, scored on test", "",
                     dev_selection(records, tasks, arms), ""]
    sections += task_sections(records, tasks, arms, split)
    sections += seen_unseen_sections(records, tasks, arms, split)
    sections += headline_sections(records, tasks, arms, split)
    sections += equal_size_sections(records, tasks, split)
    sections += grid_factor_sections(records, tasks, split)
    sections += synthetic_sections(records, tasks, arms)
    return "\n".join(sections).rstrip() + "\n"


def build_report(experiment: str, tracking_uri: str, out_dir: Path | str, *,
                 log_to_mlflow: bool = True, more_tracking_uris: Sequence[str] = (),
                 split: str = "test", verdict_arm: str | None = None,
                 verdict_bar: VerdictBar | None = None, catalogue_arm: str | None = None,
                 catalogue_generated_arm: str | None = None,
                 catalogue_bar: CatalogueBar | None = None) -> Path:
    """Write ``report.md`` and the plots to ``out_dir``; log them on a ``kind=compare`` run
    (in ``tracking_uri``). ``more_tracking_uris``: further stores holding runs of the study;
    ``split="dev"``: dev numbers only; ``verdict_arm``, ``verdict_bar``, ``catalogue_arm``,
    ``catalogue_generated_arm``, ``catalogue_bar``: see ``report_markdown``."""
    if split not in ("dev", "test"):
        raise ValueError(f"split: expected dev or test, got {split!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    records = collect_stores(experiment, [tracking_uri, *more_tracking_uris])
    if not records:
        raise LookupError(f"experiment {experiment!r} has no finished arm runs")
    report = out_dir / "report.md"
    with atomic_open(report) as stream:
        stream.write(report_markdown(experiment, records, split=split, verdict_arm=verdict_arm,
                                     verdict_bar=verdict_bar, catalogue_arm=catalogue_arm,
                                     catalogue_generated_arm=catalogue_generated_arm,
                                     catalogue_bar=catalogue_bar))
    for metric, (title, _) in HEADLINE_METRICS.items():
        plot_arm_bars(records, metric, title, out_dir / f"{split}_{metric}.png", split)
    plot_quality_diversity(records, out_dir / "quality_vs_diversity.png")
    plot_synthetic_metrics(records, out_dir / "synthetic_metrics.png")
    plot_scale(records, "exact_match", out_dir / "exact_match_vs_scale.png", split)
    plot_catalogue_share(records, out_dir / "unseen_slot_f1_vs_catalogue_share.png", split)
    if log_to_mlflow:
        import mlflow

        from nlu.tracking import start_run

        with start_run(experiment, tracking_uri, run_name=f"compare-{split}",
                       tags={"kind": "compare", "runs": str(len(records)), "split": split}):
            mlflow.log_artifacts(str(out_dir), artifact_path="report")
    return report
