"""The sandbox's queues: one row per queue with its settings, consumer and sandbox options."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from edgeinvestigate.sandbox._clock import Clock, iso
from edgeinvestigate.sandbox._database import Database, new_id

__all__ = ["DEFAULT_RETENTION_S", "QueueRow", "Queues", "row_to_queue"]

DEFAULT_RETENTION_S = 345_600


def _base_settings() -> dict[str, Any]:
    return {"delivery_delay": 0, "delivery_paused": False, "message_retention_period": DEFAULT_RETENTION_S}


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


def row_to_queue(row: sqlite3.Row) -> QueueRow:
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


class Queues:
    """Queues by account; names are unique per account."""

    def __init__(self, db: Database, clock: Clock, *, default_json_encoding: str = "plain") -> None:
        self.db = db
        self.clock = clock
        self.default_json_encoding = default_json_encoding

    def by_name(self, account_id: str, name: str) -> QueueRow | None:
        row = self.db.row("SELECT * FROM queues WHERE account_id = ? AND queue_name = ?", (account_id, name))
        return row_to_queue(row) if row else None

    def get(self, account_id: str, queue_id: str) -> QueueRow | None:
        row = self.db.row(
            "SELECT * FROM queues WHERE account_id = ? AND queue_id = ?", (account_id, queue_id)
        )
        return row_to_queue(row) if row else None

    def all(self, account_id: str | None = None) -> list[QueueRow]:
        """Every queue (of ``account_id``, or of every account), oldest first."""
        if account_id is None:
            rows = self.db.rows("SELECT * FROM queues ORDER BY rowid")
        else:
            rows = self.db.rows("SELECT * FROM queues WHERE account_id = ? ORDER BY rowid", (account_id,))
        return [row_to_queue(r) for r in rows]

    def insert(
        self, conn: sqlite3.Connection, account_id: str, name: str, settings: dict[str, Any]
    ) -> QueueRow:
        """A new queue, inside the caller's transaction ``conn``."""
        now = iso(self.clock.now_ms())
        options = {"json_body_encoding": self.default_json_encoding}
        q = QueueRow(new_id(), account_id, name, now, now, settings, None, options, {})
        conn.execute(
            "INSERT INTO queues (queue_id, account_id, queue_name, created_on, modified_on, settings,"
            " consumer, options, purge) VALUES (?, ?, ?, ?, ?, ?, NULL, ?, '{}')",
            (q.queue_id, account_id, name, now, now, json.dumps(settings), json.dumps(options)),
        )
        return q

    def named_or_new(
        self, conn: sqlite3.Connection, account_id: str, name: str, settings: dict[str, Any] | None = None
    ) -> str:
        """The id of queue ``name``, created if missing (like Cloudflare does for a dead letter queue)
        with ``settings`` (default: the default settings)."""
        row = conn.execute(
            "SELECT queue_id FROM queues WHERE account_id = ? AND queue_name = ?", (account_id, name)
        ).fetchone()
        if row:
            return str(row["queue_id"])
        return self.insert(conn, account_id, name, settings or _base_settings()).queue_id

    def upsert(
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
        (they are filled in). A ``dead_letter_queue`` that does not exist is created, like Cloudflare does:
        with the settings of this queue when this queue is new too, else with the default settings.
        """
        with self.db.tx() as conn:
            row = conn.execute(
                "SELECT * FROM queues WHERE account_id = ? AND queue_name = ?", (account_id, name)
            ).fetchone()
            q = row_to_queue(row) if row else self.insert(conn, account_id, name, _base_settings())
            if settings:
                q.settings.update(settings)
            if options:
                q.options.update(options)
            if consumer is not None:
                self._set_consumer(conn, q, consumer, dict(q.settings) if row is None else _base_settings())
            q.modified_on = iso(self.clock.now_ms())
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

    def _set_consumer(
        self, conn: sqlite3.Connection, q: QueueRow, consumer: dict[str, Any], dlq_settings: dict[str, Any]
    ) -> None:
        old = q.consumer or {}
        full = dict(consumer)
        full["consumer_id"] = old.get("consumer_id") or new_id()
        full["created_on"] = old.get("created_on") or iso(self.clock.now_ms())
        full["queue_name"] = q.queue_name
        q.consumer = full
        dlq = full.get("dead_letter_queue") or ""
        if dlq and dlq != q.queue_name:
            self.named_or_new(conn, q.account_id, dlq, dlq_settings)

    def set_option(self, queue: QueueRow, key: str, value: Any) -> None:
        """Set (or with ``None`` remove) a sandbox option of ``queue`` (``forward_url``, ...)."""
        with self.db.tx() as conn:
            q = self.get(queue.account_id, queue.queue_id)
            if q is None:
                return
            if value is None:
                q.options.pop(key, None)
            else:
                q.options[key] = value
            conn.execute(
                "UPDATE queues SET options = ? WHERE queue_id = ?", (json.dumps(q.options), q.queue_id)
            )

    def set_purge(self, conn: sqlite3.Connection, queue: QueueRow, status: dict[str, Any]) -> None:
        conn.execute("UPDATE queues SET purge = ? WHERE queue_id = ?", (json.dumps(status), queue.queue_id))
