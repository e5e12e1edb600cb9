"""The relations the SQL path of :func:`~edgeinvestigate.analysis.rca.analyze` works on: the frames,
the clustered error rows, the versions named in log lines, ``inv`` and ``deliveries``; and the
tenant-like payload fields (a JSON rule, run on the candidate lines SQL picks)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from edgeinvestigate.analysis._columns import as_object
from edgeinvestigate.analysis.deploys import VERSION_KEY_RE, log_versions
from edgeinvestigate.analysis.rca._blast_radius import dlq_payload_fields, log_field

if TYPE_CHECKING:
    from edgeinvestigate.analysis.clustering import Clusters
    from edgeinvestigate.analysis.sql import Engine

__all__ = ["ERROR_COLUMNS", "payload_fields_sql", "register_errors", "register_inputs"]

#: the columns of the ``errors`` relation taken from ``Clusters.assign``
ERROR_COLUMNS = (
    "invocation_id",
    "level",
    "job_id",
    "job_type",
    "script",
    "script_version",
    "queue",
    "cluster_id",
    "source",
)


def _strings(s: pd.Series) -> pa.Array:
    values = s.to_numpy(dtype=object)
    try:
        return pa.array(values, type=pa.string(), from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # not all strings: as the pandas path reads them
        text = s.astype(object).where(s.notna(), None).map(lambda v: v if v is None else str(v))
        return pa.array(text.to_numpy(), type=pa.string(), from_pandas=True)


def register_errors(engine: Engine, errors: pd.DataFrame, table: pa.Table | None = None) -> None:
    """The error rows (``errors``: non-DLQ rows of ``Clusters.assign``, ``ts`` in UTC) as the
    relation ``errors``; ``table``: the same rows as an Arrow table (``Clusters.error_table``),
    whose string columns are taken as they are instead of made again from ``errors``' objects."""
    ts = pd.DatetimeIndex(errors["ts"]) if len(errors) else pd.DatetimeIndex([], tz="UTC")
    ms = ts.as_unit("ms").asi8 if len(ts) else np.zeros(0, dtype=np.int64)
    cols: dict[str, pa.Array | pa.ChunkedArray] = {
        "pos": pa.array(np.arange(len(errors), dtype=np.int64)),
        "ts_ms": pa.array(ms, mask=np.asarray(ts.isna()) if len(ts) else None, type=pa.int64()),
        "row": pa.array(errors["row"].to_numpy(dtype=np.int64) if len(errors) else [], type=pa.int64()),
    }
    for c in ERROR_COLUMNS:
        if table is not None and c in table.column_names and len(table) == len(errors):
            cols[c] = table.column(c)
        else:
            cols[c] = _strings(errors[c]) if c in errors else pa.nulls(len(errors), pa.string())
    engine.register("errors", pa.table(cols))


def register_inputs(engine: Engine, errors: pd.DataFrame, table: pa.Table | None = None) -> int:
    """Register ``errors`` (``table``: see :func:`register_errors`), the versions log lines name,
    and build ``inv`` and ``deliveries``; returns the number of rows of ``inv``."""
    register_errors(engine, errors, table)
    versions = pd.DataFrame()
    if engine.one("unversioned")["n"]:
        candidates = engine.df("version_candidates", key_re=VERSION_KEY_RE)
        versions = log_versions(candidates) if len(candidates) else candidates
    if not len(versions):
        versions = pd.DataFrame({"invocation_id": pd.Series([], dtype=object), "version": []})
    engine.register(
        "log_versions",
        pa.table(
            {"invocation_id": _strings(versions["invocation_id"]), "version": _strings(versions["version"])}
        ),
    )
    engine.materialize("log_jobs", "log_jobs")
    n = engine.materialize("inv", "inv")
    engine.materialize("deliveries", "deliveries")
    return n


def payload_fields_sql(engine: Engine, clusters: Clusters, fields: Sequence[str]) -> pd.DataFrame:
    """:func:`~edgeinvestigate.analysis.rca._blast_radius.find_payload_fields` over the relations: the
    DLQ payloads as there, the log lines of error rows only where SQL finds a quoted field name."""
    columns = ["job_id", "cluster_id", "field", "value", "source"]
    if not fields:
        return pd.DataFrame(columns=columns)
    rows: list[dict[str, Any]] = dlq_payload_fields(clusters.dlq, fields)
    key_re = '"(?:' + "|".join(re.escape(f) for f in fields) + ')"'
    cand = engine.df("payload_candidates", key_re=key_re)
    for job, cid, msg, args in zip(
        as_object(cand["job_id"]), as_object(cand["cluster_id"]), cand["message"], cand["args"], strict=True
    ):
        hit = log_field(msg, args, fields)
        if hit:
            rows.append({"job_id": job, "cluster_id": cid, "field": hit[0], "value": hit[1], "source": "log"})
    return pd.DataFrame(rows, columns=columns)
