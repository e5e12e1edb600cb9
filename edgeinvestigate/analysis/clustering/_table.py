"""The cluster table: one row per cluster (:data:`CLUSTER_COLUMNS`), most frequent first."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import numpy as np
import pandas as pd

from edgeinvestigate.analysis import triage

__all__ = ["CLUSTER_COLUMNS", "cluster_table"]

#: the columns of ``Clusters.table``, in order
CLUSTER_COLUMNS: Final = (
    "cluster_id",
    "template",
    "count",
    "share",
    "first_seen",
    "last_seen",
    "job_types",
    "scripts",
    "script_versions",
    "outcomes",
    "n_dlq_messages",
    "n_dlq_jobs",
    "examples",
    "kind",
    "kind_rule",
    "n_invocations",
    "sources",
    "fingerprint",
    "rule",
)


def _uniq(values: Iterable[Any]) -> list[str]:
    return sorted({str(v) for v in values if v is not None and not (isinstance(v, float) and np.isnan(v))})


def cluster_table(rows: pd.DataFrame, dlq: pd.DataFrame, max_examples: int) -> pd.DataFrame:
    if rows.empty:
        table = pd.DataFrame({c: pd.Series(dtype=object) for c in CLUSTER_COLUMNS})
        for c in ("count", "n_dlq_messages", "n_dlq_jobs", "n_invocations"):
            table[c] = table[c].astype(np.int64)
        table["share"] = table["share"].astype(float)
        for c in ("first_seen", "last_seen"):
            table[c] = pd.Series(dtype="datetime64[ms, UTC]")
        return table
    telemetry = rows["source"] != "dlq"
    total = int(telemetry.sum())
    dlq_counts = (
        dlq.dropna(subset=["cluster_id"]).groupby("cluster_id", observed=True).size()
        if len(dlq) and "cluster_id" in dlq
        else pd.Series(dtype=np.int64)
    )
    dlq_jobs = (
        dlq.dropna(subset=["cluster_id", "job_id"])
        .astype({"job_id": object})
        .groupby("cluster_id", observed=True)["job_id"]
        .nunique()
        if len(dlq) and "cluster_id" in dlq
        else pd.Series(dtype=np.int64)
    )
    records = []
    for cid, g in rows.groupby("cluster_id", sort=False):
        tel = g[g["source"] != "dlq"]
        examples_src = g.sort_values(["ts", "text"], na_position="last")["text"]
        examples = list(dict.fromkeys(str(t) for t in examples_src))[:max_examples]
        sample = list(dict.fromkeys(str(t) for t in g["text"].head(200)))[:25]
        kind, kind_rule = triage.classify_many(sample)
        # an unclassified cluster is a limit hit when most of its rows come from invocations that hit
        # a limit (one warn line that happened to be logged by such an invocation does not make it one)
        if not kind_rule and g["outcome"].astype(object).isin(["exceededCpu", "exceededMemory"]).mean() > 0.5:
            kind, kind_rule = "permanent", "resource-limit"
        records.append(
            {
                "cluster_id": cid,
                "template": g["display"].iloc[0],
                "count": len(tel),
                "share": (len(tel) / total) if total else 0.0,
                "first_seen": g["ts"].min(),
                "last_seen": g["ts"].max(),
                "job_types": _uniq(g["job_type"]),
                "scripts": _uniq(g["script"]),
                "script_versions": _uniq(g["script_version"]),
                "outcomes": _uniq(g["outcome"]),
                "n_dlq_messages": int(dlq_counts.get(cid, 0)),
                "n_dlq_jobs": int(dlq_jobs.get(cid, 0)),
                "examples": [e[:500] for e in examples],
                "kind": kind,
                "kind_rule": kind_rule,
                "n_invocations": int(tel["invocation_id"].dropna().nunique()),
                "sources": _uniq(g["source"]),
                "fingerprint": str(g["fingerprint"].iloc[0]),
                "rule": str(g["rule"].iloc[0]),
            }
        )
    # clusters known only from DLQ joins are already in rows (dlq source); order: count, dlq, id
    table = pd.DataFrame.from_records(records, columns=list(CLUSTER_COLUMNS))
    table = table.sort_values(
        ["count", "n_dlq_messages", "cluster_id"], ascending=[False, False, True], kind="stable"
    ).reset_index(drop=True)
    table["first_seen"] = pd.to_datetime(table["first_seen"], utc=True)
    table["last_seen"] = pd.to_datetime(table["last_seen"], utc=True)
    return table
