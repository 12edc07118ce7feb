"""The comparison report on hand-made run records: one-seed wording, the verdict bar, plots."""

from pathlib import Path

import pytest
import yaml

from experiments.compare import RunRecord, VerdictBar, report_markdown
from experiments.compare import plots
from experiments.compare.verdict import study_verdict_bar
from nlu.jobs import read_yaml

ROOT = Path(__file__).resolve().parents[1]
ISSUE_17_BAR = VerdictBar(new_language={"exact_match": 3.0, "slot_f1": 2.0},
                          cut_intents={"intent_acc": 5.0})


def record(task, arm, seed, total, exact, *, family=None, bar=None, **more):
    metrics = {"data/target_total": total, "data/target_train": 100,
               "test/xx/exact_match": exact, "test/xx/slot_f1": exact + 0.1,
               "test/xx/intent_acc": exact + 0.2, "dev/xx/exact_match": exact,
               "dev/xx/slot_f1": exact, "dev/xx/intent_acc": exact} | more
    if family is None:
        family = {"none": None, "upsample": "upsample"}.get(arm, "target/generated")
    return RunRecord(task=task, language="xx", arm=arm, seed=str(seed), sampler=None,
                     metrics=metrics, family=family, verdict_bar=bar or {})


def smoke_like(seeds=(1,), bar=None):
    """Two tasks, the baselines and one generator of the upsample arm's size."""
    return [record(task, arm, seed, total, exact + seed / 100, bar=bar)
            for task in ("aa", "bb") for seed in seeds
            for arm, total, exact in (("none", 100, 0.40), ("upsample", 200, 0.50),
                                      ("gen", 200, 0.52))]


LOGGED_BAR = {"new_language.exact_match": "3.0", "new_language.slot_f1": "2.0",
              "cut_intents.intent_acc": "5.0"}


def test_a_one_seed_report_has_no_plus_minus_and_calls_its_verdict_a_pipeline_check():
    report = report_markdown("smoke", smoke_like(bar=LOGGED_BAR))
    assert "±" not in report
    assert "every cell has one seed" in report
    verdict = report.split("## Verdict on test: gen")[1].split("\n## ")[0]
    assert "Cells: one seed, in %" in verdict
    assert ("mean gain: exact match +2.0, slot F1 +2.0 points; on one seed this is a pipeline "
            "check, not a verdict (the bar, ≥ 3 and ≥ 2, is **not met** here)") in verdict


def test_several_seeds_keep_the_standard_errors_and_a_plain_verdict():
    report = report_markdown("study", smoke_like(seeds=(1, 2, 3), bar=LOGGED_BAR))
    assert "cells are mean ± standard error over seeds" in report
    assert "the bar (≥ 3 and ≥ 2) is **not met**" in report
    assert "pipeline check" not in report


def test_the_verdict_bar_comes_from_the_runs_logged_study_config_or_is_passed_explicitly():
    records = smoke_like(bar=LOGGED_BAR)
    assert study_verdict_bar(records) == ISSUE_17_BAR
    lenient = VerdictBar(new_language={"exact_match": 1.0}, cut_intents={})
    report = report_markdown("smoke", records, verdict_bar=lenient)
    assert "mean gain: exact match +2.0 points;" in report and "(the bar, ≥ 1, is **met** here)" \
        in report
    without = report_markdown("smoke", smoke_like())
    assert "the study config has no verdict_bar for these, so there is no verdict" in without
    mixed = smoke_like(bar=LOGGED_BAR)[:3] + smoke_like()[3:]
    with pytest.raises(LookupError, match="different verdict bars"):
        report_markdown("smoke", mixed)


@pytest.mark.parametrize("study", ["study_bootstrap.yaml", "study_lowres.yaml"])
def test_both_study_yamls_pre_register_issue_17s_bar(study):
    raw = read_yaml(ROOT / "experiments" / study)  # the bar is in their shared base
    assert VerdictBar.from_dict(raw["verdict_bar"]) == ISSUE_17_BAR


@pytest.mark.parametrize("bar, message", [
    ({"new_language": {"exact_match": 3}, "typo": {}}, "verdict_bar.typo: not one of"),
    ({"new_language": {"semer": 3}}, "verdict_bar.new_language.semer: not one of exact_match"),
    ({"cut_intents": {"intent_acc": "five"}}, "cut_intents.intent_acc: expected a number"),
    ([3, 2], "verdict_bar: expected a mapping")])
def test_a_malformed_verdict_bar_names_the_bad_key(bar, message):
    with pytest.raises(ValueError, match=message):
        VerdictBar.from_dict(bar)


def test_compare_reads_the_bar_of_a_study_file_and_refuses_one_without(tmp_path):
    from service.commands.compare import study_file_bar

    assert study_file_bar(ROOT / "experiments" / "study_lowres.yaml") == ISSUE_17_BAR
    bare = tmp_path / "bare.yaml"
    bare.write_text("study: x\n")
    with pytest.raises(ValueError, match="bare.yaml has no top-level verdict_bar"):
        study_file_bar(bare)
    with pytest.raises(ValueError, match="missing.yaml: cannot read"):
        study_file_bar(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("verdict_bar: {new_language: [\n")
    with pytest.raises(ValueError, match="broken.yaml:2: not valid YAML"):
        study_file_bar(broken)


@pytest.fixture
def drawn(monkeypatch):
    """The figures the plot functions save, drawn, instead of PNG files."""
    figures = []

    def keep(figure, path):
        figure.canvas.draw()
        figures.append(figure)
        return path

    monkeypatch.setattr(plots, "_save", keep)
    return figures


def error_bars(axes):
    from matplotlib.container import ErrorbarContainer

    return [c for c in axes.containers if isinstance(c, ErrorbarContainer)]


def legend_is_beside_the_axes(axes) -> bool:
    return axes.get_legend().get_window_extent().x0 >= axes.get_window_extent().x1


def test_one_seed_bars_have_no_error_bars_and_the_legend_is_beside_them(drawn, tmp_path):
    plots.plot_arm_bars(smoke_like(), "exact_match", "exact match (%)", tmp_path / "a.png")
    axes = drawn[0].axes[0]
    assert not error_bars(axes)
    assert "one seed, no error bars" in axes.get_title()
    assert legend_is_beside_the_axes(axes)
    plots.plot_arm_bars(smoke_like(seeds=(1, 2)), "exact_match", "exact match (%)",
                        tmp_path / "b.png")
    assert len(error_bars(drawn[1].axes[0])) == 3  # one per arm, the spread of two seeds


def test_scale_axis_is_labelled_in_multiples_of_the_real_set(drawn, tmp_path):
    records = smoke_like() + [record("aa", "upsample-3x", 1, 300, 0.5, family="upsample")]
    plots.plot_scale(records, "exact_match", tmp_path / "scale.png")
    axes = drawn[0].axes[0]
    assert [label.get_text() for label in axes.get_xticklabels()] == ["1x", "2x", "3x"]
    assert not axes.get_xticklabels(minor=True)
    assert legend_is_beside_the_axes(axes)


def test_the_report_says_first_when_the_epoch_cap_ended_many_trainings():
    def trained(hit_cap, best, epochs):
        return {"train/hit_cap": float(hit_cap), "train/best_epoch": best,
                "train/epochs": epochs, "train/max_epochs": 12}

    converged = [record(task, arm, 1, total, exact, **trained(False, 6, 8))
                 for task in ("aa", "bb") for arm, total, exact
                 in (("none", 100, 0.4), ("upsample", 200, 0.5), ("gen", 200, 0.52))]
    report = report_markdown("x", converged)
    assert "Warning: the epoch cap" not in report
    assert "| upsample | 0 of 2 | 6.0 | 8.0 | 12 |" in report

    capped = [run for run in converged if run.arm != "gen"] + [
        record(task, "gen", 1, 200, 0.52, **trained(True, 12, 12)) for task in ("aa", "bb")]
    report = report_markdown("x", capped)
    first_screen = report.split("## ")[0]
    assert "the epoch cap, not early stopping, ended 2 of 6 runs" in first_screen
    assert "| gen | 2 of 2 | 12.0 | 12.0 | 12 |" in report
    assert "| none | not recorded |" in report_markdown("x", smoke_like())
