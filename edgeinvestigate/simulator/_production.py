"""The producer side of a run: the producer Worker's invocations and the jobs they enqueue.

``jobs-api`` enqueues jobs from HTTP requests (``POST /v1/jobs``, ``jobs_per_request`` jobs of one
type for one tenant) and REPORT_GENERATION jobs from its cron trigger. Root causes that are decided
when a job is produced (a poison payload, a job heavy enough to hit the CPU limit) are drawn here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeinvestigate.simulator._scenario import JOB_TYPES, Scenario
from edgeinvestigate.simulator._templates import pick_cum
from edgeinvestigate.simulator._values import hex_ids, job_ids

__all__ = ["Production", "estimate_jobs", "produce"]

_REPORT = JOB_TYPES.index("REPORT_GENERATION")


@dataclass
class Production:
    """The producer's invocations (HTTP requests first, then cron ticks) and the jobs, by index."""

    tenants: list[str]
    # producer invocations
    p_ts: np.ndarray
    p_trigger: np.ndarray  # 1 fetch, 2 scheduled
    p_count: np.ndarray  # jobs enqueued
    p_type: np.ndarray
    p_tenant: np.ndarray  # -1 for cron ticks
    # jobs (one per produced message)
    job_ts: np.ndarray
    job_type: np.ndarray
    job_tenant: np.ndarray
    job_p: np.ndarray  # the producer invocation that enqueued the job
    msg_ids: list[str]
    job_ids: list[str]
    job_cause: np.ndarray  # incident index flagged at production (poison / heavy), -1 otherwise
    poison: dict[int, tuple[str, str]]  # job -> (payload field, bad value)


def estimate_jobs(scenario: Scenario, invocations: int) -> int:
    """How many jobs give about ``invocations`` invocations in this scenario's window."""
    s = scenario.system
    mix = scenario.traffic.mix
    total = sum(mix.values())
    report_share = mix.get("REPORT_GENERATION", 0.0) / total
    minutes = scenario.duration_minutes
    n_cron = int(np.ceil(minutes / scenario.traffic.report_cron_minutes))
    n_buckets = max(1.0, minutes * 60.0 / s.batch_timeout_s)
    # consumer invocations per bucket from the batch chunking, for a delivery rate lam per bucket
    rng = np.random.default_rng(12345)
    p = (s.mean_batch_fill - 1) / (s.batch_size - 1) if s.batch_size > 1 else 0.0
    p = min(max(p, 0.0), 1.0)
    mean_size = 1 + max(s.batch_size - 1, 0) * p
    jobs = float(invocations) * 0.5
    for _ in range(8):
        lam = jobs * 1.1 / n_buckets
        if lam < 40:
            jpr = scenario.traffic.jobs_per_request
            nreq = rng.poisson(lam / jpr, 4000)
            counts = nreq + rng.poisson(nreq * (jpr - 1))
            sizes = 1 + rng.binomial(max(s.batch_size - 1, 0), p, size=(4000, 128))
            cs = np.cumsum(sizes, axis=1)
            per_bucket = ((cs < counts[:, None]).sum(axis=1) + (counts > 0)).mean()
        else:
            per_bucket = lam / mean_size + 0.5
        fetch = jobs * (1 - report_share) / scenario.traffic.jobs_per_request
        est = per_bucket * n_buckets + fetch + n_cron
        jobs = max(1.0, jobs * invocations / max(est, 1.0))
    return max(1, round(jobs))


def produce(scenario: Scenario, rng: np.random.Generator, invocations: int) -> Production:
    """Draw the producer's invocations and jobs for about ``invocations`` invocations in all."""
    jobs_total = estimate_jobs(scenario, invocations)
    mix_d: dict[str, float] = {str(k): v for k, v in scenario.traffic.mix.items()}
    mix = np.array([mix_d.get(t, 0.0) for t in JOB_TYPES], dtype=float)
    mix = mix / mix.sum()
    n_report = round(jobs_total * mix[_REPORT])
    n_other = max(0, jobs_total - n_report)
    tenants, pop_cum = _tenants(scenario, rng)
    req_ts, req_k, req_type, req_tenant = _requests(scenario, rng, mix, n_other, pop_cum)
    cron_ts, cron_k = _cron_ticks(scenario, rng, n_report)
    n_req, n_cron = len(req_ts), len(cron_ts)
    p_ts = np.concatenate([req_ts, cron_ts]).astype(np.int64)
    p_trigger = np.concatenate([np.ones(n_req, np.int8), np.full(n_cron, 2, np.int8)])
    p_count = np.concatenate([req_k, cron_k]).astype(np.int64)
    p_type = np.concatenate([req_type, np.full(n_cron, _REPORT)]).astype(np.int8)
    p_tenant = np.concatenate([req_tenant, np.full(n_cron, -1)]).astype(np.int32)

    p_of_job = np.repeat(np.arange(len(p_ts)), p_count)
    n_jobs = len(p_of_job)
    within = np.arange(n_jobs) - np.repeat(np.cumsum(p_count) - p_count, p_count)
    job_ts = p_ts[p_of_job] + 2 + within * 3 + rng.integers(0, 3, n_jobs)
    job_type = p_type[p_of_job].astype(np.int8)
    ten = p_tenant[p_of_job].copy()
    cron_jobs = ten < 0
    ten[cron_jobs] = pick_cum(pop_cum, rng.random(int(cron_jobs.sum())))
    msg_ids = hex_ids(rng, n_jobs, 32)
    ids = job_ids(rng, n_jobs, job_ts)
    job_cause, poison = _production_causes(scenario, rng, job_type, job_ts)
    return Production(
        tenants=tenants,
        p_ts=p_ts,
        p_trigger=p_trigger,
        p_count=p_count,
        p_type=p_type,
        p_tenant=p_tenant,
        job_ts=job_ts,
        job_type=job_type,
        job_tenant=ten.astype(np.int32),
        job_p=p_of_job,
        msg_ids=msg_ids,
        job_ids=ids,
        job_cause=job_cause,
        poison=poison,
    )


def _tenants(scenario: Scenario, rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    """Tenant names and their cumulative (Zipf-like) popularity."""
    n_ten = scenario.traffic.tenants
    tenant_ids = sorted({int(v) for v in rng.choice(np.arange(1000, 9999), n_ten, replace=False)})
    tenants = [f"t_{v}" for v in tenant_ids]
    pop = 1.0 / np.arange(1, len(tenants) + 1) ** 1.1
    return tenants, np.cumsum(pop / pop.sum())


def _requests(
    scenario: Scenario, rng: np.random.Generator, mix: np.ndarray, n_jobs: int, pop_cum: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """HTTP requests ``(ts, jobs, type, tenant)``: each enqueues k jobs of one type for one tenant."""
    other_mix = mix.copy()
    other_mix[_REPORT] = 0.0
    other_cum = np.cumsum(other_mix / max(other_mix.sum(), 1e-12))
    jpr = scenario.traffic.jobs_per_request
    n_req = max(1, round(n_jobs / jpr)) if n_jobs else 0
    t0, t1 = scenario.start_ms, scenario.end_ms
    req_ts = np.sort(rng.integers(t0, t1, n_req)) if n_req else np.zeros(0, dtype=np.int64)
    req_k = 1 + rng.poisson(jpr - 1, n_req)
    req_type = pick_cum(other_cum, rng.random(n_req))
    req_tenant = pick_cum(pop_cum, rng.random(n_req))
    return req_ts, req_k, req_type, req_tenant


def _cron_ticks(scenario: Scenario, rng: np.random.Generator, n_report: int) -> tuple[np.ndarray, np.ndarray]:
    """Cron ticks ``(ts, jobs)``: the REPORT_GENERATION jobs are spread over every tick."""
    t0, t1 = scenario.start_ms, scenario.end_ms
    period = scenario.traffic.report_cron_minutes * 60_000
    first_tick = -(-t0 // period) * period
    cron_ts = np.arange(first_tick, t1, period, dtype=np.int64)
    cron_ts = cron_ts + rng.integers(5, 900, len(cron_ts))
    cron_k = (
        rng.multinomial(n_report, np.full(len(cron_ts), 1.0 / len(cron_ts)))
        if len(cron_ts)
        else np.zeros(0, dtype=np.int64)
    )
    return cron_ts, cron_k


def _production_causes(
    scenario: Scenario, rng: np.random.Generator, job_type: np.ndarray, job_ts: np.ndarray
) -> tuple[np.ndarray, dict[int, tuple[str, str]]]:
    """Root causes fixed when the job is produced: poison payloads and heavy jobs."""
    n_jobs = len(job_ts)
    job_cause = np.full(n_jobs, -1, dtype=np.int32)
    poison: dict[int, tuple[str, str]] = {}
    for k, inc in enumerate(scenario.incidents):
        if inc.kind not in ("poison_payload", "cpu_limits"):
            continue
        a, b = scenario.incident_window(inc)
        m = (
            (job_type == JOB_TYPES.index(inc.job_type))
            & (job_ts >= a)
            & (job_ts < b)
            & (rng.random(n_jobs) < inc.rate)
            & (job_cause < 0)
        )
        job_cause[m] = k
        if inc.kind == "poison_payload":
            vals = rng.integers(0, len(inc.bad_values), int(m.sum()))
            for j, v in zip(np.flatnonzero(m).tolist(), vals.tolist(), strict=True):
                poison[j] = (inc.field or "", inc.bad_values[v])
    return job_cause, poison
