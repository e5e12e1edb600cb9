"""The tail hub: every connected ``trace-v1`` WebSocket, and the fan-out of tail events to them.

Events come from ``POST /__admin/accounts/{id}/scripts/{script}/tail-events`` (:meth:`TailHub.inject`);
each socket gets the events that pass its filters (wrangler's tail filters, reference F) unless it
asked for ``{"debug": true}``. The REST endpoints and the socket handler are in :mod:`._tails`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from dataclasses import dataclass, field
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from edgeinvestigate.sandbox._envelope import SandboxHTTPError

__all__ = ["TailConnection", "TailHub", "event_matches"]


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
    """The open ``trace-v1`` sockets of every tail, and the fan-out of injected events to them."""

    def __init__(self) -> None:
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
