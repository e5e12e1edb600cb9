"""Worker limits hit: invocations that exceeded (or came near) the CPU, memory or wall-time limit."""

from __future__ import annotations

import pandas as pd

from edgeinvestigate.analysis.rca._hypotheses.context import Context, RawHypothesis
from edgeinvestigate.analysis.rca._values import hhmm, pydt
from edgeinvestigate.models.findings import TimeWindow

__all__ = ["limit_hit"]


def limit_hit(ctx: Context) -> list[RawHypothesis]:
    """One hypothesis for all limit hits (none without any); it explains the resource-limit clusters."""
    limit_hits = ctx.limit_hits
    if not limit_hits:
        return []
    hard = [lh for lh in limit_hits if lh.limit.startswith("exceeded")]
    main = hard or limit_hits
    n = max(lh.invocations for lh in main)
    weight = 0.8 if hard else 0.4
    starts = [pd.Timestamp(lh.window.start) for lh in limit_hits if lh.window]
    ends = [pd.Timestamp(lh.window.end) for lh in limit_hits if lh.window]
    types = ctx.limit_types or sorted({t for lh in main for t in lh.job_types})
    parts = ", ".join(f"{lh.invocations} {lh.limit}" for lh in limit_hits)
    limit_clusters = [c for c, r in ctx.info.items() if r["kind_rule"] == "resource-limit"]
    ctx.used.update(limit_clusters)
    return [
        {
            "kind": "limit_hit",
            "title": f"Worker limits hit ({', '.join(lh.limit for lh in main)})",
            "cluster_ids": limit_clusters,
            "sentence": (
                f"Invocations hit the Worker limits ({parts})"
                + (f" between {hhmm(min(starts))} and {hhmm(max(ends))}" if starts else "")
                + (f", mostly {', '.join(types)} jobs" if types else "")
                + ": a job too heavy for one invocation fails on every retry until it is split or"
                " the limit is raised."
            ),
            "score": n * weight,
            "fit": weight,
            "job_types": types,
            "window": TimeWindow(start=pydt(min(starts)), end=pydt(max(ends))) if starts else None,
            "deploy": None,
            "evidence": {lh.limit: lh.invocations for lh in limit_hits},
        }
    ]
