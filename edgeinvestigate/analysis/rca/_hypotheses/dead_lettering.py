"""From queue analytics: messages dead-lettered (``DeleteMessage`` with outcome ``dlq``), per queue.

The window runs from the first to the last bucket with a move to the DLQ; the evidence has the total,
the peak per bucket and, when the bundle has telemetry, the failure rows (error level, exceptions)
logged in that window and the clusters of the DLQ messages that arrived in it. When the logs admit
fewer than half as many failures as there were moves, the messages left "without error logs" (retries
that run out silently, leases that expire) and nothing else explains them: fit 0.8. When the failures
match, the dead-lettering follows from those errors (another hypothesis explains it): fit 0.4. Without
telemetry: 0.6. Score: the messages moved times the fit.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from edgeinvestigate.analysis._columns import dlq_time
from edgeinvestigate.analysis.rca._hypotheses.context import RawHypothesis
from edgeinvestigate.analysis.rca._queue_series import QueueSeries
from edgeinvestigate.analysis.rca._values import hhmm, pydt
from edgeinvestigate.models.findings import TimeWindow

__all__ = ["dead_lettering"]


def _clusters_in(dlq: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> dict[str, int]:
    if dlq is None or len(dlq) == 0 or "cluster_id" not in dlq:
        return {}
    ts = dlq_time(dlq)
    inside = dlq[((ts >= start) & (ts < end)).to_numpy()]
    counts = inside["cluster_id"].dropna().astype(str).value_counts()
    return {str(k): int(v) for k, v in counts.items()}


def dead_lettering(
    queues: list[QueueSeries], failures: pd.DataFrame, dlq: pd.DataFrame, *, telemetry: bool
) -> list[RawHypothesis]:
    """One ``dead_lettering`` hypothesis per queue that moved messages to its DLQ."""
    hyps: list[RawHypothesis] = []
    for qs in queues:
        moved = qs.frame["dlq"].fillna(0)
        if moved.sum() <= 0:
            continue
        hot = moved[moved > 0]
        t0, t1 = hot.index.min(), hot.index.max() + qs.bucket
        n = int(moved.sum())
        peak = int(hot.max())
        logged = (
            int(((failures["ts"] >= t0) & (failures["ts"] < t1)).sum()) if telemetry and len(failures) else 0
        )
        clusters = _clusters_in(dlq, t0, t1)
        if len(failures):
            inside = failures[(failures["ts"] >= t0) & (failures["ts"] < t1)]
            for cid, k in inside["cluster_id"].dropna().astype(str).value_counts().head(3).items():
                clusters.setdefault(str(cid), int(k))
        top = sorted(clusters, key=lambda c: -clusters[c])[:5]
        per = (
            "minute"
            if qs.bucket <= pd.Timedelta(minutes=1)
            else f"{int(qs.bucket.total_seconds() // 60)} min"
        )
        head = (
            f"{n} messages of {qs.queue!r} were dead-lettered between {hhmm(t0)} and {hhmm(t1)} "
            f"(up to {peak} per {per})"
        )
        if not telemetry:
            fit, tail = (
                0.6,
                (
                    "; the bundle has no telemetry to say why: collect the consumer's Workers Logs for "
                    "the window."
                ),
            )
        elif logged < 0.5 * n:
            fit, tail = (
                0.8,
                (
                    (
                        f", while the logs show only {logged} failures in that window"
                        if logged
                        else ", while the logs show no failure in that window"
                    )
                    + ": most left without an "
                    "error log. Check max_retries, the visibility timeout (leases that expire count as "
                    "failed deliveries) and consumers that call retry() without logging."
                ),
            )
        else:
            fit, tail = (
                0.4,
                (
                    f"; the logs show {logged} failures in that window"
                    + (f" (clusters {', '.join(top)})" if top else "")
                    + ": the dead-lettering follows from those errors."
                ),
            )
        evidence: dict[str, Any] = {
            "queue": qs.queue,
            "dlq_messages": n,
            "peak_per_bucket": peak,
            "bucket_seconds": int(qs.bucket.total_seconds()),
            "start": t0.isoformat(),
            "end": t1.isoformat(),
            "failures_logged": logged if telemetry else None,
            "without_error_log": max(0, n - logged) if telemetry else None,
        }
        hyps.append(
            {
                "kind": "dead_lettering",
                "title": f"{qs.queue}: {n} messages dead-lettered {hhmm(t0)}–{hhmm(t1)}",
                "sentence": head + tail + " Queue analytics are estimates (adaptive sampling).",
                "score": n * fit,
                "fit": fit,
                "cluster_ids": top,
                "job_types": [],
                "window": TimeWindow(start=pydt(t0), end=pydt(t1)),
                "deploy": None,
                "evidence": evidence,
            }
        )
    return hyps
