"""A micro study (tiny models, two tasks, four arms, one seed) through runner and compare."""

import random
import re
from pathlib import Path

import pytest
import yaml

from experiments.compare import VerdictBar, build_report, markdown_table, summarize
from experiments.runner import (StudyConfigError, arm_gate_config, load_study, nlu_config,
                                run_study, study_gan_config, task_data, trained_generator)
from nlu.formats import write_utterances
from nlu.jobs import read_yaml
from nlu.utterance import Utterance
from shared_data import SHARED_DATA

WORDS = {
    "en": {"play": ["play", "put", "on"], "genre": ["jazz", "rock", "pop", "blues", "soul"],
           "alarm": ["wake", "me", "at"], "time": ["six", "seven", "eight", "nine", "ten"],
           "weather": ["weather", "in"], "city": ["rome", "paris", "oslo", "lima", "kyiv"]},
    "xx": {"play": ["spiel", "mal"], "genre": ["jaz", "rok", "popo", "bluz", "sol"],
           "alarm": ["weck", "mich", "um"], "time": ["sechs", "sieben", "acht", "neun", "zehn"],
           "weather": ["wetter", "im"], "city": ["rom", "parys", "osl", "lim", "kiew"]},
}
INTENTS = {"play_music": ("play", "genre"), "set_alarm": ("alarm", "time"),
           "get_weather": ("weather", "city")}


def utterances(language, count, seed):
    rng = random.Random(seed)
    words = WORDS[language]
    made = []
    for index in range(count):
        intent = list(INTENTS)[index % len(INTENTS)]
        lead, slot = INTENTS[intent]
        value = rng.choice(words[slot])
        tokens = words[lead][:rng.randint(1, len(words[lead]))] + [value]
        tags = ["O"] * (len(tokens) - 1) + [f"B-{slot}"]
        made.append(Utterance(tuple(tokens), tuple(tags), intent, language))
    return made


MICRO_STUDY = {
    "study": "micro",
    "tracking": {"experiment": "micro-study"},
    "data": {"root": ".", "source": {"train": "en.train.jsonl", "dev": "en.dev.jsonl"}},
    "seeds": [1, 2, 3],
    "tasks": [
        {"name": "xx", "language": "xx", "fractions": [0.5], "train": "xx.train.jsonl",
         "dev": "xx.dev.jsonl", "test": "xx.test.jsonl"},
        {"name": "xx-cut", "language": "xx", "cut": {"intents": ["set_alarm"], "keep": 3},
         "train": "xx.train.jsonl", "dev_fraction": 0.25, "test": "xx.test.jsonl"},
    ],
    "augment": {"scale": 1.0, "gate": {"drop_train_copies": False}},
    "samplers": {"temp": {"method": "temperature", "temperature": 0.8},
                 "topp": {"method": "top-p", "top_p": 0.9}},
    "arms": {"none": {"augment": "none"}, "upsample": {"augment": "upsample"},
             "mle": {"augment": "generator", "gan": {"adversarial_steps": 0}, "sampler": "temp"}},
    "grid": {"rewards": ["token", "rollout", "sentence"], "samplers": ["temp", "topp"],
             "embeddings": ["random", "transferred"]},
    "nlu": {"embedding_dim": 16, "hidden_dim": 16, "num_layers": 1, "max_epochs": 2,
            "patience": 1, "batch_size": 16, "vocab_size": 80, "num_threads": 1,
            "enable_progress_bar": False},
    "gan": {"embedding_dim": 8, "tag_dim": 4, "condition_dim": 4, "hidden_dim": 16,
            "d_hidden_dim": 8, "mle_epochs": 1, "d_pretrain_steps": 2, "adversarial_steps": 2,
            "rollout_n": 2, "batch_size": 16, "steps_per_checkpoint": 5, "eval_samples": 0},
    "verdict_bar": {"new_language": {"exact_match": 3.0, "slot_f1": 2.0},
                    "cut_intents": {"intent_acc": 5.0}},
    "profiles": {"micro": {"seeds": [1],
                           "only_arms": ["none", "upsample", "mle", "gan-token-topp-transferred"]}},
}


@pytest.fixture
def study_file(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name, made in {"en.train": utterances("en", 45, 1), "en.dev": utterances("en", 9, 2),
                       "xx.train": utterances("xx", 36, 3), "xx.dev": utterances("xx", 9, 4),
                       "xx.test": utterances("xx", 12, 5)}.items():
        write_utterances(made, data / f"{name}.jsonl", "jsonl")
    path = data / "study_micro.yaml"
    path.write_text(yaml.safe_dump(MICRO_STUDY, sort_keys=False))
    return path


def test_profiles_grid_and_validation(study_file, tmp_path):
    full = load_study(study_file)
    assert [task.name for task in full.tasks] == ["xx-50", "xx-cut"]
    assert len(full.arms) == 3 + 3 * 2 * 2 and full.seeds == [1, 2, 3]
    micro = load_study(study_file, "micro")
    assert [arm.name for arm in micro.arms] == ["none", "upsample", "mle",
                                                 "gan-token-topp-transferred"]
    assert micro.seeds == [1] and micro.nlu == full.nlu
    assert load_study(study_file, "micro", seeds=[4, 5]).seeds == [4, 5]
    # --tasks / --arms keep a subset, in the study's order; a name it lacks is an error
    split = load_study(study_file, "micro", tasks=["xx-cut"], arms=["mle", "none"])
    assert [task.name for task in split.tasks] == ["xx-cut"]
    assert [arm.name for arm in split.arms] == ["none", "mle"]
    with pytest.raises(StudyConfigError, match=r"arms: unknown arms gan-token .*has: none"):
        load_study(study_file, "micro", arms=["gan-token"])
    with pytest.raises(StudyConfigError, match="tasks: unknown tasks xx-9"):
        load_study(study_file, "micro", tasks=["xx-9"])
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(MICRO_STUDY | {"arms": {"x": {"augment": "magic"}}}))
    with pytest.raises(StudyConfigError, match="magic"):
        load_study(broken)
    with pytest.raises(StudyConfigError, match="profile"):
        load_study(study_file, "nope")
    with pytest.raises(StudyConfigError, match="data root"):
        load_study(study_file, data_root=tmp_path / "missing")


def test_an_arm_changes_the_study_gate_for_itself_only(tmp_path):
    agreeing = tmp_path / "agreeing.yaml"
    agreeing.write_text(yaml.safe_dump(MICRO_STUDY | {"arms": MICRO_STUDY["arms"] | {
        "mle-agree": {"augment": "generator", "gan": {"adversarial_steps": 0},
                      "sampler": "temp", "gate": {"nlu_agreement": True}}}}))
    study = load_study(agreeing)
    arms = {arm.name: arm for arm in study.arms}
    plain, agree = arm_gate_config(study, arms["mle"]), arm_gate_config(study, arms["mle-agree"])
    assert not plain.nlu_agreement and agree.nlu_agreement
    assert not plain.drop_train_copies and not agree.drop_train_copies  # the study's setting


SHIPPED_STUDIES = sorted((Path(__file__).resolve().parents[1] / "experiments").glob("study_*.yaml"))


@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="the full studies read ../shared/data")
@pytest.mark.parametrize("study_path", SHIPPED_STUDIES, ids=lambda path: path.stem)
def test_shipped_studies_load_with_every_profile(study_path):
    """A typo in a shipped study or one of its profiles fails here, not hours into a run."""
    from gan.config import GanConfig

    profiles = read_yaml(study_path)["profiles"]  # its own and its base's
    for profile in [None, *profiles]:
        study = load_study(study_path, profile)
        assert study.tasks and study.arms and study.seeds, profile
        nlu_config(study, study.seeds[0])
        for arm in study.arms:
            if arm.augment == "generator":
                GanConfig.from_dict(study_gan_config(study, arm))
                arm_gate_config(study, arm)


def test_cli_reports_a_bad_study_as_an_error(tmp_path, capsys):
    from service.cli import main

    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump({"study": "x"}))
    assert main(["experiment", "run", str(broken)]) == 2
    assert "missing top-level key" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage_error:
        main(["experiment", "run", str(broken), "--tasks", "a,,b"])
    assert usage_error.value.code == 2
    assert "expected comma-separated names" in capsys.readouterr().err


def test_micro_study_runs_resumes_and_reports(study_file, tmp_path, capsys):
    import mlflow
    import torch

    torch.set_num_threads(1)
    tracking_uri = f"sqlite:///{tmp_path}/mlflow.db"
    study = load_study(study_file, "micro")
    counts = run_study(study, tracking_uri=tracking_uri, work_dir=tmp_path / "work")
    assert counts == {"ran": 8, "skipped": 0}

    mlflow.set_tracking_uri(tracking_uri)
    runs = mlflow.search_runs(experiment_names=["micro-study"], output_format="list")
    assert len(runs) == 8 and all(run.info.status == "FINISHED" for run in runs)
    by_key = {(run.data.tags["task"], run.data.tags["arm"]): run for run in runs}
    assert set(by_key) == {(task, arm) for task in ("xx-50", "xx-cut")
                           for arm in ("none", "upsample", "mle", "gan-token-topp-transferred")}
    for run in runs:
        assert run.data.tags["study"] == "micro" and run.data.tags["seed"] == "1"
        assert run.data.tags["language"] == "xx"
        assert 0.0 <= run.data.metrics["test/xx/intent_acc"] <= 1.0
        assert "dev/xx/slot_f1" in run.data.metrics
        assert {"test/xx/n_unseen_utterances", "dev/xx/gold_slots_seen"} <= set(run.data.metrics)
    generated = by_key[("xx-50", "gan-token-topp-transferred")].data
    assert generated.tags["reward"] == "token" and generated.tags["sampler"] == "topp"
    assert generated.metrics["gate/seen"] >= generated.metrics["gate/kept"] > 0
    assert generated.metrics["data/synthetic"] == generated.metrics["gate/kept"]
    assert "synthetic/distinct_1" in generated.metrics
    assert by_key[("xx-50", "mle")].data.tags["reward"] == "mle"
    # the cut task: 3 set_alarm examples left, only those augmented, focus metrics logged
    cut_upsample = by_key[("xx-cut", "upsample")].data.metrics
    assert cut_upsample["data/synthetic"] == 3
    assert "test-focus/all/intent_acc" in cut_upsample
    assert by_key[("xx-50", "none")].data.metrics["data/target_train"] == 18
    # 36 xx utterances, a quarter held out as dev, then set_alarm cut from 9 to 3 examples
    assert by_key[("xx-cut", "none")].data.metrics["data/target_train"] == 27 - 6
    assert by_key[("xx-cut", "none")].data.metrics["dev/xx/n"] == 9

    assert run_study(study, tracking_uri=tracking_uri, work_dir=tmp_path / "work") == {
        "ran": 0, "skipped": 8}

    out = tmp_path / "report"
    report = build_report("micro-study", tracking_uri, out).read_text()
    assert "## test: intent accuracy (%)" in report and "## test-focus: slot F1 (%)" in report
    assert "| none | 1 | 1 |" in report  # seeds per cell
    assert "**" in report and "gan-token-topp-transferred" in report
    assert "### xx-50" in report  # synthetic-set table
    assert "## xx-cut: every test metric (%)" in report
    assert "| arm | test intent accuracy | test slot F1 | test exact match | test SemER | " \
           "test-focus intent accuracy |" in report
    for png in ("test_intent_acc.png", "quality_vs_diversity.png", "synthetic_metrics.png"):
        assert (out / png).stat().st_size > 0
    # compare reads MLflow alone and ignores its own compare runs: same tables again (CLI)
    from service.cli import main

    assert main(["compare", "--experiment", "micro-study", "--tracking-uri", tracking_uri,
                 "--out", str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "report.md").read_text() == report
    # a named arm the study does not have is exit 2 with the reason, not a silent default
    for flag in ("--catalogue-arm", "--catalogue-generated-arm"):
        assert main(["compare", "--experiment", "micro-study", "--tracking-uri", tracking_uri,
                     "--out", str(tmp_path / "named"), "--no-log", flag, "upsample"]) == 2
    err = capsys.readouterr().err
    assert "catalogue arm 'upsample' has no finished runs (catalogue arms: none)" in err
    assert "'upsample' is not a generated catalogue arm with finished runs (those: none)" in err
    assert "Traceback" not in err
    compare_runs = mlflow.search_runs(experiment_names=["micro-study"], output_format="list",
                                      filter_string="tags.kind = 'compare'")
    assert len(compare_runs) == 2
    artifacts = {item.path for item in
                 mlflow.MlflowClient().list_artifacts(compare_runs[0].info.run_id, "report")}
    assert "report/report.md" in artifacts

    # how each model's training ended is logged with the run
    trained = by_key[("xx-50", "upsample")].data.metrics
    assert trained["train/max_epochs"] == 2 and trained["train/hit_cap"] in (0.0, 1.0)
    assert 1 <= trained["train/best_epoch"] <= trained["train/epochs"] <= 2

    # the finished runs travel as a small file: another store gets the same report, and the
    # runner there skips them
    exported = tmp_path / "runs.jsonl"
    assert main(["experiment", "export", "--experiment", "micro-study", "--tracking-uri",
                 tracking_uri, "--out", str(exported)]) == 0
    assert len(exported.read_text().splitlines()) == 8
    elsewhere = f"sqlite:///{tmp_path}/elsewhere.db"
    assert main(["experiment", "import", str(exported), "--tracking-uri", elsewhere]) == 0
    assert main(["experiment", "import", str(exported), "--tracking-uri", elsewhere]) == 0
    assert build_report("micro-study", elsewhere, tmp_path / "elsewhere",
                        log_to_mlflow=False).read_text() == report
    assert run_study(study, tracking_uri=elsewhere, work_dir=tmp_path / "work") == {
        "ran": 0, "skipped": 8}


def test_arms_differing_only_in_sampler_share_one_generator(study_file, tmp_path, monkeypatch):
    import gan.training
    from gan.sampling import SamplingConfig

    study = load_study(study_file)
    task = study.tasks[0]
    data = task_data(study, task, 1)
    arms = {arm.name: arm for arm in study.arms}
    trainings = []
    train_gan = gan.training.train_gan
    monkeypatch.setattr(gan.training, "train_gan",
                        lambda *args, **kwargs: trainings.append(1) or train_gan(*args, **kwargs))

    def generator(arm_name):
        return trained_generator(study, task, arms[arm_name], data, 1, tmp_path, None)

    trained = generator("gan-token-temp-random")
    loaded = generator("gan-token-topp-random")
    assert len(trainings) == 1  # the second arm loaded the first arm's generator
    sampling = SamplingConfig(method="top-p", top_p=0.9)
    assert ([u.to_dict() for u in trained.generate(6, sampling=sampling, seed=3)]
            == [u.to_dict() for u in loaded.generate(6, sampling=sampling, seed=3)])
    generator("gan-sentence-temp-random")  # another reward: another generator
    assert len(trainings) == 2


ISSUE_17_BAR = VerdictBar(new_language={"exact_match": 3.0, "slot_f1": 2.0},
                          cut_intents={"intent_acc": 5.0})


def _record(task, arm, seed, total, exact, slots, intent, focus_intent=None, **tags):
    from experiments.compare import RunRecord

    metrics = {"data/target_total": total, "data/target_train": 100,
               f"dev/xx/exact_match": exact, f"dev/xx/slot_f1": slots,
               f"dev/xx/intent_acc": intent}
    if focus_intent is not None:
        metrics["dev-focus/all/intent_acc"] = focus_intent
    family = "upsample" if arm.startswith("upsample") else "target/lexicon+upsample"
    return RunRecord(task=task, language="xx", arm=arm, seed=str(seed), sampler=None,
                     metrics=metrics, family=family, **tags)


def test_verdict_pairs_each_seed_with_upsampling_to_the_same_size_and_checks_the_bar():
    """Two new-language tasks x two seeds: the generated arm gains +4 / +6 exact-match and
    +1 / +2 slot-F1 points; the 300-utterance upsample arm is its partner, not the 200 one."""
    from experiments.compare import choose_on_dev, report_markdown, verdict_section

    records = []
    for task in ("aa", "bb"):
        for seed in (1, 2):
            gain = 0.04 if task == "aa" else 0.06
            slot_gain = 0.01 if task == "aa" else 0.02
            records += [_record(task, "upsample", seed, 200, 0.10, 0.10, 0.10),
                        _record(task, "upsample-3x", seed, 300, 0.50 + seed / 100, 0.60, 0.70),
                        _record(task, "upgen", seed, 300, 0.50 + seed / 100 + gain,
                                0.60 + slot_gain, 0.70)]
    assert choose_on_dev(records, ["aa", "bb"]) == ("upgen", pytest.approx(5.0))
    section = "\n".join(verdict_section(records, ["aa", "bb"], "dev", "upgen", "Named.",
                                         ISSUE_17_BAR))
    assert "| aa | 2 | upsample-3x | 51.5 ± 0.5 → 55.5 ± 0.5 (+4.0 ± 0.0)" in section
    assert "exact match +5.0 ± 0.0, slot F1 +1.5 ± 0.0 points" in section
    assert "is **not met**" in section  # the slot gain is under 2 points
    report = report_markdown("study", records, split="dev")
    assert report.index("## Verdict on dev: upgen") < report.index("## Seeds per cell")
    assert "test" not in report.replace("no test number", "")
    with pytest.raises(LookupError, match="verdict arm 'nope'"):
        report_markdown("study", records, split="dev", verdict_arm="nope")
    # a task with cut intents is judged by their intent accuracy
    cut = [_record("cut", "upsample-3x", 1, 300, 0.5, 0.5, 0.5, focus_intent=0.40),
           _record("cut", "upgen", 1, 300, 0.5, 0.5, 0.5, focus_intent=0.47)]
    section = "\n".join(verdict_section(cut, ["cut"], "dev", "upgen", "Named.", ISSUE_17_BAR))
    assert "Cut intents, gain in their intent accuracy: +7.0" in section and "**met**" in section


def test_markdown_table_marks_best_per_column_and_std_err():
    cells = {("a", "t1"): summarize([0.5, 0.7]), ("b", "t1"): summarize([0.4]),
             ("b", "t2"): summarize([0.9])}
    table = markdown_table(cells, ["a", "b"], ["t1", "t2"])
    assert table.splitlines()[2] == "| a | **60.00 ± 10.00** | – |"
    assert table.splitlines()[3] == "| b | 40.00 | **90.00** |"
    lower = markdown_table(cells, ["a", "b"], ["t1"], higher_is_better=False)
    assert "| b | **40.00** |" in lower


def test_grid_factor_tables_average_the_other_factors_within_each_seed():
    from experiments.compare import RunRecord, report_markdown

    def record(arm, seed, intent_acc, reward=None, sampler=None):
        return RunRecord(task="de", language="de", arm=arm, seed=seed, sampler=sampler,
                         reward=reward, embeddings="random",
                         metrics={"test/de/intent_acc": intent_acc, "test/de/slot_f1": 0.5})

    records = [record("none", "1", 0.40), record("none", "2", 0.50)]
    for seed, shift in (("1", 0.0), ("2", 0.1)):
        for reward, base in (("token", 0.6), ("rollout", 0.7)):
            for sampler, offset in (("top-k", 0.0), ("top-p", 0.2)):
                records.append(record(f"gan-{reward}-{sampler}-random", seed,
                                      base + offset + shift, reward, sampler))
    report = report_markdown("grid", records)
    assert "### reward, test: intent accuracy (%)" in report
    assert "### embeddings" not in report  # one level only: no table
    # token: seed 1 mean (0.6 + 0.8) / 2 = 0.7, seed 2 0.8 -> 75.00 ± 5.00
    assert "| token | 75.00 ± 5.00 |" in report
    assert "| rollout | **85.00 ± 5.00** |" in report
    assert "| none | 45.00 ± 5.00 |" in report


def test_runs_of_one_study_in_several_stores_are_merged_and_duplicates_refused(monkeypatch):
    from experiments import compare

    def record(seed):
        return compare.RunRecord(task="de", language="de", arm="none", seed=seed, sampler=None,
                                 metrics={"test/de/intent_acc": 0.5})

    stores = {"sqlite:///a.db": [record("1"), record("2")], "sqlite:///b.db": [record("3")],
              "sqlite:///c.db": [record("2")]}
    monkeypatch.setattr(compare.runs, "collect", lambda experiment, uri: stores[uri])
    merged = compare.collect_stores("study", ["sqlite:///b.db", "sqlite:///a.db"])
    assert [r.seed for r in merged] == ["1", "2", "3"]
    with pytest.raises(LookupError, match="de/none/2"):
        compare.collect_stores("study", ["sqlite:///a.db", "sqlite:///c.db"])


def test_upsample_plus_generated_arms_have_the_stated_sizes_and_meet_upsampling_at_equal_size(
        study_file, tmp_path):
    import mlflow

    from experiments.runner import StudyConfigError

    raw = yaml.safe_load(study_file.read_text())
    raw["arms"] |= {
        "upsample-2x": {"augment": "upsample", "scale": 2},
        "upsample-4x": {"augment": "upsample", "scale": 4},
        "delex-source-3x": {"augment": "generator", "sampler": "temp", "scale": 3,
                            "source_aware": True, "gan": {"delexicalised": True}},
        "upsample-delex-source-1x": {"augment": "generator", "sampler": "temp",
                                     "upsample_scale": 1, "source_aware": True,
                                     "gan": {"delexicalised": True}}}
    raw["profiles"]["sizes"] = {"seeds": [1], "only_tasks": ["xx-50"],
                                "only_arms": ["none", "upsample-2x", "upsample-4x",
                                              "delex-source-3x", "upsample-delex-source-1x"]}
    study_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    study = load_study(study_file, "sizes")
    tracking_uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert run_study(study, tracking_uri=tracking_uri, work_dir=tmp_path / "work") == {
        "ran": 5, "skipped": 0}
    mlflow.set_tracking_uri(tracking_uri)
    runs = {run.data.tags["arm"]: run.data for run in mlflow.search_runs(
        experiment_names=["micro-study"], output_format="list")}
    real = 18  # half of the 36 xx train utterances (task xx-50)
    assert runs["none"].metrics["data/target_train"] == real
    sizes = {arm: (data.metrics["data/upsampled"], data.metrics["data/synthetic"],
                   data.metrics["data/target_total"]) for arm, data in runs.items()
             if arm != "none"}
    assert sizes["upsample-2x"] == (2 * real, 2 * real, 3 * real)
    assert sizes["upsample-4x"] == (4 * real, 4 * real, 5 * real)
    assert sizes["delex-source-3x"] == (0, 3 * real, 4 * real)
    assert sizes["upsample-delex-source-1x"] == (real, real, 3 * real)
    generated = runs["upsample-delex-source-1x"]
    assert generated.tags["generator_data"] == "source+target"
    assert generated.tags["slot_values"] == "lexicon" and generated.tags["upsample_scale"] == "1"

    out = tmp_path / "report"
    report = build_report("micro-study", tracking_uri, out, log_to_mlflow=False).read_text()
    assert "## test: exact match (%) gain over upsampling to the same size (points)" in report
    gains = report.split("## test: exact match (%) gain over upsampling")[1].split("\n## ")[0]
    assert "| upsample-delex-source-1x |" in gains  # met upsample-2x (the same 3 x 18)
    assert "delex-source-3x" not in gains  # 4 x 18: no upsample arm of that size
    assert (out / "exact_match_vs_scale.png").stat().st_size > 0
    assert "| upsample-delex-source-1x |" in report.split("## Synthetic sets")[1]
    assert "copy_rate" in report
    # the dev-only report (for choosing settings) holds no test number; its verdict judges
    # the one arm with an upsample partner of its size
    dev_report = build_report("micro-study", tracking_uri, tmp_path / "dev", log_to_mlflow=False,
                              split="dev").read_text()
    assert "## Verdict on dev: upsample-delex-source-1x" in dev_report
    # judged by the bar the runs logged with their study config, on one seed: a pipeline check
    assert "on one seed this is a pipeline check, not a verdict (the bar, ≥ 3 and ≥ 2" in dev_report
    assert "test" not in dev_report.replace("no test number", "")
    named = build_report("micro-study", tracking_uri, tmp_path / "named", log_to_mlflow=False,
                         verdict_arm="delex-source-3x").read_text()
    assert "no upsample arm of the same total size" in named

    for arms, message in (({"bad": {"augment": "upsample", "source_aware": True}},
                           "arms.bad: upsample_scale and source_aware"),
                          ({"a+b": {"augment": "upsample"}}, "arms.a\\+b: a name of letters"),
                          ({"bad": {"augment": "upsample", "scale": -1}},
                           "arms.bad.scale: must be a number >= 0")):
        study_file.write_text(yaml.safe_dump(raw | {"arms": raw["arms"] | arms}, sort_keys=False))
        with pytest.raises(StudyConfigError, match=message):
            load_study(study_file, "sizes")


def test_catalogue_arms_refill_and_fill_generated_carriers_at_the_stated_sizes(study_file,
                                                                              tmp_path):
    import mlflow

    raw = yaml.safe_load(study_file.read_text())
    # values nobody annotated: the catalogue holds cities and genres the xx data never has
    (study_file.parent / "xx.catalogue.tsv").write_text(
        "# slot_type<TAB>value\ncity\tnordby\ncity\tsudvik\ngenre\ttango\ngenre\tfado\n")
    raw["tasks"][0]["catalogue"] = {"name": "hand-written", "file": "xx.catalogue.tsv"}
    raw["arms"] |= {
        "upsample-2x": {"augment": "upsample", "scale": 2},
        "refill-2x": {"augment": "refill", "scale": 2, "catalogue_share": 1.0},
        "refill-own-2x": {"augment": "refill", "scale": 2, "catalogue_share": 0.0},
        "upgen-cat-1x": {"augment": "generator", "sampler": "temp", "scale": 1,
                         "upsample_scale": 1, "catalogue_share": 1.0,
                         "gan": {"delexicalised": True, "adversarial_steps": 0}}}
    raw["profiles"]["catalogue"] = {"seeds": [1], "only_tasks": ["xx-50"],
                                    "only_arms": ["upsample-2x", "refill-2x", "refill-own-2x",
                                                  "upgen-cat-1x"]}
    study_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    study = load_study(study_file, "catalogue")
    tracking_uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert run_study(study, tracking_uri=tracking_uri, work_dir=tmp_path / "work") == {
        "ran": 4, "skipped": 0}
    mlflow.set_tracking_uri(tracking_uri)
    runs = {run.data.tags["arm"]: run.data for run in mlflow.search_runs(
        experiment_names=["micro-study"], output_format="list")}
    real = 18
    for arm in ("upsample-2x", "refill-2x", "refill-own-2x", "upgen-cat-1x"):
        assert runs[arm].metrics["data/target_total"] == 3 * real, arm
        assert runs[arm].metrics["time/cpu_seconds"] > 0  # what the run cost, beside its wall time
    assert runs["refill-2x"].metrics["data/synthetic"] == 2 * real
    assert runs["refill-2x"].metrics["data/upsampled"] == 0
    assert runs["upgen-cat-1x"].metrics["data/upsampled"] == real
    for arm in ("refill-2x", "upgen-cat-1x"):
        tags, metrics = runs[arm].tags, runs[arm].metrics
        assert tags["catalogue"] == "hand-written" and tags["catalogue_share"] == "1"
        assert metrics["catalogue/values"] == 4 and metrics["catalogue/slot_types"] == 2
    # share 0 redraws the target's own values: no catalogue, and no catalogue tag
    assert "catalogue" not in runs["refill-own-2x"].tags
    assert runs["refill-own-2x"].tags["catalogue_share"] == "0"
    assert "catalogue" not in runs["upsample-2x"].tags


def test_an_empty_catalogue_leaves_generated_carriers_the_targets_own_values(study_file,
                                                                            tmp_path,
                                                                            monkeypatch):
    """ja's cross-lingual catalogue is empty (no English value matches verbatim): its generated
    catalogue arms fill from its own values, as its refill arms do, instead of stopping."""
    import mlflow

    from experiments import runner
    from gan.lexicon import SlotLexicon

    raw = yaml.safe_load(study_file.read_text())
    (study_file.parent / "xx.catalogue.tsv").write_text("city\tnordby\n")
    raw["tasks"][0]["catalogue"] = {"name": "empty", "file": "xx.catalogue.tsv"}
    raw["arms"] |= {"upgen-cat-1x": {"augment": "generator", "sampler": "temp", "scale": 1,
                                     "upsample_scale": 1, "catalogue_share": 1.0,
                                     "gan": {"delexicalised": True, "adversarial_steps": 0}}}
    raw["profiles"]["catalogue"] = {"seeds": [1], "only_tasks": ["xx-50"],
                                    "only_arms": ["upgen-cat-1x"]}
    study_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    monkeypatch.setattr(runner, "task_catalogue", lambda *_: (SlotLexicon({"xx": {}}), {}))
    tracking_uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert run_study(load_study(study_file, "catalogue"), tracking_uri=tracking_uri,
                     work_dir=tmp_path / "work") == {"ran": 1, "skipped": 0}
    mlflow.set_tracking_uri(tracking_uri)
    (run,) = mlflow.search_runs(experiment_names=["micro-study"], output_format="list")
    assert run.data.metrics["data/synthetic"] == 18


@pytest.mark.parametrize("change, message", [
    ({"tasks": 0, "catalogue": {"name": "leak", "file": "xx.test.jsonl"}},
     "is the task's test file; a catalogue never holds a value taken from a test file"),
    ({"tasks": 0, "catalogue": {"name": "two", "file": "a.tsv", "values_of": "b.jsonl"}},
     "give exactly one of values_of, cross_lingual, file"),
    ({"arms": {"bad": {"augment": "upsample", "catalogue_share": 0.5}}},
     "arms.bad.catalogue_share: an option of refill and generator arms"),
    ({"arms": {"bad": {"augment": "refill", "scale": 2}}}, "arms.bad: a refill arm needs"),
    ({"arms": {"bad": {"augment": "refill", "catalogue_share": 1.5}}},
     "arms.bad.catalogue_share: a number in 0..1"),
    ({"arms": {"bad": {"augment": "refill", "catalogue_share": 0.5}}},
     "arms.bad.catalogue_share: task xx-50 has no catalogue"),
    ({"tasks": 0, "catalogue": {"name": "ok", "file": "a.tsv"},
      "arms": {"bad": {"augment": "generator", "sampler": "temp", "catalogue_share": 0.5}}},
     "only a delexicalised generator"),
])
def test_catalogue_settings_are_checked_before_any_run(study_file, change, message):
    from experiments.runner import StudyConfigError

    raw = yaml.safe_load(study_file.read_text())
    change = dict(change)
    if "tasks" in change:
        raw["tasks"][change.pop("tasks")]["catalogue"] = change.pop("catalogue")
    raw["arms"] |= change.get("arms", {})
    raw["profiles"]["only"] = {"only_tasks": ["xx-50"]}
    study_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(StudyConfigError, match=re.escape(message)):
        load_study(study_file, "only")


def test_evaluation_metrics_class_values_as_seen_by_the_target_train_set_alone():
    from experiments.runner import TaskData, evaluation_metrics

    class Perfect:
        def predict(self, utterances):
            return list(utterances)

    def weather(city, language="xx"):
        return Utterance(("wetter", "im", city), ("O", "O", "B-city"), "get_weather", language)

    data = TaskData(source_train=[weather("oslo", "en")], source_dev=[],
                    target_train=[weather("rom")], dev=[weather("rom")],
                    test=[weather("Rom"), weather("oslo"), weather("lima")], focus_intents=())
    metrics, markdown = evaluation_metrics(Perfect(), data)
    # 'oslo' is in the source language's train set only: unseen for the target
    assert (metrics["test/xx/gold_slots_seen"], metrics["test/xx/gold_slots_unseen"]) == (1, 2)
    assert metrics["test/xx/slot_f1_unseen"] == 1.0
    assert metrics["test/xx/exact_match_unseen_utterances"] == 1.0
    assert metrics["dev/xx/n_unseen_utterances"] == 0 and "dev/xx/slot_f1_unseen" not in metrics
    assert "Seen vs unseen slot values" in markdown


def test_a_malformed_catalogue_bar_is_a_study_config_error(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(MICRO_STUDY | {"catalogue_bar": {"slot_f1_unseen": "eight"}}))
    with pytest.raises(StudyConfigError, match="catalogue_bar.slot_f1_unseen: expected a number"):
        load_study(bad)


def test_coverage_counts_dev_values_unseen_in_train_and_those_the_catalogue_holds(study_file):
    from experiments.coverage import catalogue_coverage, markdown

    raw = yaml.safe_load(study_file.read_text())
    (study_file.parent / "xx.catalogue.tsv").write_text("city\trom\ncity\tparys\n")
    raw["tasks"][1]["catalogue"] = {"name": "cities", "file": "xx.catalogue.tsv"}
    raw["tasks"][1]["cut"] = {"intents": ["get_weather"], "keep": 1}  # one city left in train
    study_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    study = load_study(study_file, None, seeds=[1])
    task = next(task for task in study.tasks if task.catalogue is not None)
    data = task_data(study, task, 1)
    train_cities = {u.tokens[-1] for u in data.target_train if u.intent == "get_weather"}
    dev_cities = [u.tokens[-1] for u in data.dev if u.intent == "get_weather"]  # the cut intent
    unseen = [city for city in dev_cities if city not in train_cities]
    coverage = catalogue_coverage(study, task, 1)
    assert (coverage.spans, coverage.unseen) == (len(dev_cities), len(unseen)) and unseen
    assert coverage.held == sum(city in ("rom", "parys") for city in unseen)
    assert coverage.catalogue_values == 2 and coverage.catalogue_types == 1
    share = 100 * len(unseen) / len(dev_cities)
    assert f"| xx-cut | {len(dev_cities)} | {share:.1f} % |" in markdown([coverage])
