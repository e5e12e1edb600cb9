"""Workers Logs from the Workers Observability query API, as canonical frames.

>>> wl = workers_logs_frames(client, "jobs-consumer", since="-2h")       # doctest: +SKIP
>>> counts = workers_logs_counts(client, "jobs-consumer", since="-7d")    # doctest: +SKIP

:func:`workers_logs_frames` queries ``POST …/workers/observability/telemetry/query`` with
``view: "events"`` (the API's default view is ``calculations``) and a ``$workers.scriptName`` filter,
and pages with ``offset`` (the ``$metadata.id`` of the last event of a page) until the window is
exhausted. Events are mapped exactly like a dashboard export is
(:func:`edgeinvestigate.sources.files.workers_logs_events_to_frames`): ``cf-worker-event`` lines become
invocations (with CPU and wall time), ``cf-worker`` lines become log rows. The evidence bundle of
them is :func:`edgeinvestigate.load_workers_logs` (:mod:`edgeinvestigate.evidence.workers_logs`).

For windows of days, :func:`workers_logs_counts` asks the server for error counts per time bucket
and per script version (the ``calculations`` view) instead of fetching every raw event.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from edgeinvestigate._time import parse_time
from edgeinvestigate.errors import ConfigError
from edgeinvestigate.models.load_report import FileReport, LoadReport
from edgeinvestigate.sources.files import workers_logs_events_to_frames

if TYPE_CHECKING:
    from edgeinvestigate.cloudflare.client import CloudflareClient

__all__ = [
    "MAX_LIMIT",
    "SOURCE",
    "WorkersLogsFrames",
    "events_query",
    "query_events",
    "workers_logs_counts",
    "workers_logs_frames",
]

log = logging.getLogger(__name__)

MAX_LIMIT = 2000
SOURCE = "workers_logs_api"
DATASET = "cloudflare-workers"
DEFAULT_WINDOW = timedelta(hours=1)


def _window(since: Any, until: Any) -> tuple[pd.Timestamp, pd.Timestamp]:
    u = parse_time(until, name="until") or pd.Timestamp(datetime.now(UTC))
    s = parse_time(since, name="since") or (u - DEFAULT_WINDOW)
    if s >= u:
        raise ConfigError(f"since ({s}) is not before until ({u})", hint="swap --since and --until")
    return s, u


def _ms(ts: pd.Timestamp) -> int:
    return int(ts.value // 1_000_000)


def _script_filter(script: str) -> dict[str, Any]:
    return {"key": "$workers.scriptName", "operation": "eq", "type": "string", "value": script}


def events_query(
    script: str,
    since_ms: int,
    until_ms: int,
    *,
    limit: int = MAX_LIMIT,
    offset: str | None = None,
    filters: Sequence[Mapping[str, Any]] = (),
    needle: str | None = None,
) -> dict[str, Any]:
    """The request body of one ``view: "events"`` page."""
    body: dict[str, Any] = {
        "queryId": f"edgeinvestigate-events-{uuid.uuid4().hex[:12]}",
        "timeframe": {"from": since_ms, "to": until_ms},
        "view": "events",
        "limit": limit,
        "dry": True,
        "parameters": {
            "datasets": [DATASET],
            "filters": [_script_filter(script), *(dict(f) for f in filters)],
            "filterCombination": "and",
        },
    }
    if needle:
        body["parameters"]["needle"] = {"value": needle, "isRegex": False, "matchCase": False}
    if offset is not None:
        body["offset"] = offset
        body["offsetDirection"] = "next"
    return body


def _events_of(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    events: Any = result.get("events")
    if isinstance(events, Mapping):
        events = events.get("events")
    if not isinstance(events, list):
        return []
    return [e for e in events if isinstance(e, Mapping)]


def _event_id(event: Mapping[str, Any]) -> str | None:
    meta = event.get("$metadata")
    if isinstance(meta, Mapping) and isinstance(meta.get("id"), str):
        return str(meta["id"])
    return None


def query_events(
    client: CloudflareClient,
    script: str,
    since: Any = None,
    until: Any = None,
    *,
    limit: int = MAX_LIMIT,
    max_events: int | None = None,
    filters: Sequence[Mapping[str, Any]] = (),
    needle: str | None = None,
) -> tuple[list[Mapping[str, Any]], dict[str, Any]]:
    """Every event of ``script`` in the window, paging by ``offset``; returns (events, stats)."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ConfigError(
            f"Workers Logs limit {limit} is out of range", hint=f"use a page size from 1 to {MAX_LIMIT}"
        )
    s, u = _window(since, until)
    since_ms, until_ms = _ms(s), _ms(u)
    events: list[Mapping[str, Any]] = []
    seen: set[str] = set()
    offset: str | None = None
    pages = 0
    stopped = "exhausted"
    while True:
        page_limit = limit if max_events is None else min(limit, max_events - len(events))
        if page_limit <= 0:
            stopped = "max_events"
            break
        body = events_query(
            script, since_ms, until_ms, limit=page_limit, offset=offset, filters=filters, needle=needle
        )
        result = client.telemetry_query(body)
        page = _events_of(result)
        pages += 1
        new = 0
        for ev in page:
            eid = _event_id(ev)
            if eid is not None:
                if eid in seen:
                    continue
                seen.add(eid)
            events.append(ev)
            new += 1
        log.debug("workers logs page %d: %d events (%d new), %d total", pages, len(page), new, len(events))
        if len(page) < page_limit:
            break
        last = _event_id(page[-1])
        if last is None or last == offset or new == 0:
            stopped = "no progress (the server returned the same page again)"
            log.warning("Workers Logs paging for %r stopped: %s", script, stopped)
            break
        offset = last
    stats = {
        "script": script,
        "since": s.isoformat(),
        "until": u.isoformat(),
        "events": len(events),
        "pages": pages,
        "page_limit": limit,
        "stopped": stopped,
    }
    return events, stats


@dataclass
class WorkersLogsFrames:
    """The Workers Logs of one script as canonical frames, with what was read (``report``) and how.

    ``frames``: ``invocations``, ``logs``, ``exceptions`` (conformed); ``source_file``: the query
    URL (recorded in ``invocations.source_file``); ``stats``: the window and paging of the query
    (``script, since, until, events, pages, page_limit, stopped``).
    """

    frames: dict[str, pd.DataFrame]
    report: LoadReport
    source_file: str
    stats: dict[str, Any] = field(default_factory=dict)


def workers_logs_frames(
    client: CloudflareClient,
    script: str,
    since: Any = None,
    until: Any = None,
    limit: int = MAX_LIMIT,
    *,
    max_events: int | None = None,
    filters: Sequence[Mapping[str, Any]] = (),
    needle: str | None = None,
    strict: bool = False,
) -> WorkersLogsFrames:
    """Workers Logs of ``script`` between ``since`` and ``until`` (default: the last hour) as frames.

    ``limit`` is the page size (at most 2000); ``max_events`` caps the total; ``filters`` are extra
    query filters (``{key, operation, type, value}``); ``needle`` is a full-text search. Events are
    mapped like a dashboard export (:func:`~edgeinvestigate.sources.files.workers_logs_events_to_frames`).
    """
    events, stats = query_events(
        client, script, since, until, limit=limit, max_events=max_events, filters=filters, needle=needle
    )
    source_file = f"{client.api_url}/accounts/{client.account_id}/workers/observability/telemetry/query"
    report = FileReport(path=source_file, source=SOURCE)
    frames = workers_logs_events_to_frames(
        events,
        source_file,
        source=SOURCE,
        since=stats["since"],
        until=stats["until"],
        strict=strict,
        report=report,
    )
    load_report = LoadReport(files=[report])
    if stats["stopped"] != "exhausted":
        load_report.notes.append(f"Workers Logs for {script!r}: stopped early ({stats['stopped']})")
    return WorkersLogsFrames(frames=frames, report=load_report, source_file=source_file, stats=stats)


# ---------------------------------------------------------------------------------------------
# server-side counts (calculations view)

ERROR_FILTER: dict[str, Any] = {
    "kind": "group",
    "filterCombination": "or",
    "filters": [
        {"key": "$metadata.level", "operation": "eq", "type": "string", "value": "error"},
        {"key": "$metadata.error", "operation": "exists", "type": "string", "value": ""},
        {
            "key": "$workers.outcome",
            "operation": "in",
            "type": "string",
            "value": "exception,exceededCpu,exceededMemory,exceededWallTime,canceled,unknown",
        },
    ],
}
VERSION_KEY = "$workers.scriptVersion.id"


def counts_query(script: str, since_ms: int, until_ms: int, granularity: int | None) -> dict[str, Any]:
    """The request body of the error-count ``calculations`` query."""
    body: dict[str, Any] = {
        "queryId": f"edgeinvestigate-counts-{uuid.uuid4().hex[:12]}",
        "timeframe": {"from": since_ms, "to": until_ms},
        "view": "calculations",
        "dry": True,
        "chart": True,
        "parameters": {
            "datasets": [DATASET],
            "filters": [_script_filter(script), ERROR_FILTER],
            "filterCombination": "and",
            "calculations": [{"operator": "count", "alias": "errors"}],
            "groupBys": [{"type": "string", "value": VERSION_KEY}],
        },
    }
    if granularity is not None:
        body["granularity"] = granularity
    return body


def _bucket_time(text: Any) -> pd.Timestamp | None:
    if text is None:
        return None
    try:
        ts = pd.Timestamp(str(text).replace(" ", "T"))
    except (ValueError, TypeError):
        return None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def workers_logs_counts(
    client: CloudflareClient,
    script: str,
    since: Any = None,
    until: Any = None,
    granularity: int | None = None,
) -> pd.DataFrame:
    """Error counts per time bucket and script version, computed by the server.

    Columns: ``ts`` (bucket start, UTC), ``script``, ``script_version`` (null when the events had
    none), ``errors``. ``granularity`` is the number of buckets (the server chooses when omitted).
    """
    s, u = _window(since, until)
    result = client.telemetry_query(counts_query(script, _ms(s), _ms(u), granularity))
    rows: list[tuple[pd.Timestamp | None, str | None, float]] = []
    calcs = result.get("calculations")
    for calc in calcs if isinstance(calcs, list) else []:
        if not isinstance(calc, Mapping):
            continue
        for point in calc.get("series") or []:
            if not isinstance(point, Mapping):
                continue
            ts = _bucket_time(point.get("time"))
            for datum in point.get("data") or []:
                if not isinstance(datum, Mapping):
                    continue
                version = None
                for g in datum.get("groups") or []:
                    if (
                        isinstance(g, Mapping)
                        and g.get("key") == VERSION_KEY
                        and g.get("value") not in (None, "")
                    ):
                        version = str(g["value"])
                value = datum.get("value", datum.get("count"))
                rows.append((ts, version, float(value) if isinstance(value, int | float) else 0.0))
    table = pa.table(
        {
            "ts": pa.array([r[0] for r in rows], type=pa.timestamp("ms", tz="UTC")),
            "script": pa.array([script] * len(rows), type=pa.string()),
            "script_version": pa.array([r[1] for r in rows], type=pa.string()),
            "errors": pa.array([int(r[2]) for r in rows], type=pa.int64()),
        }
    )
    df = table.to_pandas(types_mapper=pd.ArrowDtype)
    return df.sort_values(["ts", "script_version"], na_position="last", kind="stable").reset_index(drop=True)
