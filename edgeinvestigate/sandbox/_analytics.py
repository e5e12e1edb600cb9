"""The sandbox's queue analytics: every operation counted in its minute, backlog sampled per minute.

What the GraphQL endpoint (:mod:`._graphql_api`) answers comes from these tables, filled by the message
store (:mod:`._messages`) inside the same transaction as the change itself, on the sandbox clock:

* ``analytics_ops``: one row per queue, minute, action, consumer type and outcome, as
  ``queueMessageOperationsAdaptiveGroups`` groups them. A push (or batch) is ``WriteMessage``; each
  message a pull delivers is ``ReadMessage`` (``consumerType`` ``http`` for an ``http_pull`` consumer,
  ``worker`` otherwise: the forwarder); an ack is ``DeleteMessage``/``success``; a retry or lease expiry
  past ``max_retries`` is ``DeleteMessage``/``dlq`` (moved to the dead letter queue, which counts a
  ``WriteMessage``) or ``DeleteMessage``/``fail`` (no DLQ: deleted). ``lagTime`` is the milliseconds
  from the message's ``timestamp_ms`` to the operation, ``retryCount`` the deliveries before this one
  (``attempts - 1``); ``billableOperations`` one per started 64 KB of a message.
* ``analytics_samples``: the backlog (messages and bytes in the queue) after every change of a queue,
  and the consumer concurrency (consumer batches in flight: pulls whose messages are still leased) at
  every pull; a minute's ``avg`` is the mean of its samples. A queue nothing touches gets no samples:
  the API's "idle queues return no data".
* ``analytics_counts``: every push, delivery, ack, retry, lease expiry and move to a DLQ per minute
  (``GET /__admin/analytics``), including those that are no ``DeleteMessage`` (a retry that will be
  delivered again, an expired lease).
* ``analytics_invocations``: ``workersInvocationsAdaptive`` rows. The sandbox runs no Workers, so
  these only come from loaded analytics (``POST /__admin/accounts/{a}/analytics``, what ``simulate
  --sandbox`` sends).

Loaded analytics (a GraphQL response body, the simulator's ``analytics/analytics.json``) add to the
same tables: counts and sums add up, a loaded backlog or concurrency average is one sample.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping
from typing import Any

from edgeinvestigate.models.analytics import BACKLOG, CONSUMERS, INVOCATIONS, OPERATIONS, parse_time_value
from edgeinvestigate.sandbox._database import Database

__all__ = ["CHUNK_BYTES", "Analytics", "consumer_kind", "minute_of"]

CHUNK_BYTES = 64 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS analytics_ops (
    account_id TEXT NOT NULL,
    queue_id TEXT NOT NULL,
    minute_ms INTEGER NOT NULL,
    action TEXT NOT NULL,
    consumer_type TEXT NOT NULL,
    outcome TEXT NOT NULL,
    count INTEGER NOT NULL,
    bytes INTEGER NOT NULL,
    billable INTEGER NOT NULL,
    lag_sum REAL NOT NULL,
    retry_sum REAL NOT NULL,
    max_size INTEGER NOT NULL,
    PRIMARY KEY (queue_id, minute_ms, action, consumer_type, outcome)
);
CREATE TABLE IF NOT EXISTS analytics_samples (
    account_id TEXT NOT NULL,
    queue_id TEXT NOT NULL,
    minute_ms INTEGER NOT NULL,
    metric TEXT NOT NULL,
    n INTEGER NOT NULL,
    sum_a REAL NOT NULL,
    sum_b REAL NOT NULL,
    PRIMARY KEY (queue_id, minute_ms, metric)
);
CREATE TABLE IF NOT EXISTS analytics_counts (
    queue_id TEXT NOT NULL,
    minute_ms INTEGER NOT NULL,
    name TEXT NOT NULL,
    value INTEGER NOT NULL,
    PRIMARY KEY (queue_id, minute_ms, name)
);
CREATE TABLE IF NOT EXISTS analytics_batches (
    lease_id TEXT PRIMARY KEY,
    queue_id TEXT NOT NULL,
    batch INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS analytics_invocations (
    account_id TEXT NOT NULL,
    script TEXT NOT NULL,
    minute_ms INTEGER NOT NULL,
    status TEXT NOT NULL,
    requests INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    subrequests INTEGER NOT NULL,
    cpu_p50 REAL,
    cpu_p99 REAL,
    PRIMARY KEY (account_id, script, minute_ms, status)
);
"""
_TABLES = (
    "analytics_ops",
    "analytics_samples",
    "analytics_counts",
    "analytics_batches",
    "analytics_invocations",
)


def minute_of(ms: int) -> int:
    """The start of the minute (epoch ms) that ``ms`` falls in."""
    return ms - ms % 60_000


def consumer_kind(consumer: Mapping[str, Any] | None) -> str:
    """``consumerType`` of a queue's consumer: ``http`` for ``http_pull``, else ``worker``."""
    return "http" if (consumer or {}).get("type", "http_pull") == "http_pull" else "worker"


def _billable(size: int) -> int:
    return max(1, -(-size // CHUNK_BYTES))


#: add one minute's operations of a queue to its counters (the row is created on first use)
_ADD_OPS = (
    "INSERT INTO analytics_ops VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (queue_id, minute_ms, action, consumer_type, outcome) DO UPDATE SET "
    "count = count + excluded.count, bytes = bytes + excluded.bytes, "
    "billable = billable + excluded.billable, lag_sum = lag_sum + excluded.lag_sum, "
    "retry_sum = retry_sum + excluded.retry_sum, max_size = MAX(max_size, excluded.max_size)"
)


class Analytics:
    """The analytics tables of one sandbox database."""

    def __init__(self, db: Database) -> None:
        self.db = db
        with db.tx() as conn:
            conn.executescript(_SCHEMA)

    def clear(self) -> None:
        with self.db.tx() as conn:
            for table in _TABLES:
                conn.execute(f"DELETE FROM {table}")

    # -- recording, inside the caller's transaction -------------------------------------------
    def op(
        self,
        conn: sqlite3.Connection,
        account_id: str,
        queue_id: str,
        now: int,
        action: str,
        messages: Iterable[tuple[int, int, int]],
        *,
        consumer_type: str = "",
        outcome: str = "",
    ) -> None:
        """Count one operation on ``messages`` = ``(size_bytes, timestamp_ms, retries)`` each."""
        items = list(messages)
        if not items:
            return
        lag = sum(max(0, now - ts) for _, ts, _ in items) if action != "WriteMessage" else 0
        conn.execute(
            _ADD_OPS,
            (
                account_id,
                queue_id,
                minute_of(now),
                action,
                consumer_type,
                outcome,
                len(items),
                sum(size for size, _, _ in items),
                sum(_billable(size) for size, _, _ in items),
                float(lag),
                float(sum(r for _, _, r in items)),
                max(size for size, _, _ in items),
            ),
        )

    def count(self, conn: sqlite3.Connection, queue_id: str, now: int, name: str, n: int = 1) -> None:
        if n:
            conn.execute(
                "INSERT INTO analytics_counts VALUES (?, ?, ?, ?) ON CONFLICT (queue_id, minute_ms, name) "
                "DO UPDATE SET value = value + excluded.value",
                (queue_id, minute_of(now), name, n),
            )

    def _sample(
        self, conn: sqlite3.Connection, account_id: str, queue_id: str, minute: int, metric: str,
        a: float, b: float, n: int = 1,
    ) -> None:  # fmt: skip
        conn.execute(
            "INSERT INTO analytics_samples VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (queue_id, minute_ms, metric) DO UPDATE SET n = n + excluded.n, "
            "sum_a = sum_a + excluded.sum_a, sum_b = sum_b + excluded.sum_b",
            (account_id, queue_id, minute, metric, n, a, b),
        )

    def backlog(self, conn: sqlite3.Connection, account_id: str, queue_id: str, now: int) -> None:
        """Sample the queue's backlog (messages, bytes) after a change."""
        row = conn.execute(
            "SELECT COUNT(*) AS n, COALESCE(SUM(LENGTH(body)), 0) AS b FROM messages WHERE queue_id = ?",
            (queue_id,),
        ).fetchone()
        self._sample(conn, account_id, queue_id, minute_of(now), "backlog", float(row["n"]), float(row["b"]))

    def pulled(
        self, conn: sqlite3.Connection, account_id: str, queue_id: str, now: int, leases: list[str]
    ) -> None:
        """A pull: remember its leases as one batch, then sample the batches in flight."""
        if leases:
            batch = conn.execute("SELECT COALESCE(MAX(batch), 0) + 1 FROM analytics_batches").fetchone()[0]
            conn.executemany(
                "INSERT OR REPLACE INTO analytics_batches VALUES (?, ?, ?)",
                [(lease, queue_id, batch) for lease in leases],
            )
        row = conn.execute(
            "SELECT COUNT(DISTINCT b.batch) FROM messages m"
            " JOIN analytics_batches b ON b.lease_id = m.lease_id WHERE m.queue_id = ?",
            (queue_id,),
        ).fetchone()
        self._sample(conn, account_id, queue_id, minute_of(now), "concurrency", float(row[0]), 0.0)

    # -- loading a GraphQL response -------------------------------------------------------------
    def load(self, account_id: str, data: Mapping[str, Any], queue_ids: Mapping[str, str]) -> dict[str, int]:
        """Add the groups of one ``{"data": {"viewer": {"accounts": [{dataset: [...]}]}}}`` body.

        ``queue_ids`` maps a ``queueId`` of the body to this sandbox's queue id (others are kept).
        Returns the rows loaded per dataset. Raises ValueError on a malformed body.
        """
        accounts = ((data.get("data") or {}).get("viewer") or {}).get("accounts")
        if not isinstance(accounts, list):
            raise ValueError("expected {data: {viewer: {accounts: [...]}}}")
        loaded: dict[str, int] = {}
        with self.db.tx() as conn:
            for account in accounts:
                if not isinstance(account, dict):
                    raise ValueError("every item of accounts must be an object")
                for dataset, groups in account.items():
                    if dataset not in (BACKLOG, CONSUMERS, OPERATIONS, INVOCATIONS):
                        raise ValueError(f"unknown dataset {dataset!r}")
                    if not isinstance(groups, list):
                        raise ValueError(f"{dataset} must be a list of groups")
                    for g in groups:
                        self._load_group(conn, account_id, dataset, g, queue_ids)
                    loaded[dataset] = loaded.get(dataset, 0) + len(groups)
        return loaded

    def _load_group(
        self, conn: sqlite3.Connection, account_id: str, dataset: str, g: Any, queue_ids: Mapping[str, str]
    ) -> None:
        if not isinstance(g, dict) or not isinstance(g.get("dimensions"), dict):
            raise ValueError(f"a {dataset} group without dimensions: {str(g)[:120]}")
        dims = g["dimensions"]
        when = dims.get("datetimeMinute") or dims.get("datetime") or dims.get("datetimeHour")
        if when is None:
            raise ValueError(f"a {dataset} group without datetimeMinute, datetime or datetimeHour")
        minute = minute_of(int(parse_time_value(when).timestamp() * 1000))
        avg, total = g.get("avg") or {}, g.get("sum") or {}
        if dataset == INVOCATIONS:
            q = g.get("quantiles") or {}
            conn.execute(
                "INSERT INTO analytics_invocations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT "
                "(account_id, script, minute_ms, status) DO UPDATE SET"
                " requests = requests + excluded.requests,"
                " errors = errors + excluded.errors, subrequests = subrequests + excluded.subrequests,"
                " cpu_p50 = excluded.cpu_p50, cpu_p99 = MAX(cpu_p99, excluded.cpu_p99)",
                (
                    account_id,
                    str(dims["scriptName"]),
                    minute,
                    str(dims.get("status", "success")),
                    int(total.get("requests", 0)),
                    int(total.get("errors", 0)),
                    int(total.get("subrequests", 0)),
                    q.get("cpuTimeP50"),
                    q.get("cpuTimeP99"),
                ),
            )
            return
        qid = queue_ids.get(str(dims["queueId"]), str(dims["queueId"]))
        if dataset == BACKLOG:
            self._sample(
                conn, account_id, qid, minute, "backlog", float(avg["messages"]), float(avg["bytes"])
            )
        elif dataset == CONSUMERS:
            self._sample(conn, account_id, qid, minute, "concurrency", float(avg["concurrency"]), 0.0)
        else:
            n = int(g.get("count", 0))
            size = int((g.get("max") or {}).get("messageSize", 0))
            conn.execute(
                _ADD_OPS,
                (
                    account_id,
                    qid,
                    minute,
                    str(dims["actionType"]),
                    str(dims.get("consumerType") or ""),
                    str(dims.get("outcome") or ""),
                    n,
                    int(total.get("bytes", 0)),
                    int(total.get("billableOperations", n)),
                    float(avg.get("lagTime", 0.0)) * n,
                    float(avg.get("retryCount", 0.0)) * n,
                    size,
                ),
            )

    # -- reading ----------------------------------------------------------------------------------
    def rows(self, dataset: str, account_id: str) -> list[sqlite3.Row]:
        """Every stored row of ``dataset`` for the account (the query engine filters and groups)."""
        if dataset == OPERATIONS:
            return self.db.rows("SELECT * FROM analytics_ops WHERE account_id = ?", (account_id,))
        if dataset == INVOCATIONS:
            return self.db.rows("SELECT * FROM analytics_invocations WHERE account_id = ?", (account_id,))
        metric = "backlog" if dataset == BACKLOG else "concurrency"
        return self.db.rows(
            "SELECT * FROM analytics_samples WHERE account_id = ? AND metric = ?", (account_id, metric)
        )

    def counts(self, queue_id: str) -> dict[int, dict[str, int]]:
        """The per-minute event counts of a queue: ``{minute_ms: {name: n}}``."""
        out: dict[int, dict[str, int]] = {}
        for r in self.db.rows(
            "SELECT minute_ms, name, value FROM analytics_counts WHERE queue_id = ? ORDER BY minute_ms",
            (queue_id,),
        ):
            out.setdefault(int(r["minute_ms"]), {})[str(r["name"])] = int(r["value"])
        return out
