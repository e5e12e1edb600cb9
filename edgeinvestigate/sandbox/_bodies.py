"""Message bodies: how they are stored and how pull/peek show them (reference section D2).

Bodies are stored as the bytes the producer published plus the content type:

- ``text``: the UTF-8 string
- ``json``: the JSON text of the value
- ``bytes`` / ``v8``: the raw bytes (v8 is an opaque structured-clone blob)

On the wire (pull and peek) ``body`` is always a JSON string and ``metadata["CF-Content-Type"]`` names the
type. ``text`` is the string as is; ``bytes`` and ``v8`` are base64 (RFC 4648). ``json`` is the JSON text
itself by default (``"plain"``, what live Cloudflare returns today according to a third-party capture), or
base64 of the JSON text when the queue was created with ``json_body_encoding: "base64"`` (what the docs
describe). Clients must decode both.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

__all__ = [
    "CONTENT_TYPES",
    "PUSHABLE_CONTENT_TYPES",
    "BodyError",
    "encode_admin_body",
    "encode_push_body",
    "wire_body",
]

CONTENT_TYPES = ("text", "json", "bytes", "v8")
PUSHABLE_CONTENT_TYPES = ("text", "json")


class BodyError(ValueError):
    """A body that does not fit its content type."""


def _json_bytes(value: Any) -> bytes:
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
    except (TypeError, ValueError) as exc:  # pragma: no cover - request JSON is always serialisable
        raise BodyError(f"body is not JSON-serialisable: {exc}") from exc


def encode_push_body(body: Any, content_type: str) -> bytes:
    """Bytes to store for a REST push (only ``text`` and ``json`` can be pushed over REST)."""
    if content_type == "text":
        if not isinstance(body, str):
            raise BodyError("content_type 'text' needs a string body")
        return body.encode()
    if content_type == "json":
        return _json_bytes(body)
    raise BodyError(f"content_type {content_type!r} cannot be pushed over REST (only text or json)")


def encode_admin_body(body: Any, content_type: str, body_encoding: str | None) -> bytes:
    """Bytes to store for an admin-loaded message.

    ``body_encoding="base64"`` means ``body`` is base64 of the stored bytes (any content type); this is
    the only form for ``bytes`` and ``v8``. Otherwise ``text`` takes a string and ``json`` any JSON value.
    """
    if content_type not in CONTENT_TYPES:
        raise BodyError(f"unknown content_type {content_type!r} (expected one of {', '.join(CONTENT_TYPES)})")
    if body_encoding == "base64" or content_type in ("bytes", "v8"):
        if not isinstance(body, str):
            raise BodyError(f"content_type {content_type!r} needs a base64 string body")
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise BodyError(f"body is not valid base64: {exc}") from exc
    if body_encoding not in (None, "value"):
        raise BodyError(f"unknown body_encoding {body_encoding!r} (expected 'value' or 'base64')")
    return encode_push_body(body, content_type)


def wire_body(stored: bytes, content_type: str, json_encoding: str = "plain") -> str:
    """The ``body`` string of a pulled or peeked message."""
    if content_type == "text":
        return stored.decode("utf-8", errors="replace")
    if content_type == "json" and json_encoding == "plain":
        return stored.decode("utf-8", errors="replace")
    return base64.b64encode(stored).decode("ascii")
