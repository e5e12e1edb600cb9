"""The canonical frame schema: one shape for every source.

Every loader (wrangler tail JSON, Tail Worker TraceItems, Logpush ``workers_trace_events``,
Workers Logs query API and dashboard export) and the DLQ collector produces these frames. Missing
values are nulls, never invented. Timestamps are tz-aware UTC (``timestamp[ms, tz=UTC]``); strings
are pyarrow-backed; low-cardinality strings are categoricals.

``invocations``: one row per Worker invocation
    ``invocation_id``  stable hash of the source record (same record -> same id, any machine):
                       16 hex digits of xxh3-64 over the record's compact JSON (a Logpush line as
                       written; a tail/TraceItem record re-encoded compactly, so 2-space, 4-space
                       and NDJSON copies agree; Workers Logs: script name + request id)
    ``ts``             event timestamp (``eventTimestamp`` / ``EventTimestampMs`` / ``$metadata.startTime``)
    ``script``         script name (null in local workerd)
    ``script_version`` version id (null when the source has none)
    ``trigger``        fetch | scheduled | alarm | queue | email | tail | rpc | websocket | custom | unknown
    ``queue``          queue name for queue invocations
    ``batch_size``     messages in the queue batch
    ``outcome``        runtime outcome as reported (ok, exception, exceededCpu, ...)
    ``failed``         outcome is not ok OR exceptions are present (older workerd reports ``ok`` for a
                       throwing queue handler)
    ``cpu_ms``, ``wall_ms``  CPU and wall time (0 in local workerd; null when not selected)
    ``n_logs``, ``n_exceptions``  counts of console lines and exceptions
    ``truncated``      the source said it truncated logs (TraceItem ``truncated`` or a Logpush marker)
    ``url``, ``method``, ``status``  fetch request/response
    ``entrypoint``, ``dispatch_namespace``
    ``request_id``     the invocation's request id where the source has one: Workers Logs
                       ``$workers.requestId`` / ``$metadata.requestId`` (null elsewhere)
    ``ray_id``         the Cloudflare ray id of a fetch invocation: Workers Logs ``$metadata.rayId``,
                       Logpush ``Event.RayID``, the ``cf-ray`` request header of a tail event or
                       TraceItem (null for queue, cron and other triggers)
    ``source``         which loader (registry name) produced the row
    ``source_file``    the file (or API URL) it came from

``logs``: one row per ``console.*`` line
    ``invocation_id``, ``ts``, ``level`` (debug|info|log|warn|error), ``message`` (arguments joined for
    reading: strings as-is, objects as compact JSON), ``args`` (the raw argument array as JSON text,
    byte for byte as the source wrote it where the loader can keep it, else re-encoded compactly;
    for Workers Logs the logged payload, ``source``), and the job fields lifted from structured
    log lines: ``job_id``, ``job_type``, ``attempt``, ``message_id``. Logpush truncation markers
    (``<<<Logpush: ... truncated>>>``) are not rows: they set ``invocations.truncated``.

    Logging convention for consumer Workers (so logs join to DLQ messages): log one JSON object per
    line with ``console.log(JSON.stringify({...}))`` or ``console.log({...})`` carrying
    ``jobId`` (or ``job_id``), ``type`` (or ``jobType``/``job_type``), ``attempt`` (or ``attempts``),
    ``messageId`` (or ``message_id``), ``event``, ``deploy`` (or ``version``/``scriptVersion``/
    ``script_version``: the deployed version, e.g. from a ``DEPLOY_VERSION`` var) and, on failures,
    ``error``. The version is not a column: the analysis reads it from ``message``/``args`` where an
    invocation has no ``script_version`` (local workerd and ``wrangler dev`` report none), and makes
    deploy markers of it (:mod:`edgeinvestigate.analysis.deploys`).

``exceptions``: one row per exception
    ``invocation_id``, ``ts``, ``name``, ``message``, ``stack``

``dlq``: one row per dead-lettered message (collected from the Queues REST API or a snapshot file)
    ``message_id``, ``enqueued_at``, ``attempts``, ``content_type``, ``job_type``, ``payload`` (JSON text),
    ``original_timestamp``, ``meta_attempts``, ``last_attempt``, ``error`` (from an ``{original, error}``
    envelope), ``envelope`` (raw | wrapped | unknown), ``body_raw``, ``decode_error``, ``queue``,
    ``job_id`` (from the payload when present), ``lease_id`` (snapshot mode only)
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from edgeinvestigate.models.analytics import METRIC_CATEGORICAL, METRIC_FRAMES

__all__ = [
    "DLQ",
    "EXCEPTIONS",
    "FRAMES",
    "INVOCATIONS",
    "LOGS",
    "TRIGGERS",
    "conform",
    "dictionary_columns",
    "empty_frame",
]

TS: Final = pa.timestamp("ms", tz="UTC")
STR: Final = pa.string()

#: trigger values of the ``invocations`` frame
TRIGGERS: Final = (
    "fetch",
    "scheduled",
    "alarm",
    "queue",
    "email",
    "tail",
    "rpc",
    "websocket",
    "custom",
    "unknown",
)

INVOCATIONS: Final[dict[str, pa.DataType]] = {
    "invocation_id": STR,
    "ts": TS,
    "script": STR,
    "script_version": STR,
    "trigger": STR,
    "queue": STR,
    "batch_size": pa.int32(),
    "outcome": STR,
    "failed": pa.bool_(),
    "cpu_ms": pa.float64(),
    "wall_ms": pa.float64(),
    "n_logs": pa.int32(),
    "n_exceptions": pa.int32(),
    "truncated": pa.bool_(),
    "url": STR,
    "method": STR,
    "status": pa.int32(),
    "entrypoint": STR,
    "dispatch_namespace": STR,
    "request_id": STR,
    "ray_id": STR,
    "source": STR,
    "source_file": STR,
}

LOGS: Final[dict[str, pa.DataType]] = {
    "invocation_id": STR,
    "ts": TS,
    "level": STR,
    "message": STR,
    "args": STR,
    "job_id": STR,
    "job_type": STR,
    "attempt": pa.int32(),
    "message_id": STR,
}

EXCEPTIONS: Final[dict[str, pa.DataType]] = {
    "invocation_id": STR,
    "ts": TS,
    "name": STR,
    "message": STR,
    "stack": STR,
}

DLQ: Final[dict[str, pa.DataType]] = {
    "message_id": STR,
    "enqueued_at": TS,
    "attempts": pa.int32(),
    "content_type": STR,
    "job_type": STR,
    "job_id": STR,
    "payload": STR,
    "original_timestamp": TS,
    "meta_attempts": pa.int32(),
    "last_attempt": TS,
    "error": STR,
    "envelope": STR,
    "body_raw": STR,
    "decode_error": STR,
    "queue": STR,
    "lease_id": STR,
}

FRAMES: Final[dict[str, dict[str, pa.DataType]]] = {
    "invocations": INVOCATIONS,
    "logs": LOGS,
    "exceptions": EXCEPTIONS,
    "dlq": DLQ,
    **METRIC_FRAMES,  # queue_backlog, queue_operations, queue_consumers, worker_invocations
}

#: columns stored as pandas categoricals (low cardinality, repeated a lot)
CATEGORICAL: Final[dict[str, tuple[str, ...]]] = {
    "invocations": ("script", "script_version", "trigger", "queue", "outcome", "source", "source_file"),
    "logs": ("level", "job_type"),
    "exceptions": ("name",),
    "dlq": ("content_type", "job_type", "envelope", "queue"),
    **METRIC_CATEGORICAL,
}


def arrow_schema(frame: str) -> pa.Schema:
    """The pyarrow schema of one canonical frame."""
    return pa.schema(list(FRAMES[frame].items()))


def empty_frame(frame: str) -> pd.DataFrame:
    """An empty frame with the canonical columns and dtypes."""
    return conform(pa.table({k: pa.array([], type=t) for k, t in FRAMES[frame].items()}), frame)


def dictionary_columns(frame: str) -> list[str]:
    """The columns of ``frame`` to read from Parquet dictionary-encoded (``read_dictionary``): its
    categoricals, which :func:`conform` then takes as they are. Read as plain strings, a column of a
    few distinct values takes a string per row first (10M invocations: 0.7 GB for four columns)."""
    return list(CATEGORICAL.get(frame, ()))


def conform(
    data: pa.Table | pd.DataFrame,
    frame: str,
    *,
    only: tuple[str, ...] | None = None,
    categorical: tuple[str, ...] = (),
) -> pd.DataFrame:
    """Cast a table or frame to the canonical columns, order and dtypes of ``frame``.

    Missing columns become nulls; extra columns are dropped. The result uses pyarrow-backed
    dtypes, with categoricals for the columns listed in :data:`CATEGORICAL` and in ``categorical``
    (a reader that holds a column of repeated values, e.g. the exceptions' stacks, once per value).
    ``only``: just these of the canonical columns (a reader that needs a few: no nulls made for the
    others).
    """
    spec = FRAMES[frame]
    if only is not None:
        spec = {name: typ for name, typ in spec.items() if name in only}
    table = pa.Table.from_pandas(data, preserve_index=False) if isinstance(data, pd.DataFrame) else data
    n = table.num_rows
    categorical = (*CATEGORICAL.get(frame, ()), *categorical)
    cols = []
    cats: dict[str, Any] = {}
    for name, typ in spec.items():
        if name in table.column_names:
            col = table.column(name)
            if name in categorical:
                cats[name] = _categorical(col)
                col = pa.nulls(n, type=typ)  # placeholder, replaced below
            elif col.type != typ:
                col = col.cast(typ)
            cols.append(col)
        else:
            cols.append(pa.nulls(n, type=typ))
    table = pa.table(cols, names=list(spec))
    df = table.to_pandas(types_mapper=pd.ArrowDtype)
    for name in categorical:
        if name not in spec:
            continue
        if name in cats:
            df[name] = cats[name]
        else:
            df[name] = df[name].astype("category")
    return df


def _categorical(col: pa.ChunkedArray) -> Any:
    """A string column as a pandas Categorical (sorted ``string[pyarrow]`` categories), via Arrow.

    Equal to ``Series.astype("string[pyarrow]").astype("category")`` but encoded in Arrow, and
    cheap when the column is already dictionary-encoded (as the loaders produce it).
    """
    if pa.types.is_dictionary(col.type):
        col = col.cast(pa.dictionary(pa.int32(), pa.string()))
    else:
        col = col.cast(pa.string()).dictionary_encode()
    col = col.unify_dictionaries() if col.num_chunks > 1 else col
    dictionary = col.chunk(0).dictionary if col.num_chunks else pa.array([], pa.string())
    # the categories are the dictionary's entries, used or not (as pandas keeps the categories of a
    # filtered column, and a saved frame its dictionary), sorted as pandas sorts those of
    # astype("category"), so results do not depend on row order
    n = len(dictionary)
    order = pc.array_sort_indices(dictionary).to_numpy()
    sorted_dict = dictionary.take(pa.array(order))
    remap = np.empty(n, dtype=np.int32)  # dictionary index -> code
    remap[order] = np.arange(n, dtype=np.int32)
    # the codes written chunk by chunk into one array (no column-long temporaries: 10M rows, 40 MB)
    codes = np.full(len(col), -1, dtype=np.int32)
    at = 0
    for c in col.chunks:
        k = len(c)
        if k and n:
            idx = c.indices  # a null row's index is any value: clipped, then set to -1
            values = np.frombuffer(idx.buffers()[1], dtype=np.int32, count=idx.offset + k)[idx.offset :]
            out = codes[at : at + k]
            np.take(remap, values, out=out, mode="clip")
            if idx.null_count:
                out[idx.is_null().to_numpy(zero_copy_only=False)] = -1
        at += k
    categories = pd.Index(sorted_dict.to_pandas(types_mapper=pd.ArrowDtype))
    return pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(categories, ordered=False))
