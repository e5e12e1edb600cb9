"""Ranked root-cause hypotheses, one module per kind.

The kinds run in this order, and a cluster that one explains is left out of the later ones
(``Context.used``): bad deploys, dependency outages, poison payloads (one tenant-like value), retry
storms (a symptom when a deploy or an outage of the same job types explains them), Worker limits hit,
new permanent errors, error spikes. A bundle without telemetry adds DLQ clusters
(:mod:`.dlq_cluster`). The ranking is by score (the distinct failed jobs a hypothesis explains times
how well the evidence fits), then kind and title.

Noise stays out of the findings (and so out of the incident timeline built from them). An
error-based finding (bad deploy, dependency outage, poison payload, new error, error spike) is
reported only with the least support (:meth:`.context.Context.supported`):

* at least :data:`~.context.MIN_ERRORS` (10) error rows,
* in at least :data:`~.context.MIN_JOBS` (5) distinct jobs (invocations when no job ids are logged),
* that are at least :data:`~.context.MIN_SHARE` (1%) of the window's error rows;

and a burst (outage, spike) must stand out from the background: its clusters are at least
:data:`~.context.MIN_BURST_RATIO` (4) times as frequent inside it as in the rest of the window
(:meth:`.context.Context.above_background`). A cluster below these is left to the later kinds and,
failing them, stays a cluster of the table without a finding. Limit hits and retry storms come from
invocations and deliveries, not error rows, and have their own rules; findings from queue metrics
have theirs.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd

from edgeinvestigate.analysis.rca._hypotheses.bad_deploy import bad_deploys
from edgeinvestigate.analysis.rca._hypotheses.context import Context, RawHypothesis
from edgeinvestigate.analysis.rca._hypotheses.dependency_outage import dependency_outages
from edgeinvestigate.analysis.rca._hypotheses.error_spike import error_spikes
from edgeinvestigate.analysis.rca._hypotheses.limit_hit import limit_hit
from edgeinvestigate.analysis.rca._hypotheses.new_error import new_permanent_errors
from edgeinvestigate.analysis.rca._hypotheses.poison_payload import poison_payloads
from edgeinvestigate.analysis.rca._hypotheses.retry_storm import retry_storms
from edgeinvestigate.models.findings import ClusterShift, Deploy, Hypothesis, LimitHit, RetryStorm

__all__ = ["find_hypotheses", "rank"]


def find_hypotheses(
    errors: pd.DataFrame,
    table: pd.DataFrame,
    deploys: list[Deploy],
    shifts: list[ClusterShift],
    storms: list[RetryStorm],
    limit_hits: list[LimitHit],
    payload: pd.DataFrame,
    dlq: pd.DataFrame,
    inv: pd.DataFrame,
    freq: pd.Timedelta,
    limit_types: list[str] | None = None,
    *,
    deploy_info: bool = True,
) -> list[Hypothesis]:
    """Every hypothesis the evidence supports, ranked (see the module docs)."""
    if errors.empty and not limit_hits and not storms and payload.empty:
        return []
    ctx = Context.build(
        errors,
        table,
        deploys,
        shifts,
        storms,
        limit_hits,
        payload,
        dlq,
        inv,
        freq,
        limit_types,
        deploy_info=deploy_info,
    )
    hyps = bad_deploys(ctx)
    hyps += dependency_outages(ctx)
    hyps += poison_payloads(ctx)
    causes = [h for h in hyps if h["window"] is not None]
    hyps += retry_storms(ctx, causes)
    hyps += limit_hit(ctx)
    hyps += new_permanent_errors(ctx)
    hyps += error_spikes(ctx)
    return rank(hyps)


def rank(hyps: list[RawHypothesis]) -> list[Hypothesis]:
    """The hypotheses by score (then kind and title), with their rank and confidence."""
    hyps.sort(key=lambda h: (-h["score"], h["kind"], h["title"]))
    out = []
    for i, hyp in enumerate(hyps, start=1):
        fit = hyp.pop("fit")
        confidence: Literal["high", "medium", "low"] = (
            "high" if fit >= 0.9 and hyp["score"] >= 10 else "medium" if fit >= 0.5 else "low"
        )
        out.append(Hypothesis(rank=i, confidence=confidence, **hyp))
    return out
