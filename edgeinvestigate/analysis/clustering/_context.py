"""The invocation context of each error row: its invocation's script, version, outcome, queue,
request and ray id, and the job it belongs to when the row does not name one.

Per invocation: script, version, outcome, queue, request and ray id of its first row in
``invocations``; the first job type its log lines name, and its job id when they name exactly one (a
batch invocation's job-less lines belong to no single job). ``script_version`` is the invocation's,
else the version its structured log lines name (a ``deploy``/``version`` field; see
:mod:`edgeinvestigate.analysis.deploys`).

The jobs of each invocation are one SQL aggregate over the log lines (:data:`JOBS_SELECT`): DuckDB
runs it over the logs in memory (:func:`invocation_jobs`) or, for the lean logs
(:mod:`._lean`), in the same scan of the logs file that picks their lines, where it holds little.
The invocation ids of the rows, the invocations and the jobs are numbered once, in one pass
(:mod:`._ids`); the rest is integer work. A value the context does not have is ``None`` when the
invocation is known and says nothing, ``nan`` when the row's invocation is not known at all: what a
left join of the rows with the context table gives (and what this computed before it was vectorised).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from edgeinvestigate.analysis.clustering._arrow import (
    Coded,
    coded,
    first_of,
    objects,
    string_array,
    string_chunks,
    taken_at,
)
from edgeinvestigate.analysis.clustering._ids import codes_of
from edgeinvestigate.analysis.deploys import log_versions

if TYPE_CHECKING:
    from edgeinvestigate.analysis.clustering._rows import ErrorRows
    from edgeinvestigate.evidence.bundle import Evidence

__all__ = ["Context", "invocation_context"]

_NAN: Final = float("nan")


@dataclass
class Context:
    """Per error row: its invocation's number (``-1``: no invocation id) and context columns;
    ``job_type``/``job_id`` are the row's own, else its invocation's. The per-row strings stay Arrow
    (null: not known, whether the invocation says nothing or is not known at all)."""

    invocation: np.ndarray
    script: Coded
    script_version: Coded
    outcome: Coded
    queue: Coded
    request_id: pa.Array
    ray_id: pa.Array
    job_type: Coded
    job_id: pa.Array


def _column(frame: pd.DataFrame, name: str) -> pa.Array:
    """A column as an Arrow array (a categorical as a dictionary array); all null when the frame
    predates it (bundles of older releases)."""
    if name not in frame:
        return pa.nulls(len(frame), pa.string())
    s = frame[name]
    return pa.array(s) if isinstance(s.dtype, pd.CategoricalDtype) else string_array(s)


def _chunks(frame: pd.DataFrame, name: str) -> pa.ChunkedArray:
    """A string column as the Arrow chunks it holds (nothing joined or copied); all null when the
    frame predates it."""
    if name not in frame:
        return pa.chunked_array([pa.nulls(len(frame), pa.string())])
    return string_chunks(frame[name])


def _at(values: Coded, at: np.ndarray) -> Coded:
    """The values of the invocations ``at`` (``nan`` where ``at`` is -1)."""
    out = np.append(values.values, _NAN)
    codes: np.ndarray = np.append(values.codes, len(out) - 1)[at]  # -1: the last one, nan
    return Coded(codes, out)


def invocation_context(rows: ErrorRows, ev: Evidence, jobs: pa.Table | None = None) -> Context:
    """The context of every error row (see the module docs); ``jobs``: the jobs of the rows'
    invocations (:func:`invocation_jobs`), when computed already."""
    inv = ev.invocations
    if jobs is None:
        jobs = invocation_jobs(ev.logs)
    (row_code, inv_code, job_code), n = codes_of(
        rows.invocation_id, _chunks(inv, "invocation_id"), jobs.column("invocation_id")
    )
    at = np.full(len(row_code), -1, dtype=np.int64)  # the row's invocation: its first row in invocations
    has = row_code >= 0
    if n:
        at[has] = first_of(inv_code, n)[row_code[has]]
    no_id = np.flatnonzero(inv_code < 0)
    if len(no_id):  # rows without an invocation id meet the first invocation without one
        at[~has] = no_id[0]
    script_version = _versions(rows, ev, at, has)
    ctx = Context(
        invocation=row_code,
        script=_at(coded(_column(inv, "script")), at),
        script_version=script_version,
        outcome=_at(coded(_column(inv, "outcome")), at),
        queue=_at(coded(_column(inv, "queue")), at),
        request_id=taken_at(_column(inv, "request_id"), at),
        ray_id=taken_at(_column(inv, "ray_id"), at),
        job_type=rows.job_type,
        job_id=rows.job_id,
    )
    _fill_jobs(ctx, rows, jobs, job_code, n)
    return ctx


#: per invocation id of the log lines ``{lines}`` (``row``: a line's position; the lines without an
#: invocation id are one group too): the first job type they name, and their job id when they name
#: exactly one
JOBS_SELECT: Final = """
    SELECT invocation_id,
           arg_min(job_type, row) FILTER (WHERE job_type IS NOT NULL) AS job_type,
           CASE WHEN count(DISTINCT job_id) = 1 THEN min(job_id) END AS job_id
    FROM {lines} GROUP BY invocation_id
"""
#: DuckDB's memory while it computes the jobs of the logs in memory (it spills beyond; the
#: ``EDGEINVESTIGATE_DUCKDB_MEMORY`` variable wins when set)
JOBS_MEMORY_LIMIT: Final = "512MB"


def invocation_jobs(logs: pd.DataFrame) -> pa.Table:
    """The jobs of the invocations of ``logs`` (:data:`JOBS_SELECT`): ``invocation_id``,
    ``job_type``, ``job_id``, computed by DuckDB over the frame's columns (not copied)."""
    from edgeinvestigate.evidence._sql import connect, memory_limit

    lines = pa.table(
        {
            "row": pa.array(np.arange(len(logs), dtype=np.int64)),
            "invocation_id": _chunks(logs, "invocation_id"),
            "job_type": _column(logs, "job_type").cast(pa.string()),
            "job_id": _chunks(logs, "job_id"),
        }
    )
    con = connect(threads=2, memory_limit=memory_limit(JOBS_MEMORY_LIMIT))
    try:
        con.register("lines", lines)
        jobs: pa.Table = con.sql(JOBS_SELECT.format(lines="lines")).to_arrow_table()
    finally:
        con.close()
    return jobs


def _versions(rows: ErrorRows, ev: Evidence, at: np.ndarray, has: np.ndarray) -> Coded:
    """``script_version`` of the row's invocation, else the version its log lines name."""
    inv, logs = ev.invocations, ev.logs
    out = _at(coded(_column(inv, "script_version")), at)
    missing = has & (at >= 0) & np.asarray([v is None for v in out.values], dtype=bool)[out.codes]
    if not missing.any() or not len(logs):
        return out
    ids = objects(pc.unique(rows.invocation_id.filter(pa.array(missing))))
    named = log_versions(logs, ids)
    if not len(named):
        return out
    found = dict(zip(named["invocation_id"], named["version"], strict=True))
    versions = np.asarray([None, *found.values()], dtype=object)
    index = {k: i + 1 for i, k in enumerate(found)}
    which = objects(rows.invocation_id.filter(pa.array(missing)))
    extra = np.asarray([index.get(i, 0) for i in which], dtype=np.int64)
    codes = out.codes.copy()
    codes[np.flatnonzero(missing)] = np.where(extra > 0, extra + len(out.values) - 1, codes[missing])
    return Coded(codes, np.concatenate([out.values, versions[1:]]))


def _fill_jobs(ctx: Context, rows: ErrorRows, jobs: pa.Table, job_code: np.ndarray, n: int) -> None:
    """``job_type``/``job_id`` from the invocation's ``jobs`` where the row has none; a row without an
    invocation id takes the job type of the lines without one."""
    per_inv = first_of(job_code, n) if n else np.zeros(0, dtype=np.int64)
    per_row = np.full(len(ctx.invocation), -1, dtype=np.int64)  # the row's invocation's row in jobs
    has = ctx.invocation >= 0
    per_row[has] = per_inv[ctx.invocation[has]]
    no_id = np.flatnonzero(job_code < 0)
    if len(no_id):
        per_row[~has] = no_id[0]
    ctx.job_type = ctx.job_type.where_missing(_at(coded(jobs.column("job_type")), per_row))
    lacking = rows.job_id.is_null().to_numpy(zero_copy_only=False) & has
    if lacking.any():
        single = jobs.column("job_id").combine_chunks()
        ctx.job_id = pc.coalesce(rows.job_id, taken_at(single, np.where(lacking, per_row, -1)))
