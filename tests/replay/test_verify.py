"""`replay verify`: replayed jobs seen succeeding, failing again, back in the DLQ or not seen yet; a
plan that never ran; a later bundle that saw only the head of the DLQ."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from replay_messages import T0_MS, job, peeked
from replay_scenario import ACCOUNT, bundle_of, cli_env, cli_main, cli_run, job_frame, jobs_and_dlq, plan_jobs

from edgeinvestigate.cli import cli
from edgeinvestigate.errors import ConfigError, ReplayError
from edgeinvestigate.evidence.bundle import Evidence
from edgeinvestigate.models import frames as schema
from edgeinvestigate.replay import Ledger, ReplayPlan, default_ledger_path, plan_replay, verify_replay
from edgeinvestigate.sandbox.testing import running_sandbox
from edgeinvestigate.sources.api.dlq import dlq_frame

ALLOW = ["--from", "jobs-dlq", "--to", "jobs", "--allow-queue", "jobs"]


@pytest.mark.timeout(240)
def test_verify_of_a_plan_that_never_ran_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    frame = job_frame()
    bundle = bundle_of(tmp_path, frame)
    path = plan_jobs(frame).save(tmp_path / "plan.json")
    code, text = cli_main(["replay", "verify", str(path), str(bundle)], capsys)
    assert code == 1, text
    text = " ".join(text.split())
    assert "has not run: nothing to verify (6 messages planned, 0 replayed; no ledger at" in text
    assert "replay run PLAN" in text


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


@pytest.mark.e2e
@pytest.mark.timeout(240)
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
    # a new plan from that later bundle excludes the loopers instead of replaying them again: as they
    # are all it would hold, no (empty) plan is made at all
    with pytest.raises(
        ConfigError, match=r"all 5 selected DLQ messages .* are excluded \(5 already_replayed\)"
    ):
        plan_replay(ev2, "jobs-dlq", "jobs", allow_queues=["jobs"])


@pytest.mark.e2e
@pytest.mark.timeout(240)
def test_a_peek_bundle_is_flagged_by_plan_and_verify(tmp_path: Path) -> None:
    with running_sandbox(tmp_path) as sb:
        jobs_and_dlq(sb, 250)
        env = cli_env(sb)
        bundle = tmp_path / "B1"
        assert cli_run(["collect", "--dlq", "jobs-dlq", "--out", str(bundle)], env).returncode == 0
        out = tmp_path / "plan.json"
        res = cli_run(
            ["replay", "plan", str(bundle), *ALLOW, "--type", "EMAIL_DELIVERY", "--out", str(out)], env
        )
        assert res.returncode == 0, res.stderr
        text = " ".join(res.stdout.split())
        assert "WARNING: the bundle saw 100 of the 250 messages of the DLQ 'jobs-dlq'" in text
        assert "this plan covers only those 100" in text
        assert "--dlq-mode snapshot" in text
        plan = ReplayPlan.load(out)  # recorded in the plan (and its hash)
        assert plan.dlq_coverage == {
            "queue": "jobs-dlq",
            "mode": "peek",
            "messages": 100,
            "backlog_count": 250,
            "complete": False,
        }
        assert any("saw 100 of the 250" in w for w in plan.warnings)
        assert len(plan.messages) == 20

        run = cli_run(["replay", "run", str(out), "--yes", "--no-progress"], env)
        assert run.returncode == 0, run.stderr
        # every replayed job fails again and lands at the tail of the DLQ, behind 230 messages
        replayed = sb.queue_state(ACCOUNT, "jobs")["messages"]
        sb.load_messages(
            ACCOUNT,
            "jobs-dlq",
            [
                {
                    "id": f"{i:08x}" + "f" * 24,
                    "body": {"original": m["body"], "error": "SMTP 550 mailbox unavailable"},
                    "content_type": "json",
                    "timestamp_ms": T0_MS + (1000 + i) * 1000,
                }
                for i, m in enumerate(replayed)
            ],
        )
        bundle2 = tmp_path / "B2"
        assert cli_run(["collect", "--dlq", "jobs-dlq", "--out", str(bundle2)], env).returncode == 0
        res = cli_run(["replay", "verify", str(out), str(bundle2)], env)
        assert res.returncode == 0, res.stderr
        text = " ".join(res.stdout.split())
        assert "back in the DLQ (failed again): 0" in text  # they are there, out of the peek's sight
        assert "WARNING: the bundle saw 100 of the 250 messages of the DLQ 'jobs-dlq'" in text
        assert "'not seen yet' (20) may include jobs that failed again" in text
        assert "edgeinvestigate collect --dlq jobs-dlq --dlq-mode snapshot" in text

        # with a complete view the loops are found and the warning is gone
        bundle3 = tmp_path / "B3"
        col = cli_run(["collect", "--dlq", "jobs-dlq", "--dlq-mode", "snapshot", "--out", str(bundle3)], env)
        assert col.returncode == 0, col.stderr
        report = verify_replay(out, bundle3)
        assert report.counts()["back_in_dlq"] == 20
        assert report.warnings == []
