"""Workers Logs query-API events loaded into the sandbox (admin), per account, newest first."""

from __future__ import annotations

import json
from typing import Any

from edgeinvestigate.sandbox._database import Database

__all__ = ["Events"]


class Events:
    """The events of every account; the sorted list of an account is cached until the next load."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: dict[str, list[dict[str, Any]]] = {}

    def add(self, account_id: str, events: list[dict[str, Any]]) -> int:
        with self.db.tx() as conn:
            conn.executemany(
                "INSERT INTO events (account_id, timestamp_ms, event) VALUES (?, ?, ?)",
                [(account_id, int(e["timestamp"]), json.dumps(e, separators=(",", ":"))) for e in events],
            )
        self._cache.pop(account_id, None)
        return len(events)

    def of(self, account_id: str) -> list[dict[str, Any]]:
        """Every event of an account, newest first (ties: higher ``$metadata.id`` first)."""
        cached = self._cache.get(account_id)
        if cached is None:
            rows = self.db.rows("SELECT event FROM events WHERE account_id = ?", (account_id,))
            cached = [json.loads(r["event"]) for r in rows]
            cached.sort(key=lambda e: (int(e["timestamp"]), str(e["$metadata"]["id"])), reverse=True)
            self._cache[account_id] = cached
        return cached

    def counts(self) -> dict[str, int]:
        """Events per account."""
        rows = self.db.rows("SELECT account_id, COUNT(*) AS n FROM events GROUP BY account_id")
        return {r["account_id"]: int(r["n"]) for r in rows}

    def forget(self) -> None:
        """Drop the cache (after the tables were cleared)."""
        self._cache.clear()
