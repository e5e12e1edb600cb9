"""The target queue: the allow-list (flags and config file), the DLQ itself and other DLQs refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from replay_scenario import snapshot_file

from edgeinvestigate.errors import ConfigError, ReplayRefusedError
from edgeinvestigate.replay import plan_replay


def test_target_allow_list_and_the_dlq_itself_are_enforced(dlq_frame: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(ReplayRefusedError, match="into itself"):
        plan_replay(dlq_frame, "jobs-dlq", "jobs-dlq", allow_queues=["jobs-dlq"])
    with pytest.raises(ReplayRefusedError, match=r"not in the allow-list.*allowed: none") as err:
        plan_replay(dlq_frame, "jobs-dlq", "jobs")
    assert "--allow-queue jobs" in err.value.hint
    other = dlq_frame.assign(queue=["jobs-dlq"] * 299 + ["emails-dlq"])
    with pytest.raises(ReplayRefusedError, match="dead-letter queue"):
        plan_replay(other, "jobs-dlq", "emails-dlq", allow_queues=["emails-dlq"])
    cfg = tmp_path / "edgeinvestigate.toml"
    cfg.write_text('[replay]\nallow_queues = ["jobs"]\n')
    assert plan_replay(dlq_frame, "jobs-dlq", "jobs", config=cfg).allow_queues == ["jobs"]
    cfg.write_text("[replay]\nallow_queues = 'jobs'\n")
    with pytest.raises(ConfigError, match="must be a list"):
        plan_replay(dlq_frame, "jobs-dlq", "jobs", config=cfg)


@pytest.mark.e2e
@pytest.mark.timeout(240)
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
