"""A catalogue named in the `gan train` job YAML: checked at job start, kept with the trained
generator, and the default catalogue of `augment` (library, CLI and gRPC) until a call brings
its own. Tiny data (40 German xSID utterances) and tiny models."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import json
import shutil
from pathlib import Path

import pytest
import yaml

from gan.augment import Augmenter
from gan.lexicon import SlotLexicon
from gan.sampling import SamplingConfig
from gan.training import load_job, train_job
from nlu.formats import read_utterances, write_utterances
from nlu.jobs import JobConfigError
from service.cli import main
from shared_data import SHARED_DATA
from test_gan_training import tiny_config, train_gan

XSID_DE_VALID = SHARED_DATA / "xsid/xSID-0.7/de.valid.conll"
EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"
KATALOG = ("Katalog", "Wert")  # a value the training data does not have

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def german():
    return read_utterances(XSID_DE_VALID, "conll")[:40]


@pytest.fixture(scope="module")
def listed(german) -> list[str]:
    """Two slot types of the training data, the ones the test catalogues hold."""
    return sorted(SlotLexicon.build(german).values["de"])[:2]


def write_job(folder: Path, german, *, catalogue: dict | None, delexicalised: bool = True,
              **gan) -> Path:
    """A job YAML in ``folder/jobs`` over ``folder/jobs/data/train.conll``."""
    data = folder / "jobs" / "data"
    data.mkdir(parents=True, exist_ok=True)
    write_utterances(german, data / "train.conll", "conll")
    config = dataclasses.asdict(tiny_config(adversarial_steps=0, eval_samples=0,
                                            delexicalised=delexicalised, **gan))
    job = {"data": {"root": "data", "train": "train.conll", "format": "conll", "language": "de"},
           "run_dir": str(folder / "run"), "gan": config,
           "tracking": {"experiment": "job-catalogue", "registered_name": "job-catalogue",
                        "alias": "prod"}}
    if catalogue is not None:
        job["catalogue"] = catalogue
    path = folder / "jobs" / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def spans(utterances):
    for utterance in utterances:
        for span in utterance.spans:
            yield span.label, utterance.tokens[span.start:span.end]


@pytest.mark.parametrize("section, delexicalised, message", [
    ({"file": "catalogue.tsv"}, False, "catalogue: only a delexicalised generator"),
    ({"file": "catalogue.tsv", "share": 1.5}, True, "catalogue.share: must be a number in 0..1"),
    ({"file": "catalogue.tsv", "share": "half"}, True, "catalogue.share: must be a number"),
    ({"file": "missing.tsv"}, True, "catalogue.file: no such file or folder: missing.tsv"),
    ({"share": 0.5}, True, "catalogue.file: expected a path"),
    ({"file": "catalogue.tsv", "values": 3}, True, "catalogue: unknown key(s) values"),
])
def test_a_bad_catalogue_section_is_a_job_error_naming_the_yaml_and_the_key(
        german, tmp_path, section, delexicalised, message):
    path = write_job(tmp_path, german[:5], catalogue=section, delexicalised=delexicalised)
    (path.parent / "catalogue.tsv").write_text("location\tWien\n", encoding="utf-8")
    with pytest.raises(JobConfigError) as raised:
        load_job(path)
    assert str(raised.value).startswith(f"{path}: {message}")


def test_the_catalogue_file_is_relative_to_the_yaml_and_its_share_defaults_to_all(
        german, tmp_path):
    path = write_job(tmp_path, german[:5], catalogue={"file": "values/de.tsv"})
    (path.parent / "values").mkdir()
    (path.parent / "values/de.tsv").write_text("location\tWien\n", encoding="utf-8")
    job = load_job(path)
    assert job.catalogue.file == path.parent / "values/de.tsv" and job.catalogue.share == 1.0
    # --delexicalised (a change to the gan section) makes the section valid too
    plain = write_job(tmp_path / "plain", german[:5], catalogue={"file": "../../jobs/values/de.tsv"},
                      delexicalised=False)
    assert load_job(plain, changes={"delexicalised": True}).catalogue.share == 1.0


def test_the_shipped_catalogue_profile_names_the_example_catalogue_of_the_german_slot_types():
    job = load_job(EXPERIMENTS / "gan_xsid_de.yaml", "catalogue")
    assert job.config.delexicalised and job.source is not None and job.catalogue.share == 1.0
    assert job.catalogue.file.resolve() == (EXPERIMENTS / "data/examples/de.catalogue.tsv"
                                            ).resolve()
    train = read_utterances(XSID_DE_VALID, "conll")  # the job's target data
    catalogue, report = job.read_catalogue(train)
    assert report.values == catalogue.size() > 30 and list(catalogue.values) == ["de"]


def test_gan_train_refuses_an_unknown_slot_type_naming_file_and_line_before_training(
        german, tmp_path, capsys):
    path = write_job(tmp_path, german, catalogue={"file": "catalogue.tsv"})
    catalogue = path.parent / "catalogue.tsv"
    catalogue.write_text("# values\nlocation\tWien\ncity\tGraz\n", encoding="utf-8")
    assert main(["gan", "train", "--config", str(path),
                 "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]) == 2
    assert (f"{catalogue}:3: slot_type: unknown slot type 'city'"
            in capsys.readouterr().err)
    assert not (tmp_path / "run").exists()  # nothing trained, nothing written
    # the YAML's own errors are exit 2 too, before any data loads
    lexicalised = write_job(tmp_path / "lex", german, catalogue={"file": "catalogue.tsv"},
                            delexicalised=False)
    shutil.copy(catalogue, lexicalised.parent / "catalogue.tsv")
    assert main(["gan", "train", "--config", str(lexicalised)]) == 2
    assert "catalogue: only a delexicalised generator" in capsys.readouterr().err


def test_a_line_without_a_language_needs_the_jobs_language(german, tmp_path):
    from gan.catalogue import CatalogueError

    path = write_job(tmp_path, german, catalogue={"file": "catalogue.tsv"})
    raw = yaml.safe_load(path.read_text())
    del raw["data"]["language"]
    path.write_text(yaml.safe_dump(raw))
    (path.parent / "catalogue.tsv").write_text("location\tWien\tde\nlocation\tGraz\n",
                                               encoding="utf-8")
    with pytest.raises(CatalogueError, match=r"catalogue.tsv:2: language: no language"):
        train_job(path, progress_bar=False)


@pytest.fixture(scope="module")
def trained(german, listed, tmp_path_factory) -> dict:
    """`gan train` of a job whose catalogue holds ``KATALOG`` for the listed slot types (one
    line twice), kept at share 1: every span of those types takes a catalogue value. The
    job's YAML is not delexicalised; --delexicalised makes it so."""
    root = tmp_path_factory.mktemp("trained")
    path = write_job(root, german, catalogue={"file": "catalogue.tsv", "share": 1},
                     delexicalised=False)
    (path.parent / "catalogue.tsv").write_text(
        "".join(f"{slot}\t{' '.join(KATALOG)}\n" for slot in listed + listed[:1]),
        encoding="utf-8")
    uri = f"sqlite:///{root}/mlflow.db"
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        code = main(["gan", "train", "--config", str(path), "--delexicalised",
                     "--tracking-uri", uri])
    return {"code": code, "stderr": stderr.getvalue(), "run": root / "run", "uri": uri}


def test_gan_train_keeps_the_catalogue_with_the_generator_and_logs_its_size(trained, listed):
    from mlflow.tracking import MlflowClient

    from nlu.jobs import RUN_ID_FILENAME

    assert trained["code"] == 0
    assert "catalogue.tsv: catalogue: 2 values, 1 duplicates" in trained["stderr"]
    kept = json.loads((trained["run"] / "generator/catalogue.json").read_text())
    assert kept["share"] == 1 and sorted(kept["values"]["de"]) == sorted(listed)
    run_id = json.loads((trained["run"] / RUN_ID_FILENAME).read_text())["run_id"]
    params = MlflowClient(trained["uri"]).get_run(run_id).data.params
    assert params["catalogue.values"] == "2" and params["catalogue.share"] == "1.0"
    # the registered generator (what `augment --generator name@alias` and gRPC load) keeps it
    assert Augmenter.load("job-catalogue@prod", trained["uri"]).catalogue.size() == 2


@pytest.fixture(scope="module")
def kept(trained) -> Path:
    """The trained generator's folder."""
    return trained["run"] / "generator"


def test_from_dir_loads_the_kept_catalogue_and_generate_fills_from_it_by_default(kept, listed):
    augmenter = Augmenter.from_dir(kept)
    assert augmenter.catalogue == SlotLexicon({"de": {slot: [KATALOG] for slot in listed}})
    assert augmenter.catalogue_share == 1.0
    found = list(spans(augmenter.generate(120, sampling=SamplingConfig(), seed=1)))
    assert any(label in listed for label, _ in found)
    for label, value in found:
        assert (value == KATALOG) == (label in listed)
    # a share alone applies to the kept catalogue: at 0 the own values fill every span
    own = augmenter.lexicon.values["de"]
    assert all(value in own[label] for label, value in spans(augmenter.generate(
        120, sampling=SamplingConfig(), seed=1, catalogue_share=0.0)))


def test_a_calls_own_catalogue_replaces_the_kept_one(kept, listed):
    augmenter = Augmenter.from_dir(kept)
    own_catalogue = SlotLexicon({"de": {listed[0]: [("Eigener",)]}})
    found = list(spans(augmenter.generate(120, sampling=SamplingConfig(), seed=1,
                                          catalogue=own_catalogue, catalogue_share=1.0)))
    assert KATALOG not in {value for _, value in found}
    assert {value for label, value in found if label == listed[0]} == {("Eigener",)}


def test_a_kept_catalogue_without_a_value_in_the_asked_language_leaves_the_own_values(kept):
    augmenter = Augmenter.from_dir(kept)
    english_only = Augmenter(augmenter.config, augmenter.vocab, augmenter.generator,
                             augmenter.discriminator, augmenter.info, augmenter.lexicon,
                             catalogue=SlotLexicon({"en": {"location": [("Leeds",)]}}))
    own = augmenter.lexicon.values["de"]
    assert all(value in own[label] for label, value in spans(english_only.generate(
        60, sampling=SamplingConfig(), seed=2, language="de")))


def test_an_old_generator_folder_without_catalogue_json_still_loads(kept, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(kept, old)
    (old / "catalogue.json").unlink()
    augmenter = Augmenter.from_dir(old)
    assert augmenter.catalogue is None
    own = augmenter.lexicon.values["de"]
    assert all(value in own[label] for label, value in spans(augmenter.generate(
        60, sampling=SamplingConfig(), seed=1)))
    augmenter.save(tmp_path / "again")  # and saves without one
    assert not (tmp_path / "again/catalogue.json").exists()


def test_a_lexicalised_generator_is_refused_a_catalogue_before_it_trains(kept, german,
                                                                         tmp_path):
    augmenter = Augmenter.from_dir(kept)
    lexicalised = dataclasses.replace(augmenter.config, delexicalised=False)
    with pytest.raises(ValueError, match="catalogue: only a delexicalised generator"):
        train_gan(german, lexicalised, run_dir=tmp_path / "run", catalogue=augmenter.catalogue)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ValueError, match="catalogue: only a delexicalised generator keeps"):
        Augmenter(lexicalised, augmenter.vocab, augmenter.generator, augmenter.discriminator,
                  augmenter.info, catalogue=augmenter.catalogue)


def test_augment_cli_uses_the_kept_catalogue_unless_given_one(kept, listed, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    args = ["augment", "--generator", str(kept), "--count", "60", "--seed", "4",
            "--out", str(out)]
    assert main(args) == 0
    assert "catalogue: the generator's own, 2 values, share 1" in capsys.readouterr().err
    written = list(spans(read_utterances(out)))
    assert any(value == KATALOG for _, value in written)
    catalogue = tmp_path / "mine.tsv"
    catalogue.write_text(f"{listed[0]}\tEigener\n", encoding="utf-8")
    assert main(args + ["--catalogue", str(catalogue), "--catalogue-share", "1"]) == 0
    assert "catalogue: 1 values" in capsys.readouterr().err
    written = list(spans(read_utterances(out)))
    assert KATALOG not in {value for _, value in written}
    # --catalogue-share alone needs a catalogue the generator keeps
    old = tmp_path / "old"
    shutil.copytree(kept, old)
    (old / "catalogue.json").unlink()
    assert main(["augment", "--generator", str(old), "--catalogue-share", "0.3",
                 "--out", str(out)]) == 2
    assert "--catalogue-share: needs --catalogue (this generator keeps no catalogue" in (
        capsys.readouterr().err)


def test_grpc_augment_fills_from_the_kept_catalogue_unless_the_request_brings_one(
        trained, listed, tmp_path):
    from service import client
    from service.server import ServerConfig, start_server

    running = start_server(ServerConfig(tracking_uri=trained["uri"], address="127.0.0.1:0",
                                        state_dir=tmp_path / "state"), load_in_background=False)
    running.load_generators()
    try:
        with client.connect(f"127.0.0.1:{running.port}") as channel:
            augment = functools.partial(client.augment, channel, "job-catalogue@prod", 60,
                                        seed=1, timeout=60)
            by_default = list(spans(augment()))
            replaced = list(spans(augment(catalogue_share=1.0, catalogue=SlotLexicon(
                {"de": {listed[0]: [("Eigener",)]}}))))
            own_only = list(spans(augment(catalogue_share=0.0)))  # alone: the kept one's share
    finally:
        running.stop(grace=0)
    assert {value for label, value in by_default if label in listed} == {KATALOG}
    assert KATALOG not in {value for _, value in replaced}
    assert ("Eigener",) in {value for _, value in replaced}
    assert KATALOG not in {value for _, value in own_only}
