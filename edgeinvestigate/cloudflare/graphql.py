"""``POST /graphql``: Cloudflare's GraphQL Analytics API through :class:`CloudflareClient`.

>>> data = client.graphql(QUERY, {"accountTag": client.account_id, ...})   # doctest: +SKIP
>>> data["viewer"]["accounts"][0]["queueBacklogAdaptiveGroups"]             # doctest: +SKIP

The API answers errors in two styles ([ERR] in the reference): an HTTP 4xx/5xx status, or HTTP 200 with
an ``errors`` array (and ``data`` null or partial). Both become the same typed errors:

* ``Unauthorized`` / ``not authorized for that account`` -> :class:`~edgeinvestigate.errors.AuthError`
  (the token needs Account Analytics Read);
* ``rate limiter budget depleted`` and other 429s -> :class:`~edgeinvestigate.errors.RateLimitedError`;
* ``unable to execute query`` / ``too many queries in progress`` (503), 5xx -> ``ServerError``
  (5xx and dropped connections are retried: a query is a read);
* dataset limits (``query time range is too large``, ``cannot request data older than``, ``limit must
  be ...``, ``number of fields ...``) -> :class:`~edgeinvestigate.errors.GraphQLQueryError` ``kind="limit"``;
* parse errors and ``unknown field`` -> ``GraphQLQueryError`` ``kind="query"``.

Rate limit: 300 GraphQL queries per 5-minute window per user [LIM], apart from the REST API's budget.
:class:`GraphQLBudget` counts this client's queries in a sliding window and waits (with the client's
``sleep``) before a query that would pass it; a wait longer than ``max_wait`` raises
:class:`~edgeinvestigate.errors.RateLimitedError` at once instead.
"""

from __future__ import annotations

import logging
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from edgeinvestigate.errors import APIError, AuthError, GraphQLQueryError, RateLimitedError, ServerError

if TYPE_CHECKING:
    from edgeinvestigate.cloudflare._session import ApiSession

__all__ = ["GRAPHQL_LIMIT", "GRAPHQL_WINDOW_S", "GraphQLBudget", "execute"]

log = logging.getLogger(__name__)

GRAPHQL_LIMIT = 300
GRAPHQL_WINDOW_S = 300.0
PATH = "/graphql"
PERMISSION_HINT = (
    "the GraphQL Analytics API needs a token with Account Analytics Read (Account > Account Analytics > "
    "Read) on this account: add it to CLOUDFLARE_API_TOKEN's permissions, and check CLOUDFLARE_ACCOUNT_ID"
)
RATE_HINT = (
    "the GraphQL Analytics API allows 300 queries per 5 minutes per user, shared by every tool using the "
    "token: wait 5 minutes, or collect fewer queues / a shorter window at once"
)
_LIMIT_WORDS = ("older than", "time range is too large", "limit must be", "number of fields")
_AUTH_WORDS = ("unauthorized", "not authorized", "does not have access", "authentication")
_RATE_WORDS = ("rate limiter", "budget depleted", "too many nodes", "excessive resources")
_BUSY_WORDS = ("unable to execute query", "too many queries in progress", "internal server error")


class GraphQLBudget:
    """At most ``limit`` queries in any ``window_s`` seconds (a sliding window over send times)."""

    def __init__(
        self,
        limit: int = GRAPHQL_LIMIT,
        window_s: float = GRAPHQL_WINDOW_S,
        *,
        max_wait: float = GRAPHQL_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = max(1, int(limit))
        self.window_s = float(window_s)
        self.max_wait = float(max_wait)
        self._clock = clock
        self._sent: deque[float] = deque()

    @property
    def used(self) -> int:
        """Queries sent in the current window."""
        self._forget()
        return len(self._sent)

    def _forget(self) -> None:
        now = self._clock()
        while self._sent and self._sent[0] <= now - self.window_s:
            self._sent.popleft()

    def wait_s(self) -> float:
        """Seconds to wait before the next query fits the budget (0 when it fits now)."""
        self._forget()
        if len(self._sent) < self.limit:
            return 0.0
        return max(0.0, self._sent[len(self._sent) - self.limit] + self.window_s - self._clock())

    def take(self, sleep: Callable[[float], None]) -> None:
        """Wait until one more query fits (raise when that is longer than ``max_wait``), then count it."""
        wait = self.wait_s()
        if wait > self.max_wait:
            raise RateLimitedError(
                f"GraphQL Analytics query not sent: {self.limit} queries in the last {self.window_s:g}s "
                f"already, and the next fits in {wait:.0f}s (more than the {self.max_wait:g}s allowed)",
                retry_after=wait,
                hint=RATE_HINT,
                method="POST",
                url=PATH,
            )
        if wait > 0:
            log.info("GraphQL budget: %d queries in %gs; waiting %.1fs", self.limit, self.window_s, wait)
            sleep(wait)
        self._forget()
        self._sent.append(self._clock())


def _operation(query: str) -> str:
    found = re.search(r"\b(query|mutation)\s+([A-Za-z_]\w*)", query)
    return f"GraphQL query {found.group(2)}" if found else "GraphQL query"


def _messages(errors: Any) -> list[str]:
    if not isinstance(errors, list):
        return [str(errors)]
    out = []
    for err in errors:
        if isinstance(err, dict):
            msg = str(err.get("message", "")).strip() or "error without a message"
            path = err.get("path")
            if isinstance(path, list) and path:
                msg += f" (at {'.'.join(str(p) for p in path)})"
            out.append(msg)
        else:
            out.append(str(err))
    return out


def _kind_error(what: str, said: list[str], errors: list[Any], status: int | None) -> APIError:
    """The typed error for GraphQL error messages (either response style)."""
    text = "; ".join(said) or "an error without a message"
    low = text.lower()
    base = f"{what} failed" + (f" (HTTP {status})" if status else " (HTTP 200 with errors)") + f": {text}"
    kw: dict[str, Any] = {"status": status, "method": "POST", "url": PATH}
    if status in (401, 403) or any(w in low for w in _AUTH_WORDS):
        return AuthError(base, hint=PERMISSION_HINT, **kw)
    if status == 429 or any(w in low for w in _RATE_WORDS):
        return RateLimitedError(base, hint=RATE_HINT, **kw)
    if (status is not None and status >= 500) or any(w in low for w in _BUSY_WORDS):
        return ServerError(base, hint="Cloudflare's analytics service is busy or failing: retry later", **kw)
    dicts = [e for e in errors if isinstance(e, dict)]
    if any(w in low for w in _LIMIT_WORDS):
        return GraphQLQueryError(
            base,
            kind="limit",
            errors=dicts,
            hint="the query passed a dataset limit of this account's plan (read them from the `settings` "
            "node); narrow --since/--until, or let collect split the window",
            **kw,
        )
    return GraphQLQueryError(
        base,
        kind="query",
        errors=dicts,
        hint="the API rejected the query text: dataset and field names are those of "
        "edgeinvestigate/models/analytics.graphql (singular dataset names, queueId); check the query "
        "against the schema (introspection) and report it if edgeinvestigate sent it",
        **kw,
    )


def execute(
    session: ApiSession,
    query: str,
    variables: Mapping[str, Any] | None = None,
    *,
    budget: GraphQLBudget,
    sleep: Callable[[float], None],
) -> dict[str, Any]:
    """Send one query; return its ``data`` (raise the typed error for any ``errors``)."""
    what = _operation(query)
    budget.take(sleep)
    payload = {"query": query, "variables": dict(variables or {})}
    try:
        body = session._request("POST", PATH, json=payload, safe=True, what=what)
    except APIError as exc:
        said = exc.message.split(f"POST {PATH}: ", 1)[-1]
        error = _kind_error(what, [said], [], exc.status)
        if isinstance(error, RateLimitedError):
            error.retry_after = getattr(exc, "retry_after", None)
        raise error from None
    errors = body.get("errors")
    if errors:
        raise _kind_error(what, _messages(errors), errors if isinstance(errors, list) else [], None)
    data = body.get("data")
    if not isinstance(data, dict):
        raise ServerError(
            f"{what} failed: the answer has neither data nor errors",
            hint="retry later; if it persists, check CLOUDFLARE_API_BASE_URL (it must end in /client/v4)",
            method="POST",
            url=PATH,
        )
    return data
