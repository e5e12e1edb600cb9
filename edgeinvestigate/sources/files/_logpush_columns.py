"""The fast path's columns: one block of typed records (:class:`Block`) into record batches.

Every column is built from the decoded records at the end of a block, with comprehensions;
the rows that took the general path are patched in (invocations) or merged in order (logs,
exceptions). Log and exception rows carry their invocation's row number until one vectorised take.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from edgeinvestigate._time import epoch_to_ms
from edgeinvestigate.sources.files._coerce import join_args, lift_job_fields
from edgeinvestigate.sources.files._context import FileContext
from edgeinvestigate.sources.files._logpush_structs import (
    DECODE_ERRORS,
    Record,
    decode_any_lines,
    decode_job,
    decode_jobs,
    job_from_struct,
)
from edgeinvestigate.sources.files._rows import EXC_COLS, INV_COLS, LOG_COLS, TS, Rows, arrow_column

__all__ = ["FROM_RECORDS", "JOB_COLS", "MS_HI", "MS_LO", "NO_RECORD", "Block", "flush_block"]


JOB_COLS: Final = ("job_id", "job_type", "attempt", "message_id")
MS_LO: Final = 100_000_000_000
MS_HI: Final = 100_000_000_000_000


class Block:
    """What the fast path gathers for one block: the decoded records (every column is built from
    them at the end of the block, with comprehensions) and patches for the invocation rows that
    took the general path (their log and exception rows are in ``Rows``)."""

    __slots__ = ("patches", "recs")

    def __init__(self) -> None:
        self.recs: list[Any] = []
        self.patches: list[tuple[int, dict[str, Any]]] = []


#: invocation columns built from the decoded records at the end of a block
FROM_RECORDS: Final = tuple(c for c in INV_COLS if c not in ("invocation_id", "ts", "trigger"))
NO_RECORD: Final = Record()


def _invocation_columns(st: Block) -> dict[str, list[Any]]:
    recs = st.recs
    evs = [r.Event for r in recs]
    reqs = [e.Request if e is not None else None for e in evs]
    resps = [e.Response if e is not None else None for e in evs]
    vals: dict[str, list[Any]] = {
        "script": [r.ScriptName for r in recs],
        "script_version": [v.ID if (v := r.ScriptVersion) is not None else None for r in recs],
        "queue": [e.Queue if e is not None else None for e in evs],
        "batch_size": [e.BatchSize if e is not None else None for e in evs],
        "outcome": [r.Outcome for r in recs],
        "failed": [
            True if r.Exceptions else (None if r.Outcome is None else r.Outcome != "ok") for r in recs
        ],
        "cpu_ms": [r.CPUTimeMs for r in recs],  # ints become float64 in Arrow
        "wall_ms": [r.WallTimeMs for r in recs],
        "n_logs": [len(x) if (x := r.Logs) else 0 for r in recs],
        "n_exceptions": [len(x) if (x := r.Exceptions) else 0 for r in recs],
        "truncated": [False] * len(recs),
        "url": [q.URL if q is not None else None for q in reqs],
        "method": [q.Method if q is not None else None for q in reqs],
        "status": [q.Status if q is not None else None for q in resps],
        "entrypoint": [r.Entrypoint or None for r in recs],
        "dispatch_namespace": [r.DispatchNamespace or None for r in recs],
        "request_id": [None] * len(recs),
        "ray_id": [e.RayID or None if e is not None else None for e in evs],
    }
    for i, patch in st.patches:
        for c, v in patch.items():
            vals[c][i] = v
    return vals


def ms_array(values: list[Any]) -> pa.Array:
    """Epoch times as ``timestamp[ms, UTC]``; values in s/us/ns (rare) are scaled one by one."""
    arr = pa.array(values, pa.int64())
    lo, hi = pc.min_max(arr).values()
    if lo.is_valid and not (lo.as_py() >= MS_LO and hi.as_py() < MS_HI):
        arr = pa.array([None if v is None else epoch_to_ms(v) for v in values], pa.int64())
    return arr.cast(TS)


def _job_fields(
    msgs: list[Any], decoded: list[Any], structured: list[int], others: list[int]
) -> tuple[list[int], dict[str, list[Any]]]:
    """Job fields of the log rows that can have them: ``structured`` (one string argument that starts
    with ``{``) in one typed batch decode, ``others`` (object or several arguments) one by one."""
    pos: list[int] = []
    vals: dict[str, list[Any]] = {c: [] for c in JOB_COLS}
    jobs: list[Any] | None = None
    if structured:
        text = "\n".join([msgs[i] for i in structured])
        if text.count("\n") == len(structured) - 1:  # no message spans lines: one value per line
            try:
                jobs = decode_jobs(text)
            except DECODE_ERRORS:
                jobs = None
            if jobs is not None and len(jobs) != len(structured):
                jobs = None
    if jobs is not None:
        pos.extend(structured)
        vals["job_id"].extend([j.jobId if j.jobId is not None else j.job_id for j in jobs])
        vals["job_type"].extend(
            [
                j.type if j.type is not None else (j.jobType if j.jobType is not None else j.job_type)
                for j in jobs
            ]
        )
        atts = [j.attempt if j.attempt is not None else j.attempts for j in jobs]
        vals["attempt"].extend([a if a is None or -(2**31) <= a < 2**31 else None for a in atts])
        vals["message_id"].extend([j.messageId if j.messageId is not None else j.message_id for j in jobs])
        todo = [(i, False) for i in others]
    else:
        todo = [(i, True) for i in structured] + [(i, False) for i in others]
    for i, typed in todo:
        fields = None
        if typed:
            try:
                fields = job_from_struct(decode_job(msgs[i]))
            except DECODE_ERRORS:  # not JSON, or fields of other types: the general rules below
                fields = None
        if fields is None:
            fields = lift_job_fields(decoded[i])
        pos.append(i)
        for c, v in zip(JOB_COLS, fields, strict=True):
            vals[c].append(v)
    return pos, vals


def _log_columns(st: Block, n_logs: list[int]) -> dict[str, pa.Array]:
    flat = [lg for r in st.recs if (ls := r.Logs) for lg in ls]
    raw_args = [bytes(lg.Message) for lg in flat]
    # every argument array was validated with its record and has no newline: one batch decode
    decoded = decode_any_lines(b"\n".join(raw_args)) if raw_args else []
    msgs: list[Any] = [
        a[0] if type(a) is list and len(a) == 1 and type(a[0]) is str else None for a in decoded
    ]
    others = [i for i, m in enumerate(msgs) if m is None]
    structured = [i for i, m in enumerate(msgs) if m and m[0] == "{"]
    for i in others:
        msgs[i] = join_args(decoded[i])
    pos, job_vals = _job_fields(msgs, decoded, structured, others)
    n = len(flat)
    cols: dict[str, pa.Array] = {
        "invocation_id": pa.array(np.repeat(np.arange(len(n_logs), dtype=np.int32), n_logs)),
        "ts": ms_array([lg.TimestampMs for lg in flat]),
        "level": arrow_column("level", [lg.Level for lg in flat]),
        "message": pa.array(msgs, pa.string()),
        "args": pa.array(raw_args, pa.string()),
    }
    cols.update(_job_arrays(n, pos, job_vals))
    return cols


def _exception_columns(st: Block, n_exc: list[int]) -> dict[str, pa.Array]:
    flat = [e for r in st.recs if (es := r.Exceptions) for e in es]
    return {
        "invocation_id": pa.array(np.repeat(np.arange(len(n_exc), dtype=np.int32), n_exc)),
        "ts": ms_array([e.TimestampMs for e in flat]),
        "name": arrow_column("name", [e.Name if e.Name is not None else e.name for e in flat]),
        "message": pa.array([e.Message if e.Message is not None else e.message for e in flat], pa.string()),
        "stack": pa.array([e.Stack if e.Stack is not None else e.stack for e in flat], pa.string()),
    }


def _job_arrays(n: int, pos: list[int], vals: dict[str, list[Any]]) -> dict[str, pa.Array]:
    """Dense job-field columns of ``n`` rows from the values at rows ``pos``."""
    index = np.full(n, len(pos), dtype=np.int32)  # rows without job fields point at a trailing null
    if pos:
        index[np.fromiter(pos, dtype=np.int64, count=len(pos))] = np.arange(len(pos), dtype=np.int32)
    take = pa.array(index)
    return {c: arrow_column(c, [*vals[c], None]).take(take) for c in JOB_COLS}


def _with_general(
    fast: dict[str, pa.Array], general: dict[str, list[Any]], names: tuple[str, ...]
) -> pa.Table:
    """Fast-path rows plus general-path rows, in invocation order (both refer to row numbers)."""
    table = pa.table({c: fast[c] for c in names})
    if general["invocation_id"]:
        extra = pa.table(
            {
                c: pa.array(general[c], pa.int32()) if c == "invocation_id" else arrow_column(c, general[c])
                for c in names
            }
        )
        table = pa.concat_tables([table, extra.cast(table.schema)], promote_options="permissive")
        table = table.take(pc.sort_indices(table, [("invocation_id", "ascending")]))  # stable
    return table


def flush_block(rows: Rows, chunks: dict[str, list[pa.RecordBatch]], st: Block, ctx: FileContext) -> None:
    """Build the record batches of one block from the decoded records (and general-path rows).
    Log and exception rows carry their invocation's row number until one vectorised take."""
    if not st.recs:
        return
    ids = arrow_column("invocation_id", rows.inv["invocation_id"])
    inv = _invocation_columns(st)
    inv["invocation_id"], inv["ts"], inv["trigger"] = (
        rows.inv["invocation_id"],
        rows.inv["ts"],
        rows.inv["trigger"],
    )
    arrays = [
        ids if c == "invocation_id" else ms_array(inv[c]) if c == "ts" else arrow_column(c, inv[c])
        for c in INV_COLS
    ]
    chunks["invocations"].append(pa.record_batch(arrays, names=list(INV_COLS)))
    fast_rows = [0 if r is NO_RECORD else 1 for r in st.recs] if st.patches else None
    for frame, names, build, counts in (
        ("logs", LOG_COLS, _log_columns, inv["n_logs"]),
        ("exceptions", EXC_COLS, _exception_columns, inv["n_exceptions"]),
    ):
        if frame not in ctx.frames:
            continue
        if fast_rows is not None:  # general-path rows are built apart: no rows from placeholders
            counts = [c * f for c, f in zip(counts, fast_rows, strict=True)]
        general = rows.log if frame == "logs" else rows.exc
        table = _with_general(build(st, counts), general, names)
        table = table.set_column(0, "invocation_id", ids.take(table.column("invocation_id")))
        chunks[frame].extend(table.to_batches())
    n_logs = sum(inv["n_logs"])
    n_exc = sum(inv["n_exceptions"])
    if fast_rows is not None:
        n_logs = sum(c * f for c, f in zip(inv["n_logs"], fast_rows, strict=True))
        n_exc = sum(c * f for c, f in zip(inv["n_exceptions"], fast_rows, strict=True))
    ctx.report.logs += n_logs
    ctx.report.exceptions += n_exc
