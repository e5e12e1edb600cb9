"""A run as the operator drives it: the first Ctrl-C finishes the in-flight batch; a declined
confirmation sends nothing, and without a terminal --yes is needed; run_until_settled runs a plan
again while a run ends incomplete."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from replay_scenario import (
    ACCOUNT,
    assert_nothing_lost,
    build,
    cli_env,
    cli_run,
    run_cli,
    run_id_of,
    seen,
    snapshot_file,
)

from edgeinvestigate.cli import cli
from edgeinvestigate.replay import Ledger, RunResult, default_ledger_path
from edgeinvestigate.sandbox.testing import running_sandbox


@pytest.mark.e2e
@pytest.mark.timeout(240)
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


@pytest.mark.e2e
@pytest.mark.timeout(240)
def test_declined_confirmation_sends_nothing_and_the_plan_can_be_remade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("edgeinvestigate.cli._replay._can_ask", lambda: True)  # as at a terminal
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


def test_run_until_settled_runs_again_while_a_run_is_incomplete(monkeypatch: pytest.MonkeyPatch) -> None:
    from edgeinvestigate.replay import _runner

    outcomes = ["incomplete", "incomplete", "completed", "incomplete"]
    calls: list[tuple[object, object, dict[str, object]]] = []

    def fake(plan_path: object, client: object, **options: object) -> RunResult:
        calls.append((plan_path, client, options))
        return RunResult(outcome=outcomes[len(calls) - 1], plan_id="p", ledger="l", counts={})

    monkeypatch.setattr(_runner, "run_replay", fake)
    client = object()
    result = _runner.run_until_settled("plan.json", client, rate=50.0, confirm=None)  # type: ignore[arg-type]
    assert result.outcome == "completed"
    assert calls == [("plan.json", client, {"rate": 50.0, "confirm": None})] * 3
    calls.clear()
    outcomes[:] = ["incomplete"] * 5
    assert _runner.run_until_settled("plan.json", client, max_runs=2).outcome == "incomplete"  # type: ignore[arg-type]
    assert len(calls) == 2
    calls.clear()
    outcomes[:] = ["cancelled"]
    assert _runner.run_until_settled("plan.json", client).outcome == "cancelled"  # type: ignore[arg-type]
    assert len(calls) == 1  # a stopped run is not resumed behind the operator's back


def test_without_a_terminal_replay_run_needs_yes(tmp_path: Path) -> None:
    snap = snapshot_file(tmp_path, n=5)
    plan = tmp_path / "plan.json"
    env = dict(os.environ)
    made = cli_run(
        [
            "replay",
            "plan",
            str(snap),
            "--from",
            "jobs-dlq",
            "--to",
            "jobs",
            "--allow-queue",
            "jobs",
            "--out",
            str(plan),
        ],
        env,
    )
    assert made.returncode == 0, made.stderr
    # stdin is not a terminal (cli_run gives /dev/null): no question can be asked, so none is
    res = cli_run(["replay", "run", str(plan)], env)
    assert res.returncode == 2, res.stderr
    err = " ".join(res.stderr.split())
    assert err.startswith(f"error: replay run {plan}: there is no terminal to ask for confirmation on")
    assert "--yes was not given; nothing was sent" in err
    assert "hint: review the plan" in err
    assert "then pass --yes" in err
    assert "aborted" not in err
    assert not default_ledger_path(plan).exists()  # refused before anything else
    # --json: the same error as a JSON object on stdout
    res = cli_run(["replay", "run", str(plan), "--json"], env)
    assert res.returncode == 2
    doc = json.loads(res.stdout)
    assert doc["error"]["type"] == "ConfigError"
    assert doc["error"]["exit_code"] == 2
    assert "then pass --yes" in doc["error"]["hint"]
