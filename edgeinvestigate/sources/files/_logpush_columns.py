"""The fast path's columns: one block of typed records (:class:`Block`) into record batches.

Every column is built from the decoded records at the end of a block, with comprehensions;
the rows that took the general path are patched in (invocations) or merged in order (logs,
exceptions). Log and exception rows carry their invocation's row number until one vectorised take.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from edgeinvestigate.sources.files._coerce import join_args, lift_job_fields
from edgeinvestigate.sources.files._context import WINDOW_LO_MS, FileContext
from edgeinvestigate.sources.files._logpush_record import read_time
from edgeinvestigate.sources.files._logpush_structs import (
    DECODE_ERRORS,
    QueueInfo,
    Record,
    decode_any_lines,
    decode_job,
    decode_jobs,
    job_from_struct,
)
from edgeinvestigate.sources.files._rows import EXC_COLS, INV_COLS, LOG_COLS, TS, Rows, arrow_column

__all__ = ["FROM_RECORDS", "JOB_COLS", "NO_RECORD", "Block", "flush_block"]


JOB_COLS: Final = ("job_id", "job_type", "attempt", "message_id")


class Block:
    """What the fast path gathers for one block: the decoded records (every column is built from
    them at the end of the block, with comprehensions), the line of each, and patches for the
    invocation rows that took the general path (their log and exception rows are in ``Rows``)."""

    __slots__ = ("lines", "patches", "recs")

    def __init__(self) -> None:
        self.recs: list[Any] = []
        self.lines: Sequence[int] = []
        self.patches: list[tuple[int, dict[str, Any]]] = []


#: invocation columns built from the decoded records at the end of a block
FROM_RECORDS: Final = tuple(c for c in INV_COLS if c not in ("invocation_id", "ts", "trigger"))
NO_RECORD: Final = Record()


def _invocation_columns(st: Block) -> dict[str, list[Any]]:
    recs = st.recs
    evs = [r.Event for r in recs]
    reqs = [e.Request if e is not None else None for e in evs]
    resps = [e.Response if e is not None else None for e in evs]
    queues = [e.Queue if e is not None else None for e in evs]
    batches = [e.BatchSize if e is not None else None for e in evs]
    if any(type(q) is QueueInfo for q in queues):  # Event.Queue as {"QueueName", "BatchSize"}
        batches = [
            q.BatchSize if b is None and type(q) is QueueInfo else b
            for q, b in zip(queues, batches, strict=True)
        ]
        queues = [q.QueueName if type(q) is QueueInfo else q for q in queues]
    vals: dict[str, list[Any]] = {
        "script": [r.ScriptName for r in recs],
        "script_version": [v.ID if (v := r.ScriptVersion) is not None else None for r in recs],
        "queue": queues,
        "batch_size": batches,
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


def ms_array(
    values: list[Any], ctx: FileContext, lines: Sequence[int], name: str, owners: Any = None
) -> pa.Array:
    """Times as written (64-bit integers) as ``timestamp[ms, UTC]``, each read in the units the
    reference allows (epoch ms, or s or ns by the job's timestamp_format: checked with one min/max when
    all are ms, the common case); one that is no time in any unit is null with a warning naming the
    field and the line of its record (``lines[owners[k]]``, or ``lines[k]`` without ``owners``)."""
    arr = pa.array(values, pa.int64())
    lo, hi = pc.min_max(arr).values()
    if not lo.is_valid or (lo.as_py() >= WINDOW_LO_MS and hi.as_py() <= ctx.ts_hi):
        return arr.cast(TS)
    out: list[int | None] = []
    first = _first_of_owner(owners) if owners is not None else None
    for k, v in enumerate(values):
        if v is None or WINDOW_LO_MS <= v <= ctx.ts_hi:
            out.append(v)
            continue
        owner = k if owners is None else int(owners[k])
        field = name if first is None else f"{name}[{k - first[owner]}]"
        out.append(read_time(v, ctx, lines[owner], field))
    return pa.array(out, pa.int64()).cast(TS)


def _first_of_owner(owners: Any) -> dict[int, int]:
    first: dict[int, int] = {}
    for k, o in enumerate(owners.tolist()):
        first.setdefault(o, k)
    return first


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


def _log_columns(st: Block, n_logs: list[int], ctx: FileContext) -> dict[str, pa.Array]:
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
    owners = np.repeat(np.arange(len(n_logs), dtype=np.int32), n_logs)
    cols: dict[str, pa.Array] = {
        "invocation_id": pa.array(owners),
        "ts": ms_array([lg.TimestampMs for lg in flat], ctx, st.lines, "Logs", owners),
        "level": arrow_column("level", [lg.Level for lg in flat]),
        "message": pa.array(msgs, pa.string()),
        "args": pa.array(raw_args, pa.string()),
    }
    cols.update(_job_arrays(n, pos, job_vals))
    return cols


def _exception_columns(st: Block, n_exc: list[int], ctx: FileContext) -> dict[str, pa.Array]:
    flat = [e for r in st.recs if (es := r.Exceptions) for e in es]
    owners = np.repeat(np.arange(len(n_exc), dtype=np.int32), n_exc)
    return {
        "invocation_id": pa.array(owners),
        "ts": ms_array([e.TimestampMs for e in flat], ctx, st.lines, "Exceptions", owners),
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
        ids
        if c == "invocation_id"
        else ms_array(inv[c], ctx, st.lines, "EventTimestampMs")
        if c == "ts"
        else arrow_column(c, inv[c])
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
        table = _with_general(build(st, counts, ctx), general, names)
        table = table.set_column(0, "invocation_id", ids.take(table.column("invocation_id")))
        chunks[frame].extend(table.to_batches())
    n_logs = sum(inv["n_logs"])
    n_exc = sum(inv["n_exceptions"])
    if fast_rows is not None:
        n_logs = sum(c * f for c, f in zip(inv["n_logs"], fast_rows, strict=True))
        n_exc = sum(c * f for c, f in zip(inv["n_exceptions"], fast_rows, strict=True))
    ctx.report.logs += n_logs
    ctx.report.exceptions += n_exc
