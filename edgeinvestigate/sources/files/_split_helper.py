"""The helper process of a split load (``_split``) and the counters it shares with this process.

The helper is a small server started once per process on first use: a new interpreter
(``sys.executable -c ...``, never a fork of this process, whose heap would be shared copy-on-write and
copied page by page while both run; never re-importing ``__main__``, as a ``multiprocessing`` child
would), which imports the loaders and then waits for jobs on a pipe. Each job runs in a child it forks
(so the memory of a job is returned when the job ends, and the server stays small); the child sends the
answer. The server runs in its own session (Ctrl-C in a terminal stops this process, which closes the
pipe, which ends the server) and exits when this process does.

:class:`Claims` are the counters both processes read and write: the next unit nobody claimed yet and
the unit to stop before, in a 16-byte file in ``/dev/shm`` under an ``flock``.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any, Final

__all__ = ["NO_STOP", "Claims", "Helper", "helper", "serve"]

log = logging.getLogger(__name__)

#: no unit is claimed at or after the ``stop`` counter once a process stopped there (strict mode)
NO_STOP: Final = 2**62
_FORMAT: Final = "qq"  # next unclaimed unit, stop
_SERVE: Final = (
    "import sys\n"
    "from multiprocessing.connection import Connection\n"
    "r, w = Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False)\n"
    "sys.path[:] = r.recv()\n"
    "from edgeinvestigate.sources.files._split_helper import serve\n"
    "serve(r, w, r.recv())\n"
)


class Claims:
    """The shared counters of one split load (a 16-byte file both processes map)."""

    def __init__(self, path: str, *, create: bool = False) -> None:
        import fcntl
        import mmap

        self._fcntl = fcntl
        self.path = path
        self.fd = os.open(path, os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0), 0o600)
        if create:
            os.ftruncate(self.fd, struct.calcsize(_FORMAT))
        self.mm = mmap.mmap(self.fd, struct.calcsize(_FORMAT))
        if create:
            struct.pack_into(_FORMAT, self.mm, 0, 0, NO_STOP)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._fcntl.flock(self.fd, self._fcntl.LOCK_EX)
        try:
            yield
        finally:
            self._fcntl.flock(self.fd, self._fcntl.LOCK_UN)

    def claim(self, k: int) -> bool | None:
        """Unit ``k`` for this process (``True``), already taken by the other (``False``), or
        ``None``: a process stopped at an earlier unit, read no further."""
        with self._locked():
            nxt, stop = struct.unpack_from(_FORMAT, self.mm)
            if k >= stop:
                return None
            if nxt == k:
                struct.pack_into("q", self.mm, 0, k + 1)
                return True
            return False

    def stop_at(self, k: int) -> None:
        with self._locked():
            _nxt, stop = struct.unpack_from(_FORMAT, self.mm)
            struct.pack_into("q", self.mm, 8, min(stop, k))

    def close(self) -> None:
        self.mm.close()
        os.close(self.fd)


# --- the server (in the helper process) ----------------------------------------------------------


def serve(r: Connection, w: Connection, warm_up: Callable[[], None] | None = None) -> None:
    """The helper's loop: each job ``(function, args)`` runs in a forked child, which sends
    ``("ok", result)`` or ``("error", text)``; a child that dies without answering is answered for.
    ``warm_up`` runs first, here: what the loaders import and initialise on first use (pyarrow's
    first conversion alone takes 0.15 s) is then done once, not in every child."""
    import edgeinvestigate.sources.files  # noqa: F401 - the loaders, imported once for every job

    if warm_up is not None:
        with contextlib.suppress(Exception):
            warm_up()

    while True:
        try:
            fn, args = r.recv()
        except (EOFError, OSError):
            return  # the loading process is gone
        except Exception as exc:  # a job that does not unpickle here
            w.send(("error", f"{type(exc).__name__}: {exc}"))
            continue
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child's coverage is not collected
            code = 1
            try:
                answer: tuple[str, Any] = ("ok", fn(*args))
            except BaseException as exc:
                answer = ("error", f"{type(exc).__name__}: {exc}")
            try:
                w.send(answer)
                code = 0 if answer[0] == "ok" else 1
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) not in (0, 1):  # killed before it could answer
            w.send(("error", f"the helper's child died (status {os.waitstatus_to_exitcode(status)})"))


# --- this process ----------------------------------------------------------------------------------


class Helper:
    """The helper server, seen from this process."""

    def __init__(self, warm_up: Callable[[], None] | None = None) -> None:
        r1, w1 = os.pipe()
        r2, w2 = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _SERVE, str(r1), str(w2)],
                pass_fds=(r1, w2),
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        finally:
            os.close(r1)
            os.close(w2)
        self._out = Connection(w1, readable=False)
        self._in = Connection(r2, writable=False)
        self._out.send(list(sys.path))
        self._out.send(warm_up)

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self._out.send((fn, args))

    def result(self) -> Any:
        """The answer of the job submitted last; raises ``RuntimeError`` when it failed."""
        status, value = self._in.recv()
        if status != "ok":
            raise RuntimeError(value)
        return value

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._out.close()
        with contextlib.suppress(OSError):
            self._in.close()
        try:
            self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_helper: Helper | None = None
_busy = threading.Lock()


@contextlib.contextmanager
def helper(warm_up: Callable[[], None] | None = None) -> Iterator[Helper | None]:
    """The helper server of this process, started on first use with ``warm_up`` (``None`` while
    another thread's load uses it, or when it cannot start). A helper left with a job running by an
    error or an interrupt is stopped: the next load starts a new one."""
    global _helper
    if not _busy.acquire(blocking=False):
        yield None
        return
    try:
        if _helper is not None and not _helper.alive():
            _helper.close()
            _helper = None
        if _helper is None:
            try:
                _helper = Helper(warm_up)
            except OSError as exc:
                log.warning("no helper process (%s); loading in this process alone", exc)
                _helper = None
            else:
                atexit.unregister(_close)
                atexit.register(_close)
        ok = False
        try:
            yield _helper
            ok = True
        finally:
            if _helper is not None and (not ok or not _helper.alive()):
                _helper.close()
                _helper = None
    finally:
        _busy.release()


def _close() -> None:
    """At exit: end the helper (closing its pipe ends it) and reap it."""
    global _helper
    if _helper is not None:
        _helper.close()
        _helper = None
