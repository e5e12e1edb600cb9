"""``edgeinvestigate sandbox consume QUEUE`` as a real process against a real sandbox process.

The consumer runs the version the sandbox's deployments API says is live (a rollback counts), fails the
``--failure-rate`` share of deliveries transiently, obeys the queue consumer's ``max_retries`` (which the
REST API can now change) and writes Workers Logs that ``collect --workers-logs`` reads back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cloudflare
import pytest

from edgeinvestigate.cloudflare.client import CloudflareClient
from edgeinvestigate.evidence.workers_logs import load_workers_logs
from edgeinvestigate.sandbox.testing import running_sandbox
from edgeinvestigate.simulator import simulate

pytestmark = pytest.mark.e2e

TOKEN = "consume-test-token-5b2e"
ACCT = "9a7806061c88ada191ed06f989cc3dac"


def consume(sb: Any, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDFLARE_")}
    env |= {"CLOUDFLARE_API_BASE_URL": sb.url, "CLOUDFLARE_API_TOKEN": TOKEN, "CLOUDFLARE_ACCOUNT_ID": ACCT}
    return subprocess.run(
        [sys.executable, "-m", "edgeinvestigate", "sandbox", "consume", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _jobs(n: int, job_type: str, start: int = 0) -> list[dict[str, Any]]:
    payloads = {
        "EMAIL_DELIVERY": {"to": "someone@example.com", "template": "welcome", "data": {}},
        "IMAGE_PROCESSING": {"imageUrl": "https://img.example.com/a.png", "operations": ["resize"]},
    }
    return [
        {
            "content_type": "json",
            "body": {
                "type": job_type,
                "payload": {"jobId": f"job-{job_type[:5]}-{i:04d}", **payloads[job_type]},
            },
        }
        for i in range(start, start + n)
    ]


@pytest.fixture
def bad_deploy_live(tmp_path: Path):
    """The default incident dated so that v142 (the bad deploy) went live 35 minutes ago and its revert
    is still 15 minutes away: the consumer fails EMAIL_DELIVERY until someone rolls back."""
    with running_sandbox(tmp_path / "sb", token=TOKEN, rate_limit="0") as sb:
        simulate("default", tmp_path / "incident", seed=3, invocations=300, start="-80m", sandbox_url=sb.base,
                 token=sb.secret, formats=["dlq"])  # fmt: skip
        yield sb


def test_consumer_runs_the_live_version_and_a_rollback_fixes_it(bad_deploy_live: Any) -> None:
    sb = bad_deploy_live
    sb.load_messages(ACCT, "jobs", _jobs(30, "EMAIL_DELIVERY") + _jobs(10, "IMAGE_PROCESSING"))
    dlq_before = len(sb.queue_state(ACCT, "jobs-dlq")["messages"])
    run = consume(sb, "jobs", "--retry-delay", "0")
    assert run.returncode == 0, run.stderr
    assert "as jobs-consumer v142 (live per the deployments API)" in run.stdout
    assert "http_pull consumer now" in run.stderr  # the Worker consumer was switched, settings kept
    assert "stopped: the queue is empty" in run.stdout
    jobs = sb.queue_state(ACCT, "jobs")
    assert jobs["messages"] == []
    assert jobs["consumers"][0]["type"] == "http_pull"
    assert jobs["consumers"][0]["settings"]["max_retries"] == 3
    # v142 breaks most emails: {original, error} to the DLQ; images are fine
    dead = sb.queue_state(ACCT, "jobs-dlq")["messages"][dlq_before:]
    assert 20 <= len(dead) < 30
    assert all(m["body"]["error"].startswith("TypeError: Cannot read properties of undefined") for m in dead)
    assert {m["body"]["original"]["body"]["type"] for m in dead} == {"EMAIL_DELIVERY"}

    # roll back to v141 through the deployments API (Cloudflare's SDK), then consume new emails
    with cloudflare.Cloudflare(api_token=TOKEN, base_url=sb.url, max_retries=0) as cf:
        history = cf.workers.scripts.deployments.list("jobs-consumer", account_id=ACCT).result.deployments
        assert history[0]["annotations"]["workers/message"].startswith("v142")  # v143 is not made yet
        previous = history[1]["versions"][0]["version_id"]
        cf.workers.scripts.deployments.create(
            "jobs-consumer", account_id=ACCT, strategy="percentage",
            versions=[{"version_id": previous, "percentage": 100}],
        )  # fmt: skip
    sb.load_messages(ACCT, "jobs", _jobs(30, "EMAIL_DELIVERY", start=100))
    fixed = consume(sb, "jobs", "--retry-delay", "0")
    assert fixed.returncode == 0, fixed.stderr
    assert "as jobs-consumer v141" in fixed.stdout
    assert "30 job.completed" in fixed.stdout
    assert len(sb.queue_state(ACCT, "jobs-dlq")["messages"]) == dlq_before + len(dead)

    # the Worker's logs are in the sandbox's Workers Logs, with the version that ran
    with CloudflareClient(account_id=ACCT, token=sb.secret, api_url=sb.url) as client:
        ev = load_workers_logs(client, "jobs-consumer", since="-10m")
    ours = ev.logs["message"].str.contains(r'"jobId":"job-(?:EMAIL|IMAGE)-', regex=True)
    assert ours.sum() == 70  # one line per job: 40 in the first run, 30 after the rollback
    # the simulated events of the last 10 minutes ran v142; only the consumer after the rollback ran v141
    versions = set(ev.invocations["script_version"].astype(str))
    assert previous in versions


def test_failure_rate_and_max_retries(tmp_path: Path) -> None:
    with running_sandbox(tmp_path / "sb", token=TOKEN, rate_limit="0") as sb:
        q = sb.create_queue(
            ACCT, "work", consumer={"type": "http_pull", "max_retries": 0, "dead_letter_queue": "work-dlq"}
        )
        sb.load_messages(ACCT, "work", _jobs(60, "IMAGE_PROCESSING"))
        first = consume(
            sb, "work", "--failure-rate", "0.5", "--retry-delay", "0", "--script", "work-consumer"
        )
        assert first.returncode == 0, first.stderr
        exhausted = len(sb.queue_state(ACCT, "work-dlq")["messages"])
        # max_retries 0: every first failure is final (the runtime moves the raw message)
        assert 15 <= exhausted <= 45, first.stdout
        assert f"{exhausted} job.exhausted" in first.stdout
        # raise max_retries through the REST API, as the hint says; the next run follows it
        with cloudflare.Cloudflare(api_token=TOKEN, base_url=sb.url, max_retries=0) as cf:
            cf.queues.consumers.update(
                q["consumers"][0]["consumer_id"], account_id=ACCT, queue_id=q["queue_id"], type="http_pull",
                dead_letter_queue="work-dlq", settings={"max_retries": 6},
            )  # fmt: skip
        sb.load_messages(ACCT, "work", _jobs(60, "IMAGE_PROCESSING", start=100))
        second = consume(
            sb, "work", "--failure-rate", "0.5", "--retry-delay", "0", "--script", "work-consumer"
        )
        assert second.returncode == 0, second.stderr
        again = len(sb.queue_state(ACCT, "work-dlq")["messages"]) - exhausted
        assert again <= 3, second.stdout  # 0.5**7 of 60 jobs
        assert "job.retry" in second.stdout
        assert "max_retries 6" in second.stderr
        assert "60 job.completed" in second.stdout or again > 0
        logged = json.dumps(sb.state()["accounts"][ACCT])
        assert "work-consumer" not in logged  # logs live in the telemetry store, not the queues
        with CloudflareClient(account_id=ACCT, token=sb.secret, api_url=sb.url) as client:
            ev = load_workers_logs(client, "work-consumer", since="-10m")
        assert ev.logs["message"].str.contains("503 Service Unavailable", regex=False).any()


def test_stops_after_duration_and_when_nothing_becomes_visible(tmp_path: Path) -> None:
    with running_sandbox(tmp_path / "sb", token=TOKEN, rate_limit="0") as sb:
        sb.create_queue(ACCT, "work", consumer={"type": "http_pull"})
        started = time.monotonic()
        timed = consume(sb, "work", "--keep-running", "--duration", "2")
        assert timed.returncode == 0, timed.stderr
        assert 2 <= time.monotonic() - started < 60
        assert "stopped: the duration is over" in timed.stdout
        # delayed retries are waited for: the queue ends empty
        sb.load_messages(ACCT, "work", _jobs(5, "IMAGE_PROCESSING"))
        waited = consume(sb, "work", "--failure-rate", "0.6", "--retry-delay", "1")
        assert waited.returncode == 0, waited.stderr
        assert "stopped: the queue is empty" in waited.stdout
        assert sb.queue_state("9a7806061c88ada191ed06f989cc3dac", "work")["messages"] == []
        # paused delivery: messages stay, nothing becomes visible
        sb.create_queue(ACCT, "paused", delivery_paused=True, consumer={"type": "http_pull"})
        sb.load_messages(ACCT, "paused", _jobs(3, "IMAGE_PROCESSING"))
        idle = consume(sb, "paused", "--idle-timeout", "1")
        assert idle.returncode == 1
        assert "3 message(s) are still on 'paused'" in idle.stderr
        assert "hint:" in idle.stderr


def test_refuses_what_is_not_a_sandbox(tmp_path: Path) -> None:
    with running_sandbox(tmp_path / "sb", token=TOKEN, rate_limit="0") as sb:
        sb.create_queue(ACCT, "work", consumer={"type": "http_pull"})
        wrong_token = subprocess.run(
            [sys.executable, "-m", "edgeinvestigate", "sandbox", "consume", "work"],
            env={**os.environ, "CLOUDFLARE_API_BASE_URL": sb.url, "CLOUDFLARE_API_TOKEN": "nope",
                 "CLOUDFLARE_ACCOUNT_ID": ACCT},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert wrong_token.returncode == 1
        assert "refused the token" in wrong_token.stderr
        missing = consume(sb, "no-such-queue")
        assert missing.returncode != 0
        assert "no-such-queue" in missing.stderr
        assert "Traceback" not in missing.stderr
        bad_rate = consume(sb, "work", "--failure-rate", "2")
        assert bad_rate.returncode == 2
        forever = consume(sb, "work", "--keep-running")
        assert forever.returncode == 2
        assert "--keep-running needs --duration" in forever.stderr
    real = subprocess.run(
        [sys.executable, "-m", "edgeinvestigate", "sandbox", "consume", "jobs"],
        env={k: v for k, v in os.environ.items() if not k.startswith("CLOUDFLARE_")}
        | {"CLOUDFLARE_API_TOKEN": "t", "CLOUDFLARE_ACCOUNT_ID": ACCT},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert real.returncode == 2
    assert "CLOUDFLARE_API_BASE_URL is not set" in real.stderr
