"""The helper process of a split load (``_split``) and the counters it shares with this process.

The helper is a small server started once per process on first use: a new interpreter
(``sys.executable -c ...``, never a fork of this process, whose heap would be shared copy-on-write and
copied page by page while both run; never re-importing ``__main__``, as a ``multiprocessing`` child
would), which imports the loaders (never pandas: :func:`keep_pandas_out`) and then waits for jobs on a
pipe. Each job runs in a child it forks (so the memory of a job is returned when the job ends, and the
server stays small); the child sends the answer. The server runs in its own session (Ctrl-C in a
terminal stops this process, which closes the pipe, which ends the server) and exits when this process
does.

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

__all__ = ["NO_STOP", "Helper", "Slots", "helper", "inbox", "keep_pandas_out", "serve"]

log = logging.getLogger(__name__)

#: no unit is claimed at or after the ``stop`` counter once a process stopped there (strict mode)
NO_STOP: Final = 2**62
_FORMAT: Final = "qqq"  # stop, number of slots, slot size; then a state per slot
_HEADER: Final = 4096  # the header, page-aligned
_SERVE: Final = (
    "import sys\n"
    "from multiprocessing.connection import Connection\n"
    "r, w = Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False)\n"
    "sys.path[:] = r.recv()\n"
    "from edgeinvestigate.sources.files._split_helper import keep_pandas_out, serve\n"
    "keep_pandas_out()\n"
    "serve(r, w, r.recv())\n"
)


class Slots:
    """The units this process hands to the helper: ``n`` slots of ``size`` bytes in a file both
    processes map, a state per slot (free, or the length of the unit in it) and the unit to stop
    before (strict mode), changed under an ``flock`` (which also orders the copies around them)."""

    def __init__(self, path: str, n: int = 0, size: int = 0) -> None:
        import fcntl
        import mmap

        self._fcntl = fcntl
        self.path = path
        create = n > 0
        self.fd = os.open(path, os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0), 0o600)
        if create:
            os.ftruncate(self.fd, _HEADER + n * size)
        self.mm = mmap.mmap(self.fd, 0)
        if create:
            struct.pack_into(_FORMAT, self.mm, 0, NO_STOP, n, size)
        _stop, self.n, self.size = struct.unpack_from(_FORMAT, self.mm)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._fcntl.flock(self.fd, self._fcntl.LOCK_EX)
        try:
            yield
        finally:
            self._fcntl.flock(self.fd, self._fcntl.LOCK_UN)

    def _state_at(self, slot: int) -> int:
        return struct.calcsize(_FORMAT) + 8 * slot

    def put(self, block: bytes) -> int | None:
        """Copy ``block`` into a free slot; its number, or ``None`` when none is free (or it is too big)."""
        if len(block) > self.size:
            return None
        with self._locked():
            for slot in range(self.n):
                if struct.unpack_from("q", self.mm, self._state_at(slot))[0] == 0:
                    start = _HEADER + slot * self.size
                    self.mm[start : start + len(block)] = block
                    struct.pack_into("q", self.mm, self._state_at(slot), len(block))
                    return slot
        return None

    def take(self, slot: int) -> bytes | None:
        """The unit in ``slot`` (copied out), the slot free again; ``None`` when the slot is empty
        (this process took its unit back, :meth:`take` from this side at the end of the file)."""
        with self._locked():
            size = struct.unpack_from("q", self.mm, self._state_at(slot))[0]
            if not size:
                return None
            start = _HEADER + slot * self.size
            block = self.mm[start : start + size]
            struct.pack_into("q", self.mm, self._state_at(slot), 0)
        return block

    @property
    def stop(self) -> int:
        with self._locked():
            return int(struct.unpack_from("q", self.mm, 0)[0])

    def stop_at(self, k: int) -> None:
        with self._locked():
            struct.pack_into("q", self.mm, 0, min(k, struct.unpack_from("q", self.mm, 0)[0]))

    def close(self) -> None:
        self.mm.close()
        os.close(self.fd)


# --- the server (in the helper process) ----------------------------------------------------------


class _NoPandas:
    """A meta path finder that refuses ``pandas`` (see :func:`keep_pandas_out`)."""

    @staticmethod
    def find_spec(name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError("the split helper builds Arrow batches only", name=name)
        return None


def keep_pandas_out() -> None:
    """In the helper: refuse to import pandas. It builds Arrow record batches only, but pyarrow
    imports pandas on its first conversion from Python objects (to recognise pandas inputs), which
    cost each new helper ~0.2 s of CPU and as long before it could take its first unit; without
    pandas pyarrow converts lists the same way."""
    if not any(f is _NoPandas for f in sys.meta_path):
        sys.meta_path.insert(0, _NoPandas)


def serve(r: Connection, w: Connection, warm_up: Callable[[], None] | None = None) -> None:
    """The helper's loop: each job ``(function, args)`` runs in a forked child, which sends
    ``("ok", result)`` or ``("error", text)``; a child that dies without answering is answered for.
    ``warm_up`` runs first, here: what the loaders import and initialise on first use (pyarrow's
    first conversion alone takes 0.15 s) is then done once, not in every child (unpickling it imported
    its loader)."""
    if warm_up is not None:
        with contextlib.suppress(Exception):
            warm_up()

    global _inbox
    while True:
        try:
            msg = r.recv()
        except (EOFError, OSError):
            return  # the loading process is gone
        except Exception as exc:  # a job that does not unpickle here
            w.send(("error", f"{type(exc).__name__}: {exc}"))
            continue
        if msg[0] != "job":
            continue  # what was meant for a job's child that died: nobody reads it now
        fn, args = msg[1], msg[2]
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child's coverage is not collected
            _inbox = r  # the rest of this job's messages (see inbox())
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


_inbox: Connection | None = None


def inbox() -> Connection:
    """In a job's child: the messages this process sends it while the job runs (``Helper.tell``)."""
    if _inbox is None:
        raise RuntimeError("inbox() is for the child of a helper job")
    return _inbox


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
        self._out.send(("job", fn, args))

    def tell(self, *msg: Any) -> None:
        """A message for the running job (its child reads them from :func:`inbox`)."""
        self._out.send(msg)

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
