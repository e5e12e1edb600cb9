"""The aggregates in SQL (DuckDB over the frames, see :mod:`edgeinvestigate.analysis.sql`): only the
small results come back to pandas. Each function mirrors one of the pandas path
(:mod:`._pandas_path`) and returns the same models."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from edgeinvestigate.analysis.deploys import Deployment
from edgeinvestigate.analysis.rca._blast_radius import blast_radius_from_counts
from edgeinvestigate.analysis.rca._deploys import cluster_shift, shift_window
from edgeinvestigate.analysis.rca._limits import LIMIT_NAMES, NEAR, lifted_types, limit_hit, what_hit
from edgeinvestigate.analysis.rca._parts import Parts, Window, window_of
from edgeinvestigate.analysis.rca._sql_deploys import deploy_markers_sql
from edgeinvestigate.analysis.rca._sql_inputs import ERROR_COLUMNS, payload_fields_sql, register_inputs
from edgeinvestigate.analysis.rca._storms import StormPart, storms_from_buckets
from edgeinvestigate.analysis.rca._timeline import attempt_bins
from edgeinvestigate.analysis.rca._values import pydt
from edgeinvestigate.models.findings import (
    AttemptsBin,
    ClusterShift,
    Deploy,
    LimitHit,
    LimitStats,
    RateRow,
    RetryStorm,
    TimelineRow,
)

if TYPE_CHECKING:
    from edgeinvestigate.analysis.clustering import Clusters
    from edgeinvestigate.analysis.sql import Engine
    from edgeinvestigate.evidence.bundle import Evidence

__all__ = ["sql_parts", "ts_of"]


def ts_of(ms: Any) -> pd.Timestamp | None:
    """A UTC timestamp from epoch milliseconds (None for a missing value)."""
    if ms is None or (isinstance(ms, float) and np.isnan(ms)) or ms is pd.NA:
        return None
    return pd.Timestamp(int(ms), unit="ms", tz="UTC")


def _ms(ts: Any) -> float:
    """Epoch milliseconds of a timestamp (fractions kept: given deploy times may have them)."""
    return pd.Timestamp(ts).value / 1e6


def sql_parts(
    engine: Engine,
    ev: Evidence,
    clusters: Clusters,
    errors: pd.DataFrame,
    table: pa.Table | None,
    given: Sequence[Deployment],
    *,
    tenant_fields: Sequence[str],
    cpu_limit_ms: float,
    wall_limit_ms: float,
    bucket_seconds: int | None,
) -> Parts:
    """Every aggregate of the findings, by SQL over the frames registered in ``engine``; ``table``:
    the error rows ``errors`` as Arrow when the clusters hold them so (their strings are taken as
    they are, no copy made from the objects)."""
    register_inputs(engine, errors, None if table is None else table.select(list(ERROR_COLUMNS)))
    rows = engine.one("frame_rows")
    summary = engine.one("inv_summary")
    win = window_of(ts_of(summary["ts_min"]), ts_of(summary["ts_max"]), errors, bucket_seconds)
    bucket_ms = win.bucket * 1000
    wall_near, _cpu_near = NEAR * wall_limit_ms, NEAR * cpu_limit_ms
    hits = engine.df("limit_hit_invocations", wall_near=wall_near)
    hits = pd.DataFrame({"invocation_id": hits["invocation_id"].astype(object), "ts": _utc_ms(hits["ts_ms"])})
    engine.register("limit_hit_ids", hits[["invocation_id"]].astype({"invocation_id": object}))
    deploys = deploy_markers_sql(engine, given)
    sources = list(engine.df("version_sources")["version_source"].astype(str))
    payload = payload_fields_sql(engine, clusters, tenant_fields)
    n_deliveries = engine.count("deliveries")

    def retried_times(w0: pd.Timestamp, w1: pd.Timestamp) -> pd.Series:
        return _utc_ms(engine.df("retried_times", t0=_ms(w0), t1=_ms(w1))["ts_ms"])

    return Parts(
        win=win,
        rows={k: int(rows[k]) for k in ("invocations", "logs", "exceptions")},
        n_invocations=int(summary["n"]),
        n_failed=int(summary["failed"] or 0),
        timeline=_timeline(engine, bucket_ms),
        failed_rate=_failed_rate(engine, bucket_ms),
        attempts=_attempts(engine) if n_deliveries else attempt_bins(pd.DataFrame(), ev.dlq),
        limits=_limit_stats(engine, cpu_limit_ms, wall_limit_ms),
        limit_hits=_limit_hits(engine, cpu_limit_ms, wall_limit_ms),
        hits=hits,
        limit_types=_limit_types(engine) if len(hits) else [],
        deploys=deploys,
        sources=sorted(set(sources) | ({"given"} if given else set())),
        shifts=_shifts(engine, clusters.table, deploys, win) if len(errors) else [],
        payload=payload,
        blast_radius=blast_radius_from_counts(engine.df("blast_radius"), len(errors), payload),
        storms=_storms(engine, win) if n_deliveries else [],
        retried=retried_times,
    )


def _utc_ms(ms: pd.Series) -> pd.Series:
    return pd.Series(pd.to_datetime(ms.astype("int64"), unit="ms", utc=True).astype("datetime64[ns, UTC]"))


def _timeline(engine: Engine, bucket_ms: int) -> list[TimelineRow]:
    g = engine.df("timeline", bucket_ms=bucket_ms)
    return [
        TimelineRow(
            bucket=pydt(ts_of(b)), job_type=str(jt), outcome=str(o), invocations=int(n), failed=int(f)
        )
        for b, jt, o, n, f in zip(
            g["bucket_ms"], g["job_type"], g["outcome"], g["n"], g["failed"], strict=True
        )
    ]


def _failed_rate(engine: Engine, bucket_ms: int) -> list[RateRow]:
    g = engine.df("failed_rate", bucket_ms=bucket_ms)
    return [
        RateRow(
            bucket=pydt(ts_of(b)),
            job_type=str(jt),
            invocations=int(n),
            failed=int(f),
            failed_rate=float(f) / float(n) if n else 0.0,
        )
        for b, jt, n, f in zip(g["bucket_ms"], g["job_type"], g["n"], g["failed"], strict=True)
    ]


def _attempts(engine: Engine) -> list[AttemptsBin]:
    g = engine.df("attempts")
    return [
        AttemptsBin(attempts=int(a), deliveries=int(n)) for a, n in zip(g["attempt"], g["n"], strict=True)
    ]


def _float(v: Any) -> float | None:
    return None if v is None or (isinstance(v, float) and np.isnan(v)) else float(v)


def _limit_stats(engine: Engine, cpu_limit: float, wall_limit: float) -> LimitStats:
    r = engine.one("limit_stats", cpu_near=NEAR * cpu_limit, wall_near=NEAR * wall_limit)
    return LimitStats(
        cpu_limit_ms=cpu_limit,
        wall_limit_ms=wall_limit,
        cpu_p50_ms=_float(r["cpu_p50"]),
        cpu_p95_ms=_float(r["cpu_p95"]),
        cpu_p99_ms=_float(r["cpu_p99"]),
        cpu_max_ms=_float(r["cpu_max"]),
        wall_p50_ms=_float(r["wall_p50"]),
        wall_p95_ms=_float(r["wall_p95"]),
        wall_p99_ms=_float(r["wall_p99"]),
        wall_max_ms=_float(r["wall_max"]),
        exceeded_cpu=int(r["exceeded_cpu"] or 0),
        exceeded_memory=int(r["exceeded_memory"] or 0),
        exceeded_wall=int(r["exceeded_wall"] or 0),
        cpu_near_limit=int(r["cpu_near_limit"] or 0),
        wall_near_limit=int(r["wall_near_limit"] or 0),
    )


def _limit_hits(engine: Engine, cpu_limit: float, wall_limit: float) -> list[LimitHit]:
    g = engine.df("limit_hits", cpu_near=NEAR * cpu_limit, wall_near=NEAR * wall_limit)
    by_name = {str(r["limit_name"]): r for r in g.to_dict(orient="records")}
    out = []
    for name in LIMIT_NAMES:
        r = by_name.get(name)
        if r is None or not r["n"]:
            continue
        types = sorted({str(x) for x in _items(r["job_types"])})
        scripts = sorted({str(x) for x in _items(r["scripts"])})
        what = what_hit(name, cpu_limit, wall_limit)
        out.append(limit_hit(name, int(r["n"]), types, scripts, ts_of(r["ts_min"]), ts_of(r["ts_max"]), what))
    return out


def _items(values: Any) -> list[Any]:
    return [] if values is None or (isinstance(values, float) and np.isnan(values)) else list(values)


def _limit_types(engine: Engine) -> list[str]:
    """The job types over-represented among the jobs of the invocations that hit a limit."""
    g = engine.df("job_type_lift")
    if g.empty:
        return []
    overall = _value_counts(g["job_type"], g["n_all"], g["first_all"])
    inside_rows = g[g["n_inside"] > 0]
    inside = _value_counts(inside_rows["job_type"], inside_rows["n_inside"], inside_rows["first_inside"])
    return lifted_types(overall, inside)


def _value_counts(keys: pd.Series, counts: pd.Series, first: pd.Series) -> pd.Series:
    """Counts ordered as ``Series.value_counts`` orders them: keys in order of first appearance, then
    sorted by count (descending) with pandas' sort."""
    order = np.argsort(first.to_numpy(dtype="int64"), kind="stable")
    s = pd.Series(
        counts.to_numpy(dtype="int64")[order], index=keys.astype(object).to_numpy()[order], name="count"
    )
    return s.sort_values(ascending=False)


def _shifts(engine: Engine, table: pd.DataFrame, deploys: list[Deploy], win: Window) -> list[ClusterShift]:
    out: list[ClusterShift] = []
    if not deploys:
        return out
    w = shift_window(win.span)
    w_ms = w.value / 1e6
    templates = dict(zip(table["cluster_id"], table["template"], strict=True))
    for d in deploys:
        g = engine.df(
            "cluster_shift",
            at=_ms(d.at),
            w=w_ms,
            version=d.version,
            script=d.script or "",
            any_script=d.script is None,
        )
        for r in g.to_dict(orient="records"):
            known = int(r["known"])
            share = float(int(r["on_version"]) / known) if known else None
            cid = r["cluster_id"]
            shift = cluster_shift(
                d, str(cid), str(templates.get(cid, "")), int(r["before"]), int(r["after"]),
                bool(r["ever_before"]), ts_of(r["first_ms"]), share, w,
            )  # fmt: skip
            if shift is not None:
                out.append(shift)
    return out


def _storms(engine: Engine, win: Window) -> list[RetryStorm]:
    freq = win.freq
    g = engine.df("delivery_buckets", bucket_ms=win.bucket * 1000)
    g = pd.DataFrame(
        {"n": g["n"].to_numpy(dtype="int64"), "r": g["r"].to_numpy(dtype="int64")},
        index=pd.DatetimeIndex(_utc_ms(g["bucket_ms"]), name="bucket"),
    )

    def part_of(start: pd.Timestamp, end: pd.Timestamp) -> StormPart:
        t0, t1 = _ms(start), _ms(end)
        r = engine.one("storm", t0=t0, t1=t1)
        jobs = engine.df("storm_jobs", t0=t0, t1=t1)
        types = engine.df("storm_types", t0=t0, t1=t1)
        return StormPart(
            deliveries=int(r["deliveries"]),
            retried=int(r["retried"]),
            jobs=int(r["jobs"]),
            max_attempt=int(r["max_attempt"]),
            reps=pd.Series(jobs["n"].to_numpy(dtype="int64"), index=jobs["job_id"].astype(object).to_numpy()),
            types=pd.Series(
                types["n"].to_numpy(dtype="int64"), index=types["job_type"].astype(str).to_numpy()
            ),
        )

    return storms_from_buckets(g, freq, part_of)
