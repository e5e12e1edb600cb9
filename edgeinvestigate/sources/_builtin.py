"""The built-in telemetry sources: the file loaders and what their first JSON value looks like.

:mod:`edgeinvestigate.sources.registry` starts with these; the order matters only for sniffing
(the first match wins).
"""

from __future__ import annotations

from typing import Any, Final

from edgeinvestigate.sources._source import Source
from edgeinvestigate.sources.files import (
    load_logpush,
    load_tail,
    load_traceitems,
    load_workers_logs_export,
)

__all__ = ["BUILTIN_SOURCES"]

_LOGPUSH_KEYS: Final = frozenset(
    {
        "EventTimestampMs",
        "Outcome",
        "ScriptName",
        "EventType",
        "Logs",
        "Exceptions",
        "CPUTimeMs",
        "WallTimeMs",
    }
)
_TRACE_KEYS: Final = frozenset(
    {"eventTimestamp", "outcome", "scriptName", "logs", "exceptions", "event", "cpuTime", "wallTime"}
)


def _is_logpush(v: Any) -> bool:
    return isinstance(v, dict) and bool(_LOGPUSH_KEYS & v.keys())


def _is_workers_logs(v: Any) -> bool:
    if isinstance(v, list):
        return bool(v) and _is_workers_logs(v[0])
    if not isinstance(v, dict):
        return False
    if "$metadata" in v or "$workers" in v:
        return True
    result = v.get("result", v.get("data"))
    return isinstance(result, dict) and ("events" in result or "invocations" in result)


def _is_trace(v: Any) -> bool:
    return isinstance(v, dict) and len(_TRACE_KEYS & v.keys()) >= 2


def _is_traceitems(v: Any) -> bool:
    if isinstance(v, list):
        return bool(v) and _is_trace(v[0])
    return isinstance(v, dict) and isinstance(v.get("events"), list) and "outcome" not in v


def _is_tail(v: Any) -> bool:
    return _is_trace(v) or (isinstance(v, dict) and v.get("type") in ("overload", "overload-stop"))


BUILTIN_SOURCES: Final = (
    Source(
        "logpush",
        load_logpush,
        _is_logpush,
        "Logpush workers_trace_events NDJSON (plain or gzip): a file or a YYYYMMDD tree",
        parallel=True,
    ),
    Source(
        "workers_logs_export",
        load_workers_logs_export,
        _is_workers_logs,
        "Workers Logs dashboard export or saved query-API events ($metadata/$workers)",
    ),
    Source(
        "traceitems",
        load_traceitems,
        _is_traceitems,
        "Tail Worker TraceItem arrays: JSON array, JSONL, or {receivedAt, events} lines",
    ),
    Source(
        "tail",
        load_tail,
        _is_tail,
        "wrangler tail --format json output (pretty objects, 2 or 4 spaces, or NDJSON)",
    ),
)
