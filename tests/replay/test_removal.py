"""Replaying from a DLQ larger than one peek, when the bundle holds no lease ids.

Without a lease, ``replay run`` removes an original by peek + purge by ref, and a peek only shows the
first 100 messages of the queue. After the pushes it keeps peeking and purging while each round
removes something, so originals deeper in the queue move up to the head and are removed in the same
run. Only a head holding 100 messages that the plan does not replay stops it: the run then exits 4
and says why and what to do. Everything is checked from the sandbox's own state. Also: a storm of
5xx on the peeks is bounded and the first Ctrl-C stops it; originals beyond the first peek of a
bundle without leases are purged by ref in the same run.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pandas as pd
import pytest
from replay_messages import T0_MS, job, message_id, peeked
from replay_scenario import (
    ACCOUNT,
    assert_nothing_lost,
    build_without_leases,
    cli_env,
    client_for,
    dump,
    run_cli,
    run_id_of,
    seen,
)

from edgeinvestigate.errors import ReplayRefusedError
from edgeinvestigate.replay import Ledger, plan_replay, replay_status, run_replay
from edgeinvestigate.sandbox.testing import running_sandbox
from edgeinvestigate.sources.api.dlq import collect_dlq, dlq_frame

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def _run(sc_plan: Path, env: dict[str, str]) -> tuple[int, str, str]:
    proc = run_cli(["replay", "run", str(sc_plan), "--yes", "--no-progress"], env)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out.decode(), err.decode()


def _copies_on_target(sb: object) -> dict[str, int]:
    copies: dict[str, int] = {}
    for m in sb.queue_state(ACCOUNT, "jobs")["messages"]:  # type: ignore[attr-defined]
        of = m["body"]["metadata"]["replay"]["of"]
        copies[of] = copies.get(of, 0) + 1
    return copies


def test_one_run_removes_originals_spread_over_a_350_message_dlq(tmp_path: Path) -> None:
    # 200 selected spread over the queue (two of every three of the first 300), 150 unselected: 100
    # between them and 50 at the tail. Fewer than 100 unselected messages precede every selected one,
    # so each can reach the head of the queue once the selected ones before it are gone.
    with running_sandbox(tmp_path) as sb:
        sc = build_without_leases(sb, tmp_path, n=350, selected=lambda i: i < 300 and i % 3 != 2)
        assert len(sc.selected) == 200
        assert message_id(298) in sc.selected  # the last one, 298 deep, behind 99 unselected
        assert "WARNING" not in sc.review  # the plan saw that a peek can reach every original
        code, out, err = _run(sc.plan_path, cli_env(sb))
        assert code == 0, out + err + dump(sc)
        assert "completed: 200/200 settled" in out
        assert "could not confirm" not in err
        stats = assert_nothing_lost(sb, sc)  # selected gone from the DLQ, unselected there, attempts kept
        assert stats["on_target"] == 200
        assert stats["duplicates"] == 0
        dlq = {m["id"] for m in sb.queue_state(ACCOUNT, "jobs-dlq")["messages"]}
        assert dlq == sc.unselected
        with Ledger.open(sc.ledger_path, create=False) as led:
            assert {r["removal"] for r in led.rows()} == {"purge"}
            assert [r["outcome"] for r in led.runs()] == ["completed"]
            assert "removal_blocked" not in led.event_counts()


def test_a_head_full_of_unselected_messages_stops_with_exit_4_and_loses_nothing(tmp_path: Path) -> None:
    # the first 150 positions: every third selected, the other 100 not; then 100 selected. The 100
    # unselected messages end up filling the whole head, hiding the last 100 selected originals.
    def selected(i: int) -> bool:
        return i % 3 == 0 if i < 150 else True

    with running_sandbox(tmp_path) as sb:
        sc = build_without_leases(sb, tmp_path, n=250, selected=selected)
        env = cli_env(sb)
        blockers = {message_id(i) for i in range(150) if not selected(i)}
        hidden = {message_id(i) for i in range(150, 250)}
        assert len(blockers) == 100
        assert len(sc.selected) == 150
        # the review warned before anything was sent
        review = " ".join(sc.review.split())
        assert "WARNING: 100 selected messages have no lease id and lie behind 100 or more messages" in review
        assert "--dlq-mode snapshot --dlq-keep-leases" in review

        code, out, err = _run(sc.plan_path, env)
        assert code == 4, out + err
        assert "incomplete: 50/150 settled" in out
        note = " ".join(err.split())
        assert "100 replayed messages were pushed (this plan will not push them again)" in note
        # what is known, not more: the originals were not at the head; a peek cannot say where they are
        assert "could not confirm that their originals left the DLQ 'jobs-dlq'" in note
        assert "still in the DLQ 'jobs-dlq'" not in note
        assert "a peek only sees the first 100 messages" in note
        assert "the head of the DLQ holds 100 messages that this plan does not replay" in note
        assert "either further back in the DLQ (out of reach) or no longer in it" in note
        assert "edgeinvestigate collect --dlq jobs-dlq --dlq-mode snapshot" in note
        assert "edgeinvestigate replay run PLAN" in note
        # nothing lost: every selected message is on the target once; the hidden originals are
        # still in the DLQ next to every unselected one, whose attempts did not change
        assert _copies_on_target(sb) == dict.fromkeys(sc.selected, 1)
        in_dlq = {m["id"]: m for m in sb.queue_state(ACCOUNT, "jobs-dlq")["messages"]}
        assert set(in_dlq) == sc.unselected | hidden
        assert all(in_dlq[i]["attempts"] == sc.attempts_before[i] for i in sc.unselected)
        with Ledger.open(sc.ledger_path, create=False) as led:
            still = {r["message_id"] for r in led.rows() if r["still_in_dlq"]}
            assert still == hidden
            assert {r["state"] for r in led.rows() if r["message_id"] in hidden} == {"pushed"}
            assert led.event_counts()["removal_blocked"] == 1
            # the blocked run gave up after one round that found nothing: a few requests, not a loop
            assert len(led.request_times(0)) < 20
        # status says it is blocked (what and why), not an ETA it can never meet
        st = replay_status(sc.plan_path)
        assert (st.state, st.running, st.eta_s) == ("blocked", False, None)
        text = st.render()
        assert "ETA" not in text
        assert "blocked: 100 messages are pushed but the removal of their originals" in text
        assert "100 of 100 messages at the head of the DLQ are not replayed by this plan" in text

        # the blockers are dealt with (here: purged by the operator); the next run settles the rest
        with client_for(sb) as client:
            qid = client.queue_id("jobs-dlq")
            peek = client.peek(qid, batch_size=100)["messages"]
            client.purge_refs(qid, [m["ref"] for m in peek if m["id"] in blockers])
        sc.unselected -= blockers
        code, out, err = _run(sc.plan_path, env)
        assert code == 0, out + err + dump(sc)
        assert "completed: 150/150 settled, 0 pushed" in out
        assert_nothing_lost(sb, sc)
        assert _copies_on_target(sb) == dict.fromkeys(sc.selected, 1)  # none was pushed twice
        with Ledger.open(sc.ledger_path, create=False) as led:
            assert [r["outcome"] for r in led.runs()] == ["incomplete", "completed"]


def test_after_exit_4_a_leased_bundle_plan_removes_the_rest_under_the_same_keys(tmp_path: Path) -> None:
    """The runbook's second way out of exit 4: collect with leases kept and plan again next to the
    first plan. The originals pushed but not removed stay in the new plan under the FIRST plan's
    idempotency keys, are flagged as possible duplicates, and are removed by ack."""
    from edgeinvestigate.replay import plan_replay
    from edgeinvestigate.sources.api.dlq import collect_dlq

    def selected(i: int) -> bool:
        return i % 3 == 0 if i < 150 else True

    with running_sandbox(tmp_path) as sb:
        sc = build_without_leases(sb, tmp_path, n=250, selected=selected)
        env = cli_env(sb)
        hidden = {message_id(i) for i in range(150, 250)}
        code, out, err = _run(sc.plan_path, env)
        assert code == 4, out + err
        with Ledger.open(sc.ledger_path, create=False) as led:
            first_keys = {r["message_id"]: r["replay_id"] for r in led.rows()}

        with client_for(sb) as client:
            leased = collect_dlq(client, "jobs-dlq", mode="snapshot", release=False)
        second = tmp_path / "plan-2.json"
        plan2 = plan_replay(
            leased.frame,
            "jobs-dlq",
            "jobs",
            ids=sorted(sc.selected),
            allow_queues=["jobs"],
            rate=400.0,
            near=second,
        )
        assert {m.message_id for m in plan2.messages} == hidden  # the 50 settled ones are gone
        assert all(m.replay_id == first_keys[m.message_id] for m in plan2.messages)
        assert all(m.lease_id for m in plan2.messages)
        assert not [e for e in plan2.excluded if e.reason == "already_replayed"]
        assert any("under the SAME idempotency keys" in w for w in plan2.warnings)
        plan2.save(second)

        code, out, err = _run(second, env)
        assert code == 0, out + err
        in_dlq = {m["id"] for m in sb.queue_state(ACCOUNT, "jobs-dlq")["messages"]}
        assert not in_dlq & sc.selected  # every original removed
        assert in_dlq == sc.unselected  # the rest untouched
        copies = _copies_on_target(sb)
        assert copies == {mid: 2 if mid in hidden else 1 for mid in sc.selected}
        # twins carry the same idempotency key
        keys: dict[str, set[str]] = {}
        for m in sb.queue_state(ACCOUNT, "jobs")["messages"]:
            replay = m["body"]["metadata"]["replay"]
            keys.setdefault(replay["of"], set()).add(replay["id"])
        assert all(len(v) == 1 for v in keys.values())
        with Ledger.open(tmp_path / "plan-2.ledger.sqlite", create=False) as led:
            rows = led.rows()
            assert {r["message_id"] for r in rows if r["possible_duplicate"]} == hidden
            assert {r["removal"] for r in rows} == {"ack"}


@pytest.mark.faults
@pytest.mark.timeout(240)
@pytest.mark.e2e
@pytest.mark.faults
def test_a_storm_of_5xx_on_peek_is_bounded_logged_and_the_first_ctrl_c_stops(tmp_path: Path) -> None:
    with running_sandbox(tmp_path) as sb:
        sc = build_without_leases(sb, tmp_path, n=150, selected=lambda i: i < 100)
        sb.set_faults("error_rate=1.0,ops=peek")
        env = cli_env(sb)
        proc = run_cli(["replay", "run", str(sc.plan_path), "--yes", "--no-progress"], env)
        deadline = time.monotonic() + 60
        run_id = None
        while time.monotonic() < deadline:
            run_id = run_id or run_id_of(sc.ledger_path, proc.pid)
            if run_id is not None and seen(sc.ledger_path, run_id, "server_error"):
                break
            time.sleep(0.02)
        assert run_id is not None
        assert proc.poll() is None
        time.sleep(0.3)
        proc.send_signal(signal.SIGINT)  # once
        _, err = proc.communicate(timeout=20)
        text = err.decode()
        assert proc.returncode == 130, text
        assert "retrying peek" in text, text  # a line per retry wait, even with --no-progress
        with Ledger.open(sc.ledger_path, create=False) as led:
            counts = led.counts()
            assert counts["pushing"] == counts["ambiguous"] == 0, counts
            assert led.runs()[-1]["outcome"] == "interrupted"
        # the ledger is consistent: a resume without faults finishes and nothing is lost
        sb.set_faults("")
        with client_for(sb) as client:
            result = run_replay(sc.plan_path, client, rate=400)
        assert result.outcome == "completed", result.to_dict()
        assert_nothing_lost(sb, sc)


@pytest.mark.timeout(240)
def test_without_leases_originals_are_purged_by_ref_even_beyond_the_first_peek(tmp_path: Path) -> None:
    with running_sandbox(tmp_path) as sb:
        sb.create_queue(ACCOUNT, "jobs", consumer={"type": "worker", "script_name": "jobs-consumer"})
        sb.create_queue(ACCOUNT, "jobs-dlq", consumer={"type": "http_pull"})
        sb.load_messages(
            ACCOUNT,
            "jobs-dlq",
            [{"id": message_id(i), "body": job(i), "timestamp_ms": T0_MS + i * 1000} for i in range(150)],
        )
        with client_for(sb) as client:
            head = collect_dlq(client, "jobs-dlq", mode="peek").frame  # the first 100, no leases
        # messages 120..149 come from an older export (no lease, beyond the peek window)
        old = dlq_frame([peeked(i, job(i)) for i in range(120, 150)], "jobs-dlq")
        frame = pd.concat([head, old], ignore_index=True)
        ids = [message_id(i) for i in [*range(50, 100), *range(120, 150)]]
        plan = plan_replay(frame, "jobs-dlq", "jobs", ids=ids, allow_queues=["jobs"], rate=400)
        path = plan.save(tmp_path / "plan.json")
        with client_for(sb) as client:
            first = run_replay(path, client)
        # 50..99 are purged after the first peek; that brings 120..149 into the head, and the
        # removal rounds after the pushes purge them in the same run
        assert first.outcome == "completed", first.to_dict()
        assert first.still_in_dlq == 0
        assert first.sweep_rounds >= 1
        state = sb.state()["accounts"][ACCOUNT]["queues"]
        assert len(state["jobs"]["messages"]) == 80  # every selected message was pushed once
        in_dlq = {m["id"] for m in state["jobs-dlq"]["messages"]}
        assert in_dlq == {message_id(i) for i in [*range(50), *range(100, 120)]}
        with Ledger.open(tmp_path / "plan.ledger.sqlite", create=False) as led:
            removal = {r["message_id"]: r["removal"] for r in led.rows()}
        assert {removal[message_id(i)] for i in range(50, 100)} == {"purge"}
        assert {removal[message_id(i)] for i in range(120, 150)} == {"purge"}

        # an allowed target that does not exist is refused before anything is sent
        other = plan_replay(frame, "jobs-dlq", "emails", ids=ids[:3], allow_queues=["emails"])
        other_path = other.save(tmp_path / "emails.json")
        with client_for(sb) as client, pytest.raises(ReplayRefusedError, match="'emails' does not exist"):
            run_replay(other_path, client, allow_queues=["emails"])
        with Ledger.open(tmp_path / "emails.ledger.sqlite", create=False) as led:
            assert led.counts()["planned"] == 3
            assert led.runs() == []
