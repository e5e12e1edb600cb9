"""Synthetic Logpush ``workers_trace_events`` for the load benchmark.

Records are shaped like cloudflare-formats.md B1 (PascalCase, live fetch-event shape, ScriptVersion
{ID, Message, Tag}); a queue consumer mostly, with 1-5 console lines per invocation (structured
``JSON.stringify`` lines, plain strings, and ~3.6% object arguments) and ~20% invocations with
exceptions. Deterministic for a given seed. Written as gzip NDJSON files in a ``YYYYMMDD`` folder, the
way Logpush writes them to R2/S3.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from isal import igzip

T0 = 1795780800000  # 2026-11-27T12:00:00Z
JOB_TYPES = ["IMAGE_PROCESSING", "EMAIL_DELIVERY", "REPORT_GENERATION", "DATA_SYNC", "WEBHOOK_PROCESSING"]
ERRORS = [
    ("Error", "SMTP 421 4.7.0 Try again later (relay smtp{n}.example.net)"),
    ("TypeError", "Cannot read properties of undefined (reading '{field}')"),
    ("Error", "upstream https://api.partner.example.com/v2/items/{n} returned 503"),
    ("TimeoutError", "The operation was aborted due to timeout after {n} ms"),
    ("RangeError", "Invalid time value: {field}"),
]
FIELDS = ["to", "payload", "userId", "template", "width", "bucket", "signature"]
SCRIPTS = ["email-consumer", "image-worker", "report-worker", "sync-worker", "webhook-worker", "jobs-api"]
VERSIONS = [f"{i:08x}-8c2b-4a51-9f0e-2b7c3d4e5f60" for i in range(6)]


def _hex(rng: random.Random, n: int) -> str:
    return f"{rng.getrandbits(4 * n):0{n}x}"


def record(rng: random.Random, i: int) -> dict[str, object]:
    ts = T0 + i * 7 + rng.randrange(7)
    script = rng.choice(SCRIPTS)
    fetch = script == "jobs-api"
    job_type = rng.choice(JOB_TYPES)
    job_id = "job_" + _hex(rng, 12)
    msg_id = _hex(rng, 16)
    attempt = rng.randint(1, 4)
    logs: list[dict[str, object]] = []
    t = ts
    for k in range(rng.randint(1, 5)):
        t += rng.randrange(1, 40)
        r = rng.random()
        if r < 0.036:
            args: list[object] = [
                {
                    "event": "job_step",
                    "jobId": job_id,
                    "type": job_type,
                    "attempt": attempt,
                    "step": k,
                    "messageId": msg_id,
                    "durationMs": rng.randrange(2000),
                }
            ]
        elif r < 0.6:
            args = [
                json.dumps(
                    {
                        "event": rng.choice(["job_start", "job_step", "job_done", "job_retry"]),
                        "jobId": job_id,
                        "type": job_type,
                        "attempt": attempt,
                        "messageId": msg_id,
                    },
                    separators=(",", ":"),
                )
            ]
        else:
            args = [f"processing {job_type.lower()} {job_id} in {rng.randrange(900)} ms"]
        logs.append(
            {
                "Level": rng.choice(["log", "log", "info", "warn", "error", "debug"]),
                "Message": args,
                "TimestampMs": t,
            }
        )
    exceptions: list[dict[str, object]] = []
    if rng.random() < 0.2:
        for _ in range(1 if rng.random() < 0.9 else 2):
            name, tmpl = rng.choice(ERRORS)
            exceptions.append(
                {
                    "Name": name,
                    "Message": tmpl.format(n=rng.randrange(10000), field=rng.choice(FIELDS)),
                    "TimestampMs": t + rng.randrange(1, 20),
                }
            )
    outcome = (
        "exception"
        if exceptions and rng.random() < 0.85
        else rng.choice(["ok"] * 30 + ["exceededCpu", "canceled"])
    )
    if fetch:
        event: dict[str, object] = {
            "RayID": _hex(rng, 16),
            "Request": {
                "URL": f"https://jobs.example.com/v1/jobs/{job_id}?tenant={rng.randrange(5000)}",
                "Method": rng.choice(["POST", "GET", "PUT"]),
            },
            "Response": {"Status": 500 if exceptions else rng.choice([200, 201, 202, 204, 404])},
        }
        etype = "fetch"
    else:
        event = {
            "Queue": "jobs-immediate" if rng.random() < 0.8 else "jobs-retry",
            "BatchSize": rng.randint(1, 10),
        }
        etype = "queue"
    v = rng.randrange(len(VERSIONS))
    return {
        "CPUTimeMs": rng.randrange(1, 50),
        "DispatchNamespace": "",
        "Entrypoint": "",
        "Event": event,
        "EventTimestampMs": ts,
        "EventType": etype,
        "Exceptions": exceptions,
        "Logs": logs,
        "Outcome": outcome,
        "ScriptName": script,
        "ScriptTags": [f"cf:service={script}", "cf:environment=production"],
        "ScriptVersion": {"ID": VERSIONS[v], "Message": f"deploy {v}", "Tag": f"v1.{v}.0"},
        "WallTimeMs": rng.randrange(5, 3000),
    }


def generate(out: Path, records: int, files: int = 10, seed: int = 20261127) -> list[Path]:
    """Write ``records`` records into ``files`` gzip NDJSON files under ``out/20261127/``."""
    day = out / "20261127"
    day.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    per = -(-records // files)
    paths = []
    i = 0
    for f in range(files):
        n = min(per, records - i)
        if n <= 0:
            break
        start = T0 + i * 7
        name = f"20261127T{(start // 1000) % 86400 // 3600:02d}0000Z_{f:04d}_{_hex(rng, 8)}.log.gz"
        lines = [json.dumps(record(rng, i + k), separators=(",", ":")) for k in range(n)]
        data = ("\n".join(lines) + "\n").encode()
        path = day / name
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(igzip.compress(data, compresslevel=2))
        tmp.rename(path)
        paths.append(path)
        i += n
    return paths
