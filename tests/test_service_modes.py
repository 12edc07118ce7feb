"""The generator modes over gRPC and the CLI: a delexicalised generator's slot values come
from its own lexicon or one sent with the request; a request that does not fit the
generator's mode is INVALID_ARGUMENT naming the field (the CLI: exit 2)."""

from __future__ import annotations

import grpc
import pytest

from gan.lexicon import SlotLexicon
from nlu.formats import read_utterances, write_utterances
from service import client
from service.cli import main
from service.generated.nlu_bootstrap.v1 import augmentation_pb2, augmentation_pb2_grpc
from service.server import ServerConfig, start_server
from shared_data import SHARED_DATA

XSID_DE_VALID = SHARED_DATA / "xsid/xSID-0.7/de.valid.conll"
DELEXICALISED, LEXICALISED = "svc-delex@prod", "svc-lex@prod"


@pytest.fixture(scope="module")
def german():
    return read_utterances(XSID_DE_VALID, "conll")[:50]


@pytest.fixture(scope="module")
def store(tmp_path_factory, german):
    import torch

    from gan.config import GanConfig
    from gan.training import train_gan
    from nlu.jobs import TrackingConfig

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("store")
    tracking_uri = f"sqlite:///{root}/mlflow.db"
    for name, delexicalised in (("svc-delex", True), ("svc-lex", False)):
        config = GanConfig(embedding_dim=16, tag_dim=8, condition_dim=8, hidden_dim=32,
                           d_hidden_dim=16, batch_size=16, mle_epochs=2, d_pretrain_steps=3,
                           adversarial_steps=0, steps_per_checkpoint=4, eval_samples=0,
                           max_length=20, delexicalised=delexicalised)
        train_gan(german, config, run_dir=root / name, tracking_uri=tracking_uri,
                  tracking=TrackingConfig("svc-modes", registered_name=name, alias="prod"),
                  progress_bar=False)
    return tracking_uri, root


@pytest.fixture(scope="module")
def server(store, tmp_path_factory):
    running = start_server(ServerConfig(tracking_uri=store[0], address="127.0.0.1:0",
                                        state_dir=tmp_path_factory.mktemp("state")),
                           load_in_background=False)
    running.load_generators()
    yield running
    running.stop(grace=0)


@pytest.fixture(scope="module")
def channel(server):
    with client.connect(f"127.0.0.1:{server.port}") as channel:
        yield channel


def spans(utterances):
    for utterance in utterances:
        for span in utterance.spans:
            yield span.label, utterance.tokens[span.start:span.end]


def test_describe_names_each_generators_slot_values(channel):
    assert client.describe_generator(channel, DELEXICALISED).slot_values == \
        augmentation_pb2.SLOT_VALUES_GENERATOR_LEXICON
    assert client.describe_generator(channel, LEXICALISED).slot_values == \
        augmentation_pb2.SLOT_VALUES_GENERATED


def test_slot_values_from_the_generators_lexicon_or_the_requests(channel, german):
    own = SlotLexicon.build(german)
    streamed = list(client.augment(channel, DELEXICALISED, 60, seed=1, timeout=60))
    assert len(streamed) == 60
    assert all(value in own.values["de"][slot] for slot, value in spans(streamed))
    # the request's lexicon: each slot type's values renamed, so they are recognisable
    renamed = [utterance.replace(tokens=tuple(
        f"x{token}" if tag != "O" else token for token, tag in zip(utterance.tokens,
                                                                   utterance.tags)))
        for utterance in german]
    given = SlotLexicon.build(renamed)
    streamed = list(client.augment(channel, DELEXICALISED, 60, seed=1, timeout=60,
                                   slot_values="given-lexicon", lexicon=renamed))
    found = list(spans(streamed))
    assert found and all(value in given.values["de"][slot] for slot, value in found)


@pytest.mark.parametrize("generator, options, message", [
    (DELEXICALISED, {"slot_values": "generated"}, "slot_values: 'generated' does not fit"),
    (LEXICALISED, {"slot_values": "generator-lexicon"},
     "slot_values: 'generator-lexicon' does not fit"),
    (DELEXICALISED, {"slot_values": "given-lexicon"}, "lexicon: give one exactly when"),
    (LEXICALISED, {"lexicon": "german"}, "lexicon: this generator writes its own slot values"),
    (DELEXICALISED, {"lexicon": "one-slot-type"}, "lexicon: no 'de' value for slot type"),
])
def test_requests_that_do_not_fit_the_generators_mode_are_refused(channel, german, generator,
                                                                  options, message):
    if options.get("lexicon") == "german":
        options = {"lexicon": german}
    elif options.get("lexicon") == "one-slot-type":
        slot = sorted(SlotLexicon.build(german).values["de"])[0]
        options = {"lexicon": [u for u in german if u.slot_types == {slot}][:1]}
    with pytest.raises(grpc.RpcError) as raised:
        list(client.augment(channel, generator, 5, seed=1, timeout=30, **options))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in raised.value.details()


def test_a_malformed_lexicon_utterance_is_refused_naming_its_index(channel, german):
    request = client.augment_request(DELEXICALISED, 5, lexicon=german[:2])
    request.lexicon[1].tags.append("O")  # one tag more than tokens
    stub = augmentation_pb2_grpc.AugmentationServiceStub(channel)
    with pytest.raises(grpc.RpcError) as raised:
        list(stub.Augment(request, timeout=30))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details().startswith("lexicon[1]: ")


def test_augment_cli_takes_a_lexicon_file_and_refuses_a_mode_mismatch(store, german, tmp_path,
                                                                      capsys):
    generator_dir = store[1] / "svc-delex" / "generator"
    lexicon_file = tmp_path / "lexicon.jsonl"
    write_utterances(german[:30], lexicon_file, "jsonl")
    out = tmp_path / "out.jsonl"
    assert main(["augment", "--generator", str(generator_dir), "--count", "40", "--lexicon",
                 str(lexicon_file), "--out", str(out), "--format", "jsonl"]) == 0
    lexicon = SlotLexicon.build(german[:30])
    written = read_utterances(out, "jsonl")
    assert len(written) == 40
    assert all(value in lexicon.values["de"][slot] for slot, value in spans(written))
    capsys.readouterr()
    assert main(["augment", "--generator", str(generator_dir), "--count", "5",
                 "--slot-values", "generated", "--out", str(out)]) == 2
    assert "--slot-values: 'generated' does not fit" in capsys.readouterr().err


def test_a_lexicon_of_long_values_streams_in_messages_under_the_servers_limit(store, german,
                                                                             tmp_path):
    limit = 1024 * 1024
    running = start_server(ServerConfig(tracking_uri=store[0], address="127.0.0.1:0",
                                        state_dir=tmp_path, max_message_bytes=limit),
                           load_in_background=False)
    running.load_generators()
    long_values = [utterance.replace(tokens=tuple(
        token * (10_000 // len(token) + 1) if tag != "O" else token
        for token, tag in zip(utterance.tokens, utterance.tags))) for utterance in german[:30]]
    try:  # 30 of them: the request itself (~0.7 MB) stays under the limit
        with client.connect(f"127.0.0.1:{running.port}") as channel:
            responses = list(augmentation_pb2_grpc.AugmentationServiceStub(channel).Augment(
                client.augment_request(DELEXICALISED, 300, seed=1, slot_values="given-lexicon",
                                       lexicon=long_values), timeout=120))
    finally:
        running.stop(grace=0)
    assert sum(len(response.utterances) for response in responses) == 300
    assert max(response.ByteSize() for response in responses) <= limit
    assert any(len(token) >= 10_000 for response in responses
               for utterance in response.utterances for token in utterance.tokens)


def catalogue_of(entries, language="de") -> SlotLexicon:
    return SlotLexicon({language: {slot: [tuple(value.split())] for slot, value in entries}})


def test_a_catalogue_in_the_request_fills_the_delexicalised_generators_spans(channel, german):
    slot = sorted(SlotLexicon.build(german).values["de"])[0]
    catalogue = catalogue_of([(slot, "Katalog Wert")])
    streamed = list(client.augment(channel, DELEXICALISED, 80, seed=1, timeout=60,
                                   catalogue=catalogue, catalogue_share=1.0))
    found = [value for label, value in spans(streamed) if label == slot]
    assert found and set(found) == {("Katalog", "Wert")}
    with pytest.raises(grpc.RpcError) as raised:
        list(client.augment(channel, LEXICALISED, 5, seed=1, timeout=30, catalogue=catalogue))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "catalogue: this generator writes its own slot values" in raised.value.details()


@pytest.mark.parametrize("entries, share, message", [
    ([("no-such-type", "x")], None, "catalogue[0].slot_type: unknown slot type"),
    ([("SLOT", "ok"), ("SLOT", " ")], None, "catalogue[1].value: empty value"),
    ([("SLOT", "a\nb")], None, "catalogue[0].value: holds control character U+000A"),
    ([("SLOT", "ok")], 1.5, "catalogue_share: must be in [0, 1]"),
])
def test_a_bad_catalogue_value_is_invalid_argument_naming_its_index(channel, german, entries,
                                                                   share, message):
    slot = sorted(SlotLexicon.build(german).values["de"])[0]
    request = client.augment_request(DELEXICALISED, 5, seed=1, catalogue_share=share)
    for slot_type, value in entries:
        request.catalogue.add(slot_type=slot_type.replace("SLOT", slot), value=value)
    stub = augmentation_pb2_grpc.AugmentationServiceStub(channel)
    for call in (lambda: stub.Augment(request, timeout=30),
                 lambda: stub.Refill(augmentation_pb2.RefillRequest(
                     utterances=client.refill_request(german, SlotLexicon({}), 5).utterances,
                     catalogue=request.catalogue, count=5,
                     **({} if share is None else {"catalogue_share": share})), timeout=30)):
        with pytest.raises(grpc.RpcError) as raised:
            list(call())
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert raised.value.details().startswith(message)


def test_refill_streams_copies_with_catalogue_values_the_same_for_a_seed(channel, german):
    slot = sorted(SlotLexicon.build(german).values["de"])[0]
    catalogue = catalogue_of([(slot, "Katalog Wert")])
    stream = client.refill(channel, german[:20], catalogue, 45, seed=4, catalogue_share=1.0,
                           timeout=30)
    refilled = list(stream)
    assert len(refilled) == 45 and all(item.source == "refill" for item in refilled)
    assert {item.intent for item in refilled} == {item.intent for item in german[:20]}
    assert {value for label, value in spans(refilled) if label == slot} == {("Katalog", "Wert")}
    again = list(client.refill(channel, german[:20], catalogue, 45, seed=4, catalogue_share=1.0,
                               timeout=30))
    assert [(item.id, item.tokens, item.tags) for item in again] == [
        (item.id, item.tokens, item.tags) for item in refilled]


def test_refill_without_a_catalogue_redraws_the_utterances_own_values(channel, german):
    real = german[:20]
    own = {(span.label, item.tokens[span.start:span.end]) for item in real for span in item.spans}
    refilled = list(client.refill(channel, real, None, 45, seed=4, timeout=30))
    assert len(refilled) == 45 and set(spans(refilled)) <= own
    # redrawn, not copied: some copy carries a value its own original did not
    originals = {item.id: item for item in real}
    assert any(copy.tokens != originals[copy.id.split(":", 1)[1]].tokens for copy in refilled)


@pytest.mark.parametrize("change, code, message", [
    ({"count": 0}, grpc.StatusCode.INVALID_ARGUMENT, "count: must be >= 1"),
    ({"utterances": "none"}, grpc.StatusCode.INVALID_ARGUMENT, "utterances: give the real"),
    ({"catalogue": "none", "catalogue_share": 0.5}, grpc.StatusCode.INVALID_ARGUMENT,
     "catalogue_share: set without a catalogue (without one, refill redraws"),
    ({"seed": -1}, grpc.StatusCode.INVALID_ARGUMENT, "seed: must be >= 0"),
    ({"catalogue": "too many"}, grpc.StatusCode.RESOURCE_EXHAUSTED,
     "catalogue: 4 values are over this server's limit of 3"),
    ({"count": 11}, grpc.StatusCode.RESOURCE_EXHAUSTED, "count: 11 is over"),
])
def test_refill_refusals_have_their_status_and_name_the_field(german, tmp_path, change, code,
                                                              message):
    slot = sorted(SlotLexicon.build(german).values["de"])[0]
    request = client.refill_request(german[:5], catalogue_of([(slot, "x")]), 5, seed=1)
    if change.get("utterances") == "none":
        del request.utterances[:]
    elif change.get("catalogue") == "none":
        del request.catalogue[:]
        request.catalogue_share = change["catalogue_share"]
    elif change.get("catalogue") == "too many":
        for value in "abcd":
            request.catalogue.add(slot_type=slot, value=value)
        del request.catalogue[0]
    else:
        for field, value in change.items():
            setattr(request, field, value)
    running = start_server(ServerConfig(tracking_uri=f"sqlite:///{tmp_path}/m.db",
                                        address="127.0.0.1:0", state_dir=tmp_path,
                                        max_augment_count=10, max_catalogue_values=3),
                           load_in_background=False)  # Refill needs no generator
    try:
        with client.connect(f"127.0.0.1:{running.port}") as channel:
            stub = augmentation_pb2_grpc.AugmentationServiceStub(channel)
            with pytest.raises(grpc.RpcError) as raised:
                list(stub.Refill(request, timeout=30))
            assert raised.value.code() == code
            assert raised.value.details().startswith(message)
            assert len(list(stub.Refill(client.refill_request(
                german[:5], catalogue_of([(slot, "x")]), 5), timeout=30))[0].utterances) == 5
    finally:
        running.stop(grace=0)


def test_augment_cli_fills_from_a_catalogue_file_locally_and_through_a_server(store, german,
                                                                              server,
                                                                              tmp_path, capsys):
    slot = sorted(SlotLexicon.build(german).values["de"])[0]
    catalogue_file = tmp_path / "de.catalogue.tsv"
    catalogue_file.write_text(f"# a hand-written catalogue\n{slot}\tKatalog Wert\n"
                              f"{slot}\tKatalog Wert\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    generator_dir = store[1] / "svc-delex" / "generator"
    assert main(["augment", "--generator", str(generator_dir), "--count", "40", "--seed", "1",
                 "--catalogue", str(catalogue_file), "--catalogue-share", "1",
                 "--out", str(out)]) == 0
    assert "catalogue: 1 values, 1 duplicates" in capsys.readouterr().err
    found = [value for label, value in spans(read_utterances(out)) if label == slot]
    assert found and set(found) == {("Katalog", "Wert")}
    remote = ["--server", f"127.0.0.1:{server.port}"]
    assert main(["augment", *remote, "--generator", DELEXICALISED, "--count", "40", "--seed",
                 "1", "--catalogue", str(catalogue_file), "--catalogue-share", "1",
                 "--out", str(out)]) == 0
    assert "catalogue: 1 values, 1 duplicates" in capsys.readouterr().err
    found = [value for label, value in spans(read_utterances(out)) if label == slot]
    assert found and set(found) == {("Katalog", "Wert")}
    real = tmp_path / "real.jsonl"
    write_utterances(german[:10], real, "jsonl")
    written = []
    for where in ([], remote):
        assert main(["augment", "--method", "refill", *where, "--data", str(real),
                     "--catalogue", str(catalogue_file), "--count", "25", "--seed", "2",
                     "--out", str(out)]) == 0
        refilled = read_utterances(out)
        assert len(refilled) == 25
        assert {value for label, value in spans(refilled) if label == slot} <= {
            ("Katalog", "Wert")} | set(SlotLexicon.build(german[:10]).values["de"][slot])
        written.append([(item.id, item.tokens, item.tags) for item in refilled])
    assert written[0] == written[1]  # the server refills as the library does
    bad = tmp_path / "bad.tsv"
    bad.write_text(f"{slot}\tok\nno-such-type\tx\n", encoding="utf-8")
    assert main(["augment", "--generator", str(generator_dir), "--catalogue", str(bad),
                 "--out", str(out)]) == 2
    assert f"{bad}:2: slot_type: unknown slot type 'no-such-type'" in capsys.readouterr().err
