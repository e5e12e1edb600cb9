"""Realistic DLQ messages, shaped exactly like a Queues peek/pull response (cloudflare-formats.md D1/D2)
carrying the seed's QueueMessage jobs (processing-architecture.md)."""

from __future__ import annotations

import base64
import json
import random
from typing import Any

JOB_TYPES = ("IMAGE_PROCESSING", "EMAIL_DELIVERY", "REPORT_GENERATION", "DATA_SYNC", "WEBHOOK_PROCESSING")
T0_MS = 1_795_960_800_000  # 2026-11-29T14:00:00Z


def iso(ms: int) -> str:
    from datetime import UTC, datetime

    t = datetime.fromtimestamp(ms / 1000, UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def message_id(i: int) -> str:
    return f"{i:08x}" + "d0165c2985833f5660dd0000"[: 32 - 8]


def job(i: int, job_type: str | None = None, *, size: int = 0) -> dict[str, Any]:
    jt = job_type or JOB_TYPES[i % len(JOB_TYPES)]
    payload: dict[str, Any] = {"jobId": f"job-{i:06d}"}
    if jt == "EMAIL_DELIVERY":
        payload |= {"to": f"user{i}@example.com", "template": "welcome", "data": {"name": f"User {i}"}}
    elif jt == "IMAGE_PROCESSING":
        payload |= {"imageUrl": f"https://cdn.example.com/u/{i}.png", "sizes": [64, 256]}
    elif jt == "WEBHOOK_PROCESSING":
        payload |= {"url": f"https://hooks.example.com/{i}", "event": "order.paid"}
    else:
        payload |= {"accountId": f"acct-{i % 17}"}
    if size:
        payload["blob"] = "x" * size
    t = T0_MS + i * 1000
    return {
        "type": jt,
        "payload": payload,
        "metadata": {"attempts": 3, "originalTimestamp": iso(t - 60_000), "lastAttempt": iso(t - 1000)},
    }


def peeked(
    i: int,
    body: Any,
    *,
    content_type: str = "json",
    encoding: str = "plain",
    attempts: int = 1,
    lease_id: str | None = None,
) -> dict[str, Any]:
    """One message as peek/pull returns it: body is always a string."""
    if content_type == "json":
        text = json.dumps(body)
        wire = base64.b64encode(text.encode()).decode() if encoding == "base64" else text
    elif content_type in ("v8", "bytes"):
        wire = base64.b64encode(b"\xff\x0d\x6f\x22\x04type").decode()
    else:
        wire = str(body)
    m: dict[str, Any] = {
        "id": message_id(i),
        "body": wire,
        "attempts": attempts,
        "timestamp_ms": T0_MS + i * 1000,
        "metadata": {"CF-Content-Type": content_type, "CF-sourceMessageSource": "api"},
    }
    if lease_id:
        m["lease_id"] = lease_id
    return m


def dlq_messages(n: int, *, seed: int = 7) -> list[dict[str, Any]]:
    """``n`` DLQ messages: mostly raw jobs, some wrapped (both shapes), some base64 json."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        j = job(i)
        r = rng.random()
        if r < 0.1:
            body: Any = {"original": j, "error": "SMTP 550 mailbox unavailable"}
        elif r < 0.15:
            body = {
                "original": {"id": message_id(i), "timestamp": iso(T0_MS), "body": j, "attempts": 4},
                "error": "TypeError: Cannot read properties of undefined (reading 'url')",
            }
        else:
            body = j
        out.append(peeked(i, body, encoding="base64" if r > 0.95 else "plain"))
    return out
