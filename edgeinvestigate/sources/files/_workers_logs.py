"""Workers Logs (Workers Observability) events: dashboard exports and query-API events.

One Workers Logs event is one line, not one invocation (cloudflare-formats.md C2/C3):
``$metadata.type == "cf-worker-event"`` is the automatic invocation line (outcome, CPU and wall time,
the request); ``cf-worker`` lines are ``console.*`` calls, and an uncaught exception is a line whose
payload has ``exception: {name, message, stack, timestamp}``. Lines are grouped into invocations by
``requestId``. Two event shapes are accepted: the API shape ``{dataset, timestamp, source, $metadata,
$workers}`` and the flattened dashboard shape (``$workers``, ``$metadata`` and the payload keys such
as ``message``/``level``/``exception`` at the top level). A file may hold a JSON array, objects back
to back (pretty-printed), NDJSON, or a saved query response (``{"result": {"events": {"events": [...]}}}``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pyarrow as pa

from edgeinvestigate.models.load_report import FileReport
from edgeinvestigate.sources.files._coerce import (
    MS_ONLY,
    BadTime,
    job_fields_of,
    join_args,
    lift_job_fields,
    parse_ms,
    shown_number,
)
from edgeinvestigate.sources.files._context import FileContext
from edgeinvestigate.sources.files._framing import iter_documents
from edgeinvestigate.sources.files._reading import read_bytes
from edgeinvestigate.sources.files._rows import (
    RECORD_ERRORS,
    Rows,
    canonical_bytes,
    guard_record,
    record_id,
    show,
)
from edgeinvestigate.sources.files._tail import failed_of

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["EVENT_TYPES", "load_workers_logs_export", "workers_logs_events_to_frames"]

#: ``$workers.eventType`` -> canonical trigger
EVENT_TYPES: Final[dict[str, str]] = {
    "fetch": "fetch",
    "scheduled": "scheduled",
    "cron": "scheduled",
    "alarm": "alarm",
    "queue": "queue",
    "email": "email",
    "tail": "tail",
    "rpc": "rpc",
    "jsrpc": "rpc",
    "websocket": "websocket",
    "workflow": "custom",
    "unknown": "unknown",
}
INVOCATION_TYPE: Final = "cf-worker-event"
LOG_TYPE: Final = "cf-worker"
LEVELS: Final = frozenset({"debug", "info", "log", "warn", "error"})


def _d(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _s(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _i(v: Any) -> int | None:
    """A 32-bit integer (batch size, HTTP status), else ``None``."""
    return v if isinstance(v, int) and not isinstance(v, bool) and -(2**31) <= v < 2**31 else None


def _f(v: Any) -> float | None:
    if not isinstance(v, int | float) or isinstance(v, bool):
        return None
    try:
        return float(v)
    except OverflowError:  # an integer beyond the float range
        return None


def _payload(ev: dict[str, Any]) -> Any:
    """What the Worker logged: ``source`` (API shape) or the non-``$`` top-level keys (dashboard)."""
    if "source" in ev and ("dataset" in ev or "timestamp" in ev):
        return ev["source"]
    return {
        k: v for k, v in ev.items() if not k.startswith("$") and k not in ("timestamp", "dataset", "level")
    }


def _unwrap(value: Any) -> list[Any]:
    """Events of one decoded document: an event, an array, or a saved query response."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        if "$metadata" in value or "$workers" in value:
            return [value]
        result = value.get("result", value.get("data"))
        if isinstance(result, dict):
            events = result.get("events")
            if isinstance(events, dict) and isinstance(events.get("events"), list):
                return list(events["events"])
            if isinstance(events, list):
                return events
            invocations = result.get("invocations")
            if isinstance(invocations, dict):
                return [e for evs in invocations.values() if isinstance(evs, list) for e in evs]
        if isinstance(value.get("events"), list):
            return list(value["events"])
    return [value]


class _Group:
    __slots__ = ("events", "first_line", "inv", "request_id", "script")

    def __init__(self, script: str | None, request_id: str | None, line: int) -> None:
        self.script = script
        self.request_id = request_id
        self.first_line = line
        self.inv: dict[str, Any] | None = None
        self.events: list[tuple[dict[str, Any], int]] = []


def add_events(
    events: Iterable[Any], rows: Rows, ctx: FileContext, lines: Iterable[int] | None = None
) -> None:
    """Group Workers Logs events into invocations and add their rows."""
    groups: dict[tuple[str | None, str], _Group] = {}
    other_types: dict[str, int] = {}
    line_iter = iter(lines) if lines is not None else None
    for n, ev in enumerate(events):
        line = next(line_iter) if line_iter is not None else n + 1
        if not isinstance(ev, dict) or not ("$metadata" in ev or "$workers" in ev):
            ctx.issue(
                "type",
                f"not a Workers Logs event: {show(ev)}, skipped",
                line=line,
                expected="an event object with $metadata and $workers",
            )
            continue
        why = _unreadable(ev)
        if why:
            ctx.issue("json", f"Workers Logs event {why}; skipped", line=line, expected=_EXPECTED_EVENT)
            continue
        ctx.report.records += 1
        meta, workers = _d(ev.get("$metadata")), _d(ev.get("$workers"))
        etype = _s(meta.get("type"))
        if etype not in (None, INVOCATION_TYPE, LOG_TYPE):
            other_types[etype] = other_types.get(etype, 0) + 1  # spans and the like: not console lines
            continue
        script = _s(workers.get("scriptName")) or _s(meta.get("service"))
        rid = _s(workers.get("requestId")) or _s(meta.get("requestId"))
        key = (
            (script, rid) if rid else (script, "\0" + (_s(meta.get("id")) or record_id(canonical_bytes(ev))))
        )
        g = groups.get(key)
        if g is None:
            g = groups[key] = _Group(script, rid, line)
        is_inv = etype == INVOCATION_TYPE or (
            etype is None and "outcome" in workers and ("cpuTimeMs" in workers or "wallTimeMs" in workers)
        )
        if is_inv and g.inv is None:
            g.inv = ev
        else:
            g.events.append((ev, line))
    for t, count in other_types.items():
        ctx.issue(
            "variant",
            f"{count} events of $metadata.type {t!r} are not console lines or invocations; not loaded",
            severity="info",
        )
    for g in groups.values():
        guard_record(
            ctx,
            rows,
            g.first_line,
            lambda g=g: _add_group(g, rows, ctx),  # type: ignore[misc]
            more_lines=_other_lines(g),
            uncount=len(g.events) + (g.inv is not None),
        )


def _other_lines(g: _Group) -> list[int]:
    """The lines of a group's events but one at ``first_line``: one report line per event."""
    lines = [line for _, line in g.events] + ([g.first_line] if g.inv is not None else [])
    if g.first_line in lines:
        lines.remove(g.first_line)
    return lines


_EXPECTED_EVENT: Final = "an event {dataset, timestamp (epoch ms), source, $metadata, $workers}"


def _unreadable(ev: dict[str, Any]) -> str:
    """Why an event cannot be read at all ("" when it can): nested too deeply to encode (its id and
    payload are its JSON), or an event time beyond 64 bits (no real event has one)."""
    for value in (ev.get("timestamp"), _d(ev.get("$metadata")).get("timestamp")):
        if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
            return f"has a timestamp that does not fit in 64 bits ({shown_number(value)})"
    try:
        canonical_bytes(ev)
    except RECORD_ERRORS:
        return "is nested too deeply to read"
    return ""


def _event_ms(ev: dict[str, Any], ctx: FileContext, line: int) -> int | None:
    meta = _d(ev.get("$metadata"))
    for value in (ev.get("timestamp"), meta.get("timestamp"), meta.get("startTime")):
        if value is None:
            continue
        ms = parse_ms(value, MS_ONLY, ctx.ts_hi)
        if isinstance(ms, BadTime):
            ctx.issue(
                "time",
                f"{ms.says('timestamp')}; loaded as null",
                line=line,
                expected="epoch ms between 2010-01-01 and tomorrow",
                severity="warning",
            )
            return None
        return ms
    return None


def _add_group(g: _Group, rows: Rows, ctx: FileContext) -> None:
    inv = g.inv
    ts: int | None = None
    if inv is not None:
        start = _d(inv.get("$metadata")).get("startTime")
        ms = parse_ms(start, MS_ONLY, ctx.ts_hi) if start is not None else None
        ts = ms if isinstance(ms, int) else _event_ms(inv, ctx, g.first_line)
    line_times = [(_event_ms(ev, ctx, line), ev, line) for ev, line in g.events]
    if ts is None:
        known = [t for t, _, _ in line_times if t is not None]
        ts = min(known) if known else None
    if not ctx.in_window(ts):
        ctx.report.filtered += 1 + len(g.events)
        return
    key = f"workers_logs\0{g.script or ''}\0{g.request_id}" if g.request_id else None
    if key is None:
        only = inv if inv is not None else g.events[0][0]
        inv_id = record_id(canonical_bytes(only))
    else:
        inv_id = record_id(key.encode())

    n_logs = n_exc = 0
    truncated = False
    first = inv if inv is not None else g.events[0][0]
    for t, ev, _line in line_times:
        meta, workers = _d(ev.get("$metadata")), _d(ev.get("$workers"))
        truncated = truncated or workers.get("truncated") is True
        payload = _payload(ev)
        pd_ = _d(payload)
        exc = pd_.get("exception")
        if isinstance(exc, dict):
            n_exc += 1
            if "exceptions" in ctx.frames:
                msg = exc.get("message")
                rows.add_exception(
                    invocation_id=inv_id,
                    ts=_exc_ms(exc, t, ctx.ts_hi),
                    name=_s(exc.get("name")),
                    message=msg if isinstance(msg, str) or msg is None else canonical_bytes(msg).decode(),
                    stack=_s(exc.get("stack")),
                )
            continue
        n_logs += 1
        if "logs" not in ctx.frames:
            continue
        level = _s(meta.get("level")) or _s(ev.get("level")) or _s(pd_.get("level"))
        if isinstance(payload, str):
            message: str | None = payload
            job = lift_job_fields(payload)
        elif isinstance(payload, dict):
            body = payload
            inner = body.get("message")
            only_message = set(body) <= {"message"}
            if only_message and isinstance(inner, str):
                message = inner
                job = lift_job_fields(inner)
            else:
                message = _s(meta.get("message")) or join_args(body)
                job = job_fields_of(body)
                if job == (None, None, None, None) and isinstance(inner, str):
                    job = lift_job_fields(inner)
        else:
            message = join_args(payload) if payload is not None else _s(meta.get("message"))
            job = lift_job_fields(payload)
        rows.add_log(
            invocation_id=inv_id,
            ts=t,
            level=level,
            message=message,
            args=None if payload is None else canonical_bytes(payload).decode(),
            job_id=job[0],
            job_type=job[1],
            attempt=job[2],
            message_id=job[3],
        )

    workers = _d(first.get("$workers"))
    meta = _d(first.get("$metadata"))
    event = _d(workers.get("event"))
    request = _d(event.get("request"))
    response = _d(event.get("response"))
    etype = _s(workers.get("eventType"))
    trigger = EVENT_TYPES.get(etype or "", "unknown")
    if etype is not None and etype not in EVENT_TYPES:
        ctx.issue(
            "variant",
            f"unknown $workers.eventType {etype!r}; loaded with trigger 'unknown'",
            line=g.first_line,
            expected=f"one of {sorted(EVENT_TYPES)}",
            severity="warning",
        )
    outcome = _s(_d(inv.get("$workers")).get("outcome")) if inv is not None else None
    if outcome is None:
        outcomes = {_s(_d(ev.get("$workers")).get("outcome")) for ev, _ in g.events} - {None}
        outcome = outcomes.pop() if len(outcomes) == 1 else None
    inv_workers = _d(inv.get("$workers")) if inv is not None else {}
    version = _d(workers.get("scriptVersion"))
    rows.add_invocation(
        invocation_id=inv_id,
        ts=ts,
        script=g.script,
        script_version=_s(version.get("id")),
        trigger=trigger,
        queue=_s(event.get("queue")),
        batch_size=_i(event.get("batchSize")),
        outcome=outcome,
        failed=failed_of(outcome, n_exc),
        cpu_ms=_f(inv_workers.get("cpuTimeMs")),
        wall_ms=_f(inv_workers.get("wallTimeMs")),
        n_logs=n_logs,
        n_exceptions=n_exc,
        truncated=truncated or inv_workers.get("truncated") is True,
        url=_s(request.get("url")) or _s(meta.get("url")),
        method=_s(request.get("method")),
        status=_i(response.get("status")) or _i(meta.get("statusCode")),
        entrypoint=_s(workers.get("entrypoint")),
        dispatch_namespace=_s(inv_workers.get("dispatchNamespace")) or None,
        request_id=g.request_id,
        ray_id=_s(meta.get("rayId")) or _ray_of(g),
    )
    ctx.report.invocations += 1
    ctx.report.logs += n_logs
    ctx.report.exceptions += n_exc


def _ray_of(g: _Group) -> str | None:
    """The ``$metadata.rayId`` of any line of the invocation (fetch invocations carry one)."""
    for ev, _line in g.events:
        ray = _s(_d(ev.get("$metadata")).get("rayId"))
        if ray:
            return ray
    return None


def _exc_ms(exc: dict[str, Any], fallback: int | None, hi: int) -> int | None:
    ms = parse_ms(exc.get("timestamp"), MS_ONLY, hi)
    return ms if isinstance(ms, int) else fallback


def events_to_tables(events: Iterable[Any], ctx: FileContext) -> dict[str, pa.Table]:
    rows = Rows()
    add_events(events, rows, ctx)
    return rows.to_tables(ctx.source, ctx.path)


def workers_logs_events_to_frames(
    events: Iterable[Mapping[str, Any]],
    source_file: str,
    *,
    source: str = "workers_logs",
    since: Any = None,
    until: Any = None,
    strict: bool = False,
    report: FileReport | None = None,
) -> dict[str, pd.DataFrame]:
    """Map Workers Logs events (query-API or dashboard shape) to the canonical frames.

    Returns ``{"invocations", "logs", "exceptions"}`` as conformed DataFrames. ``source_file`` is
    recorded in ``invocations.source_file`` (a file path or the API URL). Problems go to ``report``
    (a :class:`~edgeinvestigate.models.load_report.FileReport`, created when not given) or, with
    ``strict=True``, raise :class:`~edgeinvestigate.errors.ParseError`.
    """
    from edgeinvestigate._time import parse_time
    from edgeinvestigate.models.frames import conform

    s, u = parse_time(since, name="since"), parse_time(until, name="until")
    ctx = FileContext(
        path=source_file,
        source=source,
        since_ms=None if s is None else int(s.value // 1_000_000),
        until_ms=None if u is None else int(u.value // 1_000_000),
        strict=strict,
        report=report if report is not None else FileReport(path=source_file, source=source),
    )
    tables = events_to_tables(events, ctx)
    return {name: conform(t, name) for name, t in tables.items()}


def load_workers_logs_export(path: Path, ctx: FileContext) -> dict[str, pa.Table]:
    """Load a Workers Logs dashboard export (array, concatenated pretty objects, NDJSON) or saved query."""
    data = read_bytes(path, ctx)
    events: list[Any] = []
    lines: list[int] = []
    for value, line, _raw in iter_documents(data, ctx):
        for ev in _unwrap(value):
            events.append(ev)
            lines.append(line)
    rows = Rows()
    add_events(events, rows, ctx, lines)
    return rows.to_tables(ctx.source, ctx.path)
