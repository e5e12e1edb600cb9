"""The sandbox's SQLite database: schema, opening (WAL with a state dir, else in memory), transactions.

With ``--state DIR`` the database is ``DIR/sandbox.sqlite3`` in WAL mode and every change is committed
before the HTTP response is sent, so an acknowledged push survives ``kill -9`` (a committed WAL frame is
in the OS page cache even if the process dies). Without a state dir the database lives in memory.

All calls run on the server's event-loop thread (SQLite calls are short); a lock guards the
connection anyway so the forwarder and tests that use the store directly stay safe.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edgeinvestigate.errors import SandboxError

__all__ = ["DB_NAME", "Database", "new_id"]

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
CREATE TABLE IF NOT EXISTS deployments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id TEXT NOT NULL,
    script_name TEXT NOT NULL,
    deployment_id TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deployments_by_script ON deployments (account_id, script_name, created_ms);
"""
_TABLES = ("queues", "messages", "stats", "events", "tails", "deployments")


def new_id() -> str:
    """A 32-hex-character id (queues, consumers, messages, tails)."""
    return uuid.uuid4().hex


class Database:
    """One SQLite connection with the sandbox's schema; a corrupt file is a :class:`SandboxError`."""

    def __init__(self, state_dir: Path | None = None) -> None:
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
        self.lock = threading.RLock()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """A transaction, committed when the block ends (rolled back on an exception)."""
        with self.lock, self._conn:
            yield self._conn

    def rows(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self.lock:
            return self._conn.execute(sql, args).fetchall()

    def row(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Row | None:
        with self.lock:
            row: sqlite3.Row | None = self._conn.execute(sql, args).fetchone()
        return row

    def clear(self) -> None:
        """Delete every row of every table."""
        with self.tx() as conn:
            for table in _TABLES:
                conn.execute(f"DELETE FROM {table}")

    def close(self) -> None:
        with self.lock:
            self._conn.close()
