"""Server infrastructure: health, reflection, auth, TLS, loading state, request checks.

Each test starts the real server on an ephemeral loopback port over one empty MLflow store
(created once: a new sqlite store takes seconds to migrate) and talks to it through the
generated stubs (service.client wraps them).
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from service import client
from service.server import ServerConfig, start_server

RUN_ID = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def config_for(tracking_uri):
    def config(tmp_path: Path, **overrides) -> ServerConfig:
        return ServerConfig(tracking_uri=tracking_uri, state_dir=tmp_path / "state",
                            address="127.0.0.1:0", **overrides)
    return config


@pytest.fixture(scope="module")
def server(tracking_uri, tmp_path_factory):
    config = ServerConfig(tracking_uri=tracking_uri, state_dir=tmp_path_factory.mktemp("state"),
                          address="127.0.0.1:0", max_augment_count=50)
    running = start_server(config, load_in_background=False)
    running.load_generators()
    yield running
    running.stop(grace=0)


def health_status(channel, service=""):
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


def status_of(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as raised:
        result = call()
        if hasattr(result, "__next__"):
            list(result)
    return raised.value.code(), raised.value.details()


def test_not_serving_and_unavailable_until_the_registry_is_loaded(tmp_path, config_for):
    running = start_server(config_for(tmp_path), load_in_background=False)
    try:
        with client.connect(f"127.0.0.1:{running.port}") as channel:
            assert health_status(channel) == health_pb2.HealthCheckResponse.NOT_SERVING
            code, details = status_of(lambda: client.augment(channel, "gen@prod", 5))
            assert code == grpc.StatusCode.UNAVAILABLE and "loading" in details
            assert status_of(lambda: client.list_generators(channel))[0] == \
                grpc.StatusCode.UNAVAILABLE
            running.load_generators()
            assert health_status(channel) == health_pb2.HealthCheckResponse.SERVING
            assert health_status(channel, "nlu_bootstrap.v1.AugmentationService") == \
                health_pb2.HealthCheckResponse.SERVING
            assert client.list_generators(channel) == []
    finally:
        running.stop(grace=0)


def test_reflection_lists_the_services(server):
    with client.connect(f"127.0.0.1:{server.port}") as channel:
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        response = next(stub.ServerReflectionInfo(iter([request]), timeout=5))
        names = {service.name for service in response.list_services_response.service}
    assert {"nlu_bootstrap.v1.AugmentationService", "nlu_bootstrap.v1.TrainingService",
            "grpc.health.v1.Health"} <= names


@pytest.mark.parametrize("reference", ["/etc/passwd", "../models/gen", "runs:/abc/model",
                                       "models:/gen@prod", "file:///tmp/gen", "gen", ""])
def test_paths_and_uris_are_rejected_as_generator_names(server, reference):
    with client.connect(f"127.0.0.1:{server.port}") as channel:
        code, details = status_of(lambda: client.augment(channel, reference, 5))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("generator:")


def test_count_limits(server):
    with client.connect(f"127.0.0.1:{server.port}") as channel:
        code, details = status_of(lambda: client.augment(channel, "gen@prod", 0))
        assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("count:")
        code, details = status_of(lambda: client.augment(channel, "gen@prod", 51))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED and "limit of 50" in details


def test_bad_sampling_and_gate_options_name_the_field(server):
    with client.connect(f"127.0.0.1:{server.port}") as channel:
        bad = client.sampling_options("temperature", temperature=0.0)
        code, details = status_of(lambda: client.augment(channel, "gen@prod", 5, sampling=bad))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert details.startswith("sampling.temperature:")
        bad = client.sampling_options("top-k")  # top-k without top_k
        assert status_of(lambda: client.augment(channel, "gen@prod", 5, sampling=bad))[1] \
            .startswith("sampling.top_k:")
        code, details = status_of(lambda: client.augment(channel, "gen@prod", 5,
                                                         min_discriminator_score=1.5))
        assert code == grpc.StatusCode.INVALID_ARGUMENT
        assert details.startswith("gate.min_discriminator_score")


def test_unknown_generators_are_not_found(server):
    with client.connect(f"127.0.0.1:{server.port}") as channel:
        for reference in ("nobody@prod", RUN_ID):
            code, details = status_of(lambda: client.augment(channel, reference, 5))
            assert code == grpc.StatusCode.NOT_FOUND, details
            assert status_of(lambda: client.describe_generator(channel, reference))[0] == \
                grpc.StatusCode.NOT_FOUND


def test_bearer_token_is_required_except_for_health(tmp_path, config_for):
    running = start_server(config_for(tmp_path, token="s3cret"), load_in_background=False)
    running.load_generators()
    target = f"127.0.0.1:{running.port}"
    try:
        with client.connect(target) as channel:
            assert health_status(channel) == health_pb2.HealthCheckResponse.SERVING
            code, details = status_of(lambda: client.list_generators(channel))
            assert code == grpc.StatusCode.UNAUTHENTICATED
            assert status_of(lambda: client.augment(channel, "gen@prod", 5))[0] == \
                grpc.StatusCode.UNAUTHENTICATED
        with client.connect(target, token="wrong") as channel:
            assert status_of(lambda: client.get_job(channel, "x"))[0] == \
                grpc.StatusCode.UNAUTHENTICATED
        with client.connect(target, token="s3cret") as channel:
            assert client.list_generators(channel) == []
    finally:
        running.stop(grace=0)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_tls(tmp_path, config_for):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    running = start_server(config_for(tmp_path, tls_cert=cert, tls_key=key, token="t"),
                           load_in_background=False)
    running.load_generators()
    try:
        with client.connect(f"127.0.0.1:{running.port}", tls_ca=cert, token="t") as channel:
            assert client.list_generators(channel) == []
        with client.connect(f"127.0.0.1:{running.port}") as plaintext:
            assert status_of(lambda: client.list_generators(plaintext, timeout=2))[0] == \
                grpc.StatusCode.UNAVAILABLE
    finally:
        running.stop(grace=0)


def test_oversized_messages_are_refused(tmp_path, config_for):
    running = start_server(config_for(tmp_path, max_message_bytes=64 * 1024),
                           load_in_background=False)
    running.load_generators()
    try:
        with client.connect(f"127.0.0.1:{running.port}") as channel:
            code, _ = status_of(lambda: client.get_job(channel, "x" * 100_000))
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        running.stop(grace=0)


def test_a_registry_that_cannot_be_read_yet_is_retried_until_it_can(tmp_path, config_for,
                                                                   monkeypatch):
    from service.augmentation import GeneratorStore

    attempts = []
    tracking_server_up = threading.Event()
    read_registry = GeneratorStore.load

    def unreachable_until_up(store):
        attempts.append(time.monotonic())
        if not tracking_server_up.is_set():
            raise ConnectionError("tracking server not up yet")
        read_registry(store)

    monkeypatch.setattr(GeneratorStore, "load", unreachable_until_up)
    running = start_server(config_for(tmp_path))  # loads in the background
    try:
        with client.connect(f"127.0.0.1:{running.port}") as channel:
            wait_until = time.monotonic() + 30
            while not attempts and time.monotonic() < wait_until:
                time.sleep(0.05)
            assert attempts, "the registry was never read"
            assert health_status(channel) == health_pb2.HealthCheckResponse.NOT_SERVING
            tracking_server_up.set()
            responses = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(service=""), timeout=60)
            for response in responses:
                if response.status == health_pb2.HealthCheckResponse.SERVING:
                    break
            assert client.list_generators(channel) == []
        assert len(attempts) >= 2 and attempts[1] - attempts[0] >= 1.0  # after a pause
    finally:
        running.stop(grace=0)


@pytest.mark.parametrize("processes", ["2"])  # its processes each run `serve`
def test_serve_command_stops_gracefully_on_sigterm(tmp_path, processes):
    import os
    import signal
    import sys

    # A new store: its processes must not race to create its tables (they did, and both
    # stayed NOT_SERVING)
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    command = [sys.executable, "-m", "service.cli", "serve", "--tracking-uri", tracking_uri,
               "--port", "0", "--state-dir", str(tmp_path / "state"), "--processes", processes]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True,
                               cwd=Path(__file__).resolve().parents[1])
    # Read the log all along: a server blocked on a full stderr pipe would never stop.
    log_lines: list[str] = []
    reader = threading.Thread(target=lambda: log_lines.extend(process.stderr), daemon=True)
    reader.start()
    try:
        port = None
        for _ in range(600):  # the log says which free port it picked
            said = [line for line in list(log_lines) if "listening on port" in line]
            if said:
                port = int(said[0].split("listening on port")[1].split()[0])
                break
            time.sleep(0.1)
        assert port, "the server never said where it listens"
        with client.connect(f"127.0.0.1:{port}") as channel:
            health_stub = health_pb2_grpc.HealthStub(channel)
            # wait_for_ready: with --processes the port opens only once the processes bind it
            responses = health_stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=60,
                                          wait_for_ready=True)
            for response in responses:
                if response.status == health_pb2.HealthCheckResponse.SERVING:
                    break
            assert client.list_generators(channel) == []
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=60)
        reader.join(timeout=10)
        log = "".join(log_lines)
        assert exit_code == 0, log  # (a stuck process prints its threads' stacks to the log)
        assert log.count("SIGTERM: stopping") == int(processes)  # every process drains
        assert "Traceback" not in log, log
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)


def test_a_signal_while_serve_processes_starts_its_children_starts_no_more(tmp_path,
                                                                          monkeypatch):
    import multiprocessing
    import os
    import signal

    from service import server

    started = []

    class Child:
        """A server process that is never run; the first start sends this process SIGTERM."""

        def __init__(self, target, args, name):
            self.name, self.pid, self.exitcode = name, None, 0

        def start(self):
            started.append(self.name)
            os.kill(os.getpid(), signal.SIGTERM)

        def is_alive(self):
            return False

        def join(self, timeout=None):
            pass

    class Context:
        Process = Child

    monkeypatch.setattr(multiprocessing, "get_context", lambda method: Context())
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        config = ServerConfig(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
                              state_dir=tmp_path / "state", address="127.0.0.1:0")
        assert server.serve_processes(config, 2) == 0
    finally:
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
    assert started == ["nlu-bootstrap-server-0"]


@pytest.mark.parametrize("quiet", [True, False])
def test_a_serve_processes_child_quiets_the_libraries_unless_told_not_to(quiet, tmp_path,
                                                                         monkeypatch):
    import logging
    import warnings

    from service import server
    from service.quiet import QUIET_LOGGERS

    served = []
    monkeypatch.setattr(server, "watch_parent", lambda on_exit: None)
    monkeypatch.setattr(server, "serve", lambda config, grace: served.append(config))
    monkeypatch.setattr(logging, "basicConfig", lambda **settings: None)
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [each.level for each in loggers]
    monkeypatch.setattr(warnings, "filters", list(warnings.filters))  # restored after
    try:
        for each in loggers:
            each.setLevel(logging.NOTSET)  # as in a freshly spawned process
        config = ServerConfig(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db",
                              state_dir=tmp_path / "state", address="127.0.0.1:0")
        server._serve_child(config, 1.0, quiet)
        assert served == [config]
        assert all((each.level == logging.WARNING) == quiet for each in loggers)
    finally:
        for each, level in zip(loggers, levels):
            each.setLevel(level)
