"""``simulate --sandbox`` against a real sandbox process: queues, DLQ and Workers Logs events."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from _sim_helpers import decode_dlq_body

from edgeinvestigate._http import Secret, make_client
from edgeinvestigate.cloudflare.client import CloudflareClient
from edgeinvestigate.errors import AuthError
from edgeinvestigate.sandbox.testing import running_sandbox
from edgeinvestigate.simulator import simulate

pytestmark = [pytest.mark.e2e]

TOKEN = "sim-sandbox-token-8e1f"


def test_simulate_loads_queues_dlq_and_events(tmp_path: Path) -> None:
    with running_sandbox(tmp_path / "sb", token=TOKEN) as sb:
        env = dict(os.environ, EDGEINVESTIGATE_SANDBOX_TOKEN=TOKEN)
        out = tmp_path / "incident"
        run = subprocess.run(
            [sys.executable, "-m", "edgeinvestigate", "simulate", "default", "--out", str(out),
             "--invocations", "600", "--seed", "11", "--sandbox", sb.url],
            env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        assert TOKEN not in run.stdout + run.stderr
        truth = json.loads((out / "ground_truth.json").read_text())
        acct = truth["account_id"]
        # it says how to point the client at the sandbox (the same lines work in a shell)
        root = sb.url.removesuffix("/client/v4")
        assert f"export CLOUDFLARE_API_BASE_URL={root}/client/v4" in run.stdout
        assert f"export CLOUDFLARE_ACCOUNT_ID={acct}" in run.stdout
        state = sb.state()["accounts"][acct]
        queues = state["queues"]
        assert set(queues) == {"jobs", "jobs-retry", "jobs-dlq"}
        for name in ("jobs", "jobs-retry"):
            (consumer,) = queues[name]["consumers"]
            assert consumer["type"] == "worker"
            assert consumer["script_name"] == "jobs-consumer"
            assert consumer["dead_letter_queue"] == "jobs-dlq"
            assert consumer["settings"]["max_retries"] == 3
        (dlq_consumer,) = queues["jobs-dlq"]["consumers"]
        assert dlq_consumer["type"] == "http_pull"
        # the ground truth names the sandbox's queue ids
        assert truth["queues"]["dlq"]["id"] == queues["jobs-dlq"]["queue_id"]

        file_msgs = json.loads((out / "dlq" / "messages.json").read_text())["messages"]
        loaded = queues["jobs-dlq"]["messages"]
        assert len(loaded) == len(file_msgs) == truth["counts"]["dlq"]["total"] > 0
        by_id = {m["id"]: m for m in loaded}
        assert set(by_id) == {m["id"] for m in file_msgs}
        for m in file_msgs:
            got = by_id[m["id"]]
            assert got["attempts"] == m["attempts"]
            assert got["timestamp_ms"] == m["timestamp_ms"]
            assert got["content_type"] == "json"
            assert got["body"] == decode_dlq_body(m)
        assert queues["jobs"]["messages"] == []
        n_events = len(json.loads((out / "workers_logs" / "events.json").read_text()))
        assert state["events"] == n_events

        # a peek through the Cloudflare API shows the same bytes, base64-encoded like the file
        qid = queues["jobs-dlq"]["queue_id"]
        with make_client(sb.url, token=Secret(TOKEN)) as api:
            r = api.post(f"/accounts/{acct}/queues/{qid}/messages/peek", json={"batch_size": 5})
        assert r.status_code == 200, r.text
        peeked = r.json()["result"]["messages"]
        assert peeked
        for p in peeked:
            assert json.loads(base64.b64decode(p["body"])) == by_id[p["id"]]["body"]

        # the deployments API lists the consumer's versions, newest (the live one) first
        with CloudflareClient(account_id=acct, token=Secret(TOKEN), api_url=sb.url) as client:
            listed = client.list_deployments("jobs-consumer")
            producer = client.list_deployments("jobs-api")
        truth_versions = [d for d in truth["deployments"] if d["script"] == "jobs-consumer"]
        assert [d["versions"][0]["version_id"] for d in listed] == [
            d["version_id"] for d in reversed(truth_versions)
        ]
        assert listed[0]["annotations"]["workers/message"].startswith("v143: Revert")
        assert [d["versions"][0]["version_id"] for d in producer] == [
            d["version_id"] for d in truth["deployments"] if d["script"] == "jobs-api"
        ]
        assert "4 deployments loaded" in run.stdout


def test_wrong_token_is_an_auth_error(tmp_path: Path) -> None:
    with running_sandbox(tmp_path / "sb", token=TOKEN) as sb:
        with pytest.raises(AuthError) as err:
            simulate("bad-deploy", tmp_path / "o", invocations=200, sandbox_url=sb.base, token=Secret("nope"))
        assert "nope" not in str(err.value)
        assert sb.state()["accounts"] == {}


def test_unreachable_sandbox_is_a_clear_error_and_the_files_stay(tmp_path: Path) -> None:
    from edgeinvestigate.errors import SandboxError

    out = tmp_path / "o"
    with pytest.raises(SandboxError) as err:
        simulate("bad-deploy", out, invocations=150, sandbox_url="http://127.0.0.1:9", token=Secret("t"))
    assert "cannot reach the sandbox at http://127.0.0.1:9" in err.value.message
    assert "sandbox serve" in err.value.hint
    assert (out / "ground_truth.json").is_file()
    assert (out / "dlq" / "messages.json").is_file()
    # a rerun into the same folder replaces it
    simulate("bad-deploy", out, invocations=150, formats=["dlq"])
    assert not (out / "tail").exists()
