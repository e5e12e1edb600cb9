"""Loading one file, in this process or in a worker process (imports no pandas).

Errors travel back as data: exception classes with keyword-only arguments do not pickle.
Workers hand their tables over as Arrow IPC files (in ``/dev/shm`` when there is one) that the
parent memory-maps, so no table is pickled or copied on the way.

Work sharing: the files are claimed one at a time from two ends of one list (shared counters under
a lock), the workers from the front (biggest files first), the parent from the back. Nothing is
handed to a worker before it is free, so no process idles while another still has files queued.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import pyarrow as pa

from edgeinvestigate.errors import EdgeInvestigateError, LoadError, ParseError
from edgeinvestigate.models.load_report import FileReport
from edgeinvestigate.sources.files._context import MAX_RECORD_BYTES, FileContext
from edgeinvestigate.sources.registry import SOURCES, looks_like, sniff_file

__all__ = [
    "Claims",
    "LoadResult",
    "claim_back",
    "init_claims",
    "load_claimed",
    "load_one",
    "load_one_to_ipc",
    "read_ipc",
]

ErrorData = tuple[str, dict[str, Any]]
LoadResult = tuple[dict[str, pa.Table] | None, FileReport, ErrorData | None]
#: a shared lock and the two ends (``lo``, ``hi``) of the files not claimed yet
Claims = tuple[Any, Any, Any]
#: one file to load: path, source name ("" = sniff), found inside a directory
FileJob = tuple[Path, str, bool]

_claims: Claims | None = None  # set in each worker process by init_claims


def init_claims(lock: Any, lo: Any, hi: Any) -> None:
    """Worker initializer: the shared claim counters (inherited at process start)."""
    global _claims
    _claims = (lock, lo, hi)


def claim_front(claims: Claims) -> int | None:
    """The next unclaimed file from the front (for workers), or ``None`` when none is left."""
    lock, lo, hi = claims
    with lock:
        k: int = lo.value
        if k >= hi.value:
            return None
        lo.value = k + 1
        return k


def claim_back(claims: Claims) -> int | None:
    """The next unclaimed file from the back (for the parent), or ``None`` when none is left."""
    lock, lo, hi = claims
    with lock:
        k: int = hi.value - 1
        if k < lo.value:
            return None
        hi.value = k
        return k


def load_one(
    path: Path,
    source: str,
    since_ms: int | None,
    until_ms: int | None,
    strict: bool,
    frames: tuple[str, ...],
    in_dir: bool = False,
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> LoadResult:
    """Load one file with its registered (or sniffed) loader."""
    st: os.stat_result | None = None
    try:
        st = path.stat()
    except OSError as exc:  # gone (or its link dangling) since the folder was listed
        why = f"cannot be read: {exc.strerror or exc}"
    else:
        why = "" if stat.S_ISREG(st.st_mode) else "is not a regular file (any more)"
    report = FileReport(
        path=str(path), source=source, size=st.st_size if st else 0, mtime_ns=st.st_mtime_ns if st else 0
    )
    if why:
        if not in_dir or strict:
            return None, report, ("LoadError", {"message": f"{path} {why}", "hint": None})
        report.source = "skipped"
        FileContext(path=str(path), source="skipped", report=report).issue(
            "file", f"{why}; skipped", severity="warning"
        )
        return None, report, None
    try:
        if not source:
            try:
                detected = sniff_file(path)
            except LoadError as exc:
                if not in_dir or strict:
                    raise
                # a foreign file inside a directory tree: list it, load the rest
                report.source = "unknown"
                FileContext(path=str(path), source="unknown", report=report).issue(
                    "format", exc.message, expected=f"a telemetry file ({', '.join(SOURCES)})"
                )
                return None, report, None
            if detected is None:
                report.source = "empty"
                return None, report, None
            source = report.source = detected
        ctx = FileContext(
            path=str(path),
            source=source,
            since_ms=since_ms,
            until_ms=until_ms,
            strict=strict,
            frames=frames,
            report=report,
            sniff=looks_like,
            max_record_bytes=max_record_bytes,
        )
        digest = _Hashing(path, report.size)
        try:
            tables = SOURCES[source].loader(path, ctx)
        except BaseException:
            digest.cancel()
            raise
        report.sha256 = digest.result()
    except ParseError as exc:
        err = {
            "message": exc.message,
            "path": exc.path,
            "line": exc.line,
            "offset": exc.offset,
            "hint": exc.hint,
        }
        return None, report, ("parse", err)
    except EdgeInvestigateError as exc:
        return None, report, (type(exc).__name__, {"message": exc.message, "hint": exc.hint})
    return tables, report, None


#: files smaller than this are hashed after they are loaded: a thread costs ~0.1 ms to start and join,
#: more than hashing a small file takes (1 MiB: ~0.6 ms)
HASH_IN_THREAD_BYTES: Final = 1024 * 1024


class _Hashing:
    """:func:`sha256_file` of a file in a thread while the file is parsed (reads and hashlib let go of
    the GIL): the last part of a large load runs in one process and leaves a core to it (1M records,
    0.1 s). A daemon thread that stops when :meth:`cancel` is called (the load failed): a process that
    exits on an error does not wait for the rest of a large file to be hashed. A file smaller than
    :data:`HASH_IN_THREAD_BYTES` is hashed when :meth:`result` is asked for, in this thread."""

    def __init__(self, path: Path, size: int) -> None:
        self._path = path
        self._stop = threading.Event()
        self._digest = ""
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if size >= HASH_IN_THREAD_BYTES:
            self._thread = threading.Thread(
                target=self._run, args=(path,), name="edgeinvestigate-sha256", daemon=True
            )
            self._thread.start()

    def _run(self, path: Path) -> None:
        try:
            self._digest = sha256_file(path, self._stop)
        except BaseException as exc:  # raised where the digest is asked for
            self._error = exc

    def result(self) -> str:
        """The digest (waits for it), or what hashing raised."""
        if self._thread is None:
            return sha256_file(self._path)
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._digest

    def cancel(self) -> None:
        self._stop.set()


def sha256_file(path: Path, stop: threading.Event | None = None) -> str:
    """The sha256 of a file's bytes, read 4 MiB at a time (``""`` when ``stop`` is set before the end)."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(4 * 1024 * 1024):
            if stop is not None and stop.is_set():
                return ""
            h.update(chunk)
    return h.hexdigest()


def load_one_to_ipc(
    prefix: Path,
    path: Path,
    source: str,
    since_ms: int | None,
    until_ms: int | None,
    strict: bool,
    frames: tuple[str, ...],
    in_dir: bool,
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> tuple[dict[str, str] | None, FileReport, ErrorData | None]:
    """In a worker: load one file and write its tables as Arrow IPC files named ``prefix.*``."""
    tables, report, err = load_one(path, source, since_ms, until_ms, strict, frames, in_dir, max_record_bytes)
    if tables is None:
        return None, report, err
    out = {}
    for name, table in tables.items():
        table = table.unify_dictionaries()  # one dictionary per column: what the IPC file format holds
        fname = f"{prefix}.{name}.arrow"
        with pa.OSFile(fname, "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        out[name] = fname
    return out, report, err


def read_ipc(paths: dict[str, str] | None, report: FileReport, err: ErrorData | None) -> LoadResult:
    """In the parent: memory-map the tables a worker wrote (no copy) and remove the files."""
    if paths is None:
        return None, report, err
    tables = {}
    for name, fname in paths.items():
        tables[name] = pa.ipc.open_file(pa.memory_map(fname)).read_all()
        os.unlink(fname)
    return tables, report, err


def load_claimed(
    prefix: Path,
    files: list[FileJob],
    since_ms: int | None,
    until_ms: int | None,
    strict: bool,
    frames: tuple[str, ...],
    max_record_bytes: int = MAX_RECORD_BYTES,
    write: Callable[[Path, dict[str, pa.Table]], Any] | None = None,
) -> list[tuple[int, Any, FileReport, ErrorData | None]]:
    """In a worker: load files claimed from the front of ``files`` until none is left; each file's
    tables go to Arrow IPC files named ``prefix/<index>.*`` (or, with ``write``, wherever
    ``write(prefix/<index>, tables)`` puts them: what it returns is handed back). Returns
    ``(index, paths, report, err)``."""
    if _claims is None:
        raise RuntimeError("load_claimed runs in a worker started with init_claims")
    out = []
    while (k := claim_front(_claims)) is not None:
        path, source, in_dir = files[k]
        if write is None:
            paths, report, err = load_one_to_ipc(
                prefix / str(k), path, source, since_ms, until_ms, strict, frames, in_dir, max_record_bytes
            )
        else:
            tables, report, err = load_one(
                path, source, since_ms, until_ms, strict, frames, in_dir, max_record_bytes
            )
            paths = None if tables is None else write(prefix / str(k), tables)
        out.append((k, paths, report, err))
    return out
