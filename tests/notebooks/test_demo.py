"""`edgeinvestigate demo`: the whole loop, as `make demo` runs it, in a subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_demo_runs_the_whole_loop(tmp_path: Path) -> None:
    out = tmp_path / "demo-output"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDFLARE_")}
    env["EDGEINVESTIGATE_CACHE"] = str(tmp_path / "cache")
    proc = subprocess.run(
        [sys.executable, "-m", "edgeinvestigate", "demo", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=480,
        check=False,
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text[-4000:]
    for step in range(1, 9):
        assert f"[{step}/8]" in proc.stdout
    assert "FAILED" not in text

    # the report, from data collected through the sandbox API
    report = out / "report" / "incident-report.html"
    assert str(report) in proc.stdout
    assert report.is_file()
    findings = json.loads((out / "report" / "findings.json").read_text())
    top = findings["hypotheses"][0]
    assert top["kind"] == "bad_deploy"
    assert "EMAIL_DELIVERY" in top["job_types"]
    manifest = json.loads((out / "evidence" / "manifest.json").read_text())
    assert {s["source"] for s in manifest["sources"]} >= {"workers_logs_api", "dlq"}

    # the replay: planned from the findings' clusters, completed, proven from the sandbox state
    plan = json.loads((out / "replay" / "plan.json").read_text())
    assert set(plan["by_type"]) == {"EMAIL_DELIVERY", "IMAGE_PROCESSING"}
    assert set(top["cluster_ids"]) <= set(plan["by_cluster"])
    assert "completed" in proc.stdout
    n = len(plan["messages"])
    assert f"holds {n} replayed messages for {n} of {n} planned jobs" in proc.stdout
    assert "0 of them replayed" in proc.stdout
    page = report.read_text()  # rewritten after the replay, with its results
    assert plan["plan_id"] in page
    assert "completed" in page

    # the sandbox was stopped (its pid is gone), and the token went through the environment
    pid = int(re.search(r"Stop the sandbox \(pid (\d+)\)", proc.stdout).group(1))
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert "sandbox stopped" in proc.stdout
    assert "token passed via the environment" in proc.stdout
