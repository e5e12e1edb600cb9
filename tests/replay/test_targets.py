"""The target queue and the speed: the allow-list of the operator (flags, environment, config file;
checked again at run time, never taken from the plan), the DLQ itself and other DLQs refused, and a
rate the request budget cannot carry refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from replay_scenario import ACCOUNT, cli_env, cli_run, client_for, jobs_and_dlq, snapshot_file, tamper

from edgeinvestigate.errors import ConfigError, ReplayRefusedError
from edgeinvestigate.replay import plan_replay, run_replay, runtime_allow_list
from edgeinvestigate.replay._targets import ALLOW_ENV, check_rate, max_rate
from edgeinvestigate.sandbox.testing import running_sandbox

THREE_WAYS = ("--allow-queue payments", f"{ALLOW_ENV}=payments", "--config FILE")


def test_target_allow_list_and_the_dlq_itself_are_enforced(
    dlq_frame: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ALLOW_ENV)
    with pytest.raises(ReplayRefusedError, match="into itself"):
        plan_replay(dlq_frame, "jobs-dlq", "jobs-dlq", allow_queues=["jobs-dlq"])
    with pytest.raises(ReplayRefusedError, match=r"not in the allow-list.*allowed: none") as err:
        plan_replay(dlq_frame, "jobs-dlq", "jobs")
    assert err.value.hint.startswith(
        "after checking the name, allow it in one of three ways: --allow-queue jobs"
    )
    other = dlq_frame.assign(queue=["jobs-dlq"] * 299 + ["emails-dlq"])
    with pytest.raises(ReplayRefusedError, match="dead-letter queue"):
        plan_replay(other, "jobs-dlq", "emails-dlq", allow_queues=["emails-dlq"])
    cfg = tmp_path / "edgeinvestigate.toml"
    cfg.write_text('[replay]\nallow_queues = ["jobs"]\n')
    assert plan_replay(dlq_frame, "jobs-dlq", "jobs", config=cfg).allow_queues == ["jobs"]
    cfg.write_text("[replay]\nallow_queues = 'jobs'\n")
    with pytest.raises(ConfigError, match="must be a list"):
        plan_replay(dlq_frame, "jobs-dlq", "jobs", config=cfg)
    cfg.write_text("replay = 3\n")
    with pytest.raises(ConfigError, match=r"\[replay\] must be a table"):
        plan_replay(dlq_frame, "jobs-dlq", "jobs", config=cfg)
    # the environment allows too
    monkeypatch.setenv(ALLOW_ENV, " jobs , emails,")
    assert plan_replay(dlq_frame, "jobs-dlq", "jobs").allow_queues == ["emails", "jobs"]


def test_the_allow_list_of_a_run_is_the_union_of_its_three_sources(tmp_path: Path) -> None:
    from edgeinvestigate.cli._replay import ALLOW_ENV as NAMED_BY_THE_CLI

    assert NAMED_BY_THE_CLI == ALLOW_ENV == "EDGEINVESTIGATE_REPLAY_ALLOW_QUEUES"
    cfg = tmp_path / "c.toml"
    cfg.write_text('[replay]\nallow_queues = ["from-config"]\n')
    env = {ALLOW_ENV: "from-env-1,from-env-2"}
    assert runtime_allow_list(["from-flag"], cfg, environ=env) == [
        "from-config", "from-env-1", "from-env-2", "from-flag",
    ]  # fmt: skip
    assert runtime_allow_list(environ={}) == []
    with pytest.raises(ConfigError, match="cannot read the config file"):
        runtime_allow_list(config=tmp_path / "missing.toml", environ={})


def test_the_highest_rate_is_what_the_request_budget_carries() -> None:
    assert max_rate(1200) == 400.0  # 4 requests/s, 100 messages a push
    assert max_rate(10, 2.0) == 500.0
    check_rate(400, 1200)
    with pytest.raises(ConfigError) as err:
        check_rate(1e6, 1200)
    assert err.value.exit_code == 2
    assert "--rate 1e+06 messages/s is more than the request budget can carry" in err.value.message
    assert "at most 400 messages/s" in err.value.message
    assert err.value.hint.startswith("use --rate 400 or less")
    with pytest.raises(ReplayRefusedError, match="the plan file was edited") as refused:
        check_rate(1e6, 1200, source="the plan's rate", refuse=True)
    assert refused.value.exit_code == 3
    with pytest.raises(ConfigError, match="must be positive"):
        check_rate(0, 1200)
    with pytest.raises(ConfigError, match="must be positive"):
        check_rate(float("nan"), 1200)


def test_a_plan_at_a_rate_the_budget_cannot_carry_is_not_made(dlq_frame: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="at most 400 messages/s"):
        plan_replay(dlq_frame, "jobs-dlq", "jobs", allow_queues=["jobs"], rate=1e6)
    with pytest.raises(ConfigError, match="at most 200 messages/s"):
        plan_replay(dlq_frame, "jobs-dlq", "jobs", allow_queues=["jobs"], rate=300, max_requests_per_5min=600)
    assert plan_replay(dlq_frame, "jobs-dlq", "jobs", allow_queues=["jobs"], rate=400).rate == 400


@pytest.mark.e2e
@pytest.mark.timeout(240)
def test_a_retargeted_or_sped_up_plan_is_refused_before_any_request(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ALLOW_ENV)
    with running_sandbox(tmp_path) as sb:
        jobs_and_dlq(sb, 30)
        sb.create_queue(ACCOUNT, "payments", consumer={"type": "worker", "script_name": "payments"})
        with client_for(sb) as client:
            from edgeinvestigate.sources.api.dlq import collect_dlq

            frame = collect_dlq(client, "jobs-dlq", mode="peek").frame
        path = plan_replay(frame, "jobs-dlq", "jobs", allow_queues=["jobs"]).save(tmp_path / "plan.json")
        before = sb.state()["accounts"][ACCOUNT]["queues"]

        # retargeted to `payments`, the plan's own allow-list edited to match, the hash recomputed
        tamper(path, target_queue="payments", allow_queues=["jobs", "payments"])
        with client_for(sb) as client:
            with pytest.raises(ReplayRefusedError) as err:
                run_replay(path, client, allow_queues=["jobs"])
            assert client.requests_sent == 0  # refused before any request
            assert err.value.exit_code == 3
            assert "refusing to replay into 'payments': it is not in the allow-list" in err.value.message
            assert "(allowed: jobs)" in err.value.message
            assert "not from the plan file" in err.value.message
            assert all(way in err.value.hint for way in THREE_WAYS)
            # nothing allowed at all: refused the same way
            with pytest.raises(ReplayRefusedError, match=r"\(allowed: none\)"):
                run_replay(path, client)
            assert client.requests_sent == 0
        assert not (tmp_path / "plan.ledger.sqlite").exists()

        # sped up: rate 1e6 with the hash recomputed
        tamper(path, target_queue="jobs", rate=1e6)
        with client_for(sb) as client:
            with pytest.raises(ReplayRefusedError) as err:
                run_replay(path, client, allow_queues=["jobs"])
            assert (
                "the plan's rate 1e+06 messages/s is more than the request budget can carry"
                in err.value.message
            )
            assert "at most 400 messages/s" in err.value.message
            # a --rate the budget cannot carry is a bad argument (exit 2)
            with pytest.raises(ConfigError, match="at most 400 messages/s"):
                run_replay(path, client, allow_queues=["jobs"], rate=5000)
            assert client.requests_sent == 0
        assert sb.state()["accounts"][ACCOUNT]["queues"] == before  # nothing moved anywhere


@pytest.mark.e2e
@pytest.mark.timeout(240)
def test_replay_run_takes_its_allow_list_from_the_operator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(ALLOW_ENV)
    with running_sandbox(tmp_path) as sb:
        jobs_and_dlq(sb, 30)
        snap = snapshot_file(tmp_path, n=30)
        env = cli_env(sb)
        plan = tmp_path / "plan.json"
        made = cli_run(
            ["replay", "plan", str(snap), "--from", "jobs-dlq", "--to", "jobs", "--allow-queue", "jobs",
             "--out", str(plan)], env,
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        assert "replay run" in made.stdout
        assert "--allow-queue jobs" in made.stdout  # the next command, with what it now needs
        # the plan says allow_queues = ["jobs"]: not enough for the run
        res = cli_run(["replay", "run", str(plan), "--yes"], env)
        assert res.returncode == 3, res.stderr
        err = " ".join(res.stderr.split())
        assert err.startswith("error: refusing to replay into 'jobs': it is not in the allow-list")
        assert "hint: after checking the name, allow it in one of three ways: --allow-queue jobs" in err
        assert f"{ALLOW_ENV}=jobs" in err
        assert "--config FILE" in err
        assert sb.queue_state(ACCOUNT, "jobs")["messages"] == []
        # the config file of the run
        cfg = tmp_path / "ops.toml"
        cfg.write_text('[replay]\nallow_queues = ["jobs"]\n')
        ok = cli_run(["replay", "run", str(plan), "--yes", "--config", str(cfg), "--json"], env)
        assert ok.returncode == 0, ok.stderr
        assert json.loads(ok.stdout)["outcome"] == "completed"
        assert len(sb.queue_state(ACCOUNT, "jobs")["messages"]) == 30


@pytest.mark.e2e
@pytest.mark.timeout(240)
def test_refusals_are_one_line_errors_with_a_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ALLOW_ENV)
    snap = snapshot_file(tmp_path)
    base = [sys.executable, "-m", "edgeinvestigate", "replay", "plan", str(snap), "--from", "jobs-dlq"]
    res = subprocess.run(
        [*base, "--to", "emails", "--out", str(tmp_path / "p.json")], capture_output=True, text=True
    )
    assert res.returncode == 3
    assert res.stderr.startswith("error: refusing to replay into 'emails': it is not in the allow-list")
    assert "hint: after checking the name, allow it in one of three ways: --allow-queue emails" in res.stderr
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
