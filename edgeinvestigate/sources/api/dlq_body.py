"""What a DLQ message body holds: decoding (reference D2) and the job envelope inside.

Bodies are decoded exactly as ``cloudflare-formats.md`` D2 says (the live API's encoding of ``json``
bodies is UNCONFIRMED, so both forms are accepted):

- ``text``: the string as is;
- ``json``: plain JSON text first, then validated base64 of JSON text; if neither, the raw string is
  kept and ``decode_error`` says why;
- ``bytes``: base64, decoded to bytes (kept as base64 in ``body_raw``);
- ``v8``: kept opaque (base64) and flagged in ``decode_error``: it cannot be decoded outside Workers
  nor replayed through the REST API;
- no content type (older producers): tried as ``json``, else kept as opaque ``v8``.

A message whose body cannot be decoded is kept with ``decode_error``; nothing is ever dropped.

The seed's job envelopes (``processing-architecture.md``) are recognised with pydantic models:

- ``raw``: a ``QueueMessage`` ``{type, payload, metadata: {attempts, originalTimestamp, lastAttempt?}}``
  (what ``env.DLQ.send(message.body)`` and the platform's automatic dead-lettering store);
- ``wrapped``: ``{original: QueueMessage, error}`` or ``{original: {id, timestamp, body, attempts}, error}``
  (``env.DEAD_LETTER_QUEUE.send({original: message, error: error.message})``);
- ``unknown``: anything else; ``payload`` then holds the whole decoded body as JSON text.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, ValidationError

__all__ = [
    "V8_FLAG",
    "DecodedBody",
    "Envelope",
    "QueueMessage",
    "QueueMessageMetadata",
    "RuntimeMessage",
    "WrappedQueueMessage",
    "WrappedRuntimeMessage",
    "decode_body",
    "recognise_envelope",
]

V8_FLAG = (
    "v8: undecodable V8 structured-clone body (kept as base64; it cannot be decoded outside Workers "
    "nor replayed through the REST API)"
)


# ---------------------------------------------------------------------------------------------
# body decoding (reference D2)


@dataclass(frozen=True)
class DecodedBody:
    """A decoded message body.

    ``value`` is the decoded JSON value (``json``), the string (``text``), or ``None``;
    ``data`` holds decoded bytes (``bytes``); ``encoding`` says how ``json`` arrived
    (``plain`` or ``base64``); ``decode_error`` is set when the body could not be decoded or is
    opaque (``v8``).
    """

    content_type: str | None
    value: Any = None
    data: bytes | None = None
    encoding: Literal["plain", "base64", "none"] = "none"
    decode_error: str | None = None

    @property
    def has_value(self) -> bool:
        return self.decode_error is None and self.content_type in ("json", "text", None) and self.data is None


def _b64(body: str) -> bytes:
    return base64.b64decode(body.strip(), validate=True)


def _as_json(body: str) -> tuple[Any, str] | tuple[None, str]:
    """(value, "plain"|"base64") or (None, reason)."""
    try:
        return json.loads(body), "plain"
    except json.JSONDecodeError as plain_exc:
        plain_reason = f"not JSON ({plain_exc.msg} at char {plain_exc.pos})"
    try:
        raw = _b64(body)
    except (binascii.Error, ValueError):
        return None, f"{plain_reason} and not base64"
    try:
        return json.loads(raw.decode("utf-8")), "base64"
    except UnicodeDecodeError:
        return None, f"{plain_reason}; base64 decodes to bytes that are not UTF-8"
    except json.JSONDecodeError as exc:
        return None, f"{plain_reason}; base64 decodes to text that is not JSON ({exc.msg})"


def decode_body(body: Any, content_type: str | None) -> DecodedBody:
    """Decode one pulled/peeked ``body`` given ``metadata["CF-Content-Type"]`` (reference D2)."""
    ct = content_type.strip().lower() if isinstance(content_type, str) and content_type.strip() else None
    if not isinstance(body, str):
        # not the wire shape (a hand-written file with an object body): take the value as given
        if ct in (None, "json"):
            return DecodedBody(ct, value=body, encoding="plain")
        return DecodedBody(ct, decode_error=f"{ct} body is a {type(body).__name__}, expected a string")
    if ct == "text":
        return DecodedBody(ct, value=body, encoding="plain")
    if ct == "json":
        value, how = _as_json(body)
        if value is None and how not in ("plain", "base64"):
            return DecodedBody(ct, decode_error=f"json body is {how}; kept raw")
        return DecodedBody(ct, value=value, encoding=how)  # type: ignore[arg-type]
    if ct == "bytes":
        try:
            return DecodedBody(ct, data=_b64(body), encoding="base64")
        except (binascii.Error, ValueError) as exc:
            return DecodedBody(ct, decode_error=f"bytes body is not valid base64 ({exc}); kept raw")
    if ct == "v8":
        return DecodedBody(ct, encoding="base64", decode_error=V8_FLAG)
    if ct is None:
        value, how = _as_json(body)
        if how in ("plain", "base64"):
            return DecodedBody(None, value=value, encoding=how)  # type: ignore[arg-type]
        return DecodedBody(
            None,
            encoding="base64",
            decode_error=f"no CF-Content-Type and the body is {how}: treated as {V8_FLAG}",
        )
    return DecodedBody(ct, decode_error=f"unknown content type {content_type!r}; body kept raw")


# ---------------------------------------------------------------------------------------------
# envelopes (processing-architecture.md)


class QueueMessageMetadata(BaseModel):
    """``QueueMessage.metadata``: ``{attempts, originalTimestamp, lastAttempt?}``."""

    model_config = ConfigDict(extra="allow")

    attempts: StrictInt
    originalTimestamp: StrictStr | StrictInt
    lastAttempt: StrictStr | StrictInt | None = None


class QueueMessage(BaseModel):
    """The seed's job message ``{type, payload, metadata}``."""

    model_config = ConfigDict(extra="allow")

    type: StrictStr
    payload: Any = None
    metadata: QueueMessageMetadata


class RuntimeMessage(BaseModel):
    """``JSON.stringify(message)`` of a runtime ``Message``: ``{id, timestamp, body, attempts}``."""

    model_config = ConfigDict(extra="allow")

    id: StrictStr
    timestamp: StrictStr | StrictInt
    body: Any = None
    attempts: StrictInt


class WrappedQueueMessage(BaseModel):
    """``{original: QueueMessage, error}``."""

    model_config = ConfigDict(extra="allow")

    original: QueueMessage
    error: Any = None


class WrappedRuntimeMessage(BaseModel):
    """``{original: {id, timestamp, body, attempts}, error}``."""

    model_config = ConfigDict(extra="allow")

    original: RuntimeMessage
    error: Any = None


@dataclass(frozen=True)
class Envelope:
    """What the envelope says: the job fields (``None`` when unknown)."""

    kind: Literal["raw", "wrapped", "unknown"]
    job_type: str | None = None
    job_id: str | None = None
    payload: Any = None
    has_payload: bool = False
    original_timestamp: Any = None
    meta_attempts: int | None = None
    last_attempt: Any = None
    error: str | None = None
    original_id: str | None = None


_JOB_ID_KEYS = ("jobId", "job_id", "jobID")


def _job_id(payload: Any, extra: Mapping[str, Any] | None = None) -> str | None:
    for source in (payload, extra or {}):
        if isinstance(source, Mapping):
            for key in _JOB_ID_KEYS:
                v = source.get(key)
                if isinstance(v, str | int) and not isinstance(v, bool):
                    return str(v)
    return None


def _error_text(error: Any) -> str | None:
    if error is None:
        return None
    if isinstance(error, str):
        return error
    if isinstance(error, Mapping) and isinstance(error.get("message"), str):
        return str(error["message"])
    return json.dumps(error, ensure_ascii=False, sort_keys=True)


def _from_job(msg: QueueMessage, kind: Literal["raw", "wrapped"], **extra: Any) -> Envelope:
    return Envelope(
        kind=kind,
        job_type=msg.type,
        job_id=_job_id(msg.payload, msg.model_extra),
        payload=msg.payload,
        has_payload=True,
        original_timestamp=msg.metadata.originalTimestamp,
        meta_attempts=msg.metadata.attempts,
        last_attempt=msg.metadata.lastAttempt,
        **extra,
    )


def recognise_envelope(value: Any) -> Envelope:
    """Recognise a decoded body as ``raw``, ``wrapped`` or ``unknown``."""
    if not isinstance(value, Mapping):
        return Envelope("unknown", payload=value, has_payload=True)
    if "original" in value:
        try:
            w = WrappedQueueMessage.model_validate(value)
            return _from_job(w.original, "wrapped", error=_error_text(w.error))
        except ValidationError:
            pass
        try:
            r = WrappedRuntimeMessage.model_validate(value)
        except ValidationError:
            return Envelope("unknown", payload=value, has_payload=True)
        orig = r.original
        error = _error_text(r.error)
        try:
            job = QueueMessage.model_validate(orig.body)
        except ValidationError:
            return Envelope(
                "wrapped",
                job_id=_job_id(orig.body),
                payload=orig.body,
                has_payload=True,
                original_timestamp=orig.timestamp,
                meta_attempts=orig.attempts,
                error=error,
                original_id=orig.id,
            )
        return _from_job(job, "wrapped", error=error, original_id=orig.id)
    try:
        return _from_job(QueueMessage.model_validate(value), "raw")
    except ValidationError:
        return Envelope("unknown", job_id=_job_id(value), payload=value, has_payload=True)
