"""The ledger state machine: what a crash at each point leaves behind, and what resume makes of it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edgeinvestigate.errors import ReplayError, ReplayRefusedError
from edgeinvestigate.replay import Ledger

IDS = [f"m{i}" for i in range(6)]


def make(tmp_path: Path, content_hash: str = "h1") -> Ledger:
    led = Ledger.open(tmp_path / "plan.ledger.sqlite")
    led.init_plan(
        plan_id="p1",
        content_hash=content_hash,
        plan_path=str(tmp_path / "plan.json"),
        rows=[(m, f"rpl_{m}", i // 3, None) for i, m in enumerate(IDS)],
    )
    return led


def test_wal_mode_and_binding_to_one_plan(tmp_path: Path) -> None:
    led = make(tmp_path)
    mode = sqlite3.connect(led.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert led.counts() == {"planned": 6, "pushing": 0, "pushed": 0, "ambiguous": 0, "settled": 0}
    # init again (resume): nothing is duplicated or reset
    led.start_push(IDS[:3], 1, batch=0)
    led.init_plan(plan_id="p1", content_hash="h1", plan_path="x", rows=[("m0", "rpl_m0", 0, None)])
    assert led.counts()["pushing"] == 3
    with pytest.raises(ReplayRefusedError, match="belongs to another plan"):
        led.init_plan(plan_id="p2", content_hash="h2", plan_path="x", rows=[])
    led.close()
    with pytest.raises(ReplayError, match="no ledger"):
        Ledger.open(tmp_path / "missing.sqlite", create=False)


def test_happy_path_planned_pushing_pushed_settled(tmp_path: Path) -> None:
    led = make(tmp_path)
    run = led.begin_run(user="oncall", host="laptop", argv=["replay", "run"], rate=10, max_requests=1200)
    led.start_push(IDS[:3], run, batch=0)
    assert led.counts()["pushing"] == 3
    led.push_confirmed(IDS[:3], run, batch=0)
    assert led.ids_in(["pushed"]) == IDS[:3]
    led.settle(IDS[:3], run, "ack")
    assert led.counts()["settled"] == 3
    assert led.totals()["possible_duplicates"] == 0
    assert led.pending_batches() == [1]
    rows = {r["message_id"]: r for r in led.rows()}
    assert rows["m0"]["removal"] == "ack"
    assert rows["m0"]["push_attempts"] == 1


def test_crash_while_pushing_becomes_ambiguous_and_a_possible_duplicate(tmp_path: Path) -> None:
    led = make(tmp_path)
    run1 = led.begin_run(user="u", host="h", argv=[], rate=1, max_requests=10)
    led.start_push(IDS[:3], run1, batch=0)
    led.close()  # the process dies here (kill -9): the batch may or may not be on the target

    led = Ledger.open(tmp_path / "plan.ledger.sqlite")
    run2 = led.begin_run(user="u", host="h", argv=[], rate=1, max_requests=10)
    assert led.recover(run2) == 3
    assert led.counts()["ambiguous"] == 3
    runs = led.runs()
    assert runs[0]["outcome"] == "interrupted"
    assert runs[1]["ended_at"] is None
    led.start_push(IDS[:3], run2, batch=0)
    led.push_confirmed(IDS[:3], run2, batch=0)
    led.settle(IDS[:3], run2, "ack")
    rows = {r["message_id"]: r for r in led.rows()}
    assert all(rows[m]["possible_duplicate"] == 1 for m in IDS[:3])  # kept for the postmortem
    assert rows["m0"]["ambiguous_reason"] == "interrupted while pushing"
    assert rows["m0"]["push_attempts"] == 2


def test_rejected_push_goes_back_without_becoming_a_duplicate(tmp_path: Path) -> None:
    led = make(tmp_path)
    led.start_push(IDS[:3], 1, batch=0)
    led.push_rejected(IDS[:3], 1, "429", batch=0, kind="rate_limited")
    assert led.counts()["planned"] == 6
    led.start_push(IDS[:3], 1, batch=0)
    led.push_ambiguous(IDS[:3], 1, "no answer (timeout)", batch=0)
    led.start_push(IDS[:3], 1, batch=0)
    led.push_rejected(IDS[:3], 1, "429", batch=0, kind="rate_limited")
    # the earlier ambiguous attempt may have landed: it stays ambiguous, never back to planned
    assert led.counts()["ambiguous"] == 3
    assert led.event_counts()["rate_limited"] == 2
    assert led.ambiguous_batches() == 1


def test_pushed_but_still_in_dlq_is_settled_later(tmp_path: Path) -> None:
    led = make(tmp_path)
    led.start_push(IDS[:3], 1)
    led.push_confirmed(IDS[:3], 1)
    led.mark_removal_attempt(IDS[:1], "ack")
    led.mark_still_in_dlq(IDS[:3], 1, "peek did not find it")
    assert led.totals()["still_in_dlq"] == 3
    assert led.removal_attempted(IDS[:3]) == {"m0"}
    assert led.pending_batches() == [0, 1]
    led.settle(IDS[:3], 1, "purge")
    assert led.totals()["still_in_dlq"] == 0
    # settle never applies to a message that was not pushed
    led.settle(IDS[3:], 1, "ack")
    assert led.counts()["settled"] == 3


def test_requests_cancel_and_events(tmp_path: Path) -> None:
    led = make(tmp_path)
    led.record_request("ack", 1, ts=1000.0)
    led.start_push(IDS[:1], 1, ts=1100.0)
    assert led.request_times(since=999.0) == [1000.0, 1100.0]
    assert led.request_times(since=1050.0) == [1100.0]
    assert not led.cancel_requested()
    led.request_cancel("oncall@laptop")
    other = Ledger.open(led.path)  # another terminal sees it at once
    assert other.cancel_requested()
    other.clear_cancel()
    assert not led.cancel_requested()
    other.close()
