"""Time buckets: the bucket size for a window, runs of hot buckets, the main burst of a cluster."""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import pandas as pd

__all__ = ["BUCKETS_S", "MAX_BUCKETS", "choose_bucket", "hot_runs", "main_burst"]

#: candidate bucket sizes, in seconds
BUCKETS_S: Final = (60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)
MAX_BUCKETS: Final = 120


def choose_bucket(span: pd.Timedelta) -> int:
    """The bucket size in seconds for a window of ``span`` (at most :data:`MAX_BUCKETS` buckets)."""
    seconds = max(span.total_seconds(), 1.0)
    for b in BUCKETS_S:
        if seconds / b <= MAX_BUCKETS:
            return b
    return BUCKETS_S[-1]


def hot_runs(mask: np.ndarray, max_gap: int = 1) -> list[tuple[int, int]]:
    """Index ranges [i, j] where ``mask`` is true, bridging gaps of at most ``max_gap``."""
    idx = np.flatnonzero(mask)
    if len(idx) == 0:
        return []
    runs = []
    start = prev = int(idx[0])
    for i in idx[1:]:
        if i - prev > max_gap + 1:
            runs.append((start, prev))
            start = int(i)
        prev = int(i)
    runs.append((start, prev))
    return runs


def main_burst(
    g: pd.DataFrame, freq: pd.Timedelta, start: pd.Timestamp, end: pd.Timestamp
) -> tuple[Any, Any, float]:
    """The main burst of a cluster: (start, end, share of its rows inside)."""
    idx = pd.date_range(start.floor(freq), end.floor(freq), freq=freq)
    counts = g.groupby("bucket").size().reindex(idx, fill_value=0)
    if counts.sum() == 0:
        return None, None, 0.0
    peak = float(counts.max())
    base = float(counts.median())
    hot = (counts >= max(1.0, 0.2 * peak, 3 * base)).to_numpy()
    runs = hot_runs(hot, max_gap=1)
    if not runs:
        return None, None, 0.0
    best = max(runs, key=lambda r: counts.iloc[r[0] : r[1] + 1].sum())
    s, e = counts.index[best[0]], counts.index[best[1]] + freq
    inside = float(counts.iloc[best[0] : best[1] + 1].sum()) / float(counts.sum())
    return s, e, inside
