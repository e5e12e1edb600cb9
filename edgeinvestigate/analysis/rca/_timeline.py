"""Rows over time: invocations and failures per bucket, failed rate per job type, attempts."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pandas as pd

from edgeinvestigate.analysis.rca._values import as_utc, pydt, records
from edgeinvestigate.models.findings import AttemptsBin, RateRow, TimelineRow

__all__ = ["attempt_bins", "failed_rates", "timeline_rows"]


def timeline_rows(inv: pd.DataFrame) -> list[TimelineRow]:
    """Invocations and failed invocations per bucket, job type and outcome."""
    if inv.empty:
        return []
    g = (
        inv.groupby(["bucket", "job_type", "outcome"])
        .agg(n=("failed", "size"), failed=("failed", "sum"))
        .reset_index()
    )
    return [
        TimelineRow(
            bucket=pydt(as_utc(r["bucket"])),
            job_type=str(r["job_type"]),
            outcome=str(r["outcome"]),
            invocations=int(r["n"]),
            failed=int(r["failed"]),
        )
        for r in records(g)
    ]


def failed_rates(inv: pd.DataFrame) -> list[RateRow]:
    """The failed rate per bucket and job type."""
    if inv.empty:
        return []
    g = inv.groupby(["bucket", "job_type"]).agg(n=("failed", "size"), failed=("failed", "sum")).reset_index()
    return [
        RateRow(
            bucket=pydt(as_utc(r["bucket"])),
            job_type=str(r["job_type"]),
            invocations=int(r["n"]),
            failed=int(r["failed"]),
            failed_rate=float(r["failed"]) / float(r["n"]) if r["n"] else 0.0,
        )
        for r in records(g)
    ]


def attempt_bins(d: pd.DataFrame, dlq: pd.DataFrame) -> list[AttemptsBin]:
    """Deliveries per attempt number (from the DLQ's attempt counts when ``d`` has none)."""
    counts: Counter[int]
    if d.empty:
        vals: Any = (
            pd.to_numeric(dlq["attempts"].astype(object), errors="coerce").dropna() if len(dlq) else []
        )
        counts = Counter(int(v) for v in vals)
    else:
        counts = Counter(int(v) for v in d["attempt"])
    return [AttemptsBin(attempts=k, deliveries=v) for k, v in sorted(counts.items())]
