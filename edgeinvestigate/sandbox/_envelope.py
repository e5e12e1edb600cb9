"""Cloudflare response envelopes and the sandbox's error codes.

Three API families answer with slightly different envelopes (all from the OpenAPI subset):

- ``queues``: ``{success, errors: [{code, message}], messages: [str], result}``
- ``telemetry``: ``messages: [{message}]``; errors ``[{code, message, detail}]`` where ``message`` is the
  status phrase (``"Bad Request"``, ``"Unauthorized"`` ...) and ``detail`` says what went wrong
- ``workers`` (tails): like queues, but ``messages`` are objects and failures carry ``result: null``

The error codes are listed in ``ARCHITECTURE.md`` (Sandbox section).
"""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

__all__ = ["CODES", "SandboxHTTPError", "error_response", "family_of", "success"]

# code -> (http status, message). Real Cloudflare codes where known (7003, 9106, 9109, 10007),
# sandbox-specific ones otherwise (documented in ARCHITECTURE.md).
CODES: dict[str, tuple[int, int, str]] = {
    "no_route": (404, 7003, "No route for the URI"),
    "method_not_allowed": (405, 7001, "Method not allowed for this route"),
    "missing_auth": (401, 9106, "Missing Authorization header (Bearer token)"),
    "invalid_token": (403, 9109, "Invalid access token"),
    "bad_request": (400, 10001, "Invalid request"),
    "internal": (500, 10002, "Internal server error"),
    "rate_limited": (429, 10429, "Rate limited: too many requests, please wait and retry"),
    "script_not_found": (404, 10007, "Worker script or tail not found"),
    "too_many_tails": (429, 10057, "Too many live tails for this Worker (at most 10)"),
    "queue_not_found": (404, 11000, "Queue not found"),
    "consumer_not_found": (404, 11001, "Consumer not found"),
    "no_pull_consumer": (400, 11002, "Queue has no http_pull consumer"),
    "message_too_large": (413, 11003, "Message too large"),
    "batch_too_many": (400, 11004, "Too many messages in batch"),
    "batch_too_large": (413, 11005, "Batch too large"),
    "invalid_batch_size": (400, 11006, "Invalid batch_size"),
    "invalid_visibility": (400, 11007, "Invalid visibility_timeout_ms"),
    "invalid_delay": (400, 11008, "Invalid delay_seconds"),
    "invalid_content_type": (400, 11009, "Invalid content_type"),
    "invalid_body": (400, 11010, "Invalid message body"),
    "purge_not_confirmed": (400, 11011, "Purge not confirmed"),
    "invalid_query": (400, 10001, "Bad Request"),
    "body_too_large": (413, 10413, "Request body too large"),
}

TELEMETRY_PHRASES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    413: "Payload Too Large",
    429: "Too many requests",
    500: "Internal error",
}


class SandboxHTTPError(Exception):
    """Raised by handlers; rendered as a Cloudflare error envelope by the endpoint wrapper."""

    def __init__(self, kind: str, detail: str = "", *, status: int | None = None) -> None:
        super().__init__(detail or kind)
        default_status, self.code, self.message = CODES[kind]
        self.kind = kind
        self.status = status if status is not None else default_status
        self.detail = detail


def family_of(path: str) -> str:
    """Which envelope family a request path belongs to."""
    if "/workers/observability/" in path:
        return "telemetry"
    if "/workers/scripts/" in path:
        return "workers"
    return "queues"


def success(result: Any, family: str = "queues", **extra: Any) -> dict[str, Any]:
    messages: list[Any] = [{"message": "Successful request"}] if family == "telemetry" else []
    body: dict[str, Any] = {"success": True, "errors": [], "messages": messages, "result": result}
    body.update(extra)
    return body


def error_body(exc: SandboxHTTPError, family: str) -> dict[str, Any]:
    text = f"{exc.message}: {exc.detail}" if exc.detail else exc.message
    if family == "telemetry":
        phrase = TELEMETRY_PHRASES.get(exc.status, "Bad Request")
        err = {"code": exc.code, "message": phrase, "detail": text}
        return {"success": False, "errors": [err], "messages": [], "result": None}
    return {
        "success": False,
        "errors": [{"code": exc.code, "message": text}],
        "messages": [],
        "result": None,
    }


def error_response(exc: SandboxHTTPError, family: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(exc, family), status_code=exc.status, headers=headers)
