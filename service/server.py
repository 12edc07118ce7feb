"""The nlu-bootstrap gRPC server: augmentation, NLU (parse) and training services behind one port.

What a client can rely on:

* ``grpc.health.v1``: the overall status and each service report NOT_SERVING until the
  generator registry has been read from MLflow (retried with backoff while it cannot be;
  ``Augment`` and ``Parse`` answer UNAVAILABLE meanwhile), then SERVING; NOT_SERVING again
  while shutting down.
* Server reflection for the three services and health (``grpcurl`` works without the protos).
* Limits: request/response message size (``Augment`` splits its stream to fit), concurrent
  RPCs (RESOURCE_EXHAUSTED beyond them), utterances per ``Augment`` call, inputs per
  ``Parse`` call (or ``ParseStream`` message), concurrent ``Augment`` streams, running
  training jobs.
* A request protobuf cannot parse (a string that is not UTF-8) is INVALID_ARGUMENT.
* Models (generators and NLU models) are named ``name@alias`` or by run id; an alias moved in
  the registry is followed within ``GeneratorStore.REFERENCE_TTL_SECONDS`` (10 s).
* Optional TLS (PEM cert + key) and an optional bearer token checked on every call except
  health (UNAUTHENTICATED otherwise).
* SIGTERM / SIGINT: stop accepting calls, give in-flight calls ``grace`` seconds to finish,
  cancel the rest, stop the training workers. A shutdown still running
  ``STUCK_SHUTDOWN_SECONDS`` after its grace prints every thread's stack and exits.
* ``serve_processes``: the same server in several processes on one port, because one
  Python process generates at most one call's worth at a time (GIL). A signal stops it
  while it starts them; a process whose parent died drains as on SIGTERM.
"""

from __future__ import annotations

import faulthandler
import gc
import hmac
import logging
import math
import os
import signal
import threading
from concurrent import futures
from dataclasses import dataclass, field, replace
from pathlib import Path

import grpc
from google.protobuf.message import DecodeError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from service.augmentation import AugmentationServicer, GeneratorStore
from service.generated.nlu_bootstrap.v1 import (augmentation_pb2, augmentation_pb2_grpc,
                                                nlu_pb2, nlu_pb2_grpc, training_pb2,
                                                training_pb2_grpc)
from service.nlu import NluServicer
from service.quiet import quiet_libraries
from service.training import JobRunner, JobStore, TrainingServicer, watch_parent

log = logging.getLogger(__name__)

AUGMENTATION_SERVICE = augmentation_pb2.DESCRIPTOR.services_by_name["AugmentationService"].full_name
TRAINING_SERVICE = training_pb2.DESCRIPTOR.services_by_name["TrainingService"].full_name
NLU_SERVICE = nlu_pb2.DESCRIPTOR.services_by_name["NluService"].full_name
SERVICES = (AUGMENTATION_SERVICE, NLU_SERVICE, TRAINING_SERVICE)
HEALTH_METHOD_PREFIX = "/grpc.health.v1.Health/"
STUCK_SHUTDOWN_SECONDS = 20.0  # past the grace period, a shutdown this late is stuck


@dataclass
class ServerConfig:
    tracking_uri: str
    state_dir: Path  # jobs.db and uploaded training data
    address: str = "127.0.0.1:50051"  # "[::]:0" picks a free port
    token: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    datasets: dict[str, Path] = field(default_factory=dict)  # name -> file clients may train on
    max_message_bytes: int = 4 * 1024 * 1024
    max_concurrent_rpcs: int = 64
    max_augment_streams: int = 32
    max_augment_count: int = 10_000
    max_parse_inputs: int = 1_000  # per Parse call and per ParseStream message
    max_catalogue_values: int = 100_000  # per Augment or Refill call
    call_budget_seconds: float = 60.0  # longest an Augment or Parse(Stream) call may run
    max_running_jobs: int = 1
    generator_cache_size: int = 4
    threads: int = 40  # > max_augment_streams so that cheap calls still get a thread
    torch_threads: int = 1  # per process; concurrency comes from parallel calls (see serve)
    reuse_port: bool = False  # several processes serve one port (see serve_processes)
    recover_jobs: bool = True  # mark jobs a dead server left running as failed

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        self.state_dir = Path(self.state_dir).resolve()  # workers and jobs see one path
        for name in ("max_message_bytes", "max_concurrent_rpcs", "max_augment_streams",
                     "max_augment_count", "max_parse_inputs", "max_catalogue_values",
                     "max_running_jobs",
                     "generator_cache_size",
                     "threads", "torch_threads"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 1 <= value <= 2 ** 31 - 1:  # int32 on the wire
                raise ValueError(f"{name}: must be an integer in [1, 2**31 - 1], got {value!r}")
        if not 0 < self.call_budget_seconds < math.inf:  # NaN fails too
            raise ValueError(f"call_budget_seconds: must be > 0 and finite, "
                             f"got {self.call_budget_seconds!r}")


class RunningServer:
    """A started server. ``load_generators()`` flips health to SERVING; ``stop()`` drains it."""

    def __init__(self, server: grpc.Server, port: int, health_servicer: health.HealthServicer,
                 generators: GeneratorStore, runner: JobRunner,
                 augmentation: AugmentationServicer):
        self.server = server
        self.port = port
        self.health = health_servicer
        self.generators = generators
        self.runner = runner
        self.augmentation = augmentation
        self.stopping = threading.Event()  # set by stop(); ends the registry load retries

    def load_generators(self) -> None:
        """Read the generator registry (and preload aliased generators), then serve."""
        self.generators.load()
        for service in ("", *SERVICES):
            self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        log.info("generator registry loaded: %d generator(s); serving",
                 len(self.generators.generators()))

    def stop(self, grace: float = 10.0) -> None:
        """Refuse new calls, let in-flight ones finish within ``grace`` s, stop job workers."""
        self.stopping.set()
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        self.runner.shutdown()

    def wait(self) -> None:
        self.server.wait_for_termination()


def start_server(config: ServerConfig, *, load_in_background: bool = True) -> RunningServer:
    """Build, bind and start the server. The registry loads in a thread (retrying until it
    can be read) unless told not to (then call ``load_generators()``); until it has loaded,
    health says NOT_SERVING."""
    options = [("grpc.max_receive_message_length", config.max_message_bytes),
               ("grpc.max_send_message_length", config.max_message_bytes),
               ("grpc.so_reuseport", int(config.reuse_port))]
    interceptors = [BearerTokenInterceptor(config.token)] if config.token else []
    interceptors.append(UndecodableRequestInterceptor())
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=config.threads,
                                                    thread_name_prefix="grpc"),
                         interceptors=interceptors, options=options,
                         maximum_concurrent_rpcs=config.max_concurrent_rpcs)

    generators = GeneratorStore(config.tracking_uri, cache_size=config.generator_cache_size)
    augmentation = AugmentationServicer(generators, max_count=config.max_augment_count,
                                        max_streams=config.max_augment_streams,
                                        call_budget_seconds=config.call_budget_seconds,
                                        max_message_bytes=config.max_message_bytes,
                                        max_catalogue_values=config.max_catalogue_values)
    augmentation_pb2_grpc.add_AugmentationServiceServicer_to_server(augmentation, server)
    nlu_pb2_grpc.add_NluServiceServicer_to_server(
        NluServicer(generators, max_inputs=config.max_parse_inputs,
                    call_budget_seconds=config.call_budget_seconds), server)

    config.state_dir.mkdir(parents=True, exist_ok=True)
    runner = JobRunner(JobStore(config.state_dir / "jobs.db"), config.tracking_uri,
                       config.state_dir / "jobs", max_running=config.max_running_jobs,
                       recover=config.recover_jobs)
    training_pb2_grpc.add_TrainingServiceServicer_to_server(
        TrainingServicer(runner, config.datasets), server)

    health_servicer = health.HealthServicer()
    for service in ("", *SERVICES):
        health_servicer.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (*SERVICES, health.SERVICE_NAME, reflection.SERVICE_NAME),
        server)

    if config.tls_cert is not None:
        credentials = grpc.ssl_server_credentials(
            [(Path(config.tls_key).read_bytes(), Path(config.tls_cert).read_bytes())])
        port = server.add_secure_port(config.address, credentials)
    else:
        port = server.add_insecure_port(config.address)
    server.start()
    running = RunningServer(server, port, health_servicer, generators, runner, augmentation)
    if load_in_background:
        threading.Thread(target=_load_until_serving, args=(running,), name="load-generators",
                         daemon=True).start()
    return running


def _load_until_serving(running: RunningServer, first_retry_seconds: float = 1.0,
                        max_retry_seconds: float = 30.0) -> None:
    """Read the registry, retrying with backoff while it cannot be read (a tracking server
    still starting, a store another process is creating); health stays NOT_SERVING meanwhile."""
    retry_seconds = first_retry_seconds
    while True:
        try:
            running.load_generators()
            break
        except Exception:
            log.exception("could not read the generator registry; NOT_SERVING, retrying in "
                          "%.0f s", retry_seconds)
        if running.stopping.wait(retry_seconds):
            return
        retry_seconds = min(2 * retry_seconds, max_retry_seconds)
    # The imports and loaded models are ~400k long-lived objects, and a full garbage
    # collection walking them paused the whole process for 210-270 ms: the p99 of a loaded
    # server. Frozen, they are left out of every collection.
    gc.freeze()


def serve(config: ServerConfig, *, grace: float = 10.0) -> None:
    """Run until SIGTERM/SIGINT, then shut down gracefully.

    torch runs single-threaded by default: concurrent calls already keep the cores busy, and
    intra-op threads on top of them oversubscribe the CPU and slow every call many times over.
    """
    import torch

    torch.set_num_threads(config.torch_threads)
    running = start_server(config)
    log.info("listening on port %d (%s)", running.port, "TLS" if config.tls_cert else "plaintext")
    stopping = threading.Event()

    def request_stop(signum, _frame):
        log.info("%s: stopping (grace %.0f s)", signal.Signals(signum).name, grace)
        stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, request_stop)
    # Timed waits: Python runs a signal handler in the main thread only when that thread
    # wakes, and the kernel may deliver the signal to one of gRPC's threads instead.
    while not stopping.wait(1.0):
        pass
    # A shutdown that outlives its grace by far is stuck: print every thread's stack and exit.
    faulthandler.dump_traceback_later(grace + STUCK_SHUTDOWN_SECONDS, exit=True)
    running.stop(grace)


def serve_processes(config: ServerConfig, processes: int, *, grace: float = 10.0,
                    quiet: bool = True) -> int:
    """Serve one port from ``processes`` server processes (SO_REUSEPORT; Linux).

    A Python gRPC server runs its handlers under one GIL: generation is small torch ops
    driven from Python, so extra threads add no throughput and extra processes do. The
    kernel spreads connections over the processes; they share the MLflow store and the
    job store. SIGTERM/SIGINT are passed on, and each process drains as ``serve`` does.
    ``quiet``: each process keeps the libraries' chatter out of the log
    (``service.quiet``; a spawned process does not inherit the parent's logger levels).
    Returns 0 when every process stopped cleanly.
    """
    import multiprocessing
    import socket

    from nlu.tracking import client
    from service.training import JobStore, recover_interrupted_jobs

    # Create (or upgrade) the MLflow tables here, once: several processes migrating a new
    # sqlite store at the same time leave it half-migrated and unreadable.
    client(config.tracking_uri)
    config.state_dir.mkdir(parents=True, exist_ok=True)
    recover_interrupted_jobs(JobStore(config.state_dir / "jobs.db"), config.tracking_uri,
                             config.state_dir / "jobs")  # before any child serves
    host, _, port = config.address.rpartition(":")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET,
                       socket.SOCK_STREAM) as reservation:
        # Hold the port (bound, never listening) so that port 0 can be shared too.
        reservation.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        reservation.bind((host.strip("[]"), int(port)))
        port = reservation.getsockname()[1]
        shared = replace(config, address=f"{host}:{port}", reuse_port=True, recover_jobs=False)
        context = multiprocessing.get_context("spawn")
        children = [context.Process(target=_serve_child, args=(shared, grace, quiet),
                                    name=f"nlu-bootstrap-server-{index}")
                    for index in range(processes)]
        stopping = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda _signum, _frame: stopping.set())
        started = []
        for child in children:
            if stopping.is_set():  # a signal while starting: start no more
                break
            child.start()
            started.append(child)
        children = started
        log.info("%d server processes listening on port %d", len(children), port)
        while not stopping.wait(1.0):
            if not all(child.is_alive() for child in children):
                log.error("a server process died; stopping the others")
                break
        for child in children:
            if child.is_alive():
                os.kill(child.pid, signal.SIGTERM)
        for child in children:
            child.join(grace + 2 * STUCK_SHUTDOWN_SECONDS)
            if child.is_alive():  # its own watchdog failed too
                log.error("%s did not stop; killing it", child.name)
                child.kill()
                child.join()
    return 0 if all(child.exitcode == 0 for child in children) else 1


def _serve_child(config: ServerConfig, grace: float, quiet: bool = True) -> None:
    if quiet:
        quiet_libraries()
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s")
    # A parent killed with -9 passes no signal on: drain as on SIGTERM instead of serving on.
    watch_parent(lambda: os.kill(os.getpid(), signal.SIGTERM))
    serve(config, grace=grace)


class BearerTokenInterceptor(grpc.ServerInterceptor):
    """Reject calls without ``authorization: Bearer <token>`` (health checks stay open)."""

    def __init__(self, token: str):
        self.expected = f"Bearer {token}".encode()

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler_call_details.method.startswith(HEALTH_METHOD_PREFIX):
            return handler
        presented = dict(handler_call_details.invocation_metadata or ()).get("authorization", "")
        if hmac.compare_digest(presented.encode(), self.expected):
            return handler
        return _rejecting_handler(handler)


def _rejecting_handler(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same shape as ``handler`` that answers UNAUTHENTICATED."""
    def reject(_request, context):
        context.abort(grpc.StatusCode.UNAUTHENTICATED,
                      "authorization: missing or wrong bearer token")

    return _handler_like(handler, reject, handler.request_deserializer)


def _handler_like(handler: grpc.RpcMethodHandler, behavior,
                  request_deserializer) -> grpc.RpcMethodHandler:
    """A handler of ``handler``'s shape running ``behavior``."""
    make = {(False, False): grpc.unary_unary_rpc_method_handler,
            (False, True): grpc.unary_stream_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler,
            (True, True): grpc.stream_stream_rpc_method_handler}
    return make[(handler.request_streaming, handler.response_streaming)](
        behavior, request_deserializer=request_deserializer,
        response_serializer=handler.response_serializer)


class _Undecodable:
    """What a request that protobuf cannot parse deserialises to, with the parser's reason."""

    def __init__(self, reason: str):
        self.reason = reason


class UndecodableRequestInterceptor(grpc.ServerInterceptor):
    """A request protobuf cannot parse (a ``string`` field holding bytes that are not UTF-8,
    a truncated message) is INVALID_ARGUMENT, not the INTERNAL that grpcio answers when the
    deserializer raises: the deserializer hands the handler a marker, refused there."""

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        parse = handler.request_deserializer

        def deserialize(data: bytes):
            try:
                return parse(data)
            except DecodeError as error:
                return _Undecodable(str(error))

        def refuse(request: _Undecodable, context) -> None:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"request: not a valid message ({request.reason}); strings must be "
                          f"UTF-8")

        run = (handler.unary_unary or handler.unary_stream or handler.stream_unary
               or handler.stream_stream)
        if handler.request_streaming:
            def behavior(requests, context):
                def checked():
                    for request in requests:
                        if isinstance(request, _Undecodable):
                            refuse(request, context)
                        yield request
                return run(checked(), context)
        else:
            def behavior(request, context):
                if isinstance(request, _Undecodable):
                    refuse(request, context)
                return run(request, context)
        return _handler_like(handler, behavior, deserialize)
