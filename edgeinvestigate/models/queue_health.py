"""``QueueHealth``: one queue's analytics over the window, as the findings and the reports show it."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["QueueHealth"]


class QueueHealth(BaseModel):
    """Totals and extremes of one queue's analytics (estimates: adaptive sampling).

    ``None`` means the analytics had no data for it (an idle queue returns none), never zero.
    ``backlog_rise_at``: the first bucket where the backlog rose clearly above where it started.
    """

    model_config = ConfigDict(extra="forbid")

    queue: str
    bucket_seconds: int
    first: datetime | None
    last: datetime | None
    writes: int | None
    reads: int | None
    acked: int | None
    dead_lettered: int | None
    failed_deletes: int | None
    backlog_first: float | None
    backlog_peak: float | None
    backlog_last: float | None
    backlog_rise_at: datetime | None = None
    max_lag_ms: float | None = None
    mean_concurrency: float | None = None
    no_data: list[str] = Field(default_factory=list)
