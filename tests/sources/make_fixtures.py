"""Writes the small fixture files under tests/data (run once by hand; the outputs are committed).

Records are shaped exactly like ../shared/reference/cloudflare-formats.md sections A, B and C:
an EMAIL_DELIVERY consumer Worker failing on 2026-11-27 between 14:00 and 16:00 UTC.
"""

from __future__ import annotations

import copy
import gzip
import json
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parents[1] / "data"


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


T0 = ms("2026-11-27T14:05:00")

# --- A. tail events / TraceItems (camelCase) --------------------------------------------------
QUEUE_FAIL = {
    "wallTime": 412,
    "cpuTime": 9,
    "truncated": False,
    "executionModel": "stateless",
    "outcome": "exception",
    "scriptTags": ["cf:service=email-consumer", "cf:environment=production"],
    "scriptVersion": {"id": "5d1f6a3e-8c2b-4a51-9f0e-2b7c3d4e5f60"},
    "scriptName": "email-consumer",
    "diagnosticsChannelEvents": [],
    "exceptions": [
        {
            "name": "Error",
            "message": "SMTP 421 4.7.0 Try again later (relay smtp.example.net)",
            "timestamp": T0 + 400,
            "stack": "Error: SMTP 421 4.7.0 Try again later\n    at sendEmail (index.js:88:11)",
        }
    ],
    "logs": [
        {
            "message": [
                '{"event":"job_start","jobId":"job_01HZX3","type":"EMAIL_DELIVERY","attempt":3,"messageId":"9f1c2d3e4b5a69788"}'
            ],
            "level": "log",
            "timestamp": T0 + 5,
        },
        {
            "message": [
                {
                    "event": "job_failed",
                    "job_id": "job_01HZX3",
                    "job_type": "EMAIL_DELIVERY",
                    "attempts": 3,
                    "message_id": "9f1c2d3e4b5a69788",
                    "error": "SMTP 421",
                }
            ],
            "level": "error",
            "timestamp": T0 + 399,
        },
    ],
    "eventTimestamp": T0,
    "event": {"queue": "email-jobs", "batchSize": 1},
}
FETCH_OK = {
    "wallTime": 35,
    "cpuTime": 2,
    "truncated": False,
    "executionModel": "stateless",
    "outcome": "ok",
    "scriptVersion": {"id": "77aa0c1e-1111-4222-8333-944455556666"},
    "scriptName": "jobs-api",
    "diagnosticsChannelEvents": [],
    "exceptions": [],
    "logs": [{"message": ["enqueued", "job_01HZX9"], "level": "info", "timestamp": T0 + 60_001}],
    "eventTimestamp": T0 + 60_000,
    "event": {
        "request": {
            "url": "https://jobs.example.com/enqueue?token=REDACTED",
            "method": "POST",
            "headers": {"content-type": "application/json", "cookie": "REDACTED"},
            "cf": {"colo": "AMS", "country": "NL"},
        },
        "response": {"status": 202},
    },
}
OTHERS = [
    {  # scheduled (cron): scheduledTime is a number
        "outcome": "ok",
        "scriptName": "email-consumer",
        "exceptions": [],
        "logs": [],
        "eventTimestamp": T0 + 120_000,
        "event": {"cron": "*/5 * * * *", "scheduledTime": T0 + 120_000},
    },
    {  # DO alarm: scheduledTime is an ISO string, no cron
        "outcome": "ok",
        "scriptName": "email-consumer",
        "entrypoint": "RateLimiter",
        "durableObjectId": "a3f9c0de11",
        "exceptions": [],
        "logs": [],
        "eventTimestamp": T0 + 130_000,
        "event": {"scheduledTime": "2026-11-27T14:07:10.000Z"},
    },
    {
        "outcome": "ok",
        "scriptName": "inbound-mail",
        "exceptions": [],
        "logs": [],
        "eventTimestamp": T0 + 140_000,
        "event": {"mailFrom": "alice@example.org", "rcptTo": "jobs@example.com", "rawSize": 2048},
    },
    {
        "outcome": "ok",
        "scriptName": "tail-forwarder",
        "exceptions": [],
        "logs": [],
        "eventTimestamp": T0 + 150_000,
        "event": {"consumedEvents": [{"scriptName": "email-consumer"}]},
    },
    {
        "outcome": "ok",
        "scriptName": "jobs-api",
        "entrypoint": "JobsRpc",
        "exceptions": [],
        "logs": [],
        "eventTimestamp": T0 + 160_000,
        "event": {"rpcMethod": "enqueue"},
    },
    {
        "outcome": "ok",
        "scriptName": "jobs-api",
        "entrypoint": "LiveStatus",
        "exceptions": [],
        "logs": [],
        "eventTimestamp": T0 + 170_000,
        "event": {"getWebSocketEvent": {"webSocketEventType": "close", "code": 1000, "wasClean": True}},
    },
    {  # old capture: scriptName null, event null, zero cpu/wall (local workerd)
        "wallTime": 0,
        "cpuTime": 0,
        "truncated": False,
        "outcome": "ok",
        "scriptName": None,
        "exceptions": [],
        "logs": [{"message": ["hello from workerd"], "level": "log", "timestamp": T0 + 180_001}],
        "eventTimestamp": T0 + 180_000,
        "event": None,
    },
    {  # older workerd: a throwing queue handler reports outcome ok
        "wallTime": 0,
        "cpuTime": 0,
        "truncated": False,
        "outcome": "ok",
        "scriptName": "email-consumer",
        "exceptions": [
            {
                "name": "TypeError",
                "message": "Cannot read properties of undefined (reading 'to')",
                "timestamp": T0 + 190_010,
            }
        ],
        "logs": [],
        "eventTimestamp": T0 + 190_000,
        "event": {"queue": "email-jobs", "batchSize": 4},
    },
    {
        "outcome": "ok",
        "scriptName": "jobs-api",
        "exceptions": [],
        "logs": [],
        "eventTimestamp": T0 + 200_000,
        "event": {},
    },
]
TAIL_RECORDS = [QUEUE_FAIL, FETCH_OK, *OTHERS]
OVERLOAD = {
    "message": "Tail is currently in sampling mode due to the high volume of messages.",
    "type": "overload",
}


def write_tail() -> None:
    d = HERE / "tail"
    with (d / "tail-4space.json").open("w") as fh:
        for r in [*TAIL_RECORDS[:5], OVERLOAD, *TAIL_RECORDS[5:]]:
            fh.write(json.dumps(r, indent=4) + "\n")
    with (d / "tail-2space-stray.json").open("w") as fh:
        for r in TAIL_RECORDS:
            fh.write(json.dumps(r, indent=2) + "\n")
        fh.write("json\n")
    with (d / "tail.ndjson").open("w") as fh:
        for r in TAIL_RECORDS:
            fh.write(json.dumps(r, separators=(",", ":")) + "\n")


def write_traceitems() -> None:
    d = HERE / "traceitems"
    (d / "array.json").write_text(json.dumps(TAIL_RECORDS, indent=2) + "\n")
    with (d / "arrays.jsonl").open("w") as fh:
        for r in TAIL_RECORDS:
            fh.write(json.dumps([r], separators=(",", ":")) + "\n")
    with (d / "wrapped.jsonl").open("w") as fh:
        for i, r in enumerate(TAIL_RECORDS):
            fh.write(json.dumps({"receivedAt": f"2026-11-27T14:05:{i:02d}.000Z", "events": [r]}) + "\n")


# --- B. Logpush workers_trace_events (PascalCase) ----------------------------------------------
def logpush_records() -> list[dict]:
    return [
        {
            "CPUTimeMs": 9,
            "DispatchNamespace": "",
            "Entrypoint": "",
            "Event": {"Queue": "email-jobs", "BatchSize": 1},
            "EventTimestampMs": T0,
            "EventType": "queue",
            "Exceptions": [
                {
                    "Name": "Error",
                    "Message": "SMTP 421 4.7.0 Try again later (relay smtp.example.net)",
                    "TimestampMs": T0 + 400,
                }
            ],
            "Logs": [
                {
                    "Level": "log",
                    "Message": [
                        '{"event":"job_start","jobId":"job_01HZX3","type":"EMAIL_DELIVERY",'
                        '"attempt":3,"messageId":"9f1c2d3e4b5a69788"}'
                    ],
                    "TimestampMs": T0 + 5,
                },
                {
                    "Level": "error",
                    "Message": [
                        {
                            "event": "job_failed",
                            "jobId": "job_01HZX3",
                            "type": "EMAIL_DELIVERY",
                            "attempt": 3,
                            "error": "SMTP 421",
                        }
                    ],
                    "TimestampMs": T0 + 399,
                },
            ],
            "Outcome": "exception",
            "ScriptName": "email-consumer",
            "ScriptTags": ["cf:service=email-consumer"],
            "ScriptVersion": {"ID": "5d1f6a3e-8c2b-4a51-9f0e-2b7c3d4e5f60", "Message": "", "Tag": ""},
            "WallTimeMs": 412,
        },
        {  # the live sample: no CPU/Wall selected, fetch event
            "DispatchNamespace": "",
            "Entrypoint": "",
            "Event": {
                "RayID": "8e1a2b3c4d5e6f70",
                "Request": {"URL": "https://jobs.example.com/enqueue", "Method": "POST"},
                "Response": {"Status": 202},
            },
            "EventTimestampMs": T0 + 60_000,
            "EventType": "fetch",
            "Exceptions": [],
            "Logs": [{"Level": "info", "Message": ["enqueued", "job_01HZX9"], "TimestampMs": T0 + 60_001}],
            "Outcome": "ok",
            "ScriptName": "jobs-api",
            "ScriptTags": [],
            "ScriptVersion": {"ID": "77aa0c1e-1111-4222-8333-944455556666", "Message": "", "Tag": ""},
        },
        {  # truncated: lower-case exception keys after truncation, a marker entry
            "CPUTimeMs": 30,
            "Event": {"Queue": "email-jobs", "BatchSize": 10},
            "EventTimestampMs": T0 + 120_000,
            "EventType": "queue",
            "Exceptions": [{"name": "Error", "message": "<<<Logpush: exception messages truncated>>>"}],
            "Logs": [
                {"Level": "log", "Message": ["x" * 200], "TimestampMs": T0 + 120_001},
                {
                    "Level": "log",
                    "Message": ["<<<Logpush: messages truncated>>>"],
                    "TimestampMs": T0 + 120_002,
                },
            ],
            "Outcome": "exception",
            "ScriptName": "email-consumer",
            "WallTimeMs": 2900,
        },
        {
            "CPUTimeMs": 1,
            "EventTimestampMs": T0 + 130_000,
            "EventType": "alarm",
            "Exceptions": [],
            "Logs": [],
            "Outcome": "ok",
            "ScriptName": "email-consumer",
            "Entrypoint": "RateLimiter",
            "WallTimeMs": 3,
        },
        {
            "EventTimestampMs": T0 + 140_000,
            "EventType": "worker_rpc",
            "Exceptions": [],
            "Logs": [],
            "Outcome": "ok",
            "ScriptName": "jobs-api",
            "Entrypoint": "JobsRpc",
        },
        {
            "EventTimestampMs": T0 + 150_000,
            "EventType": "hibernatable_web_socket",
            "Exceptions": [],
            "Logs": [],
            "Outcome": "ok",
            "ScriptName": "jobs-api",
        },
        {
            "EventTimestampMs": T0 + 160_000,
            "EventType": "scheduled",
            "Exceptions": [],
            "Logs": [],
            "Outcome": "exceededCpu",
            "ScriptName": "email-consumer",
            "CPUTimeMs": 0,
            "WallTimeMs": 0,
        },
    ]


def write_logpush() -> None:
    recs = logpush_records()
    day = HERE / "logpush" / "20261127"
    with gzip.open(day / "20261127T140000Z_20261127T140030Z_ab12cd34.log.gz", "wt") as fh:
        for r in recs[:4]:
            fh.write(json.dumps(r, separators=(",", ":")) + "\n")
    with (day / "batch-2.log").open("w") as fh:  # a plain NDJSON file with any name
        for r in recs[4:]:
            fh.write(json.dumps(r, separators=(",", ":")) + "\n")
    # other timestamp formats: ns, s, RFC 3339
    nxt = HERE / "logpush" / "20261128"
    alt = copy.deepcopy(recs[:3])
    alt[0]["EventTimestampMs"] = alt[0]["EventTimestampMs"] * 1_000_000
    alt[1]["EventTimestampMs"] = alt[1]["EventTimestampMs"] // 1000
    alt[2]["EventTimestampMs"] = "2026-11-27T14:07:00Z"
    with gzip.open(nxt / "timestamps.gz", "wt") as fh:
        for r in alt:
            fh.write(json.dumps(r, separators=(",", ":")) + "\n")


# --- C. Workers Logs ---------------------------------------------------------------------------
def workers_logs_events() -> list[dict]:
    base_workers = {
        "scriptName": "email-consumer",
        "eventType": "queue",
        "requestId": "8e1a2b3c4d5e6f71",
        "scriptVersion": {"id": "5d1f6a3e-8c2b-4a51-9f0e-2b7c3d4e5f60", "message": "", "tag": ""},
        "executionModel": "stateless",
        "event": {"queue": "email-jobs", "batchSize": 1},
    }
    meta = {"service": "email-consumer", "requestId": "8e1a2b3c4d5e6f71", "origin": "queue"}
    return [
        {
            "dataset": "cloudflare-workers",
            "timestamp": T0 + 5,
            "source": {
                "event": "job_start",
                "jobId": "job_01HZX3",
                "type": "EMAIL_DELIVERY",
                "attempt": 3,
                "messageId": "9f1c2d3e4b5a69788",
            },
            "$metadata": {
                **meta,
                "id": "01JDX0000000000000000000A1",
                "type": "cf-worker",
                "level": "log",
                "message": "job_start",
            },
            "$workers": base_workers,
        },
        {
            "dataset": "cloudflare-workers",
            "timestamp": T0 + 400,
            "source": {
                "message": "SMTP 421 4.7.0 Try again later",
                "exception": {
                    "name": "Error",
                    "message": "SMTP 421 4.7.0 Try again later",
                    "stack": "Error: SMTP 421\n    at sendEmail (index.js:88:11)",
                    "timestamp": T0 + 400,
                },
            },
            "$metadata": {
                **meta,
                "id": "01JDX0000000000000000000A2",
                "type": "cf-worker",
                "level": "error",
                "error": "SMTP 421 4.7.0 Try again later",
            },
            "$workers": base_workers,
        },
        {
            "dataset": "cloudflare-workers",
            "timestamp": T0 + 410,
            "source": {"outcome": "exception", "cpuTimeMs": 9, "wallTimeMs": 412},
            "$metadata": {
                **meta,
                "id": "01JDX0000000000000000000A3",
                "type": "cf-worker-event",
                "startTime": T0,
                "endTime": T0 + 412,
            },
            "$workers": {
                **base_workers,
                "outcome": "exception",
                "cpuTimeMs": 9,
                "wallTimeMs": 412,
                "diagnosticsChannelEvents": [],
                "dispatchNamespace": "",
            },
        },
        {
            "dataset": "cloudflare-workers",
            "timestamp": T0 + 60_000,
            "source": {"outcome": "ok"},
            "$metadata": {
                "id": "01JDX0000000000000000000B1",
                "requestId": "8e1a2b3c4d5e6f72",
                "service": "jobs-api",
                "type": "cf-worker-event",
                "trigger": "POST /enqueue",
                "statusCode": 202,
                "url": "https://jobs.example.com/enqueue",
                "startTime": T0 + 60_000,
            },
            "$workers": {
                "scriptName": "jobs-api",
                "eventType": "fetch",
                "requestId": "8e1a2b3c4d5e6f72",
                "outcome": "ok",
                "cpuTimeMs": 2,
                "wallTimeMs": 35,
                "event": {
                    "request": {
                        "url": "https://jobs.example.com/enqueue",
                        "method": "POST",
                        "path": "/enqueue",
                    },
                    "response": {"status": 202},
                },
            },
        },
        {
            "dataset": "cloudflare-workers",
            "timestamp": T0 + 60_001,
            "source": "enqueued job_01HZX9",
            "$metadata": {
                "id": "01JDX0000000000000000000B2",
                "requestId": "8e1a2b3c4d5e6f72",
                "service": "jobs-api",
                "type": "cf-worker",
                "level": "info",
                "message": "enqueued job_01HZX9",
            },
            "$workers": {"scriptName": "jobs-api", "eventType": "fetch", "requestId": "8e1a2b3c4d5e6f72"},
        },
    ]


def write_workers_logs() -> None:
    d = HERE / "workers_logs"
    evs = workers_logs_events()
    # the dashboard shape: flattened, no dataset/source/timestamp wrapper, 2-space objects back to back
    with (d / "dashboard-export.json").open("w") as fh:
        for e in evs:
            flat = {"$workers": e["$workers"], "$metadata": {**e["$metadata"], "timestamp": e["timestamp"]}}
            src = e["source"]
            if isinstance(src, dict):
                flat.update(src)
            else:
                flat["message"] = src
            if "level" in e["$metadata"]:
                flat["level"] = e["$metadata"]["level"]
            fh.write(json.dumps(flat, indent=2) + "\n")
    (d / "api-events.json").write_text(json.dumps(evs, indent=2) + "\n")
    with (d / "api-events.ndjson").open("w") as fh:
        for e in evs:
            fh.write(json.dumps(e) + "\n")


if __name__ == "__main__":
    write_tail()
    write_traceitems()
    write_logpush()
    write_workers_logs()
