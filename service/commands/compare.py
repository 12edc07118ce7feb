"""``nlu-bootstrap compare --experiment NAME``: tables and plots of a study, from MLflow."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from service.commands import UsageError


def add_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--experiment", required=True, help="MLflow experiment of the study")
    parser.add_argument("--out", type=Path,
                        help="report folder (default: .nlu-bootstrap/reports/<experiment>)")
    parser.add_argument("--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI, "
                        "else the embedded sqlite store in .nlu-bootstrap/)")
    parser.add_argument("--more-tracking-uri", action="append", default=[], metavar="URI",
                        help="another store holding runs of the same study (repeatable; e.g. "
                        "one store per process when seeds ran in parallel)")
    parser.add_argument("--split", choices=("dev", "test"), default="test",
                        help="dev: a report with dev numbers only, for choosing settings "
                        "before the test run (default: test, with dev beside it)")
    parser.add_argument("--verdict-arm", metavar="ARM",
                        help="the arm the verdict table judges against upsampling to the same "
                        "size (default: the generator arm with the best dev gain)")
    parser.add_argument("--catalogue-arm", metavar="ARM",
                        help="the catalogue arm the catalogue verdict judges against "
                        "upsampling and refill at the same size (default: the catalogue arm "
                        "with the best dev gain)")
    parser.add_argument("--catalogue-generated-arm", metavar="ARM",
                        help="the generated catalogue arm the catalogue verdict judges against "
                        "refill at the same size (default: --catalogue-arm if it is a "
                        "generated one, else the generated catalogue arm with the best dev "
                        "gain)")
    parser.add_argument("--study", type=Path, metavar="FILE",
                        help="a study YAML whose verdict_bar and catalogue_bar judge the "
                        "verdict arms (default: the bars the runs logged with their study "
                        "config)")
    parser.add_argument("--no-log", action="store_true",
                        help="only write the folder, do not log a compare run to MLflow")


def run(args: argparse.Namespace) -> int:
    from experiments.compare import build_report
    from nlu.tracking import resolve_tracking_uri

    out = args.out or Path(".nlu-bootstrap/reports") / args.experiment
    tracking_uri = resolve_tracking_uri(args.tracking_uri)
    _check_experiment(args.experiment, [tracking_uri, *args.more_tracking_uri])
    try:
        bar, catalogue_bar = (None, None) if args.study is None else study_file_bars(args.study)
        report = build_report(args.experiment, tracking_uri, out,
                              log_to_mlflow=not args.no_log,
                              more_tracking_uris=args.more_tracking_uri, split=args.split,
                              verdict_arm=args.verdict_arm, verdict_bar=bar,
                              catalogue_arm=args.catalogue_arm,
                              catalogue_generated_arm=args.catalogue_generated_arm,
                              catalogue_bar=catalogue_bar)
    except (LookupError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(report.read_text(encoding="utf-8"), end="")
    print(f"\nreport and plots written to {out}/", file=sys.stderr)
    return 0


def study_file_bars(path: Path):
    """The ``verdict_bar`` and ``catalogue_bar`` (None where it has none) of a study YAML (or
    of the base it builds on); ``ValueError`` naming the file."""
    from experiments.compare import CatalogueBar, VerdictBar
    from nlu.jobs import JobConfigError, read_yaml

    try:
        raw = read_yaml(path)
    except JobConfigError as error:
        raise ValueError(f"--study: {error}") from None
    if "verdict_bar" not in raw and "catalogue_bar" not in raw:
        raise ValueError(f"--study: {path} has no top-level verdict_bar or catalogue_bar")
    return (VerdictBar.from_dict(raw["verdict_bar"], f"{path}: verdict_bar")
            if "verdict_bar" in raw else None,
            CatalogueBar.from_dict(raw["catalogue_bar"], f"{path}: catalogue_bar")
            if "catalogue_bar" in raw else None)


def _check_experiment(name: str, tracking_uris: list[str]) -> None:
    """An experiment in none of the stores is an error that lists the ones they have."""
    from nlu.tracking import client, redact_uri

    names: set[str] = set()
    for tracking_uri in tracking_uris:
        mlflow_client = client(tracking_uri)
        if mlflow_client.get_experiment_by_name(name) is not None:
            return
        names.update(experiment.name for experiment in mlflow_client.search_experiments()
                     if experiment.name != "Default")
    where = ", ".join(redact_uri(uri) for uri in tracking_uris)
    raise UsageError(f"--experiment: no experiment {name!r} in {where}; "
                     + (f"it has: {', '.join(sorted(names))}" if names else "it has none yet "
                        "(`nlu-bootstrap experiment run` makes one)"))
