"""The one place that builds HTTP clients.

Every HTTP request edgeinvestigate makes (Cloudflare API, sandbox admin, collector tests) goes
through :func:`make_client`. Tests and the sandbox plug in with ``transport=`` (for example
``httpx.MockTransport`` or ``httpx.ASGITransport``); production uses httpx's default transport.
The bearer token is set as a header here and nowhere else; httpx never logs header values, and
:class:`Secret` keeps it out of reprs and exception messages.
"""

from __future__ import annotations

import httpx

from ._version import __version__

__all__ = ["DEFAULT_TIMEOUT", "Secret", "make_client"]

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=5.0)


class Secret:
    """A string that never shows itself in ``repr``/``str``; ``reveal()`` gets the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('****')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def make_client(
    base_url: str,
    *,
    token: Secret | None = None,
    transport: httpx.BaseTransport | None = None,
    timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
    headers: dict[str, str] | None = None,
) -> httpx.Client:
    """Build the ``httpx.Client`` used for every request to ``base_url``."""
    hdrs = {"User-Agent": f"edgeinvestigate/{__version__}", "Accept": "application/json"}
    if headers:
        hdrs.update(headers)
    if token:
        hdrs["Authorization"] = f"Bearer {token.reveal()}"
    return httpx.Client(
        base_url=base_url.rstrip("/"),
        headers=hdrs,
        transport=transport,
        timeout=timeout,
        follow_redirects=False,
    )
