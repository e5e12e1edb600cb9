"""The sandbox's messages: push, admin load, leases (pull, ack, retry, extend), peek, purge, sweep.

Semantics (ARCHITECTURE.md, Sandbox): FIFO by arrival; every pull delivery increments ``attempts``; a
lease that expires, or a retry, with ``attempts > max_retries`` moves the message to the consumer's
dead letter queue (same id, ``timestamp_ms``, body and content type; ``attempts`` restarts at 0) or
deletes it when there is none. Acks are accepted after the lease expired as long as the message was
not delivered again or moved. Retention counts from the time the message entered this queue. Every
change also counts in the queue's ``stats`` (pushed, delivered, acked, retried, lease_expired, ...).
"""

from __future__ import annotations

import base64
import json
import secrets
import sqlite3
from typing import Any

from edgeinvestigate.sandbox._analytics import Analytics, consumer_kind
from edgeinvestigate.sandbox._clock import Clock, iso
from edgeinvestigate.sandbox._database import Database, new_id
from edgeinvestigate.sandbox._queues import QueueRow, Queues, row_to_queue

__all__ = ["Messages", "make_ref", "parse_ref"]

_GONE = "unknown or expired lease: the message was redelivered, moved or deleted"


def make_ref(queue_id: str, seq: int, message_id: str) -> str:
    """The ``ref`` of a peeked message (what ``purge_refs`` takes back)."""
    raw = json.dumps([queue_id, seq, message_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_ref(ref: str) -> tuple[str, int, str] | None:
    try:
        raw = base64.urlsafe_b64decode(ref + "=" * (-len(ref) % 4))
        queue_id, seq, message_id = json.loads(raw)
        return str(queue_id), int(seq), str(message_id)
    except (ValueError, TypeError):
        return None


def _bump(conn: sqlite3.Connection, queue_id: str, name: str, n: int = 1) -> None:
    if n:
        conn.execute(
            "INSERT INTO stats (queue_id, name, value) VALUES (?, ?, ?) "
            "ON CONFLICT (queue_id, name) DO UPDATE SET value = value + excluded.value",
            (queue_id, name, n),
        )


_METRICS = (
    "SELECT COUNT(*) AS n, COALESCE(SUM(LENGTH(body)), 0) AS b, COALESCE(MIN(timestamp_ms), 0) AS t"
    " FROM messages WHERE queue_id = ?"
)


def _metrics(conn: sqlite3.Connection, queue_id: str) -> dict[str, int]:
    return _metrics_of(conn.execute(_METRICS, (queue_id,)).fetchone())


def _metrics_of(row: Any) -> dict[str, int]:
    return {
        "backlog_count": int(row["n"]),
        "backlog_bytes": int(row["b"]),
        "oldest_message_timestamp_ms": int(row["t"]),
    }


def _find_lease(conn: sqlite3.Connection, queue_id: str, lease_id: str) -> sqlite3.Row | None:
    # Two indexed look-ups instead of one OR (which SQLite answers with a scan of the whole queue).
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM messages INDEXED BY messages_by_lease WHERE lease_id = ? AND queue_id = ?",
        (lease_id, queue_id),
    ).fetchone()
    if row is None:
        row = conn.execute(
            "SELECT * FROM messages INDEXED BY messages_by_prev_lease"
            " WHERE prev_lease_id = ? AND lease_id IS NULL AND queue_id = ?",
            (lease_id, queue_id),
        ).fetchone()
    return row


class Messages:
    """Messages of every queue, with their leases and the queues' counters."""

    def __init__(
        self, db: Database, clock: Clock, queues: Queues, analytics: Analytics | None = None
    ) -> None:
        self.db = db
        self.clock = clock
        self.queues = queues
        self.analytics = analytics if analytics is not None else Analytics(db)

    # -- in -----------------------------------------------------------------------------------
    def push(
        self, queue: QueueRow, items: list[tuple[bytes, str, int]], *, source: str = "api"
    ) -> dict[str, int]:
        """Store messages ``(body_bytes, content_type, delay_seconds)``; all or nothing."""
        now = self.clock.now_ms()
        with self.db.tx() as conn:
            for body, content_type, delay_s in items:
                conn.execute(
                    "INSERT INTO messages (queue_id, id, content_type, body, timestamp_ms, enqueued_ms,"
                    " attempts, visible_at_ms, source) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)",
                    (queue.queue_id, new_id(), content_type, body, now, now, now + delay_s * 1000, source),
                )
            _bump(conn, queue.queue_id, "pushed", len(items))
            an = self.analytics
            an.op(
                conn,
                queue.account_id,
                queue.queue_id,
                now,
                "WriteMessage",
                [(len(b), now, 0) for b, _, _ in items],
            )
            an.count(conn, queue.queue_id, now, "pushed", len(items))
            an.backlog(conn, queue.account_id, queue.queue_id, now)
            return _metrics(conn, queue.queue_id)

    def load(self, queue: QueueRow, items: list[dict[str, Any]]) -> list[str]:
        """Admin load of ``{id, body (bytes), content_type, timestamp_ms, attempts, enqueued_ms,
        delay_seconds}`` items, kept exactly as given.

        Idempotent by id: an item whose id is already in the queue is skipped (a loader that retries a
        batch, like the lab's DLQ consumer, must not create twins). Returns the ids actually loaded.
        """
        now = self.clock.now_ms()
        ids = []
        with self.db.tx() as conn:
            for it in items:
                mid = it.get("id") or new_id()
                if (
                    it.get("id")
                    and conn.execute(
                        "SELECT 1 FROM messages WHERE queue_id = ? AND id = ?", (queue.queue_id, mid)
                    ).fetchone()
                ):
                    continue
                ts = int(it.get("timestamp_ms") or now)
                enq = int(it.get("enqueued_ms") or now)
                conn.execute(
                    "INSERT INTO messages (queue_id, id, content_type, body, timestamp_ms, enqueued_ms,"
                    " attempts, visible_at_ms, source) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'admin')",
                    (
                        queue.queue_id,
                        mid,
                        it["content_type"],
                        it["body"],
                        ts,
                        enq,
                        int(it.get("attempts") or 0),
                        now + int(it.get("delay_seconds") or 0) * 1000,
                    ),
                )
                ids.append(mid)
            _bump(conn, queue.queue_id, "loaded", len(ids))
            if ids:
                self.analytics.count(conn, queue.queue_id, now, "loaded", len(ids))
                self.analytics.backlog(conn, queue.account_id, queue.queue_id, now)
        return ids

    # -- time ---------------------------------------------------------------------------------
    def sweep(self, queue: QueueRow | None = None) -> None:
        """Expire leases (a failed delivery: redeliver, or exhaust) and drop messages past retention."""
        now = self.clock.now_ms()
        queues = [queue] if queue is not None else self.queues.all()
        with self.db.tx() as conn:
            for q in queues:
                fresh = conn.execute("SELECT * FROM queues WHERE queue_id = ?", (q.queue_id,)).fetchone()
                if fresh is not None:
                    self._sweep_queue(conn, row_to_queue(fresh), now)

    def _sweep_queue(self, conn: sqlite3.Connection, q: QueueRow, now: int) -> None:
        expired = conn.execute(
            "SELECT * FROM messages WHERE queue_id = ? AND lease_id IS NOT NULL AND lease_expires_ms <= ?",
            (q.queue_id, now),
        ).fetchall()
        for row in expired:
            _bump(conn, q.queue_id, "lease_expired")
            self.analytics.count(conn, q.queue_id, now, "lease_expired")
            if row["attempts"] > q.max_retries:
                self._exhaust(conn, q, row, now)
            else:
                conn.execute(
                    "UPDATE messages SET prev_lease_id = lease_id, lease_id = NULL,"
                    " lease_expires_ms = NULL, visible_at_ms = ? WHERE seq = ?",
                    (now, row["seq"]),
                )
        cur = conn.execute(
            "DELETE FROM messages WHERE queue_id = ? AND enqueued_ms + ? <= ?",
            (q.queue_id, q.retention_s * 1000, now),
        )
        _bump(conn, q.queue_id, "retention_expired", cur.rowcount)
        self.analytics.count(conn, q.queue_id, now, "retention_expired", cur.rowcount)
        if expired or cur.rowcount:
            self.analytics.backlog(conn, q.account_id, q.queue_id, now)

    def _exhaust(self, conn: sqlite3.Connection, queue: QueueRow, row: sqlite3.Row, now: int) -> None:
        """Retries ran out: move to the dead letter queue (same id, timestamp, body), or delete."""
        conn.execute("DELETE FROM messages WHERE seq = ?", (row["seq"],))
        dlq_name = queue.dead_letter_queue
        an = self.analytics
        size = len(row["body"])
        gone = [(size, int(row["timestamp_ms"]), max(0, int(row["attempts"]) - 1))]
        kind = consumer_kind(queue.consumer)
        outcome = "dlq" if dlq_name else "fail"
        an.op(
            conn,
            queue.account_id,
            queue.queue_id,
            now,
            "DeleteMessage",
            gone,
            consumer_type=kind,
            outcome=outcome,
        )
        if not dlq_name:
            _bump(conn, queue.queue_id, "deleted_exhausted")
            an.count(conn, queue.queue_id, now, "deleted_exhausted")
            return
        dlq_id = self.queues.named_or_new(conn, queue.account_id, dlq_name)
        conn.execute(
            "INSERT INTO messages (queue_id, id, content_type, body, timestamp_ms, enqueued_ms, attempts,"
            " visible_at_ms, source) VALUES (?, ?, ?, ?, ?, ?, 0, ?, 'dead_letter')",
            (dlq_id, row["id"], row["content_type"], row["body"], row["timestamp_ms"], now, now),
        )
        _bump(conn, queue.queue_id, "dead_lettered")
        _bump(conn, dlq_id, "received_dead_letters")
        an.count(conn, queue.queue_id, now, "dead_lettered")
        an.count(conn, dlq_id, now, "received_dead_letters")
        an.op(conn, queue.account_id, dlq_id, now, "WriteMessage", [(size, now, 0)])
        an.backlog(conn, queue.account_id, dlq_id, now)

    # -- leases -------------------------------------------------------------------------------
    def pull(self, queue: QueueRow, batch_size: int, visibility_ms: int) -> tuple[list[sqlite3.Row], int]:
        """Lease up to ``batch_size`` visible messages; each delivery increments ``attempts``."""
        self.sweep(queue)
        now = self.clock.now_ms()
        leased = []
        with self.db.tx() as conn:
            if not queue.settings.get("delivery_paused"):
                rows = conn.execute(
                    "SELECT seq FROM messages WHERE queue_id = ? AND lease_id IS NULL AND visible_at_ms <= ?"
                    " ORDER BY seq LIMIT ?",
                    (queue.queue_id, now, batch_size),
                ).fetchall()
                for r in rows:
                    lease = secrets.token_urlsafe(32)
                    conn.execute(
                        "UPDATE messages SET lease_id = ?, lease_expires_ms = ?, prev_lease_id = NULL,"
                        " attempts = attempts + 1 WHERE seq = ?",
                        (lease, now + visibility_ms, r["seq"]),
                    )
                    leased.append(r["seq"])
                _bump(conn, queue.queue_id, "delivered", len(leased))
            out = [conn.execute("SELECT * FROM messages WHERE seq = ?", (seq,)).fetchone() for seq in leased]
            backlog = _metrics(conn, queue.queue_id)["backlog_count"]
            self._pulled(conn, queue, now, out)
        return out, backlog

    def _pulled(self, conn: sqlite3.Connection, queue: QueueRow, now: int, rows: list[sqlite3.Row]) -> None:
        """Analytics of a pull: one ReadMessage per delivery, the batch in flight, the backlog."""
        an = self.analytics
        reads = [(len(r["body"]), int(r["timestamp_ms"]), int(r["attempts"]) - 1) for r in rows]
        kind = consumer_kind(queue.consumer)
        an.op(conn, queue.account_id, queue.queue_id, now, "ReadMessage", reads, consumer_type=kind)
        an.count(conn, queue.queue_id, now, "delivered", len(rows))
        an.pulled(conn, queue.account_id, queue.queue_id, now, [str(r["lease_id"]) for r in rows])
        an.backlog(conn, queue.account_id, queue.queue_id, now)

    def ack(
        self, queue: QueueRow, acks: list[str], retries: list[tuple[str, int | None]]
    ) -> tuple[int, int, dict[str, str]]:
        """Ack (delete) and retry leased messages. Acks are accepted after the lease expired, as long
        as the message was not delivered again or moved to the dead letter queue."""
        now = self.clock.now_ms()
        warnings: dict[str, str] = {}
        n_ack = n_retry = 0
        default_delay = int((queue.consumer or {}).get("settings", {}).get("retry_delay", 0) or 0)
        deleted: list[tuple[int, int, int]] = []
        with self.db.tx() as conn:
            for lease in acks:
                row = _find_lease(conn, queue.queue_id, lease)
                if row is None:
                    warnings[lease] = _GONE
                    continue
                conn.execute("DELETE FROM messages WHERE seq = ?", (row["seq"],))
                deleted.append((len(row["body"]), int(row["timestamp_ms"]), max(0, int(row["attempts"]) - 1)))
                n_ack += 1
            for lease, delay in retries:
                row = _find_lease(conn, queue.queue_id, lease)
                if row is None:
                    warnings[lease] = _GONE
                    continue
                n_retry += 1
                if row["attempts"] > queue.max_retries:
                    self._exhaust(conn, queue, row, now)
                    continue
                wait = default_delay if delay is None else delay
                conn.execute(
                    "UPDATE messages SET lease_id = NULL, lease_expires_ms = NULL, prev_lease_id = NULL,"
                    " visible_at_ms = ? WHERE seq = ?",
                    (now + wait * 1000, row["seq"]),
                )
            _bump(conn, queue.queue_id, "acked", n_ack)
            _bump(conn, queue.queue_id, "retried", n_retry)
            an = self.analytics
            kind = consumer_kind(queue.consumer)
            an.op(
                conn,
                queue.account_id,
                queue.queue_id,
                now,
                "DeleteMessage",
                deleted,
                consumer_type=kind,
                outcome="success",
            )
            an.count(conn, queue.queue_id, now, "acked", n_ack)
            an.count(conn, queue.queue_id, now, "retried", n_retry)
            if n_ack or n_retry:
                an.backlog(conn, queue.account_id, queue.queue_id, now)
        return n_ack, n_retry, warnings

    def extend(self, queue: QueueRow, leases: list[str], visibility_ms: int) -> tuple[int, dict[str, str]]:
        """Extend leases by ``visibility_ms`` from now (the lease id stays the same)."""
        now = self.clock.now_ms()
        warnings: dict[str, str] = {}
        n = 0
        with self.db.tx() as conn:
            for lease in leases:
                row = conn.execute(
                    "SELECT seq, lease_expires_ms FROM messages WHERE queue_id = ? AND lease_id = ?",
                    (queue.queue_id, lease),
                ).fetchone()
                if row is None or row["lease_expires_ms"] <= now:
                    warnings[lease] = "unknown or expired lease"
                    continue
                conn.execute(
                    "UPDATE messages SET lease_expires_ms = ? WHERE seq = ?",
                    (now + visibility_ms, row["seq"]),
                )
                n += 1
        return n, warnings

    # -- reading and purging ------------------------------------------------------------------
    def peek(self, queue: QueueRow, batch_size: int) -> list[sqlite3.Row]:
        """The head of the queue (leased and delayed messages included); changes nothing."""
        self.sweep(queue)
        return self.db.rows(
            "SELECT * FROM messages WHERE queue_id = ? ORDER BY seq LIMIT ?", (queue.queue_id, batch_size)
        )

    def purge_refs(self, queue: QueueRow, refs: list[str]) -> dict[str, str]:
        warnings: dict[str, str] = {}
        with self.db.tx() as conn:
            n = 0
            for ref in refs:
                parsed = parse_ref(ref)
                if parsed is None or parsed[0] != queue.queue_id:
                    warnings[ref] = "invalid ref: not from a peek of this queue"
                    continue
                cur = conn.execute(
                    "DELETE FROM messages WHERE queue_id = ? AND seq = ? AND id = ?",
                    (queue.queue_id, *parsed[1:]),
                )
                if cur.rowcount == 0:
                    warnings[ref] = "message no longer in the queue"
                n += cur.rowcount
            _bump(conn, queue.queue_id, "purged_by_ref", n)
            now = self.clock.now_ms()
            self.analytics.count(conn, queue.queue_id, now, "purged", n)
            if n:
                self.analytics.backlog(conn, queue.account_id, queue.queue_id, now)
        return warnings

    def purge_all(self, queue: QueueRow) -> dict[str, Any]:
        now = iso(self.clock.now_ms())
        status = {"completed": "true", "started_at": now}
        with self.db.tx() as conn:
            cur = conn.execute("DELETE FROM messages WHERE queue_id = ?", (queue.queue_id,))
            _bump(conn, queue.queue_id, "purged", cur.rowcount)
            self.queues.set_purge(conn, queue, status)
            self.analytics.count(conn, queue.queue_id, self.clock.now_ms(), "purged", cur.rowcount)
            self.analytics.backlog(conn, queue.account_id, queue.queue_id, self.clock.now_ms())
        return status

    def metrics(self, queue: QueueRow) -> dict[str, int]:
        self.sweep(queue)
        return _metrics_of(self.db.row(_METRICS, (queue.queue_id,)))

    def of(self, queue_id: str) -> list[sqlite3.Row]:
        """Every message of a queue, in order."""
        return self.db.rows("SELECT * FROM messages WHERE queue_id = ? ORDER BY seq", (queue_id,))

    def stats(self, queue_id: str) -> dict[str, int]:
        """The queue's counters (pushed, delivered, acked, retried, lease_expired, dead_lettered, ...)."""
        rows = self.db.rows("SELECT name, value FROM stats WHERE queue_id = ?", (queue_id,))
        return {r["name"]: int(r["value"]) for r in rows}
