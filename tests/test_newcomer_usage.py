"""A newcomer's mistakes (issue 25): every bad flag value of every subcommand is one line
and exit code 2, found before any data or model loads; messages name flags that exist;
`--version`; help texts show defaults; a taken port, an open non-loopback server and an
unknown experiment are refused saying what to do. In-process through ``service.cli.main``."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest

from service.cli import build_parser, main

REPO = Path(__file__).resolve().parents[1]
XSID = REPO / "experiments/data/xsid/xSID-0.7"
MISSING = "no-such-data.conll"  # job data that does not exist: an error about it = data loaded


def outcome(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's usage errors
        code = exit_.code
    return code, capsys.readouterr().err


@pytest.fixture
def jobs(tmp_path) -> dict[str, Path]:
    """GAN job YAMLs whose data files do not exist (`train` checks that its files exist when
    it reads its YAML: its job names the bundled data), one GAN job with a misspelt key."""
    gan = tmp_path / "gan.yaml"
    gan.write_text(f"data: {{train: {MISSING}, format: conll, language: de}}\n"
                   f"run_dir: {tmp_path / 'gan-run'}\ngan: {{mle_epochs: 1}}\n")
    typo = tmp_path / "typo.yaml"
    typo.write_text(f"data: {{train: {MISSING}}}\nrun_dir: {tmp_path / 'typo-run'}\n"
                    "gan: {mle_epoch: 20}\n")
    train = tmp_path / "train.yaml"
    train.write_text(f"model: {{max_epochs: 1}}\nregime: monolingual\n"
                     f"data: {{root: {XSID}, target_language: de, "
                     "target_train: [de.valid.conll.gz], test: [de.test.conll.gz]}\n"
                     f"run_dir: {tmp_path / 'train-run'}\n")
    return {"gan": gan, "typo": typo, "train": train}


def bad_calls(jobs: dict[str, Path], tmp_path: Path):
    """(argv, what the error line must say) for a bad value of each subcommand's flags."""
    store = ["--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]
    augment = ["augment", "--generator", "some-gan@prod", *store, "--out", "x.conll"]
    yield [*augment, "--slot-quota", "reference:20"], "argument --slot-quota: expected SLOT=N"
    yield [*augment, "--quota", "alarm/cancel_alarm"], "argument --quota: expected INTENT=N"
    yield [*augment, "--quota", "X=ten"], "argument --quota: expected INTENT=N"
    yield [*augment, "--quota", "PlayMusic=-1"], "argument --quota: expected INTENT=N"
    yield [*augment, "--slot-quota", "album=-3"], "argument --slot-quota: expected SLOT=N"
    for score in ("nan", "2", "-0.1"):
        yield [*augment, "--gate", "--min-discriminator-score", score], \
            "argument --min-discriminator-score: must be"
    yield [*augment, "--format", "csv"], "argument --format/--to: invalid choice: 'csv'"
    yield [*augment, "--sampling", "beam"], "argument --sampling: invalid choice"
    yield [*augment, "--count", "many"], "argument --count: expected int"
    yield ["augment", "--generator", "g@a", *store, "--out", "m.txt"], \
        "m.txt: cannot tell the output format from the name"
    yield [*augment, "--train", str(tmp_path / MISSING)], "--train: no such file"
    yield [*augment, "--lexicon", str(tmp_path / MISSING)], "--lexicon: no such file"
    yield [*augment, "--slot-values", "invented"], "argument --slot-values: invalid choice"
    yield [*augment, "--seed"], "argument --seed: expected one argument"

    gan = ["gan", "train", *store]
    yield [*gan, "--config", str(tmp_path / "missing.yml")], "cannot read the config"
    yield [*gan, "--config", str(jobs["typo"])], "gan.mle_epoch: not a GanConfig field"
    yield [*gan, "--config", str(jobs["gan"]), "--devices", "2"], "--devices: the GAN trains in one"
    yield [*gan, "--config", str(jobs["gan"]), "--devices", "two"], "argument --devices"
    for strategy in ("ddp", "bogus"):
        yield [*gan, "--config", str(jobs["gan"]), "--strategy", strategy], "--devices: the GAN"
    yield [*gan, "--config", str(jobs["gan"]), "--num-nodes", "2"], "--devices: the GAN"
    yield [*gan, "--config", str(jobs["gan"]), "--precision", "8-bit"], "argument --precision"
    yield [*gan, "--config", str(jobs["gan"]), "--accelerator", "tpu"], "argument --accelerator"

    train = ["train", "--config", str(jobs["train"]), *store]
    yield [*train, "--strategy", "bogus"], "--strategy bogus: not a Lightning strategy"
    yield [*train, "--regime", "transfer"], "argument --regime: invalid choice"
    yield ["train", "--config", str(tmp_path / "missing.yml")], "cannot read the config"
    yield [*train, "--devices", "0"], "devices: must be a count >= 1"

    study = str(REPO / "experiments/study_bootstrap.yaml")
    experiment = ["experiment", "run", study, "--profile", "smoke", *store]
    yield [*experiment, "--seeds", "one"], "argument --seeds: expected comma-separated"
    yield [*experiment, "--tasks", "a,,b"], "argument --tasks: expected comma-separated"
    yield [*experiment, "--profile", "nope"], "nope"
    yield ["experiment", "run", str(tmp_path / "missing.yaml"), *store], "missing.yaml"

    yield ["compare", "--experiment", "nope", *store], "--experiment: no experiment 'nope'"
    yield ["compare", "--experiment", "x", "--split", "train", *store], "argument --split"

    yield ["serve", "--tls-cert", "cert.pem"], "--tls-cert and --tls-key go together"
    yield ["serve", "--host", "0.0.0.0", "--port", "0"], "--host 0.0.0.0: a non-loopback address"
    yield ["serve", "--port", "http"], "argument --port: expected int"

    data = str(XSID / "de.valid.conll.gz")
    yield ["data", "stats", data, "--format", "csv"], "argument --format: invalid choice"
    yield ["data", "stats", str(tmp_path / MISSING)], "no such file or folder"
    yield ["data", "convert", data, "--out", "x.txt"], "cannot tell the output format"
    yield ["data", "sample", data, "--out", "x.conll", "--seed", "1"], "one of the arguments"

    yield ["models", "--kind", "dataset", *store], "argument --kind: invalid choice"
    yield ["nonsense"], "argument COMMAND: invalid choice"


def test_every_subcommand_refuses_bad_flag_values_in_one_line_with_exit_2(
        jobs, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NLU_BOOTSTRAP_TOKEN", raising=False)
    failures = []
    for argv, expected in bad_calls(jobs, tmp_path):
        code, err = outcome(argv, capsys)
        last_line = err.strip().splitlines()[-1] if err.strip() else ""
        if code != 2 or "Traceback" in err or expected not in last_line:
            failures.append(f"{' '.join(argv)}\n  exit {code}: {err.strip()[-400:]}")
    assert not failures, "\n".join(failures)
    assert not (tmp_path / "gan-run").exists() and not (tmp_path / "train-run").exists()
    assert not (tmp_path / "x.conll").exists()


def test_a_gpu_accelerator_on_a_machine_without_one_is_refused_before_any_data_loads(
        jobs, tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    store = ["--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"]
    for argv in (["train", "--config", str(jobs["train"])],
                 ["gan", "train", "--config", str(jobs["gan"])]):
        code, err = outcome([*argv, *store, "--accelerator", "gpu"], capsys)
        assert code == 2 and err.strip() == "error: --accelerator gpu: this machine has none " \
                                            "(use --accelerator cpu or auto)"
    assert not (tmp_path / "mlflow.db").exists()  # no FAILED run left behind


def test_library_messages_name_the_flags_that_exist(capsys):
    from service.commands.augment import _bad_argument

    assert _bad_argument(ValueError("quotas: intent 'x' is unknown")) == 2
    assert _bad_argument(ValueError("slot_quotas: 'y' has a negative count")) == 2
    assert _bad_argument(ValueError("top_k: must be >= 0")) == 2
    assert capsys.readouterr().err.splitlines() == [
        "error: --quota: intent 'x' is unknown", "error: --slot-quota: 'y' has a negative count",
        "error: --top-k: must be >= 0"]


def test_serve_refuses_a_port_in_use_naming_it(capsys, monkeypatch):
    monkeypatch.delenv("NLU_BOOTSTRAP_TOKEN", raising=False)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = outcome(["serve", "--host", "127.0.0.1", "--port", str(port)], capsys)
    assert code == 2
    assert err.strip() == f"error: --port {port}: port {port} is in use on 127.0.0.1"


def test_serve_on_a_public_address_needs_a_token_or_insecure(monkeypatch):
    from service.commands.serve import _loopback

    assert _loopback("127.0.0.1") and _loopback("localhost") and _loopback("::1")
    assert not _loopback("0.0.0.0") and not _loopback("::")
    parser = build_parser("serve")
    assert parser.parse_args(["serve", "--host", "0.0.0.0", "--insecure"]).insecure


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert re.fullmatch(r"nlu-bootstrap \S+\n", capsys.readouterr().out)


@pytest.mark.parametrize("command, shown", [
    (["augment"], ["--seed SEED", "drawn at random", "(default: top-p)", "(default: 1.0)",
                   "(default: 0)", "(default: 0.9)", "(default: 256)", "(default: 1000)"]),
    (["serve"], ["(default: 50051)", "(default 127.0.0.1)"]),
    (["data", "sample"], ["--verbose"]),
    (["gan", "train"], ["--verbose", "--resume"]),
])
def test_help_texts_show_the_defaults(command, shown, capsys):
    with pytest.raises(SystemExit):
        main([*command, "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines anywhere
    for piece in shown:
        assert piece in text, piece


def test_an_unknown_experiment_lists_the_existing_ones(tmp_path, capsys):
    from nlu.tracking import experiment_id

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    experiment_id("study-lowres-smoke", uri)
    experiment_id("gan-xsid-de", uri)
    code, err = outcome(["compare", "--experiment", "study-lowres", "--tracking-uri", uri], capsys)
    assert code == 2
    assert err.strip().endswith("it has: gan-xsid-de, study-lowres-smoke")


def test_convert_and_sample_count_the_repairs_and_list_them_with_verbose(tmp_path, capsys):
    pair = REPO / "tests/data/formats/pair_ok"  # two annotation problems, repaired when read
    assert main(["data", "convert", str(pair), "--out", str(tmp_path / "x.jsonl")]) == 0
    err = capsys.readouterr().err
    assert err == f"{pair}: 2 repairs, 0 warnings (--verbose or `data validate` lists them)\n"
    assert main(["data", "sample", str(pair), "--per-intent", "1", "--seed", "1", "--verbose",
                 "--out", str(tmp_path / "y.jsonl")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"{pair}: 2 repairs, 0 warnings"
    assert err[1].startswith(f"repair: {pair / 'label.en'}:2: token 6: malformed")


def test_ctrl_c_during_augment_says_how_far_it_got_and_writes_nothing(tmp_path):
    import os
    import signal

    from service.commands import Interrupted
    from service.commands.augment import _collect

    before = signal.getsignal(signal.SIGINT)  # SIG_IGN where the tests run in the background

    def generation():
        yield "first"
        yield "second"
        os.kill(os.getpid(), signal.SIGINT)  # handled inside _collect: pytest never sees it
        time.sleep(5)
        yield "never"

    with pytest.raises(Interrupted) as stopped:
        _collect(generation(), 10, tmp_path / "x.conll")
    assert stopped.value.exit_code == 130
    assert str(stopped.value) == f"stopped after 2 of 10 utterances; nothing written to " \
                                 f"{tmp_path / 'x.conll'}"
    assert signal.getsignal(signal.SIGINT) is before  # the handler is given back
