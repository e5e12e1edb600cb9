"""``edgeinvestigate sandbox consume QUEUE``: the consumer Worker the sandbox does not run, run by hand.

The sandbox serves Cloudflare's APIs but runs no Worker, so nothing consumes a work queue there: a
replay stays on it and ``replay verify`` says "not seen yet". :func:`run_consumer` plays the consumer
Worker against a running sandbox through the Queues REST API (:class:`~._consumer.QueueConsumer`, the
demo's fixed consumer) until it stops:

- it runs the version the sandbox's deployments API says is live for the script (re-read every few
  seconds, so a rollback there takes effect); a script without deployments runs the scenario's version of
  the current time;
- jobs fail as the scenario's incidents say for that version and time (a poison payload always, a patched
  one not), and ``failure_rate`` of all deliveries fail transiently besides (a flaky dependency);
- it settles like the Worker: ack, retry after ``retry_delay`` seconds (default: the queue consumer's own
  ``retry_delay``), ``{original, error}`` to the DLQ; the queue's ``max_retries`` and dead letter queue
  apply (change them with ``PUT .../consumers/{id}``, read again at every start);
- after every batch its Workers Logs go into the sandbox (admin telemetry endpoint), so ``collect
  --workers-logs SCRIPT`` sees them while it runs;
- it stops when the queue is empty (``until_empty``: every message settled, delayed retries waited for),
  after ``duration`` seconds, or when messages remain but none became visible for ``idle_timeout`` seconds
  (delivery paused, long delays).

A queue with a Worker consumer is switched to an ``http_pull`` consumer first (admin API), keeping its
``max_retries``, ``retry_delay``, ``batch_size`` and dead letter queue: pulling needs one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from edgeinvestigate.cloudflare.client import CloudflareClient
from edgeinvestigate.errors import ConfigError, NotFoundError, SandboxError
from edgeinvestigate.lab._consumer import JobModel, QueueConsumer, publish_events, use_http_pull
from edgeinvestigate.simulator import Scenario, list_scenarios, load_scenario

__all__ = ["ConsumeOptions", "ConsumeResult", "check_sandbox", "run_consumer"]

Stop = Literal["empty", "duration", "idle"]
_VERSION_EVERY_S = 5.0


@dataclass(frozen=True)
class ConsumeOptions:
    """How :func:`run_consumer` consumes (see the module docstring)."""

    queue: str
    scenario: str | None = None
    script: str | None = None
    failure_rate: float = 0.0
    duration: float | None = None
    until_empty: bool = True
    batch_size: int | None = None
    retry_delay: int | None = None
    visibility_timeout_ms: int = 60_000
    idle_timeout: float = 60.0
    poll: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.failure_rate <= 1:
            raise ConfigError(
                f"--failure-rate {self.failure_rate} is not a share",
                hint="give a number from 0 to 1, e.g. 0.2",
            )
        if self.duration is None and not self.until_empty:
            raise ConfigError(
                "--keep-running needs --duration SECONDS (or it would never stop)",
                hint="add --duration 60, or drop --keep-running to stop once the queue is empty",
            )
        if self.batch_size is not None and not 1 <= self.batch_size <= 100:
            raise ConfigError(f"--batch-size {self.batch_size} is out of range", hint="use 1 to 100")


@dataclass
class ConsumeResult:
    """What a consumer run did."""

    queue: str
    script: str
    version: tuple[str, str, str]
    version_source: str
    max_retries: int
    dlq: str | None
    batches: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    events: int = 0
    stopped: Stop = "empty"
    left: int = 0

    @property
    def messages(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        counts = ", ".join(f"{n} {event}" for event, n in sorted(self.counts.items())) or "nothing"
        why = {
            "empty": "the queue is empty",
            "duration": "the duration is over",
            "idle": f"{self.left} message(s) left but none became visible (delivery paused? long delays?)",
        }[self.stopped]
        return (
            f"consumed {self.messages} deliveries from {self.queue!r} in {self.batches} batches as "
            f"{self.script} {self.version[1]} ({self.version_source}): {counts}; {self.events} Workers Logs "
            f"events written; stopped: {why}"
        )


def check_sandbox(admin: httpx.Client) -> None:
    """Refuse anything but a sandbox: consuming pulls (and so deletes or dead-letters) real messages."""
    try:
        r = admin.get("/__admin/faults")
    except httpx.HTTPError as exc:
        raise SandboxError(
            f"cannot reach the sandbox at {admin.base_url}: {type(exc).__name__}",
            hint="start it with `edgeinvestigate sandbox serve` and export CLOUDFLARE_API_BASE_URL=<its URL>",
        ) from None
    if r.status_code in (401, 403):
        raise SandboxError(
            f"the sandbox at {admin.base_url} refused the token ({r.status_code})",
            hint="export CLOUDFLARE_API_TOKEN=<the token the sandbox was started with>",
        )
    if r.status_code != 200:
        raise SandboxError(
            f"{admin.base_url} is not an edgeinvestigate sandbox "
            f"(GET /__admin/faults answered {r.status_code})",
            hint="`sandbox consume` only drives the local sandbox: point CLOUDFLARE_API_BASE_URL at it",
        )


def _live_version(client: CloudflareClient, script: str) -> str | None:
    """The version serving most traffic in the script's newest deployment (``None``: no deployments)."""
    try:
        deployments = client.list_deployments(script)
    except NotFoundError:
        return None
    versions = deployments[0].get("versions") if deployments else None
    if not isinstance(versions, list) or not versions:
        return None
    best = max(versions, key=lambda v: float(v.get("percentage") or 0) if isinstance(v, Mapping) else 0.0)
    return str(best.get("version_id")) if isinstance(best, Mapping) else None


def _scenario(name: str | None, version_id: str | None) -> tuple[Scenario, str]:
    """The job system of the run: ``name``, else the shipped scenario one of whose consumer versions is
    live (what ``simulate --sandbox`` loaded), else ``default``. Returns (scenario, how it was chosen)."""
    if name is not None:
        return load_scenario(name), "--scenario"
    if version_id is not None:
        for shipped in list_scenarios():
            scenario = load_scenario(shipped)
            if JobModel(scenario).knows(version_id):
                return scenario, "its version is live"
    return load_scenario("default"), "no scenario has the live version; pass --scenario"


def _worker(
    client: CloudflareClient, admin: httpx.Client, opts: ConsumeOptions, echo: Callable[[str], None]
) -> tuple[QueueConsumer, int, dict[str, Any]]:
    """The queue's consumer Worker, ready to pull: (worker, batch size, the pull consumer's settings)."""
    qid = client.queue_id(opts.queue)
    consumers = client.list_consumers(qid)
    current = consumers[0] if consumers else None
    script = opts.script or str((current or {}).get("script_name") or "jobs-consumer")
    live = _live_version(client, script)
    scenario, chosen = _scenario(opts.scenario, live)
    echo(f"job model: scenario {scenario.name!r} ({chosen})")
    if current is None or current.get("type") != "http_pull":
        kind = current.get("type") if current else "no"
        use_http_pull(
            admin,
            client.account_id,
            opts.queue,
            consumer=current,
            visibility_timeout_ms=opts.visibility_timeout_ms,
        )
        echo(
            f"{opts.queue!r} had {kind} consumer: it has an http_pull consumer now (same max_retries and DLQ)"
        )
        consumers = client.list_consumers(qid)
    settings = consumers[0].get("settings", {}) if consumers else {}
    retry_delay = opts.retry_delay if opts.retry_delay is not None else int(settings.get("retry_delay") or 0)
    model = JobModel(scenario, failure_rate=opts.failure_rate, version_id=live)
    worker = QueueConsumer.open(
        client, opts.queue, model, script=script, retry_delay=retry_delay, seed=opts.seed
    )
    batch = opts.batch_size or int(settings.get("batch_size") or 10)
    return worker, batch, settings


def _refresh_version(worker: QueueConsumer, client: CloudflareClient) -> None:
    """Run the version that is live now (a rollback may have happened since the last look)."""
    vid = _live_version(client, worker.logs.script)
    if vid is not None and vid != worker.model.version_id:
        worker.model.version_id = vid
        ident, tag, message = worker.model.live_version(int(time.time() * 1000))
        worker.logs.version = {"id": ident, "tag": tag, "message": message}


def run_consumer(
    client: CloudflareClient,
    admin: httpx.Client,
    opts: ConsumeOptions,
    *,
    echo: Callable[[str], None] = lambda _line: None,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ConsumeResult:
    """Consume ``opts.queue`` of the sandbox until a stop (see the module docstring)."""
    check_sandbox(admin)
    worker, batch_size, _settings = _worker(client, admin, opts, echo)
    result = ConsumeResult(
        queue=opts.queue,
        script=worker.logs.script,
        version=worker.model.live_version(int(time.time() * 1000)),
        version_source="live per the deployments API" if worker.model.version_id else "the scenario's",
        max_retries=worker.max_retries,
        dlq=worker.dlq,
    )
    echo(
        f"consuming {opts.queue!r} as {result.script} {result.version[1]} ({result.version_source}); "
        f"max_retries {worker.max_retries}, dead letter queue {worker.dlq or '(none)'}, "
        f"failure rate {opts.failure_rate:g}"
    )
    started = last_seen = last_version = monotonic()
    while True:
        now = monotonic()
        if opts.duration is not None and now - started >= opts.duration:
            result.stopped = "duration"
            break
        if now - last_version >= _VERSION_EVERY_S:
            _refresh_version(worker, client)
            last_version = now
        pulled = client.pull(
            worker.qid, batch_size=batch_size, visibility_timeout_ms=opts.visibility_timeout_ms
        )
        messages = pulled.get("messages") or []
        result.left = int(pulled.get("message_backlog_count") or 0)
        if messages:
            last_seen = now
            result.batches += 1
            for outcome in worker.handle(messages, int(time.time() * 1000)):
                result.counts[outcome.event] = result.counts.get(outcome.event, 0) + 1
            result.events += publish_events(admin, client.account_id, worker.take_events())
            continue
        if opts.until_empty and result.left == 0:
            result.stopped = "empty"
            break
        if opts.until_empty and opts.duration is None and now - last_seen >= opts.idle_timeout:
            result.stopped = "idle"
            break
        sleep(opts.poll)
    result.left = int(client.metrics(worker.qid).get("backlog_count") or 0)
    return result
