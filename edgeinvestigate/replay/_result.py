"""What one ``replay run`` did: counts, requests, errors, speed, and the notes said at the end."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["RunResult", "eta_seconds"]


@dataclass
class RunResult:
    """What one ``replay run`` did (the ledger holds the full story)."""

    outcome: str  # completed | cancelled | interrupted | incomplete
    plan_id: str
    ledger: str
    counts: dict[str, int]
    messages_pushed: int = 0
    push_requests: int = 0
    requests: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    ambiguous_batches: int = 0
    possible_duplicates: int = 0
    #: push requests (all runs) that may have put a copy of a message on the target: copies that may exist
    copies_sent: int = 0
    still_in_dlq: int = 0
    #: removal rounds (peek + purge) after the last batch, and what the last peek saw at the DLQ's head
    sweep_rounds: int = 0
    head_seen: int = 0
    head_not_replayed: int = 0
    elapsed_s: float = 0.0
    push_elapsed_s: float = 0.0
    configured_rate: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def achieved_rate(self) -> float:
        return self.messages_pushed / self.push_elapsed_s if self.push_elapsed_s > 0 else 0.0

    @property
    def messages_per_push(self) -> float:
        return self.messages_pushed / self.push_requests if self.push_requests else 0.0

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["achieved_rate"] = round(self.achieved_rate, 2)
        d["messages_per_push"] = round(self.messages_per_push, 2)
        return d


def eta_seconds(remaining: int, rate: float) -> float:
    return math.inf if rate <= 0 else remaining / rate
