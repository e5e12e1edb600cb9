"""The dead-letter queue from the API: peek and snapshot into a :class:`DLQCollection`.

The messages become the ``dlq`` frame of :mod:`.dlq_frame` (bodies decoded and envelopes
recognised by :mod:`.dlq_body`); the leases of a snapshot are handled by :mod:`.dlq_leases`.

Two ways to read a DLQ from the API (:func:`load_dlq`):

``peek`` (default)
    Reads up to 100 messages from the head without leasing them: consumes nothing, changes no
    ``attempts``. When the queue's backlog (metrics endpoint) is larger, the result says so and
    points to ``snapshot``.

``snapshot``
    Pulls (leases) every message with a visibility timeout, extends the leases while it reads, then
    releases them (retry with ``delay_seconds: 0``). **The trap**: every pull is a delivery attempt.
    When a released message's ``attempts`` exceeds the DLQ consumer's ``max_retries``, Cloudflare
    dead-letters it again (to the DLQ's own DLQ) or **deletes** it. So before pulling, snapshot reads
    the consumer's ``max_retries``, peeks the head, and refuses (unless ``force=True``) when any
    message would pass the limit. Messages beyond the first 100 cannot be inspected before pulling;
    each is checked as it is pulled, and one found past the limit is saved: its body is pushed back
    onto the queue as a new message and only then is the pulled copy acked (the snapshot reads the
    new copy later; ``requeued`` lists the old ids). A body the REST API cannot send (``v8``,
    ``bytes``) or a failed push keeps its lease for 12 h instead, with a warning that says how to
    raise ``max_retries`` in time. With ``force=True`` nothing is saved: such messages are reported
    and lost (their bodies stay in the frame, so the evidence bundle keeps them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from edgeinvestigate.errors import APIError, ConfigError, ReplayRefusedError
from edgeinvestigate.sources.api.dlq_frame import as_int, dlq_frame
from edgeinvestigate.sources.api.dlq_leases import MAX_VISIBILITY_MS, extend_leases, release_leases, requeue

if TYPE_CHECKING:
    from edgeinvestigate.cloudflare.client import CloudflareClient

__all__ = ["DEFAULT_VISIBILITY_MS", "PEEK_MAX", "SNAPSHOT_HELP", "DLQCollection", "collect_dlq", "load_dlq"]

log = logging.getLogger(__name__)

PEEK_MAX = 100
DEFAULT_VISIBILITY_MS = 300_000  # leases are extended at half of this while a snapshot reads

SNAPSHOT_HELP = (
    "snapshot pulls (leases) every message and then releases it. Each pull is a delivery attempt: "
    "when a released message's attempts exceed the DLQ consumer's max_retries, Cloudflare moves it "
    "to that consumer's own dead-letter queue or DELETES it. snapshot therefore reads max_retries "
    "first and refuses (unless --force) when any message would pass it. peek (the default) consumes "
    "nothing but sees at most 100 messages from the head."
)


@dataclass
class DLQCollection:
    """What :func:`collect_dlq` read, and how complete it is.

    ``complete`` is False when peek saw fewer messages than the backlog; ``warnings`` say so in
    plain words (print them). With ``release=False`` the leases are still held: ``leases`` lists
    them (also in the frame's ``lease_id``) and the caller must ack or release them.
    """

    queue: str
    queue_id: str
    mode: Literal["peek", "snapshot"]
    frame: pd.DataFrame
    backlog_count: int | None = None
    complete: bool = True
    max_retries: int | None = None
    released: int = 0
    leases: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    """ids of messages a snapshot pulled past ``max_retries``: their bodies were pushed back onto the
    queue as new messages (read later in the same snapshot) before the pulled copies were acked"""

    def summary(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "queue_id": self.queue_id,
            "mode": self.mode,
            "messages": len(self.frame),
            "backlog_count": self.backlog_count,
            "complete": self.complete,
            "max_retries": self.max_retries,
            "released": self.released,
            "leases_held": len(self.leases),
            "requeued": list(self.requeued),
            "warnings": list(self.warnings),
        }


def _backlog(client: CloudflareClient, qid: str) -> int | None:
    try:
        m = client.metrics(qid)
    except APIError as exc:
        if exc.status in (401, 403):
            raise
        log.warning("could not read the backlog of queue %s: %s", qid, exc.message)
        return None
    return as_int(m.get("backlog_count"))


def _http_pull_consumer(client: CloudflareClient, qid: str, queue: str) -> Mapping[str, Any]:
    consumers = client.list_consumers(qid)
    pull = [c for c in consumers if isinstance(c, Mapping) and c.get("type") == "http_pull"]
    if not pull:
        kinds = ", ".join(sorted({str(c.get("type")) for c in consumers if isinstance(c, Mapping)})) or "none"
        raise ConfigError(
            f"queue {queue!r} has no HTTP pull consumer (consumers: {kinds}), "
            "so snapshot cannot pull from it",
            hint=f"add one with `wrangler queues consumer http add {queue}`, or use --dlq-mode peek "
            "(reads up to 100 messages, consumes nothing)",
        )
    return pull[0]


def collect_dlq(
    client: CloudflareClient,
    queue: str,
    *,
    mode: Literal["peek", "snapshot"] = "peek",
    force: bool = False,
    batch_size: int = 100,
    visibility_timeout_ms: int = DEFAULT_VISIBILITY_MS,
    release: bool = True,
    limit: int | None = None,
) -> DLQCollection:
    """Read a DLQ into a :class:`DLQCollection` (see the module docstring for the modes)."""
    if mode not in ("peek", "snapshot"):
        raise ConfigError(f"unknown DLQ mode {mode!r}", hint="use --dlq-mode peek or --dlq-mode snapshot")
    qid = client.queue_id(queue)
    backlog = _backlog(client, qid)
    if mode == "peek":
        return _peek(client, queue, qid, backlog, min(batch_size, limit or PEEK_MAX, PEEK_MAX))
    return _snapshot(
        client,
        queue,
        qid,
        backlog,
        force=force,
        batch_size=max(1, min(batch_size, 100)),
        visibility_timeout_ms=visibility_timeout_ms,
        release=release,
        limit=limit,
    )


def load_dlq(
    client: CloudflareClient,
    queue: str,
    mode: Literal["peek", "snapshot"] = "peek",
    force: bool = False,
    *,
    batch_size: int = 100,
    visibility_timeout_ms: int = DEFAULT_VISIBILITY_MS,
    release: bool = True,
    limit: int | None = None,
) -> pd.DataFrame:
    """The ``dlq`` frame of a queue, read with ``peek`` (default) or ``snapshot``.

    ``frame.attrs["dlq_collection"]`` holds :meth:`DLQCollection.summary` (mode, backlog,
    completeness, warnings); :func:`collect_dlq` returns the full :class:`DLQCollection`.
    """
    result = collect_dlq(
        client,
        queue,
        mode=mode,
        force=force,
        batch_size=batch_size,
        visibility_timeout_ms=visibility_timeout_ms,
        release=release,
        limit=limit,
    )
    frame = result.frame
    frame.attrs["dlq_collection"] = result.summary()
    return frame


def _peek(client: CloudflareClient, queue: str, qid: str, backlog: int | None, n: int) -> DLQCollection:
    res = client.peek(qid, batch_size=n)
    messages = [m for m in res.get("messages") or [] if isinstance(m, Mapping)]
    frame = dlq_frame(messages, queue)
    out = DLQCollection(queue, qid, "peek", frame, backlog_count=backlog)
    if backlog is not None and backlog > len(messages):
        out.complete = False
        out.warnings.append(
            f"peek saw {len(messages)} of {backlog} messages in DLQ {queue!r}: peek reads at most "
            f"{PEEK_MAX} from the head of the queue. To read all of them run with --dlq-mode snapshot "
            "(read `edgeinvestigate collect --help` first: snapshot pulls count as delivery attempts)."
        )
    elif backlog is None:
        out.warnings.append(
            f"could not read the backlog of DLQ {queue!r}; peek saw {len(messages)} messages "
            f"(at most {PEEK_MAX} from the head), so there may be more"
        )
    for w in out.warnings:
        log.warning("%s", w)
    return out


def _exhaust_target(consumer: Mapping[str, Any]) -> str:
    dlq = consumer.get("dead_letter_queue") or ""
    return f"moved to its dead-letter queue {dlq!r}" if dlq else "DELETED"


def _snapshot(
    client: CloudflareClient,
    queue: str,
    qid: str,
    backlog: int | None,
    *,
    force: bool,
    batch_size: int,
    visibility_timeout_ms: int,
    release: bool,
    limit: int | None,
) -> DLQCollection:
    consumer = _http_pull_consumer(client, qid, queue)
    settings = consumer.get("settings") if isinstance(consumer.get("settings"), Mapping) else {}
    max_retries = as_int((settings or {}).get("max_retries"))
    if max_retries is None:
        max_retries = 3  # Cloudflare's default
    pulled = _Pulled(queue, qid, max_retries, _exhaust_target(consumer), force)
    _check_head(client, pulled, backlog)
    try:
        pulled.pull_all(client, batch_size, visibility_timeout_ms, limit)
    except BaseException:
        if release and pulled.held:
            log.warning("snapshot interrupted: releasing %d leased messages", len(pulled.held))
            try:
                release_leases(
                    client, qid, [m["lease_id"] for m in pulled.held.values() if m.get("lease_id")]
                )
            except Exception as exc:  # pragma: no cover - best effort, the original error wins
                log.error("could not release the leases (they return after the visibility timeout): %s", exc)
        raise
    return _finish(client, pulled, backlog, release=release, limit=limit)


@dataclass
class _Pulled:
    """What a snapshot has pulled so far, and what it knows about the DLQ's pull consumer."""

    queue: str
    qid: str
    max_retries: int
    fate: str
    """what the consumer does with a message past ``max_retries`` (moves it on, or deletes it)"""
    force: bool
    held: dict[str, dict[str, Any]] = field(default_factory=dict)
    """message id -> message (with its lease_id)"""
    order: list[str] = field(default_factory=list)
    requeued: list[str] = field(default_factory=list)
    """pulled past max_retries: body pushed back, pulled copy acked"""
    doomed: set[str] = field(default_factory=set)
    """pulled past max_retries and could not be pushed back: lease kept"""
    warnings: list[str] = field(default_factory=list)

    def pull_all(
        self, client: CloudflareClient, batch_size: int, visibility_timeout_ms: int, limit: int | None
    ) -> None:
        """Pull until the queue is empty (or ``limit``), extending the leases at half their timeout."""
        last_extended = time.monotonic()
        half = visibility_timeout_ms / 2000.0
        while limit is None or len(self.order) < limit:
            if self.held and time.monotonic() - last_extended >= half:
                leases = [m["lease_id"] for m in self.held.values()]
                extend_leases(client, self.qid, leases, visibility_timeout_ms, self.warnings)
                last_extended = time.monotonic()
            want = batch_size if limit is None else min(batch_size, limit - len(self.order))
            res = client.pull(self.qid, batch_size=want, visibility_timeout_ms=visibility_timeout_ms)
            batch = [m for m in res.get("messages") or [] if isinstance(m, Mapping)]
            if not batch:
                break
            if not self.held:
                last_extended = time.monotonic()
            for m in batch:
                self._take(client, m)

    def _take(self, client: CloudflareClient, m: Mapping[str, Any]) -> None:
        mid = str(m.get("id"))
        attempts = as_int(m.get("attempts")) or 0
        if attempts > self.max_retries and not self.force:
            # beyond the checked head: releasing this pull (or its lease ending) would lose it
            saved = requeue(
                client, self.queue, self.qid, m, self.max_retries, self.fate, self.warnings, checked=PEEK_MAX
            )
            if saved:
                self.requeued.append(mid)
                if mid in self.held:
                    del self.held[mid]
                    self.order.remove(mid)
                return
            self.doomed.add(mid)
        if mid in self.held:
            self.warnings.append(
                f"message {mid} was delivered again during the snapshot (its lease expired); "
                "raise --visibility-timeout"
            )
        else:
            self.order.append(mid)
        self.held[mid] = dict(m)
        if attempts > self.max_retries and self.force:
            self.warnings.append(
                f"message {mid} was pulled with attempts={attempts} > max_retries={self.max_retries}: "
                f"releasing it (or its lease ending) gets it {self.fate}; its body is kept in the frame"
            )


def _check_head(client: CloudflareClient, pulled: _Pulled, backlog: int | None) -> None:
    """Peek the head before pulling: refuse (unless ``force``) when a message would pass max_retries."""
    queue, max_retries = pulled.queue, pulled.max_retries
    head = [
        m
        for m in client.peek(pulled.qid, batch_size=PEEK_MAX).get("messages") or []
        if isinstance(m, Mapping)
    ]
    at_risk = [m for m in head if (as_int(m.get("attempts")) or 0) + 1 > max_retries]
    if at_risk:
        ids = ", ".join(str(m.get("id")) for m in at_risk[:5]) + (" ..." if len(at_risk) > 5 else "")
        text = (
            f"a snapshot of DLQ {queue!r} would push {len(at_risk)} message(s) past the consumer's "
            f"max_retries={max_retries} (one more delivery attempt each; {len(at_risk)} of the first "
            f"{len(head)} checked), and they would be {pulled.fate}: {ids}"
        )
        if not pulled.force:
            raise ReplayRefusedError(
                "refusing the snapshot: " + text,
                hint="use --dlq-mode peek (consumes nothing), raise max_retries of the DLQ's pull consumer "
                "(dashboard, or PUT /accounts/{account}/queues/{queue_id}/consumers/{consumer_id}: see "
                "runbooks/replay-failed-jobs.md), or pass --force if losing them is acceptable",
            )
        pulled.warnings.append("--force: " + text)
    if backlog is not None and backlog > len(head):
        log.info(
            "snapshot: %d messages are beyond the %d-message peek window; each is checked as it is pulled",
            backlog - len(head),
            PEEK_MAX,
        )


def _finish(
    client: CloudflareClient, pulled: _Pulled, backlog: int | None, *, release: bool, limit: int | None
) -> DLQCollection:
    """Release the leases (keeping those of doomed messages, for 12 h) and build the collection."""
    held, qid, warnings = pulled.held, pulled.qid, pulled.warnings
    messages = [held[mid] for mid in pulled.order]
    released = 0
    leases = [str(m["lease_id"]) for m in messages if m.get("lease_id")]
    if release:
        kept = {str(held[mid].get("lease_id")) for mid in pulled.doomed if mid in held}
        released, rel_warnings = release_leases(client, qid, [lease for lease in leases if lease not in kept])
        warnings.extend(rel_warnings)
        if kept:
            extend_leases(client, qid, sorted(kept), MAX_VISIBILITY_MS, warnings)
        for m in messages:
            if str(m.get("id")) not in pulled.doomed:
                m.pop("lease_id", None)
        leases = sorted(kept)
    frame = dlq_frame(messages, pulled.queue)
    complete = limit is None or len(messages) < limit
    out = DLQCollection(
        pulled.queue,
        qid,
        "snapshot",
        frame,
        backlog_count=backlog,
        complete=complete,
        max_retries=pulled.max_retries,
        released=released,
        leases=leases,
        warnings=warnings,
    )
    out.requeued = pulled.requeued
    if not complete:
        out.warnings.append(
            f"snapshot stopped at --limit {limit}; DLQ {pulled.queue!r} may hold more messages"
        )
    for w in out.warnings:
        log.warning("%s", w)
    return out
