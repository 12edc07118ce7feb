"""Studies: one YAML per study, run into MLflow, then compared (top floor, beside ``service``).

* ``study_*.yaml`` — a study's tasks, arms, seeds, models and its pre-registered verdict bar;
* ``runner`` — one MLflow run per task x arm x seed, resumable;
* ``compare/`` — the report from the MLflow store alone: collect, tables, verdict, plots;
* ``RESULTS.md`` and ``results/`` — what the studies found, each report beside its notes.
"""
