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
def channel(store, tmp_path_factory):
    running = start_server(ServerConfig(tracking_uri=store[0], address="127.0.0.1:0",
                                        state_dir=tmp_path_factory.mktemp("state")),
                           load_in_background=False)
    running.load_generators()
    with client.connect(f"127.0.0.1:{running.port}") as channel:
        yield channel
    running.stop(grace=0)


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
