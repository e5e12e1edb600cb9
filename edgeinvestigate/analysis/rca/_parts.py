"""What the analysis computes from the evidence before it ranks hypotheses (:class:`Parts`), by
either engine: SQL over the frames (:mod:`._sql_path`) or pandas in memory (:mod:`._pandas_path`, the
reference the SQL is checked against)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from edgeinvestigate.analysis.rca._buckets import choose_bucket
from edgeinvestigate.analysis.rca._incident import RetriedTimes
from edgeinvestigate.analysis.rca._values import as_utc, pydt
from edgeinvestigate.models.findings import (
    AttemptsBin,
    BlastRadiusRow,
    ClusterShift,
    Deploy,
    LimitHit,
    LimitStats,
    RateRow,
    RetryStorm,
    TimelineRow,
    TimeWindow,
)

__all__ = ["Parts", "Window", "window_of"]


@dataclass(frozen=True)
class Window:
    """The evidence's window (``None`` without any time), its length, the bucket and the invocations'
    own first and last time."""

    window: TimeWindow | None
    span: pd.Timedelta
    bucket: int
    inv_start: Any
    inv_end: Any

    @property
    def freq(self) -> pd.Timedelta:
        return pd.Timedelta(seconds=self.bucket)

    def inv_times(self) -> pd.DataFrame:
        """The invocations' first and last time as a frame (what the hypotheses read of them)."""
        times = [t for t in (self.inv_start, self.inv_end) if t is not None]
        return pd.DataFrame({"ts": pd.Series(times, dtype="datetime64[ns, UTC]")})


def window_of(inv_start: Any, inv_end: Any, errors: pd.DataFrame, bucket_seconds: int | None) -> Window:
    """The window that the invocations (first and last time) and the error rows span."""
    times = [t for t in (inv_start, inv_end, errors["ts"].min(), errors["ts"].max()) if as_utc(t) is not None]
    if not times:
        window, span = None, pd.Timedelta(0)
    else:
        start, end = min(times), max(times)
        window = TimeWindow(start=pydt(as_utc(start)), end=pydt(as_utc(end)))
        span = pd.Timestamp(end) - pd.Timestamp(start)
    start_inv = as_utc(inv_start)
    end_inv = as_utc(inv_end)
    return Window(window, span, bucket_seconds or choose_bucket(span), start_inv, end_inv)


@dataclass
class Parts:
    """The aggregates of one analysis (every field of the findings that is not a hypothesis)."""

    win: Window
    rows: dict[str, int]
    n_invocations: int
    n_failed: int
    timeline: list[TimelineRow]
    failed_rate: list[RateRow]
    attempts: list[AttemptsBin]
    limits: LimitStats
    limit_hits: list[LimitHit]
    hits: pd.DataFrame
    limit_types: list[str]
    deploys: list[Deploy]
    sources: list[str]
    shifts: list[ClusterShift]
    payload: pd.DataFrame
    blast_radius: list[BlastRadiusRow]
    storms: list[RetryStorm]
    retried: RetriedTimes
