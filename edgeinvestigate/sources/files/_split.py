"""One large file on two cores: this process and a helper process parse it together.

This process reads the file (decompressing it once) as a stream of *units* (``_reading.iter_line_blocks``:
blocks of whole lines, and the lines over the record cap) and hands a unit to the helper whenever one of
the helper's few slots is free (shared memory, ``_split_helper.Slots``); it parses every other unit
itself. The helper is kept busy and this process does the rest, so both finish at about the same time
whatever the file holds, and nothing is read or decompressed twice. The helper writes its record batches
to Arrow IPC streams (in ``/dev/shm`` when there is room) as it parses; this process memory-maps them.

The result is the sequential load's: units are put back in file order (rows, then the report: the
counters, and the issues in the order the sequential load lists them). In strict mode the first bad
record of the file stops the load, as it would sequentially: a process that stops at unit ``k`` makes
the other skip the units after it.

Used when the file is large (:data:`SPLIT_MIN_BYTES` of text), the machine has two cores or more
and no other process loads files of the same load (a worker of ``ei.load``'s pool, or the parent
while that pool runs, load whole files); a helper that cannot start or dies costs only time: the file
is then read again in this process. The helper process (``_split_helper``) starts on the first split
load of a process and takes units once it has imported the loaders (~0.5 s), while this process already
parses; later loads find it ready.
"""

from __future__ import annotations

import contextvars
import logging
import multiprocessing
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import pyarrow as pa

from edgeinvestigate._memory import system_pool
from edgeinvestigate._scratch import scratch_dir
from edgeinvestigate.errors import ParseError
from edgeinvestigate.models.load_report import MAX_ISSUES_PER_FILE, FileReport, Issue
from edgeinvestigate.sources.files._context import FileContext
from edgeinvestigate.sources.files._reading import GZIP_MAGIC, SKIPPED_LINE
from edgeinvestigate.sources.files._split_helper import Slots, helper, inbox

__all__ = ["SPLIT_ALLOWED", "SPLIT_MIN_BYTES", "UnitReader", "load_split", "should_split", "text_size"]

log = logging.getLogger(__name__)

#: a file with at least this many bytes of text (decompressed) is parsed by two processes: about
#: 15,000 Logpush records, 0.1 s of parsing, against some 20 ms to start the helper
SPLIT_MIN_BYTES: Final = 16 * 1024 * 1024
#: units the helper may hold (one it parses, two waiting): it never waits for this process
_SLOTS: Final = 3
_COUNTERS: Final = ("records", "invocations", "logs", "exceptions", "filtered", "skipped", "n_issues")

#: reads one unit of a file into ``chunks``: ``(block, size, line, chunks, ctx) -> next line``
UnitReader = Callable[[bytes, int, int, dict[str, list[pa.RecordBatch]], FileContext], int]
#: what a stretch of the load added to the report: the counter increments and the issues listed
Delta = tuple[tuple[int, ...], list[Issue]]


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def text_size(path: Path) -> int:
    """The size of the file's text: a gzip file's trailer holds it (modulo 4 GiB, one member)."""
    try:
        with path.open("rb") as fh:
            if fh.read(2) != GZIP_MAGIC:
                return os.fstat(fh.fileno()).st_size
            size = os.fstat(fh.fileno()).st_size
            fh.seek(max(0, size - 4))
            isize = int.from_bytes(fh.read(4), "little")
    except OSError:
        return 0
    return max(isize, size)  # a wrapped size (text over 4 GiB) is at least the compressed size


def _scratch(text_size: int) -> str | None:
    """Where the helper writes its batches: ``/dev/shm`` when it has room for them (a container's is
    often 64 MB), else the temporary folder."""
    try:
        st = os.statvfs("/dev/shm")  # noqa: S108 - mkdtemp makes a private 0700 directory in it
    except (OSError, AttributeError):
        return None
    return "/dev/shm" if st.f_bavail * st.f_frsize > 2 * text_size else None  # noqa: S108


#: False while a load was asked to use one process (``ei.load(jobs=1)``, ``collect --jobs 1``)
SPLIT_ALLOWED: Final[contextvars.ContextVar[bool]] = contextvars.ContextVar("split_allowed", default=True)


def should_split(path: Path) -> bool:
    """Whether to parse ``path`` with a helper process (see the module docstring)."""
    if not SPLIT_ALLOWED.get():
        return False
    if sys.platform == "win32" or _cores() < 2 or multiprocessing.parent_process() is not None:
        return False  # one core, or a worker of ei.load's pool (or this helper): whole files each
    if multiprocessing.active_children():  # ei.load's pool is loading other files right now
        return False
    return text_size(path) >= SPLIT_MIN_BYTES


# --- one process's share -------------------------------------------------------------------------


@dataclass
class _Share:
    """What one process parsed: its units in the order it parsed them, ``(unit, batches per frame,
    rows per frame, report delta)``, their record batches (in the same order), and (this process only)
    the report deltas between units (stream issues such as a truncated gzip), keyed by the unit they
    come before."""

    units: list[tuple[int, dict[str, int], dict[str, int], Delta]] = field(default_factory=list)
    chunks: dict[str, list[pa.RecordBatch]] = field(default_factory=dict)
    between: dict[int, list[Delta]] = field(default_factory=dict)
    n_units: int = 0
    #: ``(unit, error)``: strict mode stopped at this unit (``unit`` = n_units: the stream itself)
    error: tuple[int, ParseError] | None = None


def _mark(rep: FileReport) -> tuple[tuple[int, ...], int]:
    return tuple(getattr(rep, c) for c in _COUNTERS), len(rep.issues)


def _delta(rep: FileReport, mark: tuple[tuple[int, ...], int]) -> Delta | None:
    counts, n_listed = mark
    now = tuple(getattr(rep, c) for c in _COUNTERS)
    if now == counts and len(rep.issues) == n_listed:
        return None
    return tuple(a - b for a, b in zip(now, counts, strict=True)), rep.issues[n_listed:]


def _lines_in(block: bytes) -> int:
    """How many lines a unit holds (what its reader would have counted)."""
    if block is SKIPPED_LINE or not block:
        return 1
    # counted vectorised: bytes.count compares byte by byte (~3x slower, in the process that reads)
    newlines = int(np.count_nonzero(np.frombuffer(block, dtype=np.uint8) == 10))
    return newlines + (0 if block.endswith(b"\n") else 1)


def _unit(
    sh: _Share,
    k: int,
    block: bytes,
    size: int,
    line: int,
    ctx: FileContext,
    read_unit: UnitReader,
    frames: tuple[str, ...],
) -> int | None:
    """Parse unit ``k`` into ``sh``; the next line, or ``None`` when strict mode stopped there."""
    rep = ctx.report
    mark = _mark(rep)
    n_batches = {f: len(sh.chunks[f]) for f in frames}
    try:
        nxt = read_unit(block, size, line, sh.chunks, ctx)
    except ParseError as exc:
        if sh.error is None or k < sh.error[0]:
            sh.error = (k, exc)
        return None
    added = {f: len(sh.chunks[f]) - n_batches[f] for f in frames}
    rows = {f: sum(b.num_rows for b in sh.chunks[f][n_batches[f] :]) for f in frames}
    sh.units.append((k, added, rows, _delta(rep, mark) or ((0,) * len(_COUNTERS), [])))
    return nxt


def _feed(
    units: Iterator[tuple[bytes, int]],
    ctx: FileContext,
    slots: Slots,
    give: Callable[[int, int, int], None],
    read_unit: UnitReader,
    frames: tuple[str, ...],
) -> tuple[_Share, list[int]]:
    """Read every unit of the file: hand it to the helper when a slot is free (``give(unit, slot,
    line)``), else parse it here. This process's share, and the units given away."""
    rep = ctx.report
    sh = _Share(chunks={f: [] for f in frames})
    given: list[int] = []
    waiting: dict[int, tuple[int, int]] = {}  # slot -> (unit, line) of what was put in it last
    line, k = 1, 0
    mark = _mark(rep)
    try:
        for block, size in units:
            if (d := _delta(rep, mark)) is not None:  # a stream issue (a truncated gzip)
                sh.between.setdefault(k, []).append(d)
            if k >= slots.stop:
                break
            slot = None if block is SKIPPED_LINE or not block else slots.put(block)
            if slot is not None:
                give(k, slot, line)
                given.append(k)
                waiting[slot] = (k, line)
                line += _lines_in(block)
            elif (nxt := _unit(sh, k, block, size, line, ctx, read_unit, frames)) is not None:
                line = nxt
            else:
                slots.stop_at(k)
                break
            k += 1
            mark = _mark(rep)
    except ParseError as exc:  # strict mode: a stream issue (a truncated gzip), after every unit
        if sh.error is None:
            sh.error = (k, exc)
    if (d := _delta(rep, mark)) is not None:
        sh.between.setdefault(k, []).append(d)
    sh.n_units = k
    # the end of the file: the units still waiting for the helper are parsed here, not waited for
    for slot, (unit, at) in sorted(waiting.items(), key=lambda x: x[1]):
        if unit < slots.stop and (back := slots.take(slot)) is not None:
            given.remove(unit)
            if _unit(sh, unit, back, len(back), at, ctx, read_unit, frames) is None:
                slots.stop_at(unit)
    return sh, given


# --- the helper process ------------------------------------------------------------------------


def _error_data(exc: ParseError) -> dict[str, Any]:
    return {
        "message": exc.message,
        "path": exc.path,
        "line": exc.line,
        "offset": exc.offset,
        "expected": exc.expected,
        "hint": exc.hint,
    }


def _error_from(data: dict[str, Any]) -> ParseError:
    """The helper's error as raised there (its message is already worded with its place)."""
    exc = ParseError("", path=data["path"], line=data["line"], offset=data["offset"], hint=data["hint"])
    exc.message = data["message"]
    exc.args = (data["message"],)
    exc.expected = data["expected"]
    return exc


def _helper(path: str, params: dict[str, Any], out: str, read_unit: UnitReader) -> dict[str, Any]:
    """In the helper (a job's child): parse the units this process hands over (``("unit", k, slot,
    line)`` messages, until ``("end",)``); the record batches go to Arrow IPC streams
    ``out.<frame>.arrows`` as they are built (this process reads them memory-mapped)."""
    import gc

    gc.disable()
    with system_pool():  # see _memory
        return _helper_units(path, params, out, read_unit)


def _helper_units(path: str, params: dict[str, Any], out: str, read_unit: UnitReader) -> dict[str, Any]:
    """The helper's loop (see :func:`_helper`)."""
    messages = inbox()
    slots = Slots(f"{out}.slots")
    ctx = FileContext(report=FileReport(path=path, source=params["source"]), **params)
    frames = ("invocations", "logs", "exceptions")
    sh = _Share(chunks={f: [] for f in frames})
    writers: dict[str, Any] = {}
    sinks: list[Any] = []
    try:
        while (msg := messages.recv())[0] == "unit":
            _tag, k, slot, line = msg
            block = slots.take(slot)
            if block is None or k >= slots.stop:
                continue  # taken back by this process, or strict mode stopped before it
            if _unit(sh, k, block, len(block), line, ctx, read_unit, frames) is None:
                slots.stop_at(k)
                continue
            for f in frames:  # written as they come: nothing of them is kept here
                for b in sh.chunks[f]:
                    if f not in writers:
                        sinks.append(pa.OSFile(f"{out}.{f}.arrows", "wb"))
                        writers[f] = pa.ipc.new_stream(sinks[-1], b.schema)
                    writers[f].write_batch(b)
                sh.chunks[f].clear()
    finally:
        for w in writers.values():
            w.close()
        for s in sinks:
            s.close()
        slots.close()
    return {
        "units": [(k, rows, d) for k, _added, rows, d in sh.units],
        "files": {f: f"{out}.{f}.arrows" for f in writers},
        "error": None if sh.error is None else (sh.error[0], _error_data(sh.error[1])),
    }


# --- this process ------------------------------------------------------------------------------


def load_split(
    path: Path,
    ctx: FileContext,
    units_of: Callable[[Path, FileContext], Iterator[tuple[bytes, int]]],
    read_unit: UnitReader,
    block_size: int,
    warm_up: Callable[[], None] | None = None,
) -> dict[str, list[pa.RecordBatch]] | None:
    """Parse ``path`` in this process and the helper; the record batches of every frame in file
    order, the report of ``ctx`` as the sequential load would leave it. ``None`` when there is no
    helper or it failed (nothing of the report changed: read the file in this process).
    ``warm_up``: run once in a new helper, before its first job (see ``_split_helper.serve``)."""
    rep = ctx.report
    start = (tuple(getattr(rep, c) for c in _COUNTERS), list(rep.issues))
    tmp = scratch_dir("edgeinvestigate-split", _scratch(text_size(path)))
    out = str(tmp / "part")
    params = {
        "path": ctx.path,
        "source": ctx.source,
        "since_ms": ctx.since_ms,
        "until_ms": ctx.until_ms,
        "strict": ctx.strict,
        "frames": ctx.frames,
        "sniff": ctx.sniff,
        "max_record_bytes": ctx.max_record_bytes,
        "ts_hi": ctx.ts_hi,
        "strict_hint": ctx.strict_hint,
    }
    frames = ("invocations", "logs", "exceptions")
    slots = Slots(f"{out}.slots", _SLOTS, 2 * block_size)
    try:
        with helper(warm_up) as h:
            if h is None:
                return None
            try:
                h.submit(_helper, ctx.path, params, out, read_unit)
                own, given = _feed(
                    units_of(path, ctx),
                    ctx,
                    slots,
                    lambda k, slot, line: h.tell("unit", k, slot, line),
                    read_unit,
                    frames,
                )
                h.tell("end")
            except OSError as exc:  # the helper is gone: a new one next time
                log.warning("the helper process is gone (%s); reading %s in this process", exc, path)
                _restore(rep, start)
                return None
            except BaseException:
                slots.stop_at(0)  # the helper skips what it has left
                raise
            try:
                got = h.result()
                helper_tables = {
                    f: pa.ipc.open_stream(pa.memory_map(p)).read_all() for f, p in got["files"].items()
                }
            except Exception as exc:  # the helper failed in any way: read the file here
                log.warning("the helper process failed (%s); reading %s in this process", exc, path)
                _restore(rep, start)
                return None
    finally:
        slots.close()
        shutil.rmtree(tmp, ignore_errors=True)
    log.debug("%s: %d of %d units parsed by the helper process", path, len(given), own.n_units)
    errors = [e for e in (own.error, got["error"] and (got["error"][0], _error_from(got["error"][1]))) if e]
    if errors:
        raise min(errors, key=lambda e: e[0])[1]
    return _merge(rep, start, own, got["units"], helper_tables, frames)


def _restore(rep: FileReport, start: tuple[tuple[int, ...], list[Issue]]) -> None:
    counts, issues = start
    for c, v in zip(_COUNTERS, counts, strict=True):
        setattr(rep, c, v)
    rep.issues[:] = issues


def _merge(
    rep: FileReport,
    start: tuple[tuple[int, ...], list[Issue]],
    own: _Share,
    helper_units: list[tuple[int, dict[str, int], Delta]],
    helper_tables: dict[str, pa.Table],
    frames: tuple[str, ...],
) -> dict[str, list[pa.RecordBatch]]:
    """Both shares in file order: the record batches and the report."""
    by_unit: dict[int, tuple[str, Any]] = {}
    at = {f: 0 for f in frames}
    for k, added, _rows, d in own.units:
        taken = {f: own.chunks[f][at[f] : at[f] + added[f]] for f in frames}
        for f in frames:
            at[f] += added[f]
        by_unit[k] = ("own", (taken, d))
    offset = {f: 0 for f in frames}
    for k, rows, d in helper_units:
        taken = {}
        for f in frames:
            n = rows.get(f, 0)
            taken[f] = helper_tables[f].slice(offset[f], n).to_batches() if n else []
            offset[f] += n
        by_unit[k] = ("helper", (taken, d))
    out: dict[str, list[pa.RecordBatch]] = {f: [] for f in frames}
    counts = list(start[0])
    issues = list(start[1])

    def apply(d: Delta) -> None:
        for i, v in enumerate(d[0]):
            counts[i] += v
        issues.extend(d[1])

    n_units = max([own.n_units, *(k + 1 for k in by_unit)])
    for k in range(n_units + 1):
        for d in own.between.get(k, ()):
            apply(d)
        if k in by_unit:
            taken, d = by_unit[k][1]
            for f in frames:
                out[f].extend(taken[f])
            apply(d)
    _restore(rep, (tuple(counts), issues[:MAX_ISSUES_PER_FILE]))
    return out
