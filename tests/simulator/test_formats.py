"""Every file the simulator writes has the exact shape cloudflare-formats.md documents."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from _sim_helpers import Run, decode_dlq_body

JOB_TYPES = {
    "IMAGE_PROCESSING",
    "EMAIL_DELIVERY",
    "REPORT_GENERATION",
    "DATA_SYNC",
    "WEBHOOK_PROCESSING",
}
OUTCOMES = {  # A3, the full workerd enum
    "unknown", "ok", "exception", "exceededCpu", "killSwitch", "daemonDown", "scriptNotFound", "canceled",
    "exceededMemory", "loadShed", "responseStreamDisconnected", "internalError", "exceededWallTime",
    "aborted",
}  # fmt: skip
TAIL_KEYS = [  # A2, in the order of real captures
    "wallTime", "cpuTime", "truncated", "executionModel", "outcome", "scriptTags", "scriptVersion",
    "scriptName", "diagnosticsChannelEvents", "exceptions", "logs", "eventTimestamp", "event",
]  # fmt: skip
LOGPUSH_KEYS = {  # B1
    "CPUTimeMs", "DispatchNamespace", "Entrypoint", "Event", "EventTimestampMs", "EventType", "Exceptions",
    "Logs", "Outcome", "ScriptName", "ScriptTags", "ScriptVersion", "WallTimeMs",
}  # fmt: skip
LEVELS = {"debug", "info", "log", "warn", "error"}
HEX32 = re.compile(r"^[0-9a-f]{32}$")


def check_event(event: dict[str, Any]) -> str:
    """A2's event variants, told apart by key as wrangler does; returns the trigger."""
    if "queue" in event:
        assert set(event) == {"queue", "batchSize"}
        assert isinstance(event["batchSize"], int)
        assert 1 <= event["batchSize"] <= 100
        return "queue"
    if "request" in event:
        req = event["request"]
        assert set(req) >= {"url", "method", "headers", "cf"}
        assert req["url"].startswith("https://")
        assert req["method"] == "POST"
        # redaction like the tail feed: authorization values never appear
        assert req["headers"]["authorization"] == "REDACTED"
        assert event["response"] == {"status": 202}
        return "fetch"
    assert set(event) == {"cron", "scheduledTime"}
    assert isinstance(event["scheduledTime"], int)  # a number for cron, unlike the DO alarm's ISO string
    return "scheduled"


def check_trace_item(item: dict[str, Any]) -> None:
    assert list(item) == TAIL_KEYS
    assert item["outcome"] in OUTCOMES
    assert item["executionModel"] == "stateless"
    assert isinstance(item["wallTime"], int)
    assert isinstance(item["cpuTime"], int)
    assert item["scriptName"] in ("jobs-consumer", "jobs-api")
    assert re.fullmatch(r"[0-9a-f-]{36}", item["scriptVersion"]["id"])
    for log in item["logs"]:
        assert set(log) == {"message", "level", "timestamp"}
        assert isinstance(log["message"], list)
        assert log["message"]
        assert log["level"] in LEVELS
        assert isinstance(log["timestamp"], int)
    for exc in item["exceptions"]:
        assert set(exc) == {"name", "message", "timestamp", "stack"}
        assert exc["stack"].startswith(f"{exc['name']}: {exc['message']}")
    check_event(item["event"])


def test_tail_is_pretty_concatenated_objects_with_4_spaces(default_run: Run) -> None:
    text = (default_run.out / "tail" / "tail.json").read_text(encoding="utf-8")
    assert text.startswith('{\n    "wallTime": ')  # JSON.stringify(data, null, 4)
    assert not text.lstrip().startswith("[")
    assert "\n}\n{\n" in text  # objects back to back, each followed by a newline
    assert text.endswith("}\n")
    events = default_run.tail_events()
    assert len(events) == default_run.truth["counts"]["invocations"]["total"]
    for ev in events:
        check_trace_item(ev)
    # same serialisation as JSON.stringify(..., null, 4)
    first = text[: text.index("\n}\n") + 3]
    assert first == json.dumps(events[0], indent=4, ensure_ascii=False) + "\n"
    assert set(ev["scriptVersion"]) == {"id"}  # as seen in tail captures
    ts = [ev["eventTimestamp"] for ev in events]
    assert ts == sorted(ts)


def test_structured_consumer_logs_follow_the_logging_convention(default_run: Run) -> None:
    seen: Counter[str] = Counter()
    for ev in default_run.tail_events():
        if ev["scriptName"] != "jobs-consumer":
            continue
        for log in ev["logs"]:
            text = log["message"][0]
            if not text.startswith("{"):
                continue
            rec = json.loads(text)
            seen[rec["event"]] += 1
            if rec["event"].startswith("job."):
                assert list(rec)[:5] == ["event", "jobId", "type", "attempt", "messageId"]
                assert rec["type"] in JOB_TYPES
                assert HEX32.match(rec["messageId"])
                assert rec["jobId"].startswith("job_")
                assert 1 <= rec["attempt"] <= 4
                failed = rec["event"] != "job.completed"
                assert ("error" in rec) == failed
                assert log["level"] == {"job.completed": "log", "job.retry": "warn"}.get(
                    rec["event"], "error"
                )
    assert seen["batch.received"] > 0
    assert seen["job.completed"] > 0
    assert seen["job.retry"] > 0
    assert seen["job.dead_lettered"] > 0
    assert seen["job.exhausted"] > 0


def test_traceitems_are_arrays_of_trace_items(default_run: Run) -> None:
    arrays = default_run.trace_arrays()
    tail = default_run.tail_events()
    assert len(arrays) == len(tail)
    for arr, ev in zip(arrays, tail, strict=True):
        assert isinstance(arr, list)
        assert len(arr) == 1
        item = arr[0]
        check_trace_item(item)
        assert set(item["scriptVersion"]) == {"id", "tag", "message"}
        assert {**item, "scriptVersion": {"id": item["scriptVersion"]["id"]}} == ev


def test_logpush_files_records_and_folders(default_run: Run) -> None:
    files = [p for p in default_run.logpush_files() if p.is_file()]
    assert len(files) > 3  # several uploads per day
    name = re.compile(r"^(\d{8}T\d{6}Z)_(\d{8}T\d{6}Z)_[0-9a-f]{8}\.log\.gz$")
    n = 0
    for f in files:
        assert re.fullmatch(r"\d{8}", f.parent.name), f
        m = name.match(f.name)
        assert m, f.name
        start = datetime.strptime(m.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        end = datetime.strptime(m.group(2), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        assert f.parent.name == start.strftime("%Y%m%d")
        assert f.read_bytes()[:2] == b"\x1f\x8b"  # gzip
    records = default_run.logpush_records()
    for rec in records:
        n += 1
        assert set(rec) == LOGPUSH_KEYS
        assert rec["EventType"] in {"fetch", "scheduled", "queue"}
        assert rec["Outcome"] in OUTCOMES
        assert set(rec["ScriptVersion"]) == {"ID", "Message", "Tag"}
        for log in rec["Logs"]:
            assert set(log) == {"Level", "Message", "TimestampMs"}
        for exc in rec["Exceptions"]:
            assert set(exc) == {"Name", "Message", "TimestampMs"}
        if rec["EventType"] == "fetch":
            assert set(rec["Event"]) == {"RayID", "Request", "Response"}
            assert set(rec["Event"]["Request"]) == {"URL", "Method"}
    assert n == default_run.truth["counts"]["invocations"]["total"]
    assert start <= end


def test_logpush_truncation_marker() -> None:
    from edgeinvestigate.simulator._logpush_record import logpush_record
    from edgeinvestigate.simulator._records import InvocationView
    from edgeinvestigate.simulator._simulation import Version

    v = Version("00000000-0000-4000-8000-000000000000", "v1", "m", 0, "s")
    big = "x" * 10_000
    inv = InvocationView(
        index=0, ts=1, script="s", version=v, trigger="queue", outcome="ok", cpu=1, wall=1, batch=1,
        status=0, request_id="r", colo="FRA", client_ip="1.2.3.4",
        logs=[(1, "log", big), (2, "log", big), (3, "log", "short")], exceptions=[], queue="jobs",
        url="", cron="",
    )  # fmt: skip
    rec = logpush_record(inv)
    assert [m["Message"] for m in rec["Logs"]] == [[big], ["<<<Logpush: messages truncated>>>"]]


@pytest.fixture(scope="module")
def event_schema(openapi_spec_path: Path) -> dict[str, Any]:
    spec = json.loads(openapi_spec_path.read_text(encoding="utf-8"))
    schema: dict[str, Any] = spec["components"]["schemas"]["workers-observability_telemetry_event"]
    return schema


def test_workers_logs_events_validate_against_the_openapi_schema(
    default_run: Run, event_schema: dict[str, Any]
) -> None:
    events = default_run.wl_events()
    # the spec is OpenAPI 3.0 (boolean exclusiveMinimum): draft 4 semantics
    validator = jsonschema.Draft4Validator(event_schema)
    # every invocation line, every exception line, and the first 3,000 console lines
    lines = [e for e in events if e["$metadata"]["type"] == "cf-worker"]
    sample = [e for e in events if e["$metadata"]["type"] == "cf-worker-event"]
    sample += [e for e in lines if "exception" in e["source"]] + lines[:3000]
    for ev in sample:
        errors = list(validator.iter_errors(ev))
        assert not errors, (ev["$metadata"]["id"], errors[0].message)
    types = Counter(e["$metadata"]["type"] for e in events)
    counts = default_run.truth["counts"]
    assert types["cf-worker-event"] == counts["invocations"]["total"]
    assert types["cf-worker"] == counts["logs"]["total"] + counts["exceptions"]
    ids = [e["$metadata"]["id"] for e in events]
    assert len(set(ids)) == len(ids)
    for e in events:
        if e["$metadata"]["type"] == "cf-worker-event":
            w = e["$workers"]
            assert {"outcome", "wallTimeMs", "cpuTimeMs", "requestId"} <= set(w)
            assert w["eventType"] in {"queue", "fetch", "scheduled"}
        else:
            assert "wallTimeMs" not in e["$workers"]  # CPU and wall time only on invocation lines
            if "exception" in e["source"]:
                assert set(e["source"]["exception"]) == {"name", "message", "stack", "timestamp"}


def test_workers_logs_ids_are_time_ordered_ulids(default_run: Run) -> None:
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    for e in default_run.wl_events()[:500]:
        mid = e["$metadata"]["id"]
        assert re.fullmatch(f"[{alphabet}]{{26}}", mid)
        ms = 0
        for ch in mid[:10]:
            ms = ms * 32 + alphabet.index(ch)
        assert ms == e["timestamp"]


def test_dlq_messages_are_peek_shaped(default_run: Run) -> None:
    data = default_run.dlq()
    assert data["queue"] == "jobs-dlq"
    msgs = data["messages"]
    assert len(msgs) == default_run.truth["counts"]["dlq"]["total"] > 0
    envelopes: Counter[str] = Counter()
    for m in msgs:
        assert set(m) == {"id", "body", "attempts", "timestamp_ms", "metadata"}
        assert HEX32.match(m["id"])
        assert isinstance(m["attempts"], int)
        assert m["attempts"] >= 0
        body = decode_dlq_body(m)
        if "original" in body:
            envelopes["wrapped"] += 1
            assert set(body) == {"original", "error"}
            assert isinstance(body["error"], str)
            orig = body["original"]
            assert set(orig) == {"id", "timestamp", "body", "attempts"}  # JSON.stringify(message)
            assert orig["id"] != m["id"]  # an explicit send is a new message
            job = orig["body"]
            assert job["metadata"]["attempts"] == orig["attempts"] >= 1
            assert "lastAttempt" in job["metadata"]
        else:
            envelopes["raw"] += 1
            job = body
            assert job["metadata"]["attempts"] == 0
            assert "lastAttempt" not in job["metadata"]
            ts = datetime.fromisoformat(job["metadata"]["originalTimestamp"].replace("Z", "+00:00"))
            assert int(ts.timestamp() * 1000) == m["timestamp_ms"]  # the runtime move keeps the timestamp
        assert set(job) == {"type", "payload", "metadata"}
        assert job["type"] in JOB_TYPES
        assert job["payload"]["jobId"].startswith("job_")
    assert envelopes["wrapped"] > 0
    assert envelopes["raw"] > 0


def test_dlq_body_encodings(default_run: Run, sim_factory: Any) -> None:
    """``json`` bodies: base64 by default (the docs), plain JSON text in the poison scenario (a live
    capture); the poison scenario also wraps the ``QueueMessage`` body itself as ``original``."""
    m = default_run.dlq()["messages"][0]
    assert not m["body"].startswith("{")
    assert isinstance(decode_dlq_body(m), dict)
    poison = sim_factory("poison-payload")
    msgs = poison.dlq()["messages"]
    assert msgs
    assert all(m["body"].startswith("{") for m in msgs)
    bodies = [json.loads(m["body"]) for m in msgs]
    assert all(set(b["original"]) == {"type", "payload", "metadata"} for b in bodies)
    bad = [b for b in bodies if b["original"]["type"] == "DATA_SYNC" and "ISO-8601" in b["error"]]
    assert bad
    for b in bad:  # the error quotes the malformed value the payload really carries
        assert json.dumps(b["original"]["payload"]["since"]) in b["error"]
