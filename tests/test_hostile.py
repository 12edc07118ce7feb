"""The hostile-input corpus (``tests/hostile/``, one file per defect class) against every reader,
writer, sampler and RPC field it names: each input is refused with a typed error naming the
field (CLI exit 2, the right gRPC status) or handled correctly, and nothing is written outside
the folder the user named. The next probe starts from these files; add to them.

* ``language.jsonl``: data files whose language (a record field, a CoNLL comment, a MASSIVE or
  Schuster locale, a file name, ``--language``) names a path or is no language code;
* ``schuster_tokenization.tsv``: one line per way the tokenization column can be wrong;
* ``round_trip.jsonl``: records every writer must write so that they read back the same,
  or refuse (a locale the reader would shorten, a leading U+FEFF);
* ``sampling.jsonl``: sampling settings, from the smallest positive float up;
* ``job_settings.jsonl``: ``SubmitJob`` ``config_yaml`` values;
* ``rpc_requests.jsonl``: raw request bytes (not UTF-8, truncated, unknown enum values).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import grpc
import pytest
import torch

from gan.sampling import SamplingConfig, pick
from nlu.errors import FormatError
from nlu.formats import FORMATS, read_report, read_utterances, write_utterances
from nlu.utterance import Utterance
from service import client
from service.cli import main
from service.server import ServerConfig, start_server

HOSTILE = Path(__file__).parent / "hostile"


def corpus(name: str) -> list[dict]:
    lines = (HOSTILE / name).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def ids(cases: list[dict], key: str = "case") -> list[str]:
    return [str(case.get(key, index))[:60] for index, case in enumerate(cases)]


def files_under(folder: Path) -> set[Path]:
    return {path.relative_to(folder) for path in folder.rglob("*")}


LANGUAGE_CASES = corpus("language.jsonl")


@pytest.mark.parametrize("case", LANGUAGE_CASES, ids=ids(LANGUAGE_CASES))
@pytest.mark.parametrize("writer", sorted(FORMATS))
def test_no_language_a_file_carries_makes_a_writer_leave_its_folder(case, writer, tmp_path,
                                                                    capsys):
    work = tmp_path / "a" / "b" / "c" / "d" / "work"  # deep: a traversal stays in tmp_path
    for name, content in case["files"].items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(content + "\n", encoding="utf-8")
    before = files_under(tmp_path)
    out = work / "out" / ("o" if FORMATS[writer].writes_folder else f"o.{writer}")
    argv = ["data", "convert", str(work / case["read"]), "--format", case["format"],
            "--to", writer, "--out", str(out)]
    if "language" in case:
        argv += ["--language", case["language"]]
    assert main(argv) == 2
    assert ": language: " in capsys.readouterr().err
    assert files_under(tmp_path) == before


SCHUSTER_LINES = (HOSTILE / "schuster_tokenization.tsv").read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("line", SCHUSTER_LINES, ids=[line[18:60] for line in SCHUSTER_LINES])
def test_every_bad_schuster_tokenization_is_a_located_error(line, tmp_path, capsys):
    path = tmp_path / "es.tsv"
    path.write_text(line + "\n", encoding="utf-8")
    for mode in ("repair", "strict"):
        with pytest.raises(FormatError) as error:
            read_report(path, "schuster", mode=mode)
        assert (error.value.path, error.value.line, error.value.field) == (str(path), 1,
                                                                          "tokenization")
    assert main(["data", "validate", str(path)]) == 2
    assert capsys.readouterr().err.startswith(f"error: {path}:1: tokenization: ")


ROUND_TRIP = corpus("round_trip.jsonl")
CARRIES_LANGUAGE = {"conll", "xsid-pair", "schuster", "massive", "jsonl"}


@pytest.mark.parametrize("record", ROUND_TRIP, ids=[repr(r)[:60] for r in ROUND_TRIP])
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_writer_round_trips_a_record_or_refuses_it(record, fmt, tmp_path):
    utterance = Utterance.from_dict(record)
    out = tmp_path / ("out" if FORMATS[fmt].writes_folder else f"out.{fmt}")
    try:
        write_utterances([utterance], out, fmt)
    except FormatError as error:
        assert "language" in str(error) and fmt == "massive"  # the one locale it cannot write
        return
    (again,) = read_utterances(out, fmt, mode="strict")
    assert (again.tokens, again.tags, again.intent) == (utterance.tokens, utterance.tags,
                                                        utterance.intent)
    if fmt in CARRIES_LANGUAGE:
        assert again.language == utterance.language


SAMPLING = corpus("sampling.jsonl")


@pytest.mark.parametrize("case", SAMPLING, ids=ids(SAMPLING, "config"))
def test_every_sampling_value_samples_allowed_entries_or_is_refused_naming_it(case):
    values = {name: float(value) if value in ("inf", "nan") else value
              for name, value in case["config"].items()}
    if "refused" in case:
        with pytest.raises(ValueError, match=f"^{case['refused']}: "):
            SamplingConfig(**values)
        return
    config = SamplingConfig(**values)
    torch.manual_seed(0)
    logits = torch.randn(256, 40) * 4
    logits[:, 30:] = float("-inf")  # masked entries: never picked
    logits[0, 1:] = float("-inf")  # a row with one allowed entry
    picked = pick(logits, config, generator=torch.Generator().manual_seed(0))
    assert picked.shape == (256,) and bool((picked < 30).all()) and picked[0] == 0
    if config.temperature < 1e-20 or config.top_p < 1e-20:  # the limit is greedy
        assert torch.equal(picked, logits.argmax(dim=-1))
    if config.temperature > 1e20 and config.method == "temperature":  # ... and uniform
        assert len(set(picked[1:].tolist())) > 20
    assert math.isfinite(config.temperature)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-server")
    running = start_server(ServerConfig(tracking_uri=f"sqlite:///{root}/mlflow.db",
                                        state_dir=root / "state", address="127.0.0.1:0"),
                           load_in_background=False)
    running.load_generators()  # an empty registry: requests are checked before any lookup
    yield running
    running.stop(grace=0)


@pytest.fixture(scope="module")
def channel(server):
    with client.connect(f"127.0.0.1:{server.port}") as channel:
        yield channel


JOB_SETTINGS = corpus("job_settings.jsonl")
UPLOAD = [Utterance(("wecke", "mich"), ("O", "O"), "alarm/set_alarm", "de")] * 3


@pytest.mark.parametrize("case", JOB_SETTINGS, ids=[case["details"][:60] for case in JOB_SETTINGS])
def test_every_hostile_job_setting_is_invalid_argument_naming_it(channel, server, case):
    with pytest.raises(grpc.RpcError) as refused:
        client.submit_job(channel, regime="monolingual", config_yaml=case["config_yaml"],
                          uploads={"target_train": UPLOAD, "test": UPLOAD})
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details().startswith(case["details"]), refused.value.details()
    assert server.runner.store.active_jobs() == 0


RPC_REQUESTS = corpus("rpc_requests.jsonl")


@pytest.mark.parametrize("case", RPC_REQUESTS, ids=ids(RPC_REQUESTS))
def test_every_hostile_request_gets_the_right_status_naming_the_field(channel, case):
    requests = [bytes.fromhex(request) for request in case["requests_hex"]]
    identity = dict(request_serializer=None, response_deserializer=None)  # raw bytes
    if case["method"].endswith("/SubmitJob"):
        call = lambda: channel.stream_unary(case["method"], **identity)(iter(requests),
                                                                          timeout=30)
    elif case["method"].endswith("/Augment"):
        call = lambda: list(channel.unary_stream(case["method"], **identity)(requests[0],
                                                                               timeout=30))
    else:
        call = lambda: channel.unary_unary(case["method"], **identity)(requests[0], timeout=30)
    with pytest.raises(grpc.RpcError) as refused:
        call()
    assert refused.value.code().name == case["code"], refused.value.details()
    assert refused.value.details().startswith(case["details"]), refused.value.details()


def test_the_corpus_has_one_file_per_defect_class_and_every_file_is_used():
    used = {"language.jsonl", "schuster_tokenization.tsv", "round_trip.jsonl", "sampling.jsonl",
            "job_settings.jsonl", "rpc_requests.jsonl"}
    assert {path.name for path in HOSTILE.iterdir()} == used
