"""Filter, group, order and limit the sandbox's stored analytics rows like the four datasets do.

Rows are per minute (:mod:`._analytics`). A group's dimensions are the ones the query selected under
``dimensions``; ``datetime`` is the minute (the sandbox keeps nothing finer). Time filters compare the
minute's start, so a bound inside a minute keeps or drops that whole minute (the client asks for whole
minutes or hours). Aggregates: ``count`` and ``sum`` add up; ``avg`` of the operations dataset is
weighted by ``count``; ``avg`` of the backlog and concurrency datasets is the mean of the samples;
``max { messageSize }`` the largest. ``quantiles`` of ``workersInvocationsAdaptive`` (stored per minute,
script and status, as loaded) are passed through for one row and, for a group of several rows,
approximated: the requests-weighted mean of the P50s and the largest P99.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from edgeinvestigate.models.analytics import BACKLOG, CONSUMERS, INVOCATIONS, OPERATIONS, format_time

__all__ = ["DIMENSIONS", "QueryLimitError", "group_rows", "time_bounds"]

DIMENSIONS: dict[str, tuple[str, ...]] = {
    BACKLOG: ("queueId", "datetime", "date", "datetimeHour", "datetimeMinute"),
    CONSUMERS: ("queueId", "datetime", "date", "datetimeHour", "datetimeMinute"),
    OPERATIONS: (
        "queueId", "actionType", "consumerType", "outcome", "datetime", "date", "datetimeHour",
        "datetimeMinute",
    ),
    INVOCATIONS: ("scriptName", "status", "datetime", "date", "datetimeHour", "datetimeMinute"),
}  # fmt: skip
_TIMES = ("datetime", "datetimeMinute", "datetimeHour")
_OPS = ("gt", "geq", "lt", "leq", "neq", "in", "like")


class QueryLimitError(Exception):
    """A dataset limit was passed (answered like the API: HTTP 400 or 200 with errors)."""


def _facts(dataset: str, row: sqlite3.Row) -> dict[str, Any]:
    minute = datetime.fromtimestamp(int(row["minute_ms"]) / 1000, tz=UTC)
    facts: dict[str, Any] = {
        "datetime": minute,
        "datetimeMinute": minute,
        "datetimeHour": minute.replace(minute=0),
        "date": minute.date(),
    }
    if dataset == INVOCATIONS:
        facts |= {"scriptName": row["script"], "status": row["status"]}
    else:
        facts["queueId"] = row["queue_id"]
    if dataset == OPERATIONS:
        facts |= {
            "actionType": row["action"],
            "consumerType": row["consumer_type"],
            "outcome": row["outcome"],
        }
    return facts


def _like(value: str, pattern: str) -> bool:
    import fnmatch

    return fnmatch.fnmatchcase(value, pattern.replace("%", "*"))


def _compare(value: Any, op: str, want: Any) -> bool:
    if isinstance(value, datetime) and isinstance(want, date) and not isinstance(want, datetime):
        value = value.date()
    if op == "":
        return bool(value == want)
    if op == "neq":
        return bool(value != want)
    if op == "in":
        return value in (want or [])
    if op == "like":
        return _like(str(value), str(want))
    return bool({"gt": value > want, "geq": value >= want, "lt": value < want, "leq": value <= want}[op])


def _matches(facts: Mapping[str, Any], flt: Mapping[str, Any] | None) -> bool:
    if not flt:
        return True
    for key, want in flt.items():
        if want is None:
            continue
        if key == "AND":
            if not all(_matches(facts, f) for f in want):
                return False
            continue
        if key == "OR":
            if want and not any(_matches(facts, f) for f in want):
                return False
            continue
        name, _, op = key.rpartition("_") if key.rpartition("_")[2] in _OPS else (key, "", "")
        if not _compare(facts[name], op, want):
            return False
    return True


def time_bounds(flt: Mapping[str, Any] | None) -> tuple[datetime | None, datetime | None]:
    """The earliest and latest time the top level of a filter allows (``None``: open)."""
    lo: datetime | None = None
    hi: datetime | None = None
    for key, value in (flt or {}).items():
        name, _, op = key.rpartition("_")
        if name == "date" and isinstance(value, date):
            value = datetime(value.year, value.month, value.day, tzinfo=UTC)
        elif name not in _TIMES or not isinstance(value, datetime):
            continue
        if op in ("gt", "geq"):
            lo = value if lo is None else max(lo, value)
        elif op in ("lt", "leq"):
            hi = value if hi is None else min(hi, value)
    return lo, hi


def _dim_value(name: str, value: Any) -> Any:
    if isinstance(value, datetime):
        return format_time(value)
    if isinstance(value, date):
        return value.isoformat()
    return value


def _aggregate(dataset: str, rows: list[sqlite3.Row]) -> dict[str, Any]:
    if dataset == OPERATIONS:
        n = sum(int(r["count"]) for r in rows)
        return {
            "count": n,
            "sum": {
                "billableOperations": sum(int(r["billable"]) for r in rows),
                "bytes": sum(int(r["bytes"]) for r in rows),
            },
            "avg": {
                "lagTime": sum(float(r["lag_sum"]) for r in rows) / n if n else 0.0,
                "retryCount": sum(float(r["retry_sum"]) for r in rows) / n if n else 0.0,
            },
            "max": {"messageSize": max(int(r["max_size"]) for r in rows)},
        }
    if dataset == INVOCATIONS:
        requests = sum(int(r["requests"]) for r in rows)
        p50s = [(float(r["cpu_p50"]), int(r["requests"])) for r in rows if r["cpu_p50"] is not None]
        p99s = [float(r["cpu_p99"]) for r in rows if r["cpu_p99"] is not None]
        weight = sum(w for _, w in p50s)
        p50 = (
            p50s[0][0]
            if len(p50s) == 1
            else (sum(v * w for v, w in p50s) / weight if weight else (p50s[0][0] if p50s else 0.0))
        )
        return {
            "sum": {
                "requests": requests,
                "errors": sum(int(r["errors"]) for r in rows),
                "subrequests": sum(int(r["subrequests"]) for r in rows),
            },
            "quantiles": {"cpuTimeP50": p50, "cpuTimeP99": max(p99s) if p99s else 0.0},
        }
    n = sum(int(r["n"]) for r in rows)
    a = sum(float(r["sum_a"]) for r in rows) / n if n else 0.0
    if dataset == CONSUMERS:
        return {"avg": {"concurrency": a}}
    b = sum(float(r["sum_b"]) for r in rows) / n if n else 0.0
    return {"avg": {"messages": a, "bytes": b}}


def _order_key(group: dict[str, Any], field: str) -> Any:
    if field in group["dimensions"]:
        return group["dimensions"][field]
    if field == "count":
        return group.get("count", 0)
    block, _, name = field.partition("_")
    value = (group.get(block) or {}).get(name)
    if value is None:
        raise QueryLimitError(
            f"error parsing args: orderBy {field} is neither a selected dimension nor an aggregate"
        )
    return value


def group_rows(
    dataset: str,
    rows: Sequence[sqlite3.Row],
    dims: Sequence[str],
    flt: Mapping[str, Any] | None,
    order: Sequence[str] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """The groups of ``dataset`` for the selected ``dims`` (API-shaped dicts), filtered and ordered."""
    buckets: dict[tuple[Any, ...], list[sqlite3.Row]] = {}
    for row in rows:
        facts = _facts(dataset, row)
        if not _matches(facts, flt):
            continue
        key = tuple(_dim_value(d, facts[d]) for d in dims)
        buckets.setdefault(key, []).append(row)
    groups = []
    for key in sorted(buckets, key=lambda k: tuple(str(v) for v in k)):
        group = _aggregate(dataset, buckets[key])
        group["dimensions"] = dict(zip(dims, key, strict=True))
        groups.append(group)
    for item in reversed(list(order or [])):
        field, _, direction = str(item).rpartition("_")

        def order_key(g: dict[str, Any], f: str = field) -> Any:
            return _order_key(g, f)

        groups.sort(key=order_key, reverse=direction == "DESC")
    return groups[:limit]
