"""The jobs the lab sends, and what each one is expected to end as.

Jobs are ``QueueMessage`` bodies (``processing-architecture.md``) with a deterministic
``payload.jobId`` (``<phase>-<n>``) so that every expectation can be checked against the
runtime's own telemetry afterwards. The mix is seeded: the same seed gives the same jobs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

__all__ = [
    "JOB_TYPES",
    "Expect",
    "Job",
    "baseline_jobs",
    "incident_jobs",
    "poison_job",
    "recovery_jobs",
    "scheduled_job",
]

JOB_TYPES = ("IMAGE_PROCESSING", "EMAIL_DELIVERY", "REPORT_GENERATION", "DATA_SYNC", "WEBHOOK_PROCESSING")
_WEIGHTS = (25, 25, 15, 15, 20)

#: ``succeed``; ``dlq-wrapped`` (the consumer sent ``{original, error}``); ``dlq-raw`` (moved by the
#: runtime after ``max_retries``)
Expect = Literal["succeed", "dlq-wrapped", "dlq-raw"]


@dataclass(frozen=True)
class Job:
    job_id: str
    type: str
    body: dict[str, Any]
    expect: Expect
    phase: str
    why: str = ""


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _payload(job_type: str, job_id: str, rng: random.Random) -> dict[str, Any]:
    n = rng.randrange(1, 100_000)
    if job_type == "IMAGE_PROCESSING":
        return {
            "jobId": job_id,
            "imageId": f"img_{n}",
            "format": rng.choice(["png", "jpeg", "webp"]),
            "width": 1024,
        }
    if job_type == "EMAIL_DELIVERY":
        return {
            "jobId": job_id,
            "to": f"user{n}@example.com",
            "template": rng.choice(["welcome", "receipt", "password-reset"]),
            "data": {"name": f"User {n}"},
        }
    if job_type == "REPORT_GENERATION":
        return {"jobId": job_id, "reportId": f"rpt_{n}", "range": "7d"}
    if job_type == "DATA_SYNC":
        return {"jobId": job_id, "source": rng.choice(["crm", "billing", "warehouse"]), "since": "2026-11-27"}
    return {"jobId": job_id, "url": f"https://partner.example.com/hooks/{n}", "event": "order.created"}


def _job(phase: str, i: int, job_type: str, rng: random.Random) -> tuple[str, dict[str, Any]]:
    job_id = f"{phase}-{i:04d}"
    body = {
        "type": job_type,
        "payload": _payload(job_type, job_id, rng),
        "metadata": {"attempts": 0, "originalTimestamp": _now_iso()},
    }
    return job_id, body


def baseline_jobs(n: int, rng: random.Random, phase: str = "baseline") -> list[Job]:
    """Normal traffic on the good version, with the everyday failures a job system has.

    A few jobs fail transiently once or twice (they succeed on a retry), two images have an
    unsupported format and one report has no id (permanent: ``{original, error}``), and two data
    syncs time out on every delivery (moved to the DLQ by the runtime after ``max_retries``).
    """
    jobs: list[Job] = []
    specials = {
        3: "bad-format",
        11: "bad-format",
        17: "no-report-id",
        23: "always-timeout",
        31: "always-timeout",
    }
    for i in range(n):
        kind = specials.get(i)
        if kind == "bad-format":
            job_id, body = _job(phase, i, "IMAGE_PROCESSING", rng)
            body["payload"]["format"] = "bmp"
            jobs.append(
                Job(job_id, "IMAGE_PROCESSING", body, "dlq-wrapped", phase, "unsupported image format")
            )
            continue
        if kind == "no-report-id":
            job_id, body = _job(phase, i, "REPORT_GENERATION", rng)
            del body["payload"]["reportId"]
            jobs.append(Job(job_id, "REPORT_GENERATION", body, "dlq-wrapped", phase, "reportId missing"))
            continue
        if kind == "always-timeout":
            job_id, body = _job(phase, i, "DATA_SYNC", rng)
            body["payload"]["inject"] = {"transient": "always"}
            jobs.append(Job(job_id, "DATA_SYNC", body, "dlq-raw", phase, "times out on every delivery"))
            continue
        job_type = rng.choices(JOB_TYPES, weights=_WEIGHTS)[0]
        job_id, body = _job(phase, i, job_type, rng)
        why = ""
        if rng.random() < 0.08:
            body["payload"]["inject"] = {"transient": rng.choice([1, 2])}
            why = "transient failure, recovers on retry"
        jobs.append(Job(job_id, job_type, body, "succeed", phase, why))
    return jobs


def scheduled_job(scheduled_ms: int, cron: str = "0 6 * * *") -> Job:
    """The job the producer's cron trigger enqueues on the scheduled queue (built by the Worker)."""
    job_id = f"scheduled-{scheduled_ms}"
    body = {
        "type": "REPORT_GENERATION",
        "payload": {"jobId": job_id, "reportId": "daily-usage", "range": "1d", "cron": cron},
        "metadata": {"attempts": 0},
    }
    return Job(job_id, "REPORT_GENERATION", body, "succeed", "scheduled", "cron trigger")


def poison_job(rng: random.Random, phase: str = "poison") -> Job:
    """A DATA_SYNC job whose cursor is not JSON: it crashes the handler outside the per-message try."""
    job_id, body = _job(phase, 0, "DATA_SYNC", rng)
    body["payload"]["cursor"] = '{"offset": 1200, "token": '  # truncated JSON
    return Job(job_id, "DATA_SYNC", body, "dlq-raw", phase, "poison message: corrupt cursor")


def incident_jobs(n: int, rng: random.Random, phase: str = "incident") -> list[Job]:
    """Traffic while the bad version runs: every EMAIL_DELIVERY job fails permanently.

    Webhooks in this phase also meet the transient outage (started separately); they recover on
    retry, so their expectation stays ``succeed``.
    """
    jobs: list[Job] = []
    for i in range(n):
        job_type = rng.choices(JOB_TYPES, weights=_WEIGHTS)[0]
        job_id, body = _job(phase, i, job_type, rng)
        if job_type == "EMAIL_DELIVERY":
            jobs.append(
                Job(job_id, job_type, body, "dlq-wrapped", phase, "bad deploy: renderer reads data.profile")
            )
        else:
            jobs.append(Job(job_id, job_type, body, "succeed", phase))
    return jobs


def recovery_jobs(n: int, rng: random.Random, phase: str = "recovery") -> list[Job]:
    """Normal traffic after the fix."""
    jobs = []
    for i in range(n):
        job_type = rng.choices(JOB_TYPES, weights=_WEIGHTS)[0]
        job_id, body = _job(phase, i, job_type, rng)
        jobs.append(Job(job_id, job_type, body, "succeed", phase))
    return jobs
