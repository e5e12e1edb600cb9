"""The consumer Worker, simulated against a live sandbox: pull, process, ack, log.

The demo replays dead-lettered jobs into the work queue; something has to consume them before
``replay verify`` can say anything. :func:`consume` plays the consumer Worker *as deployed at the
processing time* (after the revert, that is the fixed version): it pulls the work queue through the
Queues REST API (the queue needs an ``http_pull`` consumer, see :func:`use_http_pull`), decides
each job with :class:`JobModel` (the scenario's incidents: a bad deploy fails its job type while
its version is live, an outage while it lasts, a poison payload always), and settles every message
like ``processing-architecture.md``: ack on success, retry with backoff on a transient error (the
queue's ``max_retries`` moves exhausted ones to the DLQ), ``{original, error}`` to the DLQ then ack
on a permanent one. It writes what the real Worker would have logged: one ``cf-worker-event``
invocation event per batch and one structured ``cf-worker`` line per job following the logging
convention of :mod:`edgeinvestigate.models.frames` (``event``, ``jobId``, ``type``, ``attempt``,
``messageId``, ``error``, plus ``replayId`` from ``metadata.replay.id``). :func:`publish_events`
loads them into the sandbox (admin telemetry endpoint), where ``collect --workers-logs`` finds them.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import msgspec
import numpy as np

from edgeinvestigate.cloudflare.client import CloudflareClient
from edgeinvestigate.errors import SandboxError
from edgeinvestigate.simulator._scenario import Deployment, IncidentSpec, Scenario
from edgeinvestigate.simulator._values import Template, ulids
from edgeinvestigate.sources.api.dlq_body import decode_body

__all__ = [
    "FLAKY_URL",
    "ConsumerRun",
    "JobModel",
    "JobOutcome",
    "QueueConsumer",
    "consume",
    "publish_events",
    "use_http_pull",
]

Event = Literal["job.completed", "job.retry", "job.exhausted", "job.dead_lettered"]
#: the dependency that fails the share ``JobModel(failure_rate=...)`` of deliveries
FLAKY_URL = "https://deps.internal.example.com/v1/jobs"


def _now_ms() -> int:
    return int(time.time() * 1000)


def _draw(*parts: str) -> float:
    """A deterministic uniform draw in [0, 1) from ``parts`` (same job, same answer on any machine)."""
    digest = hashlib.sha256("\x00".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class Failure:
    error: str
    transient: bool
    incident: str


class JobModel:
    """Whether a job succeeds when the consumer processes it at ``at_ms``, from a scenario.

    - ``bad_deploy``: fails (permanently) with the incident's ``rate`` while its version is live;
      after the next deployment (the revert) the job type works again. With ``version_id`` (the version
      the sandbox's deployments API says is live: a rollback counts) it fails exactly while that
      version is the incident's;
    - ``dependency_outage``: fails (transiently) with ``rate`` inside ``[start, end)``;
    - ``poison_payload``: fails (permanently) whenever the payload's ``field`` holds a bad value;
    - ``cpu_limits``: fails (transiently) with ``rate`` inside ``[start, end)``;
    - ``failure_rate``: besides, a share of every delivery fails transiently (a flaky dependency, to
      practise retries, ``max_retries`` and the DLQ).

    Draws are deterministic per (incident, job id, attempt).
    """

    def __init__(
        self, scenario: Scenario, *, failure_rate: float = 0.0, version_id: str | None = None
    ) -> None:
        if not 0 <= failure_rate <= 1:
            raise ValueError(f"failure_rate must be between 0 and 1, got {failure_rate}")
        self.scenario = scenario
        self.failure_rate = failure_rate
        self.version_id = version_id
        self._deploys = sorted(
            zip(scenario.deployment_ms(), scenario.deployments, strict=True), key=lambda d: d[0]
        )
        self._by_id = {self._id_of(dep): dep for dep in scenario.deployments}

    def _id_of(self, dep: Deployment) -> str:
        return dep.version_id or str(
            uuid.uuid5(uuid.NAMESPACE_URL, f"edgeinvestigate:{self.scenario.name}:{dep.tag}")
        )

    def knows(self, version_id: str) -> bool:
        """Whether ``version_id`` is a version of the scenario's consumer."""
        return version_id in self._by_id

    def live_version(self, at_ms: int) -> tuple[str, str, str]:
        """``(version id, tag, message)`` of the consumer version live at ``at_ms`` (``version_id``
        when given: a version the scenario does not know keeps its id as its tag)."""
        if self.version_id is not None:
            known = self._by_id.get(self.version_id)
            return (
                self.version_id,
                known.tag if known else self.version_id[:8],
                known.message if known else "",
            )
        live = [d for t, d in self._deploys if t <= at_ms] or [self._deploys[0][1]]
        dep = live[-1]
        return self._id_of(dep), dep.tag, dep.message

    def _active(self, inc: IncidentSpec, job: Mapping[str, Any], at_ms: int) -> bool:
        payload = job.get("payload") if isinstance(job.get("payload"), Mapping) else {}
        if inc.kind == "poison_payload":
            value = payload.get(inc.field or "") if isinstance(payload, Mapping) else None
            return str(value) in inc.bad_values
        if inc.kind == "bad_deploy" and self.version_id is not None:
            live = self._by_id.get(self.version_id)
            return live is not None and live.tag == inc.deployment
        start, end = self.scenario.incident_window(inc)
        return start <= at_ms < end

    def failure(
        self, job: Mapping[str, Any], at_ms: int, *, attempt: int = 1, key: str = ""
    ) -> Failure | None:
        """The failure of ``job`` (a ``QueueMessage`` ``{type, payload, metadata}``) at ``at_ms``;
        ``key`` (the message id) seeds the draws of a job without a ``jobId``."""
        job_type = job.get("type")
        payload = job.get("payload")
        job_id = str(payload.get("jobId", "")) if isinstance(payload, Mapping) else ""
        job_id = job_id or key
        for inc in self.scenario.incidents:
            if inc.job_type != job_type or not self._active(inc, job, at_ms):
                continue
            if inc.kind != "poison_payload" and _draw(inc.id, job_id, str(attempt)) >= inc.rate:
                continue
            spec = inc.errors[int(_draw("error", inc.id, job_id) * len(inc.errors))]
            seed = int(_draw("fields", inc.id, job_id, str(attempt)) * 2**32)
            text = Template(inc.id, spec.template).render(np.random.default_rng(seed), 1)[0]
            message = text if spec.name == "Error" else f"{spec.name}: {text}"
            return Failure(message, inc.is_transient, inc.id)
        if self.failure_rate and _draw("failure-rate", job_id, str(attempt)) < self.failure_rate:
            return Failure(
                f"fetch to {FLAKY_URL} failed: 503 Service Unavailable (attempt {attempt})",
                True,
                "failure-rate",
            )
        return None


@dataclass(frozen=True)
class JobOutcome:
    """What the consumer did with one delivered message."""

    message_id: str
    event: Event
    attempt: int
    job_id: str | None = None
    job_type: str | None = None
    replay_id: str | None = None
    error: str | None = None


@dataclass
class ConsumerRun:
    """The outcomes, the Workers Logs events the consumer wrote, and how many batches it took."""

    outcomes: list[JobOutcome] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    batches: int = 0

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.outcomes:
            out[o.event] = out.get(o.event, 0) + 1
        return out


class _Logs:
    """Builds Workers Logs query-API events shaped like the simulator's (``_write_workers_logs``)."""

    def __init__(self, account_id: str, script: str, version: tuple[str, str, str], seed: int) -> None:
        self.account_id = account_id
        self.script = script
        self.version = {"id": version[0], "tag": version[1], "message": version[2]}
        self.rng = np.random.default_rng([seed, 0xC0C5])
        self.events: list[dict[str, Any]] = []

    def _id(self, ts: int) -> str:
        return ulids(self.rng, 1, np.array([ts], dtype=np.int64))[0]

    def invocation(self, queue: str, ts: int, lines: list[tuple[int, str, dict[str, Any]]]) -> None:
        request_id = self.rng.bytes(16).hex()
        end = max([ts, *(t for t, _, _ in lines)]) + 1
        workers = {
            "scriptName": self.script,
            "eventType": "queue",
            "requestId": request_id,
            "outcome": "ok",
            "scriptVersion": self.version,
            "executionModel": "stateless",
            "truncated": False,
        }
        n = sum(1 for _, _, src in lines if src.get("event") != "batch.received")
        meta = {
            "requestId": request_id,
            "trigger": queue,
            "service": self.script,
            "type": "cf-worker",
            "origin": "queue",
            "account": self.account_id,
        }
        self.events.append(
            {
                "dataset": "cloudflare-workers",
                "timestamp": ts,
                "source": {},
                "$metadata": meta
                | {
                    "id": self._id(ts),
                    "type": "cf-worker-event",
                    "level": "info",
                    "message": f"Queue {queue} ({n} message{'s' if n != 1 else ''})",
                    "startTime": ts,
                    "endTime": end,
                    "duration": end - ts,
                    "cloudService": "workers",
                    "provider": "cloudflare",
                },
                "$workers": workers
                | {
                    "wallTimeMs": end - ts,
                    "cpuTimeMs": max(1, n),
                    "event": {"queue": queue, "batchSize": n},
                    "diagnosticsChannelEvents": [],
                },
            }
        )
        for t, level, src in lines:
            text = _compact(src)
            line_meta = meta | {"id": self._id(t), "level": level, "message": text}
            if isinstance(src.get("error"), str):
                line_meta["error"] = src["error"]
            self.events.append(
                {
                    "dataset": "cloudflare-workers",
                    "timestamp": t,
                    "source": src,
                    "$metadata": line_meta,
                    "$workers": workers,
                }
            )


def _compact(obj: Any) -> str:
    return msgspec.json.encode(obj).decode()


def _job(message: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The ``QueueMessage`` of a pulled message, or ``(None, why not)``."""
    meta = message.get("metadata") if isinstance(message.get("metadata"), Mapping) else {}
    ctype = meta.get("CF-Content-Type") if isinstance(meta, Mapping) else None
    decoded = decode_body(message.get("body"), ctype if isinstance(ctype, str) else None)
    if decoded.decode_error:
        return None, f"unreadable body: {decoded.decode_error}"
    value = decoded.value
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        return None, "not a job: the body has no 'type' (expected {type, payload, metadata})"
    return value, None


def _replay_id(job: Mapping[str, Any] | None) -> str | None:
    meta = job.get("metadata") if job else None
    block = meta.get("replay") if isinstance(meta, Mapping) else None
    rid = block.get("id") if isinstance(block, Mapping) else None
    return str(rid) if rid else None


def _backoff(scenario: Scenario, attempt: int) -> int:
    s = scenario.system
    return int(min(s.backoff_base_s * s.backoff_factor ** max(attempt - 1, 0), s.backoff_max_s))


@dataclass
class QueueConsumer:
    """The consumer Worker of one queue: its settings, the job model, the logs it writes.

    :meth:`handle` processes and settles one pulled batch like the Worker's ``queue()`` handler: ack on
    success, retry (with ``retry_delay`` seconds, or the scenario's backoff) on a transient error,
    ``{original, error}`` to the DLQ then ack on a permanent one.
    """

    client: CloudflareClient
    queue: str
    qid: str
    model: JobModel
    max_retries: int
    dlq: str | None
    dlq_id: str | None
    logs: _Logs
    retry_delay: int | None = None

    @classmethod
    def open(
        cls,
        client: CloudflareClient,
        queue: str,
        model: JobModel,
        *,
        script: str | None = None,
        dlq: str | None = None,
        max_retries: int | None = None,
        retry_delay: int | None = None,
        now_ms: int | None = None,
        seed: int = 0,
    ) -> QueueConsumer:
        """``dlq`` and ``max_retries`` default to the queue's consumer settings (``dead_letter_queue``,
        ``max_retries``); ``now_ms`` picks the version whose logs these are (default: now)."""
        s = model.scenario.system
        qid = client.queue_id(queue)
        consumers = client.list_consumers(qid)
        settings = consumers[0].get("settings", {}) if consumers else {}
        if dlq is None:
            dlq = str(consumers[0].get("dead_letter_queue") or "") if consumers else s.dlq
        if max_retries is None:
            max_retries = int(settings.get("max_retries", s.max_retries))
        dlq_id = client.queue_id(dlq) if dlq else None
        version = model.live_version(_now_ms() if now_ms is None else now_ms)
        logs = _Logs(client.account_id, script or s.consumer_script, version, seed)
        return cls(client, queue, qid, model, max_retries, dlq, dlq_id, logs, retry_delay)

    def delay(self, attempt: int) -> int:
        return self.retry_delay if self.retry_delay is not None else _backoff(self.model.scenario, attempt)

    def handle(self, messages: list[Mapping[str, Any]], t0: int) -> list[JobOutcome]:
        """Process and settle one pulled batch at ``t0`` (epoch ms); its logs go to :attr:`logs`."""
        lines: list[tuple[int, str, dict[str, Any]]] = [
            (t0, "log", {"event": "batch.received", "queue": self.queue, "size": len(messages)})
        ]
        acks: list[str] = []
        retries: list[dict[str, Any]] = []
        outcomes = []
        for k, msg in enumerate(messages):
            outcome, level, settle = _process(
                self.client, msg, self.model, t0, self.max_retries, self.dlq, self.dlq_id
            )
            outcomes.append(outcome)
            delay = self.delay(outcome.attempt)
            if settle == "ack":
                acks.append(str(msg["lease_id"]))
            else:
                retries.append({"lease_id": str(msg["lease_id"]), "delay_seconds": delay})
            lines.append((t0 + 2 + k, level, _log_line(outcome, delay, self.max_retries, self.dlq)))
        self.client.ack(self.qid, acks=acks, retries=retries)
        self.logs.invocation(self.queue, t0, lines)
        return outcomes

    def take_events(self) -> list[dict[str, Any]]:
        """The Workers Logs events written since the last call."""
        events, self.logs.events = self.logs.events, []
        return events


def consume(
    client: CloudflareClient,
    queue: str,
    model: JobModel,
    *,
    script: str | None = None,
    dlq: str | None = None,
    max_retries: int | None = None,
    batch_size: int = 100,
    visibility_timeout_ms: int = 60_000,
    max_batches: int = 1000,
    now: Callable[[], int] = _now_ms,
    seed: int = 0,
) -> ConsumerRun:
    """Pull ``queue`` until it is empty, process and settle every message; return what happened.

    ``dlq`` and ``max_retries`` default to the queue's consumer settings (``dead_letter_queue``,
    ``max_retries``). ``now`` gives the processing time in epoch ms (the job model's clock).
    """
    worker = QueueConsumer.open(
        client, queue, model, script=script, dlq=dlq, max_retries=max_retries, now_ms=now(), seed=seed
    )
    run = ConsumerRun()
    for _ in range(max_batches):
        pulled = client.pull(worker.qid, batch_size=batch_size, visibility_timeout_ms=visibility_timeout_ms)
        messages = pulled.get("messages") or []
        if not messages:
            break
        run.batches += 1
        run.outcomes.extend(worker.handle(messages, now()))
    else:
        raise SandboxError(
            f"the consumer of {queue!r} still found messages after {max_batches} batches",
            hint="raise max_batches, or check that retried messages are delayed",
        )
    run.events = worker.take_events()
    return run


def _log_line(outcome: JobOutcome, delay: int, max_retries: int, dlq: str | None) -> dict[str, Any]:
    """The structured ``console.log`` object the Worker writes for one job (the logging convention)."""
    src: dict[str, Any] = {"event": outcome.event}
    if outcome.job_id is not None:
        src["jobId"] = outcome.job_id
    src |= {"type": outcome.job_type, "attempt": outcome.attempt, "messageId": outcome.message_id}
    if outcome.replay_id:
        src["replayId"] = outcome.replay_id
    if outcome.error is not None:
        src["error"] = outcome.error
    if outcome.event == "job.retry":
        src["delaySeconds"] = delay
    elif outcome.event == "job.exhausted":
        src["maxRetries"] = max_retries
    elif outcome.event == "job.dead_lettered":
        src["dlq"] = dlq
    return src


def _process(
    client: CloudflareClient,
    msg: Mapping[str, Any],
    model: JobModel,
    at_ms: int,
    max_retries: int,
    dlq: str | None,
    dlq_id: str | None,
) -> tuple[JobOutcome, str, Literal["ack", "retry"]]:
    """Decide one message: ``(outcome, log level, ack or retry)``. A permanent failure is sent to
    the DLQ as ``{original, error}`` before its ack (like the Worker: send, then ``message.ack()``)."""
    mid = str(msg.get("id"))
    attempt = int(msg.get("attempts") or 1)
    job, unreadable = _job(msg)
    payload = job.get("payload") if job else None
    job_id = payload.get("jobId") if isinstance(payload, Mapping) else None
    common: dict[str, Any] = {
        "message_id": mid,
        "attempt": attempt,
        "job_id": str(job_id) if job_id is not None else None,
        "job_type": str(job["type"]) if job else None,
        "replay_id": _replay_id(job),
    }
    if job is None:
        failure: Failure | None = Failure(f"message {mid}: {unreadable}", False, "unreadable")
    else:
        failure = model.failure(job, at_ms, attempt=attempt, key=mid)
    if failure is None:
        return JobOutcome(event="job.completed", **common), "log", "ack"
    if failure.transient:
        if attempt > max_retries:
            return JobOutcome(event="job.exhausted", error=failure.error, **common), "error", "retry"
        return JobOutcome(event="job.retry", error=failure.error, **common), "warn", "retry"
    if dlq_id is None:
        # no DLQ configured: retrying until max_retries deletes it, like the runtime
        return JobOutcome(event="job.exhausted", error=failure.error, **common), "error", "retry"
    original = {
        "id": mid,
        "timestamp": msg.get("timestamp_ms"),
        "body": job if job is not None else msg.get("body"),
        "attempts": attempt,
    }
    client.push(dlq_id, {"original": original, "error": failure.error})
    return JobOutcome(event="job.dead_lettered", error=failure.error, **common), "error", "ack"


def use_http_pull(
    admin: httpx.Client,
    account_id: str,
    queue: str,
    *,
    consumer: Mapping[str, Any] | None = None,
    visibility_timeout_ms: int = 60_000,
) -> dict[str, Any]:
    """Give ``queue`` an ``http_pull`` consumer in the sandbox (admin API), keeping its
    ``max_retries``, ``dead_letter_queue`` and ``retry_delay`` (from ``consumer``, the queue's
    current consumer as the API lists it). Returns the queue object."""
    old = dict(consumer or {})
    settings = old.get("settings") if isinstance(old.get("settings"), Mapping) else {}
    spec: dict[str, Any] = {"type": "http_pull", "visibility_timeout_ms": visibility_timeout_ms}
    if old.get("dead_letter_queue"):
        spec["dead_letter_queue"] = old["dead_letter_queue"]
    for key in ("max_retries", "retry_delay", "batch_size"):
        if isinstance(settings, Mapping) and settings.get(key) is not None:
            spec[key] = settings[key]
    return _admin_post(
        admin, f"/__admin/accounts/{account_id}/queues", {"queue_name": queue, "consumer": spec}
    )


def publish_events(
    admin: httpx.Client, account_id: str, events: Iterable[dict[str, Any]], *, chunk: int = 1000
) -> int:
    """Load Workers Logs events into the sandbox (admin telemetry endpoint); returns how many."""
    batch: list[dict[str, Any]] = []
    loaded = 0
    for ev in [*events, None]:
        if ev is not None:
            batch.append(ev)
        if batch and (ev is None or len(batch) >= chunk):
            res = _admin_post(admin, f"/__admin/accounts/{account_id}/telemetry/events", {"events": batch})
            loaded += int(res.get("loaded", len(batch)))
            batch = []
    return loaded


def _admin_post(admin: httpx.Client, path: str, body: Any) -> dict[str, Any]:
    try:
        r = admin.post(path, json=body)
    except httpx.HTTPError as exc:
        raise SandboxError(
            f"cannot reach the sandbox admin API at {admin.base_url}{path}: {type(exc).__name__}",
            hint="is `edgeinvestigate sandbox serve` still running?",
        ) from None
    if r.status_code >= 400:
        raise SandboxError(
            f"the sandbox rejected POST {path} with {r.status_code}: {r.text[:300]}",
            hint="see the sandbox log",
        )
    result = r.json().get("result")
    return result if isinstance(result, dict) else {}
