"""Python client for the nlu-bootstrap gRPC services (the wire codec is ``service.messages``).

    with connect("localhost:50051", token="...") as channel:
        for utterance in augment(channel, "snips-gan@champion", 100, seed=1):
            ...
        for result in parse(channel, "nlu-de@production", ["wecke mich um sieben"], language="de"):
            print(result.intent, result.slots)

Every call carries the bearer token (if any) as ``authorization: Bearer <token>`` metadata.
Failed calls raise ``grpc.RpcError`` with the server's status code and message.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator, Sequence

import grpc

from nlu.utterance import Utterance
from service.generated.nlu_bootstrap.v1 import (augmentation_pb2, augmentation_pb2_grpc,
                                                nlu_pb2, nlu_pb2_grpc, training_pb2,
                                                training_pb2_grpc, utterance_pb2)
from service.messages import (DATA_SPLITS, SAMPLING_METHODS, SLOT_VALUE_ENUMS,
                              catalogue_to_messages, message_to_parse,
                              message_to_utterance, parse_input_message, utterance_to_message)
from service.messages import SEED_METADATA_KEY  # noqa: F401  (callers read a stream's seed with it)

UPLOAD_CHUNK = 500  # utterances per upload message: far below the default 4 MiB message limit
PARSE_CHUNK = 500  # inputs per ParseStream message: within the server's default limit (1,000)


def connect(target: str, *, token: str | None = None, tls_ca: Path | str | None = None,
            max_message_bytes: int = 4 * 1024 * 1024) -> grpc.Channel:
    """A channel to ``target`` (``host:port``); TLS when ``tls_ca`` (a PEM file) is given."""
    options = [("grpc.max_receive_message_length", max_message_bytes),
               ("grpc.max_send_message_length", max_message_bytes),
               # One connection per channel (not a process-wide shared one), so that a
               # multi-process server (serve --processes) sees its clients spread out.
               ("grpc.use_local_subchannel_pool", 1)]
    if tls_ca is None:
        channel = grpc.insecure_channel(target, options=options)
    else:
        credentials = grpc.ssl_channel_credentials(Path(tls_ca).read_bytes())
        channel = grpc.secure_channel(target, credentials, options=options)
    if token:
        channel = grpc.intercept_channel(channel, _BearerToken(token))
    return channel


def sampling_options(method: str = "temperature", *, temperature: float | None = None,
                     top_k: int | None = None, top_p: float | None = None):
    if method not in SAMPLING_METHODS:
        raise ValueError(f"sampling method must be one of {sorted(SAMPLING_METHODS)}, got {method!r}")
    optional = {name: value for name, value in
                (("temperature", temperature), ("top_k", top_k), ("top_p", top_p))
                if value is not None}
    return augmentation_pb2.SamplingOptions(method=SAMPLING_METHODS[method], **optional)


def augment_request(generator: str, count: int, *, sampling=None, seed: int | None = None,
                    quotas: dict[str, int] | None = None,
                    slot_quotas: dict[str, int] | None = None, language: str = "",
                    deduplicate: bool | None = None, min_discriminator_score: float | None = None,
                    agree_with: str | None = None, slot_values: str | None = None,
                    lexicon: Iterable[Utterance] = (), catalogue=None,
                    catalogue_share: float | None = None):
    """An ``AugmentRequest``; ``slot_values`` is one of ``gan.lexicon.SLOT_VALUE_SOURCES``;
    ``catalogue`` a ``SlotLexicon`` (``gan.catalogue.read_catalogue``)."""
    gate = {name: value for name, value in (("deduplicate", deduplicate),
                                            ("min_discriminator_score", min_discriminator_score),
                                            ("agree_with", agree_with))
            if value is not None}
    return augmentation_pb2.AugmentRequest(
        generator=generator, count=count, sampling=sampling or sampling_options(),
        intent_quotas=quotas or {}, slot_quotas=slot_quotas or {}, language=language,
        gate=augmentation_pb2.GateOptions(**gate),
        slot_values=SLOT_VALUE_ENUMS[slot_values] if slot_values else 0,
        lexicon=[utterance_to_message(utterance) for utterance in lexicon],
        catalogue=catalogue_to_messages(catalogue) if catalogue is not None else [],
        **({} if seed is None else {"seed": seed}),
        **({} if catalogue_share is None else {"catalogue_share": catalogue_share}))


def refill_request(utterances: Iterable[Utterance], catalogue, count: int, *,
                   catalogue_share: float | None = None, seed: int | None = None,
                   language: str = ""):
    """A ``RefillRequest``: ``catalogue`` is a ``SlotLexicon``, or None to redraw the
    utterances' own values only."""
    optional = {name: value for name, value in (("catalogue_share", catalogue_share),
                                                ("seed", seed)) if value is not None}
    return augmentation_pb2.RefillRequest(
        utterances=[utterance_to_message(utterance) for utterance in utterances],
        catalogue=[] if catalogue is None else catalogue_to_messages(catalogue), count=count,
        language=language,
        **optional)


class AugmentStream:
    """The utterances of one ``Augment`` call, as an iterator that reads them as they arrive;
    ``gate_report`` (the server's ``GateReport`` message) is set once the stream has ended."""

    def __init__(self, responses, source: str):
        self.gate_report: augmentation_pb2.GateReport | None = None
        self._utterances = self._read(responses, source)

    def _read(self, responses, source: str) -> Iterator[Utterance]:
        for response in responses:
            if response.HasField("gate_report"):
                self.gate_report = response.gate_report
            for message in response.utterances:
                yield message_to_utterance(message, source=source)

    def __iter__(self) -> "AugmentStream":
        return self

    def __next__(self) -> Utterance:
        return next(self._utterances)


def augment(channel: grpc.Channel, generator: str, count: int, *, timeout: float | None = None,
            **options) -> AugmentStream:
    """Stream ``count`` generated utterances (options as in ``augment_request``)."""
    stub = augmentation_pb2_grpc.AugmentationServiceStub(channel)
    responses = stub.Augment(augment_request(generator, count, **options), timeout=timeout)
    return AugmentStream(responses, source=f"gan:{generator}")


def refill(channel: grpc.Channel, utterances: Iterable[Utterance], catalogue, count: int, *,
           timeout: float | None = None, **options) -> AugmentStream:
    """Stream ``count`` refilled copies of ``utterances`` (options as in ``refill_request``)."""
    stub = augmentation_pb2_grpc.AugmentationServiceStub(channel)
    responses = stub.Refill(refill_request(utterances, catalogue, count, **options),
                            timeout=timeout)
    return AugmentStream(responses, source="refill")


def list_generators(channel: grpc.Channel, *, timeout: float | None = 30):
    stub = augmentation_pb2_grpc.AugmentationServiceStub(channel)
    return list(stub.ListGenerators(augmentation_pb2.ListGeneratorsRequest(),
                                    timeout=timeout).generators)


def describe_generator(channel: grpc.Channel, generator: str, *, timeout: float | None = 30):
    stub = augmentation_pb2_grpc.AugmentationServiceStub(channel)
    return stub.DescribeGenerator(augmentation_pb2.DescribeGeneratorRequest(generator=generator),
                                  timeout=timeout)


def parse_request(model: str, inputs: Sequence[str | Sequence[str]], *, language: str,
                  top_k: int | None = None) -> nlu_pb2.ParseRequest:
    """A ``ParseRequest``; each input is raw text (``str``) or pre-tokenised words."""
    return nlu_pb2.ParseRequest(model=model, language=language,
                                inputs=[parse_input_message(item) for item in inputs],
                                **({} if top_k is None else {"top_k": top_k}))


def parse(channel: grpc.Channel, model: str, inputs: Sequence[str | Sequence[str]], *,
          language: str, top_k: int | None = None, timeout: float | None = 30):
    """``nlu.parse.Parse`` records for ``inputs`` (one ``Parse`` call: within the server's
    per-call limit; ``parse_stream`` takes any number)."""
    stub = nlu_pb2_grpc.NluServiceStub(channel)
    response = stub.Parse(parse_request(model, inputs, language=language, top_k=top_k),
                          timeout=timeout)
    return [message_to_parse(message) for message in response.parses]


def parse_stream(channel: grpc.Channel, model: str, inputs: Iterable[str | Sequence[str]], *,
                 language: str, top_k: int | None = None, chunk: int = PARSE_CHUNK,
                 timeout: float | None = None) -> Iterator:
    """Parse any number of ``inputs`` (read lazily, e.g. a file's lines) through
    ``ParseStream``, ``chunk`` per message; yields ``nlu.parse.Parse`` records in order."""
    def requests():
        batch: list = []
        for item in inputs:
            batch.append(item)
            if len(batch) == chunk:
                yield parse_request(model, batch, language=language, top_k=top_k)
                batch = []
        if batch:
            yield parse_request(model, batch, language=language, top_k=top_k)

    stub = nlu_pb2_grpc.NluServiceStub(channel)
    for response in stub.ParseStream(requests(), timeout=timeout):
        for message in response.parses:
            yield message_to_parse(message)


def list_models(channel: grpc.Channel, *, timeout: float | None = 30):
    stub = nlu_pb2_grpc.NluServiceStub(channel)
    return list(stub.ListModels(nlu_pb2.ListModelsRequest(), timeout=timeout).models)


def describe_model(channel: grpc.Channel, model: str, *, timeout: float | None = 30):
    stub = nlu_pb2_grpc.NluServiceStub(channel)
    return stub.DescribeModel(nlu_pb2.DescribeModelRequest(model=model), timeout=timeout)


def submit_job(channel: grpc.Channel, *, regime: str = "", config_yaml: str = "",
               dataset: str = "", uploads: dict[str, Iterable[Utterance]] | None = None,
               timeout: float | None = 300) -> training_pb2.Job:
    """Submit a bootstrap training job on a registered ``dataset`` or on ``uploads``, a
    mapping from split (``source``, ``target_train``, ``dev``, ``test``) to utterances."""
    uploads = uploads or {}
    unknown = sorted(set(uploads) - set(DATA_SPLITS))
    if unknown:
        raise ValueError(f"uploads: unknown split(s) {unknown}; known: {sorted(DATA_SPLITS)}")

    def requests():
        yield training_pb2.SubmitJobRequest(spec=training_pb2.JobSpec(
            dataset=dataset, regime=regime, config_yaml=config_yaml))
        for split, utterances in uploads.items():
            chunk: list[utterance_pb2.AnnotatedUtterance] = []
            for utterance in utterances:
                chunk.append(utterance_to_message(utterance))
                if len(chunk) == UPLOAD_CHUNK:
                    yield _upload(split, chunk)
                    chunk = []
            if chunk:
                yield _upload(split, chunk)

    stub = training_pb2_grpc.TrainingServiceStub(channel)
    return stub.SubmitJob(requests(), timeout=timeout).job


def _upload(split: str, chunk: list) -> training_pb2.SubmitJobRequest:
    return training_pb2.SubmitJobRequest(
        data=training_pb2.UtteranceChunk(split=DATA_SPLITS[split], utterances=chunk))


def get_job(channel: grpc.Channel, job_id: str, *, timeout: float | None = 30) -> training_pb2.Job:
    stub = training_pb2_grpc.TrainingServiceStub(channel)
    return stub.GetJob(training_pb2.GetJobRequest(job_id=job_id), timeout=timeout).job


def watch_job(channel: grpc.Channel, job_id: str, *,
              timeout: float | None = None) -> Iterator[training_pb2.JobEvent]:
    stub = training_pb2_grpc.TrainingServiceStub(channel)
    for response in stub.WatchJob(training_pb2.WatchJobRequest(job_id=job_id), timeout=timeout):
        yield response.event


def cancel_job(channel: grpc.Channel, job_id: str, *, timeout: float | None = 60) -> training_pb2.Job:
    stub = training_pb2_grpc.TrainingServiceStub(channel)
    return stub.CancelJob(training_pb2.CancelJobRequest(job_id=job_id), timeout=timeout).job


class _BearerToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor,
                   grpc.StreamUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds ``authorization: Bearer <token>`` to every call (works on plaintext channels too)."""

    def __init__(self, token: str):
        self.header = ("authorization", f"Bearer {token}")

    def _with_token(self, details):
        return _CallDetails(details.method, details.timeout,
                            [*(details.metadata or ()), self.header], details.credentials,
                            details.wait_for_ready, details.compression)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_stream_unary(self, continuation, details, request_iterator):
        return continuation(self._with_token(details), request_iterator)

    def intercept_stream_stream(self, continuation, details, request_iterator):
        return continuation(self._with_token(details), request_iterator)


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, method, timeout, metadata, credentials, wait_for_ready, compression):
        self.method = method
        self.timeout = timeout
        self.metadata = metadata
        self.credentials = credentials
        self.wait_for_ready = wait_for_ready
        self.compression = compression
