"""``POST /client/v4/graphql``: the GraphQL Analytics API over the sandbox's own queue analytics.

Queries are parsed and validated with graphql-core against the schema subset written once in
``models/analytics.graphql`` (an unknown field, such as the plural ``queuesBacklogAdaptiveGroups``, is
the API's ``unknown field`` error) and executed over :mod:`._analytics` (:mod:`._graphql_query` groups).

Answers: ``{"data": ..., "errors": null}``; errors ``{"data": null, "errors": [{message, path,
extensions: {code, timestamp}}]}``. With the default error style ``status``, the HTTP status is the one
Cloudflare's error page lists: 400 parse errors, unknown fields and dataset limits; 401 ``Unauthorized``
(no or wrong token); 403 ``not authorized for that account`` (``PUT /__admin/graphql
{"analytics_read": false}``: a token without Account Analytics Read); 429 ``rate limiter budget
depleted, try again after 5 minutes`` (its own limit, 300 queries / 300 s, with ``Retry-After``);
500 for injected faults. Error style ``200`` answers every GraphQL error with HTTP 200 (the other style
the page documents). ``PUT /__admin/graphql`` also sets the dataset limits the ``settings`` node reports
and enforces (``maxPageSize``, ``maxDuration``, ``notOlderThan``, ``enabled``) and the rate limit;
``GET /__admin/graphql`` shows them and how many queries were answered; ``POST
/__admin/accounts/{a}/analytics`` loads analytics in the API's response shape; ``GET
/__admin/accounts/{a}/queues/{name}/analytics`` gives a queue's per-minute event counts.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from graphql import FieldNode, GraphQLError, GraphQLResolveInfo, InlineFragmentNode, execute, parse, validate
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from edgeinvestigate.models.analytics import DATASETS, schema
from edgeinvestigate.sandbox._context import SandboxContext
from edgeinvestigate.sandbox._endpoint import bearer_error, drop_connection, read_json
from edgeinvestigate.sandbox._envelope import SandboxHTTPError
from edgeinvestigate.sandbox._graphql_query import DIMENSIONS, QueryLimitError, group_rows, time_bounds
from edgeinvestigate.sandbox._ratelimit import RateLimiter

__all__ = ["GRAPHQL_ADMIN_ROUTES", "GraphQLEndpoint", "GraphQLState"]

log = logging.getLogger("edgeinvestigate.sandbox")

RATE_MESSAGE = "rate limiter budget depleted, try again after 5 minutes"
DEFAULT_SETTINGS = {
    "enabled": True,
    "maxPageSize": 10_000,
    "maxNumberOfFields": 30,
    "maxDuration": 2_678_400,  # 31 days
    "notOlderThan": 8_035_200,  # 93 days ("up to three months")
}


@dataclass
class GraphQLState:
    """What one sandbox process holds for ``/graphql`` (not persisted; ``/__admin/reset`` restores it)."""

    settings: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {d: dict(DEFAULT_SETTINGS) for d in DATASETS}
    )
    error_style: str = "status"
    analytics_read: bool = True
    limiter: RateLimiter = field(default_factory=lambda: RateLimiter(300, 300))
    queries: int = 0


def state_of(ctx: SandboxContext) -> GraphQLState:
    st = getattr(ctx, "graphql", None)
    if not isinstance(st, GraphQLState):
        st = GraphQLState()
        setattr(ctx, "graphql", st)  # noqa: B010 (one attribute, kept off SandboxContext)
    return st


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _error(message: str, path: list[Any] | None = None, code: str = "") -> dict[str, Any]:
    ext: dict[str, Any] = {"timestamp": _now_iso()}
    if code:
        ext["code"] = code
    return {"message": message, "path": path, "extensions": ext}


class _Answer(Exception):
    def __init__(self, status: int, errors: list[dict[str, Any]], headers: dict[str, str] | None = None):
        super().__init__(errors[0]["message"] if errors else "")
        self.status = status
        self.errors = errors
        self.headers = headers or {}


def _dims(info: GraphQLResolveInfo) -> list[str]:
    """The dimension fields the query selected under ``dimensions`` (aliases and fragments too)."""
    found: list[str] = []

    def walk(selections: Any, inside: bool) -> None:
        for sel in selections or ():
            if isinstance(sel, FieldNode):
                if inside and sel.name.value not in found and sel.name.value != "__typename":
                    found.append(sel.name.value)
                elif sel.name.value == "dimensions" and sel.selection_set:
                    walk(sel.selection_set.selections, True)
            elif isinstance(sel, InlineFragmentNode):
                walk(sel.selection_set.selections, inside)

    for node in info.field_nodes:
        if node.selection_set:
            walk(node.selection_set.selections, False)
    return found


def _resolver(ctx: SandboxContext, st: GraphQLState) -> Any:
    def resolve(parent: Any, info: GraphQLResolveInfo, **args: Any) -> Any:
        owner, name = info.parent_type.name, info.field_name
        if owner == "Query" and name == "viewer":
            return {}
        if owner == "Viewer" and name == "accounts":
            tag = (args.get("filter") or {}).get("accountTag")
            if not tag:
                raise GraphQLError("accounts needs filter: {accountTag: ...} (one account per query)")
            return [{"__account": str(tag)}]
        if owner == "Account" and name == "settings":
            return {d: {**s, "availableFields": _available(d)} for d, s in st.settings.items()}
        if owner == "Account" and name in DATASETS:
            return _dataset(ctx, st, parent["__account"], name, info, args)
        if isinstance(parent, dict):
            return parent.get(name)
        return None

    return resolve


def _available(dataset: str) -> list[str]:
    root: Any = schema().query_type
    group = root.fields["viewer"].type.of_type.fields["accounts"]
    account = group.type.of_type.of_type.of_type
    gtype = account.fields[dataset].type.of_type.of_type.of_type
    return sorted(
        f"{block}.{leaf}"
        for block, bf in gtype.fields.items()
        for leaf in (getattr(bf.type, "fields", None) or {"": None})
    )


def _dataset(
    ctx: SandboxContext, st: GraphQLState, account: str, dataset: str, info: GraphQLResolveInfo,
    args: dict[str, Any],
) -> list[dict[str, Any]]:  # fmt: skip
    limits = st.settings[dataset]
    if not limits.get("enabled", True):
        raise QueryLimitError(f"dataset {dataset} is not enabled for this account's plan")
    limit = int(args.get("limit") or 0)
    if limit <= 0 or limit > int(limits["maxPageSize"]):
        raise QueryLimitError(f"limit must be positive number and not greater than {limits['maxPageSize']}")
    flt = args.get("filter")
    lo, hi = time_bounds(flt)
    now = datetime.fromtimestamp(ctx.store.clock.now_ms() / 1000, tz=UTC)
    if lo is not None and lo < now - timedelta(seconds=int(limits["notOlderThan"])):
        raise QueryLimitError(f"cannot request data older than {limits['notOlderThan']}s")
    if lo is not None and hi is not None and (hi - lo).total_seconds() > int(limits["maxDuration"]):
        raise QueryLimitError(f"query time range is too large, max allowed is {limits['maxDuration']}s")
    dims = [d for d in _dims(info) if d in DIMENSIONS[dataset]]
    rows = ctx.store.analytics.rows(dataset, account)
    return group_rows(dataset, rows, dims, flt, args.get("orderBy"), limit)


def _run(ctx: SandboxContext, st: GraphQLState, body: Any) -> dict[str, Any]:
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        raise _Answer(400, [_error('error parsing args: the body must be {"query": "...", "variables": {}}')])
    variables = body.get("variables") or {}
    if not isinstance(variables, dict):
        raise _Answer(400, [_error("error parsing args: variables must be an object")])
    try:
        document = parse(body["query"])
    except GraphQLError as exc:
        raise _Answer(
            400, [_error(f"query contains error, please review it and retry: {exc.message}")]
        ) from None
    from graphql import specified_rules
    from graphql.validation import VariablesInAllowedPositionRule

    rules = [r for r in specified_rules if r is not VariablesInAllowedPositionRule]
    problems = validate(schema(), document, rules)
    if problems:
        errs = [_error(_wording(p.message)) for p in problems]
        raise _Answer(400, errs)
    result: Any = execute(
        schema(), document, variable_values=variables, field_resolver=_resolver(ctx, st),
        operation_name=body.get("operationName"),
    )  # fmt: skip
    if result.errors:
        errs = [_error(_wording(e.message), list(e.path) if e.path else None) for e in result.errors]
        limit = any(isinstance(e.original_error, QueryLimitError) for e in result.errors)
        bug = [
            e for e in result.errors if e.original_error and not isinstance(e.original_error, QueryLimitError)
        ]
        for e in bug:
            if not isinstance(e.original_error, GraphQLError):
                log.error("sandbox /graphql resolver failed: %r", e.original_error)
        raise _Answer(400 if limit or not bug else 500, errs)
    return {"data": result.data, "errors": None}


def _wording(message: str) -> str:
    """graphql-core's message in the API's words where they differ (``unknown field ...``)."""
    if message.startswith("Cannot query field"):
        name = message.split("'")[1] if "'" in message else ""
        return f'unknown field "{name}": {message}'
    return message


class GraphQLEndpoint:
    """The ASGI app of ``POST /client/v4/graphql``."""

    def __init__(self, ctx: SandboxContext) -> None:
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx, st = self.ctx, state_of(self.ctx)
        request = Request(scope, receive)
        try:
            answer = await self._answer(request, ctx, st)
        except _Answer as exc:
            status = exc.status if st.error_style == "status" else 200
            answer = JSONResponse(
                {"data": None, "errors": exc.errors}, status_code=status, headers=exc.headers
            )
        if answer is None:
            await drop_connection(send)
            return
        await answer(scope, receive, send)

    async def _answer(self, request: Request, ctx: SandboxContext, st: GraphQLState) -> Response | None:
        if request.method != "POST":
            raise _Answer(405, [_error("method not allowed: POST a JSON body")], {"Allow": "POST"})
        if bearer_error(request, ctx) is not None:
            raise _Answer(401, [_error("Unauthorized")])
        if not st.analytics_read:
            raise _Answer(403, [_error("not authorized for that account")])
        if not st.limiter.take(False):
            raise _Answer(429, [_error(RATE_MESSAGE)], {"Retry-After": str(st.limiter.reset_in())})
        fault = ctx.faults.before("graphql")
        if fault == "drop":
            return None
        if fault == "429":
            raise _Answer(
                429, [_error(RATE_MESSAGE)], {"Retry-After": str(round(ctx.faults.spec.retry_after))}
            )
        if fault == "500":
            raise _Answer(500, [_error("Internal server error")])
        delay = ctx.faults.latency("graphql")
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            body = await read_json(request)  # capped while it streams in (413), nesting capped (400)
        except SandboxHTTPError as exc:
            why = (
                exc.detail
                if exc.status == 413 or "deeper than" in exc.detail
                else "the request body is not JSON"
            )
            raise _Answer(413 if exc.status == 413 else 400, [_error(f"error parsing args: {why}")]) from None
        st.queries += 1
        return JSONResponse(_run(ctx, st, body))


# ------------------------------------------------------------------ admin
async def admin_get(request: Request, ctx: SandboxContext) -> Any:
    st = state_of(ctx)
    return {
        "settings": st.settings,
        "error_style": st.error_style,
        "analytics_read": st.analytics_read,
        "rate_limit": {"limit": st.limiter.limit, "window_s": st.limiter.window_s},
        "queries": st.queries,
    }


async def admin_put(request: Request, ctx: SandboxContext) -> Any:
    """``PUT /__admin/graphql {settings?: {dataset|"*": {maxPageSize, ...}}, error_style?, analytics_read?,
    rate_limit?: {limit, window_s}}``."""
    st = state_of(ctx)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise SandboxHTTPError("bad_request", "the body must be a JSON object")
    for name, values in (body.get("settings") or {}).items():
        targets = DATASETS if name == "*" else (name,)
        if (name != "*" and name not in DATASETS) or not isinstance(values, dict):
            raise SandboxHTTPError("bad_request", f"settings: unknown dataset {name!r} (or not an object)")
        for key, value in values.items():
            if key not in DEFAULT_SETTINGS:
                raise SandboxHTTPError("bad_request", f"settings: unknown limit {key!r}")
            for t in targets:
                st.settings[t][key] = value
    if "error_style" in body:
        if body["error_style"] not in ("status", "200"):
            raise SandboxHTTPError("bad_request", "error_style must be 'status' or '200'")
        st.error_style = body["error_style"]
    if "analytics_read" in body:
        st.analytics_read = bool(body["analytics_read"])
    if isinstance(body.get("rate_limit"), dict):
        rl = body["rate_limit"]
        st.limiter.configure(
            int(rl.get("limit", st.limiter.limit)), int(rl.get("window_s", st.limiter.window_s))
        )
    return await admin_get(request, ctx)


async def admin_load(request: Request, ctx: SandboxContext) -> Any:
    """``POST /__admin/accounts/{a}/analytics {"responses": [<GraphQL response>...], "queue_names":
    {"<queueId in the responses>": "<queue name>"}}`` (or one response as the body itself)."""
    account = request.path_params["account_id"]
    body = await read_json(request)
    if not isinstance(body, dict):
        raise SandboxHTTPError("bad_request", "the body must be a JSON object")
    responses = body.get("responses", [body] if "data" in body else None)
    if not isinstance(responses, list):
        raise SandboxHTTPError("bad_request", "give responses: [...] (GraphQL response bodies)")
    ids: dict[str, str] = {}
    for qid, name in (body.get("queue_names") or {}).items():
        q = ctx.store.queues.by_name(account, str(name))
        ids[str(qid)] = q.queue_id if q else str(qid)
    loaded: dict[str, int] = {}
    for resp in responses:
        try:
            part = ctx.store.analytics.load(account, resp if isinstance(resp, dict) else {}, ids)
        except (ValueError, KeyError, TypeError) as exc:
            raise SandboxHTTPError("bad_request", f"analytics: {exc}") from None
        for k, v in part.items():
            loaded[k] = loaded.get(k, 0) + v
    return {"loaded": loaded, "queue_ids": ids}


async def admin_counts(request: Request, ctx: SandboxContext) -> Any:
    account, name = request.path_params["account_id"], request.path_params["queue_name"]
    q = ctx.store.queues.by_name(account, name)
    if q is None:
        raise SandboxHTTPError("queue_not_found", name)
    counts = ctx.store.analytics.counts(q.queue_id)
    return {"queue_id": q.queue_id, "minutes": [{"minute_ms": m, **c} for m, c in sorted(counts.items())]}


GRAPHQL_ADMIN_ROUTES: list[tuple[str, str, Any]] = [
    ("GET", "/graphql", admin_get),
    ("PUT", "/graphql", admin_put),
    ("POST", "/accounts/{account_id}/analytics", admin_load),
    ("GET", "/accounts/{account_id}/queues/{queue_name}/analytics", admin_counts),
]
