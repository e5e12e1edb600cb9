"""The simulation engine: producer, queue, consumer batches, retries, DLQ, over a time window.

The system is the one of ``processing-architecture.md``:

- a producer Worker (``jobs-api``) enqueues ``QueueMessage {type, payload, metadata}`` jobs on the
  immediate queue from HTTP requests (``POST /v1/jobs``) and, for reports, from a cron trigger
  (:mod:`._production`);
- a consumer Worker (``jobs-consumer``) receives batches (``batch_size`` at most, cut every
  ``batch_timeout_s``), processes messages one after the other, ``ack()``s successes,
  ``retry({delaySeconds})``s transient errors with exponential backoff, sends permanent errors to the
  DLQ as ``{original, error}`` then acks; the runtime moves a message whose attempts exceed
  ``max_retries`` to the DLQ unchanged (raw body, same id and timestamp) (:mod:`._deliveries`);
- an invocation killed by a limit (``exceededCpu``/``exceededWallTime``) leaves every message after
  the killer unprocessed and unacked: the runtime retries them all.

The simulation is time-stepped by batch window (vectorised with numpy inside a window, so a million
invocations take seconds). Then the invocations are merged in time order (:mod:`._timeline`), and
the texts are rendered, one template at a time: errors, log lines (:mod:`._logs`), exceptions
(:mod:`._exceptions`), the DLQ (:mod:`._dead_letters`). Every step draws from one random stream in a
fixed order, so a seed gives the same bytes.
"""

from __future__ import annotations

import hashlib
import uuid

import numpy as np

from edgeinvestigate.simulator._dead_letters import add_dead_letters
from edgeinvestigate.simulator._deliveries import Deliveries, consume
from edgeinvestigate.simulator._exceptions import Exceptions, exceptions
from edgeinvestigate.simulator._logs import Logs, log_lines
from edgeinvestigate.simulator._payloads import JobPayloads
from edgeinvestigate.simulator._production import Production, produce
from edgeinvestigate.simulator._scenario import Scenario
from edgeinvestigate.simulator._simulation import KILLED, PERM, RETRY, Simulation, Version
from edgeinvestigate.simulator._templates import Templates
from edgeinvestigate.simulator._texts import Texts, job_payloads
from edgeinvestigate.simulator._timeline import Timeline, timeline

__all__ = ["run"]


def run(scenario: Scenario, seed: int = 0, invocations: int | None = None) -> Simulation:
    """Simulate ``scenario`` with about ``invocations`` invocations (default: the scenario's size)."""
    rng = np.random.default_rng([seed, 0x5EED])
    templates = Templates(scenario)
    jobs = produce(scenario, rng, invocations or scenario.invocations)
    deliveries = consume(scenario, jobs, templates, rng)
    payloads = job_payloads(seed, jobs)
    texts = Texts(templates, jobs, payloads, rng)
    tl = timeline(scenario, jobs, deliveries, templates, rng)
    d = deliveries.d
    d_err_tpl = np.where(np.isin(d["status"], (RETRY, PERM, KILLED)), d["tpl"], -1)
    d_error = texts.render(d_err_tpl, d["job"])
    logs = log_lines(scenario, jobs, deliveries, tl, templates, texts, d_error, rng)
    excs = exceptions(deliveries, tl, templates, texts, d_error)
    sim = _assemble(scenario, seed, templates, jobs, payloads, deliveries, d_error, tl, logs, excs)
    add_dead_letters(sim, deliveries, rng)
    return sim


def _versions(scenario: Scenario) -> tuple[list[Version], Version]:
    """The consumer's deployed versions, and the producer's (deployed 9 days before the window)."""
    s = scenario.system
    versions = [
        Version(
            dep.version_id
            or str(uuid.uuid5(uuid.NAMESPACE_URL, f"edgeinvestigate:{scenario.name}:{dep.tag}")),
            dep.tag,
            dep.message,
            scenario.at_ms(dep.at),
            s.consumer_script,
        )
        for dep in scenario.deployments
    ]
    producer = Version(
        _version_id(scenario, "producer"),
        "p57",
        "api: accept batch job submissions",
        scenario.start_ms - 9 * 86_400_000,
        s.producer_script,
    )
    return versions, producer


def _version_id(scenario: Scenario, tag: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"edgeinvestigate:{scenario.name}:{tag}"))


def _stable_hex(*parts: str, k: int = 32) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:k]


def _assemble(
    scenario: Scenario,
    seed: int,
    templates: Templates,
    jobs: Production,
    payloads: JobPayloads,
    deliveries: Deliveries,
    d_error: list[str | None],
    tl: Timeline,
    logs: Logs,
    excs: Exceptions,
) -> Simulation:
    s, d = scenario.system, deliveries.d
    versions, producer = _versions(scenario)
    return Simulation(
        scenario=scenario,
        seed=seed,
        account_id=s.account_id,
        queue_ids={q: _stable_hex(s.account_id, q) for q in (s.queue, s.retry_queue, s.dlq)},
        versions=versions,
        producer_version=producer,
        templates=templates.info,
        job_type=jobs.job_type,
        job_ts=jobs.job_ts,
        job_tenant=jobs.job_tenant,
        job_ids=jobs.job_ids,
        msg_ids=jobs.msg_ids,
        tenants=jobs.tenants,
        payloads=payloads,
        job_cause=jobs.job_cause,
        d_job=d["job"],
        d_attempt=d["att"],
        d_inv=tl.c_rank[d["inv"]],
        d_status=d["status"],
        d_tpl=d["tpl"],
        d_cause=d["cause"],
        d_start=d["start"],
        d_end=d["end"],
        d_final=d["final"],
        d_error=d_error,
        i_ts=tl.i_ts,
        i_script=tl.i_script,
        i_trigger=tl.i_trigger,
        i_version=tl.i_version,
        i_outcome=tl.i_outcome,
        i_cpu=tl.i_cpu,
        i_wall=tl.i_wall,
        i_batch=tl.i_batch,
        i_status=tl.i_status,
        i_request_id=tl.i_request_id,
        i_colo=tl.i_colo,
        i_client_ip=tl.i_client_ip,
        l_inv=logs.l_inv,
        l_ts=logs.l_ts,
        l_level=logs.l_level,
        l_text=logs.l_text,
        l_error=logs.l_error,
        l_tpl=logs.l_tpl,
        l_job=logs.l_job,
        l_off=logs.l_off,
        x_inv=excs.x_inv,
        x_ts=excs.x_ts,
        x_name=excs.x_name,
        x_message=excs.x_message,
        x_stack=excs.x_stack,
        x_tpl=excs.x_tpl,
        x_off=excs.x_off,
    )
