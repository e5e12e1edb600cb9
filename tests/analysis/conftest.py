"""Hand-made evidence for the clustering and analysis tests, shaped like the canonical frames."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pandas as pd
import pytest

from edgeinvestigate.evidence.bundle import Evidence
from edgeinvestigate.models.frames import conform, empty_frame

T0 = pd.Timestamp("2026-11-27T14:00:00Z")

STACK_A = (
    "TypeError: Cannot read properties of undefined (reading 'width')\n"
    "    at resizeImage (worker.js:{line}:17)\n"
    "    at async processImage (worker.js:88:5)\n"
    "    at async Object.queue (worker.js:20:9)"
)


def frame(name: str, rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    if not rows:
        return empty_frame(name)
    return conform(pd.DataFrame(list(rows)), name)


def make_evidence(
    invocations: Sequence[dict[str, Any]] = (),
    logs: Sequence[dict[str, Any]] = (),
    exceptions: Sequence[dict[str, Any]] = (),
    dlq: Sequence[dict[str, Any]] = (),
) -> Evidence:
    return Evidence(
        invocations=frame("invocations", invocations),
        logs=frame("logs", logs),
        exceptions=frame("exceptions", exceptions),
        dlq=frame("dlq", dlq),
    )


def invocation(
    i: int, ts: pd.Timestamp, *, version: str = "v1", outcome: str = "ok", **kw: Any
) -> dict[str, Any]:
    return {
        "invocation_id": f"inv-{i}",
        "ts": ts,
        "script": kw.pop("script", "jobs-consumer"),
        "script_version": version,
        "trigger": "queue",
        "queue": kw.pop("queue", "jobs"),
        "batch_size": 1,
        "outcome": outcome,
        "failed": outcome != "ok" or kw.pop("threw", False),
        "cpu_ms": kw.pop("cpu_ms", 5.0),
        "wall_ms": kw.pop("wall_ms", 120.0),
        "n_logs": 1,
        "n_exceptions": 0,
        **kw,
    }


def job_log(inv: str, ts: pd.Timestamp, level: str, event: str, job: str, **kw: Any) -> dict[str, Any]:
    """A structured log line of one job (its JSON message names the job, its type and ``extra``)."""
    body = {
        "event": event,
        "jobId": job,
        "type": kw.get("job_type", "WEBHOOK_PROCESSING"),
        **kw.pop("extra", {}),
    }
    return {
        "invocation_id": inv,
        "ts": ts,
        "level": level,
        "job_id": job,
        "job_type": kw.pop("job_type", "WEBHOOK_PROCESSING"),
        "attempt": kw.pop("attempt", 1),
        "message_id": kw.pop("message_id", f"m-{job}"),
        "message": json.dumps(body),
    }


@pytest.fixture
def small_evidence() -> Evidence:
    """Three kinds of failures around one deploy, plus a DLQ with every join kind."""
    inv, logs, exc, dlq = [], [], [], []
    for i in range(60):
        ts = T0 + pd.Timedelta(minutes=i)
        version = "v1" if i < 30 else "v2"
        job_type = "IMAGE_PROCESSING" if i % 2 else "DATA_SYNC"
        job_id = f"job_{i:04d}"
        outcome = "ok"
        logs.append(
            {"invocation_id": f"inv-{i}", "ts": ts, "level": "log", "job_id": job_id, "job_type": job_type,
             "attempt": 1, "message_id": f"msg-{i}",
             "message": f'{{"event":"job_started","jobId":"{job_id}","type":"{job_type}"}}'}
        )  # fmt: skip
        if version == "v2" and job_type == "IMAGE_PROCESSING":
            outcome = "exception"
            exc.append(
                {"invocation_id": f"inv-{i}", "ts": ts, "name": "TypeError",
                 "message": "Cannot read properties of undefined (reading 'width')",
                 "stack": STACK_A.format(line=40 + i)}
            )  # fmt: skip
        if 10 <= i < 20 and job_type == "DATA_SYNC":
            logs.append(
                {"invocation_id": f"inv-{i}", "ts": ts, "level": "error", "job_id": job_id,
                 "job_type": job_type, "attempt": 2, "message_id": f"msg-{i}",
                 "message": f'{{"event":"job_failed","jobId":"{job_id}","error":"Upstream API '
                            f'https://sync.partner-api.com/v1/items/{i}abc responded 503 Service Unavailable '
                            f'(request id 0f8fad5b-d9cb-469f-a165-70867728{i:04d})"}}'}
            )  # fmt: skip
        inv.append(invocation(i, ts, version=version, outcome=outcome, threw=outcome != "ok"))
    # DLQ: envelope error, job id join, type/time join, nothing
    dlq.append({"message_id": "dlq-1", "enqueued_at": T0 + pd.Timedelta(minutes=21), "attempts": 4,
                "job_type": "DATA_SYNC", "job_id": "job_0012", "envelope": "wrapped",
                "error": "Upstream API https://sync.partner-api.com/v1/items/12abc responded 503 Service "
                         "Unavailable (request id 0f8fad5b-d9cb-469f-a165-708677280012)"})  # fmt: skip
    dlq.append({"message_id": "dlq-2", "enqueued_at": T0 + pd.Timedelta(minutes=50), "attempts": 4,
                "job_type": "IMAGE_PROCESSING", "job_id": "job_0041", "envelope": "raw"})  # fmt: skip
    dlq.append({"message_id": "dlq-3", "enqueued_at": T0 + pd.Timedelta(minutes=45), "attempts": 4,
                "job_type": "IMAGE_PROCESSING", "job_id": "job_9999", "envelope": "raw"})  # fmt: skip
    dlq.append({"message_id": "dlq-4", "enqueued_at": T0 + pd.Timedelta(hours=5), "attempts": 4,
                "job_type": "EMAIL_DELIVERY", "job_id": "job_7777", "envelope": "raw"})  # fmt: skip
    return make_evidence(inv, logs, exc, dlq)


@pytest.fixture(scope="session", params=[7, 11], ids=["seed7", "seed11"])
def default_incident(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Evidence, dict[str, Any]]:
    """The simulator's ``default`` scenario (bad deploy + dependency outage), loaded like `collect` does,
    with its ground truth."""
    import json

    from edgeinvestigate.evidence.bundle import load
    from edgeinvestigate.simulator import simulate
    from edgeinvestigate.sources.api.dlq_frame import dlq_frame_from_file

    out = tmp_path_factory.mktemp(f"default-{request.param}")
    summary = simulate("default", out, seed=request.param, formats=("traceitems", "dlq"))
    ev = load([out / "traceitems" / "traceitems.jsonl"], strict=True)
    ev = ev.with_dlq(dlq_frame_from_file(out / "dlq" / "messages.json"))
    truth = json.loads(summary.ground_truth.read_text())
    return ev, truth
