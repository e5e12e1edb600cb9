"""The HTTP session under :class:`~edgeinvestigate.cloudflare.client.CloudflareClient`: send, retry, wait.

:class:`ApiSession` owns the connection pool (with the token, a :class:`~edgeinvestigate._http.Secret`),
sends one request and returns the decoded envelope. Only requests marked ``safe`` are repeated: on
5xx, dropped connections, timeouts and 429 (honouring ``Retry-After`` up to ``max_retry_wait``
seconds), with jittered exponential backoff otherwise. When the last answer said the rate-limit
budget is spent, the next request first waits for the window (bounded). Failed answers become the
typed errors of :mod:`edgeinvestigate.errors` (see :mod:`edgeinvestigate.cloudflare._wire`).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Self

import httpx
import tenacity

from edgeinvestigate._http import DEFAULT_TIMEOUT, Secret, make_client
from edgeinvestigate.cloudflare._wire import RateLimitState, error_from_response, rate_limit_from_headers
from edgeinvestigate.errors import APIError, RateLimitedError, ServerError

__all__ = ["JSON", "ApiSession"]

log = logging.getLogger(__name__)

JSON = dict[str, Any]


class _Retryable(Exception):
    """Internal: wraps an APIError that the retry loop may repeat."""

    def __init__(self, error: APIError) -> None:
        super().__init__(error.message)
        self.error = error


class ApiSession:
    """Requests to one API base URL with one token: retries of safe requests, the rate-limit budget.

    ``max_attempts`` bounds tries of a safe request; ``max_retry_wait`` bounds how long one
    ``Retry-After`` may make us wait (a longer one raises :class:`RateLimitedError` at once).
    ``rate_limit`` is the budget the last answer announced; ``requests_sent`` counts every HTTP
    request (retries and list pages included).
    """

    def __init__(
        self,
        api_url: str,
        token: Secret,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        max_attempts: int = 4,
        max_retry_wait: float = 60.0,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.api_url = api_url
        self._http = make_client(api_url, token=token, transport=transport, timeout=timeout)
        self.max_attempts = max(1, max_attempts)
        self.max_retry_wait = max_retry_wait
        self.backoff = backoff
        self._sleep = sleep
        self.rate_limit = RateLimitState()
        self.requests_sent = 0

    def close(self) -> None:
        """Close the underlying HTTP connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        safe: bool = False,
        what: str,
        not_found_hint: str | None = None,
    ) -> JSON:
        """Send one request (repeating it when ``safe``) and return the decoded envelope."""
        attempts = self.max_attempts if safe else 1
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception_type(_Retryable),
            sleep=self._sleep,
            before_sleep=lambda rs: log.info(
                "retrying %s %s (attempt %d of %d): %s",
                method,
                path,
                rs.attempt_number + 1,
                attempts,
                rs.outcome.exception() if rs.outcome else "",
            ),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._send(method, path, params, json, what, not_found_hint)
        except _Retryable as exc:
            raise exc.error from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        error = exc.error if isinstance(exc, _Retryable) else None
        if isinstance(error, RateLimitedError):
            if error.retry_after is not None:
                return min(error.retry_after, self.max_retry_wait)
            if self.rate_limit.reset_s is not None:
                return min(self.rate_limit.reset_s, self.max_retry_wait)
        base: float = self.backoff * (2 ** (retry_state.attempt_number - 1))
        return float(min(base, 8.0) * (0.5 + random.random() / 2))

    def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json: Any,
        what: str,
        not_found_hint: str | None,
    ) -> JSON:
        self._respect_budget()
        started = time.monotonic()
        self.requests_sent += 1
        try:
            response = self._http.request(method, path, params=params, json=json)
        except httpx.TransportError as exc:
            if isinstance(exc, httpx.TimeoutException):
                kind = "timed out"
            elif isinstance(exc, httpx.ConnectError):
                kind = "could not connect"
            else:
                kind = "lost the connection"
            raise _Retryable(
                ServerError(
                    f"{what} failed: {method} {self.api_url}{path} {kind} ({type(exc).__name__})",
                    hint="check the network or CLOUDFLARE_API_BASE_URL / --api-url; reads were retried "
                    "automatically, writes never are (a replay run resumes safely when run again)",
                    method=method,
                    url=path,
                )
            ) from None
        self.rate_limit = rate_limit_from_headers(response.headers, self.rate_limit)
        log.debug(
            "%s %s -> %d in %.0f ms; %s",
            method,
            path,
            response.status_code,
            (time.monotonic() - started) * 1000,
            self.rate_limit,
        )
        if response.status_code >= 400:
            error = error_from_response(
                response, method=method, path=path, what=what, not_found_hint=not_found_hint
            )
            if isinstance(error, ServerError):
                raise _Retryable(error)
            if isinstance(error, RateLimitedError):
                if error.retry_after is not None and error.retry_after > self.max_retry_wait:
                    raise error
                raise _Retryable(error)
            raise error
        try:
            data = response.json()
        except ValueError:
            raise _Retryable(
                ServerError(
                    f"{what} failed: {method} {path} answered {response.status_code} with a body that is "
                    f"not JSON ({response.headers.get('content-type', 'no content type')})",
                    hint="check CLOUDFLARE_API_BASE_URL / --api-url: it must end in /client/v4",
                    status=response.status_code,
                    method=method,
                    url=path,
                )
            ) from None
        if not isinstance(data, dict):
            raise ServerError(
                f"{what} failed: {method} {path} answered with JSON that is not an object",
                status=response.status_code,
                method=method,
                url=path,
            )
        if data.get("success") is False:
            raise error_from_response(
                response, method=method, path=path, what=what, not_found_hint=not_found_hint
            )
        return data

    def _respect_budget(self) -> None:
        """When the last answer said no requests are left, wait for the window (bounded) first."""
        rl = self.rate_limit
        if rl.remaining is None or rl.remaining > 0 or rl.reset_s is None or rl.observed_at is None:
            return
        left = rl.reset_s - (time.monotonic() - rl.observed_at)
        if left > 0:
            wait = min(left, self.max_retry_wait)
            log.info("rate-limit budget exhausted; waiting %.1fs for the window to reset", wait)
            self._sleep(wait)
