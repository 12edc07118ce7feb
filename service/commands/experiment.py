"""``nlu-bootstrap experiment run STUDY.yaml``: run (or resume) a study's MLflow runs;
``experiment export`` / ``import``: a study's finished runs as a small file that travels with
the repository (``experiments.archive``)."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from nlu.devices import add_device_arguments, device_overrides
from service.commands import Interrupted, check_devices, interruptible


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
    export = actions.add_parser("export", help="write a study's finished runs (metrics, dev "
                                "curves; no models) to a JSON-lines file")
    export.add_argument("--experiment", required=True, help="the study's MLflow experiment")
    export.add_argument("--out", type=Path, required=True, help="the file to write")
    export.add_argument("--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI, "
                        "else the embedded sqlite store in .nlu-bootstrap/)")
    imported = actions.add_parser("import", help="log exported runs into a store as finished "
                                  "runs (compare reads them; experiment run skips them)")
    imported.add_argument("files", type=Path, nargs="+", help="files written by export")
    imported.add_argument("--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI, "
                          "else the embedded sqlite store in .nlu-bootstrap/)")


class StudyProgress(logging.Filter):
    """Turns the runner's "run TASK / ARM / seed S" log lines into "run 3 of 8: ... (about
    12 min left)": a filter on its logger, so the library stays free of progress code. The
    estimate is the mean time of the runs done in this process times the runs left."""

    def __init__(self, total: int, finished_before: int, clock=time.monotonic):
        super().__init__()
        self.clock = clock
        self.total = total
        self.to_run = total - finished_before
        self.position = 0  # runs and skips seen, i.e. the place in the plan
        self.ran = 0  # runs started in this process before the current one
        self.first_started: float | None = None

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        if not message.startswith(("run ", "skip ")):
            return True
        self.position += 1
        kind, _, rest = message.partition(" ")
        estimate = ""
        if kind == "run":
            now = self.clock()
            if self.first_started is None:
                self.first_started = now
            else:
                self.ran += 1
                left = (now - self.first_started) / self.ran * (self.to_run - self.ran)
                estimate = f" (about {max(1, round(left / 60))} min left)"
        record.msg = f"{kind} {self.position} of {self.total}: {rest}{estimate}"
        return True

    def where(self) -> str:
        return f"run {self.position} of {self.total}"


def run(args: argparse.Namespace) -> int:
    if args.action == "export":
        return _export(args)
    if args.action == "import":
        return _import(args)
    return _run(args)


def _export(args: argparse.Namespace) -> int:
    from experiments.archive import export_runs
    from nlu.tracking import resolve_tracking_uri

    try:
        count = export_runs(args.experiment, resolve_tracking_uri(args.tracking_uri), args.out)
    except LookupError as error:
        print(f"error: --experiment: {error}", file=sys.stderr)
        return 2
    print(f"{count} finished runs of {args.experiment} written to {args.out}")
    return 0


def _import(args: argparse.Namespace) -> int:
    from experiments.archive import import_runs
    from nlu.tracking import redact_uri, resolve_tracking_uri

    tracking_uri = resolve_tracking_uri(args.tracking_uri)
    try:
        counts = import_runs(args.files, tracking_uri)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{counts['imported']} runs imported into {redact_uri(tracking_uri)}, "
          f"{counts['skipped']} already there")
    return 0


def _run(args: argparse.Namespace) -> int:
    import mlflow

    from experiments.runner import StudyConfigError, finished_runs, load_study, plan, run_study
    from nlu.tracking import redact_uri, resolve_tracking_uri

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
    check_devices(device_overrides(args))
    tracking_uri = resolve_tracking_uri(args.tracking_uri)
    work_dir = args.work_dir or Path(".nlu-bootstrap/experiments") / study.experiment
    mlflow.set_tracking_uri(tracking_uri)  # finished_runs searches the current store
    done = finished_runs(study, tracking_uri)
    runs = [(task.name, arm.name, str(seed)) for task, arm, seed in plan(study)]
    progress = StudyProgress(len(runs), sum(run in done for run in runs))
    runner_log = logging.getLogger("experiments.runner")
    runner_log.addFilter(progress)
    try:
        with interruptible():
            counts = run_study(study, tracking_uri=tracking_uri, work_dir=work_dir)
    except Interrupted as stop:
        raise stop.with_message(f"stopped at {progress.where()}; run the same command again "
                                "to continue (finished runs are skipped)") from None
    finally:
        runner_log.removeFilter(progress)
    print(f"experiment {study.experiment}: {counts['ran']} runs done, "
          f"{counts['skipped']} already finished; MLflow experiment {study.experiment} in "
          f"{redact_uri(tracking_uri)} (`nlu-bootstrap compare --experiment "
          f"{study.experiment}` reports on it)")
    return 0
