"""DLQ clusters: without telemetry, each large cluster of DLQ error texts is a finding of its own."""

from __future__ import annotations

from typing import Any

import pandas as pd

from edgeinvestigate.analysis._columns import as_object, dlq_time, utc_series
from edgeinvestigate.analysis.rca._hypotheses.context import RawHypothesis
from edgeinvestigate.analysis.rca._values import as_utc, hhmm, pydt, records
from edgeinvestigate.models.findings import Hypothesis, TimeWindow

__all__ = ["dlq_cluster_hypotheses"]

#: what to do about a cluster of each triage kind
_ADVICE = {
    "permanent": "it fails on every retry: fix the code or the data, then replay",
    "transient": "it may pass on retry once the dependency recovers: check it, then replay",
}


def dlq_cluster_hypotheses(dlq: pd.DataFrame, table: pd.DataFrame) -> list[Hypothesis]:
    """The DLQ clusters that hold at least 3 messages and 10% of the DLQ, ranked among themselves."""
    if dlq is None or len(dlq) == 0 or dlq["cluster_id"].isna().all():
        return []
    info: dict[str, dict[str, Any]] = {str(r["cluster_id"]): r for r in records(table)}
    d = pd.DataFrame(
        {
            "cluster_id": as_object(dlq["cluster_id"]),
            "job_type": as_object(dlq["job_type"]),
            "job_id": as_object(dlq["job_id"]),
            "ts": dlq_time(dlq).to_numpy(),
        }
    )
    total = len(d)
    raw: list[RawHypothesis] = []
    for cid_any, n_any in d["cluster_id"].value_counts().items():
        cid, n = str(cid_any), int(n_any)
        if n < max(3, 0.1 * total):
            continue
        raw.append(_dlq_cluster(d[d["cluster_id"] == cid], cid, n, total, info.get(cid, {})))
    raw.sort(key=lambda h: (-h["score"], h["title"]))
    out = []
    for i, h in enumerate(raw, start=1):
        fit = h.pop("fit")
        out.append(Hypothesis(rank=i, confidence="medium" if fit >= 0.5 else "low", **h))
    return out


def _dlq_cluster(g: pd.DataFrame, cid: str, n: int, total: int, rec: dict[str, Any]) -> RawHypothesis:
    tpl = str(rec.get("template", ""))
    kind, rule = str(rec.get("kind", "unknown")), str(rec.get("kind_rule", ""))
    types = g["job_type"].dropna().astype(str).value_counts()
    jobs = int(g["job_id"].dropna().nunique()) or n
    share = n / total
    ts = utc_series(g["ts"]).dropna()
    advice = _ADVICE.get(kind, "read a few messages to tell whether a retry can pass")
    sentence = (
        f"{n} of {total} DLQ messages ({share:.0%}) failed with '{tpl[:120]}'"
        + (f" ({rule}, {kind})" if rule else "")
        + (f", {', '.join(f'{t} {int(c)}' for t, c in types.items())}" if len(types) else "")
        + (
            f", dead-lettered between {hhmm(as_utc(ts.min()))} and {hhmm(as_utc(ts.max()))}"
            if len(ts)
            else ""
        )
        + f"; {advice}. The bundle has no telemetry, so whether a deploy, a dependency or the input "
        "caused it cannot be told from it."
    )
    fit = 0.5 if share >= 0.5 else 0.3
    return {
        "kind": "dlq_cluster",
        "title": f"DLQ: {n} messages failed with '{tpl[:60]}'",
        "sentence": sentence,
        "score": jobs * fit,
        "fit": fit,
        "cluster_ids": [cid],
        "job_types": sorted(types.index.astype(str)),
        "window": TimeWindow(start=pydt(as_utc(ts.min())), end=pydt(as_utc(ts.max()))) if len(ts) else None,
        "deploy": None,
        "evidence": {
            "dlq_messages": n,
            "share": share,
            "jobs": jobs,
            "triage_rule": rule or None,
            "triage_kind": kind,
        },
    }
