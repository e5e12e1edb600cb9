"""The spool: telemetry files loaded straight into frame files, for a bundle about to be written.

``collect`` and ``investigate`` write what they load to a bundle. Held in pandas, a million Logpush
events take about 1.3 GB before masking, sorting and clustering add their copies. With a spool (a
folder of its own, next to the bundle), each file is loaded (in this process or a worker process),
conformed to its frames' Arrow schema, its credentials masked, and written as Parquet parts as soon
as it is loaded; DuckDB then sorts the parts into the frame files in storage order (memory limited,
spilling to disk). The evidence holds those files as frames read on first use, and
:meth:`~edgeinvestigate.evidence.bundle.Evidence.save` copies them into the bundle as they are.

The frames are exactly those of :func:`~edgeinvestigate.evidence.bundle.load`, credentials masked
(:func:`~edgeinvestigate.evidence._secrets.mask_secrets`) and sorted for storage (the tests compare
them). The spool is used where that holds without having every frame at hand: local files of one
telemetry format. Two formats may hold the same invocations, which ``load`` drops across formats,
so mixed formats (and ``s3://`` archives) load in memory (:func:`spool_load` returns ``None``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Final

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from edgeinvestigate.errors import LoadError
from edgeinvestigate.evidence._frames import SORTED_FRAMES, StoredFrame
from edgeinvestigate.evidence._loading import PathSpec, load_results, plan_files, raise_error
from edgeinvestigate.evidence._secrets import mask_table
from edgeinvestigate.evidence._sql import connect, memory_limit, out_of_memory
from edgeinvestigate.evidence._store import ROW_GROUP_ROWS, write_frame
from edgeinvestigate.evidence.bundle import Evidence
from edgeinvestigate.models.credentials import env_secrets
from edgeinvestigate.models.frames import FRAMES, arrow_schema, conform, dictionary_columns, empty_frame
from edgeinvestigate.models.load_report import LoadReport
from edgeinvestigate.sources.archive import split_archive_specs
from edgeinvestigate.sources.files._context import ALL_FRAMES
from edgeinvestigate.sources.registry import sniff_file

__all__ = ["SPOOL_MEMORY_LIMIT", "Spooled", "canonical_table", "spool_load", "write_part"]

#: DuckDB's memory for sorting the parts into the frame files (it spills past it);
#: ``EDGEINVESTIGATE_DUCKDB_MEMORY`` sets it too
SPOOL_MEMORY_LIMIT: Final = "640MB"


@dataclass
class Spooled:
    """What :func:`spool_load` made: the evidence (its telemetry frames in ``spool/frames/``) and
    the credentials masked per frame (``None`` when they were kept)."""

    evidence: Evidence
    masked: dict[str, int] | None = field(default=None)


def canonical_table(table: pa.Table, name: str) -> pa.Table:
    """``table`` with the canonical columns, order and Arrow types of frame ``name`` (what
    :func:`~edgeinvestigate.models.frames.conform` makes, before pandas: dictionary columns decoded,
    missing columns null, extra columns dropped)."""
    cols = []
    for col, typ in FRAMES[name].items():
        if col not in table.column_names:
            cols.append(pa.nulls(table.num_rows, type=typ))
            continue
        values = table.column(col)
        if pa.types.is_dictionary(values.type):
            values = values.cast(values.type.value_type)
        cols.append(values if values.type == typ else values.cast(typ))
    return pa.table(cols, schema=arrow_schema(name))


def write_part(prefix: Path, tables: dict[str, pa.Table], *, mask: bool) -> dict[str, Any]:
    """One loaded file's telemetry tables as Parquet parts ``prefix.<frame>.parquet`` (canonical,
    credentials masked unless not ``mask``). Runs in whichever process loaded the file; returns the
    files, the credentials masked per frame, and the ``error`` that stopped the writing (a full disk,
    say: reported by the process that reads the results, as data, so a worker's error is not lost)."""
    secrets = env_secrets() if mask else []
    files: dict[str, str] = {}
    masked: dict[str, int] = {}
    for name in SORTED_FRAMES:
        table = tables.get(name)
        if table is None or not table.num_rows:
            continue
        table = canonical_table(table, name)
        if mask:
            table, masked[name] = mask_table(table, name, secrets)
        path = f"{prefix}.{name}.parquet"
        try:
            pq.write_table(table, path, compression="lz4")
        except OSError as exc:
            return {"files": files, "masked": masked, "error": f"{path}: {exc.strerror or exc}"}
        files[name] = path
    return {"files": files, "masked": masked, "error": None}


def _one_format(paths: PathSpec | Iterable[PathSpec]) -> bool:
    """Whether the inputs are local files of at most one telemetry format (sniffed where not given)."""
    urls, local = split_archive_specs(paths, None)
    if urls:
        return False
    formats = set()
    for job in plan_files(local, None):
        name = job.source
        if not name:
            try:
                name = sniff_file(job.path) or ""
            except LoadError:
                name = ""  # not telemetry: load reports it
        if name:
            formats.add(name)
    return len(formats) <= 1


def spool_load(
    paths: PathSpec | Iterable[PathSpec],
    spool: Path,
    *,
    since: Any = None,
    until: Any = None,
    strict: bool = False,
    jobs: int | None = None,
    max_record_bytes: int,
    mask: bool = True,
) -> Spooled | None:
    """:func:`~edgeinvestigate.evidence.bundle.load` (then masking and sorting) through the folder
    ``spool`` (see the module docs); ``None`` when the inputs must be loaded in memory."""
    import duckdb

    paths = [paths] if isinstance(paths, str | os.PathLike | tuple) else list(paths)  # read twice
    if not _one_format(paths):
        return None
    parts_dir = spool / "parts"
    parts_dir.mkdir(parents=True, exist_ok=True)
    write = partial(write_part, mask=mask)
    loaded = load_results(
        paths, since, until, strict, None, ALL_FRAMES, jobs, max_record_bytes, None,
        write=write, spool=parts_dir,
    )  # fmt: skip
    report = LoadReport()
    parts: dict[str, list[tuple[int, str]]] = {n: [] for n in SORTED_FRAMES}
    masked = dict.fromkeys(SORTED_FRAMES, 0)
    for k, (written, file_report, err) in enumerate(loaded.results):
        if err is not None:
            raise_error(err)
        report.files.append(file_report)
        if written is not None:
            if written["error"]:
                raise _spool_error(spool, written["error"], file_report.path)
            for name, path in written["files"].items():
                parts[name].append((k, path))
            for name, n in written["masked"].items():
                masked[name] += n
    frames_dir = spool / "frames"
    frames_dir.mkdir(exist_ok=True)
    frames: dict[str, Any] = {}  # frames read on first use
    for name in SORTED_FRAMES:
        dest = frames_dir / f"{name}.parquet"
        try:
            rows = sort_parts(parts[name], name, dest)
        except duckdb.OutOfMemoryException as exc:
            doing = f"sorting the {name} frame in the spool {spool}"
            raise out_of_memory(doing, SPOOL_MEMORY_LIMIT, exc, after="; nothing was written") from exc
        except (OSError, duckdb.Error) as exc:
            raise _spool_error(spool, f"sorting the {name} frame: {exc}") from exc
        for _, path in parts[name]:
            os.unlink(path)
        frames[name] = StoredFrame(
            name=name, path=dest, rows=rows, reader=partial(_read, dest, name), in_storage_order=True
        )
    ev = Evidence(
        **frames,
        dlq=empty_frame("dlq"),
        report=report,
        manifest=loaded.manifest(report, strict),
    )
    return Spooled(ev, masked if mask else None)


def _spool_error(spool: Path, what: str, source: str = "") -> LoadError:
    return LoadError(
        f"cannot write the telemetry to the spool {spool}"
        + (f" while loading {source}" if source else "")
        + f": {what}",
        hint="the spool is a temporary folder beside the bundle (--out) and holds about the size of the "
        "bundle: free space on that disk or choose another --out; nothing was written",
    )


def sort_parts(parts: list[tuple[int, str]], name: str, dest: Path) -> int:
    """Write the parts (``(part number, file)``) of frame ``name`` to ``dest`` in storage order: by
    ``ts`` (missing last), then part, then row, as a stable sort of the parts in order would. Returns
    the rows written."""
    if not parts:
        write_frame(empty_frame(name), dest)
        return 0
    schema = arrow_schema(name)
    # spilling beside the parts (the bundle's disk), not in the system's temp folder (often memory)
    con = connect(memory_limit=memory_limit(SPOOL_MEMORY_LIMIT), spill=dest.parent / "sort")
    try:
        con.execute("CREATE TEMP TABLE part_order (filename VARCHAR, part INTEGER)")
        con.executemany("INSERT INTO part_order VALUES (?, ?)", [[path, k] for k, path in parts])
        columns = ", ".join(f't."{c}"' for c in schema.names)
        reader = con.sql(
            f"SELECT {columns} FROM read_parquet(?, filename = true, file_row_number = true) t "
            "JOIN part_order p ON t.filename = p.filename "
            "ORDER BY t.ts ASC NULLS LAST, p.part, t.file_row_number",
            params=[[path for _, path in parts]],
        ).to_arrow_reader(ROW_GROUP_ROWS)
        rows = 0
        with pq.ParquetWriter(
            dest,
            schema,
            compression="zstd",
            write_statistics=True,
            coerce_timestamps="ms",
            allow_truncated_timestamps=False,
        ) as writer:
            for group in _row_groups(reader, schema):
                writer.write_table(group, row_group_size=ROW_GROUP_ROWS)
                rows += group.num_rows
    finally:
        con.close()
    return rows


def _row_groups(reader: pa.RecordBatchReader, schema: pa.Schema) -> Iterator[pa.Table]:
    """The rows of ``reader`` (cast to ``schema``) in tables of :data:`ROW_GROUP_ROWS` rows (the
    last one smaller): DuckDB hands out batches of its own size."""
    held: list[pa.RecordBatch] = []
    n = 0
    for batch in reader:
        held.append(batch.cast(schema))
        n += batch.num_rows
        while n >= ROW_GROUP_ROWS:
            table = pa.Table.from_batches(held, schema=schema)
            yield table.slice(0, ROW_GROUP_ROWS)
            rest = table.slice(ROW_GROUP_ROWS)
            held, n = rest.to_batches(), rest.num_rows
    if n:
        yield pa.Table.from_batches(held, schema=schema)


def _read(path: Path, name: str) -> pd.DataFrame:
    df = conform(pq.read_table(path, pre_buffer=False, read_dictionary=dictionary_columns(name)), name)
    pa.default_memory_pool().release_unused()  # the file's pages, decoded: given back
    return df
