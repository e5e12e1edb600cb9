"""Child processes of the lab: each in its own process group, stopped by PID, always.

Every process the lab starts (sandbox, collector, ``wrangler dev`` and the workerd it spawns) goes
through :class:`ProcessSet`. Each child starts a new session (so its process group id is its pid);
stopping sends SIGTERM to that group, waits, then SIGKILLs the group and any descendant that left
it (found by pid through psutil before the signal). :meth:`ProcessSet.close` runs in a
``finally``: on success, failure or Ctrl-C nothing is left running.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psutil

from edgeinvestigate.errors import EdgeInvestigateError

__all__ = ["ManagedProcess", "ProcessSet", "free_port", "tail_text"]

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (for programs that cannot take port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def tail_text(path: Path, max_chars: int = 3000) -> str:
    """The end of a log file (for error messages)."""
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    return data[-max_chars:].decode("utf-8", errors="replace")


@dataclass
class ManagedProcess:
    """One started child: its name, ``Popen``, and the file its output goes to."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    _log_fh: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, max_chars: int = 3000) -> str:
        return tail_text(self.log_path, max_chars)

    def stop(self, timeout: float = 10.0) -> int | None:
        """Stop the process group (SIGTERM, then SIGKILL after ``timeout``). Returns the exit code."""
        pid = self.popen.pid
        try:
            descendants = psutil.Process(pid).children(recursive=True)
        except psutil.Error:
            descendants = []
        if self.popen.poll() is None:
            _signal_group(pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s (pid %d) did not stop after SIGTERM; killing it", self.name, pid)
                _signal_group(pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(timeout=5)
        # the group may hold children that outlive the leader (workerd under wrangler)
        _signal_group(pid, signal.SIGKILL)
        _, still = psutil.wait_procs(descendants, timeout=3)
        for proc in still:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        psutil.wait_procs(still, timeout=3)
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None
        return self.popen.returncode


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class ProcessSet:
    """The lab's children; ``close()`` stops all of them, newest first."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = Path(log_dir)
        self.procs: list[ManagedProcess] = []

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> ManagedProcess:
        """Start ``argv`` in its own process group, output appended to ``<log_dir>/<name>.log``."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        fh = log_path.open("ab")
        try:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=fh,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as exc:
            fh.close()
            raise EdgeInvestigateError(
                f"cannot start {name} ({argv[0]}): {exc.strerror or exc}",
                hint="see lab/README.md for what the lab needs (node, npm)",
            ) from exc
        proc = ManagedProcess(name, popen, log_path, fh)
        self.procs.append(proc)
        log.info("started %s (pid %d)", name, popen.pid)
        return proc

    def stop(self, proc: ManagedProcess, timeout: float = 10.0) -> int | None:
        code = proc.stop(timeout)
        if proc in self.procs:
            self.procs.remove(proc)
        log.info("stopped %s (pid %d, exit %s)", proc.name, proc.pid, code)
        return code

    def close(self) -> None:
        """Stop every process still known, newest first. Never raises."""
        while self.procs:
            proc = self.procs.pop()
            try:
                proc.stop()
                log.info("stopped %s (pid %d)", proc.name, proc.pid)
            except Exception:  # a failure to stop one must not leave the others running
                log.exception("could not stop %s (pid %d)", proc.name, proc.pid)

    def __enter__(self) -> ProcessSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wait_until(
    check: object,
    *,
    timeout: float,
    interval: float = 0.2,
    what: str,
    proc: ManagedProcess | None = None,
) -> None:
    """Poll ``check()`` until it is truthy; raise naming ``what`` (and the process log) on timeout."""
    assert callable(check)
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if proc is not None and not proc.alive():
            raise EdgeInvestigateError(
                f"{proc.name} exited (code {proc.popen.returncode}) while waiting for {what}; "
                f"its log {proc.log_path} ends with:\n{proc.log_tail()}",
                hint="see lab/README.md, section Troubleshooting",
            )
        if time.monotonic() > deadline:
            extra = f"; {proc.name}'s log {proc.log_path} ends with:\n{proc.log_tail()}" if proc else ""
            raise EdgeInvestigateError(
                f"timed out after {timeout:.0f}s waiting for {what}{extra}",
                hint="see lab/README.md, section Troubleshooting",
            )
        time.sleep(interval)
