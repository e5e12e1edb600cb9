"""The invocation context of each error row: its invocation's script, version, outcome, queue,
request and ray id, and the job it belongs to when the row does not name one.

Per invocation: script, version, outcome, queue, request and ray id of its first row in
``invocations``; the first job type its log lines name, and its job id when they name exactly one (a
batch invocation's job-less lines belong to no single job). ``script_version`` is the invocation's,
else the version its structured log lines name (a ``deploy``/``version`` field; see
:mod:`edgeinvestigate.analysis.deploys`).

The invocation ids of the rows, the invocations and the log lines are numbered once, in one pass
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
    taken,
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


def invocation_context(rows: ErrorRows, ev: Evidence) -> Context:
    """The context of every error row (see the module docs)."""
    inv, logs = ev.invocations, ev.logs
    # a log row's invocation is its line's: only the other rows' ids are numbered besides the frames'
    is_log = rows.source == 1
    other = np.flatnonzero(~is_log)
    ids = rows.invocation_id if not is_log.any() else rows.invocation_id.take(pa.array(other))
    (other_code, inv_code, log_code), n = codes_of(
        ids, _chunks(inv, "invocation_id"), _chunks(logs, "invocation_id")
    )
    row_code = np.full(len(rows), -1, dtype=np.int64)
    row_code[other] = other_code
    row_code[is_log] = log_code[rows.row[is_log]]
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
    _fill_jobs(ctx, rows, logs, log_code, n, at)
    return ctx


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


def _fill_jobs(
    ctx: Context, rows: ErrorRows, logs: pd.DataFrame, log_code: np.ndarray, n: int, at: np.ndarray
) -> None:
    """``job_type``/``job_id`` from the invocation where the row has none: the first job type its log
    lines name; its job id when they name exactly one."""
    m = len(at)
    single: pa.Array | None = None
    lacking = rows.job_id.is_null().to_numpy(zero_copy_only=False) & (ctx.invocation >= 0)
    if not len(logs):  # the context has no job columns to join: None for a known invocation
        known = np.where(at >= 0, 0, 1)
        jt = Coded(known, np.asarray([None, _NAN], dtype=object))
    else:
        types = coded(_column(logs, "job_type"))
        typed = np.asarray([v is not None for v in types.values], dtype=bool)[types.codes]
        first = first_of(log_code, n, typed) if n else np.zeros(0, dtype=np.int64)
        null_first = np.flatnonzero((log_code < 0) & typed)
        per_row = np.full(m, -1, dtype=np.int64)
        has = ctx.invocation >= 0
        per_row[has] = first[ctx.invocation[has]]
        if len(null_first):
            per_row[~has] = null_first[0]
        jt = _at(types, per_row)
        if lacking.any():
            single = _single_jobs(logs, log_code, n, ctx.invocation[lacking])
    ctx.job_type = ctx.job_type.where_missing(jt)
    if single is not None:
        ctx.job_id = pc.coalesce(rows.job_id, taken_at(single, np.where(lacking, ctx.invocation, -1)))


#: job ids compared at a time in :func:`_single_jobs`
COMPARE_ROWS: Final = 1 << 20


def _single_jobs(logs: pd.DataFrame, log_code: np.ndarray, n: int, needed: np.ndarray) -> pa.Array:
    """Per invocation number: its job id when its log lines name exactly one (null otherwise), for
    the ``needed`` numbers. Each line's job id is compared with the first one of its invocation, a
    piece of :data:`COMPARE_ROWS` lines at a time (no hash or copy of all the ids)."""
    want = np.zeros(n, dtype=bool)
    want[needed] = True
    jobs = _chunks(logs, "job_id")
    valid = jobs.is_valid().to_numpy(zero_copy_only=False) if len(jobs) else np.zeros(0, dtype=bool)
    idx = np.flatnonzero((log_code >= 0) & valid)
    idx = idx[want[log_code[idx]]]
    pick = np.full(n, -1, dtype=np.int64)  # per invocation: the line whose job id is its one job id
    if len(idx):
        inv = log_code[idx]
        first = first_of(inv, n)
        ref = idx[first[inv]]  # each line's invocation's first line with a job id
        same = np.empty(len(idx), dtype=bool)
        for lo in range(0, len(idx), COMPARE_ROWS):
            hi = lo + COMPARE_ROWS
            equal = pc.equal(taken(jobs, idx[lo:hi]), taken(jobs, ref[lo:hi]))
            same[lo:hi] = equal.to_numpy(zero_copy_only=False)
        only = np.flatnonzero((first >= 0) & (np.bincount(inv[~same], minlength=n) == 0))
        pick[only] = idx[first[only]]
    has = pick >= 0
    at = np.where(has, np.cumsum(has) - 1, -1)  # per invocation: its place among the ids taken
    return taken_at(taken(jobs, pick[has]), at)
