"""State survives restarts (including kill -9) with --state DIR."""

from __future__ import annotations

import base64
import json

import pytest

from edgeinvestigate.sandbox.testing import running_sandbox

pytestmark = pytest.mark.e2e


def test_acknowledged_pushes_survive_kill_9(tmp_path):
    state = tmp_path / "state"
    with running_sandbox(tmp_path, state_dir=state) as sb:
        qid = sb.create_queue(
            "acct", "jobs", consumer={"type": "http_pull", "max_retries": 4, "dead_letter_queue": "jobs-dlq"}
        )["queue_id"]
        sb.load_messages(
            "acct",
            "jobs-dlq",
            [
                {
                    "id": "dead-1",
                    "body": {"type": "EMAIL_DELIVERY"},
                    "timestamp_ms": 1_790_000_000_000,
                    "attempts": 3,
                }
            ],
        )
        sb.load_events(
            "acct",
            [
                {
                    "dataset": "cloudflare-workers",
                    "timestamp": 1_790_000_000_000,
                    "source": "x",
                    "$metadata": {"id": "01J0000000000000000000000A"},
                }
            ],
        )
        with sb.client() as c:
            for i in range(20):
                r = c.post(f"/accounts/acct/queues/{qid}/messages", json={"body": {"n": i}})
                assert r.status_code == 200
            leased = c.post(
                f"/accounts/acct/queues/{qid}/messages/pull",
                json={"batch_size": 2, "visibility_timeout_ms": 600_000},
            ).json()["result"]["messages"]
        # forwarding settings persist too; on empty queues, so the forwarder cannot consume the DLQ message
        sb.create_queue("acct", "hooks")
        sb.create_queue("acct", "hooks-cleared")
        sb.admin.post("/__admin/accounts/acct/queues/hooks/forward", json={"url": "http://127.0.0.1:9/x"})
        sb.admin.post(
            "/__admin/accounts/acct/queues/hooks-cleared/forward", json={"url": "http://127.0.0.1:9/x"}
        )
        sb.admin.post("/__admin/accounts/acct/queues/hooks-cleared/forward", json={"url": None})
        before = sb.state()
        old_pid, old_url = sb.pid, sb.url
        sb.restart(hard=True)  # SIGKILL, like a crash
        assert sb.pid != old_pid
        assert sb.url == old_url
        after = sb.state()
        jobs_before = before["accounts"]["acct"]["queues"]["jobs"]
        jobs_after = after["accounts"]["acct"]["queues"]["jobs"]
        assert jobs_after["queue_id"] == qid
        assert [m["id"] for m in jobs_after["messages"]] == [m["id"] for m in jobs_before["messages"]]
        assert len(jobs_after["messages"]) == 20
        assert {m["lease_id"] for m in jobs_after["messages"] if m["lease_id"]} == {
            m["lease_id"] for m in leased
        }
        assert jobs_after["stats"]["pushed"] == 20
        assert after["accounts"]["acct"]["queues"]["jobs-dlq"]["messages"][0]["attempts"] == 3
        assert after["accounts"]["acct"]["events"] == 1
        assert after["accounts"]["acct"]["queues"]["hooks"]["forward_url"] == "http://127.0.0.1:9/x"
        assert after["accounts"]["acct"]["queues"]["hooks-cleared"]["forward_url"] is None
        # leases keep working across the restart
        with sb.client() as c:
            r = c.post(
                f"/accounts/acct/queues/{qid}/messages/ack",
                json={"acks": [{"lease_id": leased[0]["lease_id"]}]},
            )
            assert r.json()["result"]["ackCount"] == 1
    assert (state / "sandbox.sqlite3").exists()


def test_without_state_dir_a_restart_starts_empty(tmp_path):
    with running_sandbox(tmp_path, json_bodies="base64") as sb:
        sb.create_queue("acct", "jobs", consumer={"type": "http_pull", "dead_letter_queue": "jobs-dlq"})
        queues = sb.state()["accounts"]["acct"]["queues"]
        # --json-bodies is the default of every queue, the automatically created DLQ included
        assert {q["json_body_encoding"] for q in queues.values()} == {"base64"}
        sb.load_messages("acct", "jobs", [{"id": "j1", "body": {"a": 1}}])
        with sb.client() as c:
            peeked = c.post(f"/accounts/acct/queues/{queues['jobs']['queue_id']}/messages/peek", json={})
        assert base64.b64decode(peeked.json()["result"]["messages"][0]["body"]) == b'{"a":1}'
        sb.restart()
        assert sb.state()["accounts"] == {}
        assert sb.state()["persistent"] is False


def test_ready_file_and_cli_errors(tmp_path):
    import subprocess
    import sys

    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "edgeinvestigate", "sandbox", "serve", "--port", "0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 2
    assert "needs a bearer token" in out.stderr
    assert "EDGEINVESTIGATE_SANDBOX_TOKEN" in out.stderr
    out = subprocess.run(
        [sys.executable, "-m", "edgeinvestigate", "sandbox", "serve", "--token", "t", "--faults", "drop=7"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert out.returncode == 2
    assert "drop must be a probability" in out.stderr
    with running_sandbox(tmp_path) as sb:
        ready = json.loads(next((tmp_path / "sandbox-proc").glob("sandbox-ready-*.json")).read_text())
        assert ready == {"url": sb.url, "base": sb.base, "pid": sb.pid, "port": sb.port}
        assert sb.url.endswith("/client/v4")
        assert sb.url.startswith("http://127.0.0.1:")


def test_token_file_is_created_private_and_used(tmp_path):
    import os
    import stat

    token_file = tmp_path / "secrets" / "sandbox-token"
    token_file.parent.mkdir()  # the directory must exist (a typo must not create one silently)
    with running_sandbox(tmp_path, extra_args=["--token-file", str(token_file)]) as sb:
        value = token_file.read_text().strip()
        assert len(value) >= 24
        assert stat.S_IMODE(os.stat(token_file).st_mode) == 0o600
        # --token-file wins over the environment: the generated token works, the env one does not
        with sb.client(token=value) as c:
            assert c.get("/accounts/a/queues").status_code == 200
        with sb.client() as c:
            assert c.get("/accounts/a/queues").status_code == 403
        log = sb.log_path.read_text()
        assert value not in log
