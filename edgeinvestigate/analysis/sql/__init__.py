"""The analysis's aggregates in SQL: DuckDB over the evidence frames, in memory or as Parquet files.

Every heavy aggregate of :func:`~edgeinvestigate.analysis.rca.analyze` (timelines per bucket, job type
and version, failed rates, limits, retry storms, blast radius, shifts around deploys, the deliveries
and the invocation context) is a plain ``SELECT`` in one of the ``*.sql`` files beside this module,
written against the documented frame layout (:mod:`edgeinvestigate.models.frames`) and nothing else:
no Python functions inside queries, so the same text can run where an archive outgrows one machine
(Spark SQL, R2 SQL) with at most a few dialect renames. pandas only receives what is shown or what a
rule needs row by row (top-N tables, examples, the few candidate log lines of a JSON rule).

The relations the queries read:

* ``invocations``, ``logs``, ``exceptions``, ``dlq``: the frames with every documented column plus
  ``pos`` (the row's position in its frame: "first" means first in frame order, as in pandas) and
  ``ts_ms`` (``ts`` as epoch milliseconds; frame times are millisecond-precise);
* ``errors``: the clustered error rows (``Clusters.assign`` without the DLQ rows): ``pos``,
  ``invocation_id``, ``ts_ms``, ``level``, ``job_id``, ``job_type``, ``script``, ``script_version``,
  ``queue``, ``cluster_id``, ``source``, ``row`` (the row in its source frame);
* ``log_jobs``, ``inv`` and ``deliveries``: derived once per analysis (``log_jobs.sql``: the one
  pass over the logs; ``inv.sql``, ``deliveries.sql``).

Parameters are DuckDB's ``$name``. The text is DuckDB SQL; what Spark SQL spells otherwise:
``arg_min_null(x, k)`` / ``arg_max_null`` are ``min_by(x, k)`` / ``max_by`` (the value at the smallest key,
null or not), ``list(x)`` is ``collect_list``, a list key ``[ts_ms, pos]`` is ``array(ts_ms, pos)``,
``a // b`` is ``a div b``, ``quantile_cont`` is ``percentile``, ``regexp_matches(s, re)`` is
``s rlike re``, ``SEMI JOIN`` is ``LEFT SEMI JOIN``, ``GROUP BY ALL`` lists the columns.

A frame comes from a registered pandas frame (zero-copy for the Arrow-backed frames of
:func:`~edgeinvestigate.evidence.bundle.load`) or from a Parquet file read in place
(``read_parquet``; :func:`frame_file`: the file a frame of an opened bundle still is, documented
columns the file lacks become typed nulls), so a saved bundle is aggregated without loading it. The
connection uses every core (unless ``EDGEINVESTIGATE_DUCKDB_THREADS``), a memory limit
(``EDGEINVESTIGATE_DUCKDB_MEMORY``, default :data:`DEFAULT_MEMORY`; the settings of ``ev.sql()``'s
connections too) and spills to a private temporary folder that is removed on :meth:`Engine.close`.
"""

from __future__ import annotations

import os
import shutil
import time
import weakref
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa

from edgeinvestigate._scratch import scratch_dir
from edgeinvestigate.evidence._frames import frame_file as stored_frame_file
from edgeinvestigate.evidence._sql import MEMORY_ENV, THREADS_ENV, ident
from edgeinvestigate.models.frames import FRAMES, conform

if TYPE_CHECKING:
    import duckdb

    from edgeinvestigate.evidence.bundle import Evidence

__all__ = [
    "DEFAULT_MEMORY",
    "FRAME_NAMES",
    "Engine",
    "FrameSpec",
    "connect",
    "frame_file",
    "frame_specs",
    "query_text",
]

FRAME_NAMES: Final = ("invocations", "logs", "exceptions", "dlq")
#: DuckDB's memory limit unless ``EDGEINVESTIGATE_DUCKDB_MEMORY`` says otherwise (it spills past it)
DEFAULT_MEMORY: Final = "512MB"
#: a frame: a pandas frame in memory, or the path of its Parquet file
FrameSpec = pd.DataFrame | Path


@cache
def query_text(name: str) -> str:
    """The text of query ``name`` (``analysis/sql/<name>.sql``)."""
    return resources.files(__name__).joinpath(f"{name}.sql").read_text(encoding="utf-8")


def frame_file(ev: Evidence, name: str) -> Path | None:
    """The Parquet file a frame of ``ev`` is (still) the content of, or None (a frame made in memory,
    or one replaced since the bundle was opened): see :mod:`edgeinvestigate.evidence._frames`."""
    found = stored_frame_file(ev, name)
    return Path(found) if found is not None else None


def frame_specs(ev: Evidence) -> dict[str, FrameSpec]:
    """Where each frame of ``ev`` is: its Parquet file when the evidence knows one (a saved bundle:
    DuckDB reads it in place, the frame need not be in memory), else the frame in memory."""
    specs: dict[str, FrameSpec] = {}
    for name in FRAME_NAMES:
        path = frame_file(ev, name)
        specs[name] = path if path is not None and path.is_file() else ev.frame(name)
    return specs


def _arrow(df: pd.DataFrame, name: str, columns: list[str]) -> pa.Table:
    """The columns of a frame as Arrow (zero-copy for Arrow-backed columns), plus ``pos``."""
    sub = df[[c for c in columns if c in df.columns]]
    try:
        table = pa.Table.from_pandas(sub, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # a hand-made frame with mixed objects: conform it
        table = pa.Table.from_pandas(conform(df, name)[sub.columns], preserve_index=False)
    for col in columns:  # a frame built by hand may lack a column: null, as conform would
        if col not in table.column_names:
            table = table.append_column(col, pa.nulls(len(table), FRAMES[name][col]))
    return table.append_column("pos", pa.array(np.arange(len(table), dtype=np.int64)))


class Engine:
    """One DuckDB connection with the evidence frames as relations (see the module docs)."""

    def __init__(
        self, *, threads: int | None = None, memory_limit: str | None = None, temp_dir: str | None = None
    ) -> None:
        import duckdb

        self._own_temp = temp_dir is None
        self.temp_dir = temp_dir or str(scratch_dir("edgeinvestigate-sql"))
        # an engine that is never closed still removes its spill folder when collected or at exit
        self._cleanup = (
            weakref.finalize(self, shutil.rmtree, self.temp_dir, ignore_errors=True)
            if self._own_temp
            else None
        )
        self.con: duckdb.DuckDBPyConnection = duckdb.connect(":memory:")
        memory = memory_limit or os.environ.get(MEMORY_ENV) or DEFAULT_MEMORY
        threads = threads or int(os.environ.get(THREADS_ENV) or 0) or os.cpu_count() or 1
        self.con.execute("SET enable_progress_bar = false")
        self.con.execute("SET TimeZone = 'UTC'")  # every frame is UTC (the queries use epoch ms anyway)
        self.con.execute(f"SET threads = {int(threads)}")
        self.con.execute(f"SET memory_limit = '{_quote(memory)}'")
        self.con.execute(f"SET temp_directory = '{_quote(self.temp_dir)}'")
        self.con.execute("SET preserve_insertion_order = false")
        # the queries see the relations registered here only, never a Python variable of that name
        self.con.execute("SET python_enable_replacements = false")
        #: registered Arrow tables (name, table): they must outlive the connection's use of them
        self._keep: list[tuple[str, Any]] = []
        #: (query, seconds) of every query run, in order (what to look at when an analysis is slow)
        self.timings: list[tuple[str, float]] = []

    # --- relations ---------------------------------------------------------------------------
    def frames(self, specs: dict[str, FrameSpec]) -> Engine:
        """Register the four frames as views with ``pos`` and ``ts_ms`` (see the module docs)."""
        for name in FRAME_NAMES:
            columns = list(FRAMES[name])
            spec = specs.get(name)
            if isinstance(spec, Path):
                src = self._parquet(name, spec, columns)
            else:
                table = _arrow(spec if spec is not None else pd.DataFrame(), name, columns)
                self.register(f"{name}_frame", table)
                src = f"{name}_frame"
            ts = "ts" if "ts" in columns else "enqueued_at"
            self.con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT *, epoch_ms({ts}) AS ts_ms FROM {src}")
        return self

    def _parquet(self, name: str, path: Path, columns: list[str]) -> str:
        """The relation of frame ``name`` read in place from ``path``, with ``pos``; documented
        columns the file lacks (a bundle of an older release) are typed nulls, as ``conform`` makes them."""
        import pyarrow.parquet as pq

        have = set(pq.read_schema(path).names)
        missing = [c for c in columns if c not in have]
        scan = (
            f"SELECT * EXCLUDE (file_row_number), file_row_number AS pos "
            f"FROM read_parquet('{_quote(str(path))}', file_row_number = true)"
        )
        if not missing:
            return f"({scan})"
        self.register(f"{name}_missing", pa.table({c: pa.nulls(1, FRAMES[name][c]) for c in missing}))
        return f"({scan} CROSS JOIN {name}_missing)"

    def register(self, name: str, data: pd.DataFrame | pa.Table) -> None:
        """Make ``data`` the relation ``name`` (replacing an earlier one)."""
        table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
        self._keep.append((name, table))
        self.con.register(name, table)

    def keep_only(self, *tables: str) -> None:
        """Let go of every relation registered from memory and every temp table but the temp tables
        ``tables`` (the memory they hold goes back: a step that runs no more aggregates over them)."""
        for name, _table in self._keep:
            self.con.unregister(name)
        self._keep.clear()
        temp = self.con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()
        for (name,) in temp:
            if name not in tables:
                self.con.execute(f"DROP TABLE {ident(name)}")

    def materialize(self, name: str, query: str, **params: Any) -> int:
        """``CREATE TEMP TABLE name AS <query>`` (a query name); returns its row count."""
        t0 = time.perf_counter()
        self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS {query_text(query)}", params or None)
        rows = self.con.execute(f"SELECT count(*) FROM {name}").fetchall()  # all: the result is done
        self.timings.append((query, time.perf_counter() - t0))
        return int(rows[0][0]) if rows else 0

    # --- queries -----------------------------------------------------------------------------
    def df(self, query: str, **params: Any) -> pd.DataFrame:
        """The result of query ``query`` (a name) as a pandas frame."""
        t0 = time.perf_counter()
        out = self.con.execute(query_text(query), params or None).df()
        self.timings.append((query, time.perf_counter() - t0))
        return out

    def one(self, query: str, **params: Any) -> dict[str, Any]:
        """The single row of query ``query`` as a dict."""
        t0 = time.perf_counter()
        cur = self.con.execute(query_text(query), params or None)
        names = [d[0] for d in cur.description or []]
        rows = cur.fetchall()
        self.timings.append((query, time.perf_counter() - t0))
        return dict(zip(names, rows[0] if rows else [None] * len(names), strict=True))

    def count(self, relation: str) -> int:
        rows = self.con.execute(f"SELECT count(*) FROM {relation}").fetchall()  # all: the result is done
        return int(rows[0][0]) if rows else 0

    def close(self) -> None:
        self.con.close()
        self._keep.clear()
        if self._cleanup is not None:
            self._cleanup()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _quote(text: str) -> str:
    return text.replace("'", "''")


def connect(
    *, threads: int | None = None, memory_limit: str | None = None, temp_dir: str | None = None
) -> Engine:
    """A new :class:`Engine` (all cores unless ``threads``; see the module docs for the memory limit)."""
    return Engine(threads=threads, memory_limit=memory_limit, temp_dir=temp_dir)
