"""The wire codec: proto messages <-> library records (``Utterance``, ``nlu.parse.Parse``),
the enum maps, and ``RequestError``.

Servicers (``service/augmentation.py``, ``service/nlu.py``, ``service/training.py``) and the client
(``service/client.py``) all convert through this module, so a field is named and mapped in
one place. It imports only the generated stubs, ``grpc`` and ``nlu`` records: no torch, no
MLflow.

Adding an RPC, step by step:

1. **Proto.** Add the ``rpc`` and its messages to ``protos/nlu_bootstrap/v1/<service>.proto``
   (a new service: a new ``.proto`` file in that folder; reuse ``AnnotatedUtterance`` from
   ``utterance.proto``). Document each field's units, limits and what an unset value means.
2. **Stubs.** ``python -m service.generated.regenerate`` rewrites ``service/generated/``;
   commit the result. ``tests/test_service_protos.py`` fails while the committed stubs differ
   from what the protos generate.
3. **Codec.** Here: functions from the new messages to library records and back, and a
   name <-> enum map for every new enum (the client takes names, the servicer gets enums).
4. **Servicer.** A method on the service's servicer class (``service/<service>.py``) that
   checks the request, raises ``RequestError(code, "field: what is wrong")`` for what it
   refuses and turns it into ``context.abort`` at the method's edge; library calls only, no
   model code. Heavy imports inside the method.
5. **Server.** A new service is added in ``service/server.py``: ``start_server`` calls
   ``add_<Service>Servicer_to_server``, and its full name goes into ``SERVICES``, which the
   health statuses (NOT_SERVING until the registry is read, SERVING after) and the
   reflection list are built from. Token auth, TLS, message-size and concurrency limits
   apply to every service on the server without more code; a new limit is a
   ``ServerConfig`` field (and a ``serve`` flag in ``service/commands/serve.py``).
6. **Client.** A function in ``service/client.py`` that builds the request from plain
   arguments and returns library records (``RpcError`` passes through).
7. **CLI.** The command's ``--server HOST:PORT`` path in ``service/commands/`` calls the
   client function (as ``augment --server`` does).
8. **Tests.** Over a real loopback server (``start_server`` on ``127.0.0.1:0``): the happy
   path through the client, every refusal's status code and message, and that the server
   still serves after them.
"""

from __future__ import annotations

import re
from typing import Sequence

import grpc

from nlu.parse import IntentScore, Parse, SlotSpan
from nlu.utterance import Utterance
from service.generated.nlu_bootstrap.v1 import (augmentation_pb2, nlu_pb2, training_pb2,
                                                utterance_pb2)

SEED_METADATA_KEY = "nlu-bootstrap-seed"  # initial metadata of an Augment stream: its seed

# name (as clients and the engine spell it) -> wire enum, and back
SAMPLING_METHODS = {"greedy": augmentation_pb2.SAMPLING_METHOD_GREEDY,
                    "temperature": augmentation_pb2.SAMPLING_METHOD_TEMPERATURE,
                    "top-k": augmentation_pb2.SAMPLING_METHOD_TOP_K,
                    "top-p": augmentation_pb2.SAMPLING_METHOD_TOP_P}
SAMPLING_METHOD_NAMES = {enum: name for name, enum in SAMPLING_METHODS.items()}
# gan.lexicon.SLOT_VALUE_SOURCES <-> wire; unspecified (0) maps to None
SLOT_VALUE_ENUMS = {"generated": augmentation_pb2.SLOT_VALUES_GENERATED,
                    "generator-lexicon": augmentation_pb2.SLOT_VALUES_GENERATOR_LEXICON,
                    "given-lexicon": augmentation_pb2.SLOT_VALUES_GIVEN_LEXICON}
SLOT_VALUES = {enum: name for name, enum in SLOT_VALUE_ENUMS.items()}
# a bootstrap job's data section key <-> wire split
DATA_SPLITS = {"source": training_pb2.DATA_SPLIT_SOURCE,
               "target_train": training_pb2.DATA_SPLIT_TARGET_TRAIN,
               "dev": training_pb2.DATA_SPLIT_DEV, "test": training_pb2.DATA_SPLIT_TEST}
SPLIT_KEYS = {enum: key for key, enum in DATA_SPLITS.items()}

# A registered model "name@alias" or a run id: names and aliases are plain identifiers, so no
# path, URI scheme or traversal ever reaches MLflow.
_REGISTERED = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}@[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


class RequestError(Exception):
    """A request the server refuses: a gRPC status code and a message naming the field."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


def slot_values(value: int) -> str | None:
    """The wire ``slot_values`` as the engine's name; None when unspecified. An enum value this
    server does not know (proto3 keeps it) is refused, not read as unspecified."""
    if value == augmentation_pb2.SLOT_VALUES_UNSPECIFIED:
        return None
    if value not in SLOT_VALUES:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"slot_values: unknown value {value}")
    return SLOT_VALUES[value]


def check_reference(reference: str, field: str = "generator") -> str:
    """``reference`` if it is ``name@alias`` or a run id, else INVALID_ARGUMENT naming ``field``."""
    if _REGISTERED.match(reference) or _RUN_ID.match(reference):
        return reference
    raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                       f"{field}: {reference!r} is neither a registered 'name@alias' nor a run id")


def utterance_to_message(utterance: Utterance) -> utterance_pb2.AnnotatedUtterance:
    return utterance_pb2.AnnotatedUtterance(
        tokens=utterance.tokens, tags=utterance.tags, intent=utterance.intent,
        language=utterance.language, id=utterance.id or "")


def message_to_utterance(message: utterance_pb2.AnnotatedUtterance, *,
                         source: str | None = None) -> Utterance:
    """Validate a wire utterance into an ``Utterance`` (raises ``NluDataError`` if malformed)."""
    return Utterance(tuple(message.tokens), tuple(message.tags), message.intent,
                     message.language, id=message.id or None, source=source)


def catalogue_to_messages(catalogue) -> list[augmentation_pb2.CatalogueValue]:
    """A ``gan.lexicon.SlotLexicon`` (a catalogue read by ``gan.catalogue``) as wire values:
    each value's words joined by spaces, which the server splits into the same words."""
    return [augmentation_pb2.CatalogueValue(slot_type=slot, value=" ".join(value),
                                            language=language)
            for language, slots in catalogue.values.items()
            for slot, values in slots.items() for value in values]


def catalogue_entries(messages) -> list[tuple[str, str, str | None]]:
    """Wire values as ``gan.catalogue.catalogue_from_entries`` takes them (no language:
    None)."""
    return [(message.slot_type, message.value, message.language or None)
            for message in messages]


def gate_report_message(report) -> augmentation_pb2.GateReport:
    """The wire form of a ``gan.gate.GateReport`` (the steps the server runs)."""
    return augmentation_pb2.GateReport(
        seen=report.seen, malformed=report.malformed, duplicates=report.duplicates,
        low_score=report.low_score, kept=report.kept, surplus=report.surplus,
        disagreement=report.disagreement, train_copies=report.train_copies)


def parse_input_message(item: str | Sequence[str]) -> nlu_pb2.ParseInput:
    """A ``ParseInput``: raw text for a ``str``, pre-tokenised words for a sequence of them."""
    if isinstance(item, str):
        return nlu_pb2.ParseInput(text=item)
    return nlu_pb2.ParseInput(tokens=nlu_pb2.Tokens(tokens=item))


def request_inputs(request: nlu_pb2.ParseRequest, first_input: int = 0) -> list[str | list[str]]:
    """The request's inputs as ``TrainedNlu.parse`` takes them (INVALID_ARGUMENT for none, or
    for an input that holds neither text nor tokens, numbered from ``first_input``)."""
    if not request.inputs:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           "inputs: empty; give at least one text or list of tokens")
    inputs: list[str | list[str]] = []
    for position, item in enumerate(request.inputs):
        kind = item.WhichOneof("input")
        if kind is None:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"inputs[{first_input + position}]: neither text nor tokens")
        inputs.append(item.text if kind == "text" else list(item.tokens.tokens))
    return inputs


def parse_to_message(parse: Parse) -> nlu_pb2.Parse:
    """The wire form of an ``nlu.parse.Parse``."""
    return nlu_pb2.Parse(
        utterance=utterance_pb2.AnnotatedUtterance(tokens=parse.tokens, tags=parse.tags,
                                                   intent=parse.intent, language=parse.language),
        probability=parse.probability,
        ranking=[nlu_pb2.IntentScore(intent=score.intent, probability=score.probability)
                 for score in parse.ranking],
        slots=[nlu_pb2.SlotSpan(type=slot.type, value=slot.value, start=slot.start, end=slot.end,
                                **({} if slot.start_char is None else
                                   {"start_char": slot.start_char, "end_char": slot.end_char}))
               for slot in parse.slots],
        **({} if parse.text is None else {"text": parse.text}))


def message_to_parse(message: nlu_pb2.Parse) -> Parse:
    """An ``nlu.parse.Parse`` from its wire form."""
    utterance = message.utterance
    return Parse(
        text=message.text if message.HasField("text") else None,
        tokens=tuple(utterance.tokens), language=utterance.language, intent=utterance.intent,
        probability=message.probability,
        ranking=tuple(IntentScore(score.intent, score.probability) for score in message.ranking),
        tags=tuple(utterance.tags),
        slots=tuple(SlotSpan(slot.type, slot.value, slot.start, slot.end,
                             slot.start_char if slot.HasField("start_char") else None,
                             slot.end_char if slot.HasField("end_char") else None)
                    for slot in message.slots))
