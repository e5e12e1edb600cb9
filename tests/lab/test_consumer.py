"""The simulated consumer Worker (``lab/_consumer.py``) against a real sandbox process.

It pulls replayed jobs, decides them with the scenario's job model, acks / retries / dead-letters
them, and writes Workers Logs events that ``load_workers_logs`` reads back with job and replay ids.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edgeinvestigate.cloudflare.client import CloudflareClient
from edgeinvestigate.evidence.workers_logs import load_workers_logs
from edgeinvestigate.lab._consumer import JobModel, consume, publish_events, use_http_pull
from edgeinvestigate.sandbox.testing import running_sandbox
from edgeinvestigate.simulator import load_scenario
from edgeinvestigate.sources.api.dlq_body import decode_body

ACCT = "9a7806061c88ada191ed06f989cc3dac"
SCENARIO = load_scenario("default")
T = SCENARIO.start_ms
MIN = 60_000
AFTER_FIX = T + 110 * MIN  # v143 (the revert) is live, the image service is back
BAD_DEPLOY = T + 50 * MIN  # v142 live
OUTAGE = T + 65 * MIN  # v142 live and the image service down


def _job(i: int, job_type: str, *, replay: bool = True) -> dict[str, Any]:
    payloads = {
        "EMAIL_DELIVERY": {"to": f"user{i}@example.com", "template": "welcome", "data": {}},
        "IMAGE_PROCESSING": {"imageUrl": f"https://img.example.com/{i}.png", "operations": ["resize"]},
    }
    meta: dict[str, Any] = {"attempts": 0, "originalTimestamp": "2026-11-27T14:50:00.000Z"}
    if replay:
        meta["replay"] = {"id": f"rpl_{i:032x}", "of": f"{i:032x}", "plan": "plan-test", "at": 0}
    return {"type": job_type, "payload": {"jobId": f"job-{i:04d}", **payloads[job_type]}, "metadata": meta}


def test_job_model_follows_the_scenario() -> None:
    model = JobModel(SCENARIO)
    assert model.live_version(BAD_DEPLOY)[1] == "v142"
    assert model.live_version(AFTER_FIX)[1] == "v143"
    emails = [_job(i, "EMAIL_DELIVERY") for i in range(200)]
    images = [_job(i, "IMAGE_PROCESSING") for i in range(200)]
    # after the revert and the outage, everything succeeds
    assert all(model.failure(j, AFTER_FIX) is None for j in emails + images)
    # under v142 most emails fail permanently with the incident's TypeError (rate 0.92)
    fails = [f for j in emails if (f := model.failure(j, BAD_DEPLOY)) is not None]
    assert 0.8 * len(emails) < len(fails) < len(emails)
    assert all(not f.transient and f.incident == "bad-deploy-email-render" for f in fails)
    assert all(f.error.startswith("TypeError: Cannot read properties of undefined") for f in fails)
    # during the outage images fail transiently; emails are untouched by it
    img = [f for j in images if (f := model.failure(j, OUTAGE)) is not None]
    assert img
    assert all(f.transient and f.incident == "image-service-outage" for f in img)
    assert all(model.failure(j, BAD_DEPLOY) is None for j in images)
    # deterministic
    assert [model.failure(j, BAD_DEPLOY) for j in emails] == [model.failure(j, BAD_DEPLOY) for j in emails]


@pytest.fixture
def sandbox(tmp_path: Path):
    with running_sandbox(tmp_path, rate_limit="0") as sb:
        worker = {"type": "worker", "script_name": "jobs-consumer", "max_retries": 3,
                  "dead_letter_queue": "jobs-dlq", "retry_delay": 5}  # fmt: skip
        sb.create_queue(ACCT, "jobs", consumer=worker)
        sb.create_queue(ACCT, "jobs-dlq", consumer={"type": "http_pull"})
        yield sb


def _load(sb: Any, jobs: list[dict[str, Any]], extra: list[dict[str, Any]] | None = None) -> None:
    sb.load_messages(ACCT, "jobs", [{"body": j, "content_type": "json"} for j in jobs] + (extra or []))


def test_fixed_consumer_completes_replayed_jobs_and_logs_them(sandbox: Any) -> None:
    jobs = [_job(i, "EMAIL_DELIVERY") for i in range(150)] + [
        _job(i, "IMAGE_PROCESSING") for i in range(150, 180)
    ]
    _load(sandbox, jobs)
    with CloudflareClient(ACCT, sandbox.secret, api_url=sandbox.url) as client:
        qid = client.queue_id("jobs")
        # the simulator's queue has a worker consumer: pulling needs http_pull (11002)
        use_http_pull(sandbox.admin, ACCT, "jobs", consumer=client.list_consumers(qid)[0])
        consumer = client.list_consumers(qid)[0]
        assert consumer["type"] == "http_pull"
        assert consumer["dead_letter_queue"] == "jobs-dlq"
        assert consumer["settings"]["max_retries"] == 3
        run = consume(client, "jobs", JobModel(SCENARIO), now=lambda: AFTER_FIX)
        assert run.counts() == {"job.completed": 180}
        assert run.batches == 2
        assert {o.job_id for o in run.outcomes} == {f"job-{i:04d}" for i in range(180)}
        assert {o.replay_id for o in run.outcomes} == {f"rpl_{i:032x}" for i in range(180)}
        assert publish_events(sandbox.admin, ACCT, run.events) == len(run.events) == 2 + 2 + 180
        ev = load_workers_logs(client, "jobs-consumer", AFTER_FIX - MIN, AFTER_FIX + MIN)
    state = sandbox.state()["accounts"][ACCT]["queues"]
    assert state["jobs"]["messages"] == []
    assert state["jobs"]["stats"]["acked"] == 180
    assert state["jobs-dlq"]["messages"] == []
    # what replay verify reads: job ids and replay ids in non-error structured lines
    logs = ev.logs
    done = logs[logs["job_id"].notna()]
    assert set(done["job_id"]) == {f"job-{i:04d}" for i in range(180)}
    assert set(done["level"].astype(str)) == {"log"}
    assert all("rpl_" in m and '"event":"job.completed"' in m for m in done["message"])
    assert len(ev.invocations) == 2
    assert set(ev.invocations["script_version"].astype(str)) == {
        JobModel(SCENARIO).live_version(AFTER_FIX)[0]
    }
    assert not ev.invocations["failed"].any()


def test_consumer_under_the_bad_version_dead_letters_with_the_replay_block(sandbox: Any) -> None:
    """The failure path: processed while v142 is live, emails go back to the DLQ as
    ``{original, error}`` keeping ``metadata.replay`` (so verify reports them as back in the DLQ);
    an unreadable message is dead-lettered with an error naming its id; nothing is lost."""
    jobs = [_job(i, "EMAIL_DELIVERY") for i in range(40)]
    bad = {"id": "f" * 32, "body": "not a job", "content_type": "text"}
    _load(sandbox, jobs, [bad])
    with CloudflareClient(ACCT, sandbox.secret, api_url=sandbox.url) as client:
        use_http_pull(sandbox.admin, ACCT, "jobs", consumer=client.list_consumers(client.queue_id("jobs"))[0])
        run = consume(client, "jobs", JobModel(SCENARIO), now=lambda: BAD_DEPLOY)
    counts = run.counts()
    assert counts["job.dead_lettered"] >= 30
    assert counts["job.dead_lettered"] + counts.get("job.completed", 0) == 41
    unreadable = [o for o in run.outcomes if o.message_id == "f" * 32]
    assert unreadable[0].event == "job.dead_lettered"
    assert "f" * 32 in (unreadable[0].error or "")
    assert "not a job" in (unreadable[0].error or "")
    state = sandbox.state()["accounts"][ACCT]["queues"]
    assert state["jobs"]["messages"] == []  # every message settled: acked or moved
    dlq = state["jobs-dlq"]["messages"]
    assert len(dlq) == counts["job.dead_lettered"]
    bodies = [m["body"] for m in dlq]
    wrapped = [b for b in bodies if isinstance(b["original"]["body"], dict)]
    assert all(b["original"]["body"]["metadata"]["replay"]["id"].startswith("rpl_") for b in wrapped)
    assert all(b["error"].startswith("TypeError") for b in wrapped)
    lines = [e for e in run.events if e["source"].get("event") == "job.dead_lettered"]
    assert lines
    assert all(e["$metadata"]["level"] == "error" and e["$metadata"]["error"] for e in lines)


def test_transient_failures_are_retried_then_moved_by_the_queue(sandbox: Any) -> None:
    """During the outage images are retried with backoff (``job.retry``); the queue's max_retries
    moves exhausted ones to the DLQ with their original body."""
    jobs = [_job(i, "IMAGE_PROCESSING") for i in range(20)]
    _load(sandbox, jobs)
    with CloudflareClient(ACCT, sandbox.secret, api_url=sandbox.url) as client:
        use_http_pull(sandbox.admin, ACCT, "jobs", consumer=client.list_consumers(client.queue_id("jobs"))[0])
        model = JobModel(SCENARIO)
        retried = set()
        for _ in range(6):  # deliveries 1..4 fail or succeed; then the queue moves the rest
            run = consume(client, "jobs", model, now=lambda: OUTAGE)
            retried |= {o.message_id for o in run.outcomes if o.event in ("job.retry", "job.exhausted")}
            sandbox.admin.post("/__admin/clock", json={"advance_ms": 3_600_000}).raise_for_status()
            if not client.peek(client.queue_id("jobs"), 100)["messages"]:
                break
    state = sandbox.state()["accounts"][ACCT]["queues"]
    assert retried
    assert state["jobs"]["messages"] == []
    moved = state["jobs-dlq"]["messages"]
    assert state["jobs"]["stats"]["acked"] + len(moved) == 20
    for m in moved:  # runtime moves keep the raw job body
        body = m["body"] if isinstance(m["body"], dict) else json.loads(decode_body(m["body"], "json").value)
        assert body["type"] == "IMAGE_PROCESSING"
