"""The general path of the Logpush loader: one decoded record of any shape into the rows.

Handles what the typed fast path does not: ``<<<Logpush: ... truncated>>>`` markers, other key
casings, string times, wrong types (loaded as null, with a warning) and unknown event types.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from edgeinvestigate.sources.files._coerce import (
    LOGPUSH_UNITS,
    BadTime,
    join_args,
    lift_job_fields,
    parse_ms,
    shown_number,
)
from edgeinvestigate.sources.files._context import FileContext, snippet
from edgeinvestigate.sources.files._framing import DECODE_ERRORS, why_not_json
from edgeinvestigate.sources.files._rows import Rows, guard_record, record_id, show
from edgeinvestigate.sources.files._tail import failed_of

__all__ = [
    "EVENT_TYPES",
    "MARKER",
    "MARKER_B",
    "add_logpush_line",
    "add_logpush_record",
    "invalid_utf8",
    "is_marker",
    "read_time",
]

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

_decode_any = msgspec.json.Decoder().decode
_I32_MIN, _I32_MAX = -(2**31), 2**31 - 1


def _get(d: dict[str, Any], *keys: str) -> Any:
    for k in keys:
        if k in d:
            return d[k]
    return None


def is_marker(v: Any) -> bool:
    """Whether a value is (a string holding) a ``<<<Logpush: ... truncated>>>`` marker."""
    return isinstance(v, str) and MARKER in v


_is_marker = is_marker


def _str(v: Any, ctx: FileContext, line: int, name: str) -> str | None:
    if v is None or isinstance(v, str):
        return v
    ctx.issue(
        "type",
        f"field {name!r} is {type(v).__name__} {show(v)}; loaded as null",
        line=line,
        expected="a string",
        severity="warning",
    )
    return None


def _wrong(v: Any, ctx: FileContext, line: int, name: str, expected: str) -> None:
    ctx.issue(
        "type",
        f"field {name!r} is {type(v).__name__} {show(v)}; loaded as null",
        line=line,
        expected=expected,
        severity="warning",
    )


def _num(v: Any, ctx: FileContext, line: int, name: str) -> float | None:
    if v is None:
        return None
    if isinstance(v, int | float) and not isinstance(v, bool):
        try:
            return float(v)
        except OverflowError:
            pass
    ctx.issue(
        "type",
        f"field {name!r} is {type(v).__name__} {show(v)}; loaded as null",
        line=line,
        expected="a number",
        severity="warning",
    )
    return None


def _int32(v: Any, ctx: FileContext, line: int, name: str) -> int | None:
    if v is None:
        return None
    if isinstance(v, int) and not isinstance(v, bool) and _I32_MIN <= v <= _I32_MAX:
        return v
    _wrong(v, ctx, line, name, "a 32-bit integer")
    return None


_TIME_EXPECTED: Final = "epoch ms (or ns, or s), or an RFC 3339 string, between 2010-01-01 and tomorrow"


def read_time(v: Any, ctx: FileContext, line: int | None, name: str) -> int | None:
    """Epoch ms of a Logpush time in the units the reference allows (ms, s, ns, RFC 3339), or null
    with a warning naming the field and the line."""
    ms = parse_ms(v, LOGPUSH_UNITS, ctx.ts_hi)
    if isinstance(ms, BadTime):
        ctx.issue(
            "time",
            f"{ms.says(name)}; loaded as null",
            line=line,
            expected=_TIME_EXPECTED,
            severity="warning",
        )
        return None
    return ms


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
    raw_ts = rec.get("EventTimestampMs")
    if isinstance(raw_ts, int) and not isinstance(raw_ts, bool) and not -(2**63) <= raw_ts < 2**63:
        ctx.issue(
            "time",
            f"EventTimestampMs {shown_number(raw_ts)} does not fit in 64 bits: not a record Logpush writes; "
            "skipped",
            line=line,
            expected=_TIME_EXPECTED,
        )
        return
    ctx.report.records += 1
    ts = read_time(raw_ts, ctx, line, "EventTimestampMs")
    if not ctx.in_window(ts):
        ctx.report.filtered += 1
        return
    inv_id = record_id(raw)
    event = rec.get("Event")
    if event is not None and not isinstance(event, dict):
        _wrong(event, ctx, line, "Event", "an object")
        event = None
    event = event or {}
    trigger = _trigger(rec, event, ctx, line)
    req, status, batch = _request(event, ctx, line)
    queue = _get(event, "Queue", "queue")
    if isinstance(queue, dict):  # {"QueueName": "jobs", "BatchSize": 3}
        if batch is None:
            batch = _int32(_get(queue, "BatchSize", "batchSize"), ctx, line, "Event.Queue.BatchSize")
        queue = _get(queue, "QueueName", "queueName", "Name", "name")
    n_logs, logs_truncated = _add_logs(rec.get("Logs"), inv_id, rows, ctx, line)
    n_exc, had_exc, exc_truncated = _add_exceptions(rec.get("Exceptions"), inv_id, rows, ctx, line)
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
        queue=_str(queue, ctx, line, "Event.Queue"),
        batch_size=batch,
        outcome=outcome,
        failed=failed,
        cpu_ms=_num(rec.get("CPUTimeMs"), ctx, line, "CPUTimeMs"),
        wall_ms=_num(rec.get("WallTimeMs"), ctx, line, "WallTimeMs"),
        n_logs=n_logs,
        n_exceptions=n_exc,
        truncated=logs_truncated or exc_truncated,
        url=_str(_get(req, "URL", "Url", "url"), ctx, line, "Event.Request.URL"),
        method=_str(_get(req, "Method", "method"), ctx, line, "Event.Request.Method"),
        status=status,
        entrypoint=_str(rec.get("Entrypoint"), ctx, line, "Entrypoint") or None,
        dispatch_namespace=_str(rec.get("DispatchNamespace"), ctx, line, "DispatchNamespace") or None,
        ray_id=_str(_get(event, "RayID", "RayId", "rayId"), ctx, line, "Event.RayID") or None,
    )
    ctx.report.invocations += 1
    ctx.report.logs += n_logs
    ctx.report.exceptions += n_exc


def _trigger(rec: dict[str, Any], event: dict[str, Any], ctx: FileContext, line: int) -> str:
    """The canonical trigger: from ``EventType``, else from the shape of ``Event``."""
    etype = _str(rec.get("EventType"), ctx, line, "EventType")
    if etype is None:
        return "fetch" if "Request" in event else ("queue" if "Queue" in event else "unknown")
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
    return trigger


def _request(event: dict[str, Any], ctx: FileContext, line: int) -> tuple[dict[str, Any], Any, Any]:
    """``(request, response status, batch size)`` of ``Event`` (``{}`` / ``None`` when absent)."""
    req = _get(event, "Request", "request")
    req = req if isinstance(req, dict) else {}
    resp = _get(event, "Response", "response")
    resp = resp if isinstance(resp, dict) else {}
    status = _int32(_get(resp, "Status", "status"), ctx, line, "Event.Response.Status")
    batch = _get(event, "BatchSize", "batchSize")
    batch = _int32(batch, ctx, line, "Event.BatchSize")
    return req, status, batch


def _add_logs(logs: Any, inv_id: str, rows: Rows, ctx: FileContext, line: int) -> tuple[int, bool]:
    """Add the ``Logs`` entries (when the logs frame is wanted); ``(count, a marker was seen)``."""
    n_logs = 0
    truncated = False
    want_logs = "logs" in ctx.frames
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
                ts=read_time(
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
    return n_logs, truncated


def _add_exceptions(
    excs: Any, inv_id: str, rows: Rows, ctx: FileContext, line: int
) -> tuple[int, bool, bool]:
    """Add the ``Exceptions`` entries (when that frame is wanted); ``(count, any, a marker seen)``."""
    n_exc = 0
    had_exc = False
    truncated = False
    want_exc = "exceptions" in ctx.frames
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
                ts=read_time(
                    _get(entry, "TimestampMs", "timestampMs", "Timestamp", "timestamp"),
                    ctx,
                    line,
                    "Exceptions",
                ),
                name=_str(name, ctx, line, f"Exceptions[{i}].Name"),
                message=message,
                stack=_str(_get(entry, "Stack", "stack"), ctx, line, f"Exceptions[{i}].Stack"),
            )
    return n_exc, had_exc, truncated


def add_logpush_line(
    raw: bytes, rows: Rows, ctx: FileContext, line: int, offset_hint: int | None = None
) -> None:
    text = raw.strip()
    if not text:
        return
    if len(text) > ctx.max_record_bytes:
        ctx.oversized(len(text), line=line)
        return
    try:
        rec = _decode_any(text)
    except DECODE_ERRORS as exc:  # msgspec.DecodeError, invalid UTF-8, deep nesting
        bad = invalid_utf8(text) if not text.isascii() else None
        why = f"invalid UTF-8 at byte {bad} of the record" if bad is not None else why_not_json(exc)
        ctx.issue(
            "json",
            f"invalid JSON ({why}): {snippet(text)}",
            line=line,
            expected="one workers_trace_events JSON object per line",
        )
        return
    guard_record(ctx, rows, line, lambda: add_logpush_record(rec, raw, rows, ctx, line))


def invalid_utf8(raw: bytes) -> int | None:
    """The offset of the first byte of ``raw`` that is not valid UTF-8, or ``None``."""
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start
    return None
