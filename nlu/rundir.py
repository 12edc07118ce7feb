"""One live process per run folder: ``RunDirLock``.

A second ``train --resume`` on a folder that a live process is training would interleave two
sets of checkpoints. The lock is an OS file lock (``filelock``) on ``<run_dir>/.lock``: the
kernel releases it when its process dies, even by ``kill -9``, so a crashed job never blocks
its own resume. The holder's PID and host go into ``<run_dir>/.lock.owner`` for the message
the next process gets. Taking the lock also removes the temporary files a killed writer left
(``nlu.atomic.remove_stale_temporaries``): with the lock held, none of them is a live write.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path

from filelock import FileLock, Timeout

from nlu.atomic import remove_stale_temporaries, write_json
from nlu.devices import is_primary_process
from nlu.errors import NluDataError

log = logging.getLogger(__name__)
LOCK_NAME = ".lock"
OWNER_NAME = ".lock.owner"


class RunDirBusyError(NluDataError):
    """Another live process is training in this run folder."""


class RunDirLock:
    """``with RunDirLock(run_dir):`` — the folder is this process's until the block ends.

    In a multi-process (DDP) job only the primary process locks: the others are its own
    workers, started by it, and write nothing there."""

    def __init__(self, run_dir: Path | str):
        self.run_dir = Path(run_dir)
        self._lock = FileLock(self.run_dir / LOCK_NAME, timeout=0, is_singleton=False)
        self._held = False

    def __enter__(self) -> "RunDirLock":
        if not is_primary_process():
            return self
        self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire()
        except Timeout:
            raise RunDirBusyError(f"{self.run_dir} is being trained by {self._owner()}; wait "
                                  "for it to finish or stop it first", field="run_dir") from None
        self._held = True
        write_json(self.run_dir / OWNER_NAME, {"pid": os.getpid(), "host": socket.gethostname(),
                                               "since": time.strftime("%Y-%m-%d %H:%M:%S %Z")})
        for path in remove_stale_temporaries(self.run_dir):
            log.info("removed %s, left by a killed writer", path)
        return self

    def __exit__(self, *exc_info) -> None:
        if self._held:
            (self.run_dir / OWNER_NAME).unlink(missing_ok=True)
            self._lock.release()
            self._held = False

    def _owner(self) -> str:
        try:
            owner = json.loads((self.run_dir / OWNER_NAME).read_text(encoding="utf-8"))
            return f"process {owner['pid']} on {owner['host']} (since {owner['since']})"
        except (OSError, ValueError, KeyError):
            return "another process"
