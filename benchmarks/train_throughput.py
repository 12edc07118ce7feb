"""Joint-model training throughput (utterances/s) on 1 CPU process, 2 CPU DDP processes
(gloo) and, when there is one, a GPU.

    .venv/bin/python benchmarks/train_throughput.py [--utterances 1000] [--epochs 3]

Data: the first ``--utterances`` of the bundled xSID English sample
(experiments/data/xsid/en-train-sample.jsonl); default JointModelConfig (BiLSTM + CRF, batch
32, one torch thread per process), no dev set. Each setting trains twice, for 1 and for
``--epochs`` epochs, each time in a fresh process (Lightning's ddp re-runs this script once per
extra process; only rank 0 prints); throughput = utterances x (epochs - 1) / the difference of
the two ``fit`` wall times, so start-up (vocabulary, launching and joining processes, which is
also printed) does not count.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "experiments" / "data" / "xsid" / "en-train-sample.jsonl"


def measure(args: argparse.Namespace) -> None:
    from nlu.devices import DeviceConfig, is_primary_process
    from nlu.formats import read_utterances
    from nlu.model import JointModelConfig
    from nlu.training import fit

    train = read_utterances(DATA)[: args.utterances]
    devices = DeviceConfig(accelerator=args.accelerator, devices=args.devices,
                           strategy="ddp" if args.devices > 1 else "auto")
    config = JointModelConfig(max_epochs=args.epochs, enable_progress_bar=False, devices=devices)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        fit(train, None, config, run_dir=run_dir)
    seconds = time.perf_counter() - started
    if is_primary_process():
        print(seconds, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--accelerator", help=argparse.SUPPRESS)  # one setting (internal)
    parser.add_argument("--devices", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.accelerator:
        measure(args)
        return
    import torch

    settings = [("cpu", 1), ("cpu", 2)] + ([("gpu", 1)] if torch.cuda.is_available() else [])
    for accelerator, devices in settings:
        seconds = [float(subprocess.run(
            [sys.executable, __file__, "--utterances", str(args.utterances), "--epochs",
             str(epochs), "--accelerator", accelerator, "--devices", str(devices)],
            check=True, stderr=subprocess.DEVNULL, stdout=subprocess.PIPE,
            text=True).stdout.split()[-1]) for epochs in (1, args.epochs)]
        epoch_seconds = (seconds[1] - seconds[0]) / (args.epochs - 1)
        print(f"{accelerator} x {devices}: {args.utterances / epoch_seconds:.0f} utterances/s "
              f"({epoch_seconds:.2f} s per epoch of {args.utterances}; fit of 1 epoch "
              f"{seconds[0]:.1f} s with start-up)", flush=True)


if __name__ == "__main__":
    main()
