"""Studies: one YAML per study, run into MLflow, then compared (top floor, beside ``service``).

* ``study_*.yaml`` — a study's tasks and profiles, over ``base_study.yaml``: what both
  studies share (arms, seeds, models, profiles, the pre-registered verdict bar);
  ``gan_xsid_de.yaml``, ``bootstrap_xsid.yaml`` — a GAN job and a bootstrap job;
* ``runner`` — one MLflow run per task x arm x seed, resumable;
* ``compare/`` — the report from the MLflow store alone: collect, tables, verdict, plots;
* ``patience`` — early stopping replayed on logged dev curves, to choose patience and cap;
* ``archive`` — a study's finished runs exported to a small file and imported elsewhere, so a
  study run in chunks on several machines can be resumed and reported anywhere;
* ``RESULTS.md`` and ``results/`` — what the studies found, each report beside its notes.
"""
