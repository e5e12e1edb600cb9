"""Queue analytics in the findings: the queue hypotheses, the per-queue summary, the backlog's detection time.

Only for bundles with queue analytics (``collect --queue-metrics``): :func:`queue_findings` returns the
hypotheses unchanged and no summary otherwise, so a bundle without metrics is analysed as before.

The hypothesis kinds (``consumer_stalled``, ``throughput_drop``: :mod:`._hypotheses.queue_stall`;
``dead_lettering``: :mod:`._hypotheses.dead_lettering`) are ranked together with the others by score.
Detection: when a consumer stall or throughput drop starts before the first error (or nothing errs at
all), the incident's detection time is that start, the moment the backlog moved, and a note says so.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from edgeinvestigate.analysis.rca._hypotheses import rank
from edgeinvestigate.analysis.rca._hypotheses.dead_lettering import dead_lettering
from edgeinvestigate.analysis.rca._hypotheses.queue_stall import consumer_stalls, throughput_drops
from edgeinvestigate.analysis.rca._queue_series import QueueSeries, queue_series
from edgeinvestigate.analysis.rca._values import as_utc, hhmm, pydt
from edgeinvestigate.models.analytics import ESTIMATE_NOTE
from edgeinvestigate.models.findings import Findings, Hypothesis
from edgeinvestigate.models.queue_health import QueueHealth

__all__ = ["queue_findings", "with_queue_health"]

_BACKLOG_KINDS = ("consumer_stalled", "throughput_drop")


def _int(value: Any) -> int | None:
    return None if pd.isna(value) else int(value)


def _float(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _summary(qs: QueueSeries) -> QueueHealth:
    f = qs.frame
    obs = f[f["observed"]]

    def total(col: str) -> int | None:
        return _int(obs[col].sum()) if len(obs) else None

    backlog = f["backlog"].dropna()
    rise = None
    if len(backlog) >= 2:
        first = float(backlog.iloc[0])
        up = backlog[backlog >= first + max(3.0, 0.2 * first)]
        rise = pydt(as_utc(up.index[0])) if len(up) else None
    no_data = [
        name
        for name, col in (("backlog", "backlog"), ("concurrency", "concurrency"), ("operations", "writes"))
        if f[col].isna().all()
    ]
    return QueueHealth(
        queue=qs.queue,
        bucket_seconds=int(qs.bucket.total_seconds()),
        first=pydt(as_utc(f.index.min())) if len(f) else None,
        last=pydt(as_utc(f.index.max())) if len(f) else None,
        writes=total("writes"),
        reads=total("reads"),
        acked=total("acked"),
        dead_lettered=total("dlq"),
        failed_deletes=total("failed"),
        backlog_first=_float(backlog.iloc[0]) if len(backlog) else None,
        backlog_peak=_float(backlog.max()) if len(backlog) else None,
        backlog_last=_float(backlog.iloc[-1]) if len(backlog) else None,
        backlog_rise_at=rise,
        max_lag_ms=_float(f["lag_ms"].max()),
        mean_concurrency=_float(f["concurrency"].mean()),
        no_data=no_data,
    )


def queue_findings(
    ev: Any,
    hyps: list[Hypothesis],
    errors: pd.DataFrame,
    failure: pd.Series,
    dlq: pd.DataFrame,
    *,
    telemetry: bool,
) -> tuple[list[Hypothesis], list[QueueHealth]]:
    """``hyps`` with the queue hypotheses ranked in, and the per-queue summary (see the module docs)."""
    queues = queue_series(ev)
    if not queues:
        return hyps, []
    failures = errors[failure.to_numpy()] if len(errors) else errors
    stalls = consumer_stalls(queues, errors)
    raw = (
        stalls + throughput_drops(queues, stalls) + dead_lettering(queues, failures, dlq, telemetry=telemetry)
    )
    merged = sorted([*hyps, *rank(raw)], key=lambda h: (-h.score, h.kind, h.title))
    return [h.model_copy(update={"rank": i}) for i, h in enumerate(merged, start=1)], [
        _summary(q) for q in queues
    ]


def with_queue_health(findings: Findings, health: list[QueueHealth]) -> Findings:
    """The findings with the queue summary, the analytics note and the backlog's detection time."""
    if not health:
        return findings
    notes = [*findings.notes, ESTIMATE_NOTE]
    timeline = findings.incident.timeline
    moved = [h for h in findings.hypotheses if h.kind in _BACKLOG_KINDS and h.window is not None]
    if moved:
        first_move = min(moved, key=lambda h: h.window.start if h.window else 0)
        assert first_move.window is not None
        rise = first_move.window.start
        first_error = timeline.first_error
        if first_error is None or rise < first_error:
            if timeline.detection is None or rise < timeline.detection:
                timeline = timeline.model_copy(update={"detection": rise})
            ahead = (
                f", {(first_error - rise).total_seconds() / 60:.0f} min before the first error"
                if first_error is not None
                else ", and no error was logged at all"
            )
            notes.append(
                f"Detection is taken from the backlog: {first_move.evidence.get('queue')!r} started "
                f"backing up at {hhmm(pd.Timestamp(rise))}{ahead}."
            )
    incident = findings.incident.model_copy(update={"timeline": timeline})
    return findings.model_copy(update={"queue_health": health, "notes": notes, "incident": incident})
