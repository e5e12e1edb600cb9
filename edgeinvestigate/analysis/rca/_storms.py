"""Retry storms: buckets where retried deliveries rise far above the usual."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from edgeinvestigate.analysis.rca._buckets import hot_runs
from edgeinvestigate.analysis.rca._values import as_utc, hhmm, pydt
from edgeinvestigate.models.findings import RetryStorm, TimeWindow

__all__ = ["StormPart", "find_retry_storms", "storms_from_buckets"]


@dataclass(frozen=True)
class StormPart:
    """The deliveries of one storm window: counts, the invocations per job (``reps``, by job id) and
    the job types of the retried deliveries (``types``: counts)."""

    deliveries: int
    retried: int
    jobs: int
    max_attempt: int
    reps: pd.Series
    types: pd.Series


def find_retry_storms(d: pd.DataFrame, freq: pd.Timedelta) -> list[RetryStorm]:
    """Runs of buckets where the retried deliveries are at least 10, 3 times the median bucket and 30%
    of the deliveries (``d``: one row per delivery, see ``delivery_frame``)."""
    if d.empty:
        return []
    d = d.dropna(subset=["ts"])
    d["bucket"] = d["ts"].dt.floor(freq)
    d["retried"] = d["attempt"] >= 2
    g = d.groupby("bucket").agg(n=("retried", "size"), r=("retried", "sum")).sort_index()

    def part_of(start: pd.Timestamp, end: pd.Timestamp) -> StormPart:
        part = d[(d["ts"] >= start) & (d["ts"] < end)]
        retried = part[part["retried"]]
        return StormPart(
            deliveries=len(part),
            retried=len(retried),
            jobs=int(retried["job_id"].nunique()),
            max_attempt=int(part["attempt"].max()),
            reps=part.groupby("job_id")["invocation_id"].nunique(),
            types=retried["job_type"].dropna().astype(str).value_counts(),
        )

    return storms_from_buckets(g, freq, part_of)


def storms_from_buckets(
    g: pd.DataFrame, freq: pd.Timedelta, part_of: Callable[[pd.Timestamp, pd.Timestamp], StormPart]
) -> list[RetryStorm]:
    """The storms of per-bucket delivery counts (``g``: index bucket, columns ``n`` deliveries and
    ``r`` retried); ``part_of(start, end)`` describes the deliveries of a window."""
    if g.empty:
        return []
    full = g.reindex(pd.date_range(g.index.min(), g.index.max(), freq=freq), fill_value=0)
    baseline = float(full["r"].median())
    hot = ((full["r"] >= max(10.0, 3 * baseline)) & (full["r"] >= 0.3 * full["n"].clip(lower=1))).to_numpy()
    out = []
    for i, j in hot_runs(hot):
        start, end = full.index[i], full.index[j] + freq
        p = part_of(start, end)
        reps = p.reps.sort_values(ascending=False)
        repeated = [str(x) for x in reps[reps >= 3].index[:10]]
        shares = p.types / p.types.sum() if len(p.types) else p.types
        types = sorted(str(t) for t, v in shares.items() if v >= 0.2)
        out.append(
            RetryStorm(
                window=TimeWindow(start=pydt(as_utc(start)), end=pydt(as_utc(end))),
                deliveries=p.deliveries,
                retried_deliveries=p.retried,
                jobs=p.jobs,
                max_attempt=p.max_attempt,
                job_types=types,
                repeated_job_ids=repeated,
                sentence=(
                    f"Between {hhmm(start)} and {hhmm(end)}, {p.retried} of {p.deliveries} deliveries "
                    "were retries "
                    f"(up to attempt {p.max_attempt}) of "
                    f"{p.jobs} jobs" + (f" of {', '.join(types)}" if types else "") + "."
                ),
            )
        )
    return out
