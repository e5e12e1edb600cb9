"""SQL over the evidence: one DuckDB connection per :class:`~edgeinvestigate.evidence.bundle.Evidence`.

>>> ev = ei.Evidence.open("evidence/INC-123")                                         # doctest: +SKIP
>>> ev.sql("SELECT level, count(*) AS n FROM logs GROUP BY ALL ORDER BY n DESC").df()  # doctest: +SKIP
>>> ev.rel("invocations").filter("outcome <> 'ok'").aggregate("count(*)")           # doctest: +SKIP

Every frame is a view: ``invocations``, ``logs``, ``exceptions``, ``dlq``, and the derived frames a
bundle stores (``clusters``, ``cluster_rows``, ``cluster_dlq``, ``cluster_keys``). For a saved bundle
the views read the Parquet files (nothing is loaded into pandas, filters and projections are pushed
into the scan); for evidence in memory (an ``ei.load()`` result) they scan the pandas frames.
Keyword arguments of :meth:`sql` add frames of your own as views (``errors=clusters.assign``).

Connections run with :data:`DEFAULT_THREADS` threads, a memory limit (:data:`DEFAULT_MEMORY_LIMIT`;
``EDGEINVESTIGATE_DUCKDB_THREADS`` / ``EDGEINVESTIGATE_DUCKDB_MEMORY`` override both), spilling to a
private temporary folder, in UTC, and without DuckDB's progress bar (it would print on stdout).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pandas as pd
import pyarrow as pa

from edgeinvestigate.errors import LoadError

if TYPE_CHECKING:
    import duckdb

__all__ = [
    "DEFAULT_MEMORY_LIMIT",
    "DEFAULT_THREADS",
    "connect",
    "ident",
    "memory_limit",
    "out_of_memory",
    "register_frame",
    "view_parquet",
]

DEFAULT_THREADS: Final = 2
DEFAULT_MEMORY_LIMIT: Final = "1GB"
THREADS_ENV: Final = "EDGEINVESTIGATE_DUCKDB_THREADS"
MEMORY_ENV: Final = "EDGEINVESTIGATE_DUCKDB_MEMORY"


def memory_limit(default: str) -> str:
    """DuckDB's memory limit for a step whose own limit is ``default`` (a sort, a scan that holds
    little): :data:`MEMORY_ENV` wins when set."""
    return os.environ.get(MEMORY_ENV) or default


def out_of_memory(doing: str, default: str, exc: Exception, *, after: str = "") -> LoadError:
    """The error of a step (``doing``: "sorting ...", "picking ...") whose DuckDB ran out of its
    memory (``default``: the step's own limit, see :func:`memory_limit`): it says what to raise;
    ``after``: what the hint adds (what was left as it was)."""
    return LoadError(
        f"{doing} ran out of DuckDB's memory: {exc}",
        hint=f"give it more with {MEMORY_ENV} (default {default} for this step; it spills to disk past "
        f"it, but needs some to start){after}",
    )


def connect(
    *, threads: int | None = None, memory_limit: str | None = None, spill: Path | None = None
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection set up for the evidence (see the module docs); ``spill``: the folder it
    spills to past its memory limit (default: a folder of this user's in the system's temp folder)."""
    import duckdb

    n = threads or int(os.environ.get(THREADS_ENV) or DEFAULT_THREADS)
    limit = memory_limit or os.environ.get(MEMORY_ENV) or DEFAULT_MEMORY_LIMIT
    uid = os.getuid() if hasattr(os, "getuid") else 0
    if spill is None:  # only used when spilling
        spill = Path(tempfile.gettempdir()) / f"edgeinvestigate-duckdb-{uid}"
    con = duckdb.connect(
        config={"threads": n, "memory_limit": limit, "temp_directory": str(spill)},
    )
    con.execute("SET enable_progress_bar = false")
    con.execute("SET TimeZone = 'UTC'")  # every frame is UTC; casts and buckets too
    return con


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def view_parquet(con: duckdb.DuckDBPyConnection, name: str, path: Path) -> None:
    """``name`` as a view over one Parquet file."""
    con.execute(f"CREATE OR REPLACE VIEW {ident(name)} AS SELECT * FROM read_parquet({_quote(path)})")


def register_frame(con: duckdb.DuckDBPyConnection, name: str, df: pd.DataFrame) -> None:
    """``name`` as a view over a pandas frame (through Arrow: categoricals stay dictionaries)."""
    con.register(name, pa.Table.from_pandas(df, preserve_index=False))


def register_all(
    con: duckdb.DuckDBPyConnection,
    frames: Mapping[str, pd.DataFrame | pa.Table | Path],
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Views for ``frames`` (a Parquet path, a pandas frame or an Arrow table each) and for
    ``extra`` frames."""
    for name, value in frames.items():
        if isinstance(value, Path):
            view_parquet(con, name, value)
        elif isinstance(value, pa.Table):
            con.register(name, value)
        else:
            register_frame(con, name, value)
    for name, value in (extra or {}).items():
        if isinstance(value, pd.DataFrame):
            register_frame(con, name, value)
        else:
            con.register(name, value)  # an Arrow table, a Polars frame, a relation...
