"""Parse speed: in process, over gRPC (``NluService.Parse``) and through ``mlflow models serve``.

    .venv/bin/python benchmarks/parse_latency.py [--json parse.json]   # about 10 minutes
    .venv/bin/python benchmarks/parse_latency.py --tiny                # seconds; what CI runs

For each model size (``--models``): ``verdict`` (the studies' ``verdict`` profile: BiLSTM,
128 units, 1 layer, 64-dim embeddings, 4,000 pieces, CRF) and ``default`` (the README's
model: ``experiments/bootstrap_xsid.yaml``'s ``model`` section), a model is trained briefly
(``--epochs`` over ``--train-utterances`` of the xSID English training set: only inference
speed is measured, not accuracy) into a temporary MLflow store and registered. Then, on raw
texts of the xSID English test set:

* in process: ``TrainedNlu.parse`` of one utterance (p50/p99 latency) and throughput at
  batch 1, 32 and 256;
* gRPC: ``nlu-bootstrap serve`` in its own process on a loopback port; 1, 8 and 32 client
  threads (one channel each) issue ``Parse`` calls of one utterance for ``--seconds`` per
  level: p50/p99 latency, calls/s, unexpected errors;
* HTTP: ``mlflow models serve -m models:/NAME@ALIAS --env-manager local`` (one worker, as the
  gRPC server has one process) on the same registered model, the same clients and texts,
  one utterance per ``POST /invocations``;
* a load run: 32 gRPC clients for ``--load-seconds`` on the first model, counting
  unexpected errors.

Targets on 2 cores: gRPC one-utterance p50 <= 3 ms and p99 <= 10 ms at one client; batch
throughput >= 5,000 utterances/s; gRPC faster than HTTP; 0 errors in the load run.
"""

from __future__ import annotations

import argparse
import gc
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import grpc
import numpy as np
import yaml

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from benchmarks.service_load import cpu_times, start_server  # noqa: E402  (after the path set-up)
from service import client  # noqa: E402

DATA = REPOSITORY.parent / "shared" / "data" / "xsid"
XSID_TRAIN = DATA / "en-train-v0.1"
XSID_TEST = DATA / "xSID-0.7" / "en.test.conll"
LANGUAGE = "en"
# experiments/study_bootstrap.yaml and study_lowres.yaml, profile `verdict`, section `nlu`
VERDICT_MODEL = {"vocab_size": 4000, "embedding_dim": 64, "hidden_dim": 128, "num_layers": 1}
TINY_MODEL = {"vocab_size": 300, "embedding_dim": 16, "hidden_dim": 32, "num_layers": 1}
REGISTERED_NAME = "parse-bench"


def model_sizes() -> dict[str, dict]:
    readme_default = yaml.safe_load((REPOSITORY / "experiments" / "bootstrap_xsid.yaml")
                                    .read_text())["model"]
    return {"verdict": VERDICT_MODEL, "default": readme_default, "tiny": TINY_MODEL}


def train_and_register(size: str, architecture: dict, store: Path, tracking_uri: str,
                       utterances: int, epochs: int):
    """A model of ``architecture`` trained briefly, logged as the pyfunc model every trained
    NLU model is, and registered as ``parse-bench-SIZE@bench``; returns (the model, its
    reference)."""
    import torch

    from nlu.formats import read_utterances
    from nlu.model import JointModelConfig
    from nlu.pyfunc import log_nlu_model
    from nlu.tracking import start_run
    from nlu.training import fit

    torch.set_num_threads(1)
    config = JointModelConfig.from_dict({**architecture, "max_epochs": epochs,
                                         "enable_progress_bar": False, "num_threads": 1})
    model = fit(read_utterances(XSID_TRAIN, "xsid-pair")[:utterances], None, config,
                run_dir=store / size)
    model.save(store / f"{size}-model")
    with start_run("parse-bench", tracking_uri):
        reference = log_nlu_model(store / f"{size}-model", language=LANGUAGE,
                                  registered_name=f"{REGISTERED_NAME}-{size}", alias="bench")
    return model, reference


def cpu_seconds(root: int) -> float | None:
    """CPU seconds (user + system) used so far by process ``root`` and its descendants (a
    server's workers), None off Linux. On a shared machine wall times include waiting for a
    core; CPU time is what a call costs."""
    parents, ticks = {}, {}
    try:
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rpartition(")")[2].split()
            except OSError:  # the process ended meanwhile
                continue
            pid = int(stat.parent.name)
            parents[pid] = int(fields[1])  # ppid; utime and stime are fields 11 and 12
            ticks[pid] = int(fields[11]) + int(fields[12])
    except OSError:
        return None
    tree, frontier = {root}, [root]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        tree.update(children)
        frontier = children
    return sum(ticks.get(pid, 0) for pid in tree) / os.sysconf("SC_CLK_TCK")


def percentiles(seconds: list[float]) -> dict:
    milliseconds = np.array(seconds) * 1000
    if not len(milliseconds):
        return {"p50_ms": None, "p99_ms": None}
    return {"p50_ms": round(float(np.percentile(milliseconds, 50)), 3),
            "p99_ms": round(float(np.percentile(milliseconds, 99)), 3)}


def in_process(model, texts: list[str], *, calls: int, seconds: float,
               batches: tuple[int, ...]) -> dict:
    """One-utterance latency over ``calls`` calls, then utterances/s at each batch size."""
    for text in texts[:20]:  # warm-up
        model.parse([text], language=LANGUAGE)
    latencies, cpu = [], []
    for call in range(calls):
        started, started_cpu = time.perf_counter(), time.thread_time()
        model.parse([texts[call % len(texts)]], language=LANGUAGE)
        latencies.append(time.perf_counter() - started)
        cpu.append(time.thread_time() - started_cpu)
    throughput, per_cpu_second = {}, {}
    for batch in batches:
        done, wall, cpu_seconds = parse_batches(model, texts, batch=batch, seconds=seconds)
        throughput[batch] = round(done / wall)
        per_cpu_second[batch] = round(done / max(1e-9, cpu_seconds))
    return {**percentiles(latencies), "cpu_ms_per_call": round(1000 * float(np.mean(cpu)), 3),
            "utterances_per_s": throughput, "utterances_per_cpu_s": per_cpu_second,
            "all_cores": all_cores_throughput(model, texts, seconds=seconds, batch=256)}


def parse_batches(model, texts: list[str], *, batch: int, seconds: float
                  ) -> tuple[int, float, float]:
    """Parse ``texts`` in batches of ``batch`` for about ``seconds``: (utterances parsed,
    wall seconds, this thread's CPU seconds)."""
    chunks = [texts[start:start + batch] for start in range(0, len(texts) - batch + 1, batch)]
    done, calls = 0, 0
    began, began_cpu = time.perf_counter(), time.thread_time()
    while time.perf_counter() - began < seconds:
        done += len(model.parse(chunks[calls % len(chunks)], language=LANGUAGE,
                                batch_size=batch))
        calls += 1
    return done, time.perf_counter() - began, time.thread_time() - began_cpu


def all_cores_throughput(model, texts: list[str], *, seconds: float, batch: int) -> dict:
    """Utterances/s (wall) at ``batch`` with one torch thread per core: how ``nlu-bootstrap
    predict`` runs a file (torch's default), unlike the one-thread server processes."""
    import torch

    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    try:
        done, wall, _ = parse_batches(model, texts, batch=batch, seconds=seconds)
        return {"threads": threads, "batch": batch, "utterances_per_s": round(done / wall)}
    finally:
        torch.set_num_threads(1)


def run_clients(call: Callable[[object, str], None], connect: Callable[[], object],
                texts: list[str], clients: int, seconds: float, server: int) -> dict:
    """``clients`` threads, each with its own connection, call ``call(connection, text)``
    back to back for ``seconds``; latencies and errors of every call, and the CPU time the
    server (process ``server`` and its workers) spent per call."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def worker(offset: int) -> None:
        connection = connect()
        try:
            index = offset
            while time.perf_counter() < stop_at:
                text = texts[index % len(texts)]
                index += clients
                started = time.perf_counter()
                try:
                    call(connection, text)
                except Exception as error:  # every failure is an unexpected error here
                    with lock:
                        errors.append(f"{type(error).__name__}: {str(error)[:200]}")
                    continue
                elapsed = time.perf_counter() - started
                with lock:
                    latencies.append(elapsed)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(offset,)) for offset in range(clients)]
    cpu_before, server_before, began = cpu_times(), cpu_seconds(server), time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed, cpu_after, server_after = time.perf_counter() - began, cpu_times(), cpu_seconds(
        server)
    busy = (None if cpu_before is None or cpu_after is None else
            round((cpu_after[0] - cpu_before[0]) / max(1, cpu_after[1] - cpu_before[1]), 2))
    return {"clients": clients, "calls": len(latencies), "seconds": round(elapsed, 1),
            **percentiles(latencies), "calls_per_s": round(len(latencies) / elapsed, 1),
            "server_cpu_ms_per_call": (
                None if server_before is None or server_after is None or not latencies
                else round(1000 * (server_after - server_before) / len(latencies), 3)),
            "machine_cpu_busy": busy, "unexpected_errors": len(errors),
            "first_errors": errors[:3]}


def grpc_caller(reference: str):
    def call(channel, text: str) -> None:
        (parse,) = client.parse(channel, reference, [text], language=LANGUAGE, timeout=30)
        if not parse.intent:
            raise RuntimeError("a parse without an intent")
    return call


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_mlflow_serve(reference: str, tracking_uri: str, port: int,
                       log: Path) -> subprocess.Popen:
    """``mlflow models serve`` on the registered model, in its own process group (it starts a
    worker); returns once it answers /ping."""
    mlflow = Path(sys.executable).with_name("mlflow")
    command = [str(mlflow), "models", "serve", "-m", f"models:/{reference}", "--env-manager",
               "local", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    environment = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri,
                   # the environment's bin on PATH, as an activated one has it (uvicorn)
                   "PATH": f"{mlflow.parent}{os.pathsep}{os.environ.get('PATH', '')}",
                   "PYTHONPATH": os.pathsep.join([str(REPOSITORY),
                                                  os.environ.get("PYTHONPATH", "")])}
    with open(log, "w") as output:
        process = subprocess.Popen(command, cwd=log.parent, env=environment, stdout=output,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/ping")
            if connection.getresponse().status == 200:
                return process
        except OSError:
            pass
        time.sleep(0.5)
    stop_group(process)
    raise RuntimeError(f"mlflow models serve did not answer /ping:\n{log.read_text()[-2000:]}")


def stop_group(process: subprocess.Popen) -> None:
    if process.poll() is None:  # the server and the worker it started, by their group
        os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=60)


def http_payload(text: str) -> bytes:
    return json.dumps({"dataframe_split": {"columns": ["text", "language"],
                                           "data": [[text, LANGUAGE]]}}).encode()


def http_call(connection: http.client.HTTPConnection, text: str) -> None:
    connection.request("POST", "/invocations", body=http_payload(text),
                       headers={"Content-Type": "application/json"})
    response = connection.getresponse()
    body = response.read()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {body[:200]!r}")
    if b"intent" not in body:
        raise RuntimeError(f"no intent in {body[:200]!r}")


def measure(args, size: str, architecture: dict, scratch: Path, tracking_uri: str,
            texts: list[str], load_seconds: float) -> dict:
    began = time.perf_counter()
    model, reference = train_and_register(size, architecture, scratch, tracking_uri,
                                          args.train_utterances, args.epochs)
    print(f"[{size}] trained and registered {reference} in {time.perf_counter() - began:.0f} s",
          flush=True)
    result = {"model": size, "architecture": architecture, "reference": reference,
              "in_process": in_process(model, texts, calls=args.calls, seconds=args.seconds,
                                       batches=(1, 32, 256))}
    print(f"[{size}] in process: {result['in_process']}", flush=True)
    # This process trained a model: a full collection of its heap would pause the clients.
    gc.collect()
    gc.freeze()
    process, port = start_server(tracking_uri, scratch / f"state-{size}", 32, args.processes)
    target = f"127.0.0.1:{port}"
    try:
        call = grpc_caller(reference)
        def connect():
            return client.connect(target)

        run_clients(call, connect, texts, 1, min(1.0, args.seconds), process.pid)
        result["grpc"] = [run_clients(call, connect, texts, clients, args.seconds, process.pid)
                          for clients in args.levels]
        for row in result["grpc"]:
            print(f"[{size}] gRPC: {row}", flush=True)
        if load_seconds:
            result["load"] = run_clients(call, connect, texts, args.load_clients,
                                         load_seconds, process.pid)
            print(f"[{size}] load: {result['load']}", flush=True)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    if args.http:
        port = free_port()
        serving = start_mlflow_serve(reference, tracking_uri, port,
                                     scratch / f"mlflow-serve-{size}.log")
        try:
            def connect():
                return http.client.HTTPConnection("127.0.0.1", port, timeout=30)

            run_clients(http_call, connect, texts, 1, min(1.0, args.seconds), serving.pid)
            result["http"] = [run_clients(http_call, connect, texts, clients, args.seconds,
                                          serving.pid) for clients in args.levels]
            for row in result["http"]:
                print(f"[{size}] HTTP: {row}", flush=True)
        finally:
            stop_group(serving)
    return result


def report(results: list[dict], args, load_before: float) -> None:
    print(f"\nParse of one xSID English test utterance; {os.cpu_count()} CPUs, load average "
          f"before: {load_before:.1f}; {args.processes} gRPC server process(es), 1 HTTP "
          f"worker; {args.seconds:g} s per level. Wall times include waiting for a core on a "
          f"busy machine; 'CPU' figures are the work itself")
    for result in results:
        local = result["in_process"]
        print(f"\n{result['model']} model {result['architecture']}")
        print(f"  in process, one utterance: p50 {local['p50_ms']} ms, p99 {local['p99_ms']} ms, "
              f"{local['cpu_ms_per_call']} CPU ms per call")
        for batch, rate in local["utterances_per_s"].items():
            print(f"  in process, batch {batch:>3}: {rate:>6} utterances/s, "
                  f"{local['utterances_per_cpu_s'][batch]:>6} per CPU second")
        cores = local["all_cores"]
        print(f"  in process, batch {cores['batch']:>3}, {cores['threads']} torch threads (as "
              f"`predict` runs): {cores['utterances_per_s']:>6} utterances/s")
        print(f"  {'path':>5} {'clients':>7} {'calls':>7} {'p50 ms':>8} {'p99 ms':>8} "
              f"{'calls/s':>8} {'server CPU ms/call':>18} {'machine busy %':>14} {'errors':>6}")
        rows = [("gRPC", row) for row in result["grpc"]]
        rows += [("HTTP", row) for row in result.get("http", [])]
        rows += [("load", result["load"])] if "load" in result else []
        for path, row in rows:
            busy, server = row["machine_cpu_busy"], row["server_cpu_ms_per_call"]
            print(f"  {path:>5} {row['clients']:>7} {row['calls']:>7} "
                  f"{row['p50_ms'] or float('nan'):>8.2f} {row['p99_ms'] or float('nan'):>8.2f} "
                  f"{row['calls_per_s']:>8.1f} {'n/a' if server is None else server:>18} "
                  f"{'n/a' if busy is None else f'{100 * busy:.0f}':>14} "
                  f"{row['unexpected_errors']:>6}")
            for error in row["first_errors"]:
                print(f"        error: {error}")
        if "http" not in result:
            print("  HTTP (mlflow models serve): not run")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=["verdict", "default", "tiny"],
                        default=["verdict", "default"])
    parser.add_argument("--train-utterances", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--calls", type=int, default=500, help="in-process one-utterance calls")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="per throughput batch size and per client level")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--load-clients", type=int, default=32)
    parser.add_argument("--load-seconds", type=float, default=60.0,
                        help="the load run, on the first model (0: none)")
    parser.add_argument("--processes", type=int, default=1, help="gRPC server processes")
    parser.add_argument("--no-http", dest="http", action="store_false",
                        help="skip the mlflow models serve path")
    parser.add_argument("--tiny", action="store_true",
                        help="a tiny model and a fraction of a second per figure: checks that "
                        "the benchmark runs (CI), measures nothing worth reporting")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.tiny:
        args.models, args.train_utterances, args.epochs = ["tiny"], 100, 1
        args.calls, args.seconds, args.levels = 20, 0.3, [1, 2]
        args.load_clients, args.load_seconds, args.http = 2, 0.5, False

    from nlu.formats import read_utterances

    texts = [utterance.text for utterance in read_utterances(XSID_TEST, "conll")]
    sizes = model_sizes()
    load_before = os.getloadavg()[0]  # other work on the machine skews the figures
    results = []
    with tempfile.TemporaryDirectory(prefix="parse-latency-") as scratch:
        scratch = Path(scratch)
        tracking_uri = f"sqlite:///{scratch}/mlflow.db"
        for index, size in enumerate(args.models):
            results.append(measure(args, size, sizes[size], scratch, tracking_uri, texts,
                                   args.load_seconds if index == 0 else 0))
    report(results, args, load_before)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
