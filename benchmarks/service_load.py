"""Loopback load test of ``AugmentationService.Augment``: latency and throughput under load.

    .venv/bin/python benchmarks/service_load.py [--generator NAME@ALIAS --tracking-uri URI]

Starts ``nlu-bootstrap serve`` as a separate process on a free loopback port and, for 1, 8
and 32 concurrent clients (threads of this process, one channel each), issues ``Augment``
calls for 100 utterances each, bounded by ``--calls`` per level and ``--seconds`` per level,
whichever comes first. A call's latency runs from the request to its last utterance. Prints
p50/p95/p99 latency, calls/s, utterances/s, how busy the machine's cores were (server and
clients together) and the number of unexpected errors per level (target: p99 < 150 ms at 8
clients, 0 errors).

Without ``--generator`` it first trains a generator with the default GanConfig model sizes
by MLE only (a few epochs over 2,000 utterances of the xSID English training set: enough to
end utterances at a natural length, which is what sets the sampling cost) into a temporary
MLflow store.

``--tiny``: a tiny generator on 40 bundled utterances, one server process, one client, three
calls of 10 utterances, on loopback: it checks that the benchmark runs
(tests/test_benchmarks.py); its figures mean nothing.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import numpy as np

REPOSITORY = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPOSITORY))

from service import client  # noqa: E402  (after the path set-up, so the script runs anywhere)

XSID_TRAIN = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "xsid" / "en-train-v0.1"
BUNDLED_TRAIN = REPOSITORY / "experiments" / "data" / "xsid" / "en-train-sample.jsonl"
TINY_GAN = dict(embedding_dim=16, tag_dim=8, condition_dim=8, hidden_dim=24, d_hidden_dim=16,
                max_length=12, batch_size=16)
TINY_SETTINGS = dict(levels=[1], count=10, calls=3, seconds=30.0, warmup=1, train_utterances=40,
                     mle_epochs=1, processes=1)


def train_generator(store: Path, utterances: int, mle_epochs: int,
                    seed: int, tiny: bool = False) -> tuple[str, str]:
    """A default-sized generator trained briefly (``tiny``: a tiny one on bundled data);
    returns (tracking URI, reference)."""
    import torch

    from gan.config import GanConfig

    from gan.training import train_gan
    from nlu.jobs import TrackingConfig
    from nlu.formats import read_utterances

    torch.set_num_threads(1)
    tracking_uri = f"sqlite:///{store}/mlflow.db"
    train = (read_utterances(BUNDLED_TRAIN) if tiny
             else read_utterances(XSID_TRAIN, "xsid-pair"))[:utterances]
    config = GanConfig(mle_epochs=mle_epochs, d_pretrain_steps=5, adversarial_steps=0,
                       steps_per_checkpoint=20, eval_samples=0, seed=seed,
                       **(TINY_GAN if tiny else {}))
    train_gan(train, config, run_dir=store / "gan", tracking_uri=tracking_uri,
              tracking=TrackingConfig("service-load", registered_name="load-gan", alias="bench"),
              progress_bar=False)
    return tracking_uri, "load-gan@bench"


def start_server(tracking_uri: str, state_dir: Path, max_streams: int,
                 processes: int) -> tuple[subprocess.Popen, int]:
    command = [sys.executable, "-m", "service.cli", "serve", "--tracking-uri", tracking_uri,
               "--port", "0", "--state-dir", str(state_dir), "--max-streams", str(max_streams),
               "--processes", str(processes)]
    process = subprocess.Popen(command, cwd=REPOSITORY, stderr=subprocess.PIPE, text=True)
    for line in process.stderr:
        if "listening on port" in line:
            port = int(line.split("listening on port")[1].split()[0])
            break
    else:
        raise RuntimeError("the server exited before listening")
    threading.Thread(target=process.stderr.read, daemon=True).start()  # keep the pipe drained
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    # Each connection lands on one of the server processes: wait until many fresh
    # connections all report SERVING, i.e. every process has loaded its generators.
    deadline = time.monotonic() + 300
    while True:
        statuses = []
        for _ in range(8 * processes):
            with client.connect(f"127.0.0.1:{port}") as channel:
                try:
                    statuses.append(health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(), timeout=5).status)
                except grpc.RpcError:
                    statuses.append(None)
        if all(status == health_pb2.HealthCheckResponse.SERVING for status in statuses):
            return process, port
        if time.monotonic() > deadline or process.poll() is not None:
            raise RuntimeError("the server did not become SERVING")
        time.sleep(1)


def cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of the whole machine from /proc/stat (None off Linux)."""
    try:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    except OSError:
        return None
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def run_level(target: str, generator: str, clients: int, *, count: int, calls: int,
              seconds: float, seed: int) -> dict:
    """``clients`` threads issue Augment calls until ``calls`` are done or time is up."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    issued = iter(range(calls))
    stop_at = time.perf_counter() + seconds

    def worker() -> None:
        with client.connect(target) as channel:
            while time.perf_counter() < stop_at:
                with lock:
                    call = next(issued, None)
                if call is None:
                    return
                started = time.perf_counter()
                try:
                    received = sum(1 for _ in client.augment(channel, generator, count,
                                                             seed=seed + call, timeout=30))
                    if received != count:
                        raise RuntimeError(f"got {received} of {count} utterances")
                except (grpc.RpcError, RuntimeError) as error:
                    with lock:
                        errors.append(str(error)[:200])
                    continue
                with lock:
                    latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    cpu_before = cpu_times()
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    cpu_after = cpu_times()
    # Server, clients and anything else: at 100 % the cores are the bottleneck.
    busy = (None if cpu_before is None or cpu_after is None else
            (cpu_after[0] - cpu_before[0]) / max(1, cpu_after[1] - cpu_before[1]))
    milliseconds = np.array(latencies) * 1000
    return {"clients": clients, "calls": len(latencies), "seconds": round(elapsed, 2),
            "p50_ms": float(np.percentile(milliseconds, 50)) if latencies else None,
            "p95_ms": float(np.percentile(milliseconds, 95)) if latencies else None,
            "p99_ms": float(np.percentile(milliseconds, 99)) if latencies else None,
            "calls_per_s": len(latencies) / elapsed,
            "utterances_per_s": len(latencies) * count / elapsed,
            "machine_cpu_busy": busy,
            "unexpected_errors": len(errors), "first_errors": errors[:3]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--generator", help="registered generator (default: train one)")
    parser.add_argument("--tracking-uri", help="store holding --generator")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--count", type=int, default=100, help="utterances per call")
    parser.add_argument("--calls", type=int, default=400, help="most calls per level")
    parser.add_argument("--seconds", type=float, default=20.0, help="most seconds per level")
    parser.add_argument("--warmup", type=int, default=10, help="unmeasured calls first")
    parser.add_argument("--train-utterances", type=int, default=2000)
    parser.add_argument("--mle-epochs", type=int, default=4)
    parser.add_argument("--processes", type=int, default=2, help="server processes (serve "
                        "--processes); default: one per core of the 2-core target machine")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--tiny", action="store_true",
                        help="a tiny generator, one client, three calls: checks that it runs")
    args = parser.parse_args(argv)
    if (args.generator is None) != (args.tracking_uri is None):
        parser.error("--generator and --tracking-uri go together")
    if args.tiny:
        for name, value in TINY_SETTINGS.items():
            setattr(args, name, value)

    with tempfile.TemporaryDirectory(prefix="service-load-") as scratch:
        scratch = Path(scratch)
        if args.generator is None:
            began = time.perf_counter()
            tracking_uri, generator = train_generator(scratch, args.train_utterances,
                                                     args.mle_epochs, args.seed, args.tiny)
            print(f"trained {generator} in {time.perf_counter() - began:.0f} s", flush=True)
        else:
            tracking_uri, generator = args.tracking_uri, args.generator
        load_before = os.getloadavg()[0]  # other work on the machine skews the figures
        # This process trained the generator: its heap is large, and a full garbage
        # collection of it would pause the clients' threads, not the server's.
        gc.collect()
        gc.freeze()
        process, port = start_server(tracking_uri, scratch / "state", max(args.levels),
                                     args.processes)
        target = f"127.0.0.1:{port}"
        try:
            run_level(target, generator, 1, count=args.count, calls=args.warmup,
                      seconds=args.seconds, seed=10_000)
            with client.connect(target) as channel:
                sample = list(client.augment(channel, generator, args.count, seed=args.seed))
            mean_tokens = sum(len(u.tokens) for u in sample) / len(sample)
            results = [run_level(target, generator, clients, count=args.count, calls=args.calls,
                                 seconds=args.seconds, seed=args.seed)
                       for clients in args.levels]
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=60)
            gc.unfreeze()

    print(f"\nAugment({args.count} utterances) on {target}, generator {generator}, "
          f"(mean {mean_tokens:.1f} tokens per utterance), {args.processes} server "
          f"process(es), {os.cpu_count()} CPUs, "
          f"load average before: {load_before:.1f}; at most {args.calls} calls / "
          f"{args.seconds:.0f} s per level")
    print(f"{'clients':>7} {'calls':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
          f"{'calls/s':>8} {'utt/s':>8} {'cpu %':>6} {'errors':>6}")
    for row in results:
        busy = row["machine_cpu_busy"]
        print(f"{row['clients']:>7} {row['calls']:>6} {row['p50_ms'] or float('nan'):>8.1f} "
              f"{row['p95_ms'] or float('nan'):>8.1f} {row['p99_ms'] or float('nan'):>8.1f} "
              f"{row['calls_per_s']:>8.1f} {row['utterances_per_s']:>8.0f} "
              f"{'n/a' if busy is None else f'{100 * busy:.0f}':>6} "
              f"{row['unexpected_errors']:>6}")
        for error in row["first_errors"]:
            print(f"        error: {error}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
