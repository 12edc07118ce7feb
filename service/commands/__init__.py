"""The CLI's commands, one module each; shared argument types and checks here."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Callable, Iterator


RESEND_SECONDS = 1.0  # a signal whose Interrupted was dropped comes again after this
DEFER_SECONDS = 0.1  # a signal that came during an MLflow database write comes again after this


class UsageError(ValueError):
    """A bad argument found by a command's own checks: ``service.cli`` prints it, exit 2."""


class Interrupted(BaseException):
    """SIGTERM or Ctrl-C stopped a long command: ``str()`` says where it stopped and how to
    go on; ``exit_code`` is the shell's 128 + signal number (143, 130).

    A BaseException, like ``KeyboardInterrupt``, so that nothing on the way catches it; raised
    in place of Lightning's ``SIGTERMException`` (a ``SystemExit`` without a code, which would
    end the process with status 0) and of its Ctrl-C handling (exit 1)."""

    def __init__(self, signum: int, message: str = ""):
        self.signum = signum
        self.exit_code = 128 + signum
        super().__init__(message)

    def with_message(self, message: str) -> "Interrupted":
        return Interrupted(self.signum, message)


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Turn SIGTERM and SIGINT into ``Interrupted`` while the block runs. Lightning keeps a
    handler it finds and calls it after its own, so the signal stops a fit at once (the last
    checkpoint is from the last finished epoch)."""

    received: list[int] = []
    state = {"inside": True, "reached": False, "resent": False}

    def resend(signum: int) -> None:
        if state["inside"] and not state["reached"]:
            state["resent"] = True
            os.kill(os.getpid(), signum)

    def send_again(signum: int, after: float) -> None:
        timer = threading.Timer(after, resend, args=(signum,))
        timer.daemon = True
        timer.start()

    def stop(signum, frame):
        resent, state["resent"] = state["resent"], False
        if resent and isinstance(sys.exc_info()[1], Interrupted):
            # the first one was not dropped, it is on its way out through the cleanup (an
            # MLflow run being marked FAILED): raised in there, it would cut that short
            return
        if _in_sql_store(frame):
            # cut in half, an MLflow write keeps its sqlite database locked, and the run could
            # not be marked FAILED: the signal comes again once the write is done
            send_again(signum, DEFER_SECONDS)
            return
        received.append(signum)
        # Raised where the interpreter cannot pass it on (a weakref callback during garbage
        # collection), the exception is printed and dropped: then the signal comes again.
        send_again(signum, RESEND_SECONDS)
        raise Interrupted(signum)

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    except Interrupted:
        state["reached"] = True
        raise
    except SystemExit as exit_:
        state["reached"] = True
        if exit_.code is None:  # Lightning's SIGTERMException, had its handler run alone
            raise Interrupted(signal.SIGTERM) from None
        raise
    except BaseException:
        # raised inside a library's C++ code (a checkpoint being written), the interrupt
        # comes back as that library's own error: the signal is still what stopped it
        state["reached"] = True
        if received:
            raise Interrupted(received[0]) from None
        raise
    finally:
        state["inside"] = False
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _in_sql_store(frame) -> bool:
    """Whether ``frame`` runs inside MLflow's SQL store, where a transaction may be open."""
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if "sqlalchemy" in module or module.startswith("mlflow.store.db"):
            return True
        frame = frame.f_back
    return False


def finished_epochs(run_dir: Path) -> int:
    """How many epochs the newest ``last.ckpt`` under ``run_dir`` holds (0 if none)."""
    checkpoints = sorted(Path(run_dir).rglob("last.ckpt"), key=lambda path: path.stat().st_mtime)
    if not checkpoints:
        return 0
    from nlu.training import checkpoint_epochs

    try:
        return checkpoint_epochs(checkpoints[-1])
    except Exception:  # half a file from another writer: nothing to count on
        return 0


def stopped(stop: Interrupted, run_dir: Path) -> Interrupted:
    """``stop`` with the message a training command prints."""
    epochs = finished_epochs(run_dir)
    saved = f"saved in {run_dir}" if epochs else "none saved yet: --resume starts over"
    return stop.with_message(f"stopped at epoch {epochs} ({saved}); continue with --resume")


def number(kind: type = int, *, low: float, high: float | None = None,
           above_low: bool = False) -> Callable[[str], int | float]:
    """An argparse ``type``: a finite ``kind`` in ``[low, high]`` (``(low, ...`` with
    ``above_low``); anything else is a usage error naming the flag, exit code 2."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {kind.__name__}, got {text!r}") from None
        inside = (value > low if above_low else value >= low) and (high is None or value <= high)
        if not math.isfinite(value) or not inside:
            bounds = f"{'>' if above_low else '>='} {low:g}" + (
                f" and <= {high:g}" if high is not None else "")
            raise argparse.ArgumentTypeError(f"must be {bounds}, got {text!r}")
        return value

    return parse


def count_of(name: str) -> Callable[[str], tuple[str, int]]:
    """An argparse ``type`` for ``NAME=N`` with a whole N >= 0 (``--quota``, ``--slot-quota``)."""

    def parse(text: str) -> tuple[str, int]:
        key, separator, count = text.rpartition("=")
        if not separator or not key or not count.isdigit():
            raise argparse.ArgumentTypeError(f"expected {name}=N with a whole N >= 0, "
                                             f"got {text!r}")
        return key, int(count)

    return parse


GPU_ACCELERATORS = ("gpu", "cuda")


def check_devices(overrides: dict) -> None:
    """Refuse device flags this machine or Lightning cannot honour, before any data loads:
    a GPU accelerator without a GPU (``torch.cuda.is_available()``), MPS without MPS, a
    strategy Lightning does not know."""
    accelerator = overrides.get("accelerator")
    if accelerator in GPU_ACCELERATORS or accelerator == "mps":
        import torch

        present = (torch.backends.mps.is_available() if accelerator == "mps"
                   else torch.cuda.is_available())
        if not present:
            raise UsageError(f"--accelerator {accelerator}: this machine has none "
                             f"(use --accelerator cpu or auto)")
    strategy = overrides.get("strategy")
    if strategy is not None and strategy != "auto":
        from pytorch_lightning.strategies import StrategyRegistry

        known = StrategyRegistry.available_strategies()
        if strategy not in known:
            raise UsageError(f"--strategy {strategy}: not a Lightning strategy (auto, "
                             f"{', '.join(name for name in known if '_find_' not in name)})")
