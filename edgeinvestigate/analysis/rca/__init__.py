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
``evidence["dlq_unattributed"]``) rather than shown as zero.

How hypotheses are ranked: a hypothesis's score is the number of distinct failed *jobs* it explains
(error rows when the logs carry no job ids), times a factor for how well the evidence fits
(a deploy whose new clusters start within a bucket or two of it and stop at the next deploy fits
better than one 9 minutes later). Retries of the same job do not inflate a score.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final, Literal

import msgspec
import numpy as np
import pandas as pd

from edgeinvestigate.analysis._columns import as_object, dlq_time, json_decode, json_values, utc_series
from edgeinvestigate.analysis.clustering import FAILURE_LEVELS
from edgeinvestigate.analysis.clustering import cluster as _cluster
from edgeinvestigate.analysis.deploys import Deployment, invocation_versions, parse_deployments
from edgeinvestigate.models.findings import (
    AttemptsBin,
    BlastRadiusRow,
    ClusterShift,
    ClusterSummary,
    Deploy,
    DlqCluster,
    Findings,
    Hypothesis,
    Impact,
    Incident,
    IncidentTimeline,
    LimitHit,
    LimitStats,
    RateRow,
    RetryStorm,
    TimelineRow,
    TimeWindow,
)

if TYPE_CHECKING:
    from edgeinvestigate.analysis.clustering import Clusters
    from edgeinvestigate.evidence.bundle import Evidence

__all__ = ["BUCKETS_S", "FAILURE_LEVELS", "TENANT_FIELDS", "analyze", "choose_bucket"]

#: candidate bucket sizes, in seconds
BUCKETS_S: Final = (60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)
MAX_BUCKETS: Final = 120
#: payload fields that name a tenant-like owner of a job (looked up at the top level and in ``payload``)
TENANT_FIELDS: Final = (
    "tenant",
    "tenantId",
    "tenant_id",
    "customer",
    "customerId",
    "customer_id",
    "account",
    "accountId",
    "account_id",
    "org",
    "orgId",
    "org_id",
    "workspace",
    "workspaceId",
    "workspace_id",
)
WALL_LIMIT_MS: Final = 30_000.0
CPU_LIMIT_MS: Final = 30_000.0
NEAR: Final = 0.9
#: a cluster is "new after deploy X" when first seen this soon after it (and never before)
NEW_AFTER: Final = pd.Timedelta(minutes=10)
NO_DEPLOY_HOW: Final = (
    "To tie errors to deploys, pass the deploys (edgeinvestigate analyze --deploy VERSION@TIME, "
    "or ei.analyze(ev, deployments=[(version, time)])) or log a `deploy` field (the version) in every "
    "structured log line."
)
#: what to collect when a bundle has no telemetry
COLLECT_TELEMETRY: Final = (
    "Collect the Workers' telemetry for the window too: `edgeinvestigate collect --workers-logs SCRIPT "
    "--since ... --until ...` (Workers Logs API), or `wrangler tail --format json` / Logpush files "
    "(`collect --tail FILE` / `--logpush DIR`), into the same bundle."
)
#: the note in :attr:`Findings.notes` when no version data exists at all
NO_DEPLOY_INFO: Final = (
    "The data has no deploy information (no script_version in the invocations, no deploy/version "
    "field in the logs, no deploys given), so no finding can tie errors to a deploy. " + NO_DEPLOY_HOW
)


def _records(df: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): v for k, v in r.items()} for r in df.to_dict(orient="records")]


def choose_bucket(span: pd.Timedelta) -> int:
    """The bucket size in seconds for a window of ``span`` (at most :data:`MAX_BUCKETS` buckets)."""
    seconds = max(span.total_seconds(), 1.0)
    for b in BUCKETS_S:
        if seconds / b <= MAX_BUCKETS:
            return b
    return BUCKETS_S[-1]


def _ts(value: Any) -> pd.Timestamp | None:
    if value is None or (not isinstance(value, pd.Timestamp) and pd.isna(value)):
        return None
    ts = pd.Timestamp(value)
    if pd.isna(ts):
        return None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _py(ts: pd.Timestamp | None) -> Any:
    return None if ts is None else ts.to_pydatetime()


def _fmt(ts: pd.Timestamp | None) -> str:
    return "?" if ts is None else f"{ts:%H:%M} UTC"


def _short(version: str | None) -> str:
    if not version:
        return "?"
    return version if len(version) <= 12 else version[:8]


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
    inv = _invocations(ev)
    errors = clusters.assign[clusters.assign["source"] != "dlq"].copy()
    errors["ts"] = utc_series(errors["ts"]) if len(errors) else pd.Series(dtype="datetime64[ns, UTC]")
    dlq = clusters.dlq

    times = [t for t in (inv["ts"].min(), inv["ts"].max(), errors["ts"].min(), errors["ts"].max()) if _ts(t)]
    window = None
    if times:
        start, end = min(times), max(times)
        window = TimeWindow(start=_py(_ts(start)), end=_py(_ts(end)))
        span = pd.Timestamp(end) - pd.Timestamp(start)
    else:
        span = pd.Timedelta(0)
    bucket = bucket_seconds or choose_bucket(span)
    freq = pd.Timedelta(seconds=bucket)

    # "failed" (module docs): the runtime says so, or the invocation threw or logged an error-level
    # line (a consumer that catches per message reports outcome ok while its jobs fail); warn lines
    # are not failures
    failure = errors["level"].isin(FAILURE_LEVELS) if len(errors) else pd.Series(dtype=bool)
    with_failures = set(errors.loc[failure, "invocation_id"].dropna()) if len(errors) else set()
    inv["failed"] = inv["failed"] | inv["invocation_id"].isin(with_failures)
    telemetry = bool(len(ev.invocations) or len(ev.logs) or len(ev.exceptions))
    inv["bucket"] = inv["ts"].dt.floor(freq)
    errors["bucket"] = errors["ts"].dt.floor(freq) if len(errors) else errors["ts"]

    timeline = _timeline(inv)
    rates = _rates(inv)
    deliveries = _deliveries(ev)
    attempts = _attempts(deliveries, ev.dlq)
    limits = _limits(inv, cpu_limit_ms, wall_limit_ms)
    deploys = _deploys(inv, given)
    sources = sorted({str(x) for x in inv["version_source"].dropna()} | ({"given"} if given else set()))
    notes: list[str] = []
    if not sources and len(inv):
        notes.append(NO_DEPLOY_INFO)
    table = clusters.table
    shifts = _shifts(errors, table, deploys, span)
    new_after = [s for s in shifts if s.new_after_deploy]
    payload_fields = _payload_fields(ev, clusters, tenant_fields)
    blast = _blast_radius(errors, payload_fields)
    dlq_by = _dlq_by_cluster(dlq, table)
    storms = _retry_storms(deliveries, freq)
    limit_hits = _limit_hits(inv, cpu_limit_ms, wall_limit_ms)

    hit_ids = inv.loc[
        inv["outcome"].isin(_LIMIT_OUTCOMES) | (inv["wall_ms"] >= NEAR * wall_limit_ms), "invocation_id"
    ]
    limit_types = _over_represented(ev, set(hit_ids.dropna()))
    hyps = _hypotheses(
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
        # only the DLQ to go on: its large error clusters are findings too (next to what payload
        # fields showed), ranked together
        covered = {c for h in hyps for c in h.cluster_ids}
        extra = [h for h in _dlq_hypotheses(dlq, table) if not set(h.cluster_ids) & covered]
        merged = sorted([*hyps, *extra], key=lambda h: (-h.score, h.kind, h.title))
        hyps = [h.model_copy(update={"rank": i}) for i, h in enumerate(merged, start=1)]
        notes.append(_no_telemetry_note(dlq))
    _add_unattributed(hyps, dlq)
    retried = deliveries[deliveries["attempt"] >= 2] if len(deliveries) else deliveries
    incident = _incident(
        inv, errors, dlq, hyps, freq, hit_ids=set(hit_ids.dropna()), retried=retried, failure=failure
    )
    summaries = [
        ClusterSummary(
            cluster_id=str(r["cluster_id"]),
            template=str(r["template"]),
            count=int(r["count"]),
            kind=str(r["kind"]),
            kind_rule=str(r["kind_rule"]),
            first_seen=_py(_ts(r["first_seen"])),
            last_seen=_py(_ts(r["last_seen"])),
            job_types=list(r["job_types"]),
            n_dlq_messages=int(r["n_dlq_messages"]),
        )
        for r in _records(table.head(25))
    ]
    totals = {
        "invocations": len(inv),
        "failed_invocations": int(inv["failed"].sum()),
        "error_rows": len(errors),
        "failure_rows": int(failure.sum()) if len(errors) else 0,
        "clusters": len(table),
        "dlq_messages": len(dlq),
        "dlq_unattributed": int(dlq["cluster_id"].isna().sum()) if len(dlq) else 0,
        "deploys": len(deploys),
        "log_lines": len(ev.logs),
        "exceptions": len(ev.exceptions),
    }
    return Findings(
        window=window,
        bucket_seconds=bucket,
        totals=totals,
        timeline=timeline,
        failed_rate=rates,
        attempts=attempts,
        limits=limits,
        deploys=deploys,
        cluster_shifts=shifts,
        new_after_deploy=new_after,
        blast_radius=blast,
        dlq_by_cluster=dlq_by,
        retry_storms=storms,
        limit_hits=limit_hits,
        hypotheses=hyps,
        incident=incident,
        clusters=summaries,
        deploy_sources=sources,
        notes=notes,
        has_telemetry=telemetry,
    )


# --------------------------------------------------------------------------------------------
# frames
# --------------------------------------------------------------------------------------------
def _invocations(ev: Evidence) -> pd.DataFrame:
    src = ev.invocations
    inv = pd.DataFrame(
        {
            "invocation_id": as_object(src["invocation_id"]),
            "ts": utc_series(src["ts"]),
            "script": as_object(src["script"]),
            "script_version": as_object(src["script_version"]),
            "trigger": as_object(src["trigger"]),
            "queue": as_object(src["queue"]),
            "outcome": as_object(src["outcome"]).fillna("unknown"),
            "failed": src["failed"].astype("boolean").fillna(False).astype(bool),
            "cpu_ms": pd.to_numeric(src["cpu_ms"].astype(object), errors="coerce"),
            "wall_ms": pd.to_numeric(src["wall_ms"].astype(object), errors="coerce"),
        }
    )
    logs = ev.logs
    # the version each invocation ran: its script_version, else the version its log lines name
    versions = invocation_versions(inv, logs)
    inv["script_version"] = versions["version"].to_numpy()
    inv["version_source"] = versions["version_source"].to_numpy()
    if len(logs) and len(inv):
        lj = pd.DataFrame(
            {"invocation_id": as_object(logs["invocation_id"]), "job_type": as_object(logs["job_type"])}
        )
        jt = lj.dropna().drop_duplicates("invocation_id")
        inv = inv.merge(jt, on="invocation_id", how="left")
    else:
        inv["job_type"] = None
    inv["job_type"] = inv["job_type"].fillna("unknown")
    return inv.dropna(subset=["ts"]).reset_index(drop=True)


def _timeline(inv: pd.DataFrame) -> list[TimelineRow]:
    if inv.empty:
        return []
    g = (
        inv.groupby(["bucket", "job_type", "outcome"])
        .agg(n=("failed", "size"), failed=("failed", "sum"))
        .reset_index()
    )
    return [
        TimelineRow(
            bucket=_py(_ts(r["bucket"])),
            job_type=str(r["job_type"]),
            outcome=str(r["outcome"]),
            invocations=int(r["n"]),
            failed=int(r["failed"]),
        )
        for r in _records(g)
    ]


def _rates(inv: pd.DataFrame) -> list[RateRow]:
    if inv.empty:
        return []
    g = inv.groupby(["bucket", "job_type"]).agg(n=("failed", "size"), failed=("failed", "sum")).reset_index()
    return [
        RateRow(
            bucket=_py(_ts(r["bucket"])),
            job_type=str(r["job_type"]),
            invocations=int(r["n"]),
            failed=int(r["failed"]),
            failed_rate=float(r["failed"]) / float(r["n"]) if r["n"] else 0.0,
        )
        for r in _records(g)
    ]


def _deliveries(ev: Evidence) -> pd.DataFrame:
    """One row per (job id, attempt, invocation) from logs that carry a job id and an attempt."""
    logs = ev.logs
    if logs.empty:
        return pd.DataFrame(columns=["job_id", "attempt", "invocation_id", "ts", "job_type"])
    d = pd.DataFrame(
        {
            "job_id": as_object(logs["job_id"]),
            "attempt": pd.to_numeric(logs["attempt"].astype(object), errors="coerce"),
            "invocation_id": as_object(logs["invocation_id"]),
            "ts": utc_series(logs["ts"]),
            "job_type": as_object(logs["job_type"]),
        }
    ).dropna(subset=["job_id", "attempt"])
    return d.drop_duplicates(["job_id", "attempt", "invocation_id"])


def _attempts(d: pd.DataFrame, dlq: pd.DataFrame) -> list[AttemptsBin]:
    """Deliveries per attempt number (from the DLQ's attempt counts when ``d`` has none)."""
    counts: Counter[int]
    if d.empty:
        vals: Any = (
            pd.to_numeric(dlq["attempts"].astype(object), errors="coerce").dropna() if len(dlq) else []
        )
        counts = Counter(int(v) for v in vals)
    else:
        counts = Counter(int(v) for v in d["attempt"])
    return [AttemptsBin(attempts=k, deliveries=v) for k, v in sorted(counts.items())]


def _limits(inv: pd.DataFrame, cpu_limit: float, wall_limit: float) -> LimitStats:
    def q(s: pd.Series, p: float) -> float | None:
        s = s.dropna()
        return float(s.quantile(p)) if len(s) else None

    cpu, wall = inv["cpu_ms"], inv["wall_ms"]
    return LimitStats(
        cpu_limit_ms=cpu_limit,
        wall_limit_ms=wall_limit,
        cpu_p50_ms=q(cpu, 0.5),
        cpu_p95_ms=q(cpu, 0.95),
        cpu_p99_ms=q(cpu, 0.99),
        cpu_max_ms=q(cpu, 1.0),
        wall_p50_ms=q(wall, 0.5),
        wall_p95_ms=q(wall, 0.95),
        wall_p99_ms=q(wall, 0.99),
        wall_max_ms=q(wall, 1.0),
        exceeded_cpu=int((inv["outcome"] == "exceededCpu").sum()),
        exceeded_memory=int((inv["outcome"] == "exceededMemory").sum()),
        exceeded_wall=int((inv["outcome"] == "exceededWallTime").sum()),
        cpu_near_limit=int((cpu >= NEAR * cpu_limit).sum()),
        wall_near_limit=int((wall >= NEAR * wall_limit).sum()),
    )


def _deploys(inv: pd.DataFrame, given: Sequence[Deployment] = ()) -> list[Deploy]:
    """Every version that first appears after another version of the same script was running
    (``inv["script_version"]`` is the effective version, ``inv["version_source"]`` where it came
    from), plus the ``given`` deployments, which replace an observed marker of the same version."""
    out: list[Deploy] = []
    v = inv.dropna(subset=["script_version"]).sort_values("ts", kind="stable") if len(inv) else inv
    # without a script name (local workerd), tell Workers apart by what invoked them: a producer's
    # and a consumer's versions are not deploys of one another
    unnamed = "\0" + v["trigger"].fillna("?").astype(str) + "/" + v["queue"].fillna("").astype(str)
    worker = v["script"].where(v["script"].notna(), unnamed) if len(v) else v["script"]
    for key, g in v.groupby(worker, sort=True) if len(v) else ():
        script = "" if str(key).startswith("\0") else str(key)
        first = g.drop_duplicates("script_version")
        versions = list(first["script_version"])
        for i in range(1, len(first)):
            at = first["ts"].iloc[i]
            # the version mostly running since the marker before (not the whole window's favourite)
            before = g[(g["ts"] < at) & (g["ts"] >= first["ts"].iloc[i - 1])]
            prev = before["script_version"].value_counts().index[0] if len(before) else versions[i - 1]
            out.append(
                Deploy(
                    script=str(script) or None,
                    version=str(versions[i]),
                    previous_version=str(prev),
                    at=_py(_ts(at)),
                    invocations_after=int((g["script_version"] == versions[i]).sum()),
                    source=str(first["version_source"].iloc[i]),  # type: ignore[arg-type]
                )
            )
    # one Worker on several queues (no script name) shows one deploy once per queue: keep the first
    out.sort(key=lambda d: (d.at, d.version))
    seen: set[tuple[str | None, str]] = set()
    unique: list[Deploy] = []
    for d in out:
        if (d.script, d.version) not in seen:
            seen.add((d.script, d.version))
            unique.append(d)
    out = unique
    if given:
        named = {version for version, _ in given}
        out = [d for d in out if d.version not in named]
        for i, (version, at) in enumerate(given):
            before = v[v["ts"] < at] if len(v) else v
            prev_given: str | None
            if i > 0:
                prev_given = given[i - 1][0]
            elif len(before):
                prev_given = str(before["script_version"].iloc[-1])
            else:
                prev_given = None
            ran = (v["script_version"] == version) if len(v) else pd.Series(dtype=bool)
            if len(v) and ran.any():
                after = int(ran.sum())
            else:  # the data names no versions: the invocations until the next given deployment
                until = given[i + 1][1] if i + 1 < len(given) else None
                ts = inv["ts"] if len(inv) else pd.Series(dtype="datetime64[ns, UTC]")
                after = int(((ts >= at) & ((ts < until) if until is not None else True)).sum())
            out.append(
                Deploy(
                    script=None,
                    version=version,
                    previous_version=prev_given,
                    at=_py(_ts(at)),
                    invocations_after=after,
                    source="given",
                )
            )
    out.sort(key=lambda d: (d.at, d.version))
    return out


def _shifts(
    errors: pd.DataFrame, table: pd.DataFrame, deploys: list[Deploy], span: pd.Timedelta
) -> list[ClusterShift]:
    out: list[ClusterShift] = []
    if errors.empty or not deploys:
        return out
    w = min(pd.Timedelta(minutes=30), max(span / 2, pd.Timedelta(minutes=1)))
    minutes = w.total_seconds() / 60
    templates = dict(zip(table["cluster_id"], table["template"], strict=True))
    for d in deploys:
        at = pd.Timestamp(d.at)
        same_script = (
            errors if d.script is None else errors[errors["script"].isna() | (errors["script"] == d.script)]
        )
        for cid, g in same_script.groupby("cluster_id", sort=True):
            before = int(((g["ts"] >= at - w) & (g["ts"] < at)).sum())
            after = int(((g["ts"] >= at) & (g["ts"] < at + w)).sum())
            ever_before = bool((g["ts"] < at).any())
            first = g["ts"].min()
            lag = (first - at).total_seconds() / 60
            known = g["script_version"].dropna()
            share = float((known == d.version).mean()) if len(known) else None
            new = (not ever_before) and 0 <= lag <= NEW_AFTER.total_seconds() / 60
            if before == 0 and after == 0:
                continue  # not active around this deploy
            out.append(
                ClusterShift(
                    cluster_id=str(cid),
                    template=str(templates.get(cid, "")),
                    version=d.version,
                    script=d.script,
                    before=before,
                    after=after,
                    rate_before_per_min=before / minutes,
                    rate_after_per_min=after / minutes,
                    share_on_version=share,
                    first_seen=_py(_ts(first)),
                    minutes_after_deploy=round(lag, 2),
                    new_after_deploy=new,
                )
            )
    return out


# --------------------------------------------------------------------------------------------
# blast radius, DLQ, storms, limits
# --------------------------------------------------------------------------------------------
def _find_field(obj: Any, fields: Sequence[str]) -> tuple[str, str] | None:
    if isinstance(obj, dict):
        for f in fields:
            v = obj.get(f)
            if v is not None and not isinstance(v, dict | list):
                return f, str(v)
        for nested in ("payload", "data", "body", "original"):
            hit = _find_field(obj.get(nested), fields)
            if hit:
                return hit
    return None


def _payload_fields(ev: Evidence, clusters: Clusters, fields: Sequence[str]) -> pd.DataFrame:
    """Tenant-like fields per job: from DLQ payloads and structured error log lines.

    Returns rows (job_id, cluster_id, field, value); job_id may be null for log lines without one.
    """
    rows: list[dict[str, Any]] = []
    if not fields:
        return pd.DataFrame(columns=["job_id", "cluster_id", "field", "value", "source"])
    dlq = clusters.dlq
    if len(dlq):
        for payload, job, cid in zip(
            as_object(dlq["payload"]), as_object(dlq["job_id"]), as_object(dlq["cluster_id"]), strict=True
        ):
            if not payload:
                continue
            try:
                hit = _find_field(json_decode(payload), fields)
            except (ValueError, msgspec.DecodeError):
                continue
            if hit:
                rows.append(
                    {"job_id": job, "cluster_id": cid, "field": hit[0], "value": hit[1], "source": "dlq"}
                )
    logs = ev.logs
    a = clusters.assign
    log_rows = a[a["source"] == "log"]
    if len(log_rows) and len(logs):
        args = as_object(logs["args"]).to_numpy()
        msgs = as_object(logs["message"]).to_numpy()
        for r, job, cid in zip(log_rows["row"], log_rows["job_id"], log_rows["cluster_id"], strict=True):
            for text in (msgs[r], args[r]):
                if not text or "{" not in str(text):
                    continue
                hit = None
                for o in json_values(text):
                    hit = _find_field(o, fields)
                    if hit:
                        break
                if hit:
                    rows.append(
                        {"job_id": job, "cluster_id": cid, "field": hit[0], "value": hit[1], "source": "log"}
                    )
                    break
    return pd.DataFrame(rows, columns=["job_id", "cluster_id", "field", "value", "source"])


def _blast_radius(errors: pd.DataFrame, payload: pd.DataFrame) -> list[BlastRadiusRow]:
    out: list[BlastRadiusRow] = []
    total = len(errors)
    if total:
        for dim in ("job_type", "queue", "script", "script_version"):
            col = errors[dim].fillna("unknown").astype(str)
            for value, n in col.value_counts().items():
                jobs = errors.loc[col == value, "job_id"].dropna().nunique()
                out.append(
                    BlastRadiusRow(
                        dimension=dim, value=str(value), errors=int(n), share=n / total, jobs=int(jobs)
                    )
                )
    if len(payload):
        for fieldname, g in payload.groupby("field", sort=True):
            counts = g["value"].value_counts()
            n_all = len(g)
            for value, n in counts.head(20).items():
                jobs = g.loc[g["value"] == value, "job_id"].dropna().nunique()
                out.append(
                    BlastRadiusRow(
                        dimension=str(fieldname),
                        value=str(value),
                        errors=int(n),
                        share=n / n_all,
                        jobs=int(jobs),
                    )
                )
    return out


def _dlq_by_cluster(dlq: pd.DataFrame, table: pd.DataFrame) -> list[DlqCluster]:
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


def _runs(mask: np.ndarray, max_gap: int = 1) -> list[tuple[int, int]]:
    """Index ranges [i, j] where ``mask`` is true, bridging gaps of at most ``max_gap``."""
    idx = np.flatnonzero(mask)
    if len(idx) == 0:
        return []
    runs = []
    start = prev = int(idx[0])
    for i in idx[1:]:
        if i - prev > max_gap + 1:
            runs.append((start, prev))
            start = int(i)
        prev = int(i)
    runs.append((start, prev))
    return runs


def _retry_storms(d: pd.DataFrame, freq: pd.Timedelta) -> list[RetryStorm]:
    if d.empty:
        return []
    d = d.dropna(subset=["ts"])
    d["bucket"] = d["ts"].dt.floor(freq)
    d["retried"] = d["attempt"] >= 2
    g = d.groupby("bucket").agg(n=("retried", "size"), r=("retried", "sum")).sort_index()
    if g.empty:
        return []
    full = g.reindex(pd.date_range(g.index.min(), g.index.max(), freq=freq), fill_value=0)
    baseline = float(full["r"].median())
    hot = ((full["r"] >= max(10.0, 3 * baseline)) & (full["r"] >= 0.3 * full["n"].clip(lower=1))).to_numpy()
    out = []
    for i, j in _runs(hot):
        start, end = full.index[i], full.index[j] + freq
        part = d[(d["ts"] >= start) & (d["ts"] < end)]
        reps = part.groupby("job_id")["invocation_id"].nunique().sort_values(ascending=False)
        repeated = [str(x) for x in reps[reps >= 3].index[:10]]
        retried_types = part.loc[part["retried"], "job_type"].dropna().astype(str)
        shares = retried_types.value_counts(normalize=True)
        types = sorted(str(t) for t, v in shares.items() if v >= 0.2)
        retried = int(part["retried"].sum())
        out.append(
            RetryStorm(
                window=TimeWindow(start=_py(_ts(start)), end=_py(_ts(end))),
                deliveries=len(part),
                retried_deliveries=retried,
                jobs=int(part.loc[part["retried"], "job_id"].nunique()),
                max_attempt=int(part["attempt"].max()),
                job_types=types,
                repeated_job_ids=repeated,
                sentence=(
                    f"Between {_fmt(start)} and {_fmt(end)}, {retried} of {len(part)} deliveries "
                    "were retries "
                    f"(up to attempt {int(part['attempt'].max())}) of "
                    f"{int(part.loc[part['retried'], 'job_id'].nunique())} jobs"
                    + (f" of {', '.join(types)}" if types else "")
                    + "."
                ),
            )
        )
    return out


_LIMIT_OUTCOMES: Final = ("exceededCpu", "exceededMemory", "exceededWallTime")


def _over_represented(ev: Evidence, invocation_ids: set[Any]) -> list[str]:
    """Job types over-represented among the jobs of some invocations (a batch mixes job types, so
    the type that makes invocations heavy is the one whose share rises there): share >= 20% and at
    least 1.5 times its share overall, most over-represented first."""
    logs = ev.logs
    if not invocation_ids or logs.empty:
        return []
    d = pd.DataFrame(
        {
            "invocation_id": as_object(logs["invocation_id"]),
            "job_id": as_object(logs["job_id"]),
            "job_type": as_object(logs["job_type"]),
        }
    ).dropna(subset=["job_type"])
    d = d.drop_duplicates(["invocation_id", "job_id", "job_type"])
    if d.empty:
        return []
    overall = d["job_type"].value_counts(normalize=True)
    inside = d[d["invocation_id"].isin(invocation_ids)]["job_type"].value_counts(normalize=True)
    lift = (inside / overall.reindex(inside.index)).sort_values(ascending=False)
    return [str(t) for t, v in lift.items() if float(v) >= 1.5 and float(inside.get(t, 0.0)) >= 0.2]


def _limit_hits(inv: pd.DataFrame, cpu_limit: float, wall_limit: float) -> list[LimitHit]:
    out: list[LimitHit] = []
    checks: list[tuple[Any, pd.Series, str]] = [
        ("exceededCpu", inv["outcome"] == "exceededCpu", "exceeded the CPU time limit"),
        ("exceededMemory", inv["outcome"] == "exceededMemory", "exceeded the 128 MB memory limit"),
        ("exceededWallTime", inv["outcome"] == "exceededWallTime", "exceeded the wall-time limit"),
        (
            "wall_near_limit",
            (inv["wall_ms"] >= NEAR * wall_limit) & (inv["outcome"] != "exceededWallTime"),
            f"ran for more than {NEAR * wall_limit / 1000:.0f} s of wall time "
            f"(limit {wall_limit / 1000:.0f} s)",
        ),
        (
            "cpu_near_limit",
            (inv["cpu_ms"] >= NEAR * cpu_limit) & (inv["outcome"] != "exceededCpu"),
            f"used more than {NEAR * cpu_limit / 1000:.0f} s of CPU (limit {cpu_limit / 1000:.0f} s)",
        ),
    ]
    for name, mask, what in checks:
        mask = mask.fillna(False).astype(bool)
        n = int(mask.sum())
        if not n:
            continue
        hit = inv[mask]
        types = sorted({str(x) for x in hit["job_type"] if x != "unknown"})
        scripts = sorted({str(x) for x in hit["script"].dropna()})
        window = TimeWindow(start=_py(_ts(hit["ts"].min())), end=_py(_ts(hit["ts"].max())))
        out.append(
            LimitHit(
                limit=name,
                invocations=n,
                job_types=types,
                scripts=scripts,
                window=window,
                sentence=(
                    f"{n} invocations{(' of ' + ', '.join(types)) if types else ''} {what} "
                    f"between {_fmt(_ts(hit['ts'].min()))} and {_fmt(_ts(hit['ts'].max()))}."
                ),
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# hypotheses
# --------------------------------------------------------------------------------------------
_HOST = re.compile(r"\b(?:[a-z][a-z0-9+.-]*://)?((?:[a-z0-9-]+\.)+[a-z]{2,})(?::\d+)?(?:/|\b)", re.IGNORECASE)


def _dependency(texts: Sequence[str]) -> str | None:
    hosts: Counter[str] = Counter()
    for t in texts:
        for m in _HOST.finditer(t):
            host = m.group(1).lower()
            if not host.endswith((".js", ".ts", ".json", ".png", ".jpg")):
                hosts[host] += 1
    if not hosts:
        return None
    host, n = hosts.most_common(1)[0]
    return host if n >= max(1, len(texts) // 2) else None


def _impact_jobs(g: pd.DataFrame) -> int:
    jobs = g["job_id"].dropna().nunique()
    no_job = int(g["job_id"].isna().sum())
    # rows without a job id count once per invocation (or once each)
    no_job_inv = g.loc[g["job_id"].isna(), "invocation_id"]
    return int(jobs + (no_job_inv.nunique() if no_job_inv.notna().any() else no_job))


def _burst(
    g: pd.DataFrame, freq: pd.Timedelta, start: pd.Timestamp, end: pd.Timestamp
) -> tuple[Any, Any, float]:
    """The main burst of a cluster: (start, end, share of its rows inside)."""
    idx = pd.date_range(start.floor(freq), end.floor(freq), freq=freq)
    counts = g.groupby("bucket").size().reindex(idx, fill_value=0)
    if counts.sum() == 0:
        return None, None, 0.0
    peak = float(counts.max())
    base = float(counts.median())
    hot = (counts >= max(1.0, 0.2 * peak, 3 * base)).to_numpy()
    runs = _runs(hot, max_gap=1)
    if not runs:
        return None, None, 0.0
    best = max(runs, key=lambda r: counts.iloc[r[0] : r[1] + 1].sum())
    s, e = counts.index[best[0]], counts.index[best[1]] + freq
    inside = float(counts.iloc[best[0] : best[1] + 1].sum()) / float(counts.sum())
    return s, e, inside


def _hypotheses(
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
    hyps: list[dict[str, Any]] = []
    if errors.empty and not limit_hits and not storms and payload.empty:
        return []
    info: dict[str, dict[str, Any]] = {str(r["cluster_id"]): r for r in _records(table)}
    dlq_counts = (
        dlq.dropna(subset=["cluster_id"]).groupby("cluster_id").size() if len(dlq) else pd.Series(dtype=int)
    )
    start: Any = errors["ts"].min() if len(errors) else None
    end: Any = errors["ts"].max() if len(errors) else None
    if start is not None and len(inv):
        # the window is the evidence's, not only its errors' (an error that starts mid-window is new)
        start, end = min(start, inv["ts"].min()), max(end, inv["ts"].max())
    span = (end - start) if start is not None else pd.Timedelta(0)
    by_cluster: dict[str, pd.DataFrame] = (
        {str(cid): g for cid, g in errors.groupby("cluster_id", sort=True)} if len(errors) else {}
    )
    used: set[str] = set()

    # --- bad deploys -----------------------------------------------------------------------------
    for d in deploys:
        at = pd.Timestamp(d.at)
        nxt = [x for x in deploys if x.at > d.at and (x.script == d.script or d.script is None)]
        next_at = pd.Timestamp(nxt[0].at) if nxt else None
        new = [s for s in shifts if s.version == d.version and s.new_after_deploy]
        # a cluster whose errors (where the version is known) mostly ran another version is not
        # this deploy's doing
        new = [s for s in new if s.share_on_version is None or s.share_on_version >= 0.5]
        if new:  # a rare background error that happens to appear after a deploy is not its doing
            biggest = max(s.after for s in new)
            new = [s for s in new if s.after >= max(3, 0.05 * biggest)]
        if any(str(info.get(s.cluster_id, {}).get("kind")) != "transient" for s in new):
            # a deploy breaks code: transient errors (5xx, timeouts) that start with code errors are
            # a dependency's, left to the outage hypotheses
            new = [s for s in new if str(info.get(s.cluster_id, {}).get("kind")) != "transient"]
        if not new:
            continue
        cids = [s.cluster_id for s in new]
        g = pd.concat([by_cluster[c] for c in cids if c in by_cluster])
        lag = min(s.minutes_after_deploy for s in new)
        bucket_min = freq.total_seconds() / 60
        fit = 1.0 / (1.0 + max(0.0, lag - bucket_min) / 5.0)
        kinds = [str(info[c]["kind"]) for c in cids if c in info]
        if kinds and all(k == "transient" for k in kinds):
            fit *= 0.5  # transient errors right after a deploy are more often a coincidence
        stopped = None
        if next_at is not None:
            last = g["ts"].max()
            if abs((last - next_at).total_seconds()) <= 2 * freq.total_seconds() + 60:
                stopped = nxt[0]
                fit *= 1.2
        share_on = [s.share_on_version for s in new if s.share_on_version is not None]
        jobs = _impact_jobs(g)
        types = sorted({str(x) for x in g["job_type"].dropna()})
        top_cid = max(cids, key=lambda c: len(by_cluster.get(c, [])))
        tpl = str(info[top_cid]["template"]) if top_cid in info else ""
        window_end = g["ts"].max() + freq
        sentence = (
            f"Deploy {_short(d.version)} of {d.script or 'the worker'} at {_fmt(at)} introduced "
            f"{len(cids)} new error cluster{'s' if len(cids) > 1 else ''} ('{tpl[:120]}') hitting "
            f"{', '.join(types) or 'jobs'}: {len(g)} errors in {jobs} jobs"
            + (f", {min(share_on):.0%} of them on {_short(d.version)}" if share_on else "")
            + (
                f"; they stopped with deploy {_short(stopped.version)} at {_fmt(pd.Timestamp(stopped.at))}"
                if stopped
                else ""
            )
            + "."
        )
        dlq_n = int(sum(dlq_counts.get(c, 0) for c in cids))
        hyps.append(
            {
                "kind": "bad_deploy",
                "title": f"Bad deploy {d.version} ({', '.join(types) or d.script or 'worker'})",
                "sentence": sentence,
                "score": jobs * fit * 1.0,
                "fit": fit,
                "cluster_ids": cids,
                "job_types": types,
                "window": TimeWindow(start=_py(_ts(at)), end=_py(_ts(window_end))),
                "deploy": d,
                "evidence": {
                    "version": d.version,
                    "previous_version": d.previous_version,
                    "script": d.script,
                    "deployed_at": at.isoformat(),
                    "errors": len(g),
                    "jobs": jobs,
                    "dlq_messages": dlq_n,
                    "minutes_to_first_error": lag,
                    "share_on_version": min(share_on) if share_on else None,
                    "stopped_with": stopped.version if stopped else None,
                },
            }
        )
        used.update(cids)

    # --- dependency outages (transient bursts) ---------------------------------------------------
    if start is not None and span > pd.Timedelta(0):
        bursts = []
        for cid, g in by_cluster.items():
            if cid in used or cid not in info or str(info[cid]["kind"]) != "transient":
                continue
            if len(g) < 5:
                continue
            s, e, inside = _burst(g, freq, start, end)
            if s is None or inside < 0.6 or (e - s) > 0.6 * span:
                continue
            bursts.append((cid, s, e, g))
        # clusters whose bursts overlap and share job types are one outage
        bursts.sort(key=lambda b: (b[1], b[0]))
        groups: list[list[tuple[Any, ...]]] = []
        for b in bursts:
            for grp in groups:
                gs = min(x[1] for x in grp)
                ge = max(x[2] for x in grp)
                types_a = set(pd.concat([x[3] for x in grp])["job_type"].dropna())
                types_b = set(b[3]["job_type"].dropna())
                if b[1] <= ge and b[2] >= gs and (not types_a or not types_b or types_a & types_b):
                    grp.append(b)
                    break
            else:
                groups.append([b])
        for grp in groups:
            cids = [x[0] for x in grp]
            g = pd.concat([x[3] for x in grp])
            ws = min(x[1] for x in grp)
            we = max(x[2] for x in grp)
            inside = g[(g["ts"] >= ws) & (g["ts"] < we)]
            jobs = _impact_jobs(inside)
            types = sorted({str(x) for x in inside["job_type"].dropna()})
            examples: list[str] = []
            for c in cids:
                examples.extend(str(e) for e in info[c]["examples"])
            dep = _dependency(examples)
            rules = sorted({str(info[c]["kind_rule"]) for c in cids})
            versions = sorted({str(v) for v in inside["script_version"].dropna()})
            sentence = (
                f"{'Calls to ' + dep if dep else 'A dependency'} failed with transient errors "
                f"({', '.join(rules)}) between {_fmt(ws)} and {_fmt(we)}: {len(inside)} errors in {jobs} jobs"
                + (f" of {', '.join(types)}" if types else "")
                + (f", across versions {', '.join(_short(v) for v in versions)}" if len(versions) > 1 else "")
                + "; it is not tied to a deploy."
            )
            hyps.append(
                {
                    "kind": "dependency_outage",
                    "title": f"Dependency outage{(' of ' + dep) if dep else ''} {_fmt(ws)}–{_fmt(we)}",
                    "sentence": sentence,
                    "score": jobs * 0.9,
                    "fit": 0.9,
                    "cluster_ids": cids,
                    "job_types": types,
                    "window": TimeWindow(start=_py(_ts(ws)), end=_py(_ts(we))),
                    "deploy": None,
                    "evidence": {
                        "dependency": dep,
                        "errors": len(inside),
                        "jobs": jobs,
                        "dlq_messages": int(sum(dlq_counts.get(c, 0) for c in cids)),
                        "start": ws.isoformat(),
                        "end": we.isoformat(),
                        "triage_rules": rules,
                    },
                }
            )
            used.update(cids)

    # --- poison payloads: a permanent cluster concentrated on one tenant-like value --------------
    if len(payload):
        for (cid_any, fieldname), g in payload.dropna(subset=["cluster_id"]).groupby(["cluster_id", "field"]):
            cid = str(cid_any)
            if cid in used or cid not in info or len(g) < 5:
                continue
            top_value, n = g["value"].value_counts().index[0], int(g["value"].value_counts().iloc[0])
            share = n / len(g)
            overall = payload[payload["field"] == fieldname]["value"]
            base_share = float((overall == top_value).mean()) if len(overall) else 0.0
            if share < 0.8 or base_share > 0.5:
                continue
            cg = by_cluster.get(cid)
            jobs = _impact_jobs(cg) if cg is not None else int(g["job_id"].nunique())
            tpl = str(info[cid]["template"])
            hyps.append(
                {
                    "kind": "poison_payload",
                    "title": f"Payloads of {fieldname}={top_value} fail",
                    "sentence": (
                        f"{share:.0%} of the jobs failing with '{tpl[:100]}' have {fieldname}={top_value} "
                        f"(it is {base_share:.0%} of all jobs seen): a bad payload, not the code."
                    ),
                    "score": jobs * 0.7,
                    "fit": 0.7,
                    "cluster_ids": [str(cid)],
                    "job_types": list(info[cid]["job_types"]),
                    "window": None,
                    "deploy": None,
                    "evidence": {
                        "field": str(fieldname),
                        "value": str(top_value),
                        "share": share,
                        "jobs": jobs,
                    },
                }
            )
            used.add(str(cid))

    # --- retry storms and limit hits --------------------------------------------------------------
    causes = [h for h in hyps if h["window"] is not None]
    for st in storms:
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
                "title": f"Retry storm {_fmt(s0)}–{_fmt(s1)}",
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
    if limit_hits:
        hard = [lh for lh in limit_hits if lh.limit.startswith("exceeded")]
        main = hard or limit_hits
        n = max(lh.invocations for lh in main)
        weight = 0.8 if hard else 0.4
        starts = [pd.Timestamp(lh.window.start) for lh in limit_hits if lh.window]
        ends = [pd.Timestamp(lh.window.end) for lh in limit_hits if lh.window]
        types = limit_types or sorted({t for lh in main for t in lh.job_types})
        parts = ", ".join(f"{lh.invocations} {lh.limit}" for lh in limit_hits)
        limit_clusters = [c for c, r in info.items() if r["kind_rule"] == "resource-limit"]
        used.update(limit_clusters)
        hyps.append(
            {
                "kind": "limit_hit",
                "title": f"Worker limits hit ({', '.join(lh.limit for lh in main)})",
                "cluster_ids": limit_clusters,
                "sentence": (
                    f"Invocations hit the Worker limits ({parts})"
                    + (f" between {_fmt(min(starts))} and {_fmt(max(ends))}" if starts else "")
                    + (f", mostly {', '.join(types)} jobs" if types else "")
                    + ": a job too heavy for one invocation fails on every retry until it is split or"
                    " the limit is raised."
                ),
                "score": n * weight,
                "fit": weight,
                "job_types": types,
                "window": TimeWindow(start=_py(min(starts)), end=_py(max(ends))) if starts else None,
                "deploy": None,
                "evidence": {lh.limit: lh.invocations for lh in limit_hits},
            }
        )

    # --- new permanent errors not tied to a deploy: bad input ------------------------------------
    permanent_rows = sum(
        len(g) for c, g in by_cluster.items() if c in info and info[c]["kind"] == "permanent"
    )
    if start is not None and span > pd.Timedelta(0):
        for cid, g in by_cluster.items():
            if cid in used or len(g) < 10 or cid not in info or info[cid]["kind"] != "permanent":
                continue
            if info[cid]["kind_rule"] == "resource-limit":
                continue  # the limit-hit hypothesis explains these
            if len(g) < 0.1 * permanent_rows:
                continue  # a rare background error that started late is not an incident
            first = g["ts"].min()
            if first <= start + 0.05 * span:
                continue  # there from the start: background, or older than the window
            jobs = _impact_jobs(g)
            tpl = str(info[cid]["template"])
            types = sorted({str(x) for x in g["job_type"].dropna()})
            rule = str(info[cid]["kind_rule"])
            last = g["ts"].max()
            head = (
                f"From {_fmt(first)} to {_fmt(last)}, {jobs} {', '.join(types)} jobs failed "
                f"permanently with '{tpl[:120]}' ({rule})"
            )
            if deploy_info:
                sentence = (
                    head
                    + "; no deploy explains it, so the input changed"
                    + (" (a bad payload)." if rule == "validation" else ".")
                )
            else:
                sentence = (
                    head
                    + "; the data has no deploy information, so a bad deploy is as likely as changed input. "
                    + NO_DEPLOY_HOW
                )
            hyps.append(
                {
                    "kind": "poison_payload" if rule == "validation" else "error_spike",
                    "title": f"New permanent error from {_fmt(first)} ({', '.join(types) or 'jobs'})",
                    "sentence": sentence,
                    "score": jobs * 0.8,
                    "fit": 0.8,
                    "cluster_ids": [cid],
                    "job_types": types,
                    "window": TimeWindow(start=_py(_ts(first)), end=_py(_ts(last + freq))),
                    "deploy": None,
                    "evidence": {
                        "errors": len(g),
                        "jobs": jobs,
                        "dlq_messages": int(dlq_counts.get(cid, 0)),
                        "triage_rule": rule,
                    },
                }
            )
            used.add(cid)

    # --- remaining spikes: clusters much more frequent in one part of the window ----------------
    if start is not None and span > pd.Timedelta(0):
        for cid, g in by_cluster.items():
            if cid in used or len(g) < 10 or cid not in info:
                continue
            s, e, inside = _burst(g, freq, start, end)
            if s is None or inside < 0.8 or (e - s) > 0.3 * span:
                continue
            jobs = _impact_jobs(g)
            tpl = str(info[cid]["template"])
            hyps.append(
                {
                    "kind": "error_spike",
                    "title": f"Error spike {_fmt(s)}–{_fmt(e)}",
                    "sentence": (
                        f"'{tpl[:120]}' spiked between {_fmt(s)} and {_fmt(e)} "
                        f"({len(g)} errors in {jobs} jobs)."
                    ),
                    "score": jobs * 0.3,
                    "fit": 0.3,
                    "cluster_ids": [str(cid)],
                    "job_types": list(info[cid]["job_types"]),
                    "window": TimeWindow(start=_py(_ts(s)), end=_py(_ts(e))),
                    "deploy": None,
                    "evidence": {"errors": len(g), "jobs": jobs, "share_in_window": inside},
                }
            )

    hyps.sort(key=lambda h: (-h["score"], h["kind"], h["title"]))
    out = []
    for i, hyp in enumerate(hyps, start=1):
        fit = hyp.pop("fit")
        confidence: Literal["high", "medium", "low"] = (
            "high" if fit >= 0.9 and hyp["score"] >= 10 else "medium" if fit >= 0.5 else "low"
        )
        out.append(Hypothesis(rank=i, confidence=confidence, **hyp))
    return out


def _incident(
    inv: pd.DataFrame,
    errors: pd.DataFrame,
    dlq: pd.DataFrame,
    hyps: list[Hypothesis],
    freq: pd.Timedelta,
    *,
    hit_ids: set[Any],
    retried: pd.DataFrame,
    failure: pd.Series,
) -> Incident:
    """The postmortem skeleton. Its timeline follows what the leading hypotheses explain: the error
    rows of their clusters and, for evidence that is not an error row, that evidence itself (the
    invocations that hit a limit, the retried deliveries of a storm, the DLQ messages of a DLQ-only
    finding); with no hypothesis, the failures (error level and exceptions), never warn noise."""
    best = hyps[0].score if hyps else 0.0
    leading = [h for h in hyps if h.score >= 0.1 * best]
    cids = {c for h in leading for c in h.cluster_ids}
    involved = errors[errors["cluster_id"].isin(cids)] if cids and len(errors) else errors.iloc[:0]
    extra: list[pd.Series] = []  # times of incident evidence that is not an error row
    for h in leading:
        if h.kind == "limit_hit" and hit_ids:
            hit = inv["invocation_id"].isin(hit_ids)
            extra.append(inv.loc[hit, "ts"])
            if not h.cluster_ids and len(errors):  # the errors those invocations logged or threw
                involved = pd.concat([involved, errors[errors["invocation_id"].isin(hit_ids)]])
        elif h.kind == "retry_storm" and h.window is not None and len(retried):
            w0, w1 = pd.Timestamp(h.window.start), pd.Timestamp(h.window.end)
            extra.append(retried.loc[(retried["ts"] >= w0) & (retried["ts"] < w1), "ts"])
        elif h.kind == "dlq_cluster" and len(dlq):
            extra.append(dlq_time(dlq)[dlq["cluster_id"].isin(h.cluster_ids).to_numpy()].dropna())
    if len(involved):
        involved = involved.loc[~involved.index.duplicated()]
    if not leading and len(errors):
        involved = errors[failure.to_numpy()]
    events = pd.concat([involved["ts"], *[utc_series(x) for x in extra]]) if len(involved) or extra else None
    if events is not None:
        events = events.dropna()
    first = _ts(events.min()) if events is not None and len(events) else None
    last = _ts(events.max()) if events is not None and len(events) else None
    peak = None
    if first is not None and events is not None:
        peak = _ts(events.dt.floor(freq).value_counts().sort_index().idxmax())
    detection = None
    if first is not None and events is not None:
        # the first bucket, from the first incident event on, whose count of failures (plus the
        # incident's own rows and evidence, e.g. retries logged at warn or limit hits) clearly exceeds
        # the usual background: the median bucket before the first incident event. Warn noise
        # outside the incident is no part of the signal.
        own = errors[failure.to_numpy() | errors.index.isin(involved.index)] if len(errors) else errors
        signal = pd.concat([own["ts"] if len(own) else events.iloc[:0], *[utc_series(x) for x in extra]])
        counts = signal.dropna().dt.floor(freq).value_counts().sort_index()
        idx = pd.date_range(counts.index.min(), counts.index.max(), freq=freq)
        counts = counts.reindex(idx, fill_value=0)
        before = counts[counts.index < first.floor(freq)]
        base = float(before.median()) if len(before) else 0.0
        thresh = max(2.0 * base, base + 3.0)
        hot = counts[(counts >= thresh) & (counts.index >= first.floor(freq))]
        if len(hot):
            detection = _ts(hot.index[0])
    failed = int(inv["failed"].sum()) if len(inv) else 0
    types = sorted({t for h in hyps for t in h.job_types})
    dlq_n = int(dlq["cluster_id"].isin(cids).sum()) if cids and len(dlq) else len(dlq)
    impact = Impact(
        invocations=len(inv),
        failed_invocations=failed,
        failed_rate=failed / len(inv) if len(inv) else 0.0,
        errors=len(errors),
        failure_rows=int(failure.sum()) if len(errors) else 0,
        incident_errors=len(involved),
        jobs_failed=int(involved["job_id"].dropna().nunique()) if len(involved) else 0,
        dlq_messages=dlq_n,
        dlq_unattributed=int(dlq["cluster_id"].isna().sum()) if len(dlq) else 0,
        affected_job_types=types,
    )
    top = hyps[0] if hyps else None
    return Incident(
        title=top.title if top else "No incident found",
        impact=impact,
        timeline=IncidentTimeline(
            first_error=_py(first), detection=_py(detection), peak=_py(peak), last_error=_py(last)
        ),
        trigger=top.sentence if top else "",
        affected_job_types=types,
        root_causes=[h.sentence for h in hyps[:3]],
    )


# --------------------------------------------------------------------------------------------
# DLQ-only bundles and unattributed DLQ messages
# --------------------------------------------------------------------------------------------
def _no_telemetry_note(dlq: pd.DataFrame) -> str:
    if len(dlq) == 0:
        return (
            "The bundle is empty: no invocations, logs, exceptions or DLQ messages, so there is nothing "
            "to analyse. " + COLLECT_TELEMETRY + " Add the dead-letter queue with `--dlq QUEUE`."
        )
    raw = dlq[dlq["cluster_id"].isna()]
    parts = [
        f"The bundle has no telemetry (no invocations, logs or exceptions), only {len(dlq)} DLQ messages: "
        "the findings rank what their error texts and job types show (the timeline is when the messages "
        "were dead-lettered), and cannot tell which deploy ran, how many invocations failed or which "
        "failures never reached the DLQ."
    ]
    if len(raw):
        types = as_object(raw["job_type"]).fillna("unknown job type").value_counts()
        parts.append(
            f"{len(raw)} DLQ messages have no error text (raw bodies moved after max_retries) and so "
            "no cluster: " + ", ".join(f"{t} {int(n)}" for t, n in types.head(8).items()) + "."
        )
    parts.append(COLLECT_TELEMETRY)
    return " ".join(parts)


def _dlq_hypotheses(dlq: pd.DataFrame, table: pd.DataFrame) -> list[Hypothesis]:
    """Without telemetry, each large cluster of DLQ error texts is a finding of its own."""
    if dlq is None or len(dlq) == 0 or dlq["cluster_id"].isna().all():
        return []
    info: dict[str, dict[str, Any]] = {str(r["cluster_id"]): r for r in _records(table)}
    d = pd.DataFrame(
        {
            "cluster_id": as_object(dlq["cluster_id"]),
            "job_type": as_object(dlq["job_type"]),
            "job_id": as_object(dlq["job_id"]),
            "ts": dlq_time(dlq).to_numpy(),
        }
    )
    total = len(d)
    raw: list[dict[str, Any]] = []
    for cid_any, n_any in d["cluster_id"].value_counts().items():
        cid, n = str(cid_any), int(n_any)
        if n < max(3, 0.1 * total):
            continue
        g = d[d["cluster_id"] == cid]
        rec = info.get(cid, {})
        tpl = str(rec.get("template", ""))
        kind, rule = str(rec.get("kind", "unknown")), str(rec.get("kind_rule", ""))
        types = g["job_type"].dropna().astype(str).value_counts()
        jobs = int(g["job_id"].dropna().nunique()) or n
        share = n / total
        ts = utc_series(g["ts"]).dropna()
        advice = {
            "permanent": "it fails on every retry: fix the code or the data, then replay",
            "transient": "it may pass on retry once the dependency recovers: check it, then replay",
        }.get(kind, "read a few messages to tell whether a retry can pass")
        sentence = (
            f"{n} of {total} DLQ messages ({share:.0%}) failed with '{tpl[:120]}'"
            + (f" ({rule}, {kind})" if rule else "")
            + (f", {', '.join(f'{t} {int(c)}' for t, c in types.items())}" if len(types) else "")
            + (f", dead-lettered between {_fmt(_ts(ts.min()))} and {_fmt(_ts(ts.max()))}" if len(ts) else "")
            + f"; {advice}. The bundle has no telemetry, so whether a deploy, a dependency or the input "
            "caused it cannot be told from it."
        )
        fit = 0.5 if share >= 0.5 else 0.3
        raw.append(
            {
                "kind": "dlq_cluster",
                "title": f"DLQ: {n} messages failed with '{tpl[:60]}'",
                "sentence": sentence,
                "score": jobs * fit,
                "fit": fit,
                "cluster_ids": [cid],
                "job_types": sorted(types.index.astype(str)),
                "window": TimeWindow(start=_py(_ts(ts.min())), end=_py(_ts(ts.max()))) if len(ts) else None,
                "deploy": None,
                "evidence": {
                    "dlq_messages": n,
                    "share": share,
                    "jobs": jobs,
                    "triage_rule": rule or None,
                    "triage_kind": kind,
                },
            }
        )
    raw.sort(key=lambda h: (-h["score"], h["title"]))
    out = []
    for i, h in enumerate(raw, start=1):
        fit = h.pop("fit")
        out.append(Hypothesis(rank=i, confidence="medium" if fit >= 0.5 else "low", **h))
    return out


def _add_unattributed(hyps: list[Hypothesis], dlq: pd.DataFrame) -> None:
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
