"""The cluster table: one row per cluster (:data:`CLUSTER_COLUMNS`), most frequent first.

``examples`` are the cluster's first distinct texts; ``example_events`` the event behind each of them
(:func:`example_events`: time, source, script, invocation, and the ``request_id`` / ``ray_id`` its
source carries, so the same event can be opened in Cloudflare's dashboard).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Final

import numpy as np
import pandas as pd

from edgeinvestigate.analysis import triage

__all__ = ["CLUSTER_COLUMNS", "EVENT_FIELDS", "cluster_table", "example_events"]

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
    "example_events",
)


def _uniq(values: Iterable[Any]) -> list[str]:
    return sorted({str(v) for v in values if v is not None and not (isinstance(v, float) and np.isnan(v))})


#: the fields of one example event
EVENT_FIELDS: Final = ("ts", "source", "script", "invocation_id", "request_id", "ray_id", "text")


def _plain(value: Any) -> str | None:
    return (
        None
        if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA
        else str(value)
    )


def example_events(g: pd.DataFrame, examples: list[str]) -> list[dict[str, str | None]]:
    """The event behind each example text: its first row with that text, one whose invocation has
    a request or ray id first (a DLQ error has none), as JSON-ready dicts of :data:`EVENT_FIELDS`."""
    if not examples:
        return []
    cand = g[g["text"].astype(str).isin(examples)]
    has_id = cand["request_id"].notna() | cand["ray_id"].notna()
    cand = cand.assign(_no_id=~has_id, _text=cand["text"].astype(str)).sort_values(
        ["_no_id", "ts"], kind="stable", na_position="last"
    )
    first = cand.drop_duplicates("_text").set_index("_text")
    out = []
    for text in examples:
        if text not in first.index:
            continue
        row = first.loc[text]
        ts = row["ts"]
        out.append(
            {
                "ts": None if pd.isna(ts) else pd.Timestamp(ts).isoformat(),
                "source": _plain(row["source"]),
                "script": _plain(row["script"]),
                "invocation_id": _plain(row["invocation_id"]),
                "request_id": _plain(row["request_id"]),
                "ray_id": _plain(row["ray_id"]),
                "text": text[:500],
            }
        )
    return out


def cluster_table(rows: pd.DataFrame, dlq: pd.DataFrame, max_examples: int) -> pd.DataFrame:
    if rows.empty:
        table = pd.DataFrame({c: pd.Series(dtype=object) for c in CLUSTER_COLUMNS})
        for c in ("count", "n_dlq_messages", "n_dlq_jobs", "n_invocations"):
            table[c] = table[c].astype(np.int64)
        table["share"] = table["share"].astype(float)
        for c in ("first_seen", "last_seen"):
            table[c] = pd.Series(dtype="datetime64[ns, UTC]")
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
        events = example_events(g, examples)
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
                "example_events": events,
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
