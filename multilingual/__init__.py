"""Bootstrapping an NLU model into a new language (uses ``nlu``; may use ``gan``).

* ``regimes`` — the four ways to use the source language's data (mono, mixed, finetune,
  zeroshot);
* ``bootstrap`` — the job: one YAML config -> one trained, evaluated, tracked model.
"""
