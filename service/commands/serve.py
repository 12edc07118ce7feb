"""``nlu-bootstrap serve``: run the gRPC augmentation, NLU (parse) and training services."""

from __future__ import annotations

import argparse
import errno
import logging
import os
from pathlib import Path

from service.commands import UsageError, number


def _dataset(text: str) -> tuple[str, Path]:
    name, separator, path = text.partition("=")
    if not separator or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, Path(path).resolve()


def usable_cpus() -> int:
    """The CPUs this process may run on: its affinity mask (which taskset, cgroups' cpusets
    and container runtimes narrow), else the machine's count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tracking-uri", help="MLflow store with the registered generators "
                        "(default: $MLFLOW_TRACKING_URI, else the embedded sqlite store)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    parser.add_argument("--port", type=number(int, low=0, high=65535), default=50051, help="0 picks a free port")
    parser.add_argument("--state-dir", type=Path, default=Path(".nlu-bootstrap/service"),
                        help="where job state (jobs.db) and uploaded data live")
    parser.add_argument("--dataset", type=_dataset, action="append", default=[],
                        metavar="NAME=PATH", help="a data file clients may train on by NAME")
    parser.add_argument("--token", default=os.environ.get("NLU_BOOTSTRAP_TOKEN"),
                        help="bearer token clients must send (default $NLU_BOOTSTRAP_TOKEN)")
    parser.add_argument("--insecure", action="store_true",
                        help="allow a non-loopback --host without --token (anyone who can reach "
                        "the port may generate and train)")
    parser.add_argument("--tls-cert", type=Path, help="PEM certificate (with --tls-key)")
    parser.add_argument("--tls-key", type=Path, help="PEM private key (with --tls-cert)")
    parser.add_argument("--max-count", type=number(int, low=1, high=2 ** 31 - 1), default=10_000,
                        help="most utterances one Augment or Refill call may ask for (and "
                        "give, for Refill)")
    parser.add_argument("--max-catalogue-values", type=number(int, low=1, high=2 ** 31 - 1),
                        default=100_000, help="most catalogue values one Augment or Refill "
                        "call may hold")
    parser.add_argument("--max-streams", type=number(int, low=1, high=10_000), default=32,
                        help="concurrent Augment streams before RESOURCE_EXHAUSTED")
    parser.add_argument("--max-parse-inputs", type=number(int, low=1, high=2 ** 31 - 1),
                        default=1_000, help="most utterances one Parse call (or ParseStream "
                        "message) may hold")
    parser.add_argument("--call-budget-seconds", type=number(float, low=0, above_low=True), default=60.0,
                        help="longest one Augment call may generate before it ends with "
                        "DEADLINE_EXCEEDED (the client's deadline applies too, if shorter)")
    parser.add_argument("--max-jobs", type=number(int, low=1, high=1_000), default=1, help="concurrent training jobs")
    parser.add_argument("--processes", type=number(int, low=1, high=usable_cpus()), default=1,
                        help="server processes sharing the port (generation is GIL-bound: "
                        "use about one per core; at most the CPUs this process may use)")
    parser.add_argument("--torch-threads", type=number(int, low=1, high=1_000), default=1,
                        help="torch intra-op threads (default 1: parallel calls use the cores)")
    parser.add_argument("--grace", type=number(float, low=0), default=10.0,
                        help="seconds in-flight calls get to finish on SIGTERM")


def run(args: argparse.Namespace) -> int:
    from nlu.tracking import resolve_tracking_uri
    from service.server import ServerConfig, serve, serve_processes

    if (args.tls_cert is None) != (args.tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together")
    if not args.token and not args.insecure and not _loopback(args.host):
        raise UsageError(f"--host {args.host}: a non-loopback address without --token lets "
                         "anyone who reaches the port use the server; give --token (or "
                         "$NLU_BOOTSTRAP_TOKEN), or --insecure to mean it")
    _check_port_free(args.host, args.port)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host = f"[{args.host}]" if ":" in args.host else args.host
    config = ServerConfig(
        tracking_uri=resolve_tracking_uri(args.tracking_uri), state_dir=args.state_dir,
        address=f"{host}:{args.port}", token=args.token, tls_cert=args.tls_cert,
        tls_key=args.tls_key, datasets=dict(args.dataset), max_augment_count=args.max_count,
        max_parse_inputs=args.max_parse_inputs, max_catalogue_values=args.max_catalogue_values,
        max_augment_streams=args.max_streams, call_budget_seconds=args.call_budget_seconds,
        max_concurrent_rpcs=max(64, 2 * args.max_streams),
        threads=args.max_streams + 8, max_running_jobs=args.max_jobs,
        torch_threads=args.torch_threads)
    if args.processes > 1:
        return serve_processes(config, args.processes, grace=args.grace,
                               quiet=not args.verbose)
    serve(config, grace=args.grace)
    return 0


def _loopback(host: str) -> bool:
    """Does ``host`` name this machine only (127.0.0.0/8, ::1, localhost)?"""
    import ipaddress
    import socket

    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except socket.gaierror:
        return False  # serve will say what is wrong with the name
    return bool(addresses) and all(ipaddress.ip_address(address.split("%")[0]).is_loopback
                                   for address in addresses)


def _check_port_free(host: str, port: int) -> None:
    """A taken port is a usage error. gRPC binds with SO_REUSEPORT, so a second server on a
    port would start and share it silently; a plain bind finds the first one."""
    import socket

    if port == 0:
        return
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise UsageError(f"--host {host}: {error.strerror}") from None
    for family, kind, protocol, _, address in infos:
        with socket.socket(family, kind, protocol) as probe:
            # passes over TIME_WAIT leftovers, not over a listening socket (Linux)
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    raise UsageError(f"--port {port}: port {port} is in use on {host}") from None
                raise UsageError(f"--host {host} --port {port}: {error.strerror}") from None
