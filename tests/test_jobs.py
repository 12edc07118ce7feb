"""``nlu.jobs``: one meaning of ``sample`` in the three jobs, the shared tracking section, the
tracked run, ``base:`` YAMLs and the keys older dialects used."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml

from nlu.dataset import DataSpec
from nlu.formats import read_utterances
from nlu.jobs import (RUN_ID_FILENAME, JobConfigError, TrackedRun, TrackingConfig, data_spec,
                      keep_sample, read_data, read_yaml)
from shared_data import SHARED_DATA

XSID = SHARED_DATA / "xsid/xSID-0.7"
REPOSITORY = Path(__file__).resolve().parents[1]
SPEC = DataSpec(path="de.valid.conll", format="conll", language="de", sample=60)


def test_sample_keeps_about_n_utterances_stratified_by_intent():
    every = read_utterances(XSID / "de.valid.conll", "conll")
    kept = keep_sample(every, 60, seed=3)
    shares = Counter(u.intent for u in every)
    assert abs(len(kept) - 60) <= len(shares) and kept == keep_sample(every, 60, seed=3)
    kept_shares = Counter(u.intent for u in kept)
    assert set(kept_shares) == set(shares)  # every intent keeps at least one
    for intent, count in shares.items():
        assert abs(kept_shares[intent] - 60 * count / len(every)) <= 1.5
    assert keep_sample(every, None, seed=3) == every and keep_sample(every, 10_000, seed=3) == every


def contents(utterances):
    """What an utterance says, not where its file was found (roots may differ by a link)."""
    return [(u.id, u.tokens, u.tags, u.intent, u.language) for u in utterances]


def test_the_three_jobs_read_one_spec_to_the_same_utterances(tmp_path):
    """The GAN job's source, the bootstrap job's source and a study's source: one spec,
    one seed, one set of utterances (``sample`` meant a uniform draw in the bootstrap job)."""
    from experiments.runner import Study, task_data, Task
    from gan.training import load_job
    from multilingual.bootstrap import load_data, parse_config

    expected = contents(read_data(SPEC, XSID, seed=7))

    gan_yaml = tmp_path / "gan.yaml"
    gan_yaml.write_text(yaml.safe_dump({
        "data": {"root": str(XSID), "train": "it.valid.conll", "format": "conll",
                 "language": "it", "source": {"path": SPEC.path, "format": "conll",
                                              "language": "de", "sample": 60}},
        "gan": {"seed": 7}}))
    gan_train, _ = load_job(gan_yaml).read()
    assert contents(gan_train[:len(expected)]) == expected

    bootstrap = parse_config({
        "model": {}, "regime": "mixed", "run_dir": str(tmp_path / "run"),
        "data": {"root": str(XSID), "source": [{"path": SPEC.path, "format": "conll",
                                                 "language": "de", "sample": 60}],
                 "target_language": "it", "target_train": ["it.valid.conll"],
                 "test": ["it.test.conll"], "seed": 7}})
    assert contents(load_data(bootstrap.data).source) == expected

    study = Study(name="s", experiment="s", data_root=XSID, tasks=[], arms=[], seeds=[7],
                  samplers={}, nlu={}, gan={}, scale=1.0, gate={}, source_train=SPEC)
    task = Task(name="it", language="it", train=DataSpec("it.valid.conll"), dev=None,
                test=DataSpec("it.test.conll"), dev_fraction=0.25)
    assert contents(task_data(study, task, seed=7).source_train) == expected


def test_a_data_spec_is_checked_field_by_field():
    assert data_spec("a.conll", "data.train") == DataSpec(path="a.conll")
    for value, field in (({"path": "a", "sample": 0}, "data.train.sample"),
                         ({"path": "a", "sample": True}, "data.train.sample"),
                         ({"path": ["a"]}, "data.train.path"),
                         ({"path": "a", "labels": 3}, "data.train.labels"),
                         ({"path": "a", "bogus": 1}, "data.train")):
        with pytest.raises(JobConfigError) as caught:
            data_spec(value, "data.train")
        assert caught.value.field == field


def test_the_tracking_section_is_validated_once():
    assert TrackingConfig.from_mapping(None, default_experiment="x") == TrackingConfig("x")
    for raw, field in (({"alias": "prod"}, "tracking.alias"),
                       ({"experiment": ["a"]}, "tracking.experiment"),
                       ({"experiment": ""}, "tracking.experiment"),
                       ({"registered": "x"}, "tracking")):
        with pytest.raises(JobConfigError) as caught:
            TrackingConfig.from_mapping(raw, default_experiment="x")
        assert caught.value.field == field


def test_a_tracked_run_records_its_id_resumes_it_and_ends_failed_on_error(tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    from nlu.rundir import RunDirBusyError, RunDirLock

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tracking = TrackingConfig("jobs-test", run_name="first")
    with pytest.raises(RuntimeError):
        with TrackedRun(tmp_path / "run", tracking, tracking_uri=uri, tags={"kind": "t"}) as run:
            with pytest.raises(RunDirBusyError):  # the folder is this run's
                with RunDirLock(tmp_path / "run"):
                    pass
            raise RuntimeError("training broke")
    assert mlflow.active_run() is None
    stored = yaml.safe_load((tmp_path / "run" / RUN_ID_FILENAME).read_text())
    assert stored == {"run_id": run.run_id, "tracking_uri": uri}
    assert MlflowClient(uri).get_run(run.run_id).info.status == "FAILED"

    with TrackedRun(tmp_path / "run", tracking, tracking_uri=uri, resume=True) as resumed:
        assert resumed.resumed and resumed.run_id == run.run_id
    assert MlflowClient(uri).get_run(run.run_id).info.status == "FINISHED"
    with RunDirLock(tmp_path / "run"):  # released
        pass
    with pytest.raises(JobConfigError, match="pass that --tracking-uri"):
        with TrackedRun(tmp_path / "run", tracking, tracking_uri=f"sqlite:///{tmp_path}/b.db",
                        resume=True):
            pass


def test_a_yaml_states_only_its_differences_from_its_base(tmp_path):
    (tmp_path / "base.yaml").write_text("a: {x: 1, y: [1, 2]}\nb: 2\n")
    (tmp_path / "child.yaml").write_text("base: base.yaml\na: {y: [3]}\nc: 4\n")
    assert read_yaml(tmp_path / "child.yaml") == {"a": {"x": 1, "y": [3]}, "b": 2, "c": 4}
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\n")
    with pytest.raises(JobConfigError, match="levels of base"):
        read_yaml(tmp_path / "loop.yaml")
    with pytest.raises(JobConfigError, match="cannot read the config"):
        read_yaml(tmp_path / "missing.yaml")


def test_keys_of_the_older_dialects_name_their_new_place(tmp_path):
    from experiments.runner import StudyConfigError, load_study
    from gan.training import load_job

    job = tmp_path / "gan.yaml"
    job.write_text(yaml.safe_dump({"data": {"train": "x.conll"}, "gan": {"alias": "prod"}}))
    with pytest.raises(JobConfigError, match="gan.alias: this key is now 'tracking.alias'"):
        load_job(job)
    study = yaml.safe_load((REPOSITORY / "experiments/study_lowres.yaml").read_text())
    study["base"] = str(REPOSITORY / "experiments/base_study.yaml")
    for old, new in (("data_root", "data.root"), ("experiment", "tracking.experiment"),
                     ("source", "data.source")):
        (tmp_path / "study.yaml").write_text(yaml.safe_dump(study | {old: "x"}))
        with pytest.raises(StudyConfigError, match=f"{old}: this key is now '{new}'"):
            load_study(tmp_path / "study.yaml")


def test_no_shipped_yaml_uses_shallow_merge_keys():
    for path in (REPOSITORY / "experiments").glob("*.yaml"):
        assert "<<:" not in path.read_text(), path.name


def test_gan_job_profiles_state_only_their_differences():
    from gan.training import load_job

    path = REPOSITORY / "experiments/gan_xsid_de.yaml"
    rollout, mle = load_job(path), load_job(path, "mle")
    assert (rollout.config.reward, rollout.config.adversarial_steps) == ("rollout", 100)
    assert mle.config.adversarial_steps == 0 and mle.tracking.alias == "mle"
    assert mle.config.hidden_dim == rollout.config.hidden_dim and mle.heldout == rollout.heldout
    with pytest.raises(JobConfigError, match="no profile 'bogus'"):
        load_job(path, "bogus")


def test_a_study_with_a_malformed_verdict_bar_is_refused_when_it_loads(tmp_path):
    from experiments.runner import StudyConfigError, load_study

    study = tmp_path / "study.yaml"
    study.write_text(yaml.safe_dump({
        "base": str(REPOSITORY / "experiments/study_lowres.yaml"),
        "data": {"root": str(SHARED_DATA)}, "verdict_bar": {"new_language": {"semer": 3}}}))
    with pytest.raises(StudyConfigError, match="verdict_bar.new_language.semer"):
        load_study(study)


def test_new_job_flags_refuse_bad_values_in_one_line_with_exit_2(tmp_path, capsys):
    from service.cli import main

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert main(["gan", "train", "--config", str(REPOSITORY / "experiments/gan_xsid_de.yaml"),
                 "--profile", "bogus", "--tracking-uri", uri]) == 2
    assert "no profile 'bogus' (has: mle, token, sentence, source, catalogue)" in capsys.readouterr().err
    assert main(["experiment", "export", "--experiment", "nowhere", "--tracking-uri", uri,
                 "--out", str(tmp_path / "runs.jsonl")]) == 2
    assert "--experiment: no MLflow experiment 'nowhere'" in capsys.readouterr().err
    assert not (tmp_path / "runs.jsonl").exists()
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"tags": {"task": "x"}}\n')
    assert main(["experiment", "import", str(broken), "--tracking-uri", uri]) == 2
    assert f"{broken}:1: not an exported run" in capsys.readouterr().err
    assert main(["experiment", "import", str(tmp_path / "missing.jsonl"),
                 "--tracking-uri", uri]) == 2
