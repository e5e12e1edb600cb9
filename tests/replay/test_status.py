"""`replay status`, `cancel` and `export`, read from the ledger while a run writes it, after a kill -9,
and at a set rate."""

from __future__ import annotations

import csv
import io
import json
import signal
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from replay_scenario import assert_nothing_lost, build, cli_env, client_for, run_cli, settled, snapshot_file

from edgeinvestigate.cli import cli
from edgeinvestigate.replay import Ledger, replay_status, run_replay
from edgeinvestigate.sandbox.testing import running_sandbox

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]


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


def test_status_after_kill_9_at_a_set_rate_and_the_preview_of_that_rate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("edgeinvestigate.cli._replay._can_ask", lambda: True)  # as at a terminal
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
        assert f"resume with `edgeinvestigate replay run {sc.plan_path} --allow-queue jobs`" in text
        assert "ETA" not in text
        doc = json.loads(CliRunner().invoke(cli, ["replay", "status", str(sc.plan_path), "--json"]).output)
        assert doc["state"] == "crashed"

        resume = run_cli(["replay", "run", str(sc.plan_path), "--yes", "--no-progress", "--rate", "400"], env)
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
