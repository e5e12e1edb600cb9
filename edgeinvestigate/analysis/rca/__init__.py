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
from typing import TYPE_CHECKING, Any, Final, Literal

import pandas as pd

from edgeinvestigate._memory import give_back_memory
from edgeinvestigate.analysis._columns import utc_series
from edgeinvestigate.analysis.clustering import FAILURE_LEVELS
from edgeinvestigate.analysis.clustering import cluster as _cluster
from edgeinvestigate.analysis.deploys import parse_deployments
from edgeinvestigate.analysis.dlq_coverage import dlq_coverage, mark_partial_dlq
from edgeinvestigate.analysis.rca._blast_radius import TENANT_FIELDS
from edgeinvestigate.analysis.rca._buckets import BUCKETS_S, choose_bucket
from edgeinvestigate.analysis.rca._dlq import add_unattributed, dlq_by_cluster
from edgeinvestigate.analysis.rca._hypotheses import find_hypotheses
from edgeinvestigate.analysis.rca._hypotheses.dlq_cluster import dlq_cluster_hypotheses
from edgeinvestigate.analysis.rca._incident import build_incident
from edgeinvestigate.analysis.rca._limits import CPU_LIMIT_MS, WALL_LIMIT_MS
from edgeinvestigate.analysis.rca._notes import NO_DEPLOY_INFO, no_telemetry_note
from edgeinvestigate.analysis.rca._pandas_path import pandas_parts
from edgeinvestigate.analysis.rca._parts import Parts
from edgeinvestigate.analysis.rca._queue_health import queue_findings, with_queue_health
from edgeinvestigate.analysis.rca._sql_inputs import ERROR_COLUMNS
from edgeinvestigate.analysis.rca._values import as_utc, pydt, records
from edgeinvestigate.errors import ConfigError
from edgeinvestigate.models.findings import ClusterSummary, Findings, Hypothesis

if TYPE_CHECKING:
    from edgeinvestigate.analysis.clustering import Clusters
    from edgeinvestigate.evidence.bundle import Evidence

__all__ = ["BUCKETS_S", "ENGINES", "FAILURE_LEVELS", "TENANT_FIELDS", "analyze", "choose_bucket"]

#: the columns of the error rows (``Clusters.assign``) the analysis reads: those the SQL engine reads,
#: the time and the row; on a busy day the others (texts, templates, rules) are most of their memory
ERROR_ROW_COLUMNS: Final = ("row", "ts", *ERROR_COLUMNS)
#: the columns of the error rows the incident reads
INCIDENT_COLUMNS: Final = ("ts", "cluster_id", "invocation_id", "job_id")
#: how the aggregates are computed: ``sql`` (DuckDB over the frames) or ``pandas`` (in memory; the
#: reference the SQL is checked against)
ENGINES = ("sql", "pandas")


def analyze(
    ev: Evidence,
    clusters: Clusters | None = None,
    *,
    tenant_fields: Sequence[str] = TENANT_FIELDS,
    cpu_limit_ms: float = CPU_LIMIT_MS,
    wall_limit_ms: float = WALL_LIMIT_MS,
    bucket_seconds: int | None = None,
    deployments: Iterable[Any] | None = None,
    engine: Literal["sql", "pandas"] = "sql",
) -> Findings:
    """Rank root-cause hypotheses for an evidence bundle (see the module docs).

    ``deployments`` adds deploy markers the data may not show: ``("v42", "2026-11-27T14:05Z")``
    pairs, ``"v42@2026-11-27T14:05Z"`` strings or ``{"version", "at"}`` dicts (times in ISO-8601 or
    epoch; naive is UTC). A bad entry raises :class:`~edgeinvestigate.errors.ConfigError`.

    ``engine``: the aggregates (timelines, rates, limits, deliveries, storms, shifts, blast radius)
    run as SQL in DuckDB over the frames (``"sql"``, see :mod:`edgeinvestigate.analysis.sql`), or in
    pandas in memory (``"pandas"``); both give the same findings.
    """
    if engine not in ENGINES:
        raise ConfigError(f"unknown analysis engine {engine!r}", hint=f"choose one of {', '.join(ENGINES)}")
    given = parse_deployments(deployments)
    if clusters is None:
        clusters = _cluster(ev)
    # the error rows' columns as Arrow (computed, or read once from the bundle): the pandas frame is
    # made of them, and the SQL engine takes their strings as they are
    held = not isinstance(clusters.rows, pd.DataFrame)
    table = clusters.error_table(ERROR_ROW_COLUMNS, dlq=False) if held else None
    errors = clusters.error_rows(ERROR_ROW_COLUMNS, dlq=False, table=table)
    errors["ts"] = utc_series(errors["ts"]) if len(errors) else pd.Series(dtype="datetime64[ns, UTC]")
    options: dict[str, Any] = {
        "tenant_fields": tenant_fields,
        "cpu_limit_ms": cpu_limit_ms,
        "wall_limit_ms": wall_limit_ms,
        "bucket_seconds": bucket_seconds,
    }
    if engine == "pandas":
        return _findings(ev, clusters, errors, pandas_parts(ev, clusters, errors, given, **options), given)
    from edgeinvestigate.analysis.rca._sql_path import sql_parts
    from edgeinvestigate.analysis.sql import connect, frame_specs

    with connect() as sql:
        sql.frames(frame_specs(ev))
        parts = sql_parts(sql, ev, clusters, errors, table, given, **options)
        # the hypotheses and the incident may ask for storm windows (the deliveries): keep the engine
        # open until done, with only what that reads (on a busy day the rest holds hundreds of MB)
        sql.keep_only("deliveries")
        give_back_memory()
        return _findings(ev, clusters, errors, parts, given)


def _findings(
    ev: Evidence, clusters: Clusters, errors: pd.DataFrame, parts: Parts, given: Sequence[Any]
) -> Findings:
    """Rank the hypotheses on the aggregates and assemble the findings."""
    dlq = clusters.dlq
    win = parts.win
    freq = win.freq
    failure = errors["level"].isin(FAILURE_LEVELS) if len(errors) else pd.Series(dtype=bool)
    telemetry = bool(sum(parts.rows.values()))
    errors["bucket"] = errors["ts"].dt.floor(freq) if len(errors) else errors["ts"]
    notes: list[str] = []
    if not parts.sources and parts.n_invocations:
        notes.append(NO_DEPLOY_INFO)
    table = clusters.table
    hyps = find_hypotheses(
        errors,
        table,
        parts.deploys,
        parts.shifts,
        parts.storms,
        parts.limit_hits,
        parts.payload,
        dlq,
        win.inv_times(),
        freq,
        parts.limit_types,
        deploy_info=bool(parts.sources),
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
    # what the hypotheses freed goes back to the system before the incident's selections are made: in
    # a process that loaded and clustered 10M events first, glibc kept ~0.7 GB of it, and the incident
    # peaked at 4.1 GB instead of 3.5 GB
    give_back_memory()
    incident = build_incident(
        (parts.n_invocations, parts.n_failed),
        errors[list(INCIDENT_COLUMNS)],  # what it reads: its selections copy fewer columns
        dlq,
        hyps,
        freq,
        hits=parts.hits,
        retried=parts.retried,
        failure=failure,
    )
    findings = Findings(
        window=win.window,
        bucket_seconds=win.bucket,
        totals=_totals(parts, errors, failure, table, dlq),
        timeline=parts.timeline,
        failed_rate=parts.failed_rate,
        attempts=parts.attempts,
        limits=parts.limits,
        deploys=parts.deploys,
        cluster_shifts=parts.shifts,
        new_after_deploy=[s for s in parts.shifts if s.new_after_deploy],
        blast_radius=parts.blast_radius,
        dlq_by_cluster=dlq_by_cluster(dlq, table),
        retry_storms=parts.storms,
        limit_hits=parts.limit_hits,
        hypotheses=hyps,
        incident=incident,
        clusters=_summaries(table),
        deploy_sources=parts.sources,
        notes=notes,
        has_telemetry=telemetry,
        dlq_coverage=coverage,
    )
    return with_queue_health(findings, queue_health)


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
    parts: Parts, errors: pd.DataFrame, failure: pd.Series, table: pd.DataFrame, dlq: pd.DataFrame
) -> dict[str, int]:
    return {
        "invocations": parts.n_invocations,
        "failed_invocations": parts.n_failed,
        "error_rows": len(errors),
        "failure_rows": int(failure.sum()) if len(errors) else 0,
        "clusters": len(table),
        "dlq_messages": len(dlq),
        "dlq_unattributed": int(dlq["cluster_id"].isna().sum()) if len(dlq) else 0,
        "deploys": len(parts.deploys),
        "log_lines": parts.rows["logs"],
        "exceptions": parts.rows["exceptions"],
    }
