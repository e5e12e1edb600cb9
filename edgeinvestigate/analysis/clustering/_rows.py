"""Error rows from the evidence frames: what is clustered, and the invocation context of each row.

One error row per exception, per ``error``/``warn`` log line (or log line whose structured JSON
carries an ``error`` field, which is used instead of the free text), and per DLQ ``error`` text.

Vectorised: the frames are read as Arrow arrays and numpy codes; Python runs per row only where it
must (the ``name: message`` text of an exception, the JSON of a line that mentions ``"error"``).
Timestamps stay int64 nanoseconds until the one conversion at the end.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import msgspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from edgeinvestigate.analysis._columns import dlq_time, json_decode, json_values
from edgeinvestigate.analysis.clustering._ids import codes_of
from edgeinvestigate.analysis.deploys import log_versions

if TYPE_CHECKING:
    from edgeinvestigate.evidence.bundle import Evidence

__all__ = [
    "CONTEXT_COLUMNS",
    "ERROR_LEVELS",
    "FAILURE_LEVELS",
    "ROW_COLUMNS",
    "add_context",
    "coded_objects",
    "error_rows",
    "objects",
    "string_array",
    "utc_column",
]

#: error-row levels that are failures (exceptions, error lines); ``warn`` rows are clustered but are
#: not failures (see :mod:`edgeinvestigate.analysis.rca`)
FAILURE_LEVELS: Final = ("exception", "error")
#: log levels whose free text is clustered (structured lines with an ``error`` field always are)
ERROR_LEVELS: Final = ("error", "warn")
_NAT: Final = np.iinfo(np.int64).min


def _structured_error(message: str | None, args: str | None) -> str | None:
    """The ``error`` field of a structured log line (its message if it is an object), else None."""
    for text in (message, args):
        if not text or '"error"' not in text:
            continue
        for obj in json_values(text):
            if isinstance(obj, str) and obj.lstrip().startswith("{"):
                try:
                    obj = json_decode(obj)
                except (ValueError, msgspec.DecodeError):
                    continue
            if isinstance(obj, dict) and obj.get("error") not in (None, ""):
                err = obj["error"]
                if isinstance(err, dict):
                    name, msg = err.get("name"), err.get("message")
                    err = f"{name}: {msg}" if name and msg else (msg or json.dumps(err, sort_keys=True))
                return str(err)
    return None


#: the columns of the error rows, in order
ROW_COLUMNS: Final = (
    "source",
    "row",
    "invocation_id",
    "ts",
    "level",
    "text",
    "stack",
    "job_id",
    "job_type",
    "message_id",
)
#: the invocation context :func:`add_context` adds
CONTEXT_COLUMNS: Final = ("script", "script_version", "outcome", "queue")


def string_array(s: pd.Series) -> pa.Array:
    """A column (arrow-backed, categorical or object) as one Arrow string array, nulls kept."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        arr: Any = pa.array(s)
    elif hasattr(s.array, "__arrow_array__"):
        arr = s.array.__arrow_array__()
    else:
        arr = pa.array(s.astype(object).where(s.notna(), None), type=pa.string(), from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if arr.type != pa.string():
        arr = arr.cast(pa.string())
    return arr


def _taken(s: pd.Series, sel: pa.Array) -> pa.Array:
    """The rows ``sel`` of a column as an Arrow string array (a categorical is taken by its codes
    first, and only those rows are decoded)."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        arr: pa.Array = pa.array(s).take(sel)
        return arr.dictionary_decode().cast(pa.string())
    return string_array(s).take(sel)


def _lower_level(level: pd.Series) -> pa.Array:
    """Each log line's level in lower case, ``""`` when missing (a categorical through its categories)."""
    if isinstance(level.dtype, pd.CategoricalDtype):
        arr = pa.array(level)
        lowered = pc.utf8_lower(arr.dictionary.cast(pa.string()))
        arr = pa.DictionaryArray.from_arrays(arr.indices, lowered)
        return pc.fill_null(arr.dictionary_decode(), "")
    return pc.fill_null(pc.utf8_lower(string_array(level)), "")


def objects(arr: pa.Array) -> np.ndarray:
    """Python strings (``None`` for nulls) of an Arrow string array."""
    out: np.ndarray = arr.to_numpy(zero_copy_only=False)
    return out


def coded_objects(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For a column with few distinct values (a level, a script name): its Python strings (each
    distinct one a single object shared by its rows), its codes (``-1`` for null) and the distinct
    values."""
    enc = pc.dictionary_encode(arr)
    values = np.asarray([*enc.dictionary.to_pylist(), None], dtype=object)
    codes = pc.fill_null(enc.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    return values[codes], codes, values[:-1]


def _ns(s: pd.Series) -> np.ndarray:
    """A timestamp column as int64 nanoseconds since the epoch (:data:`_NAT` for missing)."""
    if isinstance(s.dtype, pd.ArrowDtype):
        arr = s.array.__arrow_array__()
        arr = pc.cast(arr, pa.timestamp("ns", tz="UTC")).cast(pa.int64())
        return pc.fill_null(arr, _NAT).to_numpy()
    values = pd.DatetimeIndex(pd.to_datetime(s, utc=True)).as_unit("ns")
    return values.asi8.copy()


def _const(value: str | None, n: int) -> pa.Array:
    return pa.repeat(pa.scalar(value, pa.string()), n)


def error_rows(ev: Evidence, levels: Sequence[str]) -> dict[str, Any]:
    """One row per clustered error, as columns (:data:`ROW_COLUMNS`): Arrow string arrays, and
    ``row``/``ts`` as numpy int64 (``ts`` in nanoseconds, missing as the minimum)."""
    found = [p for p in (_exception_rows(ev.exceptions), _log_rows(ev.logs, levels), _dlq_rows(ev.dlq)) if p]
    out: dict[str, Any] = {}
    for col in ROW_COLUMNS:
        if col in ("row", "ts"):
            parts = [p[col] for p in found]
            out[col] = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        else:
            out[col] = pa.concat_arrays([p[col] for p in found]) if found else pa.array([], pa.string())
    return out


def utc_column(ns: np.ndarray) -> pd.Series:
    """int64 nanoseconds (``NaT`` as the minimum) as a ``datetime64[ns, UTC]`` column."""
    return pd.Series(ns.view("datetime64[ns]")).dt.tz_localize("UTC")


def _exception_text(name: pa.Array, message: pa.Array) -> pa.Array:
    """``name: message``, or the message alone when it starts with the name (or there is no name);
    the name alone when there is no message. Vectorised once per distinct name."""
    name = pc.fill_null(name, "")
    message = pc.fill_null(message, "")
    distinct = pc.unique(name).to_pylist()
    if len(distinct) > 1000:  # names that are really messages: per row
        texts = [
            m if not a or m.startswith(a) else (f"{a}: {m}" if m else a)
            for a, m in zip(objects(name), objects(message), strict=True)
        ]
        return pa.array(texts, type=pa.string())
    keep = pc.equal(name, "")
    for value in distinct:
        if value:
            keep = pc.or_(keep, pc.and_(pc.equal(name, value), pc.starts_with(message, value)))
    joined = pc.if_else(pc.equal(message, ""), name, pc.binary_join_element_wise(name, message, ": "))
    return pc.if_else(keep, message, joined)


def _exception_rows(exc: pd.DataFrame) -> dict[str, Any] | None:
    """Every exception (``name: message``, with its stack)."""
    n = len(exc)
    if not n:
        return None
    return {
        "source": _const("exception", n),
        "row": np.arange(n, dtype=np.int64),
        "invocation_id": string_array(exc["invocation_id"]),
        "ts": _ns(exc["ts"]),
        "level": _const("exception", n),
        "text": _exception_text(string_array(exc["name"]), string_array(exc["message"])),
        "stack": string_array(exc["stack"]),
        "job_id": _const(None, n),
        "job_type": _const(None, n),
        "message_id": _const(None, n),
    }


def _log_rows(logs: pd.DataFrame, levels: Sequence[str]) -> dict[str, Any] | None:
    """Log lines of ``levels``, and any line whose structured JSON has an ``error`` field (that field
    is the text)."""
    if not len(logs):
        return None
    level = _lower_level(logs["level"])
    message = string_array(logs["message"])
    args = string_array(logs["args"])
    maybe = pc.or_(
        pc.fill_null(pc.match_substring(message, '"error"'), False),
        pc.fill_null(pc.match_substring(args, '"error"'), False),
    ).to_numpy(zero_copy_only=False)
    take = pc.is_in(level, value_set=pa.array(list(levels), pa.string())).to_numpy(zero_copy_only=False)
    structured: dict[int, str] = {}
    if maybe.any():
        idx = np.flatnonzero(maybe)
        pos = pa.array(idx)
        found = [
            _structured_error(m, a)
            for m, a in zip(objects(message.take(pos)), objects(args.take(pos)), strict=True)
        ]
        structured = {int(i): t for i, t in zip(idx, found, strict=True) if t is not None}
        if structured:
            take = take.copy()
            take[np.fromiter(structured, dtype=np.int64, count=len(structured))] = True
    if not take.any():
        return None
    rows = np.flatnonzero(take)
    sel = pa.array(rows)
    text = message.take(sel)
    if structured:
        # the error field replaces the free text of those lines
        where = np.searchsorted(rows, np.fromiter(structured, dtype=np.int64, count=len(structured)))
        replaced = np.zeros(len(rows), dtype=bool)
        replaced[where] = True
        fill = np.zeros(len(rows), dtype=np.int64)
        fill[where] = np.arange(len(where))
        errors = pa.array(list(structured.values()), pa.string()).take(pa.array(fill))
        text = pc.if_else(pa.array(replaced), errors, text)
    return {
        "source": _const("log", len(rows)),
        "row": rows.astype(np.int64),
        "invocation_id": _taken(logs["invocation_id"], sel),
        "ts": _ns(logs["ts"])[rows],
        "level": level.take(sel),
        "text": text,
        "stack": _const(None, len(rows)),
        "job_id": _taken(logs["job_id"], sel),
        "job_type": _taken(logs["job_type"], sel),
        "message_id": _taken(logs["message_id"], sel),
    }


def _dlq_rows(dlq: pd.DataFrame) -> dict[str, Any] | None:
    """The ``error`` text of DLQ messages sent as ``{original, error}`` envelopes."""
    if not len(dlq):
        return None
    err = string_array(dlq["error"])
    take = err.is_valid().to_numpy(zero_copy_only=False)
    if not take.any():
        return None
    rows = np.flatnonzero(take)
    sel = pa.array(rows)
    n = len(rows)
    return {
        "source": _const("dlq", n),
        "row": rows.astype(np.int64),
        "invocation_id": _const(None, n),
        "ts": _ns(dlq_time(dlq))[rows],
        "level": _const("dlq", n),
        "text": err.take(sel),
        "stack": _const(None, n),
        "job_id": _taken(dlq["job_id"], sel),
        "job_type": _taken(dlq["job_type"], sel),
        "message_id": _taken(dlq["message_id"], sel),
    }


def _first_of(codes: np.ndarray, n: int, where: np.ndarray | None = None) -> np.ndarray:
    """Per code ``0..n-1``: the position of its first occurrence in ``codes`` (among ``where``), -1
    for none."""
    pos = np.flatnonzero(codes >= 0) if where is None else np.flatnonzero(where & (codes >= 0))
    first = np.full(n, -1, dtype=np.int64)
    first[codes[pos[::-1]]] = pos[::-1]  # the last write wins: the first occurrence
    return first


def add_context(rows: dict[str, Any], ev: Evidence) -> None:
    """Add to the rows their invocation's ``script``, ``script_version``, ``outcome`` and ``queue``,
    and fill ``job_type``/``job_id`` from the invocation where the row has none: the first job type
    its logs name, and its job id when its logs name exactly one (a batch invocation's job-less
    lines belong to no single job).

    ``script_version`` is the invocation's, else the version its structured log lines name (a
    ``deploy``/``version`` field; see :mod:`edgeinvestigate.analysis.deploys`). Also adds
    ``invocation`` (int64: a number per invocation id, -1 for none). The invocation ids of rows,
    invocations and log lines are hashed once, in one pass; the rest is integer work."""
    inv, logs = ev.invocations, ev.logs
    (row_code, inv_code, log_code), n = codes_of(
        rows["invocation_id"], string_array(inv["invocation_id"]), string_array(logs["invocation_id"])
    )
    rows["invocation"] = row_code
    has = row_code >= 0
    at = np.full(len(row_code), -1, dtype=np.int64)
    at[has] = _first_of(inv_code, n)[row_code[has]]  # the row's invocation in ``invocations``
    index = pa.array(np.maximum(at, 0), mask=at < 0)
    for col in CONTEXT_COLUMNS:
        rows[col] = string_array(inv[col]).take(index) if len(inv) else _const(None, len(row_code))
    missing = (at >= 0) & rows["script_version"].is_null().to_numpy(zero_copy_only=False)
    if missing.any() and len(logs):
        # no script_version: the version the invocation's structured log lines name, if any
        named = log_versions(logs, objects(rows["invocation_id"].filter(pa.array(missing))))
        if len(named):
            versions = dict(zip(named["invocation_id"], named["version"], strict=True))
            ids = objects(rows["invocation_id"])
            found = np.asarray(
                [versions.get(i) if m else None for i, m in zip(ids, missing, strict=True)], dtype=object
            )
            rows["script_version"] = pc.coalesce(
                rows["script_version"], pa.array(found, pa.string(), from_pandas=True)
            )
    lacking = (rows["job_type"].is_null().to_numpy(zero_copy_only=False)) | (
        rows["job_id"].is_null().to_numpy(zero_copy_only=False)
    )
    if (lacking & has).any() and len(logs):
        needed = np.zeros(n, dtype=bool)
        needed[row_code[lacking & has]] = True
        jt, ji = _log_jobs(logs, log_code, needed)
        per_row = pa.array(np.maximum(row_code, 0), mask=row_code < 0)
        rows["job_type"] = pc.coalesce(rows["job_type"], jt.take(per_row))
        rows["job_id"] = pc.coalesce(rows["job_id"], ji.take(per_row))


def _log_jobs(logs: pd.DataFrame, log_code: np.ndarray, needed: np.ndarray) -> tuple[pa.Array, pa.Array]:
    """Per invocation code: the first job type its log lines name, and its job id when they name
    exactly one (only for the ``needed`` codes)."""
    n = len(needed)
    jt = np.full(n, None, dtype=object)
    ji = np.full(n, None, dtype=object)
    wanted = (log_code >= 0) & needed[np.maximum(log_code, 0)]
    types = logs["job_type"]
    if isinstance(types.dtype, pd.CategoricalDtype):  # through the codes: no string per line
        tcode = types.cat.codes.to_numpy()
        names = np.asarray([str(c) for c in types.cat.categories], dtype=object)
    else:
        tcode, uniq = pd.factorize(types.to_numpy(dtype=object), use_na_sentinel=True)
        names = np.asarray(uniq, dtype=object)
    first = _first_of(log_code, n, wanted & (tcode >= 0))
    got = first >= 0
    jt[got] = names[tcode[first[got]]]
    jobs = string_array(logs["job_id"])
    idx = np.flatnonzero(wanted & jobs.is_valid().to_numpy(zero_copy_only=False))
    if len(idx):
        enc = pc.dictionary_encode(jobs.take(pa.array(idx)))
        jcode = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        width = max(1, len(enc.dictionary))
        pairs = pd.unique(log_code[idx] * width + jcode)  # distinct (invocation, job)
        counts = np.bincount(pairs // width, minlength=n)
        only = pairs[counts[pairs // width] == 1]
        ji[only // width] = objects(enc.dictionary.take(pa.array(only % width)))
    return pa.array(jt, pa.string(), from_pandas=True), pa.array(ji, pa.string(), from_pandas=True)
