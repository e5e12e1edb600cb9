"""Retry storms: many deliveries that are retries; a symptom when an outage or a bad deploy of the
same job types explains them."""

from __future__ import annotations

import pandas as pd

from edgeinvestigate.analysis.rca._hypotheses.context import Context, RawHypothesis
from edgeinvestigate.analysis.rca._values import hhmm

__all__ = ["retry_storms"]


def retry_storms(ctx: Context, causes: list[RawHypothesis]) -> list[RawHypothesis]:
    """One hypothesis per retry storm; ``causes`` are the hypotheses (with a window) that may explain it."""
    hyps: list[RawHypothesis] = []
    for st in ctx.storms:
        s0, s1 = pd.Timestamp(st.window.start), pd.Timestamp(st.window.end)
        cause = next(
            (
                h
                for h in causes
                if pd.Timestamp(h["window"].start) <= s1
                and pd.Timestamp(h["window"].end) >= s0
                and set(h["job_types"]) & set(st.job_types)
            ),
            None,
        )
        fit = 0.2 if cause else 0.5  # retries that an outage or a bad deploy explains are a symptom
        hyps.append(
            {
                "kind": "retry_storm",
                "title": f"Retry storm {hhmm(s0)}–{hhmm(s1)}",
                "sentence": st.sentence
                + (
                    f" It follows from the {cause['kind'].replace('_', ' ')} ({cause['title']})."
                    if cause
                    else ""
                ),
                "score": st.jobs * fit,
                "fit": fit,
                "cluster_ids": [],
                "job_types": st.job_types,
                "window": st.window,
                "deploy": None,
                "evidence": {
                    "deliveries": st.deliveries,
                    "retried": st.retried_deliveries,
                    "jobs": st.jobs,
                    "caused_by": cause["title"] if cause else None,
                },
            }
        )
    return hyps
