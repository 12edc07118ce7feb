"""Choose early stopping's patience and the epoch cap on dev, from runs that trained long.

Run a study profile once with a generous patience and cap (``verdict-pilot`` in
``base_study.yaml``); every run logs its NLU model's per-epoch ``dev_score``. Early stopping
with a smaller patience ``p`` would have stopped at the first epoch after which ``p`` epochs
bring no gain, keeping the best model so far: this module replays that on the logged curves
and reports, per ``p``, what it costs (dev score lost against the whole curve's best) and
what it saves (epochs), and how often a cap would have cut a run short.

    python -m experiments.patience --experiment study-bootstrap-verdict-pilot \\
        --tracking-uri sqlite:///pilot.db --out experiments/results/convergence-pilot
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

PATIENCES = (1, 2, 3, 4, 5, 6, 8, 10)
CAPS = (12, 20, 30, 40, 60)


@dataclass(frozen=True)
class Curve:
    task: str
    arm: str
    seed: str
    dev_scores: tuple[float, ...]  # one per epoch, in order


def stopped(scores: Sequence[float], patience: int, cap: int | None = None) -> tuple[int, float]:
    """(epochs trained, best dev score kept) under early stopping with ``patience`` (Lightning's
    rule: stop once ``patience`` epochs in a row bring no strict gain) and an epoch ``cap``."""
    best, best_at, epochs = float("-inf"), 0, 0
    for epoch, score in enumerate(scores[:cap] if cap else scores, start=1):
        epochs = epoch
        if score > best:
            best, best_at = score, epoch
        elif epoch - best_at >= patience:
            break
    return epochs, best


def patience_table(curves: Sequence[Curve]) -> list[dict[str, float]]:
    """Per patience: mean dev points lost against each curve's best, the worst loss, mean
    epochs trained, and the share of runs within 0.5 points of their best."""
    rows = []
    for patience in PATIENCES:
        losses, epochs = [], []
        for curve in curves:
            trained, kept = stopped(curve.dev_scores, patience)
            losses.append(100 * (max(curve.dev_scores) - kept))
            epochs.append(trained)
        rows.append({"patience": patience, "mean_loss": statistics.fmean(losses),
                     "max_loss": max(losses), "mean_epochs": statistics.fmean(epochs),
                     "within_half_point": sum(loss <= 0.5 for loss in losses) / len(losses)})
    return rows


def cap_table(curves: Sequence[Curve], patience: int) -> list[dict[str, float]]:
    """Per cap, with ``patience``: the share of runs the cap (not early stopping) ends."""
    rows = []
    for cap in CAPS:
        hits = [stopped(curve.dev_scores, patience, cap)[0] == cap
                and stopped(curve.dev_scores, patience)[0] > cap for curve in curves]
        rows.append({"cap": cap, "cap_hits": sum(hits) / len(hits)})
    return rows


def collect_curves(experiment: str, tracking_uri: str) -> list[Curve]:
    """The per-epoch dev curve of every finished arm run of ``experiment``."""
    from experiments.compare.runs import finished_arm_runs
    from nlu.tracking import client

    store = client(tracking_uri)
    curves = []
    for run in finished_arm_runs(experiment, tracking_uri):
        history = sorted(store.get_metric_history(run.info.run_id, "dev_score"),
                         key=lambda metric: (metric.step, metric.timestamp))
        if history:
            curves.append(Curve(run.data.tags["task"], run.data.tags["arm"],
                                run.data.tags["seed"], tuple(m.value for m in history)))
    return sorted(curves, key=lambda curve: (curve.task, curve.arm, curve.seed))


def markdown(curves: Sequence[Curve], chosen_patience: int) -> str:
    lines = [f"# Patience and epoch cap, replayed on {len(curves)} dev curves", "",
             "Early stopping with patience p replayed on each run's per-epoch dev score "
             "(mean of intent accuracy and slot F1); loss = points of dev score below the "
             "curve's best.", "",
             "| patience | mean loss | worst loss | runs within 0.5 | mean epochs |",
             "|---:|---:|---:|---:|---:|"]
    lines += [f"| {row['patience']} | {row['mean_loss']:.2f} | {row['max_loss']:.2f} | "
              f"{row['within_half_point']:.0%} | {row['mean_epochs']:.1f} |"
              for row in patience_table(curves)]
    lines += ["", f"With patience {chosen_patience}, the share of runs an epoch cap would end:",
              "", "| cap | runs ended by the cap |", "|---:|---:|"]
    lines += [f"| {row['cap']} | {row['cap_hits']:.0%} |" for row in cap_table(curves, chosen_patience)]
    lines += ["", "| task | arm | seed | epochs logged | best epoch | best dev score |",
              "|---|---|---|---:|---:|---:|"]
    lines += [f"| {c.task} | {c.arm} | {c.seed} | {len(c.dev_scores)} | "
              f"{c.dev_scores.index(max(c.dev_scores)) + 1} | {100 * max(c.dev_scores):.2f} |"
              for c in curves]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from nlu.atomic import atomic_open

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--experiment", required=True)
    parser.add_argument("--tracking-uri", required=True)
    parser.add_argument("--more-tracking-uri", action="append", default=[])
    parser.add_argument("--patience", type=int, default=5,
                        help="the patience the cap table assumes")
    parser.add_argument("--out", type=Path, required=True,
                        help="folder for patience.md and curves.json (kept in the repo)")
    args = parser.parse_args(argv)
    curves = [curve for uri in [args.tracking_uri, *args.more_tracking_uri]
              for curve in collect_curves(args.experiment, uri)]
    args.out.mkdir(parents=True, exist_ok=True)
    with atomic_open(args.out / "curves.json") as stream:
        json.dump([curve.__dict__ for curve in curves], stream, indent=0)
    with atomic_open(args.out / "patience.md") as stream:
        stream.write(markdown(curves, args.patience))
    print(markdown(curves, args.patience))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
