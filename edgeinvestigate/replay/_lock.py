"""One ``replay run`` per plan at a time: an exclusive OS lock next to the plan's ledger."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

from edgeinvestigate.errors import ReplayRefusedError

__all__ = ["RunLock"]


class RunLock:
    """An exclusive OS lock next to the ledger: one ``replay run`` per plan at a time.

    The kernel drops the lock when the process dies (even by ``kill -9``), so a crash never leaves
    a stale lock behind.
    """

    def __init__(self, ledger_path: Path) -> None:
        self.path = ledger_path.with_name(ledger_path.name + ".lock")
        self._fh: IO[str] | None = None

    def acquire(self) -> None:
        import fcntl

        fh = self.path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise ReplayRefusedError(
                f"another replay run of this plan is in progress ({holder}); two runs would race",
                hint="watch it with: edgeinvestigate replay status PLAN (or stop it with replay cancel PLAN)",
            ) from exc
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            import fcntl

            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
