"""Workers Logs telemetry query (``POST .../workers/observability/telemetry/query``, reference C2).

Served over the events loaded with ``POST /__admin/accounts/{id}/telemetry/events``.

``view: "events"``: events with ``timeframe.from <= timestamp <= timeframe.to`` that pass
``parameters.filters`` (leaves and nested groups, every documented operation and alias),
``parameters.needle`` and ``parameters.datasets``; newest first (ties by ``$metadata.id``, descending).
``limit`` (default 50, max 2000) events per page; ``offset`` is the ``$metadata.id`` of the last event of
the previous page and ``offsetDirection: "next"`` (default) continues after it, ``"prev"`` returns the page
before it. An unknown offset id is a 400. ``events.count`` is the number of matching events in the whole
timeframe.

``view: "calculations"``: ``parameters.calculations`` (``count`` and the numeric operators), optional
``groupBys``, ``havings``, ``orderBy`` and ``granularity`` (number of time buckets; default 60). Each
calculation has ``aggregates`` (one per group) and ``series`` (one per bucket, ``time`` as
``"YYYY-MM-DD HH:MM:SS"`` UTC, ``interval`` the bucket width in seconds).
"""

from __future__ import annotations

import json
import math
import re
import statistics
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request

from edgeinvestigate.sandbox._context import SandboxContext
from edgeinvestigate.sandbox._endpoint import read_json
from edgeinvestigate.sandbox._envelope import SandboxHTTPError

__all__ = ["field_value", "filter_events", "run_query", "telemetry_query"]

_MISSING = object()
MAX_LIMIT = 2000
MAX_DEPTH = 4
MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
MAX_GRANULARITY = 1000

_OP_ALIASES = {
    "=": "eq",
    "!=": "neq",
    ">": "gt",
    ">=": "gte",
    "<": "lt",
    "<=": "lte",
    "INCLUDES": "includes",
    "DOES_NOT_INCLUDE": "not_includes",
    "MATCH_REGEX": "regex",
    "EXISTS": "exists",
    "DOES_NOT_EXIST": "is_null",
    "IN": "in",
    "NOT_IN": "not_in",
    "STARTS_WITH": "starts_with",
    "ENDS_WITH": "ends_with",
}
_OPS = {
    "includes",
    "not_includes",
    "starts_with",
    "ends_with",
    "regex",
    "exists",
    "is_null",
    "in",
    "not_in",
    "eq",
    "neq",
    "gt",
    "gte",
    "lt",
    "lte",
}


def _bad(detail: str) -> SandboxHTTPError:
    return SandboxHTTPError("invalid_query", detail)


def _walk(obj: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(obj, dict) and part in obj:
            obj = obj[part]
        else:
            return _MISSING
    return obj


def field_value(event: dict[str, Any], key: str) -> Any:
    """A filter key's value: ``$metadata.level``, ``$workers.scriptVersion.id``, or a field of ``source``."""
    parts = key.split(".")
    value = _walk(event, parts)
    if value is _MISSING and not key.startswith("$"):
        source = event.get("source")
        if isinstance(source, dict):
            value = _walk(source, parts)
    return value


def _as_number(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, int | float):
        return float(v)
    try:
        return float(str(v))
    except ValueError:
        return None


def _compare(op: str, actual: Any, expected: Any, vtype: str) -> bool:
    if op == "exists":
        return actual is not _MISSING and actual is not None
    if op == "is_null":
        return actual is _MISSING or actual is None
    if actual is _MISSING or actual is None:
        return op in ("neq", "not_includes", "not_in")
    if op in ("in", "not_in"):
        wanted = [s.strip() for s in str(expected).split(",")]
        hit = (
            str(actual).lower() in [w.lower() for w in wanted]
            if vtype == "boolean"
            else str(actual) in wanted
        )
        return hit if op == "in" else not hit
    if vtype == "number" and op in ("eq", "neq", "gt", "gte", "lt", "lte"):
        a, b = _as_number(actual), _as_number(expected)
        if a is None or b is None:
            return op == "neq"
        return {"eq": a == b, "neq": a != b, "gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b}[op]
    if vtype == "boolean" and op in ("eq", "neq"):
        same = str(actual).lower() == str(expected).lower()
        return same if op == "eq" else not same
    a_s = actual if isinstance(actual, str) else json.dumps(actual)
    b_s = str(expected) if not isinstance(expected, bool) else str(expected).lower()
    if op == "includes":
        return b_s in a_s
    if op == "not_includes":
        return b_s not in a_s
    if op == "starts_with":
        return a_s.startswith(b_s)
    if op == "ends_with":
        return a_s.endswith(b_s)
    if op == "regex":
        return re.search(b_s, a_s) is not None
    return {
        "eq": a_s == b_s,
        "neq": a_s != b_s,
        "gt": a_s > b_s,
        "gte": a_s >= b_s,
        "lt": a_s < b_s,
        "lte": a_s <= b_s,
    }[op]


Predicate = Callable[[dict[str, Any]], bool]


def _compile(node: Any, depth: int, where: str) -> Predicate:
    if not isinstance(node, dict):
        raise _bad(f"{where} must be an object")
    if node.get("kind") == "group":
        if depth >= MAX_DEPTH:
            raise _bad(f"{where}: filter groups nest at most {MAX_DEPTH} deep")
        return _compile_list(node.get("filters"), node.get("filterCombination", "and"), depth + 1, where)
    key, op, vtype = node.get("key"), node.get("operation"), node.get("type", "string")
    if not isinstance(key, str) or not key:
        raise _bad(f"{where}: 'key' is required")
    op = _OP_ALIASES.get(str(op), op)
    if op not in _OPS:
        raise _bad(f"{where}: unknown operation {node.get('operation')!r}")
    if vtype not in ("string", "number", "boolean"):
        raise _bad(f"{where}: type must be string, number or boolean")
    expected = node.get("value")
    if op not in ("exists", "is_null") and expected is None:
        raise _bad(f"{where}: operation {op!r} needs a 'value'")
    if op == "regex":
        try:
            re.compile(str(expected))
        except re.error as exc:
            raise _bad(f"{where}: bad regex {expected!r}: {exc}") from exc

    def predicate(event: dict[str, Any]) -> bool:
        return _compare(op, field_value(event, key), expected, vtype)

    return predicate


def _compile_list(nodes: Any, combination: Any, depth: int, where: str) -> Predicate:
    if nodes is None:
        nodes = []
    if not isinstance(nodes, list):
        raise _bad(f"{where}.filters must be a list")
    comb = str(combination or "and").lower()
    if comb not in ("and", "or"):
        raise _bad(f"{where}: filterCombination must be 'and' or 'or'")
    preds = [_compile(n, depth, f"{where}.filters[{i}]") for i, n in enumerate(nodes)]
    if not preds:
        return lambda e: True
    if comb == "and":
        return lambda e: all(p(e) for p in preds)
    return lambda e: any(p(e) for p in preds)


def _needle(params: dict[str, Any]) -> Predicate:
    needle = params.get("needle")
    if not needle:
        return lambda e: True
    if not isinstance(needle, dict) or "value" not in needle:
        raise _bad("parameters.needle must be {value, isRegex?, matchCase?}")
    value = str(needle["value"])
    flags = 0 if needle.get("matchCase") else re.IGNORECASE
    try:
        pattern = re.compile(value if needle.get("isRegex") else re.escape(value), flags)
    except re.error as exc:
        raise _bad(f"parameters.needle: bad regex {value!r}: {exc}") from exc
    return lambda e: pattern.search(json.dumps(e, ensure_ascii=False)) is not None


def filter_events(
    events: Iterable[dict[str, Any]], t_from: float, t_to: float, params: dict[str, Any]
) -> list[dict[str, Any]]:
    pred = _compile_list(params.get("filters"), params.get("filterCombination", "and"), 0, "parameters")
    needle = _needle(params)
    datasets = params.get("datasets") or []
    out = []
    for e in events:
        ts = e["timestamp"]
        if ts < t_from or ts > t_to:
            continue
        if datasets and e.get("dataset") not in datasets:
            continue
        if pred(e) and needle(e):
            out.append(e)
    return out


def _fields(events: list[dict[str, Any]]) -> list[dict[str, str]]:
    seen: dict[str, str] = {}

    def visit(prefix: str, obj: Any) -> None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                visit(f"{prefix}.{k}" if prefix else k, v)
        elif prefix and prefix not in seen:
            seen[prefix] = (
                "number"
                if isinstance(obj, int | float) and not isinstance(obj, bool)
                else ("boolean" if isinstance(obj, bool) else "string")
            )

    for e in events:
        visit("$metadata", e.get("$metadata"))
        visit("$workers", e.get("$workers"))
        if isinstance(e.get("source"), dict):
            visit("", e["source"])
    return [{"key": k, "type": t} for k, t in sorted(seen.items())]


def _page(matched: list[dict[str, Any]], limit: int, offset: Any, direction: str) -> list[dict[str, Any]]:
    if not offset:
        return matched[:limit]
    idx = next((i for i, e in enumerate(matched) if e["$metadata"]["id"] == offset), None)
    if idx is None:
        raise _bad(f"offset {offset!r} is not the $metadata.id of an event in this query's results")
    if direction == "prev":
        return matched[max(0, idx - limit) : idx]
    return matched[idx + 1 : idx + 1 + limit]


def _bucket_label(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _aggregate(operator: str, values: list[float], n_rows: int) -> float:
    op = operator.lower()
    if op == "count":
        return float(n_rows)
    if op in ("uniq", "count_distinct"):
        return float(len(set(values)))
    if not values:
        return 0.0
    if op == "sum":
        return float(sum(values))
    if op == "avg":
        return float(statistics.fmean(values))
    if op == "min":
        return float(min(values))
    if op == "max":
        return float(max(values))
    if op == "median":
        return float(statistics.median(values))
    if op in ("stddev", "variance"):
        if len(values) < 2:
            return 0.0
        return float(statistics.pstdev(values) if op == "stddev" else statistics.pvariance(values))
    quantiles = {
        "p001": 0.001,
        "p01": 0.01,
        "p05": 0.05,
        "p10": 0.1,
        "p25": 0.25,
        "p75": 0.75,
        "p90": 0.9,
        "p95": 0.95,
        "p99": 0.99,
        "p999": 0.999,
    }
    if op in quantiles:
        ordered = sorted(values)
        rank = math.ceil(quantiles[op] * len(ordered)) - 1
        return float(ordered[min(len(ordered) - 1, max(0, rank))])
    raise _bad(f"unknown calculation operator {operator!r}")


def _calculations(
    matched: list[dict[str, Any]], body: dict[str, Any], params: dict[str, Any], t_from: int, t_to: int
) -> tuple[list[dict[str, Any]], int]:
    calcs = params.get("calculations") or [{"operator": "count"}]
    group_bys = params.get("groupBys") or []
    if not isinstance(calcs, list) or not isinstance(group_bys, list):
        raise _bad("parameters.calculations and parameters.groupBys must be lists")
    granularity = body.get("granularity") or 60
    if (
        not isinstance(granularity, int | float)
        or isinstance(granularity, bool)
        or not 0 < granularity <= MAX_GRANULARITY
    ):
        raise _bad(f"granularity must be a number of buckets from 1 to {MAX_GRANULARITY}")
    span = max(1, t_to - t_from)
    width_ms = max(1000, math.ceil(span / int(max(1, granularity)) / 1000) * 1000)
    n_buckets = max(1, math.ceil(span / width_ms))
    keys = []
    for i, g in enumerate(group_bys):
        if not isinstance(g, dict) or not isinstance(g.get("value"), str):
            raise _bad(f"parameters.groupBys[{i}] must be {{type, value}}")
        keys.append(g["value"])

    def group_of(e: dict[str, Any]) -> tuple[Any, ...]:
        out = []
        for k in keys:
            v = field_value(e, k)
            out.append(
                None if v is _MISSING else v if isinstance(v, str | int | float | bool) else json.dumps(v)
            )
        return tuple(out)

    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for e in matched:
        groups[group_of(e)].append(e)
    row_limit = params.get("limit") or body.get("limit") or 50
    results = []
    for i, calc in enumerate(calcs):
        if not isinstance(calc, dict) or not isinstance(calc.get("operator"), str):
            raise _bad(f"parameters.calculations[{i}] needs an 'operator'")
        operator = calc["operator"]
        key = calc.get("key")
        if operator.lower() != "count" and not key:
            raise _bad(f"parameters.calculations[{i}]: operator {operator!r} needs a 'key'")

        def values(evs: list[dict[str, Any]], key: Any = key) -> list[float]:
            if not key:
                return []
            vals = [_as_number(field_value(e, key)) for e in evs]
            return [v for v in vals if v is not None]

        def group_list(g: tuple[Any, ...]) -> list[dict[str, Any]]:
            return [{"key": k, "value": v} for k, v in zip(keys, g, strict=True) if v is not None]

        aggregates: list[dict[str, Any]] = []
        for g, evs in groups.items():
            aggregates.append(
                {
                    "value": _aggregate(operator, values(evs), len(evs)),
                    "count": len(evs),
                    "interval": width_ms / 1000,
                    "sampleInterval": 1,
                    "groups": group_list(g),
                }
            )
        alias = calc.get("alias") or operator
        for h in params.get("havings") or []:
            if isinstance(h, dict) and h.get("key") in (alias, operator):
                hop = _OP_ALIASES.get(str(h.get("operation")), str(h.get("operation")))
                if hop not in ("eq", "neq", "gt", "gte", "lt", "lte"):
                    raise _bad(f"parameters.havings: unknown operation {h.get('operation')!r}")
                thr = _as_number(h.get("value"))
                if thr is None:
                    raise _bad("parameters.havings: value must be a number")
                aggregates = [a for a in aggregates if _compare(hop, a["value"], thr, "number")]
        order = params.get("orderBy") or {}
        reverse = (order.get("order") or "desc") == "desc" if isinstance(order, dict) else True
        aggregates.sort(key=lambda a: a["value"], reverse=reverse)
        aggregates = aggregates[: int(row_limit)]
        kept = {tuple(x["value"] for x in a["groups"]) for a in aggregates}
        series = []
        for b in range(n_buckets):
            lo = t_from + b * width_ms
            hi = lo + width_ms
            data = []
            for g, evs in groups.items():
                if tuple(v for v in g if v is not None) not in kept:
                    continue
                in_bucket = [
                    e
                    for e in evs
                    if lo <= e["timestamp"] < hi or (b == n_buckets - 1 and e["timestamp"] == hi)
                ]
                if not in_bucket:
                    continue
                data.append(
                    {
                        "value": _aggregate(operator, values(in_bucket), len(in_bucket)),
                        "count": len(in_bucket),
                        "interval": width_ms / 1000,
                        "sampleInterval": 1,
                        "groups": group_list(g),
                    }
                )
            series.append({"time": _bucket_label(lo), "data": data})
        if body.get("chartType") == "aggregate" or body.get("ignoreSeries"):
            series = []
        if body.get("chartType") == "timeseries":
            aggregates = []
        entry: dict[str, Any] = {"calculation": operator, "aggregates": aggregates, "series": series}
        if calc.get("alias"):
            entry["alias"] = calc["alias"]
        results.append(entry)
    return results, n_buckets


def run_query(ctx: SandboxContext, account_id: str, body: Any) -> dict[str, Any]:
    started = time.perf_counter()
    if not isinstance(body, dict):
        raise _bad("the request body must be a JSON object")
    if not isinstance(body.get("queryId"), str):
        raise _bad("queryId is required (any string for an ad-hoc query)")
    tf = body.get("timeframe")
    if not isinstance(tf, dict) or not all(
        isinstance(tf.get(k), int | float) and not isinstance(tf.get(k), bool) and math.isfinite(tf[k])
        for k in ("from", "to")
    ):
        raise _bad("timeframe {from, to} (epoch ms) is required")
    t_from, t_to = int(tf["from"]), int(tf["to"])
    if not 0 <= t_from <= MAX_EPOCH_MS or not 0 <= t_to <= MAX_EPOCH_MS:
        raise _bad(f"timeframe.from and timeframe.to must be epoch milliseconds from 0 to {MAX_EPOCH_MS}")
    if t_to < t_from:
        raise _bad("timeframe.to is before timeframe.from")
    view = body.get("view", "calculations")
    if view not in ("events", "calculations", "invocations", "traces", "requests", "agents"):
        raise _bad(f"unknown view {view!r}")
    limit = body.get("limit", 50)
    if (
        isinstance(limit, bool)
        or not isinstance(limit, int | float)
        or not 0 <= limit <= MAX_LIMIT
        or limit != int(limit)
    ):
        raise _bad(f"limit must be a whole number from 0 to {MAX_LIMIT}")
    params = body.get("parameters") or {}
    if not isinstance(params, dict):
        raise _bad("parameters must be an object")
    everything = ctx.store.events.of(account_id)
    matched = filter_events(everything, t_from, t_to, params)
    echo_params = {k: v for k, v in params.items() if k != "limit"}
    if isinstance(params.get("limit"), int) and 0 <= params["limit"] <= 100:
        echo_params["limit"] = params["limit"]
    now = datetime.now(tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    granularity = 0
    result: dict[str, Any] = {}
    if view == "events":
        page = _page(matched, int(limit), body.get("offset"), str(body.get("offsetDirection") or "next"))
        result["events"] = {"count": len(matched), "events": page, "fields": _fields(page), "series": []}
    elif view == "invocations":
        grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for e in matched:
            rid = (
                e["$metadata"].get("requestId")
                or (e.get("$workers") or {}).get("requestId")
                or e["$metadata"]["id"]
            )
            grouped[str(rid)].append(e)
        result["invocations"] = dict(list(grouped.items())[: int(limit)])
    elif view == "calculations":
        result["calculations"], granularity = _calculations(matched, body, params, t_from, t_to)
    else:
        raise _bad(f"view {view!r} is not served by the sandbox (use events, calculations or invocations)")
    stats = {
        "elapsed": round(time.perf_counter() - started, 6),
        "rows_read": len(everything),
        "bytes_read": sum(len(json.dumps(e)) for e in matched[:2000]),
    }
    result["statistics"] = stats
    result["run"] = {
        "id": uuid.uuid4().hex,
        "accountId": account_id,
        "timeframe": {"from": t_from, "to": t_to},
        "userId": "sandbox",
        "status": "COMPLETED",
        "granularity": granularity,
        "dry": bool(body.get("dry", False)),
        "created": now,
        "updated": now,
        "statistics": stats,
        "query": {
            "id": body["queryId"],
            "name": body["queryId"] or "ad-hoc",
            "description": None,
            "adhoc": True,
            "parameters": echo_params,
            "created": now,
            "createdBy": "sandbox",
            "updated": now,
            "updatedBy": "sandbox",
        },
    }
    return result


async def telemetry_query(request: Request, ctx: SandboxContext) -> Any:
    return run_query(ctx, request.path_params["account_id"], await read_json(request))
