"""The aggregates in pandas, in memory: the reference implementation that the SQL path
(:mod:`._sql_path`) is checked against (``ei.analyze(..., engine="pandas")``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from edgeinvestigate.analysis.clustering import FAILURE_LEVELS
from edgeinvestigate.analysis.deploys import Deployment
from edgeinvestigate.analysis.rca._blast_radius import blast_radius_rows, find_payload_fields
from edgeinvestigate.analysis.rca._deploys import cluster_shifts, deploy_markers
from edgeinvestigate.analysis.rca._frames import delivery_frame, invocation_frame
from edgeinvestigate.analysis.rca._limits import (
    LIMIT_OUTCOMES,
    NEAR,
    find_limit_hits,
    limit_stats,
    over_represented_types,
)
from edgeinvestigate.analysis.rca._parts import Parts, window_of
from edgeinvestigate.analysis.rca._storms import find_retry_storms
from edgeinvestigate.analysis.rca._timeline import attempt_bins, failed_rates, timeline_rows

if TYPE_CHECKING:
    from edgeinvestigate.analysis.clustering import Clusters
    from edgeinvestigate.evidence.bundle import Evidence

__all__ = ["pandas_parts"]


def pandas_parts(
    ev: Evidence,
    clusters: Clusters,
    errors: pd.DataFrame,
    given: Sequence[Deployment],
    *,
    tenant_fields: Sequence[str],
    cpu_limit_ms: float,
    wall_limit_ms: float,
    bucket_seconds: int | None,
) -> Parts:
    """Every aggregate of the findings, computed on the frames in memory."""
    inv = invocation_frame(ev)
    win = window_of(inv["ts"].min(), inv["ts"].max(), errors, bucket_seconds)
    freq = win.freq
    failure = errors["level"].isin(FAILURE_LEVELS) if len(errors) else pd.Series(dtype=bool)
    with_failures = set(errors.loc[failure, "invocation_id"].dropna()) if len(errors) else set()
    inv["failed"] = inv["failed"] | inv["invocation_id"].isin(with_failures)
    inv["bucket"] = inv["ts"].dt.floor(freq)

    deliveries = delivery_frame(ev)
    payload = find_payload_fields(ev, clusters, tenant_fields)
    hit_ids = set(
        inv.loc[
            inv["outcome"].isin(LIMIT_OUTCOMES) | (inv["wall_ms"] >= NEAR * wall_limit_ms), "invocation_id"
        ].dropna()
    )
    retried = deliveries[deliveries["attempt"] >= 2] if len(deliveries) else deliveries

    def retried_times(w0: pd.Timestamp, w1: pd.Timestamp) -> pd.Series:
        if not len(retried):
            return pd.Series(dtype="datetime64[ns, UTC]")
        return retried.loc[(retried["ts"] >= w0) & (retried["ts"] < w1), "ts"]

    deploys = deploy_markers(inv, given)
    return Parts(
        win=win,
        rows={name: len(ev.frame(name)) for name in ("invocations", "logs", "exceptions")},
        n_invocations=len(inv),
        n_failed=int(inv["failed"].sum()),
        timeline=timeline_rows(inv),
        failed_rate=failed_rates(inv),
        attempts=attempt_bins(deliveries, ev.dlq),
        limits=limit_stats(inv, cpu_limit_ms, wall_limit_ms),
        limit_hits=find_limit_hits(inv, cpu_limit_ms, wall_limit_ms),
        hits=inv.loc[inv["invocation_id"].isin(hit_ids), ["invocation_id", "ts"]],
        limit_types=over_represented_types(ev, hit_ids),
        deploys=deploys,
        sources=sorted({str(x) for x in inv["version_source"].dropna()} | ({"given"} if given else set())),
        shifts=cluster_shifts(errors, clusters.table, deploys, win.span),
        payload=payload,
        blast_radius=blast_radius_rows(errors, payload),
        storms=find_retry_storms(deliveries, freq),
        retried=retried_times,
    )
