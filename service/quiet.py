"""Keep the libraries' chatter out of what a user reads: ``quiet_libraries``.

Called once by ``service.cli.main`` unless ``--verbose``; a process the server spawns can
call it too (spawned processes do not inherit logger levels or warning filters).
"""

from __future__ import annotations

import logging
import os
import warnings

# Lines and warnings of the libraries that tell a user nothing about their job.
QUIET_LOGGERS = ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero",
                 "mlflow.store.db.utils",  # "Creating initial MLflow database tables..."
                 "lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
QUIET_WARNINGS = (r".*LeafSpec", r"Checkpoint directory .* exists and is not empty",
                  r"(GPU|TPU) available but not used",
                  r"The number of training batches .* is smaller than the logging interval")


def quiet_libraries() -> None:
    """Keep Lightning's banners ("GPU available: ...", the litlogger tip), its warnings about
    checkpoint folders, torch's ``LeafSpec`` deprecation and MLflow's download progress bar
    (its carriage returns fill log files) out of the output.

    Lightning sets its package loggers to INFO when it is imported, so the levels go on the
    child loggers its ``rank_zero_info`` writes to, which it leaves alone.
    """
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message)
