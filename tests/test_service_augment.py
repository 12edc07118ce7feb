"""AugmentationService end to end: a tiny REAL generator (trained here in seconds on 50 xSID
German utterances, registered in MLflow) served by the real server on a loopback port and
driven through the generated client stubs."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import grpc
import pytest

from nlu.formats import read_utterances
from service import client
from service.client import SEED_METADATA_KEY
from service.generated.nlu_bootstrap.v1 import augmentation_pb2_grpc
from service.server import ServerConfig, start_server
from shared_data import SHARED_DATA

XSID_DE_VALID = SHARED_DATA / "xsid/xSID-0.7/de.valid.conll"
GENERATOR = "svc-gan@prod"
# Longer than any test waits for: the tiny generator makes thousands of utterances a second,
# so a stream of a few thousand could finish before a deadline or a cancel arrives.
LONG_STREAM = 1_000_000


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """An MLflow store holding one registered generator; returns (tracking URI, run id)."""
    import torch

    from gan.config import GanConfig

    from gan.training import train_gan
    from nlu.jobs import TrackingConfig
    from nlu.tracking import model_run_id

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("store")
    tracking_uri = f"sqlite:///{root}/mlflow.db"
    config = GanConfig(embedding_dim=16, tag_dim=8, condition_dim=8, hidden_dim=32,
                       d_hidden_dim=16, batch_size=16, mle_epochs=2, d_pretrain_steps=3,
                       adversarial_steps=0, steps_per_checkpoint=4, eval_samples=20,
                       log_every_n_steps=1, max_length=20)
    train_gan(read_utterances(XSID_DE_VALID, "conll")[:50], config, run_dir=root / "gan",
              tracking=TrackingConfig("svc-test", registered_name="svc-gan", alias="prod"),
              tracking_uri=tracking_uri, progress_bar=False)
    return tracking_uri, model_run_id(GENERATOR, tracking_uri)


@pytest.fixture(scope="module")
def server(store, tmp_path_factory):
    config = ServerConfig(tracking_uri=store[0], state_dir=tmp_path_factory.mktemp("state"),
                          address="127.0.0.1:0", max_augment_count=LONG_STREAM, max_augment_streams=2)
    running = start_server(config, load_in_background=False)
    running.load_generators()
    yield running
    running.stop(grace=0)


@pytest.fixture
def channel(server):
    with client.connect(f"127.0.0.1:{server.port}") as channel:
        yield channel


def rpc_error(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        list(call())
    return raised.value


def wait_for(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_list_and_describe_generators(channel, store):
    (generator,) = client.list_generators(channel)
    assert generator.name == "svc-gan" and generator.alias_versions == {"prod": "1"}
    assert generator.latest_run_id == store[1]
    description = client.describe_generator(channel, GENERATOR)
    assert description.run_id == store[1]
    assert list(description.languages) == ["de"]
    assert len(description.intents) > 3 and description.slot_types
    assert "validity" in description.metrics or description.metrics  # from gan.quality


def test_full_augment_stream_is_valid_and_reproducible(channel):
    stream = client.augment(channel, GENERATOR, 40, seed=7, timeout=30)
    first = list(stream)
    assert len(first) == 40
    report = stream.gate_report  # the last message's gate counts
    assert report.kept == 40 and report.surplus >= 1  # the last round's unused spares
    assert report.seen == (report.malformed + report.duplicates + report.low_score
                           + report.kept + report.surplus)
    description = client.describe_generator(channel, GENERATOR)
    assert {u.intent for u in first} <= set(description.intents)
    assert {u.language for u in first} == {"de"}
    assert len({u.key() for u in first}) == 40  # deduplicated by the default gate
    again = list(client.augment(channel, GENERATOR, 40, seed=7, timeout=30))
    assert [u.key() for u in again] == [u.key() for u in first]


def test_quotas_run_id_sampling_and_seed_metadata(channel, store):
    intents = sorted(client.describe_generator(channel, GENERATOR).intents)[:2]
    quotas = {intents[0]: 3, intents[1]: 2}
    sampling = client.sampling_options("top-k", top_k=5, temperature=0.8)
    stream = augmentation_pb2_grpc.AugmentationServiceStub(channel).Augment(
        client.augment_request(store[1], 5, quotas=quotas, sampling=sampling, seed=3),
        timeout=30)
    received = [utterance.intent for response in stream for utterance in response.utterances]
    assert Counter(received) == Counter(quotas)
    assert dict(stream.initial_metadata())[SEED_METADATA_KEY] == "3"


@pytest.mark.parametrize("options, field", [
    ({"language": "xx"}, "language:"),
    ({"quotas": {"no_such_intent": 5}}, "intent_quotas:"),
    ({"slot_quotas": {"no_such_slot": 5}}, "slot_quotas:"),
    ({"sampling": client.sampling_options("top-p", top_p=1.5)}, "sampling.top_p:"),
])
def test_invalid_requests_name_the_field(channel, options, field):
    error = rpc_error(lambda: client.augment(channel, GENERATOR, 5, **options))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(field)


def test_quotas_must_add_up_to_count(channel):
    intent = client.describe_generator(channel, GENERATOR).intents[0]
    error = rpc_error(lambda: client.augment(channel, GENERATOR, 5, quotas={intent: 2}))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "add up" in error.details()


def test_slot_quotas_stream_utterances_with_that_slot_type(channel):
    slot = sorted(client.describe_generator(channel, GENERATOR).slot_types)[0]
    received = list(client.augment(channel, GENERATOR, 6, slot_quotas={slot: 6}, seed=2,
                                   timeout=30))
    assert len(received) == 6 and all(slot in u.slot_types for u in received)
    error = rpc_error(lambda: client.augment(channel, GENERATOR, 5, slot_quotas={slot: 4}))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "add up" in error.details()


@pytest.fixture(scope="module")
def nlu_model(store):
    """A tiny NLU model on the generator's training data, registered as svc-nlu@prod."""
    import mlflow

    from nlu.model import JointModelConfig
    from nlu.tracking import log_model_dir, start_run
    from nlu.training import fit

    tracking_uri, _ = store
    root = Path(tracking_uri[len("sqlite:///"):]).parent
    model = fit(read_utterances(XSID_DE_VALID, "conll")[:50], None,
                JointModelConfig(embedding_dim=16, hidden_dim=32, num_layers=1, batch_size=8,
                                 max_epochs=10, lr=1e-2, enable_progress_bar=False,
                                 num_threads=1),
                run_dir=root / "nlu")
    model.save(root / "nlu-model")
    with start_run("svc-nlu", tracking_uri):
        log_model_dir(root / "nlu-model", registered_name="svc-nlu", alias="prod")
    mlflow.end_run()
    return model


def test_agreement_gate_keeps_what_a_registered_nlu_model_reads_the_same_way(channel, nlu_model):
    from gan.gate import agrees

    stream = client.augment(channel, GENERATOR, 20, seed=1, agree_with="svc-nlu@prod",
                            timeout=60)
    received = list(stream)
    report = stream.gate_report
    assert received and report.kept == len(received) and report.disagreement > 0
    assert report.seen == (report.malformed + report.duplicates + report.low_score
                           + report.disagreement + report.kept + report.surplus)
    assert all(agrees(u, p) for u, p in zip(received, nlu_model.predict(received)))
    for reference, code in ((GENERATOR, grpc.StatusCode.INVALID_ARGUMENT),  # not an NLU model
                            ("../models", grpc.StatusCode.INVALID_ARGUMENT),
                            ("no-such@model", grpc.StatusCode.NOT_FOUND)):
        error = rpc_error(lambda: client.augment(channel, GENERATOR, 5, agree_with=reference))
        assert error.code() == code and error.details().startswith("gate.agree_with:")
    error = rpc_error(lambda: client.augment(channel, "svc-nlu@prod", 5))  # not a generator
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("generator:")


def test_client_cancellation_stops_generation(channel, server):
    counters = server.augmentation.counters
    stopped_before = counters.stopped_early
    stub = augmentation_pb2_grpc.AugmentationServiceStub(channel)
    stream = stub.Augment(client.augment_request(GENERATOR, LONG_STREAM, deduplicate=False, seed=1))
    for _ in range(5):
        next(stream)
    stream.cancel()
    wait_for(lambda: counters.stopped_early > stopped_before)
    assert counters.utterances_sent < counters.started * LONG_STREAM


def test_deadline_is_honoured_during_a_long_stream(channel, server):
    counters = server.augmentation.counters
    stopped_before, sent_before = counters.stopped_early, counters.utterances_sent
    stub = augmentation_pb2_grpc.AugmentationServiceStub(channel)
    stream = stub.Augment(client.augment_request(GENERATOR, LONG_STREAM, deduplicate=False),
                          timeout=1.0)
    time.sleep(1.5)  # a slow reader: the deadline passes mid-stream
    error = rpc_error(lambda: stream)
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_for(lambda: counters.stopped_early > stopped_before)
    assert counters.utterances_sent - sent_before < LONG_STREAM


def test_concurrent_streams_are_bounded(channel, server):
    stub = augmentation_pb2_grpc.AugmentationServiceStub(channel)
    # Two unread streams hold both slots (the server waits on flow control).
    held = [stub.Augment(client.augment_request(GENERATOR, LONG_STREAM, deduplicate=False))
            for _ in range(2)]
    for stream in held:
        next(stream)
    error = rpc_error(lambda: client.augment(channel, GENERATOR, 5))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "streams already running" in error.details()
    for stream in held:
        stream.cancel()
    wait_for(lambda: len(list(client.augment(channel, GENERATOR, 1, seed=0))) == 1)


def test_graceful_stop_lets_an_inflight_stream_finish(store, tmp_path):
    config = ServerConfig(tracking_uri=store[0], state_dir=tmp_path, address="127.0.0.1:0")
    running = start_server(config, load_in_background=False)
    running.load_generators()
    with client.connect(f"127.0.0.1:{running.port}") as channel:
        stream = client.augment(channel, GENERATOR, 300, seed=2, timeout=30)
        received = [next(stream)]
        stopper = threading.Thread(target=running.stop, kwargs={"grace": 20})
        stopper.start()
        received.extend(stream)
        stopper.join()
        assert len(received) == 300
        error = rpc_error(lambda: client.augment(channel, GENERATOR, 1, timeout=2))
        assert error.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("fmt", ["conll", "jsonl"])
def test_augment_cli_streams_from_the_server(server, tmp_path, fmt, capsys):
    from service.cli import main

    out = tmp_path / f"generated.{fmt}"
    assert main(["augment", "--server", f"127.0.0.1:{server.port}", "--generator", GENERATOR,
                 "--count", "25", "--seed", "4", "--gate", "--out", str(out),
                 "--format", fmt]) == 0
    written = read_utterances(out, fmt)
    assert len(written) == 25 and {u.language for u in written} == {"de"}
    printed = capsys.readouterr().out
    assert "gate: seen " in printed and "kept 25" in printed


def test_augment_cli_asks_the_server_for_nlu_agreement(server, nlu_model, tmp_path, capsys):
    from service.cli import main

    out = tmp_path / "agreed.jsonl"
    assert main(["augment", "--server", f"127.0.0.1:{server.port}", "--generator", GENERATOR,
                 "--count", "20", "--seed", "1", "--agree-with", "svc-nlu@prod",
                 "--out", str(out), "--format", "jsonl"]) == 0
    written = read_utterances(out, "jsonl")
    printed = capsys.readouterr()
    assert f"kept {len(written)}" in printed.out and "disagreement " in printed.out
    assert (len(written) < 20) == ("warning: " in printed.err)


def test_augment_cli_reports_server_errors(server, tmp_path, capsys):
    from service.cli import main

    assert main(["augment", "--server", f"127.0.0.1:{server.port}", "--generator",
                 "nobody@prod", "--out", str(tmp_path / "x.conll")]) == 2
    assert "NOT_FOUND" in capsys.readouterr().err


INF, NAN = float("inf"), float("nan")
INVALID = grpc.StatusCode.INVALID_ARGUMENT
# (request options, the field the message must start with, status) for every numeric field
# of AugmentRequest: infinities, NaN, negatives, zero and the wire type's extremes.
BAD_NUMBERS = [
    *[({"sampling": client.sampling_options("temperature", temperature=value)},
       "sampling.temperature:", INVALID) for value in (INF, -INF, NAN, 0.0, -1.0)],
    *[({"sampling": client.sampling_options("top-p", top_p=value)}, "sampling.top_p:", INVALID)
      for value in (INF, NAN, 0.0, -1.0, 1.5)],
    *[({"sampling": client.sampling_options("top-k", top_k=value)}, "sampling.top_k:", INVALID)
      for value in (0, -1, -2 ** 31)],
    *[({"seed": value}, "seed:", INVALID) for value in (-1, -2 ** 63)],
    *[({"min_discriminator_score": value}, "gate.min_discriminator_score", INVALID)
      for value in (INF, NAN, -1.0, 2.0)],
    ({"count": 0}, "count:", INVALID),
    ({"count": -1}, "count:", INVALID),
    ({"count": -2 ** 31}, "count:", INVALID),
    ({"count": 2 ** 31 - 1}, "count:", grpc.StatusCode.RESOURCE_EXHAUSTED),
    ({"slot_quotas": {"x": -1}}, "slot_quotas", INVALID),
]


@pytest.mark.parametrize("options, field, code", BAD_NUMBERS,
                         ids=[f"{field}{options}" for options, field, _ in BAD_NUMBERS])
def test_bad_numbers_are_refused_naming_the_field(channel, options, field, code):
    options = dict(options)
    count = options.pop("count", 5)
    if "slot_quotas" in options:  # a slot type the generator knows, so the range is what fails
        slot = client.describe_generator(channel, GENERATOR).slot_types[0]
        options["slot_quotas"] = {slot: -1}
    error = rpc_error(lambda: client.augment(channel, GENERATOR, count, timeout=30, **options))
    assert error.code() == code, error.details()
    assert error.details().startswith(field)


BAD_FLAGS = [
    *[("--temperature", value, "--temperature:") for value in ("inf", "-inf", "nan", "0")],
    *[("--top-p", value, "--top-p:") for value in ("inf", "nan", "0", "-1")],
    ("--top-k", "-1", "--top-k:"),
    *[("--seed", value, "--seed:") for value in ("-1", str(2 ** 63), str(-2 ** 63))],
    ("--count", "-1", "--count:"), ("--count", "0", "--count:"),
    *[("--batch-size", value, "--batch-size:") for value in ("0", "-1")],
]


@pytest.mark.parametrize("flag, value, field", BAD_FLAGS)
def test_augment_cli_refuses_bad_numbers_with_exit_2(store, tmp_path, capsys, flag, value, field):
    from service.cli import main

    with pytest.raises(SystemExit) as exited:  # argparse's usage error: before any loading
        main(["augment", "--generator", store[1], "--tracking-uri", store[0],
              "--out", str(tmp_path / "x.conll"), f"{flag}={value}"])
    assert exited.value.code == 2
    assert f"argument {field[:-1]}: " in capsys.readouterr().err


@pytest.mark.parametrize("reference, field", [("nope@x", "generator"),
                                              ("nope@x", "gate.agree_with")])
def test_not_found_does_not_name_the_store(channel, store, reference, field):
    options = {"agree_with": reference} if field == "gate.agree_with" else {}
    generator = GENERATOR if options else reference
    error = rpc_error(lambda: client.augment(channel, generator, 5, timeout=30, **options))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details() == f"{field}: no model {reference!r} in the server's store"
    assert store[0] not in error.details() and "sqlite" not in error.details()


@pytest.mark.parametrize("uri, shown", [
    ("https://user:s3cret@mlflow.example:5000/x", "https://user:***@mlflow.example:5000/x"),
    ("postgresql://app:pw@db/mlflow", "postgresql://app:***@db/mlflow"),
    ("https://mlflow.example", "https://mlflow.example"),
    ("sqlite:///relative/mlflow.db", "sqlite:///relative/mlflow.db"),
    ("sqlite:////absolute/mlflow.db", "sqlite:////absolute/mlflow.db"),
    ("https://ghp_token@mlflow.example", "https://***@mlflow.example"),
    ("https://mlflow.example/?token=abc&experiment=1",
     "https://mlflow.example/?token=***&experiment=1"),
])
def test_redact_uri_hides_passwords_and_tokens(uri, shown):
    from nlu.tracking import ModelNotFoundError, redact_uri

    assert redact_uri(uri) == shown
    assert str(ModelNotFoundError("no model 'a@b'", uri)) == f"no model 'a@b' in {shown}"


@pytest.mark.parametrize("gate", [{}, {"min_discriminator_score": 1.0}],
                         ids=["streaming", "the-gate-keeps-nothing"])
def test_call_budget_ends_a_long_stream_with_the_gate_report_so_far(store, tmp_path, gate):
    # "the-gate-keeps-nothing": no utterance is ever ready to stream (as for a slot type
    # the generator seldom writes), so only a budget inside generation can end the call.
    config = ServerConfig(tracking_uri=store[0], state_dir=tmp_path, address="127.0.0.1:0",
                          max_augment_count=LONG_STREAM, call_budget_seconds=0.3)
    running = start_server(config, load_in_background=False)
    running.load_generators()
    try:
        with client.connect(f"127.0.0.1:{running.port}") as channel:
            responses = augmentation_pb2_grpc.AugmentationServiceStub(channel).Augment(
                client.augment_request(GENERATOR, LONG_STREAM, **gate), timeout=60)
            received = []
            started = time.monotonic()
            with pytest.raises(grpc.RpcError) as raised:
                received.extend(responses)
            assert time.monotonic() - started < 10
    finally:
        running.stop(grace=0)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert "budget of 0.3 s" in raised.value.details()
    assert received[-1].HasField("gate_report") and received[-1].gate_report.seen > 0
    if gate:
        assert received[-1].gate_report.kept == 0 and received[-1].gate_report.low_score > 0


def test_augment_cli_refuses_quotas_that_ask_for_nothing_before_loading(store, tmp_path, capsys):
    from service.cli import main

    assert main(["augment", "--generator", store[1], "--tracking-uri", store[0],
                 "--out", str(tmp_path / "x.conll"), "--quota", "x=0"]) == 2
    assert "--quota/--slot-quota: they ask for 0 utterances" in capsys.readouterr().err
    assert not (tmp_path / "x.conll").exists()
