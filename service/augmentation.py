"""AugmentationService: stream synthetic annotated utterances from registered generators.

Generators, and the NLU models of the agreement gate (``gate.agree_with``), are found in the
MLflow model registry only: a request names ``name@alias`` or the run id that logged the
model, never a path or URI. Loaded models are cached (LRU by run id); reference look-ups are
cached for a few seconds so that moving an alias takes effect quickly without a registry
query per call.

``Augment`` pulls utterances from the engine's lazy iterator one batch at a time, sends them
in chunks of ``chunk_size``, and checks before each utterance that the client is still there
and the deadline has not passed, so a cancelled or expired call stops generating.

``Refill`` needs no generator: real utterances and a catalogue sent inline (each value checked
as ``gan.catalogue`` checks a file's, errors naming ``catalogue[i]``), refilled by the library
and streamed like ``Augment``'s utterances.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import grpc

from service.generated.nlu_bootstrap.v1 import augmentation_pb2, augmentation_pb2_grpc
from service.messages import (SAMPLING_METHOD_NAMES, SEED_METADATA_KEY, RequestError,
                              catalogue_entries, check_reference, gate_report_message,
                              message_to_utterance, slot_values, utterance_to_message)

log = logging.getLogger(__name__)

class GeneratorStore:
    """The registered generators of one MLflow store, and a cache of loaded models:
    generators, and NLU models (the agreement gate's, and those ``NluService`` parses with).

    A reference (``name@alias``) is resolved to its run at most every
    ``REFERENCE_TTL_SECONDS``: an alias moved in the registry is served from then on."""

    REFERENCE_TTL_SECONDS = 10.0

    def __init__(self, tracking_uri: str, *, cache_size: int = 4):
        self.tracking_uri = tracking_uri
        self.cache_size = cache_size
        self.ready = threading.Event()
        # run id -> (is a generator, Augmenter | TrainedNlu)
        self._loaded: OrderedDict[str, tuple[bool, object]] = OrderedDict()
        self._runs: dict[str, tuple[float, str]] = {}  # reference -> (expiry, run id)
        self._lock = threading.Lock()
        self._load_lock = threading.Lock()  # one model load at a time: they are CPU-bound

    def load(self) -> None:
        """Read the registry and preload the generators aliases point at (up to the cache).

        A generator that fails to load is logged and skipped: one broken registration must
        not keep the whole service NOT_SERVING. Requests for it fail when they ask for it.
        """
        for entry in self.generators():
            for alias in entry.alias_versions:
                if len(self._loaded) >= self.cache_size:
                    break
                try:
                    self.get(f"{entry.name}@{alias}")
                except Exception:
                    log.exception("could not preload generator %s@%s", entry.name, alias)
        self.ready.set()

    def generators(self) -> list:
        """The registered generators now (read on each call: registrations come and go)."""
        return self._read_registry("generator")

    def nlu_models(self) -> list:
        """The registered NLU models now (every registered model that is not a generator)."""
        return self._read_registry("nlu")

    def _read_registry(self, kind: str) -> list:
        """``nlu.tracking.RegisteredModel``s of one kind, by name."""
        from nlu.tracking import registered_models

        return [entry for entry in registered_models(self.tracking_uri) if entry.kind == kind]

    def run_id(self, reference: str) -> str:
        """The run a checked reference points at (raises ModelNotFoundError); cached briefly."""
        from nlu.tracking import model_run_id

        now = time.monotonic()
        with self._lock:
            cached = self._runs.get(reference)
        if cached is not None and cached[0] > now:
            return cached[1]
        run_id = model_run_id(reference, self.tracking_uri)
        with self._lock:
            self._runs[reference] = (now + self.REFERENCE_TTL_SECONDS, run_id)
        return run_id

    def get(self, reference: str):
        """``(run id, Augmenter)`` for a checked reference, loading it on first use.

        Raises ``ModelNotFoundError`` for an unknown reference and ``RequestError`` for a
        model that is not a generator or does not load.
        """
        from gan.augment import Augmenter

        run_id = self.run_id(reference)
        return run_id, self._cached(run_id, reference, "generator", True, Augmenter.load)

    def nlu_model(self, reference: str, field: str = "gate.agree_with"):
        """``(run id, TrainedNlu)`` for a checked reference, loaded on first use (errors as
        ``get``'s, for a model that is a generator; ``field`` names the request's field)."""
        from nlu.training import TrainedNlu

        run_id = self.run_id(reference)
        return run_id, self._cached(run_id, reference, field, False, TrainedNlu.from_store)

    def _cached(self, run_id: str, reference: str, field: str, generator: bool, load):
        """The model of ``run_id`` (cached, else loaded), checked to be a generator or not, as
        asked."""
        with self._lock:
            cached = self._loaded.get(run_id)
            if cached is not None:
                self._loaded.move_to_end(run_id)
        if cached is None:
            with self._load_lock:
                with self._lock:
                    cached = self._loaded.get(run_id)
                if cached is None:
                    cached = self._load(run_id, reference, field, generator, load)
        is_generator, model = cached
        if is_generator != generator:
            wanted = "a GAN generator" if generator else "an NLU model (it is a GAN generator)"
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"{field}: {reference!r} is a model but not {wanted}")
        return model

    def _load(self, run_id: str, reference: str, field: str, generator: bool, load):
        """``(is a generator, model)``: the model loaded and cached (LRU; generators and NLU
        models alike) if its run's tag says it is the kind asked for, else not loaded."""
        from nlu.tracking import GENERATOR_RUN_TAG, ModelNotFoundError, client

        tag, value = GENERATOR_RUN_TAG
        is_generator = client(self.tracking_uri).get_run(run_id).data.tags.get(tag) == value
        if is_generator != generator:
            return is_generator, None
        try:
            model = load(run_id, self.tracking_uri)
        except ModelNotFoundError:
            raise
        except Exception as error:  # a registered model that cannot be loaded
            log.exception("loading %s %s (run %s) failed", field, reference, run_id)
            raise RequestError(grpc.StatusCode.INTERNAL,
                               f"{field}: {reference!r} could not be loaded: {error}") from None
        with self._lock:
            self._loaded[run_id] = (is_generator, model)
            while len(self._loaded) > self.cache_size:
                self._loaded.popitem(last=False)
        return is_generator, model


@dataclass
class StreamCounters:
    """What happened to ``Augment`` streams (read by tests and the load benchmark)."""

    started: int = 0
    completed: int = 0
    stopped_early: int = 0  # client cancelled, deadline passed or server shutting down
    utterances_sent: int = 0


@dataclass
class _StreamRecord:
    sent: int = 0
    complete: bool = False  # every requested utterance was produced
    finished: bool = False  # counted and its slot released


class AugmentationServicer(augmentation_pb2_grpc.AugmentationServiceServicer):
    def __init__(self, generators: GeneratorStore, *, max_count: int = 10_000,
                 max_streams: int = 32, batch_size: int = 128, chunk_size: int = 128,
                 call_budget_seconds: float = 60.0, max_message_bytes: int = 4 * 1024 * 1024,
                 max_catalogue_values: int = 100_000):
        self.generators = generators
        self.max_catalogue_values = max_catalogue_values  # per call: reading them is work
        # Response messages stay under the server's send limit, whatever the utterances'
        # length (a lexicon of long values made the first message too large to send); the
        # reserve is for the gate report the last message carries.
        self.chunk_bytes = max_message_bytes - min(64 * 1024, max_message_bytes // 4)
        self.call_budget_seconds = call_budget_seconds  # a call past it holds a core for others
        self.max_count = max_count
        self.max_streams = max_streams
        self.batch_size = batch_size  # utterances the engine samples at once
        self.chunk_size = chunk_size  # utterances per response message (one engine batch:
        # each message costs the Python server a fixed share of a call)
        self.counters = StreamCounters()
        self._streams = threading.BoundedSemaphore(max_streams)
        self._counters_lock = threading.Lock()

    def Augment(self, request, context):
        try:
            self._require_ready()
            self._check_count(request.count)
            reference = check_reference(request.generator)
            sampling = sampling_config(request.sampling)
            values_from = slot_values(request.slot_values)
            gate = gate_config(request.gate)
            nlu_model = self._nlu_model(request.gate.agree_with) if gate.nlu_agreement else None
            _, augmenter = self._generator(reference)
            quotas, slot_quotas = check_quotas(request, augmenter.info)
            language = check_language(request.language, augmenter.info)
            seed = request.seed if request.HasField("seed") else random.randrange(2 ** 31)
            lexicon = request_lexicon(request)
            only_language = augmenter.info.languages[0] if len(
                augmenter.info.languages) == 1 else None
            catalogue = self._catalogue(request.catalogue, language or only_language,
                                        augmenter.info.slot_types)
            # a share alone applies to the generator's own catalogue, kept from its job
            share = catalogue_share(request, catalogue if catalogue is not None
                                    else augmenter.catalogue)
            # generate checks its arguments (seed range; a slot type the generator never
            # wrote in the language asked for ...) before it generates anything
            try:
                generation = augmenter.generate(
                    request.count, sampling=sampling, seed=seed, quotas=quotas,
                    slot_quotas=slot_quotas, language=language, gate=gate,
                    nlu_model=nlu_model, batch_size=min(request.count, self.batch_size),
                    lexicon=lexicon, slot_values=values_from, catalogue=catalogue,
                    catalogue_share=share, deadline=time.monotonic() + self.call_budget_seconds)
            except ValueError as error:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, str(error)) from None
        except RequestError as error:
            context.abort(error.code, str(error))
        if not self._streams.acquire(blocking=False):
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                          f"{self.max_streams} Augment streams already running; retry later")
        stream = _StreamRecord()
        # The server stops pulling from this generator when the call ends early (cancel,
        # deadline, shutdown) and may never resume it, so bookkeeping happens in a callback
        # that runs however the call ends.
        if not context.add_callback(lambda: self._finish(stream)):
            self._finish(stream)
        with self._counters_lock:
            self.counters.started += 1
        context.send_initial_metadata(((SEED_METADATA_KEY, str(seed)),))
        ended = yield from self._respond(generation, context, stream, request.count,
                                         lambda: gate_report_message(generation.report))
        if not ended:
            return
        if generation.deadline_passed:  # what was made so far went out; now say why it ends
            context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                          f"this server's budget of {self.call_budget_seconds:g} s per call ran "
                          f"out after {stream.sent} of {request.count} utterances")
        stream.complete = True

    def _respond(self, utterances, context, stream: "_StreamRecord", requested: int,
                 last_report=None):
        """Response messages of ``utterances`` in chunks under the message limit; the last
        one carries ``last_report()`` (the gate's counts). Returns whether it ran to the end
        (False: the client left or the deadline passed)."""
        chunk, chunk_bytes = [], 0
        for utterance in utterances:
            remaining = context.time_remaining()
            if not context.is_active() or (remaining is not None and remaining <= 0):
                return False
            message = utterance_to_message(utterance)
            size = message.ByteSize() + 6  # + the field's tag and length prefix
            if size > self.chunk_bytes:
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                              f"an utterance of {size:,} bytes is over this server's message "
                              f"limit, after {stream.sent} of {requested} utterances")
            if chunk and chunk_bytes + size > self.chunk_bytes:
                yield augmentation_pb2.AugmentResponse(utterances=chunk)
                stream.sent += len(chunk)
                chunk, chunk_bytes = [], 0
            chunk.append(message)
            chunk_bytes += size
            if len(chunk) == self.chunk_size:
                yield augmentation_pb2.AugmentResponse(utterances=chunk)
                stream.sent += len(chunk)
                chunk, chunk_bytes = [], 0
        # The last message carries the gate's counts (with the last utterances, if any).
        report = {} if last_report is None else {"gate_report": last_report()}
        yield augmentation_pb2.AugmentResponse(utterances=chunk, **report)
        stream.sent += len(chunk)
        return True

    def Refill(self, request, context):
        from gan.catalogue import (DEFAULT_CATALOGUE_SHARE, SlotFiller,
                                   catalogue_from_utterances, refill)
        from nlu.errors import NluDataError

        try:
            self._check_count(request.count)
            if not request.utterances:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   "utterances: give the real utterances to copy")
            if len(request.utterances) > self.max_count:
                raise RequestError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                   f"utterances: {len(request.utterances)} is over this "
                                   f"server's limit of {self.max_count} per call")
            utterances = []
            for index, message in enumerate(request.utterances):
                try:
                    utterances.append(message_to_utterance(message))
                except NluDataError as error:
                    raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                       f"utterances[{index}]: {error}") from None
            languages = {utterance.language for utterance in utterances}
            default_language = request.language or (
                next(iter(languages)) if len(languages) == 1 else None)
            slot_types = {slot for utterance in utterances for slot in utterance.slot_types}
            # no catalogue: the utterances' own values redrawn
            catalogue = (self._catalogue(request.catalogue, default_language, slot_types)
                         if request.catalogue else None)
            if request.HasField("seed") and request.seed < 0:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"seed: must be >= 0, got {request.seed}")
            seed = request.seed if request.HasField("seed") else random.randrange(2 ** 31)
            if catalogue is None and request.HasField("catalogue_share"):
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   "catalogue_share: set without a catalogue (without one, "
                                   "refill redraws the utterances' own values)")
            share = catalogue_share(request, catalogue)
            filler = SlotFiller(catalogue_from_utterances(utterances), catalogue,
                                0.0 if catalogue is None
                                else DEFAULT_CATALOGUE_SHARE if share is None else share)
            refilled = refill(utterances, filler, count=request.count, seed=seed)
        except RequestError as error:
            context.abort(error.code, str(error))
        context.send_initial_metadata(((SEED_METADATA_KEY, str(seed)),))
        yield from self._respond(refilled, context, _StreamRecord(), request.count)

    def _check_count(self, count: int) -> None:
        if count < 1:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"count: must be >= 1, got {count}")
        if count > self.max_count:
            raise RequestError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                               f"count: {count} is over this server's limit of "
                               f"{self.max_count} per call")

    def _catalogue(self, values, language: str | None, slot_types):
        """The request's inline catalogue as a ``SlotLexicon`` (None when it has none),
        checked like a catalogue file; errors name ``catalogue[i]``."""
        from gan.catalogue import CatalogueError, catalogue_from_entries

        if not values:
            return None
        if len(values) > self.max_catalogue_values:
            raise RequestError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                               f"catalogue: {len(values)} values are over this server's limit "
                               f"of {self.max_catalogue_values} per call")
        try:
            return catalogue_from_entries(catalogue_entries(values), language=language,
                                          slot_types=slot_types)[0]
        except CatalogueError as error:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, str(error)) from None

    def _finish(self, stream: "_StreamRecord") -> None:
        with self._counters_lock:
            if stream.finished:
                return
            stream.finished = True
            self.counters.utterances_sent += stream.sent
            if stream.complete:
                self.counters.completed += 1
            else:
                self.counters.stopped_early += 1
        self._streams.release()

    def ListGenerators(self, request, context):
        try:
            self._require_ready()
        except RequestError as error:
            context.abort(error.code, str(error))
        return augmentation_pb2.ListGeneratorsResponse(generators=[
            augmentation_pb2.Generator(name=entry.name, alias_versions=entry.alias_versions,
                                       latest_version=entry.latest_version,
                                       latest_run_id=entry.latest_run_id)
            for entry in self.generators.generators()])

    def DescribeGenerator(self, request, context):
        try:
            self._require_ready()
            run_id, augmenter = self._generator(check_reference(request.generator))
        except RequestError as error:
            context.abort(error.code, str(error))
        info = augmenter.info
        return augmentation_pb2.DescribeGeneratorResponse(
            generator=request.generator, run_id=run_id, languages=sorted(info.languages),
            intents=sorted(info.intents), slot_types=sorted(info.slot_types),
            metrics={name: float(value) for name, value in info.metrics.items()},
            slot_values=(augmentation_pb2.SLOT_VALUES_GENERATOR_LEXICON if augmenter.lexicon
                         else augmentation_pb2.SLOT_VALUES_GENERATED))

    def _require_ready(self) -> None:
        if not self.generators.ready.is_set():
            raise RequestError(grpc.StatusCode.UNAVAILABLE,
                               "the generator registry is still loading; retry shortly")

    def _generator(self, reference: str):
        from nlu.tracking import ModelNotFoundError

        try:
            return self.generators.get(reference)
        except ModelNotFoundError as error:
            raise RequestError(grpc.StatusCode.NOT_FOUND, f"generator: {error.for_client()}") from None

    def _nlu_model(self, reference: str):
        from nlu.tracking import ModelNotFoundError

        try:
            return self.generators.nlu_model(check_reference(reference, "gate.agree_with"))[1]
        except ModelNotFoundError as error:
            raise RequestError(grpc.StatusCode.NOT_FOUND, f"gate.agree_with: {error.for_client()}") from None


def request_lexicon(request):
    """The request's ``lexicon`` utterances as a ``SlotLexicon`` (None when it has none)."""
    from gan.lexicon import SlotLexicon
    from nlu.errors import NluDataError

    if not request.lexicon:
        return None
    utterances = []
    for index, message in enumerate(request.lexicon):
        try:
            utterances.append(message_to_utterance(message))
        except NluDataError as error:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"lexicon[{index}]: {error}") from None
    return SlotLexicon.build(utterances)


def catalogue_share(request, catalogue) -> float | None:
    """The request's ``catalogue_share``, checked against ``catalogue`` (what it applies to:
    the request's own, else the generator's); unset: None, the library's default (0.5 for a
    request's catalogue, the kept share for a generator's own)."""
    if not request.HasField("catalogue_share"):
        return None
    share = request.catalogue_share
    if not 0 <= share <= 1:  # NaN fails too
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"catalogue_share: must be in [0, 1], got {share}")
    if catalogue is None:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           "catalogue_share: set without a catalogue (the request has "
                           "none, nor does the generator keep one)")
    return share


def sampling_config(options: augmentation_pb2.SamplingOptions):
    """The engine's ``SamplingConfig`` for wire options; unset fields keep its defaults."""
    from gan.sampling import SamplingConfig

    values = {name: getattr(options, name) for name in ("temperature", "top_k", "top_p")
              if options.HasField(name)}
    if options.method != augmentation_pb2.SAMPLING_METHOD_UNSPECIFIED:
        if options.method not in SAMPLING_METHOD_NAMES:
            raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"sampling.method: unknown value {options.method}")
        values["method"] = SAMPLING_METHOD_NAMES[options.method]
    try:
        return SamplingConfig(**values)
    except ValueError as error:  # the engine's message starts with the field name
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"sampling.{error}") from None


def gate_config(options: augmentation_pb2.GateOptions):
    """The engine's ``GateConfig``: dedupe unless turned off, optional D-score threshold,
    optional NLU agreement (``agree_with``, loaded by the caller).

    The training-copy check goes with deduplication (neither repeats what exists): against
    the keys a generator keeps of its training data (``Augmenter.train_keys``); it is off for
    a generator saved without them.
    """
    from gan.gate import GateConfig

    values = {name: getattr(options, name) for name in ("deduplicate", "min_discriminator_score")
              if options.HasField(name)}
    try:
        return GateConfig(nlu_agreement=bool(options.agree_with),
                          drop_train_copies=values.get("deduplicate", True), **values)
    except ValueError as error:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"gate.{error}") from None


def check_quotas(request, info) -> tuple[dict[str, int] | None, dict[str, int] | None]:
    """The request's intent and slot-type quotas (None when not given), checked."""
    given = {"intent_quotas": (dict(request.intent_quotas), info.intents, "intent"),
             "slot_quotas": (dict(request.slot_quotas), info.slot_types, "slot type")}
    for field, (quotas, known, what) in given.items():
        for name, quota in quotas.items():
            if name not in known:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"{field}: the generator knows no {what} {name!r}")
            if quota < 0:
                raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"{field}[{name}]: must be >= 0, got {quota}")
    intent_quotas, slot_quotas = (given[field][0] or None for field in given)
    total = sum((intent_quotas or {}).values()) + sum((slot_quotas or {}).values())
    if (intent_quotas or slot_quotas) and total != request.count:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"intent_quotas and slot_quotas: they add up to {total}, "
                           f"not to count {request.count}")
    return intent_quotas, slot_quotas


def check_language(language: str, info) -> str | None:
    if not language:
        return None
    if language not in info.languages:
        raise RequestError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"language: the generator knows no language {language!r} "
                           f"(it knows {', '.join(sorted(info.languages))})")
    return language
