"""Queues API semantics against a real sandbox process (every response checked against the spec)."""

from __future__ import annotations

import json
import time

import pytest

pytestmark = pytest.mark.e2e


def _job(i: int, job_type: str = "EMAIL_DELIVERY") -> dict:
    return {
        "type": job_type,
        "payload": {"to": f"user{i}@example.com", "template": "welcome"},
        "metadata": {"attempts": 0, "originalTimestamp": "2026-11-27T14:00:00.000Z"},
    }


def test_push_pull_ack_roundtrip(api):
    q = api.queue("jobs", consumer={"type": "http_pull", "max_retries": 3})
    qid = q["queue_id"]
    result = api.ok("POST", f"/queues/{qid}/messages", {"body": _job(1), "content_type": "json"})
    assert result["metadata"]["metrics"]["backlog_count"] == 1
    pulled = api.ok("POST", f"/queues/{qid}/messages/pull", {"batch_size": 10, "visibility_timeout_ms": 5000})
    assert pulled["message_backlog_count"] == 1
    [msg] = pulled["messages"]
    assert len(msg["id"]) == 32
    assert msg["attempts"] == 1
    assert msg["metadata"]["CF-Content-Type"] == "json"
    assert json.loads(msg["body"]) == _job(1)
    assert msg["timestamp_ms"] > 1_700_000_000_000
    acked = api.ok("POST", f"/queues/{qid}/messages/ack", {"acks": [{"lease_id": msg["lease_id"]}]})
    assert acked == {"ackCount": 1, "retryCount": 0, "warnings": {}}
    assert api.ok("GET", f"/queues/{qid}/metrics")["backlog_count"] == 0


def test_lease_expiry_redelivers_and_attempts_grow(api):
    qid = api.queue("jobs", consumer={"type": "http_pull", "max_retries": 5})["queue_id"]
    api.ok("POST", f"/queues/{qid}/messages", {"body": "hello", "content_type": "text"})
    seen = []
    for _ in range(3):
        pulled = api.ok("POST", f"/queues/{qid}/messages/pull", {"visibility_timeout_ms": 150})
        assert len(pulled["messages"]) == 1
        seen.append(pulled["messages"][0])
        # while leased, nobody else gets it
        assert (
            api.ok("POST", f"/queues/{qid}/messages/pull", {"visibility_timeout_ms": 150})["messages"] == []
        )
        time.sleep(0.25)
    assert [m["attempts"] for m in seen] == [1, 2, 3]
    assert len({m["id"] for m in seen}) == 1
    assert len({m["lease_id"] for m in seen}) == 3
    assert seen[0]["body"] == "hello"
