"""The replay ledger: one SQLite file (WAL mode) that makes a replay crash-safe and auditable.

Each planned message moves ``planned -> pushing -> pushed | ambiguous -> settled``:

- ``pushing`` is committed *before* its batch is sent; a process that dies then leaves it there, and
  the next run turns it into ``ambiguous`` (it may or may not have been enqueued);
- ``pushed`` is committed only after the API confirmed the batch;
- ``ambiguous`` messages are pushed again with the same idempotency keys; they keep
  ``possible_duplicate = 1`` for ever, so the postmortem lists every message that may exist twice;
  ``push_attempts`` counts the push requests that may have put a copy of it on the target (a push the
  API refused, e.g. a 429, or one that never connected, is not counted): the copies that may exist;
- ``settled`` means pushed *and* gone from the DLQ (acked, or purged by ref). A pushed message whose
  original could not be removed stays ``pushed`` with ``still_in_dlq = 1`` and is settled next run.

Nothing is ever deleted from the ledger. Every API request the runner sends is logged in
``requests`` first, so the request budget holds across restarts, and ``runs``/``events`` say who ran
what, when, and what happened. ``meta.cancel_requested`` is the flag ``replay cancel`` sets.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edgeinvestigate.errors import ReplayError, ReplayRefusedError

__all__ = ["STATES", "Ledger", "default_ledger_path"]

STATES = ("planned", "pushing", "pushed", "ambiguous", "settled")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS messages (
    message_id TEXT PRIMARY KEY,
    replay_id TEXT NOT NULL,
    batch INTEGER NOT NULL,
    lease_id TEXT,
    state TEXT NOT NULL CHECK (state IN ('planned', 'pushing', 'pushed', 'ambiguous', 'settled')),
    push_attempts INTEGER NOT NULL DEFAULT 0,
    possible_duplicate INTEGER NOT NULL DEFAULT 0,
    ambiguous_reason TEXT,
    still_in_dlq INTEGER NOT NULL DEFAULT 0,
    removal TEXT,
    removal_tried TEXT,
    last_error TEXT,
    pushed_at REAL,
    settled_at REAL,
    updated_at REAL
);
CREATE INDEX IF NOT EXISTS messages_state ON messages (state, batch);
CREATE TABLE IF NOT EXISTS runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    user TEXT, host TEXT, pid INTEGER, argv TEXT,
    rate REAL, max_requests_per_5min INTEGER,
    started_at REAL, heartbeat_at REAL, ended_at REAL, outcome TEXT
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL, run_id INTEGER, kind TEXT NOT NULL, batch INTEGER, n INTEGER, detail TEXT
);
CREATE TABLE IF NOT EXISTS requests (ts REAL NOT NULL, kind TEXT NOT NULL, run_id INTEGER);
CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts);
"""


def default_ledger_path(plan_path: str | Path) -> Path:
    """``plan.json`` -> ``plan.ledger.sqlite`` next to it."""
    p = Path(plan_path)
    return p.with_name(p.stem + ".ledger.sqlite")


def _chunks(items: Sequence[str], n: int = 500) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


class Ledger:
    """A replay ledger file. Open with :meth:`open`; every method commits before it returns."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn

    @classmethod
    def open(cls, path: str | Path, *, create: bool = True) -> Ledger:
        p = Path(path)
        if not create and not p.exists():
            raise ReplayError(
                f"no ledger at {p}: this plan has not been run yet",
                hint="run it with: edgeinvestigate replay run PLAN (or pass --ledger PATH)",
            )
        conn = sqlite3.connect(p, timeout=30.0, isolation_level=None, check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA busy_timeout = 30000")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            conn.close()
            raise ReplayError(f"{p}: SQLite could not switch the ledger to WAL mode (got {mode})")
        conn.execute("PRAGMA synchronous = FULL")
        if create:
            conn.executescript("BEGIN IMMEDIATE;\n" + _SCHEMA + "\nCOMMIT;")  # all tables at once
        elif (
            conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'messages'").fetchone()
            is None
        ):
            conn.close()
            raise ReplayError(
                f"the ledger {p} is not initialised yet (a run is starting) or is not a replay ledger",
                hint="wait a second and try again, or pass --ledger with the right file",
            )
        return cls(p, conn)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        else:
            self._conn.execute("COMMIT")

    # -- meta --------------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def flag_pushed_elsewhere(self, reasons: dict[str, str]) -> int:
        """Mark messages that another plan already pushed (its original not confirmed removed) as
        possible duplicates, with the reason; they are pushed again under the same idempotency key."""
        n = 0
        with self._tx() as c:
            for mid, why in reasons.items():
                n += c.execute(
                    "UPDATE messages SET possible_duplicate = 1, "
                    "ambiguous_reason = coalesce(ambiguous_reason, ?) "
                    "WHERE message_id = ? AND possible_duplicate = 0",
                    (why, mid),
                ).rowcount
        return n

    def set_meta(self, key: str, value: str | None) -> None:
        with self._tx() as c:
            if value is None:
                c.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                c.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def meta(self) -> dict[str, str]:
        return {r[0]: r[1] for r in self._conn.execute("SELECT key, value FROM meta")}

    # -- set-up ------------------------------------------------------------------------------------
    def init_plan(
        self,
        *,
        plan_id: str,
        content_hash: str,
        plan_path: str,
        rows: Iterable[tuple[str, str, int, str | None]],
    ) -> int:
        """Bind the ledger to one plan and add its messages as ``planned`` (once). Returns the count.

        A ledger made for a different plan (content hash) is refused, never mixed.
        """
        existing = self.get_meta("content_hash")
        if existing is not None and existing != content_hash:
            raise ReplayRefusedError(
                f"the ledger {self.path} belongs to another plan (hash {existing[:16]}..., this plan is "
                f"{content_hash[:16]}...)",
                hint="pass --ledger with a new path for a new plan; never reuse a ledger",
            )
        now = time.time()
        with self._tx() as c:
            if existing is None:
                c.executemany(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                    [
                        ("plan_id", plan_id),
                        ("content_hash", content_hash),
                        ("plan_path", str(Path(plan_path).resolve())),
                        ("created_at", repr(now)),
                        ("format", "edgeinvestigate.replay-ledger/1"),
                    ],
                )
            c.executemany(
                "INSERT OR IGNORE INTO messages (message_id, replay_id, batch, lease_id, state, updated_at) "
                "VALUES (?, ?, ?, ?, 'planned', ?)",
                [(mid, rid, batch, lease, now) for mid, rid, batch, lease in rows],
            )
        return int(self._conn.execute("SELECT count(*) FROM messages").fetchone()[0])

    def recover(self, run_id: int | None) -> int:
        """After a crash: messages left ``pushing`` may have been enqueued; mark them ambiguous."""
        now = time.time()
        with self._tx() as c:
            cur = c.execute(
                "UPDATE messages SET state = 'ambiguous', possible_duplicate = 1, "
                "ambiguous_reason = coalesce(ambiguous_reason, 'interrupted while pushing'), updated_at = ? "
                "WHERE state = 'pushing'",
                (now,),
            )
            n = cur.rowcount
            if n:
                c.execute(
                    "INSERT INTO events (ts, run_id, kind, n, detail) VALUES (?, ?, 'recovered', ?, ?)",
                    (now, run_id, n, "messages left 'pushing' by an interrupted run are now 'ambiguous'"),
                )
            c.execute(
                "UPDATE runs SET ended_at = heartbeat_at, outcome = 'interrupted' "
                "WHERE ended_at IS NULL AND run_id IS NOT ?",
                (run_id,),
            )
        return n

    # -- runs and events ---------------------------------------------------------------------------
    def begin_run(self, *, user: str, host: str, argv: Sequence[str], rate: float, max_requests: int) -> int:
        now = time.time()
        with self._tx() as c:
            cur = c.execute(
                "INSERT INTO runs (user, host, pid, argv, rate, max_requests_per_5min, started_at, "
                "heartbeat_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (user, host, os.getpid(), json.dumps(list(argv)), rate, max_requests, now, now),
            )
            run_id = int(cur.lastrowid or 0)
            c.execute(
                "INSERT INTO events (ts, run_id, kind, detail) VALUES (?, ?, 'run_started', ?)",
                (now, run_id, f"{user}@{host}"),
            )
        return run_id

    def heartbeat(self, run_id: int) -> None:
        with self._tx() as c:
            c.execute("UPDATE runs SET heartbeat_at = ? WHERE run_id = ?", (time.time(), run_id))

    def end_run(self, run_id: int, outcome: str) -> None:
        now = time.time()
        with self._tx() as c:
            c.execute(
                "UPDATE runs SET ended_at = ?, heartbeat_at = ?, outcome = ? WHERE run_id = ?",
                (now, now, outcome, run_id),
            )
            c.execute(
                "INSERT INTO events (ts, run_id, kind, detail) VALUES (?, ?, 'run_ended', ?)",
                (now, run_id, outcome),
            )

    def event(
        self,
        run_id: int | None,
        kind: str,
        *,
        batch: int | None = None,
        n: int | None = None,
        detail: str = "",
    ) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT INTO events (ts, run_id, kind, batch, n, detail) VALUES (?, ?, ?, ?, ?, ?)",
                (time.time(), run_id, kind, batch, n, detail),
            )

    def record_request(self, kind: str, run_id: int | None, ts: float | None = None) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT INTO requests (ts, kind, run_id) VALUES (?, ?, ?)", (ts or time.time(), kind, run_id)
            )

    def request_times(self, since: float) -> list[float]:
        """Wall-clock times of the requests sent since ``since`` (all runs): the sliding budget."""
        return [
            float(r[0])
            for r in self._conn.execute("SELECT ts FROM requests WHERE ts >= ? ORDER BY ts", (since,))
        ]

    # -- transitions -------------------------------------------------------------------------------
    def start_push(
        self, ids: Sequence[str], run_id: int, *, batch: int | None = None, ts: float | None = None
    ) -> None:
        """Commit ``pushing`` (and log the request) before the batch is sent.

        A message that was already ``pushing``/``ambiguous`` may exist on the target: it becomes a
        possible duplicate.
        """
        now = ts if ts is not None else time.time()
        with self._tx() as c:
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                c.execute(
                    "UPDATE messages SET possible_duplicate = 1 "
                    f"WHERE message_id IN ({marks}) AND state IN ('pushing', 'ambiguous')",
                    list(chunk),
                )
                c.execute(
                    "UPDATE messages SET state = 'pushing', push_attempts = push_attempts + 1, "
                    "updated_at = ? "
                    f"WHERE message_id IN ({marks}) AND state IN ('planned', 'pushing', 'ambiguous')",
                    [now, *chunk],
                )
            c.execute("INSERT INTO requests (ts, kind, run_id) VALUES (?, 'push', ?)", (now, run_id))
            c.execute(
                "INSERT INTO events (ts, run_id, kind, batch, n) VALUES (?, ?, 'push_sent', ?, ?)",
                (now, run_id, batch, len(ids)),
            )

    def push_confirmed(self, ids: Sequence[str], run_id: int, *, batch: int | None = None) -> None:
        now = time.time()
        with self._tx() as c:
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                c.execute(
                    "UPDATE messages SET state = 'pushed', pushed_at = ?, last_error = NULL, updated_at = ? "
                    f"WHERE message_id IN ({marks}) AND state IN ('pushing', 'ambiguous')",
                    [now, now, *chunk],
                )
            c.execute(
                "INSERT INTO events (ts, run_id, kind, batch, n) VALUES (?, ?, 'push_confirmed', ?, ?)",
                (now, run_id, batch, len(ids)),
            )

    def push_rejected(
        self,
        ids: Sequence[str],
        run_id: int,
        error: str,
        *,
        batch: int | None = None,
        kind: str = "push_rejected",
    ) -> None:
        """The API refused the batch (nothing was enqueued by *this* attempt): back to be pushed again."""
        now = time.time()
        with self._tx() as c:
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                c.execute(
                    "UPDATE messages SET "
                    "state = CASE WHEN possible_duplicate = 1 THEN 'ambiguous' ELSE 'planned' END, "
                    "push_attempts = max(push_attempts - 1, 0), "  # a refused push made no copy
                    f"last_error = ?, updated_at = ? WHERE message_id IN ({marks}) AND state = 'pushing'",
                    [error, now, *chunk],
                )
            c.execute(
                "INSERT INTO events (ts, run_id, kind, batch, n, detail) VALUES (?, ?, ?, ?, ?, ?)",
                (now, run_id, kind, batch, len(ids), error),
            )

    def push_ambiguous(
        self, ids: Sequence[str], run_id: int, reason: str, *, batch: int | None = None
    ) -> None:
        """The batch may or may not have been enqueued (timeout after sending, 5xx)."""
        now = time.time()
        with self._tx() as c:
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                c.execute(
                    "UPDATE messages SET state = 'ambiguous', possible_duplicate = 1, ambiguous_reason = ?, "
                    f"last_error = ?, updated_at = ? WHERE message_id IN ({marks}) AND state = 'pushing'",
                    [reason, reason, now, *chunk],
                )
            c.execute(
                "INSERT INTO events (ts, run_id, kind, batch, n, detail) "
                "VALUES (?, ?, 'push_ambiguous', ?, ?, ?)",
                (now, run_id, batch, len(ids), reason),
            )

    def settle(self, ids: Sequence[str], run_id: int, how: str) -> None:
        """Pushed and gone from the DLQ (``how``: ``ack``, ``purge`` or ``absent``)."""
        if not ids:
            return
        now = time.time()
        with self._tx() as c:
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                c.execute(
                    "UPDATE messages SET state = 'settled', removal = ?, still_in_dlq = 0, settled_at = ?, "
                    f"updated_at = ? WHERE message_id IN ({marks}) AND state = 'pushed'",
                    [how, now, now, *chunk],
                )
            c.execute(
                "INSERT INTO events (ts, run_id, kind, n, detail) VALUES (?, ?, 'settled', ?, ?)",
                (now, run_id, len(ids), how),
            )

    def mark_removal_attempt(self, ids: Sequence[str], how: str) -> None:
        """Commit that a removal (``ack``/``purge``) of these originals is about to be sent."""
        with self._tx() as c:
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                c.execute(
                    f"UPDATE messages SET removal_tried = ? WHERE message_id IN ({marks})", [how, *chunk]
                )

    def clear_removal_attempt(self, ids: Sequence[str]) -> None:
        """The removal was refused (nothing was deleted): a later peek that misses these originals must
        not take them for gone."""
        with self._tx() as c:
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                c.execute(
                    f"UPDATE messages SET removal_tried = NULL WHERE message_id IN ({marks})", list(chunk)
                )

    def removal_attempted(self, ids: Sequence[str]) -> set[str]:
        out: set[str] = set()
        for chunk in _chunks(list(ids)):
            marks = ",".join("?" * len(chunk))
            rows = self._conn.execute(
                "SELECT message_id FROM messages WHERE removal_tried IS NOT NULL "
                f"AND message_id IN ({marks})",
                list(chunk),
            )
            out.update(r[0] for r in rows)
        return out

    def mark_still_in_dlq(self, ids: Sequence[str], run_id: int, reason: str) -> None:
        if not ids:
            return
        now = time.time()
        with self._tx() as c:
            for chunk in _chunks(ids):
                marks = ",".join("?" * len(chunk))
                c.execute(
                    f"UPDATE messages SET still_in_dlq = 1, last_error = ?, updated_at = ? "
                    f"WHERE message_id IN ({marks}) AND state = 'pushed'",
                    [reason, now, *chunk],
                )
            c.execute(
                "INSERT INTO events (ts, run_id, kind, n, detail) VALUES (?, ?, 'still_in_dlq', ?, ?)",
                (now, run_id, len(ids), reason),
            )

    # -- queries -----------------------------------------------------------------------------------
    def last_push(self) -> tuple[float, int] | None:
        """Wall-clock time and size of the last batch sent (by any run), or None."""
        row = self._conn.execute(
            "SELECT ts, n FROM events WHERE kind = 'push_sent' ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return None if row is None else (float(row[0]), int(row[1] or 0))

    def ids_in(self, states: Sequence[str], *, batch: int | None = None) -> list[str]:
        marks = ",".join("?" * len(states))
        sql = f"SELECT message_id FROM messages WHERE state IN ({marks})"
        args: list[Any] = list(states)
        if batch is not None:
            sql += " AND batch = ?"
            args.append(batch)
        return [r[0] for r in self._conn.execute(sql + " ORDER BY batch, rowid", args)]

    def states(self, ids: Sequence[str] | None = None) -> dict[str, str]:
        if ids is None:
            return {r[0]: r[1] for r in self._conn.execute("SELECT message_id, state FROM messages")}
        out: dict[str, str] = {}
        for chunk in _chunks(list(ids)):
            marks = ",".join("?" * len(chunk))
            out.update(
                {
                    r[0]: r[1]
                    for r in self._conn.execute(
                        f"SELECT message_id, state FROM messages WHERE message_id IN ({marks})", list(chunk)
                    )
                }
            )
        return out

    def pending_batches(self) -> list[int]:
        return [
            int(r[0])
            for r in self._conn.execute(
                "SELECT DISTINCT batch FROM messages WHERE state != 'settled' ORDER BY batch"
            )
        ]

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        for state, n in self._conn.execute("SELECT state, count(*) FROM messages GROUP BY state"):
            out[state] = int(n)
        return out

    def totals(self) -> dict[str, int]:
        row = self._conn.execute(
            "SELECT count(*), coalesce(sum(possible_duplicate), 0), coalesce(sum(still_in_dlq), 0), "
            "coalesce(sum(push_attempts), 0) FROM messages"
        ).fetchone()
        return {
            "messages": row[0],
            "possible_duplicates": row[1],
            "still_in_dlq": row[2],
            "push_attempts": row[3],
        }

    def event_counts(self) -> dict[str, int]:
        return {
            r[0]: int(r[1]) for r in self._conn.execute("SELECT kind, count(*) FROM events GROUP BY kind")
        }

    def copies(self, ids: Sequence[str]) -> int:
        """Push requests that may have put a copy of ``ids`` on the target (refused ones not counted)."""
        total = 0
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            row = self._conn.execute(
                f"SELECT coalesce(sum(push_attempts), 0) FROM messages WHERE message_id IN ({marks})",
                list(chunk),
            ).fetchone()
            total += int(row[0])
        return total

    def capped_batches(self) -> dict[int, list[str]]:
        """Batches a run stopped re-sending after too many unanswered pushes (an ``ambiguous_cap``
        event) whose messages are still ``ambiguous``: batch -> message ids."""
        capped = {
            int(r[0])
            for r in self._conn.execute("SELECT DISTINCT batch FROM events WHERE kind = 'ambiguous_cap'")
            if r[0] is not None
        }
        out: dict[int, list[str]] = {}
        for b in sorted(capped):
            ids = self.ids_in(["ambiguous"], batch=b)
            if ids:
                out[b] = ids
        return out

    def ambiguous_batches(self) -> int:
        return int(
            self._conn.execute("SELECT count(*) FROM events WHERE kind = 'push_ambiguous'").fetchone()[0]
        )

    def last_errors(self, n: int = 5) -> list[dict[str, Any]]:
        rows = self._conn.execute(
            "SELECT ts, kind, batch, detail FROM events WHERE kind IN "
            "('push_rejected', 'push_ambiguous', 'rate_limited', 'server_error', 'remove_failed', 'error') "
            "ORDER BY id DESC LIMIT ?",
            (n,),
        )
        return [dict(r) for r in rows]

    def runs(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._conn.execute("SELECT * FROM runs ORDER BY run_id")]

    def rows(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._conn.execute("SELECT * FROM messages ORDER BY batch, rowid")]

    def events(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self._conn.execute("SELECT * FROM events ORDER BY id")]

    def pushed_times(self, since: float) -> list[float]:
        return [
            float(r[0])
            for r in self._conn.execute("SELECT pushed_at FROM messages WHERE pushed_at >= ?", (since,))
        ]

    # -- cancel ------------------------------------------------------------------------------------
    def request_cancel(self, who: str) -> None:
        self.set_meta("cancel_requested", json.dumps({"at": time.time(), "by": who}))

    def cancel_requested(self) -> bool:
        return self.get_meta("cancel_requested") is not None

    def clear_cancel(self) -> None:
        self.set_meta("cancel_requested", None)
