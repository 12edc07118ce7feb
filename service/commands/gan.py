"""``nlu-bootstrap gan train``: train a sequential GAN generator from a job YAML."""

from __future__ import annotations

import argparse
from pathlib import Path

from nlu.devices import add_device_arguments, device_overrides


def add_parser(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="gan_action", metavar="ACTION", required=True)
    train = actions.add_parser("train", help="train G and D; log the run and the generator")
    train.add_argument("--config", type=Path, required=True,
                       help="job YAML, e.g. experiments/gan_xsid_de.yaml")
    train.add_argument("--profile", help="a variant named in the job's profiles, e.g. mle")
    train.add_argument("--tracking-uri", help="MLflow tracking URI (default: "
                       "$MLFLOW_TRACKING_URI, else the embedded sqlite store)")
    train.add_argument("--resume", action="store_true",
                       help="continue from run_dir/checkpoints/last.ckpt and the same MLflow run")
    train.add_argument("--delexicalised", action="store_true",
                       help="write carrier phrases and fill slots from the training data's "
                       "values (the job's gan.delexicalised)")
    add_device_arguments(train)  # the GAN trains in one process: no ddp


def run(args: argparse.Namespace) -> int:
    from gan.training import train_job

    augmenter = train_job(args.config, profile=args.profile, tracking_uri=args.tracking_uri,
                          resume=args.resume,
                          devices=device_overrides(args),
                          changes={"delexicalised": True} if args.delexicalised else None)
    metrics = augmenter.info.metrics
    shown = {name: value for name, value in metrics.items() if "/" not in name}
    print("quality of", int(metrics.get("count", 0)), "samples (top-p 0.9):",
          ", ".join(f"{name} {value:.3f}" for name, value in shown.items()))
    print(f"generator: {augmenter.info.source}")
    return 0
