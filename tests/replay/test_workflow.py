"""The replay workflow as an on-call engineer runs it: plan, review, run, status, cancel, Ctrl-C,
resume, export, verify; and the peek + purge path for messages without a lease."""

from __future__ import annotations

import csv
import io
import json
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from replay_messages import T0_MS, job, message_id, peeked
from replay_scenario import (
    ACCOUNT,
    assert_nothing_lost,
    body_of,
    build,
    cli_env,
    client_for,
    run_cli,
    run_id_of,
    seen,
    settled,
)

from edgeinvestigate.cli import cli
from edgeinvestigate.errors import ReplayError, ReplayRefusedError
from edgeinvestigate.evidence.bundle import Evidence
from edgeinvestigate.models import frames as schema
from edgeinvestigate.replay import (
    Ledger,
    ReplayPlan,
    default_ledger_path,
    plan_replay,
    replay_status,
    run_replay,
    verify_replay,
)
from edgeinvestigate.sandbox.testing import running_sandbox
from edgeinvestigate.sources.api.dlq import collect_dlq
from edgeinvestigate.sources.api.dlq_frame import dlq_frame

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


def snapshot_file(tmp_path: Path, n: int = 60) -> Path:
    msgs = [peeked(i, body_of(i)) for i in range(n)]
    msgs.append(peeked(n, None, content_type="v8"))
    path = tmp_path / "messages.json"
    path.write_text(json.dumps({"queue": "jobs-dlq", "messages": msgs}))
    return path


def test_plan_command_shows_the_review_and_writes_the_plan(tmp_path: Path) -> None:
    snap = snapshot_file(tmp_path)
    patch = tmp_path / "fix.json"
    patch.write_text(json.dumps({"payload": {"template": "welcome-v2"}}))
    out = tmp_path / "plan.json"
    args = ["replay", "plan", str(snap), "--from", "jobs-dlq", "--to", "jobs", "--allow-queue", "jobs"]
    args += ["--type", "EMAIL_DELIVERY", "--type", "DATA_SYNC", "--patch", str(patch), "--out", str(out)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    text = res.output
    assert "24 messages from 'jobs-dlq' to 'jobs' in 1 batches" in text
    assert "EMAIL_DELIVERY" in text
    assert "DATA_SYNC" in text
    assert "sample payloads" in text
    assert 'payload.template: "welcome" -> "welcome-v2"' in text
    assert "not selected (stay in the DLQ): 37" in text  # 36 other jobs + the v8 body
    plan = ReplayPlan.load(out)
    assert len(plan.messages) == 24
    assert plan.bundle == str(snap.resolve())
    # all messages, to see exclusions: the v8 body is listed with its reason
    res = CliRunner().invoke(cli, [*args[:9], "--out", str(tmp_path / "all.json")])
    assert "unsupported_content_type" in res.output
    again = CliRunner().invoke(cli, args)
    assert again.exit_code != 0
    assert "exists already" in again.output


def test_refusals_are_one_line_errors_with_a_hint(tmp_path: Path) -> None:
    snap = snapshot_file(tmp_path)
    base = [sys.executable, "-m", "edgeinvestigate", "replay", "plan", str(snap), "--from", "jobs-dlq"]
    res = subprocess.run(
        [*base, "--to", "emails", "--out", str(tmp_path / "p.json")], capture_output=True, text=True
    )
    assert res.returncode == 3
    assert res.stderr.startswith("error: refusing to replay into 'emails': it is not in the allow-list")
    assert "hint: add --allow-queue emails" in res.stderr
    out = ["--out", str(tmp_path / "p.json")]
    res = subprocess.run(
        [*base, "--to", "jobs-dlq", "--allow-queue", "jobs-dlq", *out], capture_output=True, text=True
    )
    assert res.returncode == 3
    assert "into itself" in res.stderr
    assert not (tmp_path / "p.json").exists()

    ok = subprocess.run(
        [*base, "--to", "jobs", "--allow-queue", "jobs", *out], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    doc = json.loads((tmp_path / "p.json").read_text())
    doc["target_queue"] = "emails"
    (tmp_path / "p.json").write_text(json.dumps(doc))
    cmd = [sys.executable, "-m", "edgeinvestigate", "replay", "run", str(tmp_path / "p.json"), "--yes"]
    run = subprocess.run(cmd, capture_output=True, text=True, env={"PATH": "/usr/bin"})
    assert run.returncode == 3
    assert "was changed after it was made" in run.stderr


def test_run_status_cancel_resume_and_export(tmp_path: Path) -> None:
    with running_sandbox(tmp_path) as sb:
        sc = build(sb, tmp_path, n=500)
        result: dict[str, object] = {}

        def replay() -> None:
            with client_for(sb) as client:
                result["run"] = run_replay(sc.plan_path, client, rate=40)

        t = threading.Thread(target=replay)
        t.start()
        deadline = time.monotonic() + 60
        while settled(sc.ledger_path) < 100:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        runner = CliRunner()
        st = runner.invoke(cli, ["replay", "status", str(sc.plan_path), "--json"])
        assert st.exit_code == 0, st.output
        status = json.loads(st.output)
        assert status["running"] is True
        assert status["total"] == 300
        assert status["counts"]["settled"] >= 100
        assert status["runs"][0]["user"]
        text = runner.invoke(cli, ["replay", "status", str(sc.plan_path)]).output
        assert "running" in text
        assert "/300" in text
        cancel = runner.invoke(cli, ["replay", "cancel", str(sc.plan_path)])
        assert "the run stops after its in-flight batch" in cancel.output
        t.join(timeout=60)
        run = result["run"]
        assert run.outcome == "cancelled"  # type: ignore[attr-defined]
        after = replay_status(sc.plan_path)
        assert not after.running
        assert 100 <= after.counts["settled"] < 300
        assert after.counts["pushing"] == 0

        env = cli_env(sb)
        resume = runner.invoke(cli, ["replay", "run", str(sc.plan_path), "--yes", "--progress"], env=env)
        assert resume.exit_code == 0, resume.output
        assert "completed: 300/300 settled" in resume.output
        assert "300/300" in resume.output  # the progress bar: messages, rate, ETA, 429s
        assert "429s=0" in resume.output
        assert_nothing_lost(sb, sc)
        again = runner.invoke(cli, ["replay", "run", str(sc.plan_path), "--yes"], env=env)
        assert again.exit_code != 0
        assert "already completed" in str(again.exception)

        exported = runner.invoke(cli, ["replay", "export", str(sc.plan_path), "--format", "json"])
        doc = json.loads(exported.output)
        assert doc["plan"]["content_hash"] == sc.plan.content_hash
        assert [r["outcome"] for r in doc["runs"]] == ["cancelled", "completed"]
        assert all(r["user"] and r["host"] and r["started_at"] for r in doc["runs"])
        assert {m["state"] for m in doc["messages"]} == {"settled"}
        assert {e["kind"] for e in doc["events"]} >= {"cancel_requested", "push_confirmed", "settled"}
        out_csv = tmp_path / "replay.csv"
        runner.invoke(cli, ["replay", "export", str(sc.plan_path), "--format", "csv", "--out", str(out_csv)])
        rows = list(csv.DictReader(io.StringIO(out_csv.read_text())))
        assert len(rows) == 300
        assert {r["removal"] for r in rows} == {"ack"}
        assert rows[0]["plan_hash"] == sc.plan.content_hash

        # a plan that ran is evidence: re-planning over it is refused even with --force
        snap = snapshot_file(tmp_path)
        replan = ["replay", "plan", str(snap), "--from", "jobs-dlq", "--to", "jobs", "--allow-queue", "jobs"]
        res = runner.invoke(cli, [*replan, "--out", str(sc.plan_path), "--force"])
        assert res.exit_code == 2
        assert "was already run" in res.output


def test_ctrl_c_finishes_the_in_flight_batch(tmp_path: Path) -> None:
    with running_sandbox(tmp_path) as sb:
        sc = build(sb, tmp_path, n=500)
        env = cli_env(sb)
        args = ["replay", "run", str(sc.plan_path), "--yes", "--no-progress", "--rate", "20"]
        proc = run_cli(args, env)
        deadline = time.monotonic() + 30
        run_id = None
        while time.monotonic() < deadline:
            run_id = run_id or run_id_of(sc.ledger_path, proc.pid)
            if run_id and seen(sc.ledger_path, run_id, "push_sent"):
                break
            time.sleep(0.002)
        proc.send_signal(signal.SIGINT)  # right after the first batch went out
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err.decode()
        assert "stopping after the in-flight batch" in err.decode()
        with Ledger.open(sc.ledger_path, create=False) as led:
            counts = led.counts()
            assert led.runs()[-1]["outcome"] == "interrupted"
        assert counts["settled"] == 100  # the in-flight batch was finished, then it stopped
        assert counts["pushing"] == counts["ambiguous"] == 0
        final = run_cli(args[:-2], env)
        final.communicate(timeout=60)
        assert final.returncode == 0
        stats = assert_nothing_lost(sb, sc)
        assert stats["duplicates"] == 0


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
        plan = plan_replay(frame, "jobs-dlq", "jobs", ids=ids, allow_queues=["jobs"], rate=1000)
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
            run_replay(other_path, client)
        with Ledger.open(tmp_path / "emails.ledger.sqlite", create=False) as led:
            assert led.counts()["planned"] == 3
            assert led.runs() == []


def _ledger_says_all_settled(plan: ReplayPlan, path: Path) -> None:
    """The ledger a completed run leaves (the test skips the sandbox: verify reads only the ledger)."""
    ids = [m.message_id for m in plan.messages]
    with Ledger.open(default_ledger_path(path)) as led:
        led.init_plan(
            plan_id=plan.plan_id,
            content_hash=plan.content_hash,
            plan_path=str(path),
            rows=[(m.message_id, m.replay_id, m.batch, m.lease_id) for m in plan.messages],
        )
        run = led.begin_run(user="oncall", host="laptop", argv=[], rate=100.0, max_requests=1200)
        led.start_push(ids, run)
        led.push_confirmed(ids, run)
        led.settle(ids, run, "ack")
        led.end_run(run, "completed")


def test_verify_finds_loops_successes_and_unseen_jobs(tmp_path: Path) -> None:
    msgs = [peeked(i, job(i, "EMAIL_DELIVERY")) for i in range(40)]
    plan = plan_replay(dlq_frame(msgs, "jobs-dlq"), "jobs-dlq", "jobs", allow_queues=["jobs"])
    path = plan.save(tmp_path / "plan.json")
    # later: 5 replayed jobs failed again and are back in the DLQ (with new ids, wrapped with the error)
    back = [
        peeked(1000 + i, {"original": plan.messages[i].body, "error": "SMTP 550 mailbox unavailable"})
        for i in range(5)
    ]
    later = pd.Timestamp(plan.created_at) + pd.Timedelta(minutes=5)
    log_rows = []
    for i in range(5, 25):  # 20 seen succeeding, by job id
        log_rows.append({"ts": later, "level": "log", "job_id": f"job-{i:06d}", "message": "sent",
                         "args": json.dumps([{"jobId": f"job-{i:06d}", "event": "completed"}])})  # fmt: skip
    for i in range(25, 28):  # 3 seen failing, found by replay id in the log line
        rid = plan.messages[i].replay_id
        log_rows.append({"ts": later, "level": "error", "message": f"failed replay {rid}",
                         "args": json.dumps([{"replayId": rid, "error": "timeout"}])})  # fmt: skip
    log_rows.append(
        {
            "ts": later - pd.Timedelta(hours=2),
            "level": "log",
            "job_id": "job-000030",
            "message": "done",
            "args": "[]",
        }
    )  # fmt: skip  (before the replay: ignored)
    ev2 = replace(
        Evidence.empty().with_dlq(dlq_frame(back, "jobs-dlq")),
        logs=schema.conform(pd.DataFrame(log_rows), "logs"),
    )
    with pytest.raises(ReplayError, match="has not run: nothing to verify"):
        verify_replay(path, ev2)  # a plan that never ran has replayed nothing
    _ledger_says_all_settled(plan, path)
    report = verify_replay(path, ev2)
    counts = report.counts()
    assert counts == {
        "replayed": 40,
        "back_in_dlq": 5,
        "succeeded": 20,
        "failing_in_logs": 3,
        "not_seen": 12,
        "originals_still_in_dlq": 0,
        "not_replayed": 0,
    }
    assert {b["of"] for b in report.back_in_dlq} == {m.message_id for m in plan.messages[:5]}
    bundle = ev2.save(tmp_path / "bundle2")
    res = CliRunner().invoke(cli, ["replay", "verify", str(path), str(bundle)])
    assert res.exit_code == 0, res.output
    assert "back in the DLQ (failed again): 5" in res.output
    assert "seen succeeding in logs:        20" in res.output
    # a new plan from that later bundle excludes the loopers instead of replaying them again
    again = plan_replay(ev2, "jobs-dlq", "jobs", allow_queues=["jobs"])
    assert {e.reason for e in again.excluded} == {"already_replayed"}


def test_plan_by_cluster_on_an_evidence_bundle(tmp_path: Path) -> None:
    import edgeinvestigate as ei

    ev = ei.sample_bundle()
    bundle = ev.save(tmp_path / "INC-1")
    counts = ei.cluster(ev).dlq["cluster_id"].value_counts()
    top, n = str(counts.index[0]), int(counts.iloc[0])
    out = tmp_path / "plan.json"
    args = ["replay", "plan", str(bundle), "--from", "jobs-dlq", "--to", "jobs", "--allow-queue", "jobs"]
    res = CliRunner().invoke(cli, [*args, "--cluster", top, "--out", str(out)])
    assert res.exit_code == 0, res.output
    plan = ReplayPlan.load(out)
    assert plan.by_cluster == {top: len(plan.messages)}
    assert len(plan.messages) + len(plan.excluded) == n
    assert plan.bundle == str(bundle.resolve())


def test_declined_confirmation_sends_nothing_and_the_plan_can_be_remade(tmp_path: Path) -> None:
    with running_sandbox(tmp_path) as sb:
        sc = build(sb, tmp_path, n=200)
        runner = CliRunner()
        res = runner.invoke(cli, ["replay", "run", str(sc.plan_path)], env=cli_env(sb), input="n\n")
        assert res.exit_code != 0
        assert "replay 120 messages from 'jobs-dlq' to 'jobs'?" in res.output
        assert "nothing was sent" in str(res.exception)
        assert sb.queue_state(ACCOUNT, "jobs")["messages"] == []
        snap = snapshot_file(tmp_path)
        replan = ["replay", "plan", str(snap), "--from", "jobs-dlq", "--to", "jobs", "--allow-queue", "jobs"]
        res = runner.invoke(cli, [*replan, "--out", str(sc.plan_path), "--force"])
        assert res.exit_code == 0, res.output
        assert not sc.ledger_path.exists()  # the never-run ledger of the old plan went with it
