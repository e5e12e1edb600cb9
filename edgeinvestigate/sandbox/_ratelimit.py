"""The global API rate limit: a fixed window per token, like Cloudflare's 1,200 requests / 5 min.

Every API response carries ``Ratelimit: "default";r=<remaining>;t=<seconds to reset>`` and
``Ratelimit-Policy: "default";q=<limit>;w=<window>``. Over the limit the API answers 429 with
``Retry-After`` (seconds until the window resets) for the rest of the window. Pull and ack are exempt
(they do not count and are never limited), as on Cloudflare since 2025-04-17. With the limit off
(``limit <= 0``) responses carry no ``Ratelimit`` headers at all.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

__all__ = ["RateLimiter"]


class RateLimiter:
    def __init__(
        self, limit: int = 1200, window_s: int = 300, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.clock = clock
        self.configure(limit, window_s)

    def configure(self, limit: int, window_s: int) -> None:
        self.limit = int(limit)
        self.window_s = int(window_s)
        self._window_start = self.clock()
        self._used = 0

    def _roll(self) -> None:
        now = self.clock()
        if now - self._window_start >= self.window_s:
            self._window_start = now
            self._used = 0

    def reset_in(self) -> int:
        return max(1, math.ceil(self._window_start + self.window_s - self.clock()))

    def take(self, exempt: bool) -> bool:
        """Count one request; ``False`` means over the limit (answer 429)."""
        self._roll()
        if exempt or self.limit <= 0:
            return True
        if self._used >= self.limit:
            return False
        self._used += 1
        return True

    @property
    def enabled(self) -> bool:
        """``False`` when the limit is off (``--rate-limit 0``)."""
        return self.limit > 0

    def headers(self) -> dict[str, str]:
        """The ``Ratelimit`` headers of a response; none at all when the limit is off.

        No headers is what clients (``cloudflare.py``) read as "no budget to respect": sending
        ``r=0`` / ``q=0`` would tell them the budget is spent and make them wait for the window.
        """
        if not self.enabled:
            return {}
        self._roll()
        remaining = max(0, self.limit - self._used)
        return {
            "Ratelimit": f'"default";r={remaining};t={self.reset_in()}',
            "Ratelimit-Policy": f'"default";q={self.limit};w={self.window_s}',
        }
