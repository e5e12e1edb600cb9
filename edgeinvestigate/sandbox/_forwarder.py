"""Lab forwarding: deliver messages pushed onto a queue to an HTTP endpoint (a Worker's job API).

``POST /__admin/accounts/{id}/queues/{name}/forward {"url": ...}`` turns the queue into a push queue
whose consumer is ``url``: each message is POSTed with the message body as the JSON request body
(``json`` bodies as their value, ``text`` as a JSON string, ``bytes``/``v8`` as a base64 JSON string) and
the headers ``X-Queue-Message-Id``, ``X-Queue-Message-Attempts``, ``X-Queue-Message-Timestamp-Ms``,
``X-Queue-Name``. A 2xx answer acks the message; anything else (or a connection error) retries it after
the consumer's ``retry_delay`` (or 1, 2, 4 ... 30 s), and ``max_retries`` exhaustion moves it to the
dead letter queue, exactly as for pull consumers. Forwarding survives restarts (it is stored with the queue).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import sqlite3
from typing import Any
from urllib.parse import urlsplit

import httpx

from edgeinvestigate._http import make_client
from edgeinvestigate.sandbox._context import SandboxContext
from edgeinvestigate.sandbox._queues import QueueRow

__all__ = ["forward_body", "run_background"]

log = logging.getLogger("edgeinvestigate.sandbox.forwarder")

FORWARD_LEASE_MS = 60_000
FORWARD_BATCH = 10


def forward_body(row: sqlite3.Row) -> Any:
    ctype = row["content_type"]
    raw: bytes = row["body"]
    if ctype == "json":
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")
    if ctype == "text":
        return raw.decode("utf-8", "replace")
    return base64.b64encode(raw).decode()


def _retry_delay(queue: QueueRow, attempts: int) -> int:
    configured = int((queue.consumer or {}).get("settings", {}).get("retry_delay", 0) or 0)
    return configured if configured > 0 else min(30, 2 ** max(0, attempts - 1))


async def _forward_queue(
    ctx: SandboxContext, queue: QueueRow, url: str, clients: dict[str, httpx.Client]
) -> int:
    # re-read the queue: forwarding may have been switched off while another queue was being forwarded
    current = ctx.store.queues.get(queue.account_id, queue.queue_id)
    if current is None or current.options.get("forward_url") != url:
        return 0
    rows, _ = ctx.store.messages.pull(current, FORWARD_BATCH, FORWARD_LEASE_MS)
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
    client = clients.get(origin)
    if client is None:
        client = clients[origin] = make_client(origin, timeout=10.0)
    for row in rows:
        headers = {
            "Content-Type": "application/json",
            "X-Queue-Message-Id": row["id"],
            "X-Queue-Message-Attempts": str(row["attempts"]),
            "X-Queue-Message-Timestamp-Ms": str(row["timestamp_ms"]),
            "X-Queue-Name": queue.queue_name,
        }
        payload = json.dumps(forward_body(row)).encode()
        ok = False
        try:
            resp = await asyncio.to_thread(client.post, url, content=payload, headers=headers)
            ok = 200 <= resp.status_code < 300
            if not ok:
                log.warning("forward of %s to %s answered %s", row["id"], url, resp.status_code)
        except httpx.HTTPError as exc:
            log.warning("forward of %s to %s failed: %s", row["id"], url, type(exc).__name__)
        fresh = ctx.store.queues.get(queue.account_id, queue.queue_id) or queue
        if ok:
            ctx.store.messages.ack(fresh, [row["lease_id"]], [])
        else:
            ctx.store.messages.ack(fresh, [], [(row["lease_id"], _retry_delay(fresh, row["attempts"]))])
    return len(rows)


async def run_background(ctx: SandboxContext, stop: asyncio.Event, sweep_every_s: float = 0.5) -> None:
    """Sweep leases/retention periodically and run the forwarders until ``stop`` is set."""
    clients: dict[str, httpx.Client] = {}
    loop = asyncio.get_running_loop()
    next_sweep = 0.0
    try:
        while not stop.is_set():
            busy = 0
            try:
                if loop.time() >= next_sweep:
                    ctx.store.messages.sweep()
                    next_sweep = loop.time() + sweep_every_s
                for q in ctx.store.queues.all():
                    url = q.options.get("forward_url")
                    if url:
                        busy += await _forward_queue(ctx, q, str(url), clients)
            except Exception:  # keep the server alive; the error is logged with its traceback
                log.exception("sandbox background task failed")
            if not busy:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=0.05)
    finally:
        for client in clients.values():
            client.close()
