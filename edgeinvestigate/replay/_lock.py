"""One ``replay run`` per plan at a time on this machine, whatever copy of the plan, ledger or user.

:class:`PlanLock` is an exclusive OS lock (``flock``) on a file named after the plan id in one
machine-wide directory (``/tmp/edgeinvestigate-replay-locks``, world-writable with the sticky bit
like ``/tmp`` itself; ``EDGEINVESTIGATE_REPLAY_LOCK_DIR`` chooses another). Two copies of one plan
(``cp a/plan.json b/plan.json``) have the same id, so the second run is refused, naming the first
(pid, user, host, start, last heartbeat). The kernel drops the lock when its process dies, even by
``kill -9``; the next run then finds the dead run's details in the file and takes the lock over with
a note. The file also remembers the ledgers of the plan's earlier runs (``earlier_ledgers``), so a
later run of another copy, with another ledger, sees what they replayed. Across machines the lock
cannot help: there the idempotency key in every replayed message (``metadata.replay.id``) is the
guard.

:class:`RunLock` is the older lock next to the ledger: one run per ledger file (two different plans
never write one ledger at once).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from edgeinvestigate.errors import ReplayError, ReplayRefusedError
from edgeinvestigate.replay._plan import who

__all__ = ["LOCK_DIR_ENV", "PlanLock", "RunLock", "lock_dir"]

LOCK_DIR_ENV = "EDGEINVESTIGATE_REPLAY_LOCK_DIR"
#: the lock file holds one JSON object padded to this size (written in one pwrite, read in one pread)
_SIZE = 2048
_HEARTBEAT_S = 10.0
#: how many ledgers of earlier runs of a plan its lock file remembers
_MAX_LEDGERS = 20
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def lock_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The machine-wide directory of plan locks (not ``$TMPDIR``, which can be per user)."""
    env = os.environ if environ is None else environ
    if env.get(LOCK_DIR_ENV):
        return Path(env[LOCK_DIR_ENV])
    if Path("/tmp").is_dir():  # noqa: S108 - a shared place on purpose: every user's runs must meet
        return Path("/tmp") / "edgeinvestigate-replay-locks"  # noqa: S108
    import tempfile

    return Path(tempfile.gettempdir()) / "edgeinvestigate-replay-locks"


def _iso(ts: Any) -> str:
    try:
        return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (TypeError, ValueError, OverflowError, OSError):
        return "?"


def _alive(pid: Any) -> bool | None:
    """Whether process ``pid`` exists on this host (None: cannot tell)."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    except (TypeError, ValueError, OSError):
        return None
    return True


class PlanLock:
    """The lock of one plan id on this machine (see the module docstring). ``note`` says, after
    :meth:`acquire`, that a stale lock of a dead run was taken over (empty otherwise)."""

    def __init__(self, plan_id: str, *, plan_path: str | Path = "", ledger_path: str | Path = "") -> None:
        name = plan_id if _SAFE_ID.fullmatch(plan_id) else "x" + _digest(plan_id)
        self.plan_id = plan_id
        self.dir = lock_dir()
        self.path = self.dir / f"{name}.lock"
        self.plan_path = str(plan_path)
        self.ledger_path = str(ledger_path)
        self.note = ""
        #: the ledgers earlier runs of this plan used on this machine (other copies, other --ledger)
        self.earlier_ledgers: list[str] = []
        self._fd: int | None = None
        self._info: dict[str, Any] = {}
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self._write_lock = threading.Lock()

    # -- the file --------------------------------------------------------------------------------
    def _make_dir(self) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            st = os.lstat(self.dir)
            if not stat.S_ISDIR(st.st_mode):
                raise ReplayError(
                    f"the replay lock directory {self.dir} is not a directory (a symlink or a file?); "
                    "refusing to lock there",
                    hint=f"remove it, or set {LOCK_DIR_ENV} to a directory every operator can write",
                )
            if st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) != 0o1777:
                os.chmod(self.dir, 0o1777)  # noqa: S103 - every user must be able to lock here, like /tmp
        except OSError as exc:
            raise ReplayError(
                f"cannot use the replay lock directory {self.dir}: {exc.strerror or exc}",
                hint=f"set {LOCK_DIR_ENV} to a directory every operator of this machine can write",
            ) from exc

    def _open(self) -> int:
        flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        for _ in range(5):
            try:
                return os.open(self.path, flags)
            except FileNotFoundError:
                pass
            except PermissionError:  # another user's file that is not writable for us: lock it read-only
                return os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            try:
                fd = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                continue  # created by another run in between: open it
            with contextlib.suppress(OSError):
                os.fchmod(fd, 0o666)  # every user must be able to take it over
            return fd
        raise ReplayError(f"cannot open the replay lock {self.path}", hint=f"check {self.dir}")

    def _read(self, fd: int) -> dict[str, Any]:
        try:
            data = os.pread(fd, _SIZE * 2, 0)
            doc = json.loads(data.decode("utf-8").strip() or "{}")
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    def _write(self, doc: dict[str, Any]) -> None:
        data = json.dumps(doc).encode()
        if self._fd is None or len(data) >= _SIZE:
            return
        with self._write_lock, contextlib.suppress(OSError):  # a read-only fd: the details stay old
            os.pwrite(self._fd, data.ljust(_SIZE - 1) + b"\n", 0)

    # -- locking ---------------------------------------------------------------------------------
    def acquire(self) -> None:
        """Take the lock, or refuse (:class:`ReplayRefusedError`) naming the run that holds it."""
        import fcntl

        self._make_dir()
        try:
            fd = self._open()
        except OSError as exc:
            raise ReplayError(
                f"cannot open the replay lock {self.path}: {exc.strerror or exc}",
                hint=f"the directory must be writable by every operator (mode 1777, like /tmp); fix "
                f"{self.dir} or set {LOCK_DIR_ENV} to such a directory",
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = self._read(fd)
            os.close(fd)
            raise ReplayRefusedError(self._held_message(holder), hint=self._held_hint(holder)) from exc
        self._fd = fd
        previous = self._read(fd)
        if previous.get("pid") and not previous.get("released_at"):
            self.note = self._stale_note(previous)
        known = [str(p) for p in previous.get("ledgers") or [] if isinstance(p, str) and p]
        self.earlier_ledgers = [p for p in dict.fromkeys(known) if p != self.ledger_path]
        user = who()
        now = time.time()
        self._info = {
            "plan_id": self.plan_id,
            "pid": os.getpid(),
            "user": user["user"],
            "host": user["host"],
            "started_at": now,
            "heartbeat_at": now,
            "plan": self.plan_path,
            "ledger": self.ledger_path,
            "ledgers": [*self.earlier_ledgers[-(_MAX_LEDGERS - 1) :], self.ledger_path],
        }
        self._write(self._info)
        self._stop.clear()
        self._beat = threading.Thread(target=self._heartbeat, name="replay-plan-lock", daemon=True)
        self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(_HEARTBEAT_S):
            self._info["heartbeat_at"] = time.time()
            self._write(self._info)

    def release(self) -> None:
        """Drop the lock; the file keeps the last run's details, marked released."""
        if self._fd is None:
            return
        import fcntl

        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
        self._write({**self._info, "released_at": time.time()})
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> PlanLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    # -- messages --------------------------------------------------------------------------------
    def _who(self, doc: Mapping[str, Any]) -> str:
        return (
            f"pid {doc.get('pid', '?')}, user {doc.get('user', '?')} on {doc.get('host', '?')}, started "
            f"{_iso(doc.get('started_at'))}"
        )

    def _held_message(self, holder: Mapping[str, Any]) -> str:
        if not holder.get("pid") or holder.get("released_at"):
            text = "a run whose details could not be read (it is starting, or its lock file is not writable)"
        else:
            beat = holder.get("heartbeat_at")
            ago = f"{time.time() - float(beat):.0f} s ago" if isinstance(beat, int | float) else "never"
            text = f"{self._who(holder)}, last heartbeat {ago}"
            if holder.get("plan"):
                text += f"; plan file {holder['plan']}, ledger {holder.get('ledger') or '?'}"
            if _alive(holder.get("pid")) is False:
                text += (
                    "; that pid is not running on this host, yet the lock is held: a process it started "
                    "may still hold it"
                )
        return (
            f"refusing to run plan {self.plan_id}: another replay run of this plan is in progress on this "
            f"machine ({text}). Two runs of one plan (any copy of the file, any ledger, any user) would "
            f"push every message twice. Nothing was sent (lock {self.path})"
        )

    def _held_hint(self, holder: Mapping[str, Any]) -> str:
        plan = holder.get("plan") or "PLAN"
        ledger = f" --ledger {holder['ledger']}" if holder.get("ledger") else ""
        return (
            f"watch it with: edgeinvestigate replay status {plan}{ledger}; stop it with: edgeinvestigate "
            f"replay cancel {plan}{ledger}; run again when it has ended (it resumes nothing twice); "
            "see runbooks/replay-failed-jobs.md"
        )

    def _stale_note(self, previous: Mapping[str, Any]) -> str:
        alive = _alive(previous.get("pid"))
        gone = "its process is gone" if alive is False else "it no longer holds the lock"
        if previous.get("host") and previous.get("host") != self._host():
            gone = f"it ran on {previous.get('host')}"
        beat = previous.get("heartbeat_at")
        return (
            f"took over the stale run lock of plan {self.plan_id}: the run of {self._who(previous)} ended "
            f"without releasing it ({gone}; last heartbeat {_iso(beat)}); this run resumes from the ledger"
        )

    @staticmethod
    def _host() -> str:
        import socket

        return socket.gethostname()


def _digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class RunLock:
    """An exclusive OS lock next to the ledger: one ``replay run`` per ledger file at a time.

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
                f"another replay run is using the ledger {self.path.with_suffix('')} ({holder}); two runs "
                "would race. Nothing was sent",
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
