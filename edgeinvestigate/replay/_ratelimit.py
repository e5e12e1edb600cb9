"""Speed limits of a replay: a message velocity and the API request budget.

:class:`Pacer` spreads messages at ``rate`` per second on an absolute schedule (no drift, no burst
to catch up after a pause). :class:`RequestBudget` keeps at most ``limit`` requests in any sliding
``window`` (1,200 per 300 s by default, Cloudflare's global API limit) counting the requests of
earlier runs of the same plan (from the ledger), and also stops when the server's ``Ratelimit``
header says the token's budget, which other tools share, is spent.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Protocol

__all__ = ["Pacer", "RequestBudget", "ServerBudget"]


class Pacer:
    """Messages per second on an absolute schedule: batch ``k`` is due at ``t0 + sent / rate``."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self._clock = clock
        self._t0: float | None = None
        self._sent = 0

    def resume_after(self, last_sent_ago: float, last_n: int) -> None:
        """Continue the schedule of an earlier run that sent ``last_n`` messages ``last_sent_ago``
        seconds ago, so a quick restart does not exceed the velocity."""
        if self._t0 is None and last_n > 0:
            self._t0 = self._clock() - max(0.0, last_sent_ago)
            self._sent = last_n

    def delay(self) -> float:
        """Seconds to wait before the next batch may go."""
        now = self._clock()
        if self._t0 is None:
            self._t0 = now
            return 0.0
        due = self._t0 + self._sent / self.rate
        return max(0.0, due - now)

    def sent(self, n: int) -> None:
        """Count ``n`` messages as sent now. After a stall (back-off), the schedule restarts from now
        instead of bursting to catch up."""
        now = self._clock()
        if self._t0 is None:
            self._t0 = now
        due = self._t0 + self._sent / self.rate
        if now - due > 1.0:  # we are late (a back-off): re-anchor, never burst
            self._t0 = now - self._sent / self.rate
        self._sent += n


class _RateLimitLike(Protocol):
    @property
    def remaining(self) -> int | None: ...
    @property
    def reset_s(self) -> float | None: ...
    @property
    def observed_at(self) -> float | None: ...


class ServerBudget:
    """What the server's ``Ratelimit`` header says is left for the token (shared with other tools)."""

    def __init__(self, *, reserve: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        self.reserve = reserve
        self._clock = clock

    def delay(self, state: _RateLimitLike | None) -> float:
        if state is None or state.remaining is None or state.reset_s is None or state.observed_at is None:
            return 0.0
        if state.remaining > self.reserve:
            return 0.0
        return max(0.0, state.reset_s - (self._clock() - state.observed_at))


class RequestBudget:
    """At most ``limit`` requests in any sliding ``window`` seconds (wall clock, across runs)."""

    def __init__(
        self,
        limit: int,
        window: float = 300.0,
        *,
        history: Iterable[float] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        if limit <= 0:
            raise ValueError("limit must be positive")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._times: deque[float] = deque(sorted(history))

    def _trim(self, now: float) -> None:
        while self._times and self._times[0] <= now - self.window:
            self._times.popleft()

    def delay(self, n: int = 1) -> float:
        """Seconds until ``n`` more requests fit in the window."""
        now = self._clock()
        self._trim(now)
        over = len(self._times) + n - self.limit
        if over <= 0:
            return 0.0
        return max(0.0, self._times[over - 1] + self.window - now) + 0.001

    def note(self, ts: float | None = None) -> float:
        t = self._clock() if ts is None else ts
        self._times.append(t)
        return t

    def used(self) -> int:
        self._trim(self._clock())
        return len(self._times)
