"""The sandbox's state: queues, messages, leases, telemetry events and tails, in SQLite.

With ``--state DIR`` the database is ``DIR/sandbox.sqlite3`` in WAL mode and every change is committed
before the HTTP response is sent, so an acknowledged push survives ``kill -9`` (a committed WAL frame is
in the OS page cache even if the process dies). Without a state dir the database lives in memory.

All methods run on the server's event-loop thread (SQLite calls are short); a lock guards the
connection anyway so the forwarder and tests that call the store directly stay safe.
"""

from __future__ import annotations

import base64
import json
import secrets
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgeinvestigate.errors import SandboxError

__all__ = ["DEFAULT_RETENTION_S", "QueueRow", "Store"]

DEFAULT_RETENTION_S = 345_600
DB_NAME = "sandbox.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queues (
    queue_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    queue_name TEXT NOT NULL,
    created_on TEXT NOT NULL,
    modified_on TEXT NOT NULL,
    settings TEXT NOT NULL,
    consumer TEXT,
    options TEXT NOT NULL DEFAULT '{}',
    purge TEXT NOT NULL DEFAULT '{}',
    UNIQUE (account_id, queue_name)
);
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    queue_id TEXT NOT NULL,
    id TEXT NOT NULL,
    content_type TEXT NOT NULL,
    body BLOB NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    enqueued_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    visible_at_ms INTEGER NOT NULL,
    lease_id TEXT,
    lease_expires_ms INTEGER,
    prev_lease_id TEXT,
    source TEXT NOT NULL DEFAULT 'api'
);
CREATE INDEX IF NOT EXISTS messages_by_queue ON messages (queue_id, seq);
CREATE INDEX IF NOT EXISTS messages_by_lease ON messages (lease_id);
CREATE INDEX IF NOT EXISTS messages_by_prev_lease ON messages (prev_lease_id);
CREATE INDEX IF NOT EXISTS messages_by_id ON messages (queue_id, id);
CREATE INDEX IF NOT EXISTS messages_by_lease_expiry ON messages (queue_id, lease_expires_ms)
    WHERE lease_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS messages_by_enqueued ON messages (queue_id, enqueued_ms);
CREATE TABLE IF NOT EXISTS stats (
    queue_id TEXT NOT NULL,
    name TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (queue_id, name)
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT NOT NULL,
    timestamp_ms INTEGER NOT NULL,
    event TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_account ON events (account_id, timestamp_ms);
CREATE TABLE IF NOT EXISTS tails (
    tail_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    script_name TEXT NOT NULL,
    filters TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL
);
"""


def iso(ms: int) -> str:
    """RFC 3339 timestamp with microseconds, as the Queues API writes them."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass
class QueueRow:
    queue_id: str
    account_id: str
    queue_name: str
    created_on: str
    modified_on: str
    settings: dict[str, Any]
    consumer: dict[str, Any] | None
    options: dict[str, Any] = field(default_factory=dict)
    purge: dict[str, Any] = field(default_factory=dict)

    @property
    def retention_s(self) -> int:
        return int(self.settings.get("message_retention_period", DEFAULT_RETENTION_S))

    @property
    def max_retries(self) -> int:
        if not self.consumer:
            return 3
        return int(self.consumer["settings"].get("max_retries", 3))

    @property
    def dead_letter_queue(self) -> str:
        if not self.consumer:
            return ""
        return str(self.consumer.get("dead_letter_queue") or "")

    @property
    def json_encoding(self) -> str:
        return str(self.options.get("json_body_encoding", "plain"))

    def to_api(self) -> dict[str, Any]:
        consumers = [self.consumer] if self.consumer else []
        return {
            "queue_id": self.queue_id,
            "queue_name": self.queue_name,
            "created_on": self.created_on,
            "modified_on": self.modified_on,
            "producers": [],
            "producers_total_count": 0,
            "consumers": consumers,
            "consumers_total_count": len(consumers),
            "settings": dict(self.settings),
        }


def _row_to_queue(row: sqlite3.Row) -> QueueRow:
    return QueueRow(
        queue_id=row["queue_id"],
        account_id=row["account_id"],
        queue_name=row["queue_name"],
        created_on=row["created_on"],
        modified_on=row["modified_on"],
        settings=json.loads(row["settings"]),
        consumer=json.loads(row["consumer"]) if row["consumer"] else None,
        options=json.loads(row["options"]),
        purge=json.loads(row["purge"]),
    )


def make_ref(queue_id: str, seq: int, message_id: str) -> str:
    raw = json.dumps([queue_id, seq, message_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_ref(ref: str) -> tuple[str, int, str] | None:
    try:
        raw = base64.urlsafe_b64decode(ref + "=" * (-len(ref) % 4))
        queue_id, seq, message_id = json.loads(raw)
        return str(queue_id), int(seq), str(message_id)
    except (ValueError, TypeError):
        return None


class Store:
    """SQLite-backed state of every account served by one sandbox process."""

    def __init__(self, state_dir: Path | None = None, *, default_json_encoding: str = "plain") -> None:
        self.state_dir = state_dir
        self.default_json_encoding = default_json_encoding
        if state_dir is not None:
            state_dir.mkdir(parents=True, exist_ok=True)
            target = str(state_dir / DB_NAME)
        else:
            target = ":memory:"
        self._conn = sqlite3.connect(target, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        try:
            if state_dir is not None:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
                self._conn.execute("PRAGMA quick_check").fetchall()
            self._conn.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            self._conn.close()
            raise SandboxError(
                f"the sandbox state file {target} is not a usable SQLite database ({exc})",
                hint=f"move it away (mv {target} {target}.corrupt, and its -wal/-shm files) to start "
                "with an empty state, or pass another --state DIR",
            ) from exc
        self._lock = threading.RLock()
        self.clock_offset_ms = 0
        self._events_cache: dict[str, list[dict[str, Any]]] = {}

    # -- plumbing -----------------------------------------------------------------------------
    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.clock_offset_ms

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._conn:
            yield self._conn

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _bump(self, conn: sqlite3.Connection, queue_id: str, name: str, n: int = 1) -> None:
        if n:
            conn.execute(
                "INSERT INTO stats (queue_id, name, value) VALUES (?, ?, ?) "
                "ON CONFLICT (queue_id, name) DO UPDATE SET value = value + excluded.value",
                (queue_id, name, n),
            )

    def reset(self) -> None:
        with self.tx() as conn:
            for table in ("queues", "messages", "stats", "events", "tails"):
                conn.execute(f"DELETE FROM {table}")
        self._events_cache.clear()
        self.clock_offset_ms = 0

    # -- queues -------------------------------------------------------------------------------
    def queue_by_name(self, account_id: str, name: str) -> QueueRow | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT * FROM queues WHERE account_id = ? AND queue_name = ?", (account_id, name)
            ).fetchone()
        return _row_to_queue(row) if row else None

    def get_queue(self, account_id: str, queue_id: str) -> QueueRow | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT * FROM queues WHERE account_id = ? AND queue_id = ?", (account_id, queue_id)
            ).fetchone()
        return _row_to_queue(row) if row else None

    def list_queues(self, account_id: str | None = None) -> list[QueueRow]:
        with self._lock:
            if account_id is None:
                rows = self._conn.execute("SELECT * FROM queues ORDER BY rowid").fetchall()
            else:
                rows = self._conn.execute(
                    "SELECT * FROM queues WHERE account_id = ? ORDER BY rowid", (account_id,)
                ).fetchall()
        return [_row_to_queue(r) for r in rows]

    def _insert_queue(
        self, conn: sqlite3.Connection, account_id: str, name: str, settings: dict[str, Any]
    ) -> QueueRow:
        now = iso(self.now_ms())
        options = {"json_body_encoding": self.default_json_encoding}
        q = QueueRow(new_id(), account_id, name, now, now, settings, None, options, {})
        conn.execute(
            "INSERT INTO queues (queue_id, account_id, queue_name, created_on, modified_on, settings,"
            " consumer, options, purge) VALUES (?, ?, ?, ?, ?, ?, NULL, ?, '{}')",
            (q.queue_id, account_id, name, now, now, json.dumps(settings), json.dumps(options)),
        )
        return q

    def upsert_queue(
        self,
        account_id: str,
        name: str,
        *,
        settings: dict[str, Any] | None = None,
        consumer: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
    ) -> QueueRow:
        """Create a queue (idempotent by name); given settings, consumer and options replace old ones.

        ``consumer`` is the API-shaped consumer object without ``consumer_id``/``created_on``/``queue_name``
        (they are filled in). A ``dead_letter_queue`` that does not exist is created, like Cloudflare does.
        """
        with self.tx() as conn:
            row = conn.execute(
                "SELECT * FROM queues WHERE account_id = ? AND queue_name = ?", (account_id, name)
            ).fetchone()
            base_settings = {
                "delivery_delay": 0,
                "delivery_paused": False,
                "message_retention_period": DEFAULT_RETENTION_S,
            }
            q = _row_to_queue(row) if row else self._insert_queue(conn, account_id, name, base_settings)
            if settings:
                q.settings.update(settings)
            if options:
                q.options.update(options)
            if consumer is not None:
                old = q.consumer or {}
                full = dict(consumer)
                full["consumer_id"] = old.get("consumer_id") or new_id()
                full["created_on"] = old.get("created_on") or iso(self.now_ms())
                full["queue_name"] = name
                q.consumer = full
                dlq = full.get("dead_letter_queue") or ""
                if dlq and dlq != name:
                    exists = conn.execute(
                        "SELECT 1 FROM queues WHERE account_id = ? AND queue_name = ?", (account_id, dlq)
                    ).fetchone()
                    if not exists:
                        self._insert_queue(conn, account_id, dlq, dict(base_settings))
            q.modified_on = iso(self.now_ms())
            conn.execute(
                "UPDATE queues SET settings = ?, consumer = ?, options = ?, modified_on = ?"
                " WHERE queue_id = ?",
                (
                    json.dumps(q.settings),
                    json.dumps(q.consumer) if q.consumer else None,
                    json.dumps(q.options),
                    q.modified_on,
                    q.queue_id,
                ),
            )
        return q

    def set_option(self, queue: QueueRow, key: str, value: Any) -> None:
        with self.tx() as conn:
            q = self.get_queue(queue.account_id, queue.queue_id)
            if q is None:
                return
            if value is None:
                q.options.pop(key, None)
            else:
                q.options[key] = value
            conn.execute(
                "UPDATE queues SET options = ? WHERE queue_id = ?", (json.dumps(q.options), q.queue_id)
            )

    # -- messages -----------------------------------------------------------------------------
    def _metrics(self, conn: sqlite3.Connection, queue_id: str) -> dict[str, int]:
        row = conn.execute(
            "SELECT COUNT(*) AS n, COALESCE(SUM(LENGTH(body)), 0) AS b, COALESCE(MIN(timestamp_ms), 0) AS t"
            " FROM messages WHERE queue_id = ?",
            (queue_id,),
        ).fetchone()
        return {
            "backlog_count": int(row["n"]),
            "backlog_bytes": int(row["b"]),
            "oldest_message_timestamp_ms": int(row["t"]),
        }

    def metrics(self, queue: QueueRow) -> dict[str, int]:
        self.sweep(queue)
        with self._lock:
            return self._metrics(self._conn, queue.queue_id)

    def push(
        self, queue: QueueRow, items: list[tuple[bytes, str, int]], *, source: str = "api"
    ) -> dict[str, int]:
        """Store messages ``(body_bytes, content_type, delay_seconds)``; all or nothing."""
        now = self.now_ms()
        with self.tx() as conn:
            for body, content_type, delay_s in items:
                conn.execute(
                    "INSERT INTO messages (queue_id, id, content_type, body, timestamp_ms, enqueued_ms,"
                    " attempts, visible_at_ms, source) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)",
                    (queue.queue_id, new_id(), content_type, body, now, now, now + delay_s * 1000, source),
                )
            self._bump(conn, queue.queue_id, "pushed", len(items))
            return self._metrics(conn, queue.queue_id)

    def load(self, queue: QueueRow, items: list[dict[str, Any]]) -> list[str]:
        """Admin load of ``{id, body (bytes), content_type, timestamp_ms, attempts, enqueued_ms,
        delay_seconds}`` items, kept exactly as given.

        Idempotent by id: an item whose id is already in the queue is skipped (a loader that retries a
        batch, like the lab's DLQ consumer, must not create twins). Returns the ids actually loaded.
        """
        now = self.now_ms()
        ids = []
        with self.tx() as conn:
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
            self._bump(conn, queue.queue_id, "loaded", len(ids))
        return ids

    def _exhaust(self, conn: sqlite3.Connection, queue: QueueRow, row: sqlite3.Row, now: int) -> None:
        """Retries ran out: move to the dead letter queue (same id, timestamp, body), or delete."""
        conn.execute("DELETE FROM messages WHERE seq = ?", (row["seq"],))
        dlq_name = queue.dead_letter_queue
        if not dlq_name:
            self._bump(conn, queue.queue_id, "deleted_exhausted")
            return
        dlq = conn.execute(
            "SELECT * FROM queues WHERE account_id = ? AND queue_name = ?", (queue.account_id, dlq_name)
        ).fetchone()
        dlq_id = (
            dlq["queue_id"]
            if dlq
            else self._insert_queue(
                conn,
                queue.account_id,
                dlq_name,
                {
                    "delivery_delay": 0,
                    "delivery_paused": False,
                    "message_retention_period": DEFAULT_RETENTION_S,
                },
            ).queue_id
        )
        conn.execute(
            "INSERT INTO messages (queue_id, id, content_type, body, timestamp_ms, enqueued_ms, attempts,"
            " visible_at_ms, source) VALUES (?, ?, ?, ?, ?, ?, 0, ?, 'dead_letter')",
            (dlq_id, row["id"], row["content_type"], row["body"], row["timestamp_ms"], now, now),
        )
        self._bump(conn, queue.queue_id, "dead_lettered")
        self._bump(conn, dlq_id, "received_dead_letters")

    def sweep(self, queue: QueueRow | None = None) -> None:
        """Expire leases (a failed delivery: redeliver, or exhaust) and drop messages past retention."""
        now = self.now_ms()
        queues = [queue] if queue is not None else self.list_queues()
        with self.tx() as conn:
            for q in queues:
                fresh = conn.execute("SELECT * FROM queues WHERE queue_id = ?", (q.queue_id,)).fetchone()
                if fresh is None:
                    continue
                q = _row_to_queue(fresh)
                expired = conn.execute(
                    "SELECT * FROM messages WHERE queue_id = ? AND lease_id IS NOT NULL"
                    " AND lease_expires_ms <= ?",
                    (q.queue_id, now),
                ).fetchall()
                for row in expired:
                    self._bump(conn, q.queue_id, "lease_expired")
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
                self._bump(conn, q.queue_id, "retention_expired", cur.rowcount)

    def pull(self, queue: QueueRow, batch_size: int, visibility_ms: int) -> tuple[list[sqlite3.Row], int]:
        """Lease up to ``batch_size`` visible messages; each delivery increments ``attempts``."""
        self.sweep(queue)
        now = self.now_ms()
        leased = []
        with self.tx() as conn:
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
                self._bump(conn, queue.queue_id, "delivered", len(leased))
            out = [conn.execute("SELECT * FROM messages WHERE seq = ?", (seq,)).fetchone() for seq in leased]
            backlog = self._metrics(conn, queue.queue_id)["backlog_count"]
        return out, backlog

    def _find_lease(self, conn: sqlite3.Connection, queue_id: str, lease_id: str) -> sqlite3.Row | None:
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

    def ack(
        self, queue: QueueRow, acks: list[str], retries: list[tuple[str, int | None]]
    ) -> tuple[int, int, dict[str, str]]:
        """Ack (delete) and retry leased messages. Acks are accepted after the lease expired, as long
        as the message was not delivered again or moved to the dead letter queue."""
        now = self.now_ms()
        warnings: dict[str, str] = {}
        n_ack = n_retry = 0
        default_delay = int((queue.consumer or {}).get("settings", {}).get("retry_delay", 0) or 0)
        with self.tx() as conn:
            for lease in acks:
                row = self._find_lease(conn, queue.queue_id, lease)
                if row is None:
                    warnings[lease] = (
                        "unknown or expired lease: the message was redelivered, moved or deleted"
                    )
                    continue
                conn.execute("DELETE FROM messages WHERE seq = ?", (row["seq"],))
                n_ack += 1
            for lease, delay in retries:
                row = self._find_lease(conn, queue.queue_id, lease)
                if row is None:
                    warnings[lease] = (
                        "unknown or expired lease: the message was redelivered, moved or deleted"
                    )
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
            self._bump(conn, queue.queue_id, "acked", n_ack)
            self._bump(conn, queue.queue_id, "retried", n_retry)
        return n_ack, n_retry, warnings

    def extend(self, queue: QueueRow, leases: list[str], visibility_ms: int) -> tuple[int, dict[str, str]]:
        """Extend leases by ``visibility_ms`` from now (the lease id stays the same)."""
        now = self.now_ms()
        warnings: dict[str, str] = {}
        n = 0
        with self.tx() as conn:
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

    def peek(self, queue: QueueRow, batch_size: int) -> list[sqlite3.Row]:
        """The head of the queue (leased and delayed messages included); changes nothing."""
        self.sweep(queue)
        with self._lock:
            return self._conn.execute(
                "SELECT * FROM messages WHERE queue_id = ? ORDER BY seq LIMIT ?", (queue.queue_id, batch_size)
            ).fetchall()

    def purge_refs(self, queue: QueueRow, refs: list[str]) -> dict[str, str]:
        warnings: dict[str, str] = {}
        with self.tx() as conn:
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
            self._bump(conn, queue.queue_id, "purged_by_ref", n)
        return warnings

    def purge_all(self, queue: QueueRow) -> dict[str, Any]:
        now = iso(self.now_ms())
        status = {"completed": "true", "started_at": now}
        with self.tx() as conn:
            cur = conn.execute("DELETE FROM messages WHERE queue_id = ?", (queue.queue_id,))
            self._bump(conn, queue.queue_id, "purged", cur.rowcount)
            conn.execute(
                "UPDATE queues SET purge = ? WHERE queue_id = ?", (json.dumps(status), queue.queue_id)
            )
        return status

    def messages_of(self, queue_id: str) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(
                "SELECT * FROM messages WHERE queue_id = ? ORDER BY seq", (queue_id,)
            ).fetchall()

    def stats_of(self, queue_id: str) -> dict[str, int]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT name, value FROM stats WHERE queue_id = ?", (queue_id,)
            ).fetchall()
        return {r["name"]: int(r["value"]) for r in rows}

    # -- telemetry events ---------------------------------------------------------------------
    def add_events(self, account_id: str, events: list[dict[str, Any]]) -> int:
        with self.tx() as conn:
            conn.executemany(
                "INSERT INTO events (account_id, timestamp_ms, event) VALUES (?, ?, ?)",
                [(account_id, int(e["timestamp"]), json.dumps(e, separators=(",", ":"))) for e in events],
            )
        self._events_cache.pop(account_id, None)
        return len(events)

    def events(self, account_id: str) -> list[dict[str, Any]]:
        """Every event of an account, newest first (ties: higher ``$metadata.id`` first)."""
        cached = self._events_cache.get(account_id)
        if cached is None:
            with self._lock:
                rows = self._conn.execute(
                    "SELECT event FROM events WHERE account_id = ?", (account_id,)
                ).fetchall()
            cached = [json.loads(r["event"]) for r in rows]
            cached.sort(key=lambda e: (int(e["timestamp"]), str(e["$metadata"]["id"])), reverse=True)
            self._events_cache[account_id] = cached
        return cached

    def event_counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT account_id, COUNT(*) AS n FROM events GROUP BY account_id"
            ).fetchall()
        return {r["account_id"]: int(r["n"]) for r in rows}

    # -- tails --------------------------------------------------------------------------------
    def create_tail(self, account_id: str, script: str, filters: list[Any], ttl_ms: int) -> dict[str, Any]:
        now = self.now_ms()
        tail = {
            "tail_id": new_id(),
            "account_id": account_id,
            "script_name": script,
            "filters": filters,
            "created_ms": now,
            "expires_ms": now + ttl_ms,
        }
        with self.tx() as conn:
            conn.execute(
                "INSERT INTO tails (tail_id, account_id, script_name, filters, created_ms, expires_ms)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (tail["tail_id"], account_id, script, json.dumps(filters), now, now + ttl_ms),
            )
        return tail

    def tails(self, account_id: str | None = None, script: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM tails WHERE 1 = 1"
        args: list[Any] = []
        if account_id is not None:
            sql += " AND account_id = ?"
            args.append(account_id)
        if script is not None:
            sql += " AND script_name = ?"
            args.append(script)
        with self._lock:
            rows = self._conn.execute(sql + " ORDER BY created_ms", args).fetchall()
        return [dict(r) | {"filters": json.loads(r["filters"])} for r in rows]

    def get_tail(self, tail_id: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM tails WHERE tail_id = ?", (tail_id,)).fetchone()
        return dict(row) | {"filters": json.loads(row["filters"])} if row else None

    def delete_tail(self, account_id: str, script: str, tail_id: str) -> bool:
        with self.tx() as conn:
            cur = conn.execute(
                "DELETE FROM tails WHERE tail_id = ? AND account_id = ? AND script_name = ?",
                (tail_id, account_id, script),
            )
        return cur.rowcount > 0
