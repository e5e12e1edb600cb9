"""``workers_logs/events.json``: Workers Logs query-API events (cloudflare-formats C2).

Each invocation gives one ``cf-worker-event`` line (the automatic invocation log, carrying outcome,
CPU and wall time and the trigger) and one ``cf-worker`` line per ``console.*`` call and per
uncaught exception (``{message, exception:{name, message, stack, timestamp}}``). Events have the
API shape ``{dataset, timestamp, source, $metadata, $workers}`` (schema
``workers-observability_telemetry_event``); ``$metadata.id`` is a time-ordered ULID, the paging
cursor. The file is a JSON array, one event per line; ``--sandbox`` loads the same events.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from edgeinvestigate.simulator._records import InvocationView, fetch_request, invocations
from edgeinvestigate.simulator._simulation import Simulation
from edgeinvestigate.simulator._values import ulids

__all__ = ["event_lines", "iter_events", "write_workers_logs"]

_DEC = msgspec.json.Decoder()
_ENC = msgspec.json.Encoder()


def _source(text: str) -> Any:
    if text.startswith("{"):
        try:
            return _DEC.decode(text)
        except msgspec.DecodeError:
            pass
    return {"message": text}


def _wevent(inv: InvocationView) -> dict[str, Any]:
    if inv.trigger == "queue":
        return {"queue": inv.queue, "batchSize": inv.batch}
    if inv.trigger == "fetch":
        req = fetch_request(inv)
        req["path"] = "/v1/jobs"
        return {"request": req, "response": {"status": inv.status}, "rayId": inv.ray_id}
    return {"cron": inv.cron, "scheduledTime": inv.ts - (inv.ts % 60_000)}


def _invocation_parts(
    inv: InvocationView, acct: str, inv_id: str
) -> tuple[dict[str, Any], dict[str, Any], str, str]:
    """(the cf-worker-event event, the ``$workers`` of its lines, trigger, origin)."""
    version = {"id": inv.version.id, "message": inv.version.message, "tag": inv.version.tag}
    origin = inv.trigger
    if inv.trigger == "fetch":
        trigger = "POST /v1/jobs"
        message = f"POST {inv.url}"
    elif inv.trigger == "queue":
        trigger = inv.queue
        message = f"Queue {inv.queue} ({inv.batch} message{'s' if inv.batch != 1 else ''})"
    else:
        trigger = inv.cron
        message = f"Cron {inv.cron}"
    failed = inv.outcome != "ok" or bool(inv.exceptions)
    meta: dict[str, Any] = {
        "id": inv_id,
        "requestId": inv.request_id,
        "trigger": trigger,
        "service": inv.script,
        "level": "error" if failed else "info",
        "message": message,
        "type": "cf-worker-event",
        "origin": origin,
        "startTime": inv.ts,
        "endTime": inv.ts + inv.wall,
        "account": acct,
        "cloudService": "workers",
        "provider": "cloudflare",
        "region": inv.colo,
    }
    if inv.wall > 0:
        meta["duration"] = inv.wall
    if inv.exceptions:
        meta["error"] = inv.exceptions[0][2]
    if inv.trigger == "fetch":
        meta["statusCode"] = inv.status
        meta["url"] = inv.url
        meta["rayId"] = inv.ray_id
    # the $workers of every log line of the invocation; the invocation event adds its timings
    line_workers = {
        "scriptName": inv.script,
        "eventType": inv.trigger,
        "requestId": inv.request_id,
        "outcome": inv.outcome,
        "scriptVersion": version,
        "executionModel": "stateless",
        "truncated": False,
    }
    event = {
        "dataset": "cloudflare-workers",
        "timestamp": inv.ts,
        "source": {},
        "$metadata": meta,
        "$workers": {
            **line_workers,
            "wallTimeMs": inv.wall,
            "cpuTimeMs": inv.cpu,
            "event": _wevent(inv),
            "diagnosticsChannelEvents": [],
        },
    }
    return event, line_workers, trigger, origin


def _exception_event(
    inv: InvocationView, exc: tuple[int, str, str, str], eid: str, trigger: str, origin: str, acct: str,
    line_workers: dict[str, Any],
) -> dict[str, Any]:  # fmt: skip
    ts, name, msg, stack = exc
    return {
        "dataset": "cloudflare-workers",
        "timestamp": ts,
        "source": {
            "message": f"{name}: {msg}",
            "exception": {"name": name, "message": msg, "stack": stack, "timestamp": ts},
        },
        "$metadata": {
            "id": eid,
            "requestId": inv.request_id,
            "trigger": trigger,
            "service": inv.script,
            "level": "error",
            "message": f"{name}: {msg}",
            "error": msg,
            "type": "cf-worker",
            "origin": origin,
            "account": acct,
        },
        "$workers": line_workers,
    }


def _ids(sim: Simulation) -> tuple[list[str], list[str], list[str]]:
    rng = np.random.default_rng([sim.seed, 0xC0FFEE])
    return (
        ulids(rng, len(sim.i_ts), sim.i_ts),
        ulids(rng, len(sim.l_ts), sim.l_ts),
        ulids(rng, len(sim.x_ts), sim.x_ts),
    )


def iter_events(sim: Simulation) -> Iterator[dict[str, Any]]:
    """Every Workers Logs event of the run as a dict, invocation by invocation (the reference shape)."""
    acct = sim.account_id
    inv_ids, log_ids, exc_ids = _ids(sim)
    l_off = sim.l_off.tolist()
    x_off = sim.x_off.tolist()
    for inv in invocations(sim):
        la, xa = l_off[inv.index], x_off[inv.index]
        event, line_workers, trigger, origin = _invocation_parts(inv, acct, inv_ids[inv.index])
        yield event
        for k, (ts, level, text) in enumerate(inv.logs):
            src = _source(text)
            lmeta: dict[str, Any] = {
                "id": log_ids[la + k],
                "requestId": inv.request_id,
                "trigger": trigger,
                "service": inv.script,
                "level": level,
                "message": text,
                "type": "cf-worker",
                "origin": origin,
                "account": acct,
            }
            if isinstance(src, dict) and isinstance(src.get("error"), str):
                lmeta["error"] = src["error"]
            elif level == "error":
                lmeta["error"] = text
            yield {
                "dataset": "cloudflare-workers",
                "timestamp": ts,
                "source": src,
                "$metadata": lmeta,
                "$workers": line_workers,
            }
        for k, exc in enumerate(inv.exceptions):
            yield _exception_event(inv, exc, exc_ids[xa + k], trigger, origin, acct, line_workers)


def event_lines(sim: Simulation) -> Iterator[bytes]:
    """The same events as :func:`iter_events`, as compact JSON bytes (the fast path)."""
    enc = _ENC.encode
    acct = sim.account_id
    acct_j = enc(acct)
    inv_ids, log_ids, exc_ids = _ids(sim)
    l_off = sim.l_off.tolist()
    x_off = sim.x_off.tolist()
    l_error = sim.l_error
    for inv in invocations(sim):
        la, xa = l_off[inv.index], x_off[inv.index]
        event, line_workers, trigger, origin = _invocation_parts(inv, acct, inv_ids[inv.index])
        yield enc(event)
        head = b'"requestId":%b,"trigger":%b,"service":%b,' % (
            enc(inv.request_id),
            enc(trigger),
            enc(inv.script),
        )
        tail = b',"type":"cf-worker","origin":"%b","account":%b' % (origin.encode(), acct_j)
        workers = enc(line_workers)
        for k, (ts, level, text) in enumerate(inv.logs):
            tj = enc(text)
            err = l_error[la + k]
            if text.startswith("{"):
                src = text.encode()
                extra = b',"error":%b' % enc(err) if err is not None else b""
            else:
                src = b'{"message":%b}' % tj
                extra = b',"error":%b' % tj if level == "error" else b""
            yield (
                b'{"dataset":"cloudflare-workers","timestamp":%d,"source":%b,"$metadata":{"id":"%b",%b'
                b'"level":"%b","message":%b%b%b},"$workers":%b}'
                % (ts, src, log_ids[la + k].encode(), head, level.encode(), tj, tail, extra, workers)
            )
        for k, exc in enumerate(inv.exceptions):
            yield enc(_exception_event(inv, exc, exc_ids[xa + k], trigger, origin, acct, line_workers))


def write_workers_logs(sim: Simulation, path: Path) -> int:
    """Write the events as a JSON array (one event per line); returns the number of events."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("wb") as fh:
        fh.write(b"[")
        buf: list[bytes] = []
        for line in event_lines(sim):
            buf.append((b",\n" if n else b"\n") + line)
            n += 1
            if len(buf) >= 8192:
                fh.write(b"".join(buf))
                buf.clear()
        fh.write(b"".join(buf))
        fh.write(b"\n]\n")
    return n
