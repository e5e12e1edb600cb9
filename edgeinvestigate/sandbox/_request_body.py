"""Request bodies: read with a size cap while they stream in, parse JSON with a nesting cap.

A body is never read whole before its size is known to be acceptable: a ``Content-Length`` over the
cap is refused before one byte is read, and a chunked body is read chunk by chunk and refused as soon
as it passes the cap (413 in the envelope; the rest of the body is never read). The cap is set per
route by the endpoint wrappers (``ApiEndpoint``, ``admin_endpoint``) in the ASGI scope:

- Cloudflare API routes: :data:`MAX_API_BODY` (2 MiB: the largest legal request, a batch of 256 KB
  of message bodies, fits even when every byte of it is JSON-escaped six-fold). A push that passes it
  gets ``message_too_large`` (11003), a batch push ``batch_too_large`` (11005), anything else
  ``body_too_large`` (10413);
- ``/__admin/`` routes: :data:`MAX_ADMIN_BODY` (64 MiB: the simulator loads events 2,000 at a time).

JSON nested deeper than :data:`MAX_JSON_DEPTH` levels is a 400, not a ``RecursionError`` deep inside a
handler: queue bodies and telemetry events are stored and served again, and Python's JSON encoder
gives up near 1,000 levels.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import ClientDisconnect, Request

from edgeinvestigate.sandbox._envelope import SandboxHTTPError

__all__ = [
    "LIMIT_KEY",
    "MAX_ADMIN_BODY",
    "MAX_API_BODY",
    "MAX_JSON_DEPTH",
    "json_depth",
    "parse_json",
    "read_body",
    "set_body_limit",
]

MAX_API_BODY = 2 * 1024 * 1024
MAX_ADMIN_BODY = 64 * 1024 * 1024
MAX_JSON_DEPTH = 128
#: the ASGI scope key holding ``(limit in bytes, error kind)`` of the current route
LIMIT_KEY = "edgeinvestigate.body_limit"


def set_body_limit(scope: Any, limit: int, kind: str = "body_too_large") -> None:
    """Cap the body of the request of ``scope`` at ``limit`` bytes; a larger one is a ``kind`` error."""
    scope[LIMIT_KEY] = (limit, kind)


async def read_body(request: Request) -> bytes:
    """The request body, read chunk by chunk up to the route's cap (413 past it)."""
    limit, kind = request.scope.get(LIMIT_KEY, (MAX_API_BODY, "body_too_large"))
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise SandboxHTTPError("bad_request", f"Content-Length {declared!r} is not a number") from None
        if size > limit:
            raise SandboxHTTPError(
                kind,
                f"the request body is {size} bytes (Content-Length), the limit of this route is {limit} "
                "bytes; send less per request",
            )
    buf = bytearray()
    try:
        async for chunk in request.stream():
            buf += chunk
            if len(buf) > limit:
                raise SandboxHTTPError(
                    kind,
                    f"the request body passed the limit of this route ({limit} bytes) while it was "
                    "being read; send less per request",
                )
    except ClientDisconnect:
        raise SandboxHTTPError("bad_request", "the client disconnected while sending the body") from None
    return bytes(buf)


def json_depth(value: Any, limit: int = MAX_JSON_DEPTH) -> int:
    """How deep ``value`` nests (a scalar is 0, ``[]`` 1); stops counting once past ``limit``.

    Iterative, so a deep document cannot exhaust the interpreter's stack here."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((c, depth + 1) for c in children if isinstance(c, dict | list))
    return deepest


def parse_json(raw: bytes) -> Any:
    """JSON text to a value; invalid or too deeply nested JSON is a 400 in the envelope."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise SandboxHTTPError(
            "bad_request",
            f"the request body nests JSON deeper than {MAX_JSON_DEPTH} levels; flatten it",
        ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise SandboxHTTPError("bad_request", f"request body is not valid JSON: {exc}") from exc
    if json_depth(value) > MAX_JSON_DEPTH:
        raise SandboxHTTPError(
            "bad_request", f"the request body nests JSON deeper than {MAX_JSON_DEPTH} levels; flatten it"
        )
    return value
