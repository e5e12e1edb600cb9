"""Velocity and request budget, on a fake clock (no sleeping)."""

from __future__ import annotations

import itertools

import pytest

from edgeinvestigate.cloudflare._wire import RateLimitState
from edgeinvestigate.replay._ratelimit import Pacer, RequestBudget, ServerBudget


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_pacer_spreads_batches_at_the_rate_without_drift() -> None:
    clock = Clock()
    pacer = Pacer(50.0, clock=clock)
    sent_at = []
    for _ in range(10):
        clock.t += pacer.delay()
        sent_at.append(clock.t)
        pacer.sent(100)
        clock.t += 0.01  # request latency
    gaps = [b - a for a, b in itertools.pairwise(sent_at)]
    assert gaps == pytest.approx([2.0] * 9)
    assert (sent_at[-1] - sent_at[0]) == pytest.approx(900 / 50.0)


def test_pacer_does_not_burst_after_a_stall() -> None:
    clock = Clock()
    pacer = Pacer(100.0, clock=clock)
    pacer.delay()
    pacer.sent(100)
    clock.t += 30.0  # a long 429 back-off
    assert pacer.delay() == 0.0
    pacer.sent(100)
    assert pacer.delay() == pytest.approx(1.0)  # the next batch waits its full share again


def test_request_budget_is_a_sliding_window_that_remembers_earlier_runs() -> None:
    clock = Clock()
    budget = RequestBudget(3, 300.0, history=[clock.t - 299.0, clock.t - 10.0], clock=clock)
    assert budget.used() == 2
    assert budget.delay() == 0.0
    budget.note()
    assert budget.delay() == pytest.approx(1.0, abs=0.01)  # the oldest leaves the window in 1 s
    clock.t += 1.0
    assert budget.delay() == 0.0
    for _ in range(1):
        budget.note()
    assert budget.used() == 3
    assert budget.delay() > 280


def test_server_budget_waits_when_the_shared_token_is_spent() -> None:
    clock = Clock()
    server = ServerBudget(clock=clock)
    assert server.delay(RateLimitState()) == 0.0
    assert server.delay(RateLimitState(limit=1200, remaining=5, reset_s=100, observed_at=clock.t)) == 0.0
    spent = RateLimitState(limit=1200, remaining=0, reset_s=100, observed_at=clock.t)
    clock.t += 40
    assert server.delay(spent) == pytest.approx(60.0)
    assert ServerBudget(reserve=10, clock=clock).delay(
        RateLimitState(limit=1200, remaining=8, reset_s=20, observed_at=clock.t)
    ) == pytest.approx(20.0)
