"""The sandbox's Worker deployments: the history of which script versions served traffic, per script.

Each deployment is stored as the API object of Cloudflare's Workers deployments API::

    {"id", "created_on", "source", "strategy": "percentage",
     "versions": [{"version_id", "percentage"}], "annotations": {"workers/message", "workers/triggered_by"},
     "author_email"}

The admin API loads a script's history (``simulate --sandbox`` loads the versions of its scenario); the
REST API lists it (newest first: the first one serves traffic) and adds to it (a rollback is a new
deployment of an older version).
"""

from __future__ import annotations

import json
from typing import Any

from edgeinvestigate.sandbox._clock import Clock
from edgeinvestigate.sandbox._database import Database

__all__ = ["Deployments", "known_versions"]


class Deployments:
    """Deployments of every script of every account."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock

    def replace(self, account_id: str, script: str, deployments: list[tuple[int, dict[str, Any]]]) -> int:
        """Replace the history of ``script`` by ``(created_ms, deployment)`` pairs; returns how many."""
        with self.db.tx() as conn:
            conn.execute(
                "DELETE FROM deployments WHERE account_id = ? AND script_name = ?", (account_id, script)
            )
            conn.executemany(
                "INSERT INTO deployments (account_id, script_name, deployment_id, created_ms, body)"
                " VALUES (?, ?, ?, ?, ?)",
                [(account_id, script, d["id"], ms, json.dumps(d)) for ms, d in deployments],
            )
        return len(deployments)

    def add(self, account_id: str, script: str, created_ms: int, deployment: dict[str, Any]) -> None:
        with self.db.tx() as conn:
            conn.execute(
                "INSERT INTO deployments (account_id, script_name, deployment_id, created_ms, body)"
                " VALUES (?, ?, ?, ?, ?)",
                (account_id, script, deployment["id"], created_ms, json.dumps(deployment)),
            )

    def of(self, account_id: str, script: str, *, until_ms: int | None = None) -> list[dict[str, Any]]:
        """The deployments of ``script``, newest first (the first one is live); with ``until_ms`` only
        those made by then (a simulated incident dated partly in the future loads later ones too)."""
        rows = self.db.rows(
            "SELECT body FROM deployments WHERE account_id = ? AND script_name = ? AND created_ms <= ?"
            " ORDER BY created_ms DESC, seq DESC",
            (account_id, script, 2**62 if until_ms is None else until_ms),
        )
        return [json.loads(r["body"]) for r in rows]

    def counts(self) -> dict[str, dict[str, int]]:
        """Deployments per account and script."""
        rows = self.db.rows(
            "SELECT account_id, script_name, COUNT(*) AS n FROM deployments GROUP BY account_id, script_name"
        )
        out: dict[str, dict[str, int]] = {}
        for r in rows:
            out.setdefault(r["account_id"], {})[r["script_name"]] = int(r["n"])
        return out


def known_versions(deployments: list[dict[str, Any]]) -> set[str]:
    """Every version id that appears in ``deployments``."""
    return {str(v.get("version_id")) for d in deployments for v in d.get("versions") or []}
