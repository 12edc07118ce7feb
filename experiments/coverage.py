"""What a study's catalogues could add, before any run: per task, the spans of the dev set
whose value the target's training data lacks (no copy can teach those) and the share of them
its catalogue holds (same slot type, same words, case-folded). Dev only: it informs the
prediction written before the test seeds, so it never reads a test file.

    python -m experiments.coverage experiments/study_bootstrap.yaml --profile catalogue
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from experiments.runner import Study, Task, load_study, task_catalogue, task_data
from nlu.metrics import seen_slot_values


@dataclass(frozen=True)
class Coverage:
    task: str
    spans: int  # dev spans of the target language (of the cut intents, where a task has some)
    unseen: int  # of those, values the target train set lacks
    held: int  # of the unseen ones, values the catalogue holds
    catalogue_types: int
    catalogue_values: int


def catalogue_coverage(study: Study, task: Task, seed: int) -> Coverage:
    data = task_data(study, task, seed)
    catalogue, metrics = task_catalogue(study, task, data, seed)
    seen = seen_slot_values(data.target_train)
    held = {(slot, tuple(word.lower() for word in value))
            for slot, values in catalogue.values.get(task.language, {}).items()
            for value in values}
    dev = [u for u in data.dev if u.language == task.language
           and (not task.focus_intents or u.intent in task.focus_intents)]
    spans = [(span.label, tuple(word.lower() for word in u.tokens[span.start:span.end]))
             for u in dev for span in u.spans]
    unseen = [span for span in spans if span not in seen]
    return Coverage(task=task.name, spans=len(spans), unseen=len(unseen),
                    held=sum(span in held for span in unseen),
                    catalogue_types=int(metrics["catalogue/slot_types"]),
                    catalogue_values=int(metrics["catalogue/values"]))


def markdown(rows: list[Coverage]) -> str:
    lines = ["| task | dev spans | value unseen in train | of those, in the catalogue | "
             "catalogue slot types | catalogue values |", "|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        lines.append(f"| {row.task} | {row.spans} | {100 * row.unseen / max(1, row.spans):.1f} % "
                     f"| {100 * row.held / max(1, row.unseen):.1f} % | {row.catalogue_types} "
                     f"| {row.catalogue_values} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", help="a study YAML whose tasks have catalogues")
    parser.add_argument("--profile", default="catalogue")
    parser.add_argument("--seed", type=int, default=1, help="the draw of the target data")
    args = parser.parse_args(argv)
    study = load_study(args.study, args.profile)
    print(markdown([catalogue_coverage(study, task, args.seed) for task in study.tasks
                    if task.catalogue is not None]), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
