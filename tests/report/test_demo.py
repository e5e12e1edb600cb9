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
    # one `investigate` wrote the bundle (clusters stored), the findings, the report and the plan
    assert "$ edgeinvestigate investigate " in proc.stdout
    assert json.loads((out / "findings.json").read_text()) == findings
    manifest = json.loads((out / "bundle" / "manifest.json").read_text())
    assert {s["source"] for s in manifest["sources"]} >= {"workers_logs_api", "dlq"}
    assert "clusters" in manifest["derived"]

    # the replay: planned from the findings' clusters, completed, proven from the sandbox state
    plan = json.loads((out / "plan.json").read_text())
    assert set(plan["by_type"]) == {"EMAIL_DELIVERY", "IMAGE_PROCESSING"}
    assert set(top["cluster_ids"]) <= set(plan["by_cluster"])
    assert "completed" in proc.stdout
    n = len(plan["messages"])
    assert f"holds {n} replayed messages for {n} of {n} planned jobs" in proc.stdout
    assert "0 of them replayed" in proc.stdout
    # one `replay run`: the snapshot's leases were kept in the bundle, originals removed by ack
    assert "--dlq-mode snapshot --dlq-keep-leases" in proc.stdout
    assert proc.stdout.count("$ edgeinvestigate replay run ") == 1
    assert "replay completed in 1 run" in proc.stdout
    assert all(m["lease_id"] for m in plan["messages"])  # the kept snapshot leases

    # the loop is closed: the fixed consumer (v143, the revert) pulled and completed every
    # replayed job, wrote Workers Logs, and verify saw each one succeed and none come back
    assert "consumer version live now: v143" in proc.stdout
    assert f"pulled {n} messages" in proc.stdout
    assert f"{n} job.completed" in proc.stdout
    verify = json.loads((out / "verify.json").read_text())
    assert verify["plan_id"] == plan["plan_id"]
    counts = dict(verify["counts"])
    assert counts.pop("not_replayed", 0) == 0  # newer verify counts planned jobs never replayed too
    assert counts == {
        "replayed": n,
        "back_in_dlq": 0,
        "succeeded": n,
        "failing_in_logs": 0,
        "not_seen": 0,
        "originals_still_in_dlq": 0,
    }
    assert sorted(verify["succeeded"]) == sorted(m["message_id"] for m in plan["messages"])
    assert f"seen succeeding in logs:        {n}" in proc.stdout
    assert "not seen yet:                   0" in proc.stdout
    assert "0 replayed messages left on 'jobs', 0 from this replay in 'jobs-dlq'" in proc.stdout
    after = json.loads((out / "evidence-after-replay" / "manifest.json").read_text())
    assert {s["source"] for s in after["sources"]} >= {"workers_logs_api", "dlq"}
    page = report.read_text()  # rewritten after the replay, with its results
    assert plan["plan_id"] in page
    assert "completed" in page

    # the sandbox was stopped (its pid is gone), and the token went through the environment
    pid = int(re.search(r"Stop the sandbox \(pid (\d+)\)", proc.stdout).group(1))
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert "sandbox stopped" in proc.stdout
    assert "token passed via the environment" in proc.stdout


def test_demo_failure_stops_the_sandbox_and_says_what_was_written(tmp_path: Path) -> None:
    """poison-payload: nothing fixed the poison messages, so no cluster is safe to replay. The demo
    fails at that step with a one-line error and a hint, stops the sandbox by its pid, and points at
    the report it already wrote."""
    out = tmp_path / "demo-output"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDFLARE_")}
    env["EDGEINVESTIGATE_CACHE"] = str(tmp_path / "cache")
    proc = subprocess.run(
        [sys.executable, "-m", "edgeinvestigate", "demo", "--out", str(out), "--scenario", "poison-payload"],
        env=env,
        capture_output=True,
        text=True,
        timeout=480,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "[4/8] FAILED: Pick the clusters the fix made safe" in proc.stderr
    assert "error: no cluster with DLQ messages was judged safe to replay" in proc.stderr
    assert "hint: " in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "[5/8]" not in proc.stdout
    pid = int(re.search(r"sandbox \(pid (\d+)\) stopped after the failure", proc.stderr).group(1))
    assert f"(pid {pid})" in proc.stdout  # the same process the demo started
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    report = out / "report" / "incident-report.html"
    assert f"The incident report written before the failure: {report}" in proc.stderr
    assert report.is_file()
    assert not (out / "plan.json").exists()
    assert "note: no cluster with DLQ messages was judged safe to replay" in proc.stderr  # investigate
