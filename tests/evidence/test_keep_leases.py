"""A large DLQ (more than a peek can see) collected with held leases, then replayed by ack.

Peek sees only the first 100 messages, so a replay of messages deep in a big DLQ can only remove
them by acking the leases that a snapshot kept (`collect --dlq-keep-leases`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _helpers.api import ACCOUNT, TOKEN, job

from edgeinvestigate.evidence.bundle import Evidence
from edgeinvestigate.sandbox.testing import RunningSandbox, running_sandbox

pytestmark = [pytest.mark.e2e]

DLQ = "jobs-dlq"


@pytest.fixture
def sb(tmp_path: Path) -> Iterator[RunningSandbox]:
    with running_sandbox(tmp_path / "sb", token=TOKEN) as sandbox:
        yield sandbox


def _cli(sb: RunningSandbox, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(
        os.environ, CLOUDFLARE_API_TOKEN=TOKEN, CLOUDFLARE_ACCOUNT_ID=ACCOUNT, CLOUDFLARE_API_BASE_URL=sb.url
    )
    return subprocess.run(
        [sys.executable, "-m", "edgeinvestigate", *args], env=env, capture_output=True, text=True, timeout=300
    )


def test_keep_leases_lets_replay_ack_messages_deep_in_a_big_dlq(sb: RunningSandbox, tmp_path: Path) -> None:
    sb.create_queue(ACCOUNT, DLQ, consumer={"type": "http_pull", "max_retries": 5})
    sb.create_queue(ACCOUNT, "jobs", consumer={"type": "worker", "script_name": "jobs-consumer"})
    # 250 messages; the EMAIL_DELIVERY ones are all behind the first 100 that a peek would see.
    messages = [
        {
            "id": f"m{i:031x}",
            "body": job(i, "EMAIL_DELIVERY" if i >= 180 else "IMAGE_PROCESSING"),
            "content_type": "json",
            "timestamp_ms": 1_795_788_131_000 + i,
        }
        for i in range(250)
    ]
    sb.load_messages(ACCOUNT, DLQ, messages)

    bundle = tmp_path / "bundle"
    run = _cli(
        sb, "collect", "--dlq", DLQ, "--dlq-mode", "snapshot", "--dlq-keep-leases", "--out", str(bundle)
    )
    assert run.returncode == 0, run.stderr
    dlq = Evidence.open(bundle).dlq
    assert len(dlq) == 250
    assert dlq["lease_id"].notna().all()
    held = sb.queue_state(ACCOUNT, DLQ)["messages"]
    assert len(held) == 250

    plan = tmp_path / "plan.json"
    run = _cli(
        sb, "replay", "plan", str(bundle), "--from", DLQ, "--to", "jobs", "--allow-queue", "jobs",
        "--type", "EMAIL_DELIVERY", "--out", str(plan),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    run = _cli(sb, "replay", "run", str(plan), "--allow-queue", "jobs", "--yes", "--rate", "400", "--json")
    assert run.returncode == 0, run.stderr

    left = {m["id"] for m in sb.queue_state(ACCOUNT, DLQ)["messages"]}
    assert left == {m["id"] for m in messages[:180]}  # exactly the replayed 70 were removed, by ack
    pushed = sb.queue_state(ACCOUNT, "jobs")["messages"]
    assert len(pushed) == 70
    bodies = [m["body"] if isinstance(m["body"], dict) else json.loads(m["body"]) for m in pushed]
    replay_of = {b["metadata"]["replay"]["of"] for b in bodies}
    assert replay_of == {m["id"] for m in messages[180:]}


def test_keep_leases_needs_snapshot_mode(sb: RunningSandbox, tmp_path: Path) -> None:
    sb.create_queue(ACCOUNT, DLQ, consumer={"type": "http_pull", "max_retries": 5})
    run = _cli(sb, "collect", "--dlq", DLQ, "--dlq-keep-leases", "--out", str(tmp_path / "b"))
    assert run.returncode == 2
    assert "--dlq-keep-leases needs --dlq-mode snapshot" in run.stderr
