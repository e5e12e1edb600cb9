"""Admin endpoints under ``/__admin/`` (same bearer token): load scenario data, read state, faults."""

from __future__ import annotations

import base64
import json
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from edgeinvestigate.errors import ConfigError
from edgeinvestigate.sandbox._bodies import BodyError, encode_admin_body
from edgeinvestigate.sandbox._consumers import check_queue_name, consumer_from_admin
from edgeinvestigate.sandbox._context import SandboxContext
from edgeinvestigate.sandbox._endpoint import bearer_error, read_json
from edgeinvestigate.sandbox._envelope import SandboxHTTPError, error_response, success
from edgeinvestigate.sandbox._queues import QueueRow
from edgeinvestigate.sandbox._request_body import MAX_ADMIN_BODY, set_body_limit
from edgeinvestigate.sandbox.faults import parse_faults

__all__ = ["ADMIN_ROUTES", "admin_endpoint"]

AdminHandler = Callable[[Request, SandboxContext], Awaitable[Any]]

log = logging.getLogger("edgeinvestigate.sandbox")


def admin_endpoint(ctx: SandboxContext, handler: AdminHandler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        auth = bearer_error(request, ctx)
        if auth is not None:
            return error_response(auth, "queues")
        set_body_limit(request.scope, MAX_ADMIN_BODY)
        try:
            result = await handler(request, ctx)
        except SandboxHTTPError as exc:
            return error_response(exc, "queues")
        except Exception:  # a sandbox bug: the envelope (never a bare text/plain 500), traceback in the log
            log.exception("sandbox admin handler %s failed on %s", handler.__name__, request.url.path)
            err = SandboxHTTPError(
                "internal", f"sandbox bug in admin {handler.__name__}; see the sandbox log"
            )
            return error_response(err, "queues")
        if isinstance(result, Response):
            return result
        return JSONResponse(success(result))

    return endpoint


def _obj(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SandboxHTTPError("bad_request", f"{what} must be a JSON object")
    return value


def _int(d: dict[str, Any], key: str, default: int, lo: int, hi: int) -> int:
    value = d.get(key, default)
    if value is None:
        return default
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or value != int(value)
        or not lo <= value <= hi
    ):
        raise SandboxHTTPError(
            "bad_request", f"{key} must be a whole number from {lo} to {hi}, got {value!r}"
        )
    return int(value)


async def create_queue(request: Request, ctx: SandboxContext) -> Any:
    body = _obj(await read_json(request), "request body")
    account = request.path_params["account_id"]
    if body.get("queue_name") in (None, ""):
        raise SandboxHTTPError("bad_request", "queue_name is required")
    name = check_queue_name(body.get("queue_name"))
    settings: dict[str, Any] = {}
    if "message_retention_period" in body:
        settings["message_retention_period"] = _int(body, "message_retention_period", 345_600, 60, 1_209_600)
    if "delivery_delay" in body:
        settings["delivery_delay"] = _int(body, "delivery_delay", 0, 0, 43_200)
    if "delivery_paused" in body:
        settings["delivery_paused"] = bool(body["delivery_paused"])
    options: dict[str, Any] = {}
    enc = body.get("json_body_encoding")
    if enc is not None:
        if enc not in ("plain", "base64"):
            raise SandboxHTTPError("bad_request", "json_body_encoding must be 'plain' or 'base64'")
        options["json_body_encoding"] = enc
    consumer = consumer_from_admin(_obj(body["consumer"], "consumer"), name) if body.get("consumer") else None
    q = ctx.store.queues.upsert(account, name, settings=settings, consumer=consumer, options=options)
    return q.to_api()


def _admin_queue(request: Request, ctx: SandboxContext) -> QueueRow:
    account = request.path_params["account_id"]
    name = request.path_params["queue_name"]
    q = ctx.store.queues.by_name(account, name)
    if q is None:
        raise SandboxHTTPError(
            "queue_not_found",
            f"no queue named {name!r} in account {account!r}; "
            f"create it with POST /__admin/accounts/{account}/queues",
        )
    return q


async def load_messages(request: Request, ctx: SandboxContext) -> Any:
    q = _admin_queue(request, ctx)
    body = _obj(await read_json(request), "request body")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise SandboxHTTPError("bad_request", "'messages' must be a list")
    items = []
    for i, m in enumerate(messages):
        m = _obj(m, f"messages[{i}]")
        meta_raw = m.get("metadata")
        meta: dict[str, Any] = meta_raw if isinstance(meta_raw, dict) else {}
        ctype = m.get("content_type") or meta.get("CF-Content-Type") or "json"
        mid = m.get("id")
        where = f"messages[{i}]" + (f" (id {mid})" if mid else "")
        if "body" not in m:
            raise SandboxHTTPError("invalid_body", f"{where}: 'body' is required")
        try:
            data = encode_admin_body(m["body"], ctype, m.get("body_encoding"))
        except BodyError as exc:
            raise SandboxHTTPError("invalid_body", f"{where}: {exc}") from exc
        if mid is not None and not isinstance(mid, str):
            raise SandboxHTTPError("bad_request", f"{where}: id must be a string")
        item: dict[str, Any] = {"id": mid, "body": data, "content_type": ctype}
        for key in ("timestamp_ms", "attempts", "enqueued_ms", "delay_seconds"):
            if m.get(key) is not None:
                item[key] = _int(m, key, 0, 0, 2**53)
        items.append(item)
    ids = ctx.store.messages.load(q, items)
    return {"loaded": len(ids), "ids": ids, "skipped": len(items) - len(ids), "queue_id": q.queue_id}


_EVENT_REQUIRED = ("dataset", "timestamp", "source", "$metadata")


async def load_events(request: Request, ctx: SandboxContext) -> Any:
    account = request.path_params["account_id"]
    body = await read_json(request)
    events = body.get("events") if isinstance(body, dict) else body
    if not isinstance(events, list):
        raise SandboxHTTPError("bad_request", 'send {"events": [...]} (Workers Logs query-API events)')
    for i, e in enumerate(events):
        if not isinstance(e, dict):
            raise SandboxHTTPError("bad_request", f"events[{i}] must be an object")
        missing = [k for k in _EVENT_REQUIRED if k not in e]
        meta = e.get("$metadata")
        if missing or not isinstance(meta, dict) or not isinstance(meta.get("id"), str):
            raise SandboxHTTPError(
                "bad_request",
                f"events[{i}] is not a query-API event: needs {', '.join(_EVENT_REQUIRED)}"
                " and a string $metadata.id" + (f" (missing {', '.join(missing)})" if missing else ""),
            )
        ts = e.get("timestamp")
        if isinstance(ts, bool) or not isinstance(ts, int) or ts < 0:
            raise SandboxHTTPError(
                "bad_request", f"events[{i}] ($metadata.id {meta['id']}): timestamp must be epoch ms"
            )
    n = ctx.store.events.add(account, events)
    return {"loaded": n, "total": ctx.store.events.counts().get(account, 0)}


def _state_body(row: sqlite3.Row) -> Any:
    ctype = row["content_type"]
    raw: bytes = row["body"]
    if ctype == "text":
        return raw.decode("utf-8", errors="replace")
    if ctype == "json":
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", errors="replace")
    return base64.b64encode(raw).decode()


async def state(request: Request, ctx: SandboxContext) -> Any:
    store = ctx.store
    store.messages.sweep()
    accounts: dict[str, Any] = {}
    for q in store.queues.all():
        acct = accounts.setdefault(q.account_id, {"queues": {}, "events": 0, "tails": []})
        messages = [
            {
                "id": r["id"],
                "seq": r["seq"],
                "content_type": r["content_type"],
                "body": _state_body(r),
                "timestamp_ms": r["timestamp_ms"],
                "enqueued_ms": r["enqueued_ms"],
                "attempts": r["attempts"],
                "visible_at_ms": r["visible_at_ms"],
                "lease_id": r["lease_id"],
                "lease_expires_ms": r["lease_expires_ms"],
                "source": r["source"],
            }
            for r in store.messages.of(q.queue_id)
        ]
        acct["queues"][q.queue_name] = q.to_api() | {
            "messages": messages,
            "stats": store.messages.stats(q.queue_id),
            "metrics": store.messages.metrics(q),
            "forward_url": q.options.get("forward_url"),
            "json_body_encoding": q.json_encoding,
        }
    for account, n in store.events.counts().items():
        accounts.setdefault(account, {"queues": {}, "events": 0, "tails": []})["events"] = n
    for tail in store.tails.all():
        acct = accounts.setdefault(tail["account_id"], {"queues": {}, "events": 0, "tails": []})
        acct["tails"].append(tail | {"connected": ctx.tails.connected(tail["tail_id"])})
    return {
        "now_ms": store.clock.now_ms(),
        "accounts": accounts,
        "faults": ctx.faults.status(),
        "rate_limit": {"limit": ctx.limiter.limit, "window_s": ctx.limiter.window_s},
        "persistent": store.state_dir is not None,
    }


async def get_faults(request: Request, ctx: SandboxContext) -> Any:
    return ctx.faults.status()


async def put_faults(request: Request, ctx: SandboxContext) -> Any:
    body = await read_json(request, required=False)
    try:
        if isinstance(body, dict) and set(body) <= {"spec"}:
            spec = parse_faults(body.get("spec") or "")
        elif isinstance(body, dict | str):
            spec = parse_faults(body)
        else:
            raise SandboxHTTPError(
                "bad_request", 'send {"spec": "latency=0.2,..."} or an object of fault keys'
            )
    except ConfigError as exc:
        raise SandboxHTTPError("bad_request", exc.message) from exc
    ctx.faults.set(spec)
    return ctx.faults.status()


async def reset(request: Request, ctx: SandboxContext) -> Any:
    await ctx.tails.close_all()
    ctx.reset()
    return {"reset": True}


async def clock(request: Request, ctx: SandboxContext) -> Any:
    """``POST /__admin/clock {"advance_ms": N}``: move the sandbox clock by N ms (negative: back), then
    sweep, so expired leases, delays and retention take effect before the answer (see ``_clock``).
    Returns ``{now_ms, offset_ms}``. For tests: nothing else needs to sleep through a timeout."""
    body = _obj(await read_json(request), "request body")
    advance = body.get("advance_ms", 0)
    if isinstance(advance, bool) or not isinstance(advance, int):
        raise SandboxHTTPError("bad_request", "advance_ms must be an integer")
    ctx.store.clock.advance(advance)
    ctx.store.messages.sweep()
    return {"now_ms": ctx.store.clock.now_ms(), "offset_ms": ctx.store.clock.offset_ms}


async def rate_limit(request: Request, ctx: SandboxContext) -> Any:
    body = _obj(await read_json(request), "request body")
    limit = _int(body, "limit", ctx.limiter.limit, 0, 10**9)
    window = _int(body, "window_s", ctx.limiter.window_s, 1, 86_400)
    ctx.limiter.configure(limit, window)
    return {"limit": limit, "window_s": window}


async def forward(request: Request, ctx: SandboxContext) -> Any:
    q = _admin_queue(request, ctx)
    body = _obj(await read_json(request), "request body")
    url = body.get("url")
    if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
        raise SandboxHTTPError("bad_request", "url must be an http(s) URL, or null to stop forwarding")
    ctx.store.queues.set_option(q, "forward_url", url)
    return {"queue_name": q.queue_name, "forward_url": url}


async def tail_events(request: Request, ctx: SandboxContext) -> Any:
    account = request.path_params["account_id"]
    script = request.path_params["script_name"]
    body = _obj(await read_json(request), "request body")
    events = body.get("events")
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise SandboxHTTPError("bad_request", "'events' must be a list of tail event objects")
    min_clients = _int(body, "min_clients", 0, 0, 10)
    timeout_s = float(body.get("timeout_s", 5.0) or 5.0)
    return await ctx.tails.inject(account, script, events, min_clients=min_clients, timeout_s=timeout_s)


async def tail_disconnect(request: Request, ctx: SandboxContext) -> Any:
    account = request.path_params["account_id"]
    script = request.path_params["script_name"]
    body = await read_json(request, required=False)
    code = _int(body if isinstance(body, dict) else {}, "code", 1011, 1000, 4999)
    n = await ctx.tails.disconnect(account, script, code)
    return {"closed": n}


ADMIN_ROUTES: list[tuple[str, str, AdminHandler]] = [
    ("POST", "/accounts/{account_id}/queues", create_queue),
    ("POST", "/accounts/{account_id}/queues/{queue_name}/messages", load_messages),
    ("POST", "/accounts/{account_id}/queues/{queue_name}/forward", forward),
    ("POST", "/accounts/{account_id}/telemetry/events", load_events),
    ("POST", "/accounts/{account_id}/scripts/{script_name}/tail-events", tail_events),
    ("POST", "/accounts/{account_id}/scripts/{script_name}/tails/disconnect", tail_disconnect),
    ("GET", "/state", state),
    ("GET", "/faults", get_faults),
    ("PUT", "/faults", put_faults),
    ("POST", "/reset", reset),
    ("POST", "/clock", clock),
    ("PUT", "/rate-limit", rate_limit),
]
