"""``nlu-bootstrap experiment run STUDY.yaml``: run (or resume) a study's MLflow runs."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from nlu.devices import add_device_arguments, device_overrides


def _names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(f"expected comma-separated names, got {text!r}")
    return names


def _seeds(text: str) -> list[int]:
    try:
        return [int(seed) for seed in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def add_parser(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    run_parser = actions.add_parser("run", help="run every task x arm x seed not finished yet")
    run_parser.add_argument("study", type=Path, help="study YAML, e.g. experiments/study_bootstrap.yaml")
    run_parser.add_argument("--profile", help="a profile of the YAML, e.g. smoke")
    run_parser.add_argument("--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI, "
                            "else the embedded sqlite store in .nlu-bootstrap/)")
    run_parser.add_argument("--data-root", type=Path,
                            help="folder the study's data paths are relative to "
                            "(default: the YAML's data_root)")
    run_parser.add_argument("--seeds", type=_seeds, metavar="S1,S2,...",
                            help="run these seeds instead of the YAML's (finished ones are skipped)")
    run_parser.add_argument("--tasks", type=_names, metavar="T1,T2,...",
                            help="run only these of the profile's tasks (e.g. to split a seed "
                            "over two processes, one store each)")
    run_parser.add_argument("--arms", type=_names, metavar="A1,A2,...",
                            help="run only these of the profile's arms")
    run_parser.add_argument("--work-dir", type=Path,
                            help="checkpoints and baseline models (default: "
                            ".nlu-bootstrap/experiments/<experiment>)")
    add_device_arguments(run_parser)  # NLU models: all; GANs (one process): accelerator, precision


def run(args: argparse.Namespace) -> int:
    from experiments.runner import StudyConfigError, load_study, run_study
    from nlu.tracking import resolve_tracking_uri

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    # A study trains hundreds of models: keep Lightning's per-fit banners and the per-epoch
    # lines (rank_zero has its own level) out of its log; MLflow has the curves.
    for name in ("pytorch_lightning", "pytorch_lightning.utilities.rank_zero"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        study = load_study(args.study, args.profile, data_root=args.data_root, seeds=args.seeds,
                           devices=device_overrides(args), tasks=args.tasks, arms=args.arms)
    except (OSError, StudyConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    tracking_uri = resolve_tracking_uri(args.tracking_uri)
    work_dir = args.work_dir or Path(".nlu-bootstrap/experiments") / study.experiment
    counts = run_study(study, tracking_uri=tracking_uri, work_dir=work_dir)
    print(f"experiment {study.experiment}: {counts['ran']} runs done, "
          f"{counts['skipped']} already finished (tracking: {tracking_uri})")
    return 0
