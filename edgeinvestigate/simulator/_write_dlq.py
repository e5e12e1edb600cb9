"""``dlq/messages.json``: the dead-letter queue as a peek would show it (cloudflare-formats D1/D2/D6).

``{"queue": "<dlq name>", "messages": [{id, body, attempts, timestamp_ms, metadata}]}`` in arrival
order. ``body`` is a JSON string encoded by content type as the reference describes: ``json``
bodies are base64 of the UTF-8 JSON text (the documented encoding) or the plain JSON text
(``dlq_json_encoding = "plain"``, what a live capture showed); ``metadata["CF-Content-Type"]`` says
the type.

- Explicit sends by the consumer (permanent errors) are new messages: new id, ``timestamp_ms`` of the
  send, body ``{original, error}`` (``original`` is the ``Message`` as ``JSON.stringify`` shows it,
  ``{id, timestamp, body, attempts}``, or the ``QueueMessage`` body, by scenario).
- Runtime moves after ``max_retries`` keep the original id, timestamp and body bytes (as miniflare
  does; UNCONFIRMED for production).
- ``attempts`` counts deliveries *from the DLQ* (earlier snapshot pulls), not the original failures.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import msgspec

from edgeinvestigate.simulator._simulation import Simulation

__all__ = ["dlq_messages", "encode_body", "write_dlq"]

_ENC = msgspec.json.Encoder()


def encode_body(body: Any, encoding: str) -> str:
    """The ``body`` string of a peek/pull response for a ``json`` message."""
    raw = _ENC.encode(body)
    if encoding == "base64":
        return base64.b64encode(raw).decode("ascii")
    return raw.decode("utf-8")


def dlq_messages(sim: Simulation) -> list[dict[str, Any]]:
    """Peek-shaped messages of the DLQ, in arrival order."""
    enc = sim.scenario.system.dlq_json_encoding
    return [
        {
            "id": m["id"],
            "body": encode_body(m["body"], enc),
            "attempts": m["attempts"],
            "timestamp_ms": m["timestamp_ms"],
            "metadata": {"CF-Content-Type": "json"},
        }
        for m in sim.dlq
    ]


def write_dlq(sim: Simulation, path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    msgs = dlq_messages(sim)
    data = {"queue": sim.scenario.system.dlq, "messages": msgs}
    path.write_bytes(msgspec.json.format(_ENC.encode(data), indent=2) + b"\n")
    return len(msgs)
