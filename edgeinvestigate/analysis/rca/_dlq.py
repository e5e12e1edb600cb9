"""DLQ messages per cluster, and the DLQ messages no cluster explains (unattributed)."""

from __future__ import annotations

import pandas as pd

from edgeinvestigate.analysis._columns import as_object
from edgeinvestigate.models.findings import DlqCluster, Hypothesis

__all__ = ["add_unattributed", "dlq_by_cluster"]


def dlq_by_cluster(dlq: pd.DataFrame, table: pd.DataFrame) -> list[DlqCluster]:
    """DLQ messages per cluster (unattributed ones as ``None``) and how they were joined, most first."""
    if dlq is None or len(dlq) == 0:
        return []
    templates = dict(zip(table["cluster_id"], table["template"], strict=True))
    d = pd.DataFrame(
        {"cluster_id": as_object(dlq["cluster_id"]), "join": as_object(dlq["cluster_join"]).fillna("none")}
    )
    out = []
    for cid, g in d.groupby(d["cluster_id"].fillna("\0"), sort=False):
        key = None if cid == "\0" else str(cid)
        out.append(
            DlqCluster(
                cluster_id=key,
                template=templates.get(key) if key else None,
                messages=len(g),
                joins={str(k): int(v) for k, v in g["join"].value_counts().items()},
            )
        )
    out.sort(key=lambda x: (-x.messages, x.cluster_id or "~"))
    return out


def add_unattributed(hyps: list[Hypothesis], dlq: pd.DataFrame) -> None:
    """Say, in every finding that counts DLQ messages, how many DLQ messages of its job types no
    cluster explains (a bare 0 would read as "none of these jobs reached the DLQ")."""
    if dlq is None or len(dlq) == 0:
        return
    loose = dlq[dlq["cluster_id"].isna()]
    if loose.empty:
        return
    loose_types = as_object(loose["job_type"])
    for h in hyps:
        if "dlq_messages" not in h.evidence or h.kind == "dlq_cluster":
            continue
        mine = loose_types.isin(h.job_types) if h.job_types else pd.Series(True, index=loose.index)
        n = int(mine.sum())
        h.evidence["dlq_unattributed"] = n
        if n:
            types = ", ".join(h.job_types) if h.job_types else "any job type"
            h.sentence += (
                f" {n} DLQ message{'s' if n > 1 else ''} of {types} could not be attributed to any error "
                f"cluster (no error text, and the job id was never logged with an error), so "
                f"{h.evidence['dlq_messages']} DLQ messages is a lower bound: collect the Workers Logs of "
                "the window to join them."
            )
