"""``CloudflareClient``: the Cloudflare API endpoints edgeinvestigate uses, and nothing else.

>>> client = CloudflareClient.from_env()                  # doctest: +SKIP
>>> qid = client.queue_id("jobs-dlq")                     # doctest: +SKIP
>>> client.peek(qid, batch_size=100)["messages"]          # doctest: +SKIP

Configuration follows wrangler: ``CLOUDFLARE_API_TOKEN`` (or a token file), ``CLOUDFLARE_ACCOUNT_ID``
and ``CLOUDFLARE_API_BASE_URL`` (default ``https://api.cloudflare.com/client/v4``; point it at the
sandbox to run offline). The token is held in a :class:`~edgeinvestigate._http.Secret`; it is never
part of a repr, a log line or an exception message.

Errors become typed exceptions from :mod:`edgeinvestigate.errors` (``AuthError`` for 401/403,
``NotFoundError`` for 404, ``RateLimitedError`` for 429, ``ServerError`` for 5xx, timeouts and dropped
connections), carrying the Cloudflare error codes.

Retries: only requests that are safe to repeat are retried (GET, pull, peek, extend, the telemetry
query, deleting a tail): on 5xx, dropped connections, timeouts and 429 (honouring ``Retry-After`` up
to ``max_retry_wait`` seconds). Push, batch push, ack, purge and tail creation are never retried
automatically: repeating them could enqueue duplicates or delete messages. Note that a retried
*pull* whose first answer was lost leaves those messages leased until their visibility timeout, and
each pull counts as a delivery attempt (see :func:`~dlq.load_dlq` for why that matters).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import httpx

from edgeinvestigate._http import DEFAULT_TIMEOUT, Secret
from edgeinvestigate.cloudflare._session import JSON, ApiSession
from edgeinvestigate.cloudflare._wire import RateLimitState
from edgeinvestigate.cloudflare.graphql import GraphQLBudget, execute
from edgeinvestigate.errors import ConfigError, NotFoundError, ServerError

__all__ = ["DEFAULT_API_URL", "CloudflareClient", "RateLimitState", "normalize_api_url"]

DEFAULT_API_URL = "https://api.cloudflare.com/client/v4"
TOKEN_ENV = "CLOUDFLARE_API_TOKEN"  # noqa: S105 (the variable name, not a token)
ACCOUNT_ENV = "CLOUDFLARE_ACCOUNT_ID"
BASE_URL_ENV = "CLOUDFLARE_API_BASE_URL"

_QUEUE_ID = re.compile(r"^[0-9a-f]{32}$")
_LIST_HINT = (
    "queue names are exact and case-sensitive; list the queues with `wrangler queues list` "
    "(or GET /accounts/{account}/queues) and check CLOUDFLARE_ACCOUNT_ID"
)


def normalize_api_url(url: str) -> str:
    """The API base URL without a trailing slash; a bare origin gets Cloudflare's ``/client/v4``.

    Every route of the API (and of the local sandbox) lives under ``/client/v4``, so
    ``http://127.0.0.1:8789`` means ``http://127.0.0.1:8789/client/v4`` (``simulate --sandbox``
    takes the root too). A URL with any other path is kept as given (a proxy may mount the API
    elsewhere); a 404 "No route for the URI" then says that the path should end in ``/client/v4``.
    """
    base = url.strip().rstrip("/")
    if urlsplit(base).path in ("", "/"):
        base += "/client/v4"
    return base


class CloudflareClient(ApiSession):
    """A small synchronous client for the Queues, Workers Observability and tail endpoints.

    Build it with :meth:`from_env` (reads the environment like wrangler) or directly. Use it as a
    context manager, or call :meth:`close`. ``transport=`` plugs in ``httpx.MockTransport`` in tests.
    ``max_attempts`` bounds tries of a safe request; ``max_retry_wait`` bounds how long one
    ``Retry-After`` may make us wait (a longer one raises :class:`RateLimitedError` at once); the
    sending, retrying and rate-limit budget live in :class:`~edgeinvestigate.cloudflare._session.ApiSession`.
    """

    def __init__(
        self,
        account_id: str,
        token: Secret | str,
        *,
        api_url: str = DEFAULT_API_URL,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        max_attempts: int = 4,
        max_retry_wait: float = 60.0,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not account_id:
            raise ConfigError(
                "no Cloudflare account id was given",
                hint=f"set {ACCOUNT_ENV} or pass --account-id (the id is in the dashboard URL)",
            )
        secret = token if isinstance(token, Secret) else Secret(token)
        if not secret:
            raise ConfigError(
                "no Cloudflare API token was given",
                hint=f"set {TOKEN_ENV} or pass --token-file PATH",
            )
        super().__init__(
            normalize_api_url(api_url),
            secret,
            transport=transport,
            timeout=timeout,
            max_attempts=max_attempts,
            max_retry_wait=max_retry_wait,
            backoff=backoff,
            sleep=sleep,
        )
        self.account_id = account_id
        #: this client's share of the GraphQL Analytics rate limit (300 queries / 5 min per user)
        self.graphql_budget = GraphQLBudget()
        self._queue_ids: dict[str, str] = {}
        self._queue_names: dict[str, str] = {}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_env(
        cls,
        api_url: str | None = None,
        account_id: str | None = None,
        token_file: str | os.PathLike[str] | None = None,
        transport: httpx.BaseTransport | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> CloudflareClient:
        """Build a client from arguments, falling back to the environment.

        The token comes from ``token_file`` when given (its first line, stripped), else from
        ``CLOUDFLARE_API_TOKEN``. It is never taken as a plain argument value on the CLI.
        """
        env = os.environ if environ is None else environ
        if token_file is not None:
            token = _read_token_file(Path(token_file))
        else:
            token = Secret(env.get(TOKEN_ENV, "").strip())
            if not token:
                raise ConfigError(
                    f"{TOKEN_ENV} is not set, so edgeinvestigate cannot call the Cloudflare API",
                    hint=f"export {TOKEN_ENV}=... (a token with Queues Edit and Workers Observability "
                    "Read) or pass --token-file PATH",
                )
        account = account_id or env.get(ACCOUNT_ENV, "").strip()
        if not account:
            raise ConfigError(
                f"{ACCOUNT_ENV} is not set and no --account-id was given",
                hint=f"export {ACCOUNT_ENV}=<32-hex account id> (shown in the dashboard URL)",
            )
        url = api_url or env.get(BASE_URL_ENV, "").strip() or DEFAULT_API_URL
        if not url.startswith(("http://", "https://")):
            raise ConfigError(
                f"API base URL {url!r} is not an http(s) URL",
                hint=f"set {BASE_URL_ENV} or --api-url to e.g. {DEFAULT_API_URL}",
            )
        return cls(account, token, api_url=url, transport=transport, **kwargs)

    def __repr__(self) -> str:
        return f"CloudflareClient(api_url={self.api_url!r}, account_id={self.account_id!r}, token=****)"

    __str__ = __repr__

    # ------------------------------------------------------------------ queues
    def list_queues(self, name: str | None = None, *, per_page: int = 100) -> list[JSON]:
        """Queues of the account; with ``name``, only those whose ``queue_name`` is exactly ``name``.

        Sends the undocumented ``?name=`` filter that wrangler relies on, checks the names itself,
        and when the filtered answer has no exact match pages through every queue instead.
        """
        if name is not None:
            first = self._list_pages({"name": name}, per_page)
            exact = [q for q in first if q.get("queue_name") == name]
            if exact:
                return exact
            return [q for q in self._list_pages({}, per_page) if q.get("queue_name") == name]
        return self._list_pages({}, per_page)

    def _list_pages(self, params: dict[str, Any], per_page: int) -> list[JSON]:
        out: list[JSON] = []
        seen: set[str] = set()
        page = 1
        while True:
            env = self._request(
                "GET",
                self._acct("/queues"),
                params={**params, "page": page, "per_page": per_page},
                safe=True,
                what="list queues",
            )
            items = env.get("result") or []
            if not isinstance(items, list):
                raise ServerError(
                    f"list queues: expected a list in result, got {type(items).__name__}",
                    method="GET",
                    url=self._acct("/queues"),
                )
            new = [q for q in items if isinstance(q, dict) and str(q.get("queue_id")) not in seen]
            for q in new:
                seen.add(str(q.get("queue_id")))
                if q.get("queue_name") and q.get("queue_id"):
                    self._remember(str(q["queue_name"]), str(q["queue_id"]))
            out.extend(new)
            info = env.get("result_info") or {}
            total_pages = info.get("total_pages") if isinstance(info, dict) else None
            if not new:
                break
            if isinstance(total_pages, int | float):
                if page >= total_pages:
                    break
            elif len(items) < per_page:
                break
            page += 1
        return out

    def queue_id(self, name: str) -> str:
        """The ``queue_id`` of the queue named ``name`` (cached). A 32-hex id is accepted as is."""
        cached = self._queue_ids.get(name)
        if cached:
            return cached
        found = self.list_queues(name)
        if found:
            qid = str(found[0]["queue_id"])
            self._remember(name, qid)
            return qid
        if _QUEUE_ID.match(name):
            queue = self.get_queue(name)
            self._remember(str(queue.get("queue_name", name)), name)
            return name
        hint = _LIST_HINT
        if self.api_url != DEFAULT_API_URL:
            hint += (
                "; on the local sandbox the queues live in the account that loaded them: "
                "`edgeinvestigate simulate ... --sandbox URL` uses the account_id of DIR/ground_truth.json, "
                f"so set {ACCOUNT_ENV} (or --account-id) to that account_id"
            )
        raise NotFoundError(
            f"unknown queue name {name!r} in account {self.account_id}",
            hint=hint,
            status=404,
            method="GET",
            url=self._acct("/queues"),
        )

    def queue_name(self, queue_id: str) -> str:
        """The name for a queue id resolved earlier (else the id itself)."""
        return self._queue_names.get(queue_id, queue_id)

    def _remember(self, name: str, qid: str) -> None:
        self._queue_ids[name] = qid
        self._queue_names[qid] = name

    def get_queue(self, queue_id: str) -> JSON:
        """One queue: ``queue_id, queue_name, consumers, producers, settings{message_retention_period}``."""
        return self._result("GET", self._q(queue_id), safe=True, what=f"get queue {self._label(queue_id)}")

    def list_consumers(self, queue_id: str) -> list[JSON]:
        """The queue's consumers: ``{type, settings{max_retries, ...}, dead_letter_queue}``."""
        result = self._result(
            "GET",
            self._q(queue_id, "/consumers"),
            safe=True,
            what=f"list consumers of {self._label(queue_id)}",
        )
        return list(result) if isinstance(result, list) else []

    def metrics(self, queue_id: str) -> JSON:
        """``{backlog_count, backlog_bytes, oldest_message_timestamp_ms}`` of a queue."""
        return self._result(
            "GET", self._q(queue_id, "/metrics"), safe=True, what=f"read metrics of {self._label(queue_id)}"
        )

    def push(
        self,
        queue_id: str,
        body: Any,
        content_type: Literal["json", "text"] = "json",
        *,
        delay_seconds: float | None = None,
    ) -> JSON:
        """Send one message. Never retried automatically (a retry could enqueue a duplicate)."""
        payload: JSON = {"body": body, "content_type": content_type}
        if delay_seconds is not None:
            payload["delay_seconds"] = delay_seconds
        return self._result(
            "POST", self._q(queue_id, "/messages"), json=payload, what=f"push to {self._label(queue_id)}"
        )

    def push_batch(
        self, queue_id: str, messages: Sequence[Mapping[str, Any]], *, delay_seconds: float | None = None
    ) -> JSON:
        """Send up to 100 messages ``[{body, content_type?, delay_seconds?}]``. Never retried."""
        if len(messages) > 100:
            raise ConfigError(
                f"push_batch got {len(messages)} messages for {self._label(queue_id)}; "
                "the API takes at most 100",
                hint="split the messages into batches of at most 100 (and 256 KB)",
            )
        payload: JSON = {"messages": [dict(m) for m in messages]}
        if delay_seconds is not None:
            payload["delay_seconds"] = delay_seconds
        return self._result(
            "POST",
            self._q(queue_id, "/messages/batch"),
            json=payload,
            what=f"push a batch of {len(messages)} to {self._label(queue_id)}",
        )

    def pull(self, queue_id: str, batch_size: int = 100, visibility_timeout_ms: int | None = None) -> JSON:
        """Lease up to ``batch_size`` (max 100) messages: ``{messages[{id, body, attempts, lease_id,
        timestamp_ms, metadata}], message_backlog_count}``. Each pull counts as a delivery attempt."""
        payload: JSON = {"batch_size": batch_size}
        if visibility_timeout_ms is not None:
            payload["visibility_timeout_ms"] = visibility_timeout_ms
        return self._result(
            "POST",
            self._q(queue_id, "/messages/pull"),
            json=payload,
            safe=True,
            what=f"pull from {self._label(queue_id)}",
        )

    def ack(
        self,
        queue_id: str,
        acks: Iterable[str | Mapping[str, Any]] = (),
        retries: Iterable[str | Mapping[str, Any]] = (),
    ) -> JSON:
        """Acknowledge (delete) and/or retry leased messages. Lease ids or ``{lease_id, delay_seconds?}``.

        A retry given as a bare lease id is released at once (``delay_seconds: 0``). Never retried
        automatically. Returns ``{ackCount, retryCount, warnings}``.
        """
        ack_list = [{"lease_id": a} if isinstance(a, str) else dict(a) for a in acks]
        retry_list = [{"lease_id": r, "delay_seconds": 0} if isinstance(r, str) else dict(r) for r in retries]
        payload = {"acks": ack_list, "retries": retry_list}
        return self._result(
            "POST",
            self._q(queue_id, "/messages/ack"),
            json=payload,
            what=f"ack {len(ack_list)} / retry {len(retry_list)} leases on {self._label(queue_id)}",
        )

    def extend(self, queue_id: str, lease_ids: Iterable[str], visibility_timeout_ms: int) -> JSON:
        """Extend leases without counting an attempt: ``{extendCount, warnings}``. Safe to repeat."""
        extend = [{"lease_id": lid} for lid in lease_ids]
        payload = {"extend": extend, "visibility_timeout_ms": visibility_timeout_ms}
        return self._result(
            "POST",
            self._q(queue_id, "/messages/extend"),
            json=payload,
            safe=True,
            what=f"extend {len(extend)} leases on {self._label(queue_id)}",
        )

    def peek(self, queue_id: str, batch_size: int = 100) -> JSON:
        """Read up to ``batch_size`` messages from the head without leasing them (consumes nothing):
        ``{messages[{id, body, attempts, timestamp_ms, metadata, ref}]}``."""
        return self._result(
            "POST",
            self._q(queue_id, "/messages/peek"),
            json={"batch_size": batch_size},
            safe=True,
            what=f"peek {self._label(queue_id)}",
        )

    def purge_refs(self, queue_id: str, refs: Iterable[str | Mapping[str, Any]]) -> JSON:
        """Delete exactly the peeked messages with these ``ref`` values. Never retried automatically."""
        ref_list = [{"ref": r} if isinstance(r, str) else dict(r) for r in refs]
        payload = {"refs": ref_list}
        return self._result(
            "POST",
            self._q(queue_id, "/messages/purge"),
            json=payload,
            what=f"purge {len(ref_list)} messages from {self._label(queue_id)}",
        )

    def purge_queue(self, queue_id: str) -> JSON:
        """Delete **every** message of the queue. Never retried automatically."""
        return self._result(
            "POST",
            self._q(queue_id, "/purge"),
            json={"delete_messages_permanently": True},
            what=f"purge all of {self._label(queue_id)}",
        )

    def purge_status(self, queue_id: str) -> JSON:
        """``{completed, started_at}`` of the last purge."""
        return self._result(
            "GET",
            self._q(queue_id, "/purge"),
            safe=True,
            what=f"read purge status of {self._label(queue_id)}",
        )

    # ------------------------------------------------------------------ Workers Observability
    def telemetry_query(self, body: Mapping[str, Any]) -> JSON:
        """Run a Workers Observability query (``POST …/workers/observability/telemetry/query``).

        Returns ``result`` (``{run, statistics, events|calculations|...}``). Safe to repeat.
        """
        path = self._acct("/workers/observability/telemetry/query")
        env = self._request("POST", path, json=dict(body), safe=True, what="query Workers Logs")
        result = env.get("result")
        if result is None and isinstance(env.get("data"), dict):
            result = env["data"]  # the obsolete {message, data: {...}} shape, tolerated
        return result if isinstance(result, dict) else {}

    # ------------------------------------------------------------------ deployments
    def list_deployments(self, script: str) -> list[JSON]:
        """The deployments of a Worker, newest first (the first one serves traffic): ``[{id, created_on,
        source, strategy, versions[{version_id, percentage}], annotations{workers/message, ...}}]``."""
        result = self._result(
            "GET",
            self._acct(f"/workers/scripts/{quote(script, safe='')}/deployments"),
            safe=True,
            what=f"list deployments of {script!r}",
            not_found=script,
        )
        found = result.get("deployments") if isinstance(result, Mapping) else None
        return [d for d in found if isinstance(d, dict)] if isinstance(found, list) else []

    # ------------------------------------------------------------------ GraphQL Analytics
    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> JSON:
        """Run a GraphQL Analytics query (``POST /graphql``) and return its ``data``.

        Errors of both styles (HTTP 4xx, or 200 with ``errors``) become typed errors; the 300 queries /
        5 min budget is kept by ``graphql_budget`` (see :mod:`edgeinvestigate.cloudflare.graphql`).
        """
        return execute(self, query, variables, budget=self.graphql_budget, sleep=self._sleep)

    # ------------------------------------------------------------------ tails
    def list_tails(self, script: str) -> Any:
        """Active tails of a script (the spec types this as one object; servers may send a list)."""
        return self._result(
            "GET", self._tails(script), safe=True, what=f"list tails of {script!r}", not_found=script
        )

    def create_tail(self, script: str, filters: Sequence[Mapping[str, Any]] | None = None) -> JSON:
        """Start a tail: ``{id, url, expires_at}``. Filters are wrangler's (``{"outcome": [...]}``, ...)."""
        return self._result(
            "POST",
            self._tails(script),
            json={"filters": [dict(f) for f in (filters or [])]},
            what=f"create a tail on {script!r}",
            not_found=script,
        )

    def delete_tail(self, script: str, tail_id: str) -> None:
        """Stop a tail. Safe to repeat."""
        self._request(
            "DELETE",
            self._tails(script) + "/" + quote(tail_id, safe=""),
            json={},  # the spec declares a (empty) JSON body on this DELETE
            safe=True,
            what=f"delete tail {tail_id} of {script!r}",
            not_found_hint=f"the tail {tail_id} of {script!r} is gone already (expired or deleted)",
        )

    # ------------------------------------------------------------------ plumbing
    def _acct(self, suffix: str) -> str:
        return f"/accounts/{quote(self.account_id, safe='')}{suffix}"

    def _q(self, queue_id: str, suffix: str = "") -> str:
        return self._acct(f"/queues/{quote(queue_id, safe='')}{suffix}")

    def _tails(self, script: str) -> str:
        return self._acct(f"/workers/scripts/{quote(script, safe='')}/tails")

    def _label(self, queue_id: str) -> str:
        name = self._queue_names.get(queue_id)
        return f"queue {name!r} ({queue_id})" if name else f"queue {queue_id}"

    def _result(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        safe: bool = False,
        what: str,
        not_found: str | None = None,
    ) -> Any:
        hint = None
        if "/queues/" in path:
            hint = _LIST_HINT
        if not_found is not None:
            hint = (
                f"no Worker script named {not_found!r} in account {self.account_id}; "
                "check the name with `wrangler deployments list` and CLOUDFLARE_ACCOUNT_ID"
            )
        env = self._request(method, path, json=json, safe=safe, what=what, not_found_hint=hint)
        return env.get("result")


def _read_token_file(path: Path) -> Secret:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read the token file {path}: {exc.strerror or type(exc).__name__}",
            hint="pass --token-file with a readable file holding only the token, or set CLOUDFLARE_API_TOKEN",
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(
            f"the token file {path} is not UTF-8 text",
            hint="the file must hold only the API token on its first line",
        ) from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise ConfigError(
            f"the token file {path} is empty",
            hint="write the API token on the first line of the file, or set CLOUDFLARE_API_TOKEN",
        )
    return Secret(lines[0])
