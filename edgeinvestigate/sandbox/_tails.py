"""Live tails: the REST endpoints, the ``trace-v1`` WebSocket and the hub that fans events out.

Flow (reference section F): ``POST .../workers/scripts/{script}/tails`` with ``{"filters": [...]}``
returns ``{id, url, expires_at}``; the client opens a WebSocket to ``url`` with subprotocol
``trace-v1`` (anything else is refused with HTTP 403), sends ``{"debug": false}`` (and may send
``{"filters": [...]}`` to replace the filters), and receives one JSON text frame per tail event (A2 shape).
Events come from ``POST /__admin/accounts/{id}/scripts/{script}/tail-events``. Protocol-level pings are
answered by the WebSocket library. Like Cloudflare, the server does not close the socket at
``expires_at``; ``DELETE .../tails/{id}`` closes its sockets with code 1000.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from edgeinvestigate.sandbox._endpoint import read_json
from edgeinvestigate.sandbox._envelope import SandboxHTTPError
from edgeinvestigate.sandbox._store import iso

if TYPE_CHECKING:
    from edgeinvestigate.sandbox._context import SandboxContext

__all__ = ["TAIL_HANDLERS", "TailHub", "event_matches", "tail_websocket"]

SUBPROTOCOL = "trace-v1"
TAIL_TTL_MS = 6 * 3600 * 1000
MAX_TAILS_PER_SCRIPT = 10
_SCRIPT_RE = re.compile(r"^[a-z0-9_][a-z0-9-_]*$")


@dataclass(eq=False)
class TailConnection:
    websocket: WebSocket
    tail_id: str
    account_id: str
    script_name: str
    filters: list[Any] = field(default_factory=list)
    debug: bool = False
    sent: int = 0


def _request_of(event: dict[str, Any]) -> dict[str, Any]:
    ev = event.get("event")
    if isinstance(ev, dict) and isinstance(ev.get("request"), dict):
        return ev["request"]
    return {}


def _one_filter(f: dict[str, Any], event: dict[str, Any], rng: random.Random) -> bool:
    if "sampling_rate" in f:
        return rng.random() < float(f["sampling_rate"])
    if "outcome" in f:
        return event.get("outcome") in (f["outcome"] or [])
    if "method" in f:
        method = str(_request_of(event).get("method", "")).upper()
        return method in [str(m).upper() for m in f["method"] or []]
    if "header" in f:
        spec = f["header"] or {}
        headers = {str(k).lower(): str(v) for k, v in (_request_of(event).get("headers") or {}).items()}
        key = str(spec.get("key", "")).lower()
        if key not in headers:
            return False
        query = spec.get("query")
        return query is None or str(query) == headers[key]
    if "client_ip" in f:
        ips = [str(ip) for ip in f["client_ip"] or []]
        if "self" in ips:
            return True
        headers = {str(k).lower(): str(v) for k, v in (_request_of(event).get("headers") or {}).items()}
        return headers.get("cf-connecting-ip") in ips
    if "query" in f:
        needle = str(f["query"])
        texts = [json.dumps(log.get("message"), ensure_ascii=False) for log in event.get("logs") or []]
        texts += [f"{e.get('name')}: {e.get('message')}" for e in event.get("exceptions") or []]
        return any(needle in t for t in texts)
    if "scriptVersion" in f:
        version = event.get("scriptVersion") or {}
        return isinstance(version, dict) and version.get("id") == f["scriptVersion"]
    return True


def event_matches(filters: list[Any], event: dict[str, Any], rng: random.Random | None = None) -> bool:
    """wrangler's tail filters (reference F), all of which must match."""
    rng = rng or random.Random()
    return all(_one_filter(f, event, rng) for f in filters if isinstance(f, dict))


class TailHub:
    def __init__(self, ctx: SandboxContext) -> None:
        self.ctx = ctx
        self._conns: set[TailConnection] = set()
        self._rng = random.Random(0)
        self._changed = asyncio.Event()

    def connected(self, tail_id: str) -> int:
        return sum(1 for c in self._conns if c.tail_id == tail_id)

    def _for(self, account_id: str, script: str) -> list[TailConnection]:
        return [c for c in self._conns if c.account_id == account_id and c.script_name == script]

    def add(self, conn: TailConnection) -> None:
        self._conns.add(conn)
        self._changed.set()

    def remove(self, conn: TailConnection) -> None:
        self._conns.discard(conn)

    async def inject(
        self,
        account_id: str,
        script: str,
        events: list[dict[str, Any]],
        *,
        min_clients: int = 0,
        timeout_s: float = 5.0,
    ) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(self._for(account_id, script)) < min_clients:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise SandboxHTTPError(
                    "bad_request",
                    f"only {len(self._for(account_id, script))} tail client(s) of {script!r} connected"
                    f" after {timeout_s} s, wanted {min_clients}",
                )
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout=min(remaining, 0.1))
        delivered = 0
        conns = self._for(account_id, script)
        for conn in conns:
            for event in events:
                if not conn.debug and not event_matches(conn.filters, event, self._rng):
                    continue
                try:
                    await conn.websocket.send_text(json.dumps(event, ensure_ascii=False))
                except (WebSocketDisconnect, RuntimeError, OSError):
                    self.remove(conn)
                    break
                conn.sent += 1
                delivered += 1
        return {"clients": len(conns), "delivered": delivered}

    async def _close(self, conns: list[TailConnection], code: int) -> int:
        n = 0
        for conn in conns:
            self.remove(conn)
            if conn.websocket.application_state == WebSocketState.CONNECTED:
                with contextlib.suppress(RuntimeError, OSError):
                    await conn.websocket.close(code=code)
                    n += 1
        return n

    async def disconnect(self, account_id: str, script: str, code: int) -> int:
        return await self._close(self._for(account_id, script), code)

    async def close_tail(self, tail_id: str, code: int = 1000) -> int:
        return await self._close([c for c in self._conns if c.tail_id == tail_id], code)

    async def close_all(self) -> int:
        return await self._close(list(self._conns), 1001)


async def tail_websocket(websocket: WebSocket) -> None:
    ctx: SandboxContext = websocket.app.state.ctx
    tail_id = websocket.path_params["tail_id"]
    tail = ctx.store.get_tail(tail_id)
    if tail is None or SUBPROTOCOL not in websocket.scope.get("subprotocols", []):
        await websocket.close(code=1008)  # before accept: the client gets HTTP 403
        return
    await websocket.accept(subprotocol=SUBPROTOCOL)
    conn = TailConnection(websocket, tail_id, tail["account_id"], tail["script_name"], list(tail["filters"]))
    ctx.tails.add(conn)
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            raw = message.get("text") or (message.get("bytes") or b"").decode("utf-8", "replace")
            try:
                data = json.loads(raw)
            except ValueError:
                continue
            if isinstance(data, dict):
                if "debug" in data:
                    conn.debug = bool(data["debug"])
                if isinstance(data.get("filters"), list):
                    conn.filters = data["filters"]
    except WebSocketDisconnect:
        pass
    finally:
        ctx.tails.remove(conn)


def _tail_api(tail: dict[str, Any], request: Request) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/")
    ws_base = "ws" + base[len("http") :] if base.startswith("http") else base
    return {
        "id": tail["tail_id"],
        "url": f"{ws_base}/tail/{tail['tail_id']}",
        "expires_at": iso(tail["expires_ms"]),
    }


def _script(request: Request) -> str:
    script = request.path_params["script_name"]
    if not _SCRIPT_RE.match(script):
        raise SandboxHTTPError("bad_request", f"invalid script name {script!r}")
    return script


async def create_tail(request: Request, ctx: SandboxContext) -> Any:
    account = request.path_params["account_id"]
    script = _script(request)
    body = await read_json(request, required=False)
    filters: list[Any] = []
    if isinstance(body, dict) and body.get("filters") is not None:
        if not isinstance(body["filters"], list):
            raise SandboxHTTPError("bad_request", "'filters' must be a list of wrangler tail filters")
        filters = body["filters"]
    elif body not in ({}, None) and not isinstance(body, dict):
        raise SandboxHTTPError("bad_request", 'send {"filters": [...]}')
    if len(ctx.store.tails(account, script)) >= MAX_TAILS_PER_SCRIPT:
        raise SandboxHTTPError(
            "too_many_tails", f"{script!r} already has {MAX_TAILS_PER_SCRIPT} tails; delete one"
        )
    tail = ctx.store.create_tail(account, script, filters, TAIL_TTL_MS)
    return _tail_api(tail, request)


async def list_tails(request: Request, ctx: SandboxContext) -> Any:
    account = request.path_params["account_id"]
    script = _script(request)
    tails = ctx.store.tails(account, script)
    if not tails:
        raise SandboxHTTPError("script_not_found", f"no active tail on {script!r}")
    return _tail_api(tails[-1], request)


async def delete_tail(request: Request, ctx: SandboxContext) -> Any:
    account = request.path_params["account_id"]
    script = _script(request)
    tail_id = request.path_params["id"]
    if not ctx.store.delete_tail(account, script, tail_id):
        raise SandboxHTTPError("script_not_found", f"no tail {tail_id!r} on {script!r}")
    await ctx.tails.close_tail(tail_id, 1000)
    return None


TAIL_HANDLERS: list[tuple[str, str, str, Any]] = [
    ("list_tails", "GET", "/{script_name}/tails", list_tails),
    ("create_tail", "POST", "/{script_name}/tails", create_tail),
    ("delete_tail", "DELETE", "/{script_name}/tails/{id}", delete_tail),
]
