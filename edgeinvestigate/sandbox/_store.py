"""The sandbox's state: queues, messages, leases, telemetry events and tails, in one SQLite database.

``Store`` holds the parts, which share the database (:mod:`._database`) and the clock (:mod:`._clock`):
``queues`` (:mod:`._queues`), ``messages`` with their leases and counters (:mod:`._messages`),
``events`` (Workers Logs, :mod:`._events`), ``tails`` (:mod:`._tail_registry`) and ``deployments``
(Worker deployments, :mod:`._deployments`).
"""

from __future__ import annotations

from pathlib import Path

from edgeinvestigate.sandbox._analytics import Analytics
from edgeinvestigate.sandbox._clock import Clock
from edgeinvestigate.sandbox._database import Database
from edgeinvestigate.sandbox._deployments import Deployments
from edgeinvestigate.sandbox._events import Events
from edgeinvestigate.sandbox._messages import Messages
from edgeinvestigate.sandbox._queues import Queues
from edgeinvestigate.sandbox._tail_registry import TailRegistry

__all__ = ["Store"]


class Store:
    """SQLite-backed state of every account served by one sandbox process."""

    def __init__(self, state_dir: Path | None = None, *, default_json_encoding: str = "plain") -> None:
        self.state_dir = state_dir
        self.db = Database(state_dir)
        self.clock = Clock()
        self.queues = Queues(self.db, self.clock, default_json_encoding=default_json_encoding)
        self.analytics = Analytics(self.db)  # per-minute counters and samples for /graphql
        self.messages = Messages(self.db, self.clock, self.queues, self.analytics)
        self.events = Events(self.db)
        self.tails = TailRegistry(self.db, self.clock)
        self.deployments = Deployments(self.db, self.clock)

    def reset(self) -> None:
        """Forget everything: every table, and the clock's offset."""
        self.db.clear()
        self.analytics.clear()
        self.events.forget()
        self.clock.reset()

    def close(self) -> None:
        self.db.close()
