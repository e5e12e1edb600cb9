"""What every hypothesis kind reads: the evidence, the markers and storms found, and the clusters
that an earlier kind already explains."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pandas as pd

from edgeinvestigate.analysis.rca._values import records
from edgeinvestigate.models.findings import ClusterShift, Deploy, LimitHit, RetryStorm

__all__ = [
    "MIN_BURST_RATIO",
    "MIN_ERRORS",
    "MIN_JOBS",
    "MIN_SHARE",
    "ClusterRows",
    "Context",
    "RawHypothesis",
    "impact_jobs",
]

#: the least support of an error-based finding (bad deploy, dependency outage, poison payload, new
#: error, error spike): this many error rows ...
MIN_ERRORS: Final = 10
#: ... in this many distinct jobs (invocations when the logs carry no job ids) ...
MIN_JOBS: Final = 5
#: ... that are at least this share of the window's error rows (a handful among thousands is noise)
MIN_SHARE: Final = 0.01
#: a burst is above the background when its rate (rows per minute inside it) is at least this many
#: times the same clusters' rate in the rest of the window; below, the clusters are background level
#: and never called an outage or a spike
MIN_BURST_RATIO: Final = 4.0

#: a hypothesis before it is ranked: the fields of :class:`~edgeinvestigate.models.findings.Hypothesis`
#: but ``rank`` and ``confidence``, plus ``fit`` (how well the evidence fits)
RawHypothesis = dict[str, Any]


class ClusterRows(Mapping[str, pd.DataFrame]):
    """The error rows of each cluster (by cluster id, in id order), taken from ``errors`` when asked:
    a busy day's clusters hold millions of rows, and a copy of each kept at once would double them."""

    def __init__(self, errors: pd.DataFrame) -> None:
        self.errors = errors
        found = errors.groupby("cluster_id", sort=True).indices if len(errors) else {}
        self.positions: dict[str, np.ndarray] = {str(k): np.asarray(v) for k, v in sorted(found.items())}

    def __getitem__(self, cluster_id: str) -> pd.DataFrame:
        return self.errors.iloc[self.positions[cluster_id]]

    def __iter__(self) -> Iterator[str]:
        return iter(self.positions)

    def __len__(self) -> int:
        return len(self.positions)

    def size(self, cluster_id: str) -> int:
        """The number of rows of a cluster (0 for none), without taking them."""
        found = self.positions.get(cluster_id)
        return 0 if found is None else len(found)


@dataclass
class Context:
    """The inputs of the hypothesis kinds. ``used`` holds the clusters a hypothesis already explains:
    the kinds run in order (see :func:`~edgeinvestigate.analysis.rca._hypotheses.find_hypotheses`)
    and each skips them."""

    errors: pd.DataFrame
    deploys: list[Deploy]
    shifts: list[ClusterShift]
    storms: list[RetryStorm]
    limit_hits: list[LimitHit]
    payload: pd.DataFrame
    freq: pd.Timedelta
    limit_types: list[str] | None
    deploy_info: bool
    #: the cluster table's rows by cluster id
    info: dict[str, dict[str, Any]]
    #: DLQ messages per cluster id
    dlq_counts: pd.Series
    #: the evidence's window (``None`` without error rows) and its length
    start: Any
    end: Any
    span: pd.Timedelta
    #: the error rows of each cluster
    by_cluster: ClusterRows
    used: set[str] = field(default_factory=set)

    @classmethod
    def build(
        cls,
        errors: pd.DataFrame,
        table: pd.DataFrame,
        deploys: list[Deploy],
        shifts: list[ClusterShift],
        storms: list[RetryStorm],
        limit_hits: list[LimitHit],
        payload: pd.DataFrame,
        dlq: pd.DataFrame,
        inv: pd.DataFrame,
        freq: pd.Timedelta,
        limit_types: list[str] | None,
        *,
        deploy_info: bool,
    ) -> Context:
        info: dict[str, dict[str, Any]] = {str(r["cluster_id"]): r for r in records(table)}
        dlq_counts = (
            dlq.dropna(subset=["cluster_id"]).groupby("cluster_id").size()
            if len(dlq)
            else pd.Series(dtype=int)
        )
        start: Any = errors["ts"].min() if len(errors) else None
        end: Any = errors["ts"].max() if len(errors) else None
        if start is not None and len(inv):
            # the window is the evidence's, not only its errors' (an error that starts mid-window is new)
            start, end = min(start, inv["ts"].min()), max(end, inv["ts"].max())
        span = (end - start) if start is not None else pd.Timedelta(0)
        by_cluster = ClusterRows(errors)
        return cls(
            errors=errors,
            deploys=deploys,
            shifts=shifts,
            storms=storms,
            limit_hits=limit_hits,
            payload=payload,
            freq=freq,
            limit_types=limit_types,
            deploy_info=deploy_info,
            info=info,
            dlq_counts=dlq_counts,
            start=start,
            end=end,
            span=span,
            by_cluster=by_cluster,
        )

    def supported(self, errors: int, jobs: int) -> bool:
        """Whether an error-based finding of ``errors`` rows in ``jobs`` jobs has the least support
        (:data:`MIN_ERRORS`, :data:`MIN_JOBS`, :data:`MIN_SHARE` of the window's error rows)."""
        total = len(self.errors)
        return errors >= MIN_ERRORS and jobs >= MIN_JOBS and (total == 0 or errors >= MIN_SHARE * total)

    def above_background(self, g: pd.DataFrame, start: Any, end: Any) -> bool:
        """Whether the rows ``g`` are at least :data:`MIN_BURST_RATIO` times as frequent in
        ``[start, end)`` as in the rest of the window (a cluster that is as frequent everywhere is
        background, whatever burst its buckets show)."""
        inside = int(((g["ts"] >= start) & (g["ts"] < end)).sum())
        outside = len(g) - inside
        if outside <= 0:
            return True
        burst = max(pd.Timestamp(end) - pd.Timestamp(start), self.freq)
        rest = max(self.span + self.freq - burst, self.freq)
        return (inside / burst.total_seconds()) >= MIN_BURST_RATIO * (outside / rest.total_seconds())

    @property
    def has_span(self) -> bool:
        """Whether the window has a length (bursts and late starts need one)."""
        return self.start is not None and self.span > pd.Timedelta(0)


def impact_jobs(g: pd.DataFrame) -> int:
    """The distinct failed jobs of some error rows (rows without a job id count once per invocation,
    or once each)."""
    jobs = g["job_id"].dropna().nunique()
    no_job = int(g["job_id"].isna().sum())
    # rows without a job id count once per invocation (or once each)
    no_job_inv = g.loc[g["job_id"].isna(), "invocation_id"]
    return int(jobs + (no_job_inv.nunique() if no_job_inv.notna().any() else no_job))
