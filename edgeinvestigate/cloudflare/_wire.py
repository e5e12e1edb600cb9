"""Private helpers of :mod:`edgeinvestigate.cloudflare.client`: rate-limit headers and error mapping.

Cloudflare answers errors with ``{success: false, errors: [{code, message}], messages, result}``.
:func:`error_from_response` turns such a response into the matching
:class:`~edgeinvestigate.errors.APIError` subclass, with a hint that says what to do next. Nothing
here ever sees the token: errors carry the method and the URL path only.
"""

from __future__ import annotations

import email.utils
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx

from edgeinvestigate.errors import APIError, AuthError, NotFoundError, RateLimitedError, ServerError

__all__ = [
    "RateLimitState",
    "error_from_response",
    "parse_retry_after",
    "permission_for",
    "rate_limit_from_headers",
]

# "default";r=1199;t=300  /  "default";q=1200;w=300  (draft-ietf-httpapi-ratelimit-headers)
_PARAM = re.compile(r";\s*([a-zA-Z_][\w-]*)\s*=\s*(-?\d+(?:\.\d+)?)")


@dataclass(frozen=True)
class RateLimitState:
    """The API rate-limit budget, from the last response's ``Ratelimit`` headers.

    ``limit``: requests allowed per window (``Ratelimit-Policy`` ``q``); ``remaining``: requests left
    in the current window (``Ratelimit`` ``r``); ``reset_s``: seconds until the window resets
    (``Ratelimit`` ``t``); ``window_s``: the window length (``Ratelimit-Policy`` ``w``).
    ``None`` means the server did not say. ``observed_at`` is the ``time.monotonic()`` of the response.
    """

    limit: int | None = None
    remaining: int | None = None
    reset_s: float | None = None
    window_s: float | None = None
    observed_at: float | None = None

    @property
    def known(self) -> bool:
        """True once any response carried rate-limit headers."""
        return self.remaining is not None or self.limit is not None

    def __str__(self) -> str:
        if not self.known:
            return "rate limit: unknown (no Ratelimit headers seen)"
        parts = [f"{self.remaining if self.remaining is not None else '?'} requests left"]
        if self.limit is not None:
            window = f"/{self.window_s:g}s" if self.window_s is not None else ""
            parts.append(f"of {self.limit}{window}")
        if self.reset_s is not None:
            parts.append(f"(resets in {self.reset_s:g}s)")
        return "rate limit: " + " ".join(parts)


def _params(value: str | None) -> dict[str, float]:
    if not value:
        return {}
    # several policies may be listed ("default";q=1200;w=300, "burst";q=200;w=1): the first one wins
    first = value.split(",")[0]
    return {k.lower(): float(v) for k, v in _PARAM.findall(first)}


def rate_limit_from_headers(headers: httpx.Headers, previous: RateLimitState) -> RateLimitState:
    """Read ``Ratelimit`` / ``Ratelimit-Policy`` (and the older ``RateLimit-Limit/-Remaining/-Reset``)."""
    rl = _params(headers.get("ratelimit"))
    policy = _params(headers.get("ratelimit-policy"))
    limit = policy.get("q")
    window = policy.get("w")
    remaining = rl.get("r")
    reset = rl.get("t")
    # older draft: separate headers
    for name, target in (("ratelimit-limit", "limit"), ("ratelimit-remaining", "remaining")):
        raw = headers.get(name)
        if raw and raw.strip().split(",")[0].strip().isdigit():
            if target == "limit" and limit is None:
                limit = float(raw.split(",")[0])
            elif target == "remaining" and remaining is None:
                remaining = float(raw.split(",")[0])
    raw_reset = headers.get("ratelimit-reset")
    if reset is None and raw_reset:
        try:
            reset = float(raw_reset.split(",")[0])
        except ValueError:
            reset = None
    if limit is None and remaining is None and reset is None and window is None:
        return previous
    return RateLimitState(
        limit=int(limit) if limit is not None else previous.limit,
        remaining=int(remaining) if remaining is not None else None,
        reset_s=reset,
        window_s=window if window is not None else previous.window_s,
        observed_at=time.monotonic(),
    )


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), ``retry-after-ms`` too; else ``None``."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    raw = headers.get("retry-after")
    if not raw:
        return None
    raw = raw.strip()
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def permission_for(path: str) -> str:
    """The API token permission an endpoint needs (for the hint of an :class:`AuthError`)."""
    if path.endswith("/graphql"):
        return "Account Analytics Read (Account > Account Analytics > Read)"
    if "/workers/observability/" in path:
        return "Workers Observability Read (Account > Workers Observability)"
    if "/tails" in path:
        return "Workers Tail Read (Account > Workers Tail)"
    if "/queues" in path:
        if path.endswith("/messages") or path.endswith("/messages/batch"):
            return "Queues Write (Account > Queues > Edit)"
        return "Queues Edit (Account > Queues > Edit: read + write, needed for pull/peek/ack)"
    return "the permission this endpoint needs"


# Cloudflare codes that mean the token itself is wrong (not a missing permission): 9106 missing
# Authorization header, 9109 invalid access token, 1000/1001 invalid API token (token verify),
# 6003/6111 malformed or invalid Authorization header. 10000 "Authentication error" is what the API
# answers both for a bad token and for a valid token without access to the resource.
_INVALID_TOKEN_CODES = frozenset({9106, 9109, 1000, 1001, 6003, 6111})
_AMBIGUOUS_AUTH_CODES = frozenset({10000})
_INVALID_TOKEN_WORDS = (
    "invalid access token",
    "invalid api token",
    "invalid token",
    "expired",
    "missing authorization",
)
_NO_ROUTE_CODE = 7003


def _is_no_route(codes: tuple[int, ...], messages: list[str]) -> bool:
    return _NO_ROUTE_CODE in codes or any("no route for the uri" in m.lower() for m in messages)


def _auth_hint(status: int, codes: tuple[int, ...], messages: list[str], path: str) -> str:
    """What to do about a 401/403: a bad token and a token without a permission need different fixes."""
    text = " ".join(messages).lower()
    check = "check CLOUDFLARE_API_TOKEN (or --token-file)"
    invalid = (
        f"the API token is missing, invalid or expired: {check}; it must be the token itself "
        "(not a Global API Key), still active, and for the sandbox the one it was started with"
    )
    if _INVALID_TOKEN_CODES.intersection(codes) or any(w in text for w in _INVALID_TOKEN_WORDS):
        return invalid
    if _AMBIGUOUS_AUTH_CODES.intersection(codes) or "authentication error" in text:
        return (
            f"the API token was not accepted for this account: {check} (invalid or expired?) and "
            f"CLOUDFLARE_ACCOUNT_ID; a valid token also needs {permission_for(path)} on this account"
        )
    if status == 401:
        return invalid
    return (
        f"the API token lacks a permission: this call needs {permission_for(path)}; check "
        "CLOUDFLARE_API_TOKEN (or --token-file) and CLOUDFLARE_ACCOUNT_ID"
    )


def _body_errors(response: httpx.Response) -> tuple[list[str], tuple[int, ...]]:
    try:
        data: Any = response.json()
    except ValueError:
        text = response.text.strip().replace("\n", " ")
        return ([text[:200]] if text else []), ()
    messages: list[str] = []
    codes: list[int] = []
    errors = data.get("errors") if isinstance(data, dict) else None
    if isinstance(errors, list):
        for err in errors:
            if not isinstance(err, dict):
                messages.append(str(err)[:200])
                continue
            msg = str(err.get("message", "")).strip()
            detail = err.get("detail")
            if detail:
                msg = f"{msg}: {detail}" if msg else str(detail)
            code = err.get("code")
            if isinstance(code, int):
                codes.append(code)
                msg = f"[{code}] {msg}" if msg else f"[{code}]"
            if msg:
                messages.append(msg)
    return messages, tuple(codes)


def error_from_response(
    response: httpx.Response,
    *,
    method: str,
    path: str,
    what: str,
    not_found_hint: str | None = None,
) -> APIError:
    """The typed error for a failed response. ``what`` names the operation ("pull from queue X")."""
    status = response.status_code
    messages, codes = _body_errors(response)
    said = "; ".join(messages) if messages else f"HTTP {status}"
    base = f"{what} failed: Cloudflare API answered {status} to {method} {path}: {said}"
    kwargs: dict[str, Any] = {"status": status, "codes": codes, "method": method, "url": path}
    if status in (401, 403):
        return AuthError(base, hint=_auth_hint(status, codes, messages, path), **kwargs)
    if status == 404:
        if _is_no_route(codes, messages):
            return NotFoundError(
                base,
                hint="the server has no such API route: the API base URL (CLOUDFLARE_API_BASE_URL or "
                "--api-url) must end in /client/v4, e.g. https://api.cloudflare.com/client/v4 or "
                "http://127.0.0.1:8789/client/v4 for the sandbox",
                **kwargs,
            )
        return NotFoundError(base, hint=not_found_hint or "check the account id and the name", **kwargs)
    if status == 429:
        retry_after = parse_retry_after(response.headers)
        wait = f"retry after {retry_after:g}s" if retry_after is not None else "wait for the 5-minute window"
        return RateLimitedError(
            base,
            retry_after=retry_after,
            hint=f"rate limited (1200 requests / 5 min per token): {wait}, or run fewer commands at once",
            **kwargs,
        )
    if status >= 500:
        return ServerError(
            base,
            hint="Cloudflare's API failed; reads are retried automatically, so retry later "
            "(see https://www.cloudflarestatus.com)",
            **kwargs,
        )
    return APIError(base, hint="check the arguments; the message above says what the API rejected", **kwargs)
