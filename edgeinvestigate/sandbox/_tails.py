"""Live tails: the REST endpoints and the ``trace-v1`` WebSocket (the fan-out is in ``_tail_hub``).

Flow (reference section F): ``POST .../workers/scripts/{script}/tails`` with ``{"filters": [...]}``
returns ``{id, url, expires_at}``; the client opens a WebSocket to ``url`` with subprotocol
``trace-v1`` (anything else is refused with HTTP 403), sends ``{"debug": false}`` (and may send
``{"filters": [...]}`` to replace the filters), and receives one JSON text frame per tail event (A2 shape).
Events come from ``POST /__admin/accounts/{id}/scripts/{script}/tail-events``. Protocol-level pings are
answered by the WebSocket library. Like Cloudflare, the server does not close the socket at
``expires_at``; ``DELETE .../tails/{id}`` closes its sockets with code 1000.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request
from starlette.websockets import WebSocket, WebSocketDisconnect

from edgeinvestigate.sandbox._clock import iso
from edgeinvestigate.sandbox._context import SandboxContext
from edgeinvestigate.sandbox._endpoint import read_json
from edgeinvestigate.sandbox._envelope import SandboxHTTPError
from edgeinvestigate.sandbox._tail_hub import TailConnection

__all__ = ["TAIL_HANDLERS", "tail_websocket"]

SUBPROTOCOL = "trace-v1"
TAIL_TTL_MS = 6 * 3600 * 1000
MAX_TAILS_PER_SCRIPT = 10
_SCRIPT_RE = re.compile(r"^[a-z0-9_][a-z0-9-_]*$")


async def tail_websocket(websocket: WebSocket) -> None:
    ctx: SandboxContext = websocket.app.state.ctx
    tail_id = websocket.path_params["tail_id"]
    tail = ctx.store.tails.get(tail_id)
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
    if len(ctx.store.tails.all(account, script)) >= MAX_TAILS_PER_SCRIPT:
        raise SandboxHTTPError(
            "too_many_tails", f"{script!r} already has {MAX_TAILS_PER_SCRIPT} tails; delete one"
        )
    tail = ctx.store.tails.create(account, script, filters, TAIL_TTL_MS)
    return _tail_api(tail, request)


async def list_tails(request: Request, ctx: SandboxContext) -> Any:
    account = request.path_params["account_id"]
    script = _script(request)
    tails = ctx.store.tails.all(account, script)
    if not tails:
        raise SandboxHTTPError("script_not_found", f"no active tail on {script!r}")
    return _tail_api(tails[-1], request)


async def delete_tail(request: Request, ctx: SandboxContext) -> Any:
    account = request.path_params["account_id"]
    script = _script(request)
    tail_id = request.path_params["id"]
    if not ctx.store.tails.delete(account, script, tail_id):
        raise SandboxHTTPError("script_not_found", f"no tail {tail_id!r} on {script!r}")
    await ctx.tails.close_tail(tail_id, 1000)
    return None


TAIL_HANDLERS: list[tuple[str, str, str, Any]] = [
    ("list_tails", "GET", "/{script_name}/tails", list_tails),
    ("create_tail", "POST", "/{script_name}/tails", create_tail),
    ("delete_tail", "DELETE", "/{script_name}/tails/{id}", delete_tail),
]
