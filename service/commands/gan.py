"""``nlu-bootstrap gan train``: train a sequential GAN generator from a job YAML."""

from __future__ import annotations

import argparse
import logging
import sys
from contextlib import contextmanager
from pathlib import Path

from nlu.devices import add_device_arguments, device_overrides
from service.commands import Interrupted, UsageError, check_devices, interruptible, stopped


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


def _checked_job(args: argparse.Namespace):
    """The job YAML read and its config checked with the flags applied (what ``train_job``
    will do again), so that a bad file or flag is a one-line error before any data loads."""
    from gan.config import GanConfig
    from gan.training import load_job
    from nlu.devices import with_devices
    from nlu.jobs import JobConfigError

    changes = _changes(args)
    try:  # its errors name the file and the key; --delexicalised allows a catalogue
        job = load_job(args.config, args.profile, changes=changes)
    except JobConfigError as error:
        raise UsageError(str(error)) from None
    try:
        GanConfig.from_dict(with_devices(job.config.to_dict(), device_overrides(args)) | changes)
    except ValueError as error:
        field, _, problem = str(error).partition(": ")
        flag = f"--{field.replace('_', '-')}" if field in ("devices", "delexicalised") else None
        raise UsageError(f"{flag or f'{args.config}: gan.{field}'}: {problem}") from None
    return job


def _changes(args: argparse.Namespace) -> dict:
    """GanConfig fields the flags change."""
    return {"delexicalised": True} if args.delexicalised else {}


@contextmanager
def _job_lines_on_stderr():
    """The job's own log lines (the catalogue it read) on stderr while it runs."""
    logger = logging.getLogger("gan.training")
    handler = logging.StreamHandler(sys.stderr)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _replacing_note(job) -> str | None:
    """What a fresh run (no ``--resume``) replaces, said before it does."""
    run_dir, tracking = job.run_dir, job.tracking
    if not (run_dir / "generator").exists() and not (run_dir / "checkpoints").exists():
        return None
    moved = (f" and moves {tracking.registered_name}@{tracking.alias} to the new version"
             if tracking.registered_name and tracking.alias else "")
    return (f"note: {run_dir} holds an earlier run: training from scratch replaces it{moved} "
            "(--resume continues it instead)")


def run(args: argparse.Namespace) -> int:
    from gan.training import train_job
    from nlu.tracking import redact_uri, resolve_tracking_uri

    job = _checked_job(args)
    check_devices(device_overrides(args))
    note = None if args.resume else _replacing_note(job)
    if note:
        print(note, file=sys.stderr)
    if args.resume and not (job.run_dir / "checkpoints" / "last.ckpt").exists():
        print(f"--resume: no checkpoint in {job.run_dir}; starting from step 0",
              file=sys.stderr)
    tracking_uri = resolve_tracking_uri(args.tracking_uri)
    try:
        with interruptible(), _job_lines_on_stderr():
            augmenter = train_job(args.config, profile=args.profile, tracking_uri=tracking_uri,
                                  resume=args.resume, devices=device_overrides(args),
                                  changes=_changes(args))
    except Interrupted as stop:
        raise stopped(stop, job.run_dir) from None
    metrics = augmenter.info.metrics
    shown = {name: value for name, value in metrics.items() if "/" not in name}
    if shown:  # none with eval_samples: 0
        print("quality of", int(metrics.get("count", 0)), "samples (top-p 0.9):",
              ", ".join(f"{name} {value:.3f}" for name, value in shown.items()))
    tracking = job.tracking
    run_id = augmenter.info.source.removeprefix("gan:")
    registered = f"runs:/{run_id}/model"
    if tracking.registered_name:
        registered = (f"{tracking.registered_name}@{tracking.alias}" if tracking.alias
                      else f"{tracking.registered_name} (its newest version)")
    print(f"MLflow run {run_id} in {redact_uri(tracking_uri)}; generator: {registered} "
          f"(saved in {job.run_dir / 'generator'})")
    return 0
