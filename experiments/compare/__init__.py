"""The comparison report of a study, built from the MLflow store alone.

``build_report(experiment, tracking_uri, out_dir)`` reads every FINISHED arm run of the
experiment (tag ``kind=arm``; see ``experiments/runner.py``) and writes ``report.md`` and PNG
plots to ``out_dir``, logged again as artifacts of a ``kind=compare`` run. Tables depend only
on the runs' tags, metrics and params, sorted and formatted deterministically, so re-running
on the same store reproduces them byte for byte. ``split="dev"`` makes a report without a
single test number, for choosing settings before the test run.

Rooms, in the order the data flows:

* ``runs``    — collect: ``RunRecord``s from one or more stores;
* ``tables``  — summaries over seeds (mean ± standard error; one seed shows the mean alone),
  the per-metric, per-task, equal-size-gain, grid-factor and synthetic-set tables;
* ``verdict`` — one generator arm against upsampling to the same size, judged by the study
  YAML's ``verdict_bar`` (logged with the runs, or passed explicitly);
* ``catalogue`` — slot F1 on seen vs unseen slot values per task and arm, and the catalogue
  verdict: the best catalogue arm against upsampling (``catalogue_bar``), the generated one
  against refill;
* ``plots``   — bars per arm, quality vs diversity, synthetic-set metrics, metric vs scale;
* ``report``  — ``report_markdown`` and ``build_report``, which put them together.
"""

from experiments.compare.catalogue import (CatalogueBar, catalogue_verdict_section,
                                           seen_unseen_sections)
from experiments.compare.report import build_report, report_markdown
from experiments.compare.runs import RunRecord, collect, collect_stores
from experiments.compare.tables import Summary, markdown_table, summarize
from experiments.compare.verdict import VerdictBar, choose_on_dev, verdict_section

__all__ = ["CatalogueBar", "RunRecord", "Summary", "VerdictBar", "build_report",
           "catalogue_verdict_section", "choose_on_dev", "collect", "collect_stores",
           "markdown_table", "report_markdown", "seen_unseen_sections", "summarize",
           "verdict_section"]
