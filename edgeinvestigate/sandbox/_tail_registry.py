"""The tails created over the API (``POST .../workers/scripts/{script}/tails``), persisted with the state.

The sockets connected to them live in the tail hub (:mod:`._tail_hub`), not here.
"""

from __future__ import annotations

import json
from typing import Any

from edgeinvestigate.sandbox._clock import Clock
from edgeinvestigate.sandbox._database import Database, new_id

__all__ = ["TailRegistry"]


class TailRegistry:
    """Tails as ``{tail_id, account_id, script_name, filters, created_ms, expires_ms}``."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def create(self, account_id: str, script: str, filters: list[Any], ttl_ms: int) -> dict[str, Any]:
        now = self.clock.now_ms()
        tail = {
            "tail_id": new_id(),
            "account_id": account_id,
            "script_name": script,
            "filters": filters,
            "created_ms": now,
            "expires_ms": now + ttl_ms,
        }
        with self.db.tx() as conn:
            conn.execute(
                "INSERT INTO tails (tail_id, account_id, script_name, filters, created_ms, expires_ms)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (tail["tail_id"], account_id, script, json.dumps(filters), now, now + ttl_ms),
            )
        return tail

    def all(self, account_id: str | None = None, script: str | None = None) -> list[dict[str, Any]]:
        """Tails (of an account, of a script), oldest first."""
        sql = "SELECT * FROM tails WHERE 1 = 1"
        args: list[Any] = []
        if account_id is not None:
            sql += " AND account_id = ?"
            args.append(account_id)
        if script is not None:
            sql += " AND script_name = ?"
            args.append(script)
        rows = self.db.rows(sql + " ORDER BY created_ms", args)
        return [dict(r) | {"filters": json.loads(r["filters"])} for r in rows]

    def get(self, tail_id: str) -> dict[str, Any] | None:
        row = self.db.row("SELECT * FROM tails WHERE tail_id = ?", (tail_id,))
        return dict(row) | {"filters": json.loads(row["filters"])} if row else None

    def delete(self, account_id: str, script: str, tail_id: str) -> bool:
        with self.db.tx() as conn:
            cur = conn.execute(
                "DELETE FROM tails WHERE tail_id = ? AND account_id = ? AND script_name = ?",
                (tail_id, account_id, script),
            )
        return cur.rowcount > 0
