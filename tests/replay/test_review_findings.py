"""What a reviewer found following the docs against the sandbox, each proven fixed against the real
sandbox: a second plan from the same (now stale) bundle, a peek bundle that saw only the head of the
DLQ, clusters without --cluster, and `replay status` after kill -9, at a set rate, and when blocked."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from replay_messages import T0_MS, message_id
from replay_scenario import ACCOUNT, assert_nothing_lost, body_of, build, cli_env, run_cli, settled

from edgeinvestigate.cli import cli
from edgeinvestigate.replay import Ledger, ReplayPlan, replay_status, verify_replay
from edgeinvestigate.sandbox.testing import running_sandbox

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

ALLOW = ["--from", "jobs-dlq", "--to", "jobs", "--allow-queue", "jobs"]
BOTH = ["--type", "EMAIL_DELIVERY", "--type", "DATA_SYNC"]


def _queues(sb: Any, n: int) -> None:
    sb.create_queue(
        ACCOUNT,
        "jobs",
        consumer={"type": "worker", "script_name": "jobs-consumer", "dead_letter_queue": "jobs-dlq"},
    )
    sb.create_queue(
        ACCOUNT,
        "jobs-dlq",
        consumer={"type": "http_pull", "max_retries": 50, "visibility_timeout_ms": 3_600_000},
    )
    sb.load_messages(
        ACCOUNT,
        "jobs-dlq",
        [
            {
                "id": message_id(i),
                "body": body_of(i),
                "content_type": "json",
                "timestamp_ms": T0_MS + i * 1000,
            }
            for i in range(n)
        ],
    )


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edgeinvestigate", *args],
        env=env,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        timeout=120,
    )


def _target_copies(sb: Any) -> Counter[str]:
    return Counter(m["body"]["metadata"]["replay"]["of"] for m in sb.queue_state(ACCOUNT, "jobs")["messages"])


def test_a_second_plan_from_the_same_snapshot_bundle_does_not_replay_twice(tmp_path: Path) -> None:
    with running_sandbox(tmp_path) as sb:
        _queues(sb, 250)
        env = cli_env(sb)
        bundle = tmp_path / "B1"
        col = _cli(
            [
                "collect",
                "--dlq",
                "jobs-dlq",
                "--dlq-mode",
                "snapshot",
                "--dlq-keep-leases",
                "--out",
                str(bundle),
            ],
            env,
        )
        assert col.returncode == 0, col.stderr
        # plans in three directories: only the bundle links them
        for d in ("a", "b", "c"):
            (tmp_path / d).mkdir()
        first, stale, second = (
            tmp_path / "a/plan-email.json",
            tmp_path / "c/stale.json",
            tmp_path / "b/plan2.json",
        )
        res = _cli(
            ["replay", "plan", str(bundle), *ALLOW, "--type", "EMAIL_DELIVERY", "--out", str(first)], env
        )
        assert res.returncode == 0, res.stderr
        # made before the first plan ran: it cannot know yet, so its run must find out
        res = _cli(
            ["replay", "plan", str(bundle), *ALLOW, *BOTH, "--out", str(stale)],
            env,
        )
        assert res.returncode == 0, res.stderr
        emails = {m.message_id for m in ReplayPlan.load(first).messages}
        assert len(emails) == 50

        run = _cli(["replay", "run", str(first), "--yes", "--no-progress"], env)
        assert run.returncode == 0, run.stderr
        assert "completed: 50/50 settled" in run.stdout
        assert (bundle / "replays").is_dir()  # the run registered its ledger in the bundle

        # the same bundle, one more selector, another directory: the 50 are excluded and counted
        res = _cli(
            ["replay", "plan", str(bundle), *ALLOW, *BOTH, "--out", str(second)],
            env,
        )
        assert res.returncode == 0, res.stderr
        text = " ".join(res.stdout.split())
        assert "50 selected messages were already replayed by earlier plans" in text
        assert "already_replayed 50" in text
        plan2 = ReplayPlan.load(second)
        assert {m.message_id for m in plan2.messages}.isdisjoint(emails)
        assert len(plan2.messages) == 50  # the DATA_SYNC jobs only
        assert {e.message_id for e in plan2.excluded if e.reason == "already_replayed"} == emails
        assert any("already replayed by earlier plans" in w for w in plan2.warnings)
        first_plan_id = ReplayPlan.load(first).plan_id
        assert all(first_plan_id in e.detail for e in plan2.excluded if e.reason == "already_replayed")

        # the stale plan (made before) is refused before anything is sent
        before = sum(_target_copies(sb).values())
        res = _cli(["replay", "run", str(stale), "--yes", "--no-progress"], env)
        assert res.returncode == 3, res.stdout + res.stderr
        assert (
            "50 of its 100 messages not yet sent were already replayed and removed from the DLQ" in res.stderr
        )
        assert f"plan {first_plan_id}" in res.stderr
        assert "hint: make a new plan from the same bundle" in res.stderr
        assert sum(_target_copies(sb).values()) == before

        run = _cli(["replay", "run", str(second), "--yes", "--no-progress"], env)
        assert run.returncode == 0, run.stderr
        copies = _target_copies(sb)
        assert len(copies) == 100
        assert set(copies.values()) == {1}  # every job replayed exactly once across the plans
        in_dlq = {m["id"] for m in sb.queue_state(ACCOUNT, "jobs-dlq")["messages"]}
        assert in_dlq.isdisjoint(copies)
        assert len(in_dlq) == 150


def test_a_peek_bundle_is_flagged_by_plan_and_verify(tmp_path: Path) -> None:
    with running_sandbox(tmp_path) as sb:
        _queues(sb, 250)
        env = cli_env(sb)
        bundle = tmp_path / "B1"
        assert _cli(["collect", "--dlq", "jobs-dlq", "--out", str(bundle)], env).returncode == 0
        out = tmp_path / "plan.json"
        res = _cli(
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

        run = _cli(["replay", "run", str(out), "--yes", "--no-progress"], env)
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
        assert _cli(["collect", "--dlq", "jobs-dlq", "--out", str(bundle2)], env).returncode == 0
        res = _cli(["replay", "verify", str(out), str(bundle2)], env)
        assert res.returncode == 0, res.stderr
        text = " ".join(res.stdout.split())
        assert "back in the DLQ (failed again): 0" in text  # they are there, out of the peek's sight
        assert "WARNING: the bundle saw 100 of the 250 messages of the DLQ 'jobs-dlq'" in text
        assert "'not seen yet' (20) may include jobs that failed again" in text
        assert "edgeinvestigate collect --dlq jobs-dlq --dlq-mode snapshot" in text

        # with a complete view the loops are found and the warning is gone
        bundle3 = tmp_path / "B3"
        col = _cli(["collect", "--dlq", "jobs-dlq", "--dlq-mode", "snapshot", "--out", str(bundle3)], env)
        assert col.returncode == 0, col.stderr
        report = verify_replay(out, bundle3)
        assert report.counts()["back_in_dlq"] == 20
        assert report.warnings == []


def test_clusters_are_shown_without_cluster_selector(tmp_path: Path) -> None:
    import edgeinvestigate as ei

    ev = ei.sample_bundle()
    bundle = ev.save(tmp_path / "INC-1")
    expected = ei.cluster(ev).dlq.set_index("message_id")["cluster_id"].astype(str).to_dict()
    job_type = str(ev.dlq["job_type"].dropna().iloc[0])
    out = tmp_path / "plan.json"
    res = CliRunner().invoke(
        cli, ["replay", "plan", str(bundle), *ALLOW, "--type", job_type, "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    plan = ReplayPlan.load(out)
    assert plan.messages
    assert all(m.cluster_id == expected[m.message_id] for m in plan.messages)
    assert "(none)" not in plan.by_cluster
    by_cluster = res.output.split("by cluster:")[1].split("by job type:")[0]
    assert "(none)" not in by_cluster
    assert sum(plan.by_cluster.values()) == len(plan.messages)


def test_status_after_kill_9_at_a_set_rate_and_the_preview_of_that_rate(tmp_path: Path) -> None:
    with running_sandbox(tmp_path) as sb:
        sc = build(sb, tmp_path, n=500)  # 300 to replay, planned at 400 msg/s
        env = cli_env(sb)
        # the confirmation preview is made for this run's --rate, not the plan's
        res = CliRunner().invoke(
            cli, ["replay", "run", str(sc.plan_path), "--rate", "50"], env=env, input="n\n"
        )
        assert "at 50 msg/s" in res.output
        assert "the plan was made for 400 msg/s" in res.output
        assert "at 400 msg/s" not in res.output

        proc = run_cli(["replay", "run", str(sc.plan_path), "--yes", "--no-progress", "--rate", "100"], env)
        deadline = time.monotonic() + 60
        while settled(sc.ledger_path) < 200:  # two batches of 100, one second apart
            assert time.monotonic() < deadline, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.02)
        st = replay_status(sc.plan_path)
        assert st.running
        assert st.state == "running"
        assert st.rate_limit_msgs_per_s == 100
        assert 0 < st.rate_msgs_per_s <= 100 * 1.02  # measured over the run: no burst above the limit
        assert st.eta_s is not None
        assert st.eta_s >= (300 - st.counts["settled"] - st.counts["pushed"]) / 100 - 0.01
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)

        st = replay_status(sc.plan_path)  # at once, not 120 s later
        assert (st.state, st.running, st.eta_s) == ("crashed", False, None)
        text = st.render()
        assert "not running (crashed? last heartbeat" in text
        assert f"resume with `edgeinvestigate replay run {sc.plan_path}`" in text
        assert "ETA" not in text
        doc = json.loads(CliRunner().invoke(cli, ["replay", "status", str(sc.plan_path), "--json"]).output)
        assert doc["state"] == "crashed"

        resume = run_cli(
            ["replay", "run", str(sc.plan_path), "--yes", "--no-progress", "--rate", "2000"], env
        )
        _, err = resume.communicate(timeout=60)
        assert resume.returncode == 0, err.decode()
        assert_nothing_lost(sb, sc)
        st = replay_status(sc.plan_path)
        assert (st.state, st.eta_s) == ("completed", 0.0)
        with Ledger.open(sc.ledger_path, create=False) as led:
            assert [r["outcome"] for r in led.runs()] == ["interrupted", "completed"]


def test_the_measured_rate_never_reads_one_batch_as_a_burst() -> None:
    from edgeinvestigate.replay._status import _measured_rate

    # --rate 50, batches of 100 sent 2 s apart: one batch 1.2 s in used to read 81 msg/s
    assert _measured_rate([(0.0, 100)], 1.2) is None
    assert _measured_rate([(0.0, 100), (2.0, 100)], 2.1) == pytest.approx(50.0)
    assert _measured_rate([(0.0, 100), (2.0, 100), (4.0, 100)], 4.05) == pytest.approx(50.0)
    # --rate 10: 10 s apart; the ETA then uses at most 10 msg/s
    assert _measured_rate([(0.0, 100), (10.0, 100)], 10.5) == pytest.approx(10.0)
    # a stall after the last batch (a 429 storm) brings it down
    assert _measured_rate([(0.0, 100), (2.0, 100)], 40.0) == pytest.approx(5.0)
