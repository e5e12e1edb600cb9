"""The sandbox ASGI application: Cloudflare's Queues, Workers Logs and tail APIs, plus ``/__admin/``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, WebSocketRoute, request_response

from edgeinvestigate.sandbox._admin_api import ADMIN_ROUTES, admin_endpoint
from edgeinvestigate.sandbox._context import SandboxConfig, SandboxContext
from edgeinvestigate.sandbox._deployments_api import DEPLOYMENT_ADMIN_ROUTES, DEPLOYMENT_HANDLERS
from edgeinvestigate.sandbox._endpoint import ApiEndpoint, MethodDispatch
from edgeinvestigate.sandbox._envelope import SandboxHTTPError, error_response, family_of
from edgeinvestigate.sandbox._forwarder import run_background
from edgeinvestigate.sandbox._graphql_api import GRAPHQL_ADMIN_ROUTES, GraphQLEndpoint
from edgeinvestigate.sandbox._queues_api import QUEUE_HANDLERS
from edgeinvestigate.sandbox._tails import TAIL_HANDLERS, tail_websocket
from edgeinvestigate.sandbox._telemetry import telemetry_query

__all__ = ["API_PREFIX", "create_app"]

API_PREFIX = "/client/v4"


def _routes(ctx: SandboxContext) -> list[BaseRoute]:
    accounts = f"{API_PREFIX}/accounts/{{account_id}}"
    api: dict[str, dict[str, Any]] = {}  # path -> method -> ASGI app
    for op, method, path, handler, exempt in QUEUE_HANDLERS:
        api.setdefault(f"{accounts}/queues{path}", {})[method] = ApiEndpoint(ctx, op, handler, exempt=exempt)
    api[f"{accounts}/workers/observability/telemetry/query"] = {
        "POST": ApiEndpoint(ctx, "telemetry_query", telemetry_query)
    }
    for op, method, path, handler in [*TAIL_HANDLERS, *DEPLOYMENT_HANDLERS]:
        api.setdefault(f"{accounts}/workers/scripts{path}", {})[method] = ApiEndpoint(ctx, op, handler)
    routes: list[BaseRoute] = [Route(path, MethodDispatch(by_method)) for path, by_method in api.items()]
    routes.append(Route(f"{API_PREFIX}/graphql", GraphQLEndpoint(ctx)))  # GraphQL Analytics
    admin: dict[str, dict[str, Any]] = {}
    for method, path, admin_handler in [*ADMIN_ROUTES, *GRAPHQL_ADMIN_ROUTES, *DEPLOYMENT_ADMIN_ROUTES]:
        admin.setdefault(f"/__admin{path}", {})[method] = request_response(admin_endpoint(ctx, admin_handler))
    routes += [Route(path, MethodDispatch(by_method)) for path, by_method in admin.items()]
    routes.append(WebSocketRoute("/tail/{tail_id}", tail_websocket))
    return routes


async def _http_exception(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 500)
    if status == 405:
        err = SandboxHTTPError("method_not_allowed", f"{request.method} {request.url.path}")
    elif status == 404:
        err = SandboxHTTPError("no_route", f"{request.method} {request.url.path}")
    else:
        err = SandboxHTTPError("bad_request", str(getattr(exc, "detail", "")), status=status)
    headers = dict(getattr(exc, "headers", None) or {})
    return error_response(err, family_of(request.url.path), headers or None)


def create_app(config: SandboxConfig) -> Starlette:
    """Build the ASGI app. State lives in ``app.state.ctx`` (a :class:`SandboxContext`)."""
    ctx = SandboxContext(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = asyncio.create_task(run_background(ctx, stop))
        try:
            yield
        finally:
            stop.set()
            await ctx.tails.close_all()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            ctx.store.close()

    handlers: dict[Any, Any] = {HTTPException: _http_exception}
    app = Starlette(routes=_routes(ctx), exception_handlers=handlers, lifespan=lifespan)
    app.state.ctx = ctx
    return app
