"""The incident skeleton for the postmortem: its impact, and its timeline (first error, detection,
peak, last error) from the evidence the leading hypotheses explain."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import pandas as pd

from edgeinvestigate.analysis._columns import dlq_time, utc_series
from edgeinvestigate.analysis.rca._values import as_utc, pydt
from edgeinvestigate.models.findings import Hypothesis, Impact, Incident, IncidentTimeline

__all__ = ["RetriedTimes", "build_incident"]


#: the columns of the incident's own rows that are read (a selection copies only those)
_KEPT: Final = ["ts", "job_id"]
#: the times of the retried deliveries in a window [start, end)
RetriedTimes = Callable[[pd.Timestamp, pd.Timestamp], pd.Series]


def build_incident(
    counts: tuple[int, int],
    errors: pd.DataFrame,
    dlq: pd.DataFrame,
    hyps: list[Hypothesis],
    freq: pd.Timedelta,
    *,
    hits: pd.DataFrame,
    retried: RetriedTimes,
    failure: pd.Series,
) -> Incident:
    """The postmortem skeleton. Its timeline follows what the leading hypotheses explain: the error
    rows of their clusters and, for evidence that is not an error row, that evidence itself (the
    invocations that hit a limit, the retried deliveries of a storm, the DLQ messages of a DLQ-only
    finding); with no hypothesis, the failures (error level and exceptions), never warn noise.

    ``counts``: the invocations and the failed ones; ``hits``: the invocations that hit a limit
    (``invocation_id``, ``ts``); ``retried``: the times of retried deliveries in a window."""
    best = hyps[0].score if hyps else 0.0
    leading = [h for h in hyps if h.score >= 0.1 * best]
    cids = {c for h in leading for c in h.cluster_ids}
    involved, extra = _involved(leading, cids, errors, dlq, hits=hits, retried=retried)
    if not leading and len(errors):
        involved = errors.loc[failure.to_numpy(), _KEPT]
    events = pd.concat([involved["ts"], *[utc_series(x) for x in extra]]) if len(involved) or extra else None
    if events is not None:
        events = events.dropna()
    first = as_utc(events.min()) if events is not None and len(events) else None
    last = as_utc(events.max()) if events is not None and len(events) else None
    peak = None
    if first is not None and events is not None:
        peak = as_utc(events.dt.floor(freq).value_counts().sort_index().idxmax())
    detection = None
    if first is not None and events is not None:
        detection = _detection(errors, failure, involved, events, extra, first, freq)
    types = sorted({t for h in hyps for t in h.job_types})
    top = hyps[0] if hyps else None
    return Incident(
        title=top.title if top else "No incident found",
        impact=_impact(counts, errors, dlq, cids, involved, failure, types),
        timeline=IncidentTimeline(
            first_error=pydt(first), detection=pydt(detection), peak=pydt(peak), last_error=pydt(last)
        ),
        trigger=top.sentence if top else "",
        affected_job_types=types,
        root_causes=[h.sentence for h in hyps[:3]],
    )


def _involved(
    leading: list[Hypothesis],
    cids: set[str],
    errors: pd.DataFrame,
    dlq: pd.DataFrame,
    *,
    hits: pd.DataFrame,
    retried: RetriedTimes,
) -> tuple[pd.DataFrame, list[pd.Series]]:
    """The error rows the leading hypotheses explain, and the times of their evidence that is not an
    error row."""
    if cids and len(errors):
        involved = errors.loc[errors["cluster_id"].isin(cids).to_numpy(), _KEPT]
    else:
        involved = errors.loc[:, _KEPT].iloc[:0]
    extra: list[pd.Series] = []  # times of incident evidence that is not an error row
    for h in leading:
        if h.kind == "limit_hit" and len(hits):
            extra.append(hits["ts"])
            if not h.cluster_ids and len(errors):  # the errors those invocations logged or threw
                hit_ids = set(hits["invocation_id"])
                hit = errors["invocation_id"].isin(hit_ids).to_numpy()
                involved = pd.concat([involved, errors.loc[hit, _KEPT]])
        elif h.kind == "retry_storm" and h.window is not None:
            times = retried(pd.Timestamp(h.window.start), pd.Timestamp(h.window.end))
            if len(times):
                extra.append(times)
        elif h.kind == "dlq_cluster" and len(dlq):
            extra.append(dlq_time(dlq)[dlq["cluster_id"].isin(h.cluster_ids).to_numpy()].dropna())
    if len(involved):
        involved = involved.loc[~involved.index.duplicated()]
    return involved, extra


def _detection(
    errors: pd.DataFrame,
    failure: pd.Series,
    involved: pd.DataFrame,
    events: pd.Series,
    extra: list[pd.Series],
    first: pd.Timestamp,
    freq: pd.Timedelta,
) -> pd.Timestamp | None:
    """The first bucket, from the first incident event on, whose count of failures (plus the
    incident's own rows and evidence, e.g. retries logged at warn or limit hits) clearly exceeds the
    usual background: the median bucket before the first incident event. Warn noise outside the
    incident is no part of the signal."""
    own = (
        errors["ts"][failure.to_numpy() | errors.index.isin(involved.index)] if len(errors) else errors["ts"]
    )
    signal = pd.concat([own if len(own) else events.iloc[:0], *[utc_series(x) for x in extra]])
    counts = signal.dropna().dt.floor(freq).value_counts().sort_index()
    idx = pd.date_range(counts.index.min(), counts.index.max(), freq=freq)
    counts = counts.reindex(idx, fill_value=0)
    before = counts[counts.index < first.floor(freq)]
    base = float(before.median()) if len(before) else 0.0
    thresh = max(2.0 * base, base + 3.0)
    hot = counts[(counts >= thresh) & (counts.index >= first.floor(freq))]
    return as_utc(hot.index[0]) if len(hot) else None


def _impact(
    counts: tuple[int, int],
    errors: pd.DataFrame,
    dlq: pd.DataFrame,
    cids: set[str],
    involved: pd.DataFrame,
    failure: pd.Series,
    types: list[str],
) -> Impact:
    """How big the incident is (``failed``: see the module docs of :mod:`edgeinvestigate.analysis.rca`)."""
    n_inv, failed = counts
    dlq_n = int(dlq["cluster_id"].isin(cids).sum()) if cids and len(dlq) else len(dlq)
    return Impact(
        invocations=n_inv,
        failed_invocations=failed,
        failed_rate=failed / n_inv if n_inv else 0.0,
        errors=len(errors),
        failure_rows=int(failure.sum()) if len(errors) else 0,
        incident_errors=len(involved),
        jobs_failed=int(involved["job_id"].dropna().nunique()) if len(involved) else 0,
        dlq_messages=dlq_n,
        dlq_unattributed=int(dlq["cluster_id"].isna().sum()) if len(dlq) else 0,
        affected_job_types=types,
    )
