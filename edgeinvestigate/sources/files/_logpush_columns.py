"""The fast path's columns: one block of typed records (:class:`Block`) into record batches.

Every column is built from the decoded records at the end of a block, with comprehensions;
the rows that took the general path are patched in (invocations) or merged in order (logs,
exceptions). Log and exception rows carry their invocation's row number until one vectorised take.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from edgeinvestigate.sources.files._coerce import join_args
from edgeinvestigate.sources.files._context import WINDOW_LO_MS, FileContext
from edgeinvestigate.sources.files._logpush_record import read_time
from edgeinvestigate.sources.files._logpush_structs import (
    DECODE_ERRORS,
    UNSET,
    QueueInfo,
    Record,
    decode_any_lines,
    decode_job,
    decode_jobs,
    first,
    int_of,
    text_of,
)
from edgeinvestigate.sources.files._rows import EXC_COLS, INV_COLS, LOG_COLS, TS, Rows, arrow_column

__all__ = ["FROM_RECORDS", "JOB_COLS", "NO_RECORD", "Block", "flush_block"]


JOB_COLS: Final = ("job_id", "job_type", "attempt", "message_id")
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class Block:
    """What the fast path gathers for one block: the decoded records (every column is built from
    them at the end of the block, with comprehensions), the line of each, and patches for the
    invocation rows that took the general path (their log and exception rows are in ``Rows``)."""

    __slots__ = ("flags", "lines", "patches", "recs")

    def __init__(self) -> None:
        self.recs: list[Any] = []
        self.lines: Sequence[int] = []
        self.patches: list[tuple[int, dict[str, Any]]] = []
        #: record index -> (truncated, failed): records whose truncation markers were cut
        #: (``_logpush_block.cut_markers``); ``failed`` when only markers were left of the exceptions
        self.flags: dict[int, tuple[bool, bool]] = {}


#: invocation columns built from the decoded records at the end of a block
FROM_RECORDS: Final = tuple(c for c in INV_COLS if c not in ("invocation_id", "ts", "trigger"))
NO_RECORD: Final = Record()


def _event_columns(recs: list[Any]) -> dict[str, list[Any]]:
    """The columns read from ``Event``, each spelling as the general path reads it (``_get``: the
    first one present; ``Event.Queue`` as a string or a ``{QueueName, BatchSize}`` object)."""
    u = UNSET
    evs = [r.Event for r in recs]
    reqs = [
        None if e is None else (q if (q := e.Request) is not u else (None if (q := e.request) is u else q))
        for e in evs
    ]
    resps = [
        None if e is None else (q if (q := e.Response) is not u else (None if (q := e.response) is u else q))
        for e in evs
    ]
    queues = [
        None if e is None else (q if (q := e.Queue) is not u else (None if (q := e.queue) is u else q))
        for e in evs
    ]
    batches = [
        None
        if e is None
        else (b if (b := e.BatchSize) is not u else (None if (b := e.batchSize) is u else b))
        for e in evs
    ]
    if any(type(q) is QueueInfo for q in queues):  # Event.Queue as {"QueueName", "BatchSize"}
        batches = [
            q.batch_size() if b is None and type(q) is QueueInfo else b
            for q, b in zip(queues, batches, strict=True)
        ]
        queues = [q.queue_name() if type(q) is QueueInfo else q for q in queues]
    return {
        "queue": queues,
        "batch_size": batches,
        "url": [None if q is None else (x if (x := q.URL) is not u else first(q.Url, q.url)) for q in reqs],
        "method": [None if q is None else (x if (x := q.Method) is not u else first(q.method)) for q in reqs],
        "status": [
            None if q is None else (x if (x := q.Status) is not u else first(q.status)) for q in resps
        ],
        "ray_id": [  # most events have none of the spellings: no call for them
            None
            if e is None or ((x := e.RayID) is u and (x := e.RayId) is u and (x := e.rayId) is u)
            else (x or None)
            for e in evs
        ],
    }


def _invocation_columns(st: Block) -> dict[str, list[Any]]:
    recs = st.recs
    vals: dict[str, list[Any]] = {
        "script": [r.ScriptName for r in recs],
        "script_version": [
            None if (v := r.ScriptVersion) is None else (x if (x := v.ID) is not UNSET else first(v.Id, v.id))
            for r in recs
        ],
        "outcome": [r.Outcome for r in recs],
        "failed": [
            True if r.Exceptions else (None if r.Outcome is None else r.Outcome != "ok") for r in recs
        ],
        "cpu_ms": [r.CPUTimeMs for r in recs],  # ints become float64 in Arrow
        "wall_ms": [r.WallTimeMs for r in recs],
        "n_logs": [len(x) if (x := r.Logs) else 0 for r in recs],
        "n_exceptions": [len(x) if (x := r.Exceptions) else 0 for r in recs],
        "truncated": [False] * len(recs),
        "entrypoint": [r.Entrypoint or None for r in recs],
        "dispatch_namespace": [r.DispatchNamespace or None for r in recs],
        "request_id": [None] * len(recs),
        **_event_columns(recs),
    }
    for i, (truncated, failed) in st.flags.items():
        vals["truncated"][i] = truncated
        if failed:
            vals["failed"][i] = True
    for i, patch in st.patches:
        for c, v in patch.items():
            vals[c][i] = v
    return vals


def ms_array(
    values: list[Any],
    ctx: FileContext,
    lines: Sequence[int],
    name: str,
    owners: Any = None,
    *,
    indexed: bool = True,
) -> pa.Array:
    """Times as written (64-bit integers, or strings) as ``timestamp[ms, UTC]``, each read in the units
    the reference allows (epoch ms, or s or ns by the job's timestamp_format, or RFC 3339: checked
    with one min/max when all are ms integers, the common case); one that is no time in any unit is
    null with a warning naming the field (``name[i]`` of its record when ``indexed``, as the general
    path names it) and the line of its record (``lines[owners[k]]``, or ``lines[k]`` without ``owners``)."""
    try:
        arr = pa.array(values, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # strings: RFC 3339 (or digits)
        arr = None
    if arr is not None:
        lo, hi = pc.min_max(arr).values()
        if not lo.is_valid or (lo.as_py() >= WINDOW_LO_MS and hi.as_py() <= ctx.ts_hi):
            return arr.cast(TS)
    return pa.array(ms_values(values, ctx, lines, name, owners, indexed=indexed), pa.int64()).cast(TS)


def ms_values(
    values: list[Any],
    ctx: FileContext,
    lines: Sequence[int],
    name: str,
    owners: Any = None,
    *,
    indexed: bool = True,
) -> list[int | None]:
    """Epoch ms of times as written (see :func:`ms_array`), warning about each one that is no time."""
    out: list[int | None] = []
    first_k = _first_of_owner(owners) if owners is not None and indexed else None
    for k, v in enumerate(values):
        if v is None or (type(v) is int and WINDOW_LO_MS <= v <= ctx.ts_hi):
            out.append(v)
            continue
        owner = k if owners is None else int(owners[k])
        field = name if first_k is None else f"{name}[{k - first_k[owner]}]"
        out.append(read_time(v, ctx, lines[owner], field))
    return out


def _first_of_owner(owners: Any) -> dict[int, int]:
    first: dict[int, int] = {}
    for k, o in enumerate(owners.tolist()):
        first.setdefault(o, k)
    return first


def _jobs_of(texts: list[str]) -> list[Any]:
    """The typed :class:`Job` of each structured line (``None``: not a JSON object), in batch decodes:
    a batch that fails is split in halves, so a bad line costs a few decodes, not the block's."""
    if not texts:
        return []
    if len(texts) > 1:
        body = "\n".join(texts)
        if body.count("\n") == len(texts) - 1:  # no line spans lines: one value per line
            try:
                jobs = decode_jobs(body)
            except DECODE_ERRORS:
                jobs = None
            if jobs is not None and len(jobs) == len(texts):
                return jobs
        if len(texts) > 16:
            half = len(texts) // 2
            return _jobs_of(texts[:half]) + _jobs_of(texts[half:])
    out: list[Any] = []
    for t in texts:
        try:
            out.append(decode_job(t))
        except DECODE_ERRORS:  # not JSON: no job fields (like _coerce.lift_job_fields)
            out.append(None)
    return out


def _job_source(a: Any) -> dict[str, Any] | None:
    """The object ``_coerce.lift_job_fields`` reads the job fields of a call's arguments from: the
    first object argument, or the first string argument that is a JSON object."""
    for x in a if type(a) is list else (a,):
        if type(x) is dict:
            return x
        if type(x) is str and x[:1] == "{" and x.rstrip()[-1:] == "}":
            try:
                d = _decode(x)
            except DECODE_ERRORS:
                continue
            if type(d) is dict:
                return d
    return None


_I32_LO, _I32_HI = -(2**31), 2**31


def _job_fields(
    msgs: list[Any], structured: list[int], src_pos: list[int], srcs: list[dict[str, Any]]
) -> tuple[list[int], dict[str, list[Any]]]:
    """Job fields of the log rows that can have them, by the rules of ``_coerce.lift_job_fields``
    (the first key that is not null, then as text or as a 32-bit attempt, ``_coerce.job_fields_of``):
    ``structured`` (one string argument that starts with ``{``) in typed batch decodes, and the
    objects ``srcs`` found in the other rows' arguments (rows ``src_pos``, :func:`_job_source`).
    One pass per column: a value that is already a string (an attempt an int of 32 bits) is taken as
    it is, anything else goes through the fallback keys and the conversion."""
    jobs = _jobs_of([msgs[i] for i in structured])
    if None in jobs:  # not JSON after all: no job fields
        structured = [i for i, j in zip(structured, jobs, strict=True) if j is not None]
        jobs = [j for j in jobs if j is not None]
    lo, hi = _I32_LO, _I32_HI
    cols: list[list[Any]] = [
        [x if type(x := j.jobId) is str else text_of(x if x is not None else j.job_id) for j in jobs],
        [
            x
            if type(x := j.type) is str
            else text_of(x if x is not None else (j.jobType if j.jobType is not None else j.job_type))
            for j in jobs
        ],
        [
            x if type(x := j.attempt) is int and lo <= x < hi else int_of(x if x is not None else j.attempts)
            for j in jobs
        ],
        [x if type(x := j.messageId) is str else text_of(x if x is not None else j.message_id) for j in jobs],
    ]
    more: list[list[Any]] = [
        [
            x if type(x := d.get("jobId")) is str else text_of(x if x is not None else d.get("job_id"))
            for d in srcs
        ],
        [
            x
            if type(x := d.get("type")) is str
            else text_of(
                x if x is not None else (x if (x := d.get("jobType")) is not None else d.get("job_type"))
            )
            for d in srcs
        ],
        [
            x
            if type(x := d.get("attempt")) is int and lo <= x < hi
            else int_of(x if x is not None else d.get("attempts"))
            for d in srcs
        ],
        [
            x
            if type(x := d.get("messageId")) is str
            else text_of(x if x is not None else d.get("message_id"))
            for d in srcs
        ],
    ]
    return structured + src_pos, {c: a + b for c, a, b in zip(JOB_COLS, cols, more, strict=True)}


def _log_columns(st: Block, n_logs: list[int], ctx: FileContext) -> dict[str, pa.Array]:
    u = UNSET
    flat = [lg for r in st.recs if (ls := r.Logs) for lg in ls]
    # every argument array was validated with its record and has no newline: one batch decode, and
    # the "args" column (the arrays as written) made of the same bytes
    raws = [lg.Message for lg in flat]
    decoded = decode_any_lines(b"\n".join(raws)) if flat else []
    args = _args_array(raws)
    msgs: list[Any] = [
        a[0] if type(a) is list and len(a) == 1 and type(a[0]) is str else None for a in decoded
    ]
    others = [i for i, m in enumerate(msgs) if m is None]
    structured = [i for i, m in enumerate(msgs) if m and m[0] == "{"]
    enc = _encode
    src_pos: list[int] = []  # rows whose arguments hold an object to read job fields from
    srcs: list[dict[str, Any]] = []
    for i in others:  # several arguments, or not a string: joined, objects as compact JSON
        a = decoded[i]
        if type(a) is list:
            if len(a) == 1:  # one object (or number, null ...): its JSON text
                x = a[0]
                msgs[i] = enc(x).decode()
                if type(x) is dict:
                    src_pos.append(i)
                    srcs.append(x)
                continue
            msgs[i] = " ".join([x if type(x) is str else enc(x).decode() for x in a])
        else:
            msgs[i] = join_args(a)
        if (d := _job_source(a)) is not None:
            src_pos.append(i)
            srcs.append(d)
    pos, job_vals = _job_fields(msgs, structured, src_pos, srcs)
    n = len(flat)
    owners = np.repeat(np.arange(len(n_logs), dtype=np.int32), n_logs)
    ts = [
        t if (t := lg.TimestampMs) is not u else first(lg.timestampMs, lg.Timestamp, lg.timestamp)
        for lg in flat
    ]
    cols: dict[str, pa.Array] = {
        "invocation_id": pa.array(owners),
        "ts": ms_array(ts, ctx, st.lines, "Logs", owners),
        "level": arrow_column("level", [x if (x := lg.Level) is not u else first(lg.level) for lg in flat]),
        "message": pa.array(msgs, pa.string()),
        "args": args,
    }
    cols.update(_job_arrays(n, pos, job_vals))
    return cols


def _args_array(raws: list[msgspec.Raw]) -> pa.Array:
    """The argument arrays as written, as a string array built from their bytes and lengths (no
    conversion of Python objects; UTF-8 checked unless the bytes are ASCII)."""
    n = len(raws)
    data = b"".join(raws)
    if len(data) >= 2**31:  # cannot happen (a block is a few MiB); never trust it blindly
        raise ValueError(f"{len(data)} bytes of argument arrays in one block")
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(np.fromiter(map(len, raws), dtype=np.int32, count=n), out=offsets[1:])
    arr = pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    if not data.isascii():
        arr.validate(full=True)  # pa.ArrowInvalid: the block is read again line by line
    return arr


def _exception_columns(st: Block, n_exc: list[int], ctx: FileContext) -> dict[str, pa.Array]:
    u = UNSET
    flat = [e for r in st.recs if (es := r.Exceptions) for e in es]
    owners = np.repeat(np.arange(len(n_exc), dtype=np.int32), n_exc)
    msgs = [m if (m := e.Message) is not u else first(e.message) for e in flat]
    if any(m is not None and type(m) is not str for m in msgs):  # kept as its JSON text
        msgs = [m if m is None or type(m) is str else _encode(m).decode() for m in msgs]
    ts = [
        t if (t := e.TimestampMs) is not u else first(e.timestampMs, e.Timestamp, e.timestamp) for e in flat
    ]
    return {
        "invocation_id": pa.array(owners),
        "ts": ms_array(ts, ctx, st.lines, "Exceptions", owners, indexed=False),
        "name": arrow_column("name", [x if (x := e.Name) is not u else first(e.name) for e in flat]),
        "message": pa.array(msgs, pa.string()),
        "stack": pa.array([x if (x := e.Stack) is not u else first(e.stack) for e in flat], pa.string()),
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
