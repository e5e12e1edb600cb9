"""The gate every request of a replay run goes through: when it may go, waiting, and retrying.

A request waits for the velocity limit (messages per second, pushes only), the run's request budget
(``max_requests_per_5min``, a sliding window that remembers earlier runs through the ledger) and the
token's own budget (the API's rate-limit headers). Every wait wakes up for Ctrl-C and
``replay cancel`` and beats the run's heartbeat, so a long wait is never taken for a dead run.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from edgeinvestigate.errors import APIError, RateLimitedError, ServerError
from edgeinvestigate.replay._ledger import Ledger
from edgeinvestigate.replay._ratelimit import Pacer, RequestBudget, ServerBudget
from edgeinvestigate.replay._result import RunResult

if TYPE_CHECKING:
    from edgeinvestigate.cloudflare.client import CloudflareClient

__all__ = ["RequestGate", "Stop"]


class Stop(Exception):
    """Stop between batches (cancel, Ctrl-C); ``outcome`` is what the run then reports."""

    def __init__(self, outcome: str) -> None:
        super().__init__(outcome)
        self.outcome = outcome


class RequestGate:
    """Paces, counts, waits for and retries the requests of one run (see the module docstring).

    ``run_id`` is 0 until the run is registered in the ledger; ``finishing`` is set while a pushed
    batch is followed through to the removal of its originals (a stop then waits for it).
    """

    def __init__(
        self,
        ledger: Ledger,
        client: CloudflareClient,
        result: RunResult,
        *,
        rate: float,
        max_requests: int,
        budget_window_s: float,
        stop: threading.Event,
        max_attempts: int,
        max_backoff: float,
        max_call_attempts: int,
        say: Callable[[str], None],
    ) -> None:
        self.ledger = ledger
        self.client = client
        self.result = result
        self.stop = stop
        self.max_attempts = max_attempts
        self.max_backoff = max_backoff
        self.max_call_attempts = max_call_attempts
        self.say = say
        self.pacer = Pacer(rate)
        last = ledger.last_push()
        if last is not None:  # the velocity holds across restarts too
            self.pacer.resume_after(time.time() - last[0], last[1])
        self.budget = RequestBudget(
            max_requests, budget_window_s, history=ledger.request_times(time.time() - budget_window_s)
        )
        self.server = ServerBudget(reserve=0)
        self.run_id = 0
        self.finishing = False
        self._last_cancel_check = 0.0
        self._last_heartbeat = time.monotonic()

    # -- waiting ---------------------------------------------------------------------------------
    def check_stop(self) -> None:
        if self.finishing:
            return  # a pushed batch is always followed through to the removal of its originals
        if self.stop.is_set():
            raise Stop("interrupted")
        now = time.monotonic()
        if now - self._last_cancel_check >= 0.25:
            self._last_cancel_check = now
            if self.ledger.cancel_requested():
                raise Stop("cancelled")

    def sleep(self, seconds: float, *, interruptible: bool = False) -> None:
        """Sleep, waking up for Ctrl-C and ``replay cancel`` (and beating the heart: a long wait is
        not a dead run). ``interruptible``: a stop ends even a batch being finished (the wait is
        between two requests, so the ledger is consistent)."""
        end = time.monotonic() + seconds
        while True:
            if interruptible and self.stop.is_set():
                raise Stop("interrupted")
            self.check_stop()
            self.beat()
            left = end - time.monotonic()
            if left <= 0:
                return
            if self.stop.is_set():  # finishing a batch after Ctrl-C: a plain sleep, not a busy loop
                time.sleep(min(left, 0.05))
            else:
                self.stop.wait(min(left, 0.25))

    def beat(self, every: float = 10.0) -> None:
        if self.run_id and time.monotonic() - self._last_heartbeat >= every:
            self._last_heartbeat = time.monotonic()
            self.ledger.heartbeat(self.run_id)

    def request_slot(self, kind: str, n_messages: int = 0) -> None:
        """Wait until the velocity and both budgets allow one more request."""
        while True:
            wait = max(
                self.pacer.delay() if n_messages else 0.0,
                self.budget.delay(1),
                self.server.delay(self.client.rate_limit),
            )
            if wait <= 0:
                return
            self.sleep(wait)

    def note_request(self, kind: str) -> None:
        ts = self.budget.note()
        self.ledger.record_request(kind, self.run_id or None, ts)
        self.result.requests += 1

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.05), self.max_backoff)
        rl = self.client.rate_limit
        base = min(0.25 * (2**attempt), self.max_backoff)
        if rl.reset_s is not None and rl.remaining == 0:
            base = max(base, min(rl.reset_s, self.max_backoff))
        return base * (0.5 + random.random() / 2)

    # -- retrying --------------------------------------------------------------------------------
    def patient(self, fn: Callable[[], Any]) -> Any:
        """A read that must succeed: wait out 429s, retry 5xx/timeouts up to ``max_attempts``.

        Every request it makes is counted against the budget (a lookup may page).
        """
        failures = 0
        while True:
            self.request_slot("lookup")
            before = self.client.requests_sent
            try:
                return fn()
            except RateLimitedError as exc:
                self.result.rate_limited += 1
                wait = self.backoff(failures, exc.retry_after)
            except ServerError:
                self.result.server_errors += 1
                failures += 1
                if failures >= self.max_attempts:
                    raise
                wait = self.backoff(failures)
            finally:
                for _ in range(max(1, self.client.requests_sent - before)):
                    self.note_request("lookup")
            self.sleep(wait)

    def call(self, kind: str, fn: Callable[[], Any]) -> Any:
        """Send one idempotent request (ack, peek, purge) with at most ``max_call_attempts`` tries
        (429s: at most ``max_attempts``); ``None`` when it keeps failing (the ledger keeps the message
        ``pushed``, a later run removes it). Each retry wait is said (one line), and a stop request
        (Ctrl-C, ``replay cancel``) ends the run during the wait: between two requests, where the
        ledger is consistent."""
        failures = limited = 0
        while True:
            self.request_slot(kind)
            self.note_request(kind)
            try:
                return fn()
            except RateLimitedError as exc:
                self.result.rate_limited += 1
                self.ledger.event(self.run_id, "rate_limited", detail=f"{kind}: {exc.message}")
                limited += 1
                if limited >= self.max_attempts:
                    return None
                wait = self.backoff(min(limited, 6), exc.retry_after)
                why = exc.message
            except ServerError as exc:
                self.result.server_errors += 1
                self.ledger.event(self.run_id, "server_error", detail=f"{kind}: {exc.message}")
                failures += 1
                if failures >= self.max_call_attempts:
                    self.say(f"{kind} failed {failures} times ({exc.message}); giving up on it for this run")
                    return None
                wait = self.backoff(failures)
                why = exc.message
            except APIError as exc:
                self.ledger.event(self.run_id, "remove_failed", detail=f"{kind}: {exc.message}")
                return None
            self.say(
                f"retrying {kind} in {wait:.1f}s ({why}; try {failures + limited + 1}, at most "
                f"{self.max_call_attempts} on errors)"
            )
            self.sleep(wait, interruptible=True)
