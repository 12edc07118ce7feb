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

``--tiny``: 16 utterances, 1 and 2 epochs of a tiny model, one CPU process only, both fits
in this process (no start-up of fresh ones), in seconds: it checks that the benchmark runs
(tests/test_benchmarks.py); its figures mean nothing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "experiments" / "data" / "xsid" / "en-train-sample.jsonl"
TINY_MODEL = dict(vocab_size=200, embedding_dim=16, hidden_dim=16, num_layers=1, batch_size=8)


def fit_seconds(args: argparse.Namespace) -> float:
    """Wall seconds of one ``fit`` as ``args`` set it (utterances, epochs, devices)."""
    from nlu.devices import DeviceConfig
    from nlu.formats import read_utterances
    from nlu.model import JointModelConfig
    from nlu.training import fit

    train = read_utterances(DATA)[: args.utterances]
    devices = DeviceConfig(accelerator=args.accelerator, devices=args.devices,
                           strategy="ddp" if args.devices > 1 else "auto")
    config = JointModelConfig(max_epochs=args.epochs, enable_progress_bar=False, devices=devices,
                              **(TINY_MODEL if args.tiny else {}))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        fit(train, None, config, run_dir=run_dir)
    return time.perf_counter() - started


def measure(args: argparse.Namespace) -> None:
    from nlu.devices import is_primary_process

    seconds = fit_seconds(args)
    if is_primary_process():
        print(seconds, flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--tiny", action="store_true",
                        help="a tiny model on 16 utterances, one CPU process: checks that it runs")
    parser.add_argument("--accelerator", help=argparse.SUPPRESS)  # one setting (internal)
    parser.add_argument("--devices", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.accelerator:
        measure(args)
        return
    import torch

    settings = [("cpu", 1), ("cpu", 2)] + ([("gpu", 1)] if torch.cuda.is_available() else [])
    if args.tiny:
        settings, args.utterances, args.epochs = [("cpu", 1)], 16, 2
    for accelerator, devices in settings:
        if args.tiny:
            seconds = [fit_seconds(argparse.Namespace(**vars(args) | {
                "epochs": epochs, "accelerator": accelerator, "devices": devices}))
                for epochs in (1, args.epochs)]
            report(args, accelerator, devices, seconds)
            continue
        seconds = [float(subprocess.run(
            [sys.executable, __file__, "--utterances", str(args.utterances), "--epochs",
             str(epochs), "--accelerator", accelerator, "--devices", str(devices)]
            + (["--tiny"] if args.tiny else []),
            check=True, stderr=subprocess.DEVNULL, stdout=subprocess.PIPE,
            text=True).stdout.split()[-1]) for epochs in (1, args.epochs)]
        report(args, accelerator, devices, seconds)


def report(args: argparse.Namespace, accelerator: str, devices: int,
           seconds: list[float]) -> None:
    """One setting's line from the wall times of a 1-epoch and an ``--epochs`` fit."""
    epoch_seconds = (seconds[1] - seconds[0]) / (args.epochs - 1)
    rate = (f"{args.utterances / epoch_seconds:.0f} utterances/s" if epoch_seconds > 0 else
            "utterances/s not measurable (the longer fit was not slower)")
    print(f"{accelerator} x {devices}: {rate} ({epoch_seconds:.2f} s per epoch of "
          f"{args.utterances}; fit of 1 epoch {seconds[0]:.1f} s with start-up)", flush=True)


if __name__ == "__main__":
    main()
