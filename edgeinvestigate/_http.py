"""The one place that builds HTTP clients.

Every HTTP request edgeinvestigate makes (Cloudflare API, sandbox admin, collector tests) goes
through :func:`make_client`. Tests and the sandbox plug in with ``transport=`` (for example
``httpx.MockTransport`` or ``httpx.ASGITransport``); production uses httpx's default transport.
The bearer token is set as a header here and nowhere else; httpx never logs header values, and
:class:`Secret` keeps it out of reprs and exception messages.
"""

from __future__ import annotations

import httpx

from edgeinvestigate._version import __version__
from edgeinvestigate.errors import ConfigError

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
        value = token.reveal()
        # a stray newline or non-ASCII character would otherwise fail deep in httpx/h11: as a
        # misleading, retried "lost the connection", or as an encoding error quoting the token
        if not all(" " <= c <= "~" or c == "\t" for c in value):
            raise ConfigError(
                "the API token is not a valid HTTP header value (it holds a line break, a control "
                "or a non-ASCII character)",
                hint="the token must be one line of printable ASCII: check CLOUDFLARE_API_TOKEN "
                "or the first line of the token file",
            )
        hdrs["Authorization"] = f"Bearer {value}"
    return httpx.Client(
        base_url=base_url.rstrip("/"),
        headers=hdrs,
        transport=transport,
        timeout=timeout,
        follow_redirects=False,
    )
