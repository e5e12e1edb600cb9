"""Logpush ``workers_trace_events`` records in every shape the reference documents or allows.

Shaped like ../shared/reference/cloudflare-formats.md B1/B2 (PascalCase fields, the live fetch event
``{RayID, Request{URL, Method}, Response{Status}}``, ``ScriptVersion{ID, Message, Tag}``) and the choices
ARCHITECTURE.md documents where the reference is silent (queue ``{Queue, BatchSize}``, cron ``{Cron,
ScheduledTimeMs}``), plus the valid variants a loader must take on its fast path:

- every ``EventType`` (fetch, scheduled, alarm, queue, email, worker_rpc, hibernatable_web_socket) and
  records without one (the job did not select it: the trigger comes from ``Event``), ``Event`` null or absent;
- ``Event.Queue`` as a string or as an object ``{QueueName, BatchSize}``;
- only the fields the job selected (no CPU/wall time, no ScriptVersion, no Entrypoint, ...);
- ``Logs[].Message`` arrays of strings, structured ``JSON.stringify`` lines, objects, numbers, booleans,
  null, nested arrays, several arguments, no argument; every level;
- ``Exceptions`` keys in either casing, with or without a stack, every outcome of A3;
- times in ms, s or ns (``timestamp_format``) and RFC 3339 strings (B2);
- ``<<<Logpush: ... truncated>>>`` markers past the 16,384-character cap (B1).

Used by ``tests/sources/test_loader_paths.py`` (the fast path against the per-record reference path) and
``benchmarks/bench_load.py`` (the "unusual shapes" corpus). Deterministic for a given seed.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

T0: Final = 1795780800000  # 2026-11-27T12:00:00Z
OUTCOMES: Final = (
    "unknown",
    "ok",
    "exception",
    "exceededCpu",
    "killSwitch",
    "daemonDown",
    "scriptNotFound",
    "canceled",
    "exceededMemory",
    "loadShed",
    "responseStreamDisconnected",
    "internalError",
    "exceededWallTime",
    "aborted",
)
EVENT_TYPES: Final = (
    "fetch",
    "scheduled",
    "alarm",
    "queue",
    "email",
    "worker_rpc",
    "hibernatable_web_socket",
)
LEVELS: Final = ("debug", "info", "log", "warn", "error")
JOB_TYPES: Final = ("IMAGE_PROCESSING", "EMAIL_DELIVERY", "REPORT_GENERATION", "DATA_SYNC", "WEBHOOK")
SCRIPTS: Final = ("jobs-consumer", "jobs-api", "image-worker", "email-consumer", "rate-limiter")
ERRORS: Final = (
    ("Error", "SMTP 421 4.7.0 Try again later (relay smtp{n}.example.net)"),
    ("TypeError", "Cannot read properties of undefined (reading 'payload')"),
    ("Error", "upstream https://api.partner.example.com/v2/items/{n} returned 503"),
    ("TimeoutError", "The operation was aborted due to timeout after {n} ms"),
    ("Error", "Worker exceeded CPU time limit."),
)
LOG_MARKER: Final = "<<<Logpush: messages truncated>>>"
EXC_MARKER: Final = "<<<Logpush: exception messages truncated>>>"


def _hex(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _time(ms: int, unit: str) -> Any:
    """A time as the job's ``timestamp_format`` writes it (B2: ms, s, ns, or an RFC 3339 string)."""
    if unit == "s":
        return ms // 1000
    if unit == "ns":
        return ms * 1_000_000
    if unit == "rfc3339":
        return _iso(ms)
    return ms


def _args(rng: random.Random, job: dict[str, Any], k: int) -> list[Any]:
    """The arguments of one ``console.*`` call, in every shape ``Logs[].Message`` holds (A2: any JSON)."""
    r = rng.random()
    if r < 0.35:  # the structured convention: one JSON.stringify string
        return [json.dumps({"event": "job.step", **job, "step": k}, separators=(",", ":"))]
    if r < 0.55:  # a plain string
        return [f"processing {job['type'].lower()} {job['jobId']} in {rng.randrange(900)} ms"]
    if r < 0.70:  # an object argument (console.log({...}))
        return [{"event": "job.step", **job, "durationMs": rng.randrange(2000), "ok": rng.random() < 0.5}]
    if r < 0.78:  # several arguments: a label and an object, or numbers
        return [f"job {job['jobId']}", {"attempt": job["attempt"], "tags": ["a", "b"]}, rng.randrange(100)]
    if r < 0.83:  # numbers, booleans, null
        return [rng.randrange(10**6), rng.random() < 0.5, None]
    if r < 0.87:  # nested arrays and an object with snake_case job keys
        return [[1, [2, "three"]], {"job_id": job["jobId"], "job_type": job["type"], "attempts": "2"}]
    if r < 0.90:  # console.log() with no argument
        return []
    if r < 0.93:  # non-ASCII text and escapes
        return [f'réessai {job["jobId"]} — délai « {rng.randrange(60)} s »\t"ok"']
    if r < 0.96:  # a JSON string that is not an object, and a string that only looks like one
        return ["[1,2,3]", "{not json"]
    return [{"message": f"upstream returned {rng.choice([500, 502, 503])}", "jobId": job["jobId"]}]


def _event(rng: random.Random, etype: str, ms: int, exceptions: bool) -> Any:
    """``Event`` of one trigger (B1 for fetch; ARCHITECTURE.md's documented choices for the rest)."""
    if etype == "fetch":
        event: dict[str, Any] = {
            "RayID": _hex(rng, 16),
            "Request": {
                "URL": f"https://jobs.example.com/v1/jobs/{_hex(rng, 8)}?tenant={rng.randrange(500)}",
                "Method": rng.choice(["GET", "POST", "PUT", "DELETE"]),
            },
        }
        if rng.random() < 0.9:  # a canceled request has no response
            event["Response"] = {"Status": 500 if exceptions else rng.choice([200, 201, 202, 204, 404])}
        return event
    if etype == "queue":
        name = rng.choice(["jobs", "jobs-retry", "email-jobs"])
        size = rng.randint(1, 100)
        if rng.random() < 0.5:
            return {"Queue": {"QueueName": name, "BatchSize": size}}
        return {"Queue": name, "BatchSize": size}
    if etype == "scheduled":
        return {"Cron": rng.choice(["*/5 * * * *", "0 * * * *"]), "ScheduledTimeMs": ms - ms % 300_000}
    if etype == "alarm":
        return rng.choice([None, {}, {"ScheduledTime": _iso(ms)}])
    if etype == "email":
        return {
            "MailFrom": "alerts@example.com",
            "RcptTo": "jobs@example.com",
            "RawSize": rng.randrange(9999),
        }
    if etype == "worker_rpc":
        return {"RPCMethod": rng.choice(["enqueue", "status"])}
    return {"GetWebSocketEvent": {"WebSocketEventType": rng.choice(["message", "close", "error"])}}


def shaped_record(rng: random.Random, i: int, unit: str = "ms") -> dict[str, Any]:
    """One record of a random documented shape (see the module docstring); ``unit``: the time format."""
    ms = T0 + i * 11 + rng.randrange(11)
    etype = rng.choice(EVENT_TYPES) if rng.random() < 0.6 else rng.choice(("queue", "fetch"))
    job = {
        "jobId": "job_" + _hex(rng, 12),
        "type": rng.choice(JOB_TYPES),
        "attempt": rng.randint(1, 4),
        "messageId": _hex(rng, 16),
    }
    t = ms
    logs: list[Any] = []
    for k in range(rng.choice((0, 1, 1, 2, 3, 5))):
        t += rng.randrange(1, 40)
        logs.append(
            {"Level": rng.choice(LEVELS), "Message": _args(rng, job, k), "TimestampMs": _time(t, unit)}
        )
    exceptions: list[Any] = []
    if rng.random() < 0.25:
        for _ in range(1 if rng.random() < 0.85 else 2):
            name, tmpl = rng.choice(ERRORS)
            text = tmpl.format(n=rng.randrange(10000))
            stack = f"{name}: {text}\n    at handler (worker.js:{rng.randrange(900)}:17)"
            if rng.random() < 0.3:  # the lower-case casing of the docs' truncation example
                exc: dict[str, Any] = {"name": name, "message": text, "timestampMs": _time(t + 1, unit)}
                if rng.random() < 0.5:
                    exc["stack"] = stack
            else:
                exc = {"Name": name, "Message": text, "TimestampMs": _time(t + 1, unit)}
                if rng.random() < 0.5:
                    exc["Stack"] = stack
            exceptions.append(exc)
    if rng.random() < 0.01:  # past the 16,384-character cap: one entry replaced by a marker
        if exceptions and rng.random() < 0.5:
            exceptions[-1] = {"name": exceptions[-1].get("Name", "Error"), "message": EXC_MARKER}
        else:
            logs.append({"Level": "log", "Message": [LOG_MARKER], "TimestampMs": _time(t + 2, unit)})
    outcome = "exception" if exceptions and rng.random() < 0.8 else rng.choice(("ok",) * 12 + OUTCOMES)
    script = rng.choice(SCRIPTS)
    v = rng.randrange(4)
    rec: dict[str, Any] = {
        "CPUTimeMs": rng.randrange(0, 50),
        "DispatchNamespace": "customer-workers" if rng.random() < 0.05 else "",
        "Entrypoint": rng.choice(("", "", "", "JobsRpc", "RateLimiter")),
        "Event": _event(rng, etype, ms, bool(exceptions)),
        "EventTimestampMs": _time(ms, unit),
        "EventType": etype,
        "Exceptions": exceptions,
        "Logs": logs,
        "Outcome": outcome,
        "ScriptName": script,
        "ScriptTags": [f"cf:service={script}", "cf:environment=production"],
        "ScriptVersion": {
            "ID": f"{v:08x}-8c2b-4a51-9f0e-2b7c3d4e5f60",
            "Message": "",
            "Tag": f"v{v}",
        },
        "WallTimeMs": rng.randrange(1, 3000),
    }
    # only the fields the job selected (B1): drop optional ones now and then
    for key, p in (
        ("CPUTimeMs", 0.15),
        ("WallTimeMs", 0.15),
        ("DispatchNamespace", 0.2),
        ("Entrypoint", 0.2),
        ("ScriptTags", 0.2),
        ("ScriptVersion", 0.1),
        ("EventType", 0.05),
        ("Event", 0.03),
        ("Logs", 0.03),
        ("Exceptions", 0.03),
    ):
        if rng.random() < p:
            del rec[key]
    if rec.get("Event") is None and "Event" in rec and rng.random() < 0.5:
        del rec["Event"]
    return rec


def every_variant() -> Iterator[dict[str, Any]]:
    """At least one record of each documented variant, deterministically (for the tests)."""
    rng = random.Random(7)
    i = 0
    for etype in EVENT_TYPES:
        for _ in range(3):
            rec = shaped_record(rng, i)
            rec["EventType"] = etype
            rec["Event"] = _event(rng, etype, T0 + i, False)
            i += 1
            yield rec
    for queue in ("jobs", {"QueueName": "jobs", "BatchSize": 7}, {"QueueName": "jobs"}, {"BatchSize": 3}):
        rec = shaped_record(rng, i)
        rec.update(EventType="queue", Event={"Queue": queue})
        i += 1
        yield rec
    rec = shaped_record(rng, i)
    rec.pop("EventType", None)
    rec["Event"] = {"Queue": {"QueueName": "jobs", "BatchSize": 2}}  # trigger from the shape
    i += 1
    yield rec
    for outcome in OUTCOMES:
        rec = shaped_record(rng, i)
        rec["Outcome"] = outcome
        i += 1
        yield rec
    for level in LEVELS:
        rec = shaped_record(rng, i)
        rec["Logs"] = [{"Level": level, "Message": [{"event": "x", "n": 1}, "two", 3], "TimestampMs": T0 + i}]
        i += 1
        yield rec
    minimal = {"EventTimestampMs": T0 + i, "Outcome": "ok", "ScriptName": "jobs-api"}  # few fields selected
    yield minimal
    yield {"EventTimestampMs": T0 + i + 1, "EventType": "fetch", "Event": None, "Logs": [], "Exceptions": []}
    for unit in ("s", "ns", "rfc3339"):
        for _ in range(3):
            yield shaped_record(rng, i, unit)
            i += 1
    for _ in range(400):  # the random mix, markers included
        yield shaped_record(rng, i)
        i += 1


def write_corpus(out: Path, records: int, files: int = 1, seed: int = 20261127) -> list[Path]:
    """``records`` shaped records as gzip NDJSON (compact JSON, as Logpush writes it) in ``files``
    files under ``out/20261127/``."""
    from isal import igzip

    day = out / "20261127"
    day.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    per = -(-records // files)
    paths = []
    for f in range(files):
        lo, hi = f * per, min(records, (f + 1) * per)
        if lo >= hi:
            break
        lines = [
            json.dumps(shaped_record(rng, i), separators=(",", ":"), ensure_ascii=False)
            for i in range(lo, hi)
        ]
        path = day / f"20261127T120000Z_{f:04d}_{_hex(rng, 8)}.log.gz"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(igzip.compress(("\n".join(lines) + "\n").encode(), compresslevel=2))
        tmp.rename(path)
        paths.append(path)
    return paths
