"""Retry storms: buckets where retried deliveries rise far above the usual."""

from __future__ import annotations

import pandas as pd

from edgeinvestigate.analysis.rca._buckets import hot_runs
from edgeinvestigate.analysis.rca._values import as_utc, hhmm, pydt
from edgeinvestigate.models.findings import RetryStorm, TimeWindow

__all__ = ["find_retry_storms"]


def find_retry_storms(d: pd.DataFrame, freq: pd.Timedelta) -> list[RetryStorm]:
    """Runs of buckets where the retried deliveries are at least 10, 3 times the median bucket and 30%
    of the deliveries."""
    if d.empty:
        return []
    d = d.dropna(subset=["ts"])
    d["bucket"] = d["ts"].dt.floor(freq)
    d["retried"] = d["attempt"] >= 2
    g = d.groupby("bucket").agg(n=("retried", "size"), r=("retried", "sum")).sort_index()
    if g.empty:
        return []
    full = g.reindex(pd.date_range(g.index.min(), g.index.max(), freq=freq), fill_value=0)
    baseline = float(full["r"].median())
    hot = ((full["r"] >= max(10.0, 3 * baseline)) & (full["r"] >= 0.3 * full["n"].clip(lower=1))).to_numpy()
    out = []
    for i, j in hot_runs(hot):
        start, end = full.index[i], full.index[j] + freq
        part = d[(d["ts"] >= start) & (d["ts"] < end)]
        reps = part.groupby("job_id")["invocation_id"].nunique().sort_values(ascending=False)
        repeated = [str(x) for x in reps[reps >= 3].index[:10]]
        retried_types = part.loc[part["retried"], "job_type"].dropna().astype(str)
        shares = retried_types.value_counts(normalize=True)
        types = sorted(str(t) for t, v in shares.items() if v >= 0.2)
        retried = int(part["retried"].sum())
        out.append(
            RetryStorm(
                window=TimeWindow(start=pydt(as_utc(start)), end=pydt(as_utc(end))),
                deliveries=len(part),
                retried_deliveries=retried,
                jobs=int(part.loc[part["retried"], "job_id"].nunique()),
                max_attempt=int(part["attempt"].max()),
                job_types=types,
                repeated_job_ids=repeated,
                sentence=(
                    f"Between {hhmm(start)} and {hhmm(end)}, {retried} of {len(part)} deliveries "
                    "were retries "
                    f"(up to attempt {int(part['attempt'].max())}) of "
                    f"{int(part.loc[part['retried'], 'job_id'].nunique())} jobs"
                    + (f" of {', '.join(types)}" if types else "")
                    + "."
                ),
            )
        )
    return out
