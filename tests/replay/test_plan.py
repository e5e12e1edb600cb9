"""The plan file: its content hash refuses tampering, and the review text `replay plan` shows."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from replay_scenario import snapshot_file

from edgeinvestigate.cli import cli
from edgeinvestigate.errors import ConfigError, ReplayRefusedError
from edgeinvestigate.replay import ReplayPlan, plan_replay

NOW = "2026-11-28T03:00:00.000Z"


def plan(frame: pd.DataFrame, **kw: object) -> ReplayPlan:
    kw.setdefault("allow_queues", ["jobs"])
    kw.setdefault("now", NOW)
    return plan_replay(frame, "jobs-dlq", "jobs", **kw)  # type: ignore[arg-type]


def test_plan_file_round_trips_and_refuses_tampering(dlq_frame: pd.DataFrame, tmp_path: Path) -> None:
    p = plan(dlq_frame, types=["EMAIL_DELIVERY"])
    path = p.save(tmp_path / "plan.json")
    loaded = ReplayPlan.load(path)
    assert loaded.content_hash == p.content_hash == loaded.compute_hash()
    assert loaded.messages == p.messages
    with pytest.raises(ConfigError, match="exists already"):
        p.save(path)

    doc = json.loads(path.read_text())
    doc["messages"][0]["body"]["payload"]["to"] = "attacker@example.com"
    path.write_text(json.dumps(doc))
    with pytest.raises(ReplayRefusedError, match="was changed after it was made"):
        ReplayPlan.load(path)
    path.write_text("{broken")
    with pytest.raises(ReplayRefusedError, match="not valid JSON"):
        ReplayPlan.load(path)


@pytest.mark.e2e
@pytest.mark.timeout(240)
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
