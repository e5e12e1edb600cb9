"""Per-queue series from the analytics frames: writes, reads, acks, DLQ moves, backlog, concurrency, lag.

One row per bucket from the queue's first to its last bucket with data. A bucket where the queue has
any analytics row is *observed*: there a missing operation is zero (nothing happened). A bucket with no
row at all is *no data* (NaN everywhere): an idle queue returns nothing, and that is never read as
zero. Backlog and concurrency are gauges: NaN where the dataset gave no sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from edgeinvestigate.analysis._columns import utc_series

__all__ = ["QueueSeries", "queue_series"]

COLUMNS = ("writes", "reads", "acked", "dlq", "failed", "backlog", "concurrency", "lag_ms")


@dataclass
class QueueSeries:
    queue: str
    bucket: pd.Timedelta
    #: index: bucket start (UTC); columns :data:`COLUMNS` plus ``observed`` (bool)
    frame: pd.DataFrame

    @property
    def observed(self) -> pd.DataFrame:
        return self.frame[self.frame["observed"]]


def _bucket(ev: Any, stamps: pd.Series) -> pd.Timedelta:
    meta = ev.manifest.get("queue_metrics") or {}
    parts: list[Any] = list(meta.get("parts") or []) if isinstance(meta, dict) and "parts" in meta else [meta]
    sizes = [int(p["bucket_seconds"]) for p in parts if isinstance(p, dict) and p.get("bucket_seconds")]
    if sizes:
        return pd.Timedelta(seconds=min(sizes))
    diffs = stamps.drop_duplicates().sort_values().diff().dropna()
    return diffs.min() if len(diffs) else pd.Timedelta(minutes=1)


def _num(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s.astype(object), errors="coerce")


def queue_series(ev: Any) -> list[QueueSeries]:
    """The series of every queue the bundle has analytics for (empty without ``queue_*`` frames)."""
    ops, backlog, consumers = (ev.frame(n) for n in ("queue_operations", "queue_backlog", "queue_consumers"))
    if not (len(ops) or len(backlog) or len(consumers)):
        return []
    o = pd.DataFrame(
        {
            "ts": utc_series(ops["ts"]),
            "queue": ops["queue"].astype(object).astype(str),
            "action": ops["action"].astype(object),
            "outcome": ops["outcome"].astype(object),
            "count": _num(ops["count"]),
            "lag": _num(ops["lag_ms"]),
        }
    )
    b = pd.DataFrame(
        {"ts": utc_series(backlog["ts"]), "queue": backlog["queue"].astype(object).astype(str),
         "backlog": _num(backlog["messages"])}
    )  # fmt: skip
    c = pd.DataFrame(
        {"ts": utc_series(consumers["ts"]), "queue": consumers["queue"].astype(object).astype(str),
         "concurrency": _num(consumers["concurrency"])}
    )  # fmt: skip
    bucket = _bucket(ev, pd.concat([o["ts"], b["ts"], c["ts"]]))
    out = []
    for queue in sorted(set(o["queue"]) | set(b["queue"]) | set(c["queue"])):
        qo, qb, qc = o[o["queue"] == queue], b[b["queue"] == queue], c[c["queue"] == queue]
        seen = pd.concat([qo["ts"], qb["ts"], qc["ts"]])
        index = pd.date_range(seen.min(), seen.max(), freq=bucket)
        frame = pd.DataFrame(index=index, columns=list(COLUMNS), dtype=float)
        frame["observed"] = index.isin(seen)

        def total(mask: pd.Series, qo: pd.DataFrame = qo) -> pd.Series:
            return qo[mask].groupby("ts")["count"].sum()

        parts = {
            "writes": total(qo["action"] == "WriteMessage"),
            "reads": total(qo["action"] == "ReadMessage"),
            "acked": total((qo["action"] == "DeleteMessage") & (qo["outcome"] == "success")),
            "dlq": total((qo["action"] == "DeleteMessage") & (qo["outcome"] == "dlq")),
            "failed": total((qo["action"] == "DeleteMessage") & (qo["outcome"] == "fail")),
        }
        for name, series in parts.items():
            frame[name] = np.where(frame["observed"], 0.0, np.nan)
            frame.loc[series.index, name] = series.to_numpy(dtype=float)
        reads = qo[qo["action"] != "WriteMessage"]
        if len(reads):
            frame.loc[:, "lag_ms"] = reads.groupby("ts")["lag"].max().reindex(index).to_numpy(dtype=float)
        frame.loc[:, "backlog"] = qb.groupby("ts")["backlog"].mean().reindex(index).to_numpy(dtype=float)
        frame.loc[:, "concurrency"] = (
            qc.groupby("ts")["concurrency"].mean().reindex(index).to_numpy(dtype=float)
        )
        out.append(QueueSeries(queue=queue, bucket=bucket, frame=frame))
    return out
