"""The sandbox clock: wall time plus an offset that tests move forward (and back).

Everything in the sandbox that depends on time reads :meth:`Clock.now_ms`: leases
(``visibility_timeout_ms``), delays (``delay_seconds``, ``retry_delay``), retention
(``message_retention_period``), ``created_on``/``modified_on`` and tail expiry. ``POST /__admin/clock
{"advance_ms": N}`` (N may be negative) moves it by N ms, then sweeps: leases that have expired by the
new time are released (or exhausted to the dead letter queue) and messages past retention are dropped
before the response, so a test sees the effect of a timeout at once instead of sleeping through it.
The offset is not persisted; ``POST /__admin/reset`` sets it back to 0. The rate limiter and the
fault injector keep real time.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

__all__ = ["Clock", "iso"]


class Clock:
    """Epoch milliseconds as the sandbox sees them: ``time.time()`` + ``offset_ms``."""

    def __init__(self) -> None:
        self.offset_ms = 0

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.offset_ms

    def advance(self, ms: int) -> None:
        """Move the clock by ``ms`` (negative moves it back)."""
        self.offset_ms += ms

    def reset(self) -> None:
        self.offset_ms = 0


def iso(ms: int) -> str:
    """RFC 3339 timestamp with microseconds, as the Queues API writes them."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
