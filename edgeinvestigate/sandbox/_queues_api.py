"""Handlers of the Queues REST API (``/client/v4/accounts/{account_id}/queues/...``)."""

from __future__ import annotations

import math
import sqlite3
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from edgeinvestigate.sandbox._bodies import PUSHABLE_CONTENT_TYPES, BodyError, encode_push_body, wire_body
from edgeinvestigate.sandbox._consumers import consumer_from_api
from edgeinvestigate.sandbox._context import SandboxContext
from edgeinvestigate.sandbox._endpoint import read_json
from edgeinvestigate.sandbox._envelope import SandboxHTTPError, success
from edgeinvestigate.sandbox._messages import make_ref
from edgeinvestigate.sandbox._queues import QueueRow

__all__ = ["LIMITS", "QUEUE_HANDLERS"]

LIMITS = {
    "message_bytes": 128_000,
    "batch_messages": 100,
    "batch_bytes": 256_000,
    "max_batch_size": 100,
    "max_visibility_ms": 43_200_000,
    "max_delay_s": 43_200,
    "default_pull_batch": 5,
    "default_visibility_ms": 30_000,
}


def _object(body: Any, what: str) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise SandboxHTTPError("bad_request", f"{what} must be a JSON object")
    return body


def _number(body: dict[str, Any], key: str, default: int | None, lo: int, hi: int, kind: str) -> int | None:
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SandboxHTTPError(kind, f"{key} must be a number, got {value!r}")
    if value != int(value) or not lo <= value <= hi:
        raise SandboxHTTPError(kind, f"{key} must be a whole number from {lo} to {hi}, got {value!r}")
    return int(value)


def _queue(request: Request, ctx: SandboxContext) -> QueueRow:
    account = request.path_params["account_id"]
    queue_id = request.path_params["queue_id"]
    q = ctx.store.queues.get(account, queue_id)
    if q is None:
        raise SandboxHTTPError("queue_not_found", f"no queue with id {queue_id!r} in account {account!r}")
    return q


def _wire_message(q: QueueRow, row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "body": wire_body(row["body"], row["content_type"], q.json_encoding),
        "timestamp_ms": row["timestamp_ms"],
        "attempts": row["attempts"],
        "metadata": {"CF-Content-Type": row["content_type"], "CF-sourceMessageSource": "api"},
    }


async def list_queues(request: Request, ctx: SandboxContext) -> JSONResponse:
    account = request.path_params["account_id"]
    params = request.query_params
    try:
        page = max(1, int(params.get("page", "1")))
        per_page = min(1000, max(1, int(params.get("per_page", "20"))))
    except ValueError as exc:
        raise SandboxHTTPError("bad_request", f"page and per_page must be integers: {exc}") from exc
    every = ctx.store.queues.all(account)
    name = params.get("name")
    chosen = [q for q in every if q.queue_name == name] if name is not None else every
    start = (page - 1) * per_page
    items = [q.to_api() for q in chosen[start : start + per_page]]
    info = {
        "count": len(items),
        "page": page,
        "per_page": per_page,
        "total_count": len(chosen),
        "total_pages": max(1, math.ceil(len(chosen) / per_page)),
    }
    return JSONResponse(success(items, result_info=info))


async def get_queue(request: Request, ctx: SandboxContext) -> Any:
    return _queue(request, ctx).to_api()


async def list_consumers(request: Request, ctx: SandboxContext) -> Any:
    q = _queue(request, ctx)
    return [q.consumer] if q.consumer else []


def _consumer(request: Request, q: QueueRow) -> dict[str, Any]:
    cid = request.path_params["consumer_id"]
    if not q.consumer or q.consumer["consumer_id"] != cid:
        have = f"its consumer is {q.consumer['consumer_id']!r}" if q.consumer else "it has no consumer"
        raise SandboxHTTPError(
            "consumer_not_found",
            f"no consumer {cid!r} on queue {q.queue_name!r} ({have}; GET .../queues/{q.queue_id}/consumers)",
        )
    return q.consumer


async def get_consumer(request: Request, ctx: SandboxContext) -> Any:
    q = _queue(request, ctx)
    return _consumer(request, q)


async def update_consumer(request: Request, ctx: SandboxContext) -> Any:
    """``PUT .../consumers/{id}``: replace the consumer's type, script, dead letter queue and settings
    (see :mod:`._consumers`); it keeps its id and ``created_on``. A missing dead letter queue is created."""
    q = _queue(request, ctx)
    _consumer(request, q)
    spec = consumer_from_api(await read_json(request), q.queue_name)
    fresh = ctx.store.queues.upsert(q.account_id, q.queue_name, consumer=spec)
    return fresh.consumer


def _encode_message(msg: Any, where: str, default_delay: int) -> tuple[bytes, str, int]:
    msg = _object(msg, where)
    if "body" not in msg:
        raise SandboxHTTPError("invalid_body", f"{where}: 'body' is required")
    content_type = msg.get("content_type", "json")
    if content_type not in PUSHABLE_CONTENT_TYPES:
        raise SandboxHTTPError(
            "invalid_content_type",
            f"{where}: content_type {content_type!r} cannot be pushed over REST (use 'text' or 'json')",
        )
    delay = _number(msg, "delay_seconds", default_delay, 0, LIMITS["max_delay_s"], "invalid_delay")
    try:
        data = encode_push_body(msg["body"], content_type)
    except BodyError as exc:
        raise SandboxHTTPError("invalid_body", f"{where}: {exc}") from exc
    if len(data) > LIMITS["message_bytes"]:
        raise SandboxHTTPError(
            "message_too_large", f"{where}: {len(data)} bytes, the limit is {LIMITS['message_bytes']} bytes"
        )
    return data, content_type, int(delay or 0)


async def push(request: Request, ctx: SandboxContext) -> Any:
    q = _queue(request, ctx)
    body = _object(await read_json(request), "request body")
    item = _encode_message(body, "message", int(q.settings.get("delivery_delay", 0) or 0))
    metrics = ctx.store.messages.push(q, [item])
    return {"metadata": {"metrics": metrics}}


async def push_batch(request: Request, ctx: SandboxContext) -> Any:
    q = _queue(request, ctx)
    body = _object(await read_json(request), "request body")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise SandboxHTTPError("bad_request", "'messages' must be a non-empty list")
    if len(messages) > LIMITS["batch_messages"]:
        raise SandboxHTTPError(
            "batch_too_many", f"{len(messages)} messages, the limit is {LIMITS['batch_messages']} per batch"
        )
    default_delay = _number(
        body,
        "delay_seconds",
        int(q.settings.get("delivery_delay", 0) or 0),
        0,
        LIMITS["max_delay_s"],
        "invalid_delay",
    )
    items = [_encode_message(m, f"messages[{i}]", int(default_delay or 0)) for i, m in enumerate(messages)]
    total = sum(len(b) for b, _, _ in items)
    if total > LIMITS["batch_bytes"]:
        raise SandboxHTTPError(
            "batch_too_large", f"{total} bytes in the batch, the limit is {LIMITS['batch_bytes']} bytes"
        )
    metrics = ctx.store.messages.push(q, items)
    return {"metadata": {"metrics": metrics}}


def _pull_consumer(q: QueueRow) -> dict[str, Any]:
    if not q.consumer or q.consumer.get("type") != "http_pull":
        raise SandboxHTTPError(
            "no_pull_consumer",
            f"queue {q.queue_name!r} has no http_pull consumer; add one (wrangler queues consumer http add)",
        )
    return q.consumer


async def pull(request: Request, ctx: SandboxContext) -> Any:
    q = _queue(request, ctx)
    consumer = _pull_consumer(q)
    body = _object(await read_json(request, required=False), "request body")
    settings = consumer.get("settings", {})
    batch_size = _number(
        body,
        "batch_size",
        int(settings.get("batch_size") or LIMITS["default_pull_batch"]),
        1,
        LIMITS["max_batch_size"],
        "invalid_batch_size",
    )
    visibility = _number(
        body,
        "visibility_timeout_ms",
        int(settings.get("visibility_timeout_ms") or LIMITS["default_visibility_ms"]),
        1,
        LIMITS["max_visibility_ms"],
        "invalid_visibility",
    )
    rows, backlog = ctx.store.messages.pull(q, int(batch_size or 1), int(visibility or 1))
    messages = [_wire_message(q, r) | {"lease_id": r["lease_id"]} for r in rows]
    metrics = ctx.store.messages.metrics(q)
    return {"message_backlog_count": backlog, "messages": messages, "metadata": {"metrics": metrics}}


def _lease_list(body: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = body.get(key, [])
    if items is None:
        return []
    if not isinstance(items, list):
        raise SandboxHTTPError("bad_request", f"'{key}' must be a list")
    out = []
    for i, it in enumerate(items):
        if not isinstance(it, dict) or not isinstance(it.get("lease_id"), str):
            raise SandboxHTTPError("bad_request", f"{key}[{i}] must be an object with a string 'lease_id'")
        out.append(it)
    return out


async def ack(request: Request, ctx: SandboxContext) -> Any:
    q = _queue(request, ctx)
    body = _object(await read_json(request), "request body")
    acks = [a["lease_id"] for a in _lease_list(body, "acks")]
    retries = []
    for i, r in enumerate(_lease_list(body, "retries")):
        delay = _number(r, "delay_seconds", None, 0, LIMITS["max_delay_s"], "invalid_delay")
        del i
        retries.append((r["lease_id"], delay))
    n_ack, n_retry, warnings = ctx.store.messages.ack(q, acks, retries)
    return {"ackCount": n_ack, "retryCount": n_retry, "warnings": warnings}


async def extend(request: Request, ctx: SandboxContext) -> Any:
    q = _queue(request, ctx)
    consumer = _pull_consumer(q)
    body = _object(await read_json(request), "request body")
    leases = [e["lease_id"] for e in _lease_list(body, "extend")]
    visibility = _number(
        body,
        "visibility_timeout_ms",
        int(consumer.get("settings", {}).get("visibility_timeout_ms") or LIMITS["default_visibility_ms"]),
        1,
        LIMITS["max_visibility_ms"],
        "invalid_visibility",
    )
    n, warnings = ctx.store.messages.extend(q, leases, int(visibility or 1))
    return {"extendCount": n, "warnings": warnings}


async def peek(request: Request, ctx: SandboxContext) -> Any:
    q = _queue(request, ctx)
    body = _object(await read_json(request, required=False), "request body")
    batch_size = _number(
        body, "batch_size", LIMITS["default_pull_batch"], 1, LIMITS["max_batch_size"], "invalid_batch_size"
    )
    rows = ctx.store.messages.peek(q, int(batch_size or 1))
    return {
        "messages": [_wire_message(q, r) | {"ref": make_ref(q.queue_id, r["seq"], r["id"])} for r in rows]
    }


async def purge_refs(request: Request, ctx: SandboxContext) -> Any:
    q = _queue(request, ctx)
    body = _object(await read_json(request), "request body")
    refs = body.get("refs")
    if not isinstance(refs, list):
        raise SandboxHTTPError("bad_request", "'refs' must be a list of {ref}")
    values = []
    for i, r in enumerate(refs):
        if not isinstance(r, dict) or not isinstance(r.get("ref"), str):
            raise SandboxHTTPError("bad_request", f"refs[{i}] must be an object with a string 'ref'")
        values.append(r["ref"])
    warnings = ctx.store.messages.purge_refs(q, values)
    return {"errors": [], "warnings": warnings}


async def metrics(request: Request, ctx: SandboxContext) -> Any:
    return ctx.store.messages.metrics(_queue(request, ctx))


async def purge(request: Request, ctx: SandboxContext) -> Any:
    q = _queue(request, ctx)
    body = _object(await read_json(request, required=False), "request body")
    if body.get("delete_messages_permanently") is not True:
        raise SandboxHTTPError(
            "purge_not_confirmed", 'send {"delete_messages_permanently": true} to delete every message'
        )
    ctx.store.messages.purge_all(q)
    fresh = ctx.store.queues.get(q.account_id, q.queue_id)
    return (fresh or q).to_api()


async def purge_status(request: Request, ctx: SandboxContext) -> Any:
    return dict(_queue(request, ctx).purge)


# op name -> (method, path under /client/v4/accounts/{account_id}/queues, handler, rate-limit exempt)
QUEUE_HANDLERS: list[tuple[str, str, str, Any, bool]] = [
    ("list_queues", "GET", "", list_queues, False),
    ("get_queue", "GET", "/{queue_id}", get_queue, False),
    ("list_consumers", "GET", "/{queue_id}/consumers", list_consumers, False),
    ("get_consumer", "GET", "/{queue_id}/consumers/{consumer_id}", get_consumer, False),
    ("update_consumer", "PUT", "/{queue_id}/consumers/{consumer_id}", update_consumer, False),
    ("push", "POST", "/{queue_id}/messages", push, False),
    ("batch", "POST", "/{queue_id}/messages/batch", push_batch, False),
    ("pull", "POST", "/{queue_id}/messages/pull", pull, True),
    ("ack", "POST", "/{queue_id}/messages/ack", ack, True),
    ("extend", "POST", "/{queue_id}/messages/extend", extend, False),
    ("peek", "POST", "/{queue_id}/messages/peek", peek, False),
    ("purge_refs", "POST", "/{queue_id}/messages/purge", purge_refs, False),
    ("metrics", "GET", "/{queue_id}/metrics", metrics, False),
    ("purge", "POST", "/{queue_id}/purge", purge, False),
    ("purge_status", "GET", "/{queue_id}/purge", purge_status, False),
]
