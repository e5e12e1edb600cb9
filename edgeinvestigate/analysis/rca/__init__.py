"""Root-cause analysis: ``analyze(ev) -> Findings``.

The questions on call are "what is failing, since when, and why". :func:`analyze` answers them from
the evidence frames and the error clusters:

* an error-rate timeline per job type and outcome, bucketed (the bucket is chosen from the window:
  the smallest of 1, 2, 5, 10, 15, 30 min, 1, 2, 6, 12 h or 1 day that gives at most 120 buckets),
  the ``failed`` rate, the attempts distribution, CPU and wall time against the limits;
* deploy markers (every first appearance of a new version: the invocations' ``script_version``,
  else a ``deploy``/``version`` field of their structured log lines, plus deployments given by the
  user; see :mod:`edgeinvestigate.analysis.deploys`), each cluster's rate before and after every marker, and
  clusters that are "new after deploy X";
* blast radius by job type, queue, script, version and tenant-like payload fields;
* DLQ messages per cluster, retry storms, limit hits;
* ranked hypotheses (bad deploy, dependency outage, retry storm, limit hit, poison payload, error
  spike), each with its evidence and a sentence, and an incident skeleton for the postmortem.

What "failed" means (one definition, used by the failed counts and rates, the timeline's
``failed`` column and the incident's impact): an invocation failed when the runtime says so
(``invocations.failed``: an outcome other than ``ok``, or an uncaught exception) or when it logged
a failure of a job it processed: an ``error``-level log line (``job.exhausted``,
``job.dead_lettered``, ``console.error``). ``warn`` lines are not failures, even when they carry an
``error`` field (a ``job.retry`` logged at warn is an attempt that will be retried, a "slow
subrequest" is a warning): they are still clustered as error rows, so they count in the clusters,
the outage and spike hypotheses and ``errors``, but never in ``failed``. ``Impact.failure_rows``
counts the rows that are failures by this rule (exceptions and error-level lines).

A bundle with no telemetry (no invocations, logs or exceptions) can still rank what its DLQ shows:
each large cluster of DLQ error texts becomes a ``dlq_cluster`` hypothesis, and a note says what to
collect. DLQ messages that no cluster explains (raw bodies without an ``error`` field whose job id
was not logged) are counted as unattributed (``totals["dlq_unattributed"]``, and per finding in
``evidence["dlq_unattributed"]``) rather than shown as zero. When the bundle holds only part of the
DLQ (a peek sees the first 100 messages), ``Findings.dlq_coverage`` says so, a note tells how to
collect all, and every finding that counts DLQ messages says they are "of the first 100 only"
(:mod:`edgeinvestigate.analysis.dlq_coverage`).

How hypotheses are ranked: a hypothesis's score is the number of distinct failed *jobs* it explains
(error rows when the logs carry no job ids), times a factor for how well the evidence fits
(a deploy whose new clusters start within a bucket or two of it and stop at the next deploy fits
better than one 9 minutes later). Retries of the same job do not inflate a score.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from edgeinvestigate.analysis._columns import utc_series
from edgeinvestigate.analysis.clustering import FAILURE_LEVELS
from edgeinvestigate.analysis.clustering import cluster as _cluster
from edgeinvestigate.analysis.deploys import parse_deployments
from edgeinvestigate.analysis.dlq_coverage import dlq_coverage, mark_partial_dlq
from edgeinvestigate.analysis.rca._blast_radius import TENANT_FIELDS, blast_radius_rows, find_payload_fields
from edgeinvestigate.analysis.rca._buckets import BUCKETS_S, choose_bucket
from edgeinvestigate.analysis.rca._deploys import cluster_shifts, deploy_markers
from edgeinvestigate.analysis.rca._dlq import add_unattributed, dlq_by_cluster
from edgeinvestigate.analysis.rca._frames import delivery_frame, invocation_frame
from edgeinvestigate.analysis.rca._hypotheses import find_hypotheses
from edgeinvestigate.analysis.rca._hypotheses.dlq_cluster import dlq_cluster_hypotheses
from edgeinvestigate.analysis.rca._incident import build_incident
from edgeinvestigate.analysis.rca._limits import (
    CPU_LIMIT_MS,
    LIMIT_OUTCOMES,
    NEAR,
    WALL_LIMIT_MS,
    find_limit_hits,
    limit_stats,
    over_represented_types,
)
from edgeinvestigate.analysis.rca._notes import NO_DEPLOY_INFO, no_telemetry_note
from edgeinvestigate.analysis.rca._queue_health import queue_findings, with_queue_health
from edgeinvestigate.analysis.rca._storms import find_retry_storms
from edgeinvestigate.analysis.rca._timeline import attempt_bins, failed_rates, timeline_rows
from edgeinvestigate.analysis.rca._values import as_utc, pydt, records
from edgeinvestigate.models.findings import ClusterSummary, Findings, Hypothesis, TimeWindow

if TYPE_CHECKING:
    from edgeinvestigate.analysis.clustering import Clusters
    from edgeinvestigate.evidence.bundle import Evidence

__all__ = ["BUCKETS_S", "FAILURE_LEVELS", "TENANT_FIELDS", "analyze", "choose_bucket"]


def analyze(
    ev: Evidence,
    clusters: Clusters | None = None,
    *,
    tenant_fields: Sequence[str] = TENANT_FIELDS,
    cpu_limit_ms: float = CPU_LIMIT_MS,
    wall_limit_ms: float = WALL_LIMIT_MS,
    bucket_seconds: int | None = None,
    deployments: Iterable[Any] | None = None,
) -> Findings:
    """Rank root-cause hypotheses for an evidence bundle (see the module docs).

    ``deployments`` adds deploy markers the data may not show: ``("v42", "2026-11-27T14:05Z")``
    pairs, ``"v42@2026-11-27T14:05Z"`` strings or ``{"version", "at"}`` dicts (times in ISO-8601 or
    epoch; naive is UTC). A bad entry raises :class:`~edgeinvestigate.errors.ConfigError`.
    """
    given = parse_deployments(deployments)
    if clusters is None:
        clusters = _cluster(ev)
    inv = invocation_frame(ev)
    errors = clusters.assign[clusters.assign["source"] != "dlq"].copy()
    errors["ts"] = utc_series(errors["ts"]) if len(errors) else pd.Series(dtype="datetime64[ns, UTC]")
    dlq = clusters.dlq
    window, span = _window(inv, errors)
    bucket = bucket_seconds or choose_bucket(span)
    freq = pd.Timedelta(seconds=bucket)
    failure = _mark_failed(inv, errors)
    telemetry = bool(len(ev.invocations) or len(ev.logs) or len(ev.exceptions))
    inv["bucket"] = inv["ts"].dt.floor(freq)
    errors["bucket"] = errors["ts"].dt.floor(freq) if len(errors) else errors["ts"]

    deliveries = delivery_frame(ev)
    deploys = deploy_markers(inv, given)
    sources = sorted({str(x) for x in inv["version_source"].dropna()} | ({"given"} if given else set()))
    notes: list[str] = []
    if not sources and len(inv):
        notes.append(NO_DEPLOY_INFO)
    table = clusters.table
    shifts = cluster_shifts(errors, table, deploys, span)
    payload_fields = find_payload_fields(ev, clusters, tenant_fields)
    storms = find_retry_storms(deliveries, freq)
    limit_hits = find_limit_hits(inv, cpu_limit_ms, wall_limit_ms)

    hit_ids = inv.loc[
        inv["outcome"].isin(LIMIT_OUTCOMES) | (inv["wall_ms"] >= NEAR * wall_limit_ms), "invocation_id"
    ]
    limit_types = over_represented_types(ev, set(hit_ids.dropna()))
    hyps = find_hypotheses(
        errors,
        table,
        deploys,
        shifts,
        storms,
        limit_hits,
        payload_fields,
        dlq,
        inv,
        freq,
        limit_types,
        deploy_info=bool(sources),
    )
    if not telemetry:
        hyps = _with_dlq_clusters(hyps, dlq, table)
        notes.append(no_telemetry_note(dlq))
    add_unattributed(hyps, dlq)
    # queue analytics (only bundles that have them): stalls, throughput drops, dead-lettering
    hyps, queue_health = queue_findings(ev, hyps, errors, failure, dlq, telemetry=telemetry)
    coverage = dlq_coverage(ev.manifest)  # a peek: every DLQ number is "of the first 100 only"
    mark_partial_dlq(hyps, coverage)
    if coverage is not None:
        notes.append(coverage.note())
    retried = deliveries[deliveries["attempt"] >= 2] if len(deliveries) else deliveries
    findings = Findings(
        window=window,
        bucket_seconds=bucket,
        totals=_totals(ev, inv, errors, failure, table, dlq, n_deploys=len(deploys)),
        timeline=timeline_rows(inv),
        failed_rate=failed_rates(inv),
        attempts=attempt_bins(deliveries, ev.dlq),
        limits=limit_stats(inv, cpu_limit_ms, wall_limit_ms),
        deploys=deploys,
        cluster_shifts=shifts,
        new_after_deploy=[s for s in shifts if s.new_after_deploy],
        blast_radius=blast_radius_rows(errors, payload_fields),
        dlq_by_cluster=dlq_by_cluster(dlq, table),
        retry_storms=storms,
        limit_hits=limit_hits,
        hypotheses=hyps,
        incident=build_incident(
            inv, errors, dlq, hyps, freq, hit_ids=set(hit_ids.dropna()), retried=retried, failure=failure
        ),
        clusters=_summaries(table),
        deploy_sources=sources,
        notes=notes,
        has_telemetry=telemetry,
        dlq_coverage=coverage,
    )
    return with_queue_health(findings, queue_health)


def _window(inv: pd.DataFrame, errors: pd.DataFrame) -> tuple[TimeWindow | None, pd.Timedelta]:
    """The window the invocations and error rows span (``None`` without any), and its length."""
    times = [
        t for t in (inv["ts"].min(), inv["ts"].max(), errors["ts"].min(), errors["ts"].max()) if as_utc(t)
    ]
    if not times:
        return None, pd.Timedelta(0)
    start, end = min(times), max(times)
    window = TimeWindow(start=pydt(as_utc(start)), end=pydt(as_utc(end)))
    return window, pd.Timestamp(end) - pd.Timestamp(start)


def _mark_failed(inv: pd.DataFrame, errors: pd.DataFrame) -> pd.Series:
    """Set ``inv["failed"]`` by the one definition (module docs) and return which error rows are failures.

    An invocation failed when the runtime says so, or when it threw or logged an error-level line (a
    consumer that catches per message reports outcome ok while its jobs fail); warn lines are not
    failures."""
    failure = errors["level"].isin(FAILURE_LEVELS) if len(errors) else pd.Series(dtype=bool)
    with_failures = set(errors.loc[failure, "invocation_id"].dropna()) if len(errors) else set()
    inv["failed"] = inv["failed"] | inv["invocation_id"].isin(with_failures)
    return failure


def _with_dlq_clusters(hyps: list[Hypothesis], dlq: pd.DataFrame, table: pd.DataFrame) -> list[Hypothesis]:
    """Only the DLQ to go on: its large error clusters are findings too (next to what payload fields
    showed), ranked together."""
    covered = {c for h in hyps for c in h.cluster_ids}
    extra = [h for h in dlq_cluster_hypotheses(dlq, table) if not set(h.cluster_ids) & covered]
    merged = sorted([*hyps, *extra], key=lambda h: (-h.score, h.kind, h.title))
    return [h.model_copy(update={"rank": i}) for i, h in enumerate(merged, start=1)]


def _summaries(table: pd.DataFrame) -> list[ClusterSummary]:
    """The 25 largest clusters."""
    return [
        ClusterSummary(
            cluster_id=str(r["cluster_id"]),
            template=str(r["template"]),
            count=int(r["count"]),
            kind=str(r["kind"]),
            kind_rule=str(r["kind_rule"]),
            first_seen=pydt(as_utc(r["first_seen"])),
            last_seen=pydt(as_utc(r["last_seen"])),
            job_types=list(r["job_types"]),
            n_dlq_messages=int(r["n_dlq_messages"]),
        )
        for r in records(table.head(25))
    ]


def _totals(
    ev: Evidence,
    inv: pd.DataFrame,
    errors: pd.DataFrame,
    failure: pd.Series,
    table: pd.DataFrame,
    dlq: pd.DataFrame,
    *,
    n_deploys: int,
) -> dict[str, int]:
    return {
        "invocations": len(inv),
        "failed_invocations": int(inv["failed"].sum()),
        "error_rows": len(errors),
        "failure_rows": int(failure.sum()) if len(errors) else 0,
        "clusters": len(table),
        "dlq_messages": len(dlq),
        "dlq_unattributed": int(dlq["cluster_id"].isna().sum()) if len(dlq) else 0,
        "deploys": n_deploys,
        "log_lines": len(ev.logs),
        "exceptions": len(ev.exceptions),
    }
