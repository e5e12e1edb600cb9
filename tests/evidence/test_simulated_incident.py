"""The simulator's incident loaded into the sandbox, collected through the CLI, compared with ground truth.

``edgeinvestigate simulate default --sandbox URL`` loads the DLQ and the Workers Logs events into a
real sandbox process; ``edgeinvestigate collect --workers-logs ... --dlq ...`` reads them back through
the API. The frames must say exactly what ground_truth.json says is in the DLQ and in the logs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from _helpers.api import TOKEN

import edgeinvestigate as ei
from edgeinvestigate.sandbox.testing import RunningSandbox, running_sandbox

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def cli(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    run = subprocess.run(
        [sys.executable, "-m", "edgeinvestigate", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert run.returncode == 0, f"{args[0]} failed:\n{run.stdout[-2000:]}\n{run.stderr[-3000:]}"
    return run


@pytest.fixture(scope="module")
def incident(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RunningSandbox, Path, dict[str, Any]]]:
    tmp = tmp_path_factory.mktemp("incident")
    with running_sandbox(tmp, token=TOKEN) as sb:
        env = dict(os.environ, EDGEINVESTIGATE_SANDBOX_TOKEN=TOKEN)
        sim = tmp / "sim"
        cli(
            "simulate",
            "default",
            "--out",
            str(sim),
            "--invocations",
            "2000",
            "--seed",
            "7",
            "--format",
            "workers_logs",
            "--format",
            "dlq",
            "--sandbox",
            sb.url,
            env=env,
        )
        truth = json.loads((sim / "ground_truth.json").read_text(encoding="utf-8"))
        yield sb, tmp, truth


def api_env(sb: RunningSandbox, truth: dict[str, Any]) -> dict[str, str]:
    return dict(
        os.environ,
        CLOUDFLARE_API_TOKEN=TOKEN,
        CLOUDFLARE_ACCOUNT_ID=truth["account_id"],
        CLOUDFLARE_API_BASE_URL=sb.url,
    )


def window(truth: dict[str, Any]) -> tuple[str, str]:
    until = pd.Timestamp(truth["window"]["last_event"]) + pd.Timedelta(seconds=1)
    return truth["window"]["start"], until.isoformat()


def check_dlq_rows(frame: pd.DataFrame, truth_rows: list[dict[str, Any]], *, pulls: int) -> None:
    """``pulls``: how many times the DLQ was pulled since the simulator loaded it (each adds an attempt)."""
    got = frame.set_index("message_id")
    for t in truth_rows:
        row = got.loc[t["dlq_message_id"]]
        assert row["job_id"] == t["job_id"]
        assert row["job_type"] == t["job_type"]
        assert row["envelope"] == t["envelope"]
        assert pd.isna(row["decode_error"])
        assert row["attempts"] == t["dlq_attempts"] + pulls
        arrived = pd.Timestamp(t["arrived_ms"], unit="ms", tz="UTC")
        if t["envelope"] == "wrapped":
            # sent by the consumer: a new message, its timestamp is the send
            assert row["error"] == t["error"]
            assert row["enqueued_at"] == arrived
        else:
            # moved by the runtime after max_retries: same id and timestamp as the original message
            assert t["dlq_message_id"] == t["message_id"]
            assert row["enqueued_at"] <= arrived
            assert pd.isna(row["error"])


def _pulls_so_far(stored: list[dict[str, Any]], truth: dict[str, Any]) -> int:
    truth_attempts = {t["dlq_message_id"]: t["dlq_attempts"] for t in truth["dlq"]}
    offsets = {m["attempts"] - truth_attempts[m["id"]] for m in stored}
    assert len(offsets) == 1, offsets
    return offsets.pop()


def test_snapshot_and_workers_logs_equal_ground_truth(incident, tmp_path: Path) -> None:
    sb, _, truth = incident
    dlq_name = truth["queues"]["dlq"]["name"]
    script = truth["consumer_script"]
    since, until = window(truth)
    before = sb.queue_state(truth["account_id"], dlq_name)["messages"]
    out = tmp_path / "bundle"
    run = cli(
        "-v",
        "collect",
        "--workers-logs",
        script,
        "--dlq",
        dlq_name,
        "--dlq-mode",
        "snapshot",
        "--since",
        since,
        "--until",
        until,
        "--out",
        str(out),
        env=api_env(sb, truth),
    )
    ev = ei.Evidence.open(out)

    # the DLQ: every message, with the fields ground truth says
    assert len(ev.dlq) == truth["counts"]["dlq"]["total"] == len(truth["dlq"])
    assert set(ev.dlq["message_id"]) == {t["dlq_message_id"] for t in truth["dlq"]}
    assert ev.dlq["envelope"].astype(str).value_counts().to_dict() == {
        k: v for k, v in truth["counts"]["dlq"].items() if k != "total"
    }
    pulls = _pulls_so_far(before, truth)
    check_dlq_rows(ev.dlq, truth["dlq"], pulls=pulls + 1)  # the snapshot's pull is one more attempt
    # ... and the snapshot released every message (one more attempt each, nothing lost)
    after = {m["id"]: m for m in sb.queue_state(truth["account_id"], dlq_name)["messages"]}
    assert after.keys() == {m["id"] for m in before}
    assert all(after[m["id"]]["attempts"] == m["attempts"] + 1 for m in before)
    assert all(m["lease_id"] is None for m in after.values())

    # the logs: the consumer's invocations, outcomes and exceptions
    inv = ev.invocations
    assert len(inv) == truth["counts"]["invocations"]["by_script"][script]
    assert set(inv["script"].astype(str)) == {script}
    assert inv["trigger"].astype(str).eq("queue").all()
    failed_truth = sum(1 for e in truth["errors"] if e["where"] == "exception")
    assert int(inv["failed"].sum()) == failed_truth
    assert len(ev.exceptions) == truth["counts"]["exceptions"]
    assert inv["cpu_ms"].notna().all()
    assert "DLQ messages" in run.stdout


def test_peek_sees_the_head_and_says_so(incident, tmp_path: Path) -> None:
    sb, _, truth = incident
    dlq_name = truth["queues"]["dlq"]["name"]
    before = sb.queue_state(truth["account_id"], dlq_name)["messages"]
    out = tmp_path / "peek"
    run = cli("collect", "--dlq", dlq_name, "--out", str(out), env=api_env(sb, truth))
    assert sb.queue_state(truth["account_id"], dlq_name)["messages"] == before
    ev = ei.Evidence.open(out)
    assert len(ev.dlq) == 100
    assert f"peek saw 100 of {len(truth['dlq'])}" in run.stderr
    by_arrival = sorted(truth["dlq"], key=lambda t: (t["arrived_ms"], t["dlq_message_id"]))
    head = {m["id"] for m in before[:100]}
    # peek changes nothing: attempts are as stored (the snapshot test may have run first)
    check_dlq_rows(
        ev.dlq, [t for t in by_arrival if t["dlq_message_id"] in head], pulls=_pulls_so_far(before, truth)
    )
