"""The wrapper every Cloudflare API route goes through: auth, rate limit, faults, envelope.

It is a plain ASGI app (not a Starlette request/response function) so that the "drop" and
"commit then time out" faults can cut the connection after the status line.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from edgeinvestigate.sandbox._context import SandboxContext
from edgeinvestigate.sandbox._envelope import SandboxHTTPError, error_response, family_of, success
from edgeinvestigate.sandbox._request_body import MAX_API_BODY, parse_json, read_body, set_body_limit

__all__ = ["ApiEndpoint", "DropFilter", "MethodDispatch", "bearer_error", "read_json"]

log = logging.getLogger("edgeinvestigate.sandbox")

Handler = Callable[[Request, SandboxContext], Awaitable[Any]]

_DROP_MESSAGE = "ASGI callable returned without completing response."


class DropFilter(logging.Filter):
    """Hide uvicorn's error line for connections the fault injector dropped on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _DROP_MESSAGE


async def drop_connection(send: Send) -> None:
    """Send a status line promising a body, then return: uvicorn closes the socket mid-response."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
        }
    )


def bearer_error(request: Request, ctx: SandboxContext) -> SandboxHTTPError | None:
    if any(h in request.headers for h in ("x-auth-email", "x-auth-key", "x-auth-user-service-key")):
        return SandboxHTTPError(
            "invalid_token",
            "the sandbox accepts API tokens only (Authorization: Bearer), not global API keys",
        )
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if not header or scheme.lower() != "bearer" or not presented.strip():
        return SandboxHTTPError("missing_auth", "send 'Authorization: Bearer <token>'")
    if not ctx.token_ok(presented.strip()):
        return SandboxHTTPError("invalid_token", "the bearer token is not this sandbox's token")
    return None


async def read_json(request: Request, *, required: bool = True) -> Any:
    """The JSON body, read up to the route's size cap and nesting cap (see :mod:`._request_body`)."""
    raw = await read_body(request)
    if not raw.strip():
        if required:
            raise SandboxHTTPError("bad_request", "a JSON request body is required")
        return {}
    return parse_json(raw)


#: the error a too-large body gets, by operation (the same code as the API's own size checks)
_TOO_LARGE = {"push": "message_too_large", "batch": "batch_too_large"}


class ApiEndpoint:
    """One Cloudflare API operation. ``handler`` returns the ``result`` (or a full Response)."""

    def __init__(self, ctx: SandboxContext, op: str, handler: Handler, *, exempt: bool = False) -> None:
        self.ctx = ctx
        self.op = op
        self.handler = handler
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx = self.ctx
        set_body_limit(scope, MAX_API_BODY, _TOO_LARGE.get(self.op, "body_too_large"))
        request = Request(scope, receive)
        family = family_of(scope["path"])
        auth = bearer_error(request, ctx)
        if auth is not None:
            await error_response(auth, family)(scope, receive, send)
            return
        if not ctx.limiter.take(self.exempt):
            headers = ctx.limiter.headers() | {"Retry-After": str(ctx.limiter.reset_in())}
            err = SandboxHTTPError(
                "rate_limited", f"over {ctx.limiter.limit} requests per {ctx.limiter.window_s} s"
            )
            await error_response(err, family, headers)(scope, receive, send)
            return
        headers = ctx.limiter.headers()
        fault = ctx.faults.before(self.op)
        if fault == "drop":
            await drop_connection(send)
            return
        if fault == "429":
            retry_after = ctx.faults.spec.retry_after
            err = SandboxHTTPError("rate_limited", "injected fault burst429")
            hdrs = headers | {"Retry-After": str(max(0, round(retry_after)))}
            await error_response(err, family, hdrs)(scope, receive, send)
            return
        if fault == "500":
            err = SandboxHTTPError("internal", "injected fault")
            await error_response(err, family, headers)(scope, receive, send)
            return
        delay = ctx.faults.latency(self.op)
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            result = await self.handler(request, ctx)
        except SandboxHTTPError as exc:
            await error_response(exc, family, headers)(scope, receive, send)
            return
        except Exception:  # a sandbox bug: answer like Cloudflare's 500 and keep the traceback in the log
            log.exception("sandbox handler %s failed on %s %s", self.op, scope["method"], scope["path"])
            err = SandboxHTTPError("internal", f"sandbox bug in {self.op}; see the sandbox log")
            await error_response(err, family, headers)(scope, receive, send)
            return
        response = result if isinstance(result, Response) else JSONResponse(success(result, family))
        if ctx.faults.commit_timeout(self.op):
            # The push is committed. Now the client must not learn it.
            if ctx.faults.spec.commit_mode == "drop":
                await drop_connection(send)
                return
            await asyncio.sleep(ctx.faults.spec.commit_delay)
        response.headers.update(headers)
        await response(scope, receive, send)


class MethodDispatch:
    """All methods of one path: unknown methods get 405 with an ``Allow`` header naming every method."""

    def __init__(self, by_method: dict[str, Any]) -> None:
        self.by_method = by_method

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        app = self.by_method.get("GET" if method == "HEAD" else method)
        if app is None:
            allow = ", ".join(sorted(set(self.by_method) | ({"HEAD"} if "GET" in self.by_method else set())))
            err = SandboxHTTPError(
                "method_not_allowed", f"{scope['method']} {scope['path']} (allowed: {allow})"
            )
            await error_response(err, family_of(scope["path"]), {"Allow": allow})(scope, receive, send)
            return
        await app(scope, receive, send)
