"""Turning a dead-lettered message back into a job: decode, unwrap, rewrite, hash.

The replayed body is the seed's ``QueueMessage`` (``{type, payload, metadata}``) with
``metadata.attempts`` reset to 0, ``metadata.lastAttempt`` set, ``metadata.originalTimestamp`` kept
and a ``metadata.replay`` block ``{id, of, plan, at}``. ``id`` is the idempotency key: the same for
the same original message and the same plan selection, so a consumer can drop a second copy.

Two ``{original, error}`` envelope shapes are unwrapped (``processing-architecture.md`` forwards
``message`` itself, which ``JSON.stringify`` turns into ``{id, timestamp, body, attempts}``; other
code forwards ``message.body``): both give back the job.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import msgspec

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_MESSAGES",
    "MAX_MESSAGE_BYTES",
    "MESSAGE_OVERHEAD_BYTES",
    "body_size",
    "canonical_bytes",
    "canonical_json",
    "decode_body",
    "idempotency_key",
    "is_queue_message",
    "js_iso",
    "replay_block",
    "rewrite",
    "sha256_hex",
    "unwrap",
]

#: Cloudflare Queues limits (1 KB = 1000 bytes; about 100 bytes of internal metadata count per message)
MAX_MESSAGE_BYTES = 128_000
MESSAGE_OVERHEAD_BYTES = 100
MAX_BATCH_MESSAGES = 100
MAX_BATCH_BYTES = 256_000


def canonical_bytes(obj: Any) -> bytes:
    """Deterministic compact JSON (sorted keys, UTF-8): what every hash is taken over (msgspec, fast)."""
    return msgspec.json.encode(obj, order="sorted")


def canonical_json(obj: Any) -> str:
    """:func:`canonical_bytes` as text (for display)."""
    return canonical_bytes(obj).decode("utf-8")


def sha256_hex(text: str | bytes) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


def body_size(body: Any) -> int:
    """Bytes a JSON body takes on the wire (compact JSON, UTF-8), without the per-message overhead."""
    return len(msgspec.json.encode(body))


def idempotency_key(message_id: str, selection_digest: str) -> str:
    """The replay id of one original message under one plan selection (stable across re-plans)."""
    return "rpl_" + sha256_hex(f"{selection_digest}\x00{message_id}")[:32]


def decode_body(raw: Any, content_type: str | None) -> tuple[Any, str | None]:
    """Decode a DLQ body as the Queues API returns it: ``(value, None)`` or ``(None, why not)``.

    Uses :func:`sources.api.dlq_body.decode_body` (reference D2: ``json`` bodies as plain JSON text or
    base64 of it); ``bytes`` and ``v8`` cannot be replayed over the REST API and are refused here.
    """
    from edgeinvestigate.sources.api.dlq_body import decode_body as _decode

    ctype = (content_type or "").strip().lower() or None
    if ctype in ("v8", "bytes"):
        return None, f"{ctype} body: the REST API can only push text and json messages"
    if raw is None:
        return None, "no body in the snapshot"
    decoded = _decode(raw, ctype)
    if decoded.decode_error or not decoded.has_value:
        return None, decoded.decode_error or "the body has no JSON or text value"
    return decoded.value, None


def is_queue_message(obj: Any) -> bool:
    """A seed ``QueueMessage``: an object with a string ``type`` and a ``payload``."""
    return isinstance(obj, dict) and isinstance(obj.get("type"), str) and "payload" in obj


def unwrap(body: Any) -> tuple[dict[str, Any] | None, str]:
    """The job inside a DLQ body, and how it was stored.

    Returns ``(message, shape)`` where shape is ``raw`` (the body is the job), ``wrapped`` (an
    ``{original: job, error}`` envelope), ``wrapped-message`` (``{original: {id, timestamp, body,
    attempts}, error}``), or ``(None, "unknown")``.
    """
    if is_queue_message(body):
        return body, "raw"
    if isinstance(body, dict) and "original" in body:
        original = body["original"]
        if isinstance(original, str):  # some producers stringify the original
            try:
                original = json.loads(original)
            except ValueError:
                return None, "unknown"
        if is_queue_message(original):
            return original, "wrapped"
        if isinstance(original, dict) and is_queue_message(original.get("body")):
            return original["body"], "wrapped-message"
    return None, "unknown"


def replay_block(*, replay_id: str, of: str, plan: str, at: str) -> dict[str, str]:
    return {"id": replay_id, "of": of, "plan": plan, "at": at}


def rewrite(
    message: dict[str, Any], *, replay: dict[str, str], original_timestamp: str | None
) -> dict[str, Any]:
    """The body to push: a copy of ``message`` with fresh attempts and the replay block.

    ``original_timestamp`` fills ``metadata.originalTimestamp`` only when the job had none (it is
    the DLQ message's own timestamp then); an existing one is always kept.
    """
    out = dict(message)  # the caller owns ``message`` (freshly decoded); only metadata is replaced
    meta = out.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
    meta = dict(meta)
    meta["attempts"] = 0
    meta["lastAttempt"] = replay["at"]
    if not meta.get("originalTimestamp") and original_timestamp:
        meta["originalTimestamp"] = original_timestamp
    meta["replay"] = dict(replay)
    out["metadata"] = meta
    return out


def js_iso(ts: Any) -> str | None:
    """A JavaScript-style ISO time (``2026-11-27T14:00:00.000Z``) or None."""
    if ts is None:
        return None
    if isinstance(ts, datetime):  # also pd.Timestamp
        if ts != ts:  # NaT
            return None
        t = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
        return f"{t:%Y-%m-%dT%H:%M:%S}.{t.microsecond // 1000:03d}Z"
    try:
        import pandas as pd

        if pd.isna(ts):
            return None
        return js_iso(pd.Timestamp(ts).to_pydatetime())
    except (TypeError, ValueError):
        return None
