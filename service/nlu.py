"""NluService: parse utterances with registered NLU models (intent, probability, slots).

A thin shell over ``TrainedNlu.parse`` (``nlu.parse``): the request's model is found in the
MLflow registry and cached by ``GeneratorStore`` (the same store, cache and reference checks
as ``Augment``), its inputs are parsed in batches, and every bad input the library refuses
(``ParseInputError``: empty text, more than ``nlu.parse.MAX_TOKENS`` tokens, a control
character, a language the model does not know, raw text of a language written without
spaces) is INVALID_ARGUMENT with the library's message, which names the input
(``inputs[3]: empty text``).

* ``ParseStream`` errors number the inputs from the stream's first (``inputs[1234]``).
* Limits: at most ``max_inputs`` inputs per ``Parse`` call and per ``ParseStream`` message
  (RESOURCE_EXHAUSTED beyond); the server's message-size limit; the per-call budget
  (``call_budget_seconds``, the whole stream for ``ParseStream``), checked before each
  message is parsed: DEADLINE_EXCEEDED once spent.
* Alias moves: ``name@alias`` is resolved to a run at most every
  ``GeneratorStore.REFERENCE_TTL_SECONDS`` (10 s), so a model promoted in the registry
  (``candidate`` -> ``production``) is parsed with from then on, without a restart; each
  response names the run that answered.
"""

from __future__ import annotations

import time
from typing import Iterator

import grpc

from nlu.parse import ParseInputError
from service.augmentation import GeneratorStore
from service.generated.nlu_bootstrap.v1 import nlu_pb2, nlu_pb2_grpc
from service.messages import RequestError, check_reference, parse_to_message, request_inputs


DEFAULT_TOP_K = 3  # intents ranked per parse when the request does not say


class NluServicer(nlu_pb2_grpc.NluServiceServicer):
    def __init__(self, models: GeneratorStore, *, max_inputs: int = 1_000,
                 call_budget_seconds: float = 60.0, batch_size: int = 256):
        self.models = models
        self.max_inputs = max_inputs
        self.call_budget_seconds = call_budget_seconds
        self.batch_size = batch_size  # utterances run through the model at once

    def Parse(self, request, context):
        deadline = time.monotonic() + self.call_budget_seconds
        try:
            self._require_ready()
            run_id, model = self._model(request.model)
            parses = self._parse(model, request, deadline, context)
        except RequestError as error:
            context.abort(error.code, str(error))
        return nlu_pb2.ParseResponse(run_id=run_id, parses=parses)

    def ParseStream(self, request_iterator, context) -> Iterator[nlu_pb2.ParseResponse]:
        deadline = time.monotonic() + self.call_budget_seconds
        reference = language = None
        received = 0  # inputs in the messages before this one: errors count from the first
        for request in request_iterator:
            try:
                if reference is None:
                    self._require_ready()
                    reference, language = request.model, request.language
                elif request.model not in ("", reference) or request.language not in ("", language):
                    raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                       "model and language: set on the stream's first message; "
                                       "a later message may leave them empty, not change them")
                request.model, request.language = reference, language
                # resolved per message: a long stream follows an alias move like separate calls
                run_id, model = self._model(reference)
                parses = self._parse(model, request, deadline, context, first_input=received)
            except RequestError as error:
                context.abort(error.code, str(error))
            received += len(request.inputs)
            yield nlu_pb2.ParseResponse(run_id=run_id, parses=parses)

    def ListModels(self, request, context):
        try:
            self._require_ready()
        except RequestError as error:
            context.abort(error.code, str(error))
        return nlu_pb2.ListModelsResponse(models=[
            nlu_pb2.RegisteredNluModel(name=entry.name, alias_versions=entry.alias_versions,
                                       latest_version=entry.latest_version,
                                       latest_run_id=entry.latest_run_id)
            for entry in self.models.nlu_models()])

    def DescribeModel(self, request, context):
        from nlu.tracking import client

        try:
            self._require_ready()
            run_id, model = self._model(request.model)
        except RequestError as error:
            context.abort(error.code, str(error))
        metrics = client(self.models.tracking_uri).get_run(run_id).data.metrics
        return nlu_pb2.DescribeModelResponse(
            model=request.model, run_id=run_id, languages=model.languages,
            intents=sorted(model.intents), slot_types=model.slot_types,
            metrics={name: float(value) for name, value in metrics.items()})

    def _require_ready(self) -> None:
        if not self.models.ready.is_set():
            raise RequestError(grpc.StatusCode.UNAVAILABLE,
                               "the model registry is still loading; retry shortly")

    def _model(self, reference: str):
        """``(run id, TrainedNlu)``: NOT_FOUND for an unknown model, INVALID_ARGUMENT for a
        malformed reference or a generator."""
        from nlu.tracking import ModelNotFoundError

        try:
            return self.models.nlu_model(check_reference(reference, "model"), "model")
        except ModelNotFoundError as error:
            raise RequestError(grpc.StatusCode.NOT_FOUND, f"model: {error.for_client()}") from None

    def _parse(self, model, request, deadline: float, context,
               first_input: int = 0) -> list[nlu_pb2.Parse]:
        """The wire parses of one request's inputs (at most ``max_inputs``, so one message
        costs at most a second or two: the budget is checked before each). Errors number the
        inputs from ``first_input`` (a stream's earlier messages held that many)."""
        remaining = context.time_remaining()
        if time.monotonic() > deadline or (remaining is not None and remaining <= 0):
            raise RequestError(grpc.StatusCode.DEADLINE_EXCEEDED,
                               f"this server's budget of {self.call_budget_seconds:g} s per "
                               f"call ran out")
        if len(request.inputs) > self.max_inputs:
            raise RequestError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                               f"inputs: {len(request.inputs)} is over this server's limit of "
                               f"{self.max_inputs} per message (send more through ParseStream)")
        top_k = request.top_k if request.HasField("top_k") else DEFAULT_TOP_K
        if top_k < 1:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"top_k: must be >= 1, got {top_k}")
        # no language given: the model's, if it knows one only (as predict and the pyfunc do)
        language = request.language or (model.languages[0] if len(model.languages) == 1
                                        else "")
        try:
            parses = model.parse(request_inputs(request, first_input), language=language,
                                 top_k=top_k, batch_size=self.batch_size)
        except ParseInputError as error:  # names the input: "inputs[3]: empty text"
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               str(_numbered_from(error, first_input))) from None
        return [parse_to_message(parse) for parse in parses]


def _numbered_from(error, first_input: int):
    """The library's error, its ``inputs[i]`` counted from ``first_input``."""
    field = error.field or ""
    if not (first_input and field.startswith("inputs[") and field.endswith("]")):
        return error
    return type(error)(error.message, field=f"inputs[{first_input + int(field[7:-1])}]")
