"""Earlier replays of the same messages, found through the ledgers a bundle registers: never replayed
twice across plans."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from replay_scenario import ACCOUNT, cli_env, cli_run, jobs_and_dlq

from edgeinvestigate.replay import ReplayPlan
from edgeinvestigate.sandbox.testing import running_sandbox

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]
ALLOW = ["--from", "jobs-dlq", "--to", "jobs", "--allow-queue", "jobs"]
BOTH = ["--type", "EMAIL_DELIVERY", "--type", "DATA_SYNC"]


def _target_copies(sb: Any) -> Counter[str]:
    return Counter(m["body"]["metadata"]["replay"]["of"] for m in sb.queue_state(ACCOUNT, "jobs")["messages"])


def test_a_second_plan_from_the_same_snapshot_bundle_does_not_replay_twice(tmp_path: Path) -> None:
    with running_sandbox(tmp_path) as sb:
        jobs_and_dlq(sb, 250)
        env = cli_env(sb)
        bundle = tmp_path / "B1"
        col = cli_run(
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
        res = cli_run(
            ["replay", "plan", str(bundle), *ALLOW, "--type", "EMAIL_DELIVERY", "--out", str(first)], env
        )
        assert res.returncode == 0, res.stderr
        # made before the first plan ran: it cannot know yet, so its run must find out
        res = cli_run(
            ["replay", "plan", str(bundle), *ALLOW, *BOTH, "--out", str(stale)],
            env,
        )
        assert res.returncode == 0, res.stderr
        emails = {m.message_id for m in ReplayPlan.load(first).messages}
        assert len(emails) == 50

        run = cli_run(["replay", "run", str(first), "--yes", "--no-progress"], env)
        assert run.returncode == 0, run.stderr
        assert "completed: 50/50 settled" in run.stdout
        assert (bundle / "replays").is_dir()  # the run registered its ledger in the bundle

        # the same bundle, one more selector, another directory: the 50 are excluded and counted
        res = cli_run(
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
        res = cli_run(["replay", "run", str(stale), "--yes", "--no-progress"], env)
        assert res.returncode == 3, res.stdout + res.stderr
        assert (
            "50 of its 100 messages not yet sent were already replayed and removed from the DLQ" in res.stderr
        )
        assert f"plan {first_plan_id}" in res.stderr
        assert "hint: make a new plan from the same bundle" in res.stderr
        assert sum(_target_copies(sb).values()) == before

        run = cli_run(["replay", "run", str(second), "--yes", "--no-progress"], env)
        assert run.returncode == 0, run.stderr
        copies = _target_copies(sb)
        assert len(copies) == 100
        assert set(copies.values()) == {1}  # every job replayed exactly once across the plans
        in_dlq = {m["id"] for m in sb.queue_state(ACCOUNT, "jobs-dlq")["messages"]}
        assert in_dlq.isdisjoint(copies)
        assert len(in_dlq) == 150
