"""``wrangler tail --format json`` output, and the camelCase trace record it shares with TraceItem.

stdout of ``wrangler tail --format json`` is pretty-printed objects back to back (2-space indentation up
to wrangler 4.24.3, 4-space after), not NDJSON, possibly with a stray bare ``json`` line (wrangler
3.35.0-4.24.3). NDJSON of the same objects is accepted too. See cloudflare-formats.md A1-A4.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

import pyarrow as pa

from edgeinvestigate.models.load_report import Issue
from edgeinvestigate.sources.files._coerce import (
    MS_ONLY,
    BadTime,
    join_args,
    lift_job_fields,
    parse_ms,
    shown_number,
)
from edgeinvestigate.sources.files._context import FileContext
from edgeinvestigate.sources.files._framing import iter_documents
from edgeinvestigate.sources.files._reading import read_bytes
from edgeinvestigate.sources.files._rows import Rows, canonical_bytes, guard_record, record_id, show

__all__ = ["TRACE_FIELDS", "add_trace_item", "check_capture", "event_info", "load_tail"]

#: TailInfo notices (sampling mode); not invocations
TAIL_INFO_TYPES: Final = frozenset({"overload", "overload-stop"})
OK_OUTCOMES: Final = frozenset({"ok"})

_EMPTY: dict[str, Any] = {}

#: the fields of a wrangler tail event / Tail Worker TraceItem (cloudflare-formats.md A4); a record
#: with none of them is not a trace record (a Logpush line, a stray object) and is skipped
TRACE_FIELDS: Final = frozenset(
    {
        "eventTimestamp",
        "outcome",
        "event",
        "logs",
        "exceptions",
        "scriptName",
        "scriptVersion",
        "wallTime",
        "cpuTime",
        "truncated",
        "entrypoint",
        "dispatchNamespace",
        "diagnosticsChannelEvents",
        "executionModel",
        "scriptTags",
    }
)
NOT_TRACE: Final = "not-tail"
_EXPECTED_FIELDS: Final = (
    "wrangler tail / TraceItem fields (eventTimestamp, outcome, event, logs, exceptions, ...)"
)


_I32_MIN, _I32_MAX = -(2**31), 2**31 - 1


def _typed(value: Any, types: Any, ctx: FileContext, line: int, name: str, expected: str) -> Any:
    """``value`` if it has one of ``types`` (or is null); otherwise report it and return null.
    An ``int`` field must fit in 32 bits (the frame's column), a number must fit in a float."""
    if value is None or (
        isinstance(value, types)
        and not (isinstance(value, bool) and bool not in _tuple(types))
        and _fits(value, types)
    ):
        return value
    ctx.issue(
        "type",
        f"field {name!r} is {type(value).__name__} {show(value)}; it was loaded as null",
        line=line,
        expected=expected,
        severity="warning",
    )
    return None


def _fits(value: Any, types: Any) -> bool:
    if type(value) is not int:
        return True
    if types is int:
        return _I32_MIN <= value <= _I32_MAX
    return abs(value) < 2**1023  # a number read as a float (cpuTime, wallTime)


def _tuple(types: Any) -> tuple[Any, ...]:
    return types if isinstance(types, tuple) else (types,)


_TIME_EXPECTED: Final = "epoch ms (number) or an ISO-8601 string, between 2010-01-01 and tomorrow"


def _ms(value: Any, ctx: FileContext, line: int, name: str) -> int | None:
    ms = parse_ms(value, MS_ONLY, ctx.ts_hi)
    if isinstance(ms, BadTime):
        ctx.issue(
            "time",
            f"{ms.says(name)}; it was loaded as null",
            line=line,
            expected=_TIME_EXPECTED,
            severity="warning",
        )
        return None
    return ms


def event_info(event: Any, ctx: FileContext, line: int) -> dict[str, Any] | None:
    """Trigger and trigger fields of a tail/TraceItem ``event``; ``None`` for a TailInfo notice."""
    if event is None:
        return {"trigger": "unknown"}
    if not isinstance(event, dict):
        _typed(event, dict, ctx, line, "event", "an event object or null")
        return {"trigger": "unknown"}
    if "request" in event:
        req = _typed(event.get("request"), dict, ctx, line, "event.request", "an object") or _EMPTY
        resp = _typed(event.get("response"), dict, ctx, line, "event.response", "an object") or _EMPTY
        headers = req.get("headers")
        ray = headers.get("cf-ray") if isinstance(headers, dict) else None
        return {
            "trigger": "fetch",
            # the header is "<ray id>-<colo>"; Logpush and Workers Logs give the ray id alone
            "ray_id": ray.rsplit("-", 1)[0] if isinstance(ray, str) and ray else None,
            "url": _typed(req.get("url"), str, ctx, line, "event.request.url", "a string"),
            "method": _typed(req.get("method"), str, ctx, line, "event.request.method", "a string"),
            "status": _typed(resp.get("status"), int, ctx, line, "event.response.status", "an integer"),
        }
    if "cron" in event:
        return {"trigger": "scheduled"}
    if "scheduledTime" in event:
        # DO alarm: ISO string and no cron; scheduled: epoch ms number
        return {"trigger": "alarm" if isinstance(event["scheduledTime"], str) else "scheduled"}
    if "queue" in event or "batchSize" in event:
        return {
            "trigger": "queue",
            "queue": _typed(event.get("queue"), str, ctx, line, "event.queue", "the queue name"),
            "batch_size": _typed(event.get("batchSize"), int, ctx, line, "event.batchSize", "an integer"),
        }
    if "mailFrom" in event or "rcptTo" in event:
        return {"trigger": "email"}
    if "consumedEvents" in event:
        return {"trigger": "tail"}
    if "rpcMethod" in event:
        return {"trigger": "rpc"}
    if "getWebSocketEvent" in event:
        return {"trigger": "websocket"}
    if event.get("type") in TAIL_INFO_TYPES:
        return None
    if not event:
        return {"trigger": "custom"}
    ctx.issue(
        "variant",
        f"unknown event variant with keys {sorted(event)[:8]}; loaded with trigger 'unknown'",
        line=line,
        expected="one of the event shapes fetch/scheduled/alarm/queue/email/tail/rpc/websocket",
        severity="warning",
    )
    return {"trigger": "unknown"}


def add_trace_item(rec: Any, rows: Rows, ctx: FileContext, line: int) -> None:
    """Add one camelCase trace record (a tail event or a Tail Worker TraceItem) to ``rows``; a record
    that cannot be read (nested too deeply, say) is skipped and reported, never raised."""
    guard_record(ctx, rows, line, lambda: _add_trace_item(rec, rows, ctx, line))


def _add_trace_item(rec: Any, rows: Rows, ctx: FileContext, line: int) -> None:
    if not isinstance(rec, dict):
        ctx.issue(
            "type",
            f"record is {type(rec).__name__} {show(rec)}, skipped",
            line=line,
            expected="a trace event object with outcome, eventTimestamp, logs, exceptions",
        )
        return
    if rec.get("type") in TAIL_INFO_TYPES and "outcome" not in rec:
        _tail_info(rec, ctx, line)
        return
    if TRACE_FIELDS.isdisjoint(rec):
        ctx.report.records += 1
        ctx.issue(
            NOT_TRACE,
            f"not a tail event: expected {_EXPECTED_FIELDS}, got keys {sorted(rec)[:8]}; skipped",
            line=line,
            expected="a wrangler tail event or Tail Worker TraceItem object",
        )
        return
    info = event_info(rec.get("event"), ctx, line)
    if info is None:
        _tail_info(rec.get("event") or {}, ctx, line)
        return
    raw_ts = rec.get("eventTimestamp")
    if isinstance(raw_ts, int) and not isinstance(raw_ts, bool) and not -(2**63) <= raw_ts < 2**63:
        ctx.issue(
            "time",
            f"eventTimestamp {shown_number(raw_ts)} does not fit in 64 bits: not a real trace record; "
            "skipped",
            line=line,
            expected=_TIME_EXPECTED,
        )
        return
    ctx.report.records += 1
    ts = _ms(raw_ts, ctx, line, "eventTimestamp")
    if not ctx.in_window(ts):
        ctx.report.filtered += 1
        return
    inv_id = record_id(canonical_bytes(rec))

    n_logs = 0
    want_logs = "logs" in ctx.frames
    logs = _typed(rec.get("logs"), list, ctx, line, "logs", "an array of {message, level, timestamp}") or []
    for i, entry in enumerate(logs):
        if not isinstance(entry, dict):
            _typed(entry, dict, ctx, line, f"logs[{i}]", "a {message, level, timestamp} object")
            continue
        n_logs += 1
        if want_logs:
            args = entry.get("message")
            job = lift_job_fields(args)
            rows.add_log(
                invocation_id=inv_id,
                ts=_ms(entry.get("timestamp"), ctx, line, f"logs[{i}].timestamp"),
                level=_typed(
                    entry.get("level"), str, ctx, line, f"logs[{i}].level", "debug|info|log|warn|error"
                ),
                message=join_args(args),
                args=None if args is None else canonical_bytes(args).decode(),
                job_id=job[0],
                job_type=job[1],
                attempt=job[2],
                message_id=job[3],
            )

    n_exc = 0
    want_exc = "exceptions" in ctx.frames
    excs = (
        _typed(rec.get("exceptions"), list, ctx, line, "exceptions", "an array of {name, message, timestamp}")
        or []
    )
    for i, entry in enumerate(excs):
        if not isinstance(entry, dict):
            _typed(entry, dict, ctx, line, f"exceptions[{i}]", "a {name, message, timestamp, stack} object")
            continue
        n_exc += 1
        if want_exc:
            msg = entry.get("message")
            rows.add_exception(
                invocation_id=inv_id,
                ts=_ms(entry.get("timestamp"), ctx, line, f"exceptions[{i}].timestamp"),
                name=_typed(entry.get("name"), str, ctx, line, f"exceptions[{i}].name", "a string"),
                message=msg if isinstance(msg, str) or msg is None else canonical_bytes(msg).decode(),
                stack=_typed(entry.get("stack"), str, ctx, line, f"exceptions[{i}].stack", "a string"),
            )

    outcome = _typed(rec.get("outcome"), str, ctx, line, "outcome", "a string such as ok or exception")
    version = rec.get("scriptVersion")
    version_id = None
    if isinstance(version, dict):
        version_id = _typed(version.get("id"), str, ctx, line, "scriptVersion.id", "a string")
    elif version is not None:
        _typed(version, dict, ctx, line, "scriptVersion", "an object {id, tag, message}")
    cpu = _typed(rec.get("cpuTime"), int | float, ctx, line, "cpuTime", "a number of ms")
    wall = _typed(rec.get("wallTime"), int | float, ctx, line, "wallTime", "a number of ms")
    rows.add_invocation(
        invocation_id=inv_id,
        ts=ts,
        script=_typed(rec.get("scriptName"), str, ctx, line, "scriptName", "a string or null"),
        script_version=version_id,
        trigger=info["trigger"],
        queue=info.get("queue"),
        batch_size=info.get("batch_size"),
        outcome=outcome,
        failed=failed_of(outcome, n_exc),
        cpu_ms=None if cpu is None else float(cpu),
        wall_ms=None if wall is None else float(wall),
        n_logs=n_logs,
        n_exceptions=n_exc,
        truncated=_typed(rec.get("truncated"), bool, ctx, line, "truncated", "true or false"),
        url=info.get("url"),
        method=info.get("method"),
        status=info.get("status"),
        ray_id=info.get("ray_id"),
        entrypoint=_typed(rec.get("entrypoint"), str, ctx, line, "entrypoint", "a string"),
        dispatch_namespace=_typed(
            rec.get("dispatchNamespace"), str, ctx, line, "dispatchNamespace", "a string"
        ),
    )
    ctx.report.invocations += 1
    ctx.report.logs += n_logs
    ctx.report.exceptions += n_exc


def failed_of(outcome: str | None, n_exceptions: int) -> bool | None:
    """``failed``: outcome not ok, or exceptions present; null when neither is known."""
    if n_exceptions:
        return True
    if outcome is None:
        return None
    return outcome not in OK_OUTCOMES


def _tail_info(info: dict[str, Any], ctx: FileContext, line: int) -> None:
    ctx.issue(
        "tail-info",
        f"tail sampling notice {_quote(info.get('type'))}: {_quote(info.get('message'))} "
        "(events may be missing here)",
        line=line,
        severity="info",
    )
    ctx.report.records += 1


def _quote(v: Any) -> str:
    return repr(v) if v is None or (isinstance(v, str) and len(v) <= 200) else show(v)


def check_capture(ctx: FileContext, kind: str) -> None:
    """After a tail/TraceItem load: when no record of the file was a trace record, say so first in
    its report, with the format the file looks like (the registry's content sniffing, ``ctx.sniff``)."""
    rep = ctx.report
    if rep.invocations or rep.filtered or not any(i.kind == NOT_TRACE for i in rep.issues):
        return
    looks = ctx.looks_like()
    if looks is None or looks in ("tail", "traceitems"):
        like = "it matches none of the known telemetry formats"
        hint = "check that this is the file you meant"
    else:
        like = f"it looks like {looks!r} data"
        hint = f"load it as {looks} (CLI: --{looks.replace('_', '-')}, or let collect detect it)"
    issue = Issue(
        kind="format",
        message=(
            f"this file does not look like a {kind} capture: none of its records has {_EXPECTED_FIELDS}; "
            f"{like}; {hint}"
        ),
        expected=_EXPECTED_FIELDS,
        severity="warning",
    )
    rep.issues.insert(0, issue)  # first, so the cap on listed issues never hides it
    rep.n_issues += 1


def load_tail(path: Path, ctx: FileContext) -> dict[str, pa.Table]:
    """Load ``wrangler tail --format json`` output (pretty objects, any indentation, or NDJSON)."""
    rows = Rows()
    data = read_bytes(path, ctx)
    for value, line, _raw in iter_documents(data, ctx):
        items = value if isinstance(value, list) else [value]
        for item in items:
            add_trace_item(item, rows, ctx, line)
    check_capture(ctx, "wrangler tail")
    return rows.to_tables(ctx.source, ctx.path)
