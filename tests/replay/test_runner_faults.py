"""The fault-injection suite: the replay guarantees, proven against the real sandbox.

A DLQ of 2,000 jobs (collected in snapshot mode, leases held), a plan selecting 1,200 of them, and in
each test one kind of trouble. At the end the sandbox's own state must show: every selected message
on the target queue at least once and gone from the DLQ, every other message still in the DLQ with
unchanged attempts, every duplicate a twin with the same idempotency key that the ledger lists as a
possible duplicate, zero lost, and the request budget never exceeded (see replay_scenario.py).
The last test proves the same for a DLQ collected without leases (originals removed by peek + purge
in rounds), with kill -9 and failing requests in the middle of the removal rounds.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest
from replay_scenario import (
    ACCOUNT,
    assert_nothing_lost,
    build,
    build_without_leases,
    cli_env,
    client_for,
    dump,
    run_cli,
    run_id_of,
    seen,
    settled,
    when_settled,
)

from edgeinvestigate.replay import Ledger, run_replay
from edgeinvestigate.sandbox.testing import running_sandbox

pytestmark = [pytest.mark.faults, pytest.mark.e2e, pytest.mark.timeout(300)]


#: the moments a kill -9 lands at: (event of this run to wait for, random delay after it)
MOMENTS = {
    "starting": (None, (0.0, 0.05)),  # before anything is sent
    "in flight": ("push_sent", (0.0, 0.03)),  # the batch may or may not be enqueued
    "pushed": ("push_confirmed", (0.0, 0.02)),  # pushed, original not yet removed
    "removing": ("settled", (0.0, 0.05)),  # between batches or inside the next one
}


def test_kill_9_at_20_random_moments_then_resume(tmp_path: Path) -> None:
    rng = random.Random(20261128)
    with running_sandbox(tmp_path) as sb:
        sc = build(sb, tmp_path)
        env = cli_env(sb)
        args = ["replay", "run", str(sc.plan_path), "--yes", "--no-progress", "--rate", "400"]
        kills: list[str] = []
        progress = []
        while len(kills) < 20:
            moment = rng.choice(sorted(MOMENTS))
            event, (lo, hi) = MOMENTS[moment]
            proc = run_cli(args, env)
            deadline = time.monotonic() + 30
            run_id = None
            while proc.poll() is None and time.monotonic() < deadline:
                run_id = run_id or run_id_of(sc.ledger_path, proc.pid)
                if run_id is not None and (event is None or seen(sc.ledger_path, run_id, event)):
                    break
                time.sleep(0.003)
            time.sleep(rng.uniform(lo, hi))
            assert proc.poll() is None, f"the run ended before the kill ({moment}): {progress}"
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
            kills.append(moment)
            progress.append(settled(sc.ledger_path))
        assert progress[-1] < len(sc.selected), progress  # the kills interrupted a real replay
        with Ledger.open(sc.ledger_path, create=False) as led:
            before_resume = led.counts()
        final = run_cli(args, env)
        out, err = final.communicate(timeout=120)
        assert final.returncode == 0, err.decode()
        assert b"completed: 1200/1200 settled" in out
        result = assert_nothing_lost(sb, sc)
        with Ledger.open(sc.ledger_path, create=False) as led:
            runs = led.runs()
            recovered = sum(1 for e in led.events() if e["kind"] == "recovered")
        assert [r["outcome"] for r in runs] == ["interrupted"] * 20 + ["completed"], dump(sc)
        assert recovered >= kills.count("in flight") - 1  # the in-flight batches became ambiguous
        print(f"kill -9 at {kills}: settled {progress}; before resume {before_resume}; {result}")


def test_429_storm(tmp_path: Path) -> None:
    with running_sandbox(tmp_path) as sb:
        sc = build(sb, tmp_path)
        sb.set_faults("burst429=40,retry_after=0.1")
        with client_for(sb) as client:
            result = run_replay(sc.plan_path, client, rate=400)
        assert result.outcome == "completed", result.to_dict()
        assert result.rate_limited == 40
        stats = assert_nothing_lost(sb, sc)
        assert stats["duplicates"] == 0  # a 429 enqueues nothing: no duplicate, none flagged
        assert result.possible_duplicates == 0


def test_five_percent_5xx(tmp_path: Path) -> None:
    with running_sandbox(tmp_path) as sb:
        sc = build(sb, tmp_path)
        sb.set_faults("error_rate=0.05,seed=11")
        with client_for(sb) as client:
            result = run_replay(sc.plan_path, client, rate=400, max_backoff=0.5)
        assert result.outcome == "completed", result.to_dict()
        assert_nothing_lost(sb, sc)


def test_commit_then_timeout_makes_flagged_twins_never_losses(tmp_path: Path) -> None:
    with running_sandbox(tmp_path) as sb:
        sc = build(sb, tmp_path)
        sb.set_faults("commit_timeout=0.3,commit_mode=drop,seed=5,ops=batch")
        with client_for(sb, timeout=5.0) as client:
            result = run_replay(sc.plan_path, client, rate=400, max_backoff=0.5)
        assert result.outcome == "completed", result.to_dict()
        stats = assert_nothing_lost(sb, sc)
        assert stats["duplicates"] > 0  # the faults did commit and time out
        assert result.ambiguous_batches >= 1
        # duplicates are byte-identical twins carrying the same metadata.replay.id
        state = sb.queue_state(ACCOUNT, "jobs")
        keys: dict[str, set[str]] = {}
        for m in state["messages"]:
            replay = m["body"]["metadata"]["replay"]
            keys.setdefault(replay["of"], set()).add(replay["id"])
        assert all(len(v) == 1 for v in keys.values())


def test_lease_expiry_in_the_middle(tmp_path: Path) -> None:
    with running_sandbox(tmp_path) as sb:
        sc = build(sb, tmp_path)
        # half-way, two hours pass: every lease the snapshot held expires
        watcher = when_settled(
            sc.ledger_path, 600, lambda: sb.admin.post("/__admin/clock", json={"advance_ms": 7_200_000})
        )
        with client_for(sb) as client:
            result = run_replay(sc.plan_path, client, rate=400)
        watcher.join(timeout=5)
        assert result.outcome == "completed", result.to_dict()
        dlq = sb.queue_state(ACCOUNT, "jobs-dlq")
        assert dlq["stats"].get("lease_expired", 0) > 0  # the fault did happen
        assert_nothing_lost(sb, sc)


def test_sandbox_restart_mid_run(tmp_path: Path) -> None:
    with running_sandbox(tmp_path, state_dir=tmp_path / "state") as sb:
        sc = build(sb, tmp_path)
        watcher = when_settled(sc.ledger_path, 500, lambda: sb.restart(hard=True))
        with client_for(sb) as client:
            result = run_replay(sc.plan_path, client, rate=400, max_backoff=1.0)
        watcher.join(timeout=30)
        assert result.outcome == "completed", result.to_dict()
        assert result.server_errors >= 1, result.to_dict()  # the restart was felt
        assert_nothing_lost(sb, sc)


def test_request_budget_binds_and_is_never_exceeded(tmp_path: Path) -> None:
    with running_sandbox(tmp_path) as sb:
        sc = build(sb, tmp_path)
        # a tight budget (10 requests per 2 s) on the server and in the runner; another tool has
        # already used 5 of the server's window (the Ratelimit header tells the runner)
        sb.admin.put("/__admin/rate-limit", json={"limit": 10, "window_s": 2})
        with client_for(sb) as other_tool:
            qid = other_tool.queue_id("jobs-dlq")
            for _ in range(4):
                other_tool.peek(qid, batch_size=1)
        started = time.monotonic()
        with client_for(sb) as client:
            result = run_replay(sc.plan_path, client, rate=500, max_requests_per_5min=10, budget_window_s=2.0)
        elapsed = time.monotonic() - started
        assert result.outcome == "completed", result.to_dict()
        assert result.requests >= 26  # 2 lookups + 12 pushes + 12 acks
        assert elapsed >= 2.0 * (result.requests // 10) - 1.0  # the budget, not the rate, set the pace
        assert_nothing_lost(sb, sc, budget=10, window=2.0)


def test_without_leases_kill_9_and_5xx_in_the_removal_rounds(tmp_path: Path) -> None:
    # a DLQ of 350 collected without leases: originals go by peek + purge, round after round; slow
    # and failing peeks/purges, and kill -9 while they are in flight (a purge may be applied with
    # its answer lost), then a resume: nothing lost, every original removed, no message pushed twice
    rng = random.Random(6)
    with running_sandbox(tmp_path) as sb:
        sc = build_without_leases(sb, tmp_path, n=350, selected=lambda i: i < 300 and i % 3 != 2)
        sb.set_faults("latency=0.03,latency_jitter=0.03,error_rate=0.1,seed=6,ops=peek+purge_refs")
        env = cli_env(sb)
        args = ["replay", "run", str(sc.plan_path), "--yes", "--no-progress"]
        kills, progress = 0, []
        while kills < 6:
            proc = run_cli(args, env)
            deadline = time.monotonic() + 30
            while proc.poll() is None and time.monotonic() < deadline:
                run_id = run_id_of(sc.ledger_path, proc.pid)
                if run_id is not None and seen(sc.ledger_path, run_id, "run_started"):
                    break
                time.sleep(0.003)
            time.sleep(rng.uniform(0.05, 0.6))
            if proc.poll() is not None:  # it finished before the kill: the rest is the final run
                proc.communicate(timeout=30)
                break
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)
            kills += 1
            progress.append(settled(sc.ledger_path))
        assert kills >= 3, progress  # the kills did land in the middle of removing
        sb.set_faults("")
        final = run_cli(args, env)
        out, err = final.communicate(timeout=120)
        assert final.returncode == 0, err.decode() + dump(sc)
        assert b"completed: 200/200 settled" in out
        stats = assert_nothing_lost(sb, sc)
        # pushes only had the kills to fear; a twin exists only for a batch that was in flight
        with Ledger.open(sc.ledger_path, create=False) as led:
            removal = {r["removal"] for r in led.rows()}
            flagged = sum(1 for r in led.rows() if r["possible_duplicate"])
        assert removal <= {"purge", "absent"}
        assert stats["duplicates"] <= flagged
        print(f"kill -9 x{kills}: settled {progress}; removal {removal}; {stats}")
