"""Logpush ``workers_trace_events``: NDJSON, plain or gzip, one file or a directory tree.

Fields are PascalCase (cloudflare-formats.md B1); only the fields the job selected are present;
``Exceptions`` keys come in either casing; ``<<<Logpush: ... truncated>>>`` markers replace entries
past the 16,384-character cap; times are epoch ms, ns or s, or RFC 3339 (B2).

Two paths build the same rows: a fast one that decodes each line straight into typed msgspec
structs (the common exact shape), and a general one for everything else (markers, other casings,
string times, wrong types), which also reports what it could not use.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterable
from itertools import repeat
from operator import attrgetter
from pathlib import Path
from typing import Any, Final

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from edgeinvestigate._time import epoch_to_ms
from edgeinvestigate.sources.files._common import (
    _TS,
    EXC_COLS,
    INV_COLS,
    LOG_COLS,
    FileContext,
    Rows,
    _array,
    constant_dictionary,
    is_bad,
    iter_line_blocks,
    join_args,
    lift_job_fields,
    record_id,
    snippet,
    to_ms,
)
from edgeinvestigate.sources.files._tail import failed_of

__all__ = ["EVENT_TYPES", "add_logpush_record", "load_logpush"]

#: Logpush EventType -> canonical trigger
EVENT_TYPES: Final[dict[str, str]] = {
    "fetch": "fetch",
    "scheduled": "scheduled",
    "cron": "scheduled",
    "alarm": "alarm",
    "queue": "queue",
    "email": "email",
    "tail": "tail",
    "worker_rpc": "rpc",
    "rpc": "rpc",
    "jsrpc": "rpc",
    "hibernatable_web_socket": "websocket",
    "websocket": "websocket",
    "custom": "custom",
    "unknown": "unknown",
}
MARKER: Final = "<<<Logpush:"
MARKER_B: Final = b"<<<Logpush:"
_DIGITS: Final = re.compile(rb" *(\d{9,20})(?=[ ,}])")

_decode_any = msgspec.json.Decoder().decode
_TRIGGER_OR_NONE: Final[dict[str | None, str | None]] = {None: None}
_TRIGGER_OR_NONE.update(EVENT_TYPES)
_event_type = attrgetter("EventType")
_event_ts = attrgetter("EventTimestampMs")


# --- typed structs for the fast path ----------------------------------------------------------


class _Request(msgspec.Struct, gc=False):
    URL: str | None = None
    Method: str | None = None


class _Response(msgspec.Struct, gc=False):
    Status: int | None = None


class _Event(msgspec.Struct, gc=False):
    Request: _Request | None = None
    Response: _Response | None = None
    Queue: str | None = None
    BatchSize: int | None = None


class _Version(msgspec.Struct, gc=False):
    ID: str | None = None


class _Log(msgspec.Struct, gc=False):
    Message: msgspec.Raw  # required: other casings and missing arguments take the general path
    Level: str | None = None
    TimestampMs: int | None = None


class _Exc(msgspec.Struct, gc=False):
    Name: str | None = None
    Message: str | None = None
    TimestampMs: int | None = None
    Stack: str | None = None
    name: str | None = None
    message: str | None = None
    stack: str | None = None


class _Record(msgspec.Struct, gc=False):
    EventTimestampMs: int | None = None
    EventType: str | None = None
    Outcome: str | None = None
    ScriptName: str | None = None
    ScriptVersion: _Version | None = None
    CPUTimeMs: int | float | None = None
    WallTimeMs: int | float | None = None
    Entrypoint: str | None = None
    DispatchNamespace: str | None = None
    Event: _Event | None = None
    Logs: list[_Log] | None = None
    Exceptions: list[_Exc] | None = None


class _RecordCounts(msgspec.Struct, gc=False):
    """The same record when only the invocations frame is wanted: logs/exceptions only counted."""

    EventTimestampMs: int | None = None
    EventType: str | None = None
    Outcome: str | None = None
    ScriptName: str | None = None
    ScriptVersion: _Version | None = None
    CPUTimeMs: int | float | None = None
    WallTimeMs: int | float | None = None
    Entrypoint: str | None = None
    DispatchNamespace: str | None = None
    Event: _Event | None = None
    Logs: list[msgspec.Raw] | None = None
    Exceptions: list[msgspec.Raw] | None = None


class _Job(msgspec.Struct, gc=False):
    """The job fields of a structured log line, typed as the convention says. Other types (a
    numeric ``jobId``, an ``attempt`` of ``"3"``) fail validation and take the general path."""

    jobId: str | None = None
    job_id: str | None = None
    type: str | None = None
    jobType: str | None = None
    job_type: str | None = None
    attempt: int | None = None
    attempts: int | None = None
    messageId: str | None = None
    message_id: str | None = None


_decode_record = msgspec.json.Decoder(_Record).decode
_decode_counts = msgspec.json.Decoder(_RecordCounts).decode
_decode_job = msgspec.json.Decoder(_Job).decode
_decode_jobs = msgspec.json.Decoder(_Job).decode_lines
_decode_any_lines = msgspec.json.Decoder().decode_lines
_decode_record_lines = msgspec.json.Decoder(_Record).decode_lines
_decode_counts_lines = msgspec.json.Decoder(_RecordCounts).decode_lines
_FALLBACK: Final = ValueError  # msgspec.DecodeError and ValidationError, invalid UTF-8


def _job_from_struct(j: _Job) -> tuple[Any, Any, Any, Any]:
    at = j.attempt if j.attempt is not None else j.attempts
    if at is not None and not -(2**31) <= at < 2**31:
        at = None
    return (
        j.jobId if j.jobId is not None else j.job_id,
        j.type if j.type is not None else (j.jobType if j.jobType is not None else j.job_type),
        at,
        j.messageId if j.messageId is not None else j.message_id,
    )


# --- the general path -------------------------------------------------------------------------


def _get(d: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if k in d:
            return d[k]
    return None


def _is_marker(v: Any) -> bool:
    return isinstance(v, str) and MARKER in v


def _str(v: Any, ctx: FileContext, line: int, name: str) -> str | None:
    if v is None or isinstance(v, str):
        return v
    ctx.issue(
        "type",
        f"field {name!r} is {type(v).__name__} {snippet(str(v))}; loaded as null",
        line=line,
        expected="a string",
        severity="warning",
    )
    return None


def _wrong(v: Any, ctx: FileContext, line: int, name: str, expected: str) -> None:
    ctx.issue(
        "type",
        f"field {name!r} is {type(v).__name__} {snippet(str(v))}; loaded as null",
        line=line,
        expected=expected,
        severity="warning",
    )


def _num(v: Any, ctx: FileContext, line: int, name: str) -> float | None:
    if v is None:
        return None
    if isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)
    ctx.issue(
        "type",
        f"field {name!r} is {type(v).__name__} {snippet(str(v))}; loaded as null",
        line=line,
        expected="a number",
        severity="warning",
    )
    return None


def _time(v: Any, ctx: FileContext, line: int, name: str) -> int | None:
    ms = to_ms(v)
    if is_bad(ms):
        ctx.issue(
            "type",
            f"field {name!r} is not a time: {snippet(str(v))}; loaded as null",
            line=line,
            expected="epoch ms, ns or s, or an RFC 3339 string",
            severity="warning",
        )
        return None
    return ms  # type: ignore[return-value]


def add_logpush_record(rec: Any, raw: bytes, rows: Rows, ctx: FileContext, line: int) -> None:
    """Add one decoded Logpush record (any casing, markers, string times, bad types) to ``rows``."""
    if not isinstance(rec, dict):
        ctx.issue(
            "type",
            f"record is {type(rec).__name__} {snippet(raw)}, skipped",
            line=line,
            expected="a workers_trace_events object",
        )
        return
    ctx.report.records += 1
    ts = _time(rec.get("EventTimestampMs"), ctx, line, "EventTimestampMs")
    if not ctx.in_window(ts):
        ctx.report.filtered += 1
        return
    inv_id = record_id(raw)
    truncated = False

    event = rec.get("Event")
    if event is not None and not isinstance(event, dict):
        _wrong(event, ctx, line, "Event", "an object")
        event = None
    event = event or {}
    etype = _str(rec.get("EventType"), ctx, line, "EventType")
    if etype is None:
        trigger = "fetch" if "Request" in event else ("queue" if "Queue" in event else "unknown")
    else:
        trigger = EVENT_TYPES.get(etype, "")
        if not trigger:
            ctx.issue(
                "variant",
                f"unknown EventType {etype!r}; loaded with trigger 'unknown'",
                line=line,
                expected=f"one of {sorted(EVENT_TYPES)}",
                severity="warning",
            )
            trigger = "unknown"
    req = _get(event, "Request", "request")
    req = req if isinstance(req, dict) else {}
    resp = _get(event, "Response", "response")
    resp = resp if isinstance(resp, dict) else {}
    status = _get(resp, "Status", "status")
    if status is not None and (not isinstance(status, int) or isinstance(status, bool)):
        _wrong(status, ctx, line, "Event.Response.Status", "an integer")
        status = None
    batch = _get(event, "BatchSize", "batchSize")
    if batch is not None and (not isinstance(batch, int) or isinstance(batch, bool)):
        batch = None

    n_logs = 0
    want_logs = "logs" in ctx.frames
    logs = rec.get("Logs")
    if logs is not None and not isinstance(logs, list):
        _wrong(logs, ctx, line, "Logs", "an array of {Level, Message, TimestampMs}")
        logs = None
    for i, entry in enumerate(logs or ()):
        if _is_marker(entry):
            truncated = True
            continue
        if not isinstance(entry, dict):
            _wrong(entry, ctx, line, f"Logs[{i}]", "a {Level, Message, TimestampMs} object")
            continue
        args = _get(entry, "Message", "message")
        if _is_marker(args) or (isinstance(args, list) and len(args) == 1 and _is_marker(args[0])):
            truncated = True
            continue
        n_logs += 1
        if want_logs:
            job = lift_job_fields(args)
            rows.add_log(
                invocation_id=inv_id,
                ts=_time(
                    _get(entry, "TimestampMs", "timestampMs", "Timestamp", "timestamp"),
                    ctx,
                    line,
                    f"Logs[{i}]",
                ),
                level=_str(_get(entry, "Level", "level"), ctx, line, f"Logs[{i}].Level"),
                message=join_args(args),
                args=None if args is None else msgspec.json.encode(args).decode(),
                job_id=job[0],
                job_type=job[1],
                attempt=job[2],
                message_id=job[3],
            )

    n_exc = 0
    had_exc = False
    want_exc = "exceptions" in ctx.frames
    excs = rec.get("Exceptions")
    if excs is not None and not isinstance(excs, list):
        _wrong(excs, ctx, line, "Exceptions", "an array of {Name, Message, TimestampMs}")
        excs = None
    for i, entry in enumerate(excs or ()):
        had_exc = True
        if _is_marker(entry):
            truncated = True
            continue
        if not isinstance(entry, dict):
            _wrong(entry, ctx, line, f"Exceptions[{i}]", "a {Name, Message, TimestampMs} object")
            continue
        name = _get(entry, "Name", "name")
        message = _get(entry, "Message", "message")
        if _is_marker(name) or _is_marker(message):
            truncated = True
            name = None if _is_marker(name) else name
            message = None if _is_marker(message) else message
        n_exc += 1
        if want_exc:
            if message is not None and not isinstance(message, str):
                message = msgspec.json.encode(message).decode()
            rows.add_exception(
                invocation_id=inv_id,
                ts=_time(
                    _get(entry, "TimestampMs", "timestampMs", "Timestamp", "timestamp"),
                    ctx,
                    line,
                    "Exceptions",
                ),
                name=_str(name, ctx, line, f"Exceptions[{i}].Name"),
                message=message,
                stack=_str(_get(entry, "Stack", "stack"), ctx, line, f"Exceptions[{i}].Stack"),
            )

    outcome = _str(rec.get("Outcome"), ctx, line, "Outcome")
    version = rec.get("ScriptVersion")
    version_id = (
        _str(_get(version, "ID", "Id", "id"), ctx, line, "ScriptVersion.ID")
        if isinstance(version, dict)
        else None
    )
    failed = failed_of(outcome, n_exc)
    if had_exc and not n_exc:
        failed = True  # only a truncation marker was left of the exceptions
    rows.add_invocation(
        invocation_id=inv_id,
        ts=ts,
        script=_str(rec.get("ScriptName"), ctx, line, "ScriptName"),
        script_version=version_id,
        trigger=trigger,
        queue=_str(_get(event, "Queue", "queue"), ctx, line, "Event.Queue"),
        batch_size=batch,
        outcome=outcome,
        failed=failed,
        cpu_ms=_num(rec.get("CPUTimeMs"), ctx, line, "CPUTimeMs"),
        wall_ms=_num(rec.get("WallTimeMs"), ctx, line, "WallTimeMs"),
        n_logs=n_logs,
        n_exceptions=n_exc,
        truncated=truncated,
        url=_str(_get(req, "URL", "Url", "url"), ctx, line, "Event.Request.URL"),
        method=_str(_get(req, "Method", "method"), ctx, line, "Event.Request.Method"),
        status=status,
        entrypoint=_str(rec.get("Entrypoint"), ctx, line, "Entrypoint") or None,
        dispatch_namespace=_str(rec.get("DispatchNamespace"), ctx, line, "DispatchNamespace") or None,
    )
    ctx.report.invocations += 1
    ctx.report.logs += n_logs
    ctx.report.exceptions += n_exc


def _general(raw: bytes, rows: Rows, ctx: FileContext, line: int, offset_hint: int | None = None) -> None:
    text = raw.strip()
    if not text:
        return
    try:
        rec = _decode_any(text)
    except ValueError as exc:  # msgspec.DecodeError, invalid UTF-8
        ctx.issue(
            "json",
            f"invalid JSON ({exc}): {snippet(text)}",
            line=line,
            expected="one workers_trace_events JSON object per line",
        )
        return
    add_logpush_record(rec, raw, rows, ctx, line)


# --- the fast path ----------------------------------------------------------------------------


JOB_COLS: Final = ("job_id", "job_type", "attempt", "message_id")
_MS_LO: Final = 100_000_000_000
_MS_HI: Final = 100_000_000_000_000


class _Block:
    """What the fast path gathers for one block: the decoded records (every column is built from
    them at the end of the block, with comprehensions) and patches for the invocation rows that
    took the general path (their log and exception rows are in ``Rows``)."""

    __slots__ = ("patches", "recs")

    def __init__(self) -> None:
        self.recs: list[Any] = []
        self.patches: list[tuple[int, dict[str, Any]]] = []


#: invocation columns built from the decoded records at the end of a block
_FROM_RECORDS: Final = tuple(c for c in INV_COLS if c not in ("invocation_id", "ts", "trigger"))
_NO_RECORD: Final = _Record()


def _general_fast(raw: bytes, rows: Rows, ctx: FileContext, line: int, st: _Block) -> None:
    """The general path from inside the fast loop. Its invocation values become a patch of the
    record-built columns; its log and exception rows keep the invocation's row number."""
    log, exc, inv = rows.log, rows.exc, rows.inv
    n0, e0, i0 = len(log["invocation_id"]), len(exc["invocation_id"]), len(inv["invocation_id"])
    _general(raw, rows, ctx, line)
    if len(inv["invocation_id"]) == i0:
        return
    st.patches.append((len(st.recs), {c: inv[c].pop() for c in _FROM_RECORDS}))
    st.recs.append(_NO_RECORD)
    for ids, start in ((log["invocation_id"], n0), (exc["invocation_id"], e0)):
        for k in range(start, len(ids)):
            ids[k] = i0


def _invocation_columns(st: _Block) -> dict[str, list[Any]]:
    recs = st.recs
    evs = [r.Event for r in recs]
    reqs = [e.Request if e is not None else None for e in evs]
    resps = [e.Response if e is not None else None for e in evs]
    vals: dict[str, list[Any]] = {
        "script": [r.ScriptName for r in recs],
        "script_version": [v.ID if (v := r.ScriptVersion) is not None else None for r in recs],
        "queue": [e.Queue if e is not None else None for e in evs],
        "batch_size": [e.BatchSize if e is not None else None for e in evs],
        "outcome": [r.Outcome for r in recs],
        "failed": [
            True if r.Exceptions else (None if r.Outcome is None else r.Outcome != "ok") for r in recs
        ],
        "cpu_ms": [r.CPUTimeMs for r in recs],  # ints become float64 in Arrow
        "wall_ms": [r.WallTimeMs for r in recs],
        "n_logs": [len(x) if (x := r.Logs) else 0 for r in recs],
        "n_exceptions": [len(x) if (x := r.Exceptions) else 0 for r in recs],
        "truncated": [False] * len(recs),
        "url": [q.URL if q is not None else None for q in reqs],
        "method": [q.Method if q is not None else None for q in reqs],
        "status": [q.Status if q is not None else None for q in resps],
        "entrypoint": [r.Entrypoint or None for r in recs],
        "dispatch_namespace": [r.DispatchNamespace or None for r in recs],
    }
    for i, patch in st.patches:
        for c, v in patch.items():
            vals[c][i] = v
    return vals


def _ms_array(values: list[Any]) -> pa.Array:
    """Epoch times as ``timestamp[ms, UTC]``; values in s/us/ns (rare) are scaled one by one."""
    arr = pa.array(values, pa.int64())
    lo, hi = pc.min_max(arr).values()
    if lo.is_valid and not (lo.as_py() >= _MS_LO and hi.as_py() < _MS_HI):
        arr = pa.array([None if v is None else epoch_to_ms(v) for v in values], pa.int64())
    return arr.cast(_TS)


def _job_fields(
    msgs: list[Any], decoded: list[Any], structured: list[int], others: list[int]
) -> tuple[list[int], dict[str, list[Any]]]:
    """Job fields of the log rows that can have them: ``structured`` (one string argument that starts
    with ``{``) in one typed batch decode, ``others`` (object or several arguments) one by one."""
    pos: list[int] = []
    vals: dict[str, list[Any]] = {c: [] for c in JOB_COLS}
    jobs: list[Any] | None = None
    if structured:
        text = "\n".join([msgs[i] for i in structured])
        if text.count("\n") == len(structured) - 1:  # no message spans lines: one value per line
            try:
                jobs = _decode_jobs(text)
            except _FALLBACK:
                jobs = None
            if jobs is not None and len(jobs) != len(structured):
                jobs = None
    if jobs is not None:
        pos.extend(structured)
        vals["job_id"].extend([j.jobId if j.jobId is not None else j.job_id for j in jobs])
        vals["job_type"].extend(
            [
                j.type if j.type is not None else (j.jobType if j.jobType is not None else j.job_type)
                for j in jobs
            ]
        )
        atts = [j.attempt if j.attempt is not None else j.attempts for j in jobs]
        vals["attempt"].extend([a if a is None or -(2**31) <= a < 2**31 else None for a in atts])
        vals["message_id"].extend([j.messageId if j.messageId is not None else j.message_id for j in jobs])
        todo = [(i, False) for i in others]
    else:
        todo = [(i, True) for i in structured] + [(i, False) for i in others]
    for i, typed in todo:
        fields = None
        if typed:
            try:
                fields = _job_from_struct(_decode_job(msgs[i]))
            except _FALLBACK:  # not JSON, or fields of other types: the general rules below
                fields = None
        if fields is None:
            fields = lift_job_fields(decoded[i])
        pos.append(i)
        for c, v in zip(JOB_COLS, fields, strict=True):
            vals[c].append(v)
    return pos, vals


def _log_columns(st: _Block, n_logs: list[int]) -> dict[str, pa.Array]:
    flat = [lg for r in st.recs if (ls := r.Logs) for lg in ls]
    raw_args = [bytes(lg.Message) for lg in flat]
    # every argument array was validated with its record and has no newline: one batch decode
    decoded = _decode_any_lines(b"\n".join(raw_args)) if raw_args else []
    msgs: list[Any] = [
        a[0] if type(a) is list and len(a) == 1 and type(a[0]) is str else None for a in decoded
    ]
    others = [i for i, m in enumerate(msgs) if m is None]
    structured = [i for i, m in enumerate(msgs) if m and m[0] == "{"]
    for i in others:
        msgs[i] = join_args(decoded[i])
    pos, job_vals = _job_fields(msgs, decoded, structured, others)
    n = len(flat)
    cols: dict[str, pa.Array] = {
        "invocation_id": pa.array(np.repeat(np.arange(len(n_logs), dtype=np.int32), n_logs)),
        "ts": _ms_array([lg.TimestampMs for lg in flat]),
        "level": _array("level", [lg.Level for lg in flat]),
        "message": pa.array(msgs, pa.string()),
        "args": pa.array(raw_args, pa.string()),
    }
    cols.update(_job_arrays(n, pos, job_vals))
    return cols


def _exception_columns(st: _Block, n_exc: list[int]) -> dict[str, pa.Array]:
    flat = [e for r in st.recs if (es := r.Exceptions) for e in es]
    return {
        "invocation_id": pa.array(np.repeat(np.arange(len(n_exc), dtype=np.int32), n_exc)),
        "ts": _ms_array([e.TimestampMs for e in flat]),
        "name": _array("name", [e.Name if e.Name is not None else e.name for e in flat]),
        "message": pa.array([e.Message if e.Message is not None else e.message for e in flat], pa.string()),
        "stack": pa.array([e.Stack if e.Stack is not None else e.stack for e in flat], pa.string()),
    }


def _job_arrays(n: int, pos: list[int], vals: dict[str, list[Any]]) -> dict[str, pa.Array]:
    """Dense job-field columns of ``n`` rows from the values at rows ``pos``."""
    index = np.full(n, len(pos), dtype=np.int32)  # rows without job fields point at a trailing null
    if pos:
        index[np.fromiter(pos, dtype=np.int64, count=len(pos))] = np.arange(len(pos), dtype=np.int32)
    take = pa.array(index)
    return {c: _array(c, [*vals[c], None]).take(take) for c in JOB_COLS}


def _with_general(
    fast: dict[str, pa.Array], general: dict[str, list[Any]], names: tuple[str, ...]
) -> pa.Table:
    """Fast-path rows plus general-path rows, in invocation order (both refer to row numbers)."""
    table = pa.table({c: fast[c] for c in names})
    if general["invocation_id"]:
        extra = pa.table(
            {
                c: pa.array(general[c], pa.int32()) if c == "invocation_id" else _array(c, general[c])
                for c in names
            }
        )
        table = pa.concat_tables([table, extra.cast(table.schema)], promote_options="permissive")
        table = table.take(pc.sort_indices(table, [("invocation_id", "ascending")]))  # stable
    return table


def _flush(rows: Rows, chunks: dict[str, list[pa.RecordBatch]], st: _Block, ctx: FileContext) -> None:
    """Build the record batches of one block from the decoded records (and general-path rows).
    Log and exception rows carry their invocation's row number until one vectorised take."""
    if not st.recs:
        return
    ids = _array("invocation_id", rows.inv["invocation_id"])
    inv = _invocation_columns(st)
    inv["invocation_id"], inv["ts"], inv["trigger"] = (
        rows.inv["invocation_id"],
        rows.inv["ts"],
        rows.inv["trigger"],
    )
    arrays = [
        ids if c == "invocation_id" else _ms_array(inv[c]) if c == "ts" else _array(c, inv[c])
        for c in INV_COLS
    ]
    chunks["invocations"].append(pa.record_batch(arrays, names=list(INV_COLS)))
    fast_rows = [0 if r is _NO_RECORD else 1 for r in st.recs] if st.patches else None
    for frame, names, build, counts in (
        ("logs", LOG_COLS, _log_columns, inv["n_logs"]),
        ("exceptions", EXC_COLS, _exception_columns, inv["n_exceptions"]),
    ):
        if frame not in ctx.frames:
            continue
        if fast_rows is not None:  # general-path rows are built apart: no rows from placeholders
            counts = [c * f for c, f in zip(counts, fast_rows, strict=True)]
        general = rows.log if frame == "logs" else rows.exc
        table = _with_general(build(st, counts), general, names)
        table = table.set_column(0, "invocation_id", ids.take(table.column("invocation_id")))
        chunks[frame].extend(table.to_batches())
    n_logs = sum(inv["n_logs"])
    n_exc = sum(inv["n_exceptions"])
    if fast_rows is not None:
        n_logs = sum(c * f for c, f in zip(inv["n_logs"], fast_rows, strict=True))
        n_exc = sum(c * f for c, f in zip(inv["n_exceptions"], fast_rows, strict=True))
    ctx.report.logs += n_logs
    ctx.report.exceptions += n_exc


def load_logpush(
    path: Path, ctx: FileContext, *, blocks: Iterable[tuple[bytes, int]] | None = None
) -> dict[str, pa.Table]:
    """Load one Logpush ``workers_trace_events`` file (NDJSON, plain or gzip). ``blocks``: its line
    blocks from another reader (an object streamed from S3, see ``sources.archive``) instead of ``path``."""
    chunks: dict[str, list[pa.RecordBatch]] = {"invocations": [], "logs": [], "exceptions": []}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        line = 1
        if blocks is None:
            blocks = iter_line_blocks(path, ctx, count_lines=False)
        for block, _ in blocks:
            rows = Rows()
            st = _Block()
            nxt = None if ctx.windowed else _fast_block(block, line, rows, ctx, st)
            line = nxt if nxt is not None else _load_block(block, line, rows, ctx, st)
            _flush(rows, chunks, st, ctx)
    finally:
        if gc_was_enabled:
            gc.enable()
    out: dict[str, pa.Table] = {}
    for frame, names in (("invocations", INV_COLS), ("logs", LOG_COLS), ("exceptions", EXC_COLS)):
        if chunks[frame]:
            table = pa.Table.from_batches(chunks[frame])
            if frame != "logs":
                # one chunk per column instead of one per 1 MiB block (~100 per file), which every
                # later pandas operation pays for; cheap here (2 ms per 100k invocations). The logs
                # (3x the rows, long strings) stay in block chunks: combining them cost ~10% of the
                # load, more than the slower later operations (~6% on 300k rows) cost
                table = table.combine_chunks()
        else:
            table = pa.table({c: _array(c, []) for c in names})
        out[frame] = table
    n = out["invocations"].num_rows
    inv = out["invocations"]
    inv = inv.append_column("source", constant_dictionary(ctx.source, n))
    out["invocations"] = inv.append_column("source_file", constant_dictionary(ctx.path, n))
    return out


def _trigger_from_event(ev: Any) -> str:
    """The trigger of a record without ``EventType``, from the shape of its ``Event``."""
    if ev is None:
        return "unknown"
    if ev.Request is not None:
        return "fetch"
    return "queue" if ev.Queue else "unknown"


def _fast_block(block: bytes, line0: int, rows: Rows, ctx: FileContext, st: _Block) -> int | None:
    """The whole block in one typed decode when every line is a plain record (no truncation
    marker, no bad line, no unknown event type). Returns the next line number, or ``None`` when
    the block needs the line-by-line path (which reports what it finds)."""
    if b"<" in block and MARKER_B in block:  # memchr first: most blocks have no "<" at all
        return None
    full = "logs" in ctx.frames or "exceptions" in ctx.frames
    try:
        recs = (_decode_record_lines if full else _decode_counts_lines)(block)
    except _FALLBACK:
        return None
    lines = block.split(b"\n")
    if not lines[-1]:
        lines.pop()  # the newline that ends the block
    if len(lines) != len(recs):  # blank-looking lines: let the line-by-line path count them
        return None
    # EventType -> trigger ("" = unknown: the line-by-line path reports it; None = absent)
    trig = list(map(_TRIGGER_OR_NONE.get, map(_event_type, recs), repeat("")))
    if "" in trig:
        return None
    for i in [i for i, t in enumerate(trig) if t is None]:
        trig[i] = _trigger_from_event(recs[i].Event)
    rows.inv["invocation_id"] = list(map(xxhash.xxh3_64_hexdigest, lines))  # = record_id(line)
    rows.inv["ts"] = list(map(_event_ts, recs))  # s/us/ns are scaled in _flush
    rows.inv["trigger"] = trig
    st.recs = recs
    ctx.report.records += len(recs)
    ctx.report.invocations += len(recs)
    return line0 + len(lines)


def _load_block(block: bytes, line0: int, rows: Rows, ctx: FileContext, st: _Block) -> int:
    """Read the lines of one block (the first is line ``line0``); returns the next line number.

    The loop only decodes, filters and keeps the records; the columns are built in :func:`_flush`.
    """
    inv = rows.inv
    i_id, i_ts, i_trig = inv["invocation_id"], inv["ts"], inv["trigger"]
    recs = st.recs
    decode = _decode_record if ("logs" in ctx.frames or "exceptions" in ctx.frames) else _decode_counts
    since, until = ctx.since_ms, ctx.until_ms
    windowed = ctx.windowed
    report = ctx.report
    triggers = EVENT_TYPES
    n_records = n_inv = n_filtered = 0
    lineno = line0 - 1
    for raw in block.split(b"\n"):
        lineno += 1
        if not raw:
            continue
        if windowed:
            # push since/until down: read the event time from the raw bytes before decoding
            k = raw.find(b'"EventTimestampMs":')
            if k >= 0:
                dm = _DIGITS.match(raw, k + 19)
                if dm is not None:
                    t = epoch_to_ms(int(dm.group(1)))
                    if (since is not None and t < since) or (until is not None and t >= until):
                        n_records += 1
                        n_filtered += 1
                        continue
        if MARKER_B in raw:
            _general_fast(raw, rows, ctx, lineno, st)
            continue
        try:
            r = decode(raw)
        except _FALLBACK:
            _general_fast(raw, rows, ctx, lineno, st)
            continue
        et = r.EventType
        trig = triggers.get(et) if et is not None else None
        if trig is None and et is not None:
            _general_fast(raw, rows, ctx, lineno, st)  # unknown variant: reported there
            continue
        ts = r.EventTimestampMs
        if ts is not None and not (_MS_LO <= ts < _MS_HI):
            ts = epoch_to_ms(ts)
        n_records += 1
        if (
            windowed
            and ts is not None
            and ((since is not None and ts < since) or (until is not None and ts >= until))
        ):
            n_filtered += 1
            continue
        if trig is None:
            trig = _trigger_from_event(r.Event)
        i_id.append(record_id(raw))
        i_ts.append(ts)
        i_trig.append(trig)
        recs.append(r)
        n_inv += 1
    report.records += n_records
    report.filtered += n_filtered
    report.invocations += n_inv
    return lineno if block.endswith(b"\n") else lineno + 1
