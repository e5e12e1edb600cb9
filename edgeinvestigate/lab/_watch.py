"""Follow the collector's TraceItem JSONL while the lab runs: job events by job id.

The lab needs to know when the runtime has finished with a set of jobs (before a "deploy", which
restarts ``wrangler dev`` and would drop in-memory queues, and before collecting). It reads the
structured log lines the lab Workers write (``{"event", "jobId", ...}``) from the TraceItems as
they arrive. This is only the lab's progress gauge; the evidence itself is loaded with
``edgeinvestigate.load`` like any other TraceItem file.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["TERMINAL_EVENTS", "JobEvent", "TraceWatcher"]

#: events after which the runtime has nothing more to do with a job
TERMINAL_EVENTS = frozenset({"job_succeeded", "dlq_forwarded", "job_duplicate_skipped"})


@dataclass(frozen=True)
class JobEvent:
    event: str
    job_id: str | None
    fields: dict[str, Any]
    ts_ms: int | None
    outcome: str


@dataclass
class TraceWatcher:
    """Incrementally reads complete lines of a TraceItem JSONL file."""

    path: Path
    offset: int = 0
    lines: int = 0
    items: int = 0
    exceptions: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    by_job: dict[str, list[JobEvent]] = field(default_factory=lambda: defaultdict(list))

    def poll(self) -> int:
        """Read what was appended since the last call; returns the number of new lines."""
        try:
            with self.path.open("rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except FileNotFoundError:
            return 0
        end = data.rfind(b"\n")
        if end < 0:
            return 0
        chunk = data[: end + 1]
        self.offset += len(chunk)
        new = 0
        for raw in chunk.splitlines():
            if not raw.strip():
                continue
            new += 1
            self.lines += 1
            try:
                items = json.loads(raw)
            except ValueError:
                continue
            for item in items if isinstance(items, list) else [items]:
                if isinstance(item, dict):
                    self._item(item)
        return new

    def _item(self, item: dict[str, Any]) -> None:
        self.items += 1
        outcome = str(item.get("outcome"))
        self.outcomes[outcome] += 1
        self.exceptions += len(item.get("exceptions") or [])
        for entry in item.get("logs") or []:
            message = entry.get("message") if isinstance(entry, dict) else None
            args = message if isinstance(message, list) else [message]
            for arg in args:
                obj = _as_event(arg)
                if obj is None:
                    continue
                event = str(obj["event"])
                job_id = obj.get("jobId")
                self.events[event] += 1
                ev = JobEvent(
                    event, job_id if isinstance(job_id, str) else None, obj, entry.get("timestamp"), outcome
                )
                if ev.job_id is not None:
                    self.by_job[ev.job_id].append(ev)

    def last_event(self, job_id: str) -> str | None:
        evs = self.by_job.get(job_id)
        return evs[-1].event if evs else None

    def has_event(self, job_id: str, event: str, **match: Any) -> bool:
        return any(
            e.event == event and all(e.fields.get(k) == v for k, v in match.items())
            for e in self.by_job.get(job_id, [])
        )

    def settled(self, job_ids: list[str]) -> list[str]:
        """The job ids (of ``job_ids``) that reached a terminal event."""
        return [j for j in job_ids if any(e.event in TERMINAL_EVENTS for e in self.by_job.get(j, []))]

    def pending(self, job_ids: list[str]) -> list[str]:
        done = set(self.settled(job_ids))
        return [j for j in job_ids if j not in done]


def _as_event(arg: Any) -> dict[str, Any] | None:
    if isinstance(arg, str) and arg.startswith("{"):
        try:
            arg = json.loads(arg)
        except ValueError:
            return None
    if isinstance(arg, dict) and "event" in arg:
        return arg
    return None
