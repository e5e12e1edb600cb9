"""Queue and Worker analytics from the GraphQL Analytics API (or a saved answer) into frames.

>>> m = queue_metrics_frames(client, ["jobs"], "-2h", None, scripts=["jobs-consumer"])  # doctest: +SKIP
>>> m.frames["queue_backlog"], m.frames["queue_operations"], m.notes                   # doctest: +SKIP

Frames (``models.analytics.METRIC_FRAMES``): ``queue_backlog`` (ts, queue, messages, bytes: the bucket's
average), ``queue_operations`` (ts, queue, action, consumer_type, outcome, count, bytes, lag_ms,
retries), ``queue_consumers`` (ts, queue, concurrency), ``worker_invocations`` (ts, script, status,
requests, errors, subrequests, cpu_p50_ms, cpu_p99_ms). ``queue`` is the queue's name when known (else
its id); dimensions that do not apply (``consumerType`` of a write, ``outcome`` of a read) are null.

How the window is read: buckets of one minute for windows up to 6 hours, one hour beyond; the window is
widened to whole buckets. The ``settings`` node gives each dataset's limits (``maxDuration``,
``maxPageSize``, ``notOlderThan``, ``enabled``; defaults when the node cannot be read, with a note): the
window is cut into chunks that fit them, a chunk whose answer fills a page is split in two and asked
again, and a window older than ``notOlderThan`` is shortened with a note.

**An empty answer is "no data", never zero**: a queue (or script) for which a dataset returned no group
at all has no rows in that frame, and ``manifest["no_data"]`` and a note name it. Values are estimates
(adaptive sampling: ``models.analytics.ESTIMATE_NOTE``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from edgeinvestigate._time import parse_time
from edgeinvestigate.errors import ConfigError, GraphQLQueryError, LoadError
from edgeinvestigate.models.analytics import (
    BACKLOG,
    CONSUMERS,
    ESTIMATE_NOTE,
    INVOCATIONS,
    OPERATIONS,
    QUEUE_DATASETS,
    cpu_time_ms,
    format_time,
    parse_time_value,
)
from edgeinvestigate.models.frames import conform, empty_frame
from edgeinvestigate.sources.api._analytics_queries import SETTINGS_QUERY, queue_query, workers_query

if TYPE_CHECKING:
    from edgeinvestigate.cloudflare.client import CloudflareClient

__all__ = [
    "MINUTE_WINDOW",
    "MetricsFrames",
    "metrics_from_responses",
    "queue_metrics_frames",
    "read_metrics_file",
]

log = logging.getLogger(__name__)

#: windows up to this long are read per minute, longer ones per hour
MINUTE_WINDOW = pd.Timedelta(hours=6)
DEFAULT_LIMITS = {"enabled": True, "maxDuration": 86_400, "maxPageSize": 10_000, "notOlderThan": 2_678_400}
#: groups one bucket of one queue can have in queueMessageOperationsAdaptiveGroups (write, reads by
#: consumer type, deletes by consumer type and outcome) and one script in workersInvocationsAdaptive
_OPS_PER_BUCKET = 9
_STATUSES_PER_BUCKET = 5
_ALIAS = {BACKLOG: "backlog", CONSUMERS: "consumers", OPERATIONS: "operations", INVOCATIONS: "invocations"}
_FRAME = {
    BACKLOG: "queue_backlog",
    CONSUMERS: "queue_consumers",
    OPERATIONS: "queue_operations",
    INVOCATIONS: "worker_invocations",
}


@dataclass
class MetricsFrames:
    """The analytics frames of one collection, what was asked (``manifest``) and what to know (``notes``)."""

    frames: dict[str, pd.DataFrame]
    manifest: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def _bucket_of(since: pd.Timestamp, until: pd.Timestamp) -> tuple[str, pd.Timedelta]:
    if until - since <= MINUTE_WINDOW:
        return "datetimeMinute", pd.Timedelta(minutes=1)
    return "datetimeHour", pd.Timedelta(hours=1)


def _limits(client: CloudflareClient, notes: list[str]) -> dict[str, dict[str, Any]]:
    try:
        data = client.graphql(SETTINGS_QUERY, {"accountTag": client.account_id})
        got = data["viewer"]["accounts"][0]["settings"]
        return {d: {**DEFAULT_LIMITS, **(got.get(d) or {})} for d in (*QUEUE_DATASETS, INVOCATIONS)}
    except (GraphQLQueryError, KeyError, IndexError, TypeError) as exc:
        notes.append(
            "The GraphQL `settings` node could not be read "
            f"({exc.message if isinstance(exc, GraphQLQueryError) else type(exc).__name__}); collect "
            f"assumed limits of {DEFAULT_LIMITS['maxDuration']}s per query and "
            f"{DEFAULT_LIMITS['maxPageSize']} groups."
        )
        return {d: dict(DEFAULT_LIMITS) for d in (*QUEUE_DATASETS, INVOCATIONS)}


def _chunks(
    start: pd.Timestamp, end: pd.Timestamp, step: pd.Timedelta
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    out = []
    t = start
    while t < end:
        out.append((t, min(t + step, end)))
        t += step
    return out


class _Reader:
    """Asks one kind of query over a window in chunks that fit the limits; splits a full page."""

    def __init__(self, client: CloudflareClient, query: Any, variables: dict[str, Any], bucket: pd.Timedelta):
        self.client = client
        self.query = query
        self.variables = variables
        self.bucket = bucket
        self.queries = 0
        self.truncated: list[str] = []

    def read(self, start: pd.Timestamp, end: pd.Timestamp, limit: int) -> dict[str, list[dict[str, Any]]]:
        self.queries += 1
        data = self.client.graphql(
            self.query(limit), {**self.variables, "start": format_time(start), "end": format_time(end)}
        )
        account = (data.get("viewer") or {}).get("accounts") or [{}]
        groups = {alias: list(rows or []) for alias, rows in (account[0] or {}).items()}
        if any(len(rows) >= limit for rows in groups.values()):
            if end - start <= self.bucket:
                self.truncated.append(f"{format_time(start)}..{format_time(end)}")
                return groups
            mid = start + ((end - start) / 2).floor(self.bucket) if (end - start) >= 2 * self.bucket else end
            mid = max(mid, start + self.bucket)
            left = self.read(start, mid, limit)
            right = self.read(mid, end, limit)
            return {a: left.get(a, []) + right.get(a, []) for a in set(left) | set(right)}
        return groups


def _window(since: Any, until: Any) -> tuple[pd.Timestamp, pd.Timestamp]:
    s, u = parse_time(since, name="since"), parse_time(until, name="until")
    if s is None:
        raise ConfigError(
            "queue and Worker metrics need the start of the window",
            hint="pass --since (e.g. --since -2h or --since 2026-11-27T14:00Z)",
        )
    u = u if u is not None else pd.Timestamp.now(tz="UTC")
    if s >= u:
        raise ConfigError(f"since ({s}) is not before until ({u})", hint="swap --since and --until")
    return s, u


def queue_metrics_frames(
    client: CloudflareClient,
    queues: Sequence[str] = (),
    since: Any = None,
    until: Any = None,
    *,
    scripts: Sequence[str] = (),
) -> MetricsFrames:
    """Read the backlog, operations and consumer concurrency of ``queues`` (names or ids) and the
    invocations of ``scripts`` for ``[since, until)`` (see the module docs)."""
    if not queues and not scripts:
        raise ConfigError("no queue and no script to read metrics for", hint="name --queue-metrics QUEUE")
    s, u = _window(since, until)
    bucket_dim, bucket = _bucket_of(s, u)
    start, end = s.floor(bucket), u.ceil(bucket)
    notes: list[str] = []
    limits = _limits(client, notes)
    ids = {q: client.queue_id(q) for q in queues}
    names = {qid: (q if q != qid else client.queue_name(qid)) for q, qid in ids.items()}
    groups: dict[str, list[dict[str, Any]]] = {}
    queries = 1
    truncated: list[str] = []
    plans: list[tuple[tuple[str, ...], Any, dict[str, Any], int]] = []
    if queues:
        plans.append(
            (
                QUEUE_DATASETS,
                lambda limit, ds=QUEUE_DATASETS: queue_query(bucket_dim, limit, ds),
                {"queueIds": sorted(set(ids.values()))},
                _OPS_PER_BUCKET * len(set(ids.values())),
            )
        )
    if scripts:
        plans.append(
            (
                (INVOCATIONS,),
                lambda limit: workers_query(bucket_dim, limit),
                {"scripts": sorted(set(scripts))},
                _STATUSES_PER_BUCKET * len(set(scripts)),
            )
        )
    for datasets, query, variables, per_bucket in plans:
        enabled = [d for d in datasets if limits[d].get("enabled", True)]
        for d in set(datasets) - set(enabled):
            notes.append(f"{d} is not enabled for this account (its plan): no data from it.")
        if not enabled:
            continue
        if tuple(enabled) != datasets and queues and datasets == QUEUE_DATASETS:
            query = lambda limit, ds=tuple(enabled): queue_query(bucket_dim, limit, ds)  # noqa: E731
        lim = {
            k: min(int(limits[d][k]) for d in enabled) for k in ("maxDuration", "maxPageSize", "notOlderThan")
        }
        first = start
        oldest = pd.Timestamp.now(tz="UTC") - pd.Timedelta(seconds=lim["notOlderThan"])
        if first < oldest:
            first = oldest.ceil(bucket)
            notes.append(
                f"{', '.join(enabled)} keep{'s' if len(enabled) == 1 else ''} "
                f"{lim['notOlderThan'] // 86400} days: "
                f"the metrics start at {format_time(first.to_pydatetime())}, not at "
                f"{format_time(start.to_pydatetime())}."
            )
        span = pd.Timedelta(seconds=lim["maxDuration"])
        per_page = max(1, lim["maxPageSize"] // max(1, per_bucket))
        step = (
            min(span, bucket * per_page).floor(bucket) if min(span, bucket * per_page) >= bucket else bucket
        )
        reader = _Reader(client, query, {"accountTag": client.account_id, **variables}, bucket)
        for a, b in _chunks(first, end, step):
            for alias, rows in reader.read(a, b, lim["maxPageSize"]).items():
                groups.setdefault(alias, []).extend(rows)
        queries += reader.queries
        truncated += reader.truncated
    out = _frames(
        groups, names, wanted=(QUEUE_DATASETS if queues else ()) + ((INVOCATIONS,) if scripts else ())
    )
    manifest = {
        "source": "graphql",
        "window": {"since": start.isoformat(), "until": end.isoformat()},
        "bucket_seconds": int(bucket.total_seconds()),
        "queues": {names[qid]: qid for qid in names},
        "scripts": sorted(set(scripts)),
        "queries": queries,
        "limits": limits,
        "estimates": True,
    }
    if truncated:
        notes.append(
            f"{len(truncated)} one-bucket answers filled a whole page ({lim['maxPageSize']} groups): "
            "some groups of those buckets may be missing."
        )
        manifest["truncated"] = truncated
    return _finish(out, manifest, notes, list(names.values()), list(scripts))


def _ts(dims: Mapping[str, Any]) -> Any:
    raw = dims.get("datetimeMinute") or dims.get("datetimeHour") or dims.get("datetime") or dims.get("date")
    if raw is None:
        return None
    try:
        if len(str(raw)) == 10:
            return pd.Timestamp(str(raw), tz="UTC")
        return pd.Timestamp(parse_time_value(str(raw)))
    except ValueError as exc:
        raise LoadError(
            f"an analytics group has a time the API never writes: {exc}",
            hint="the answer must come from the GraphQL Analytics API unchanged (datetimeMinute like "
            "2026-11-27T14:05:00Z)",
        ) from None


def _blank(value: Any) -> Any:
    return None if value in ("", None) else str(value)


def _frames(
    groups: Mapping[str, list[dict[str, Any]]], names: Mapping[str, str], wanted: Sequence[str]
) -> dict[str, pd.DataFrame]:
    """Groups by alias (or dataset name) -> the conformed frames of the ``wanted`` datasets."""
    records: dict[str, list[dict[str, Any]]] = {_FRAME[d]: [] for d in wanted}
    for key, rows in groups.items():
        dataset = next((d for d, a in _ALIAS.items() if key in (a, d)), None)
        if dataset is None or _FRAME[dataset] not in records:
            continue
        target = records[_FRAME[dataset]]
        for g in rows:
            dims = g.get("dimensions") or {}
            avg, total = g.get("avg") or {}, g.get("sum") or {}
            ts = _ts(dims)
            if dataset == INVOCATIONS:
                q = g.get("quantiles") or {}
                target.append(
                    {
                        "ts": ts,
                        "script": _blank(dims.get("scriptName")),
                        "status": _blank(dims.get("status")),
                        "requests": total.get("requests"),
                        "errors": total.get("errors"),
                        "subrequests": total.get("subrequests"),
                        "cpu_p50_ms": cpu_time_ms(q.get("cpuTimeP50")),
                        "cpu_p99_ms": cpu_time_ms(q.get("cpuTimeP99")),
                    }
                )
                continue
            qid = str(dims.get("queueId", ""))
            row: dict[str, Any] = {"ts": ts, "queue": names.get(qid, qid) or None}
            if dataset == BACKLOG:
                row |= {"messages": avg.get("messages"), "bytes": avg.get("bytes")}
            elif dataset == CONSUMERS:
                row["concurrency"] = avg.get("concurrency")
            else:
                row |= {
                    "action": _blank(dims.get("actionType")),
                    "consumer_type": _blank(dims.get("consumerType")),
                    "outcome": _blank(dims.get("outcome")),
                    "count": g.get("count"),
                    "bytes": total.get("bytes"),
                    "lag_ms": avg.get("lagTime"),
                    "retries": avg.get("retryCount"),
                }
            target.append(row)
    out: dict[str, pd.DataFrame] = {}
    for name, rows in records.items():
        if not rows:
            out[name] = empty_frame(name)
            continue
        df = pd.DataFrame(rows)
        df["ts"] = pd.to_datetime(df["ts"], utc=True)
        keys = [
            c for c in ("ts", "queue", "script", "action", "consumer_type", "outcome", "status") if c in df
        ]
        out[name] = conform(df.sort_values(keys, kind="stable").reset_index(drop=True), name)
    return out


def _finish(
    frames: dict[str, pd.DataFrame],
    manifest: dict[str, Any],
    notes: list[str],
    queues: Sequence[str],
    scripts: Sequence[str],
) -> MetricsFrames:
    """Name every queue/script a dataset said nothing about: no data, not zero."""
    no_data: list[dict[str, str]] = []
    for frame_name, df in frames.items():
        owner, who = ("script", scripts) if frame_name == "worker_invocations" else ("queue", queues)
        seen = set(df[owner].astype(str)) if len(df) else set()
        for name in who:
            if name not in seen:
                no_data.append({"frame": frame_name, owner: name})
    if no_data:
        by_owner: dict[str, list[str]] = {}
        for item in no_data:
            key = item.get("queue") or item.get("script") or "?"
            by_owner.setdefault(key, []).append(item["frame"])
        for who_name, frame_names in by_owner.items():
            notes.append(
                f"No data for {who_name!r} in {', '.join(frame_names)}: Cloudflare returned no groups for "
                "the window (an idle queue returns none, and so does a name with no analytics). This is no "
                "data, not zero."
            )
    manifest["no_data"] = no_data
    notes.insert(0, ESTIMATE_NOTE)
    manifest["notes"] = list(notes)
    return MetricsFrames(frames=frames, manifest=manifest, notes=notes)


def metrics_from_responses(
    responses: Sequence[Mapping[str, Any]],
    *,
    queue_names: Mapping[str, str] | None = None,
    source: str = "",
) -> MetricsFrames:
    """Frames from GraphQL response bodies (``{"data": {"viewer": {"accounts": [{dataset or alias:
    [...]}]}}}``), e.g. saved from the dashboard or written by the simulator. ``queue_names`` maps ids to
    names; a response's ``extensions.edgeinvestigate.queues`` does too."""
    names = dict(queue_names or {})
    groups: dict[str, list[dict[str, Any]]] = {}
    for i, resp in enumerate(responses):
        where = f"{source or 'the analytics'} (answer {i + 1})"
        if not isinstance(resp, Mapping):
            raise LoadError(f"{where} is not a JSON object", hint="save the whole GraphQL response body")
        if resp.get("errors"):
            raise LoadError(
                f"{where} holds errors, not data: {json.dumps(resp['errors'])[:300]}",
                hint="save a response that succeeded (errors: null)",
            )
        ext = ((resp.get("extensions") or {}).get("edgeinvestigate") or {}).get("queues") or {}
        names.update({str(k): str(v) for k, v in ext.items()})
        accounts = ((resp.get("data") or {}).get("viewer") or {}).get("accounts")
        if not isinstance(accounts, list):
            raise LoadError(
                f"{where} is not a GraphQL Analytics response: no data.viewer.accounts list",
                hint='the file must hold the API\'s answer, {"data": {"viewer": {"accounts": [...]}}}',
            )
        for account in accounts:
            for key, rows in (account or {}).items():
                if isinstance(rows, list):
                    groups.setdefault(key, []).extend(rows)
    present = [d for d in (*QUEUE_DATASETS, INVOCATIONS) if d in groups or _ALIAS[d] in groups]
    frames = _frames(groups, names, present)
    times = [df["ts"] for df in frames.values() if len(df)]
    stamps = pd.concat(times) if times else pd.Series(dtype="datetime64[ns, UTC]")
    queues = sorted(
        {str(q) for n, df in frames.items() if n != "worker_invocations" for q in df["queue"].dropna()}
    )
    scripts = sorted(
        {str(s) for n, df in frames.items() if n == "worker_invocations" for s in df["script"].dropna()}
    )
    manifest = {
        "source": f"file:{source}" if source else "responses",
        "window": {
            "since": stamps.min().isoformat() if len(stamps) else None,
            "until": stamps.max().isoformat() if len(stamps) else None,
        },
        "bucket_seconds": _guess_bucket(stamps),
        "queues": {q: next((k for k, v in names.items() if v == q), q) for q in queues},
        "scripts": scripts,
        "estimates": True,
    }
    return _finish(frames, manifest, [], queues, scripts)


def _guess_bucket(stamps: pd.Series) -> int | None:
    if len(stamps) == 0:
        return None
    diffs = stamps.drop_duplicates().sort_values().diff().dropna()
    return int(diffs.min().total_seconds()) if len(diffs) else 60


def read_metrics_file(path: str | Path, *, queue_names: Mapping[str, str] | None = None) -> MetricsFrames:
    """A saved GraphQL answer (one response object, or a JSON array of them) as frames."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise LoadError(f"cannot read the analytics file {p}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise LoadError(
            f"the analytics file {p} is not JSON: {exc}",
            hint="save the GraphQL Analytics answer as it came (one JSON object, or an array of them)",
        ) from None
    responses = data if isinstance(data, list) else [data]
    return metrics_from_responses(responses, queue_names=queue_names, source=str(p))
