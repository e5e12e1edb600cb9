"""The logs clustering reads: only the lines it needs, and the text only of those it reads.

Clustering reads the text (``message``, ``args``) only of the lines of an error level and of those
whose text may hold a structured error field (``"error"`` in the message or the arguments: see
:mod:`._rows`). Of the other lines it needs only those that may name a version
(:data:`~edgeinvestigate.analysis.deploys.VERSION_KEYS`, with their text), which give the version of
an invocation that has none, and the jobs of the invocations whose error rows do not name theirs
(an exception, a line without a job type or id): the first job type their lines name and their one
job id (:data:`._context.JOBS_SELECT`), which DuckDB computes in the same scan. On a busy day the
other lines are most of the evidence.

For evidence whose logs are still in the file the spool wrote
(:mod:`edgeinvestigate.evidence._spool`), :func:`cluster_lean` clusters as
:func:`~edgeinvestigate.analysis.clustering.cluster` does, but reads only those lines: DuckDB picks
them (one scan that holds little), pyarrow reads them a row group at a time, the error texts of each
batch are taken (:func:`._rows.log_texts`) and its texts dropped (but those that may name a version)
before the next is read. The lean logs frame's index holds each line's position in the full frame
(``Clusters.assign["row"]`` is that position). Of the invocations, only the first row of each one
that has an error row is read (:func:`lean_invocations`), with only the columns of an error row's
context; the exceptions with their stacks dictionary-encoded (:func:`lean_exceptions`). The clusters
and their rows are the same as from the full frames (the tests compare), in a fraction of the memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from edgeinvestigate._memory import give_back_memory, system_pool
from edgeinvestigate.analysis._masking import MASKS, Mask
from edgeinvestigate.analysis.clustering._clusters import Clusters
from edgeinvestigate.analysis.clustering._compute import compute_clusters, finish, prepare
from edgeinvestigate.analysis.clustering._context import JOBS_SELECT
from edgeinvestigate.analysis.clustering._rows import (
    ERROR_LEVELS,
    POSITIONS,
    ErrorTexts,
    error_texts,
    joined_texts,
    log_texts,
)
from edgeinvestigate.analysis.clustering._stored import rules_of
from edgeinvestigate.analysis.deploys import VERSION_KEY_RE
from edgeinvestigate.evidence._frames import StoredFrame
from edgeinvestigate.evidence._sql import connect, memory_limit, out_of_memory
from edgeinvestigate.models.frames import LOGS, conform, dictionary_columns

if TYPE_CHECKING:
    import duckdb

    from edgeinvestigate.analysis.rules import ClusterRules
    from edgeinvestigate.evidence.bundle import Evidence

__all__ = [
    "LEAN_MEMORY_LIMIT",
    "LeanLogs",
    "cluster_lean",
    "lean_evidence",
    "lean_exceptions",
    "lean_invocations",
    "lean_logs",
]

#: the text columns that may hold a structured error field
TEXT: tuple[str, ...] = ("message", "args")
#: the columns left out (null) of the lines clustering does not read the text of
LEFT_OUT: tuple[str, ...] = (*TEXT, "message_id")
#: logs columns clustering never reads (not read at all)
UNUSED_LOGS: tuple[str, ...] = ("attempt",)
#: the logs columns read
READ_LOGS: tuple[str, ...] = tuple(c for c in LOGS if c not in UNUSED_LOGS)
#: the invocations columns clustering reads (the context of an error row); the others are left out
CONTEXT: tuple[str, ...] = (
    "invocation_id", "script", "script_version", "queue", "outcome", "request_id", "ray_id",
)  # fmt: skip
#: the logs columns the invocation context reads, its jobs given (:mod:`._context`: versions named in text)
CONTEXT_LOGS: tuple[str, ...] = ("invocation_id", "message", "args")
#: what a line's text holds when it may carry a structured error field (see ``structured_error``)
ERROR_FIELD = '"error"'
#: the exceptions columns read dictionary-encoded: their values repeat (a stack per code path)
REPEATED_EXCEPTIONS: tuple[str, ...] = ("name", "stack")
#: DuckDB's memory while it picks the lines (it spills beyond; the ``EDGEINVESTIGATE_DUCKDB_MEMORY``
#: variable wins when set)
LEAN_MEMORY_LIMIT = "768MB"
#: lines read at a time
BATCH_ROWS = 256 * 1024


@dataclass
class LeanLogs:
    """The lean logs (see the module docs): ``frame`` (texts null but on the lines that may name a
    version) and ``texts``, the error texts of its lines (``row``: positions in ``frame``)."""

    frame: pd.DataFrame
    texts: ErrorTexts
    #: the jobs of the invocations of error rows that lack a job (see :mod:`._context`)
    jobs: pa.Table
    #: the distinct invocation ids of the error rows (of the lines read and of the exceptions)
    erring: pa.ChunkedArray


def cluster_lean(
    ev: Evidence,
    *,
    rules: ClusterRules | str | Path | None = None,
    levels: Sequence[str] = ERROR_LEVELS,
    max_examples: int = 3,
    masks: tuple[Mask, ...] = MASKS,
) -> Clusters:
    """``cluster(ev, ..., stored=False)``: the same clusters, read from the lean logs when ``ev``'s
    logs are a spooled file not read yet (see the module docs)."""
    rules = rules_of(ev, rules)
    # Arrow allocates from the system pool meanwhile (see system_pool: the many short-lived arrays of a
    # busy day reuse what the ones before freed; clustering 10M events peaks 0.3 GB lower)
    with system_pool():
        found = lean_evidence(ev, levels)
    if found is None:
        return compute_clusters(ev, rules=rules, levels=levels, max_examples=max_examples, masks=masks)
    with system_pool():
        # each step lets go of what the next does not read: the lean texts once joined, the lean frames
        # once the rows and their context are taken (only the DLQ frame is read after)
        small, logged, jobs = found
        del found
        give_back_memory()  # what reading the lean logs freed
        first = error_texts(small, levels, logged)
        del logged
        give_back_memory()  # the texts' parts, now joined
        prep, grouping = prepare(first, small, masks, partial(_let_go, small), jobs)
        del first, jobs
        dlq = small.dlq
        del small
        give_back_memory()
        return finish(dlq, prep, grouping, rules, levels, max_examples, masks)


def _let_go(small: Evidence, step: str) -> None:
    """Drop what the next step does not read of the lean evidence (its own copy): once the error rows
    are taken (``step="rows"``), the exceptions and the logs columns but :data:`CONTEXT_LOGS`; once
    their context is joined (``"context"``), the invocations and the logs columns (their index,
    the lines' positions, is kept)."""
    if step == "rows":
        small.exceptions = small.exceptions.iloc[:0]
        small.logs = small.logs[[c for c in small.logs.columns if c in CONTEXT_LOGS]]
    else:
        small.invocations = small.invocations.iloc[:0]
        small.logs = small.logs[[]]
    give_back_memory()


def lean_evidence(
    ev: Evidence, levels: Sequence[str] = ERROR_LEVELS
) -> tuple[Evidence, ErrorTexts, pa.Table] | None:
    """``ev`` with the lean logs (see the module docs) for clustering with ``levels``, the error
    texts of those logs and the jobs of their invocations; ``None`` unless its logs are a spooled
    file not read yet."""
    value = ev.__dict__.get("_frame_logs")
    if not (isinstance(value, StoredFrame) and value.in_storage_order):
        return None
    exc = ev.__dict__.get("_frame_exceptions")
    thrown: Path | pa.Table
    if isinstance(exc, StoredFrame):
        thrown = exc.path
    else:
        thrown = pa.table({"invocation_id": pa.array(ev.exceptions["invocation_id"], pa.string())})
    logs = lean_logs(value.path, levels, thrown=thrown)
    lean: dict[str, pd.DataFrame] = {"logs": logs.frame}
    if isinstance(exc, StoredFrame) and exc.in_storage_order:
        lean["exceptions"] = lean_exceptions(exc.path)
    inv = ev.__dict__.get("_frame_invocations")
    if isinstance(inv, StoredFrame) and inv.in_storage_order:
        lean["invocations"] = lean_invocations(inv.path, logs.erring)
    return ev.copy_with(**lean), logs.texts, logs.jobs


def lean_exceptions(path: Path) -> pd.DataFrame:
    """The exceptions of the Parquet file ``path`` with :data:`REPEATED_EXCEPTIONS` categorical (read
    dictionary-encoded: each distinct stack is held once, not once per exception)."""
    table = pq.read_table(path, read_dictionary=list(REPEATED_EXCEPTIONS), pre_buffer=False)
    return conform(table, "exceptions", categorical=REPEATED_EXCEPTIONS)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _levels(con: duckdb.DuckDBPyConnection, scan: str, levels: Sequence[str]) -> list[str]:
    """The distinct levels of the lines whose lower case (Python's) is one of ``levels``."""
    found = con.execute(f"SELECT DISTINCT level FROM {scan} WHERE level IS NOT NULL").fetchall()
    return [v for (v,) in found if v.lower() in levels]


def _picked(con: duckdb.DuckDBPyConnection, scan: str, levels: Sequence[str]) -> pa.Table:
    """In one scan of the logs: the lines of the lean logs (``row``, their position; ``text``,
    whether their text is read; ``version``, whether they may name a version; ``invocation_id`` of
    the lines read), and the jobs of the invocations that need them (``row`` null;
    ``invocation_id``, ``job_type``, ``job_id``: see :data:`._context.JOBS_SELECT`): those of the
    exceptions and of the lines read that lack a job type or id, and the lines without an
    invocation id."""
    wanted = ", ".join(_quote(v) for v in _levels(con, scan, levels)) or "NULL"
    read = " OR ".join(f"contains({c}, {_quote(ERROR_FIELD)})" for c in TEXT)
    sql = f"""
        WITH l AS (
            SELECT file_row_number AS row, invocation_id, job_id, job_type::VARCHAR AS job_type,
                   coalesce(level IN ({wanted}) OR {read}, false) AS read,
                   coalesce(regexp_matches(message, {_quote(VERSION_KEY_RE)}), false) AS version
            FROM {scan}
        ),
        needing AS (
            SELECT invocation_id FROM l
            WHERE read AND invocation_id IS NOT NULL AND (job_type IS NULL OR job_id IS NULL)
            UNION SELECT invocation_id FROM thrown WHERE invocation_id IS NOT NULL
        ),
        context AS (
            SELECT * FROM l
            WHERE invocation_id IS NULL OR invocation_id IN (SELECT invocation_id FROM needing)
        )
        -- the first line too: the lean logs are empty only when the logs are
        SELECT row, read OR version AS text, version,
               CASE WHEN read THEN invocation_id END AS invocation_id,
               NULL::VARCHAR AS job_type, NULL::VARCHAR AS job_id
        FROM l WHERE read OR version OR row = 0
        UNION ALL SELECT NULL, NULL, NULL, * FROM ({JOBS_SELECT.format(lines="context")})
    """
    return con.sql(sql).to_arrow_table()


def lean_logs(
    path: Path, levels: Sequence[str] = ERROR_LEVELS, *, thrown: Path | pa.Table | None = None
) -> LeanLogs:
    """The lean logs (see the module docs) of the logs Parquet file ``path``, for clustering with
    ``levels``: the lines clustering needs, in their order, indexed by their position in the file
    (an index named :data:`._rows.POSITIONS`), and their error texts; ``message`` and ``args`` null
    but on the lines that may name a version, ``message_id`` null on the lines whose text clustering
    does not read, and without ``attempt``. ``thrown``: the exceptions (a Parquet file or a table with
    their ``invocation_id``).

    DuckDB picks the lines (a scan that holds little); pyarrow reads them, a row group at a time,
    into Arrow's own memory (what DuckDB hands over stays in DuckDB's allocator as long as any
    column of its batch lives)."""
    with _connection(path) as con:
        scan = f"read_parquet({_quote(str(path))}, file_row_number = true)"
        if thrown is None:
            thrown = pa.table({"invocation_id": pa.nulls(0, pa.string())})
        if isinstance(thrown, Path):
            thrown_scan = f"read_parquet({_quote(str(thrown))})"
            con.execute(f"CREATE VIEW thrown AS SELECT invocation_id FROM {thrown_scan}")
        else:
            con.register("thrown", thrown)
        picked = _picked(con, scan, levels)
        con.register("picked", picked)
        erring = con.sql(
            "SELECT DISTINCT invocation_id FROM picked WHERE row IS NOT NULL AND invocation_id IS NOT NULL"
            " UNION SELECT invocation_id FROM thrown WHERE invocation_id IS NOT NULL"
        ).to_arrow_table()
    is_job = picked.column("row").is_null()
    jobs = picked.filter(is_job).select(["invocation_id", "job_type", "job_id"])
    kept = _kept(picked.filter(pc.invert(is_job)))
    del picked, is_job
    batches: list[pa.RecordBatch] = []
    texts: list[ErrorTexts | None] = []
    at = 0
    for batch in _read_kept(path, kept):
        lines = pa.Table.from_batches([batch]).drop_columns(["_row", "_version"])
        found = log_texts(conform(lines, "logs"), levels)
        if found:
            found.row = found.row + at
            texts.append(found)
        batches.append(_without_texts(batch))
        at += batch.num_rows
        if len(batches) % 16 == 0:
            pa.default_memory_pool().release_unused()  # the texts read so far
    if batches:
        table = pa.Table.from_batches(batches)
    else:
        table = pa.table({"_row": pa.array([], pa.int64()), "_version": pa.array([], pa.bool_())})
    index = table.column("_row").to_numpy()
    frame = conform(table.drop_columns(["_row", "_version"]), "logs", only=READ_LOGS)
    frame.index = pd.Index(index, dtype=np.int64, name=POSITIONS)
    return LeanLogs(frame, joined_texts(texts), jobs, erring.column("invocation_id"))


@contextmanager
def _connection(path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection for a lean read of ``path`` (:data:`LEAN_MEMORY_LIMIT`, unless
    :data:`~edgeinvestigate.evidence._sql.MEMORY_ENV` says otherwise), closed after; running out of
    its memory is a :class:`~edgeinvestigate.errors.LoadError` that says what to raise."""
    import duckdb

    con = connect(threads=2, memory_limit=memory_limit(LEAN_MEMORY_LIMIT))
    try:
        yield con
    except duckdb.OutOfMemoryException as exc:
        raise out_of_memory(f"picking the rows to cluster from {path}", LEAN_MEMORY_LIMIT, exc) from exc
    finally:
        con.close()


def lean_invocations(path: Path, erring: pa.ChunkedArray) -> pd.DataFrame:
    """The invocations clustering reads from the Parquet file ``path`` (:data:`CONTEXT` columns): the
    first row of each invocation id in ``erring`` (those of the error rows), and the first row without
    an invocation id, in their order (where the context looks an error row's invocation up)."""
    with _connection(path) as con:
        con.register("erring", pa.table({"invocation_id": erring}))
        scan = f"read_parquet({_quote(str(path))}, file_row_number = true)"
        picked = con.sql(
            f"SELECT min(file_row_number) AS row FROM {scan}"
            " WHERE invocation_id IS NULL OR invocation_id IN (SELECT invocation_id FROM erring)"
            " GROUP BY invocation_id ORDER BY row"
        ).to_arrow_table()
    rows = picked.column("row").to_numpy()
    pf = pq.ParquetFile(path, pre_buffer=False, read_dictionary=dictionary_columns("invocations"))
    parts = [part for _, _, part in _row_groups(pf, rows, CONTEXT)]
    table = pa.concat_tables(parts) if parts else pa.table({c: pa.array([], pa.string()) for c in CONTEXT})
    return conform(table, "invocations", only=CONTEXT)


def _row_groups(
    pf: pq.ParquetFile, rows: np.ndarray, columns: Sequence[str]
) -> Iterator[tuple[int, int, pa.Table]]:
    """Per row group of ``pf`` that holds some of ``rows`` (positions in the file, ascending): the
    slice ``rows[a:b]`` it holds, and those rows of ``columns`` (one row group read at a time)."""
    lo = 0
    for g in range(pf.metadata.num_row_groups):
        hi = lo + pf.metadata.row_group(g).num_rows
        a, b = np.searchsorted(rows, [lo, hi])
        if a < b:
            local = pa.array(rows[a:b] - lo, pa.int64())
            yield int(a), int(b), pf.read_row_group(g, columns=list(columns)).take(local)
        lo = hi


def _read_kept(path: Path, kept: pa.Table) -> Iterator[pa.RecordBatch]:
    """The lines ``kept`` of the logs file ``path``, a row group at a time, with ``_row`` (their
    position) and ``_version``; ``message``, ``args`` and ``message_id`` null where their ``text``
    is not read, and without ``attempt``."""
    rows = kept.column("row").to_numpy()
    text = kept.column("text").to_numpy(zero_copy_only=False)
    version = kept.column("version").to_numpy(zero_copy_only=False)
    pf = pq.ParquetFile(path, pre_buffer=False)  # pre-buffering holds whole column chunks
    for a, b, group in _row_groups(pf, rows, READ_LOGS):
        cols = {
            "_row": pa.array(rows[a:b], pa.int64()),
            "_version": pa.array(version[a:b], pa.bool_()),
        }
        for c in READ_LOGS:
            col = group.column(c).combine_chunks()
            cols[c] = _only_where(col, text[a:b]) if c in LEFT_OUT else col
        yield pa.RecordBatch.from_pydict(cols)


def _kept(picked: pa.Table) -> pa.Table:
    """The picked lines, each once (in order; its text read and version flags or-ed)."""
    rows = picked.column("row").to_numpy()
    order = np.argsort(rows, kind="stable")
    rows = rows[order]
    flags = {c: picked.column(c).to_numpy(zero_copy_only=False)[order] for c in ("text", "version")}
    first = np.ones(len(rows), dtype=bool)
    first[1:] = rows[1:] != rows[:-1]
    starts = np.flatnonzero(first)
    if len(rows):
        flags = {c: np.logical_or.reduceat(v, starts) for c, v in flags.items()}
    return pa.table({"row": rows[first], **flags})


def _without_texts(batch: pa.RecordBatch) -> pa.RecordBatch:
    """``batch`` with its texts null but on the lines that may name a version (which
    :func:`~edgeinvestigate.analysis.deploys.log_versions` reads)."""
    keep = pc.fill_null(batch.column("_version"), False).to_numpy(zero_copy_only=False)
    cols = [_only_where(batch.column(c), keep) if c in TEXT else batch.column(c) for c in batch.schema.names]
    return pa.RecordBatch.from_arrays(cols, schema=batch.schema)


def _only_where(col: pa.Array, keep: np.ndarray) -> pa.Array:
    """``col`` with its values null where ``keep`` is False; only the kept values are copied (a null
    index takes a null; ``if_else`` would copy them all)."""
    at = pa.array(np.cumsum(keep) - 1, mask=~keep)
    out: pa.Array = col.filter(pa.array(keep)).take(at)
    return out
