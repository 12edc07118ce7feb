"""``nlu-bootstrap train``: run a "bootstrap a new language" job from its YAML config."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from multilingual.regimes import REGIME_NAMES
from nlu.devices import add_device_arguments, device_overrides, with_devices
from service.commands import (Interrupted, UsageError, check_devices, interruptible,
                              stopped)


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True,
                        help="job YAML, e.g. experiments/bootstrap_xsid.yaml")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: the config's "
                        "tracking.uri, $MLFLOW_TRACKING_URI, else the embedded sqlite store)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the job's last run (same MLflow run, last checkpoint)")
    parser.add_argument("--regime", choices=REGIME_NAMES, help="override the config's regime")
    parser.add_argument("--add-target-train", type=Path, action="append", default=[],
                        metavar="FILE", help="labelled target-language data to train on beside "
                        "the config's data.target_train, e.g. the copies `augment --method "
                        "refill` wrote (relative to the current folder; repeatable; logged "
                        "with the run's config)")
    add_device_arguments(parser)


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from multilingual.bootstrap import load_config, run as run_job
    from nlu.tracking import redact_uri

    config = load_config(args.config)
    if args.regime:
        config = config.with_regime(args.regime)
    missing = [path for path in args.add_target_train if not path.exists()]
    if missing:
        raise UsageError(f"--add-target-train: no such file or folder: {missing[0]}")
    if args.add_target_train:
        config = config.with_target_train(args.add_target_train)
    config = dataclasses.replace(config, model=with_devices(config.model, device_overrides(args)))
    check_devices(device_overrides(args))
    if args.resume and not any(config.run_dir.rglob("last.ckpt")):
        print(f"--resume: no checkpoint in {config.run_dir}; starting from epoch 0",
              file=sys.stderr)
    try:
        with interruptible():
            result = run_job(config, tracking_uri=args.tracking_uri, resume=args.resume)
    except Interrupted as stop:
        raise stopped(stop, config.run_dir) from None
    if result is None:  # a DDP process other than rank 0: rank 0 reports
        return 0
    metrics = result["metrics"]
    groups = sorted({key.split("/")[1] for key in metrics if key.startswith("test/")})
    print(f"\nregime {config.regime}, target {config.data.target_language}: test scores in %")
    print(f"{'group':<10} {'intent acc':>10} {'slot F1':>8} {'exact':>7} {'SemER':>7}")
    for group in groups:
        values = [100 * metrics[f"test/{group}/{name}"]
                  for name in ("intent_acc", "slot_f1", "exact_match", "semer")]
        print(f"{group:<10} {values[0]:>10.2f} {values[1]:>8.2f} {values[2]:>7.2f} {values[3]:>7.2f}")
    print(f"MLflow run {result['run_id']} in {redact_uri(result['tracking_uri'])}; "
          f"model: {result['model_ref']}")
    return 0
