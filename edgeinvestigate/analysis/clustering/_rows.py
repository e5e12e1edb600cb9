"""Error rows from the evidence frames: what is clustered.

One error row per exception, per ``error``/``warn`` log line (or log line whose structured JSON
carries an ``error`` field, which is used instead of the free text), and per DLQ ``error`` text.
A structured ``error``/``warn`` line without an ``error`` field keeps its text and gets its parts
(event name, message field, keys) in ``structured`` (:mod:`._structured`): it is clustered by them.

Vectorised: the frames are read as Arrow arrays and integer codes (:mod:`._arrow`); Python runs per
row only where it must (the JSON of a line that mentions ``"error"`` or starts like JSON, once per
distinct line). Times stay int64 nanoseconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final

import msgspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from edgeinvestigate.analysis._columns import dlq_time, json_decode, json_values
from edgeinvestigate.analysis.clustering._arrow import (
    Coded,
    coded,
    contains,
    ns_of,
    objects,
    string_array,
    string_chunks,
    taken,
)
from edgeinvestigate.analysis.clustering._structured import StructuredLine, structured_line

if TYPE_CHECKING:
    from edgeinvestigate.evidence.bundle import Evidence

__all__ = [
    "ERROR_LEVELS",
    "FAILURE_LEVELS",
    "SOURCES",
    "ErrorRows",
    "ErrorTexts",
    "error_rows",
    "error_texts",
    "frame_rows",
    "joined_texts",
    "log_texts",
    "structured_error",
]

#: error-row levels that are failures (exceptions, error lines); ``warn`` rows are clustered but are
#: not failures (see :mod:`edgeinvestigate.analysis.rca`)
FAILURE_LEVELS: Final = ("exception", "error")
#: log levels whose free text is clustered (structured lines with an ``error`` field always are)
ERROR_LEVELS: Final = ("error", "warn")
#: the ``source`` of an error row, by its code
SOURCES: Final = ("exception", "log", "dlq")
#: the name of a logs frame's index that holds each line's position in the full logs (the lean logs
#: of :mod:`._lean` hold only some lines)
POSITIONS: Final = "_full_logs_row"


def structured_error(message: str | None, args: str | None) -> str | None:
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


@dataclass
class ErrorTexts:
    """What the grouping kernel needs of the error rows: exceptions first, then log lines, then DLQ
    errors, each in its frame's order. ``source`` codes index :data:`SOURCES`; ``row`` is the
    position in that frame; ``structured`` the parts of the structured lines, by position."""

    source: np.ndarray
    row: np.ndarray
    level: Coded
    text: pa.Array
    structured: dict[int, StructuredLine] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.row)


@dataclass
class ErrorRows(ErrorTexts):
    """The error rows with the columns of their frames: ``ts`` int64 nanoseconds
    (:data:`._arrow.NAT` when missing)."""

    invocation_id: pa.Array = field(default_factory=lambda: pa.nulls(0, pa.string()))
    ts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    stack: Coded = field(default_factory=lambda: Coded.constant(None, 0))
    job_id: pa.Array = field(default_factory=lambda: pa.nulls(0, pa.string()))
    job_type: Coded = field(default_factory=lambda: Coded.constant(None, 0))
    message_id: pa.Array = field(default_factory=lambda: pa.nulls(0, pa.string()))


def error_texts(ev: Evidence, levels: Sequence[str], logged: ErrorTexts | None = None) -> ErrorTexts:
    """The texts of the error rows (see the module docs): what the grouping kernel needs first.
    ``logged``: those of the log lines when computed already (:func:`log_texts` of ``ev.logs``)."""
    if logged is None:
        logged = log_texts(ev.logs, levels)
    parts = [_exception_texts(ev.exceptions), logged, _dlq_texts(ev.dlq)]
    # what making the exceptions' texts took is given back before the parts are joined (a copy)
    pa.default_memory_pool().release_unused()
    return joined_texts(parts)


def joined_texts(parts: Sequence[ErrorTexts | None]) -> ErrorTexts:
    """The error texts ``parts`` one after the other (``None``: none)."""
    found = [p for p in parts if p]
    if not found:
        n0 = np.zeros(0, dtype=np.int64)
        return ErrorTexts(n0.astype(np.int8), n0, Coded.constant(None, 0), pa.nulls(0, pa.string()))
    structured: dict[int, StructuredLine] = {}
    at = 0
    for p in found:
        structured.update({at + i: s for i, s in p.structured.items()})
        at += len(p)
    return ErrorTexts(
        source=np.concatenate([p.source for p in found]),
        row=np.concatenate([p.row for p in found]),
        level=Coded.concat([p.level for p in found]),
        text=pa.concat_arrays([p.text for p in found]),
        structured=structured,
    )


def error_rows(texts: ErrorTexts, ev: Evidence, taken: Callable[[], None] | None = None) -> ErrorRows:
    """The error rows ``texts`` with the columns of their frames (invocation, time, stack, job);
    ``taken`` is called once the rows of every frame are taken, before they are joined (the frames'
    columns can go then: what is taken is a copy)."""
    cols: dict[str, list[Any]] = {
        c: [] for c in ("invocation_id", "ts", "stack", "job_id", "job_type", "message_id")
    }
    for code, frame, columns in (
        (0, ev.exceptions, _exception_columns),
        (1, ev.logs, _log_columns),
        (2, ev.dlq, _dlq_columns),
    ):
        rows = texts.row[texts.source == code]
        if len(rows):
            for c, v in columns(frame, rows).items():
                cols[c].append(v)
    if taken is not None:
        taken()
    if not len(texts):
        return ErrorRows(texts.source, texts.row, texts.level, texts.text, texts.structured)
    return ErrorRows(
        texts.source,
        texts.row,
        texts.level,
        texts.text,
        texts.structured,
        invocation_id=pa.concat_arrays(cols["invocation_id"]),
        ts=np.concatenate(cols["ts"]),
        stack=Coded.concat(cols["stack"]),
        job_id=pa.concat_arrays(cols["job_id"]),
        job_type=Coded.concat(cols["job_type"]),
        message_id=pa.concat_arrays(cols["message_id"]),
    )


def frame_rows(texts: ErrorTexts, logs: pd.DataFrame) -> np.ndarray:
    """Each error row's position in its frame: ``texts.row``, with a log line's taken from the
    index of ``logs`` when that holds the lines' positions in the full logs (:data:`POSITIONS`)."""
    if logs.index.name != POSITIONS:
        return texts.row
    out = texts.row.copy()
    is_log = texts.source == 1
    out[is_log] = logs.index.to_numpy()[texts.row[is_log]]
    return out


def _none(n: int) -> pa.Array:
    return pa.nulls(n, pa.string())


def _texts(
    source: int,
    rows: np.ndarray,
    level: Coded,
    text: pa.Array,
    structured: dict[int, StructuredLine] | None = None,
) -> ErrorTexts:
    return ErrorTexts(
        np.full(len(rows), source, dtype=np.int8), rows.astype(np.int64), level, text, structured or {}
    )


def _coded_rows(s: pd.Series, rows: np.ndarray) -> Coded:
    """The ``rows`` of a column as :class:`Coded`; a categorical through its codes, decoding no row
    (a stack is one per code path: its distinct values are few, its rows many)."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        return coded(pa.array(s).take(pa.array(rows)))
    return coded(string_chunks(s) if len(rows) == len(s) else taken(s, rows))


def _exception_text(name: pa.Array, message: pa.Array) -> pa.Array:
    """``name: message``, or the message alone when it starts with the name (or there is no name);
    the name alone when there is no message. Vectorised once per distinct name."""
    names = coded(name)
    message = pc.fill_null(message, "")
    name = pc.fill_null(name, "")
    keep = pc.equal(name, "").to_numpy(zero_copy_only=False).copy()
    order = np.argsort(names.codes, kind="stable")
    bounds = np.searchsorted(names.codes[order], np.arange(len(names.values) + 1))
    for code, value in enumerate(names.values):
        rows = order[bounds[code] : bounds[code + 1]]
        if value and len(rows):
            keep[rows] = pc.starts_with(message.take(pa.array(rows)), value).to_numpy(zero_copy_only=False)
    joined = pc.if_else(pc.equal(message, ""), name, pc.binary_join_element_wise(name, message, ": "))
    out: pa.Array = pc.if_else(pa.array(keep), message, joined)
    return out


def _exception_texts(exc: pd.DataFrame) -> ErrorTexts | None:
    """Every exception (``name: message``)."""
    n = len(exc)
    if not n:
        return None
    text = _exception_text(string_array(exc["name"]), string_array(exc["message"]))
    return _texts(0, np.arange(n), Coded.constant("exception", n), text)


def _exception_columns(exc: pd.DataFrame, rows: np.ndarray) -> dict[str, Any]:
    n = len(rows)
    return {
        "invocation_id": taken(exc["invocation_id"], rows),
        "ts": ns_of(exc["ts"])[rows],
        "stack": _coded_rows(exc["stack"], rows),
        "job_id": _none(n),
        "job_type": Coded.constant(None, n),
        "message_id": _none(n),
    }


def _lower_levels(level: pd.Series) -> Coded:
    """Each log line's level in lower case (Python's ``str.lower``, once per distinct level), ``""``
    when missing."""
    arr = pa.array(level) if isinstance(level.dtype, pd.CategoricalDtype) else string_array(level)
    levels = coded(arr)
    values = np.asarray(["" if v is None else str(v).lower() for v in levels.values], dtype=object)
    return Coded(levels.codes, values)


#: bytes a text may start or end with and still be JSON after Python's ``strip()``: ASCII whitespace,
#: and any byte of a multi-byte character (it may be a Unicode space): those texts are checked in Python
_MAYBE_SPACE: Final = np.zeros(256, dtype=bool)
_MAYBE_SPACE[[0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x1F, 0x20]] = True
_MAYBE_SPACE[0x80:] = True


#: after ``[``: bytes that may begin an array whose one item is an object (or the JSON text of one):
#: ``{``, a string's ``"``, whitespace; any other (a number, a literal, ``[``, ``]``) cannot
_ITEM_OK: Final = _MAYBE_SPACE.copy()
_ITEM_OK[[0x7B, 0x22]] = True
#: after ``["``: the first character of the string, when it may start with ``{`` after whitespace
_STRING_OK: Final = _MAYBE_SPACE.copy()
_STRING_OK[[0x7B, 0x5C]] = True  # "{" and an escape ("\n", "\u0020")


def _maybe_object(arr: pa.Array) -> np.ndarray:
    """Which texts may hold a JSON object, or an array whose one item is one (what
    :func:`._structured.structured_line` parses): ``text.lstrip()[:1] in ("{", "[")`` exactly
    (Python's whitespace included), ending in ``}`` or ``]`` after whitespace (a text that does not
    cannot parse as one), and not an array whose first item cannot be an object (``["text ...`` as
    raw console arguments are written, ``[1, ...``). Read from the first and last bytes of each
    text; in Python only for the texts that start or end with whitespace or a non-ASCII character."""
    if arr.offset or arr.type != pa.string():
        arr = pa.concat_arrays([arr.cast(pa.string())])
    n = len(arr)
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=n + 1)
    data = arr.buffers()[2]
    out = np.zeros(n, dtype=bool)
    nonempty = np.flatnonzero((offsets[1:] > offsets[:-1]) & arr.is_valid().to_numpy(zero_copy_only=False))
    if data is None or not len(nonempty):
        return out
    raw = np.frombuffer(data, dtype=np.uint8)
    for last, chars, exact in (
        (False, (0x7B, 0x5B), lambda t: t.lstrip()[:1] in ("{", "[")),
        (True, (0x7D, 0x5D), lambda t: t.rstrip()[-1:] in ("}", "]")),
    ):
        byte = raw[offsets[nonempty + 1] - 1] if last else raw[offsets[nonempty]]
        hit = (byte == chars[0]) | (byte == chars[1])
        maybe = _MAYBE_SPACE[byte] & ~hit
        if maybe.any():
            hit[maybe] = [exact(t) for t in objects(arr.take(pa.array(nonempty[maybe])))]
        nonempty = nonempty[hit]
    # arrays (starting with "[" right away, so at least "[" and "]"): look at their first item
    start = offsets[nonempty]
    array = raw[start] == 0x5B
    second = raw[np.where(array, start + 1, start)]
    third = raw[np.where(array & (second == 0x22), start + 2, start)]  # "[" '"' ... "]": 3+ bytes
    cannot = array & (~_ITEM_OK[second] | ((second == 0x22) & ~_STRING_OK[third]))
    out[nonempty[~cannot]] = True
    return out


#: rows whose texts are Python strings at a time in :func:`_per_distinct`
DISTINCT_CHUNK: Final = 64 * 1024


def _per_distinct(
    fn: Any, message: pa.Array | pa.ChunkedArray, args: pa.Array | pa.ChunkedArray, at: np.ndarray
) -> list[Any]:
    """``fn(message, args)`` of the rows ``at``, computed once per distinct pair (in pieces of
    :data:`DISTINCT_CHUNK` rows: only those rows' texts are Python strings at a time, and ``fn``'s
    results, which are short, are what is kept)."""
    out: list[Any] = []
    for lo in range(0, len(at), DISTINCT_CHUNK):
        rows = at[lo : lo + DISTINCT_CHUNK]
        seen: dict[tuple[Any, Any], Any] = {}
        out.extend(
            seen[(m, a)] if (m, a) in seen else seen.setdefault((m, a), fn(m, a))
            for m, a in zip(objects(taken(message, rows)), objects(taken(args, rows)), strict=True)
        )
    return out


def log_texts(logs: pd.DataFrame, levels: Sequence[str]) -> ErrorTexts | None:
    """Log lines of ``levels``, and any line whose structured JSON has an ``error`` field (that field
    is the text)."""
    if not len(logs):
        return None
    level = _lower_levels(logs["level"])
    message = string_chunks(logs["message"])
    args = string_chunks(logs["args"])
    maybe = contains(message, '"error"') | contains(args, '"error"')
    wanted = np.asarray([v in list(levels) for v in level.values], dtype=bool)
    take = wanted[level.codes]
    errors: dict[int, str] = {}
    if maybe.any():
        idx = np.flatnonzero(maybe)
        found = _per_distinct(structured_error, message, args, idx)
        errors = {int(i): t for i, t in zip(idx, found, strict=True) if t is not None}
        if errors:
            take = take.copy()
            take[np.fromiter(errors, dtype=np.int64, count=len(errors))] = True
    if not take.any():
        return None
    rows = np.flatnonzero(take)
    margs, mtext = taken(args, rows), taken(message, rows)
    text = mtext
    has_error = np.zeros(len(rows), dtype=bool)
    if errors:  # the error field replaces the free text of those lines
        where = np.searchsorted(rows, np.fromiter(errors, dtype=np.int64, count=len(errors)))
        has_error[where] = True
        fill = np.zeros(len(rows), dtype=np.int64)
        fill[where] = np.arange(len(where))
        values = pa.array(list(errors.values()), pa.string()).take(pa.array(fill))
        text = pc.if_else(pa.array(has_error), values, mtext)
    json_like = (_maybe_object(mtext) | _maybe_object(margs)) & ~has_error
    structured: dict[int, StructuredLine] = {}
    at = np.flatnonzero(json_like)
    if len(at):
        shapes = _per_distinct(structured_line, mtext, margs, at)
        structured = {int(i): s for i, s in zip(at, shapes, strict=True) if s is not None}
    return _texts(1, rows, level.take(rows), text, structured)


def _log_columns(logs: pd.DataFrame, rows: np.ndarray) -> dict[str, Any]:
    return {
        "invocation_id": taken(logs["invocation_id"], rows),
        "ts": ns_of(logs["ts"])[rows],
        "stack": Coded.constant(None, len(rows)),
        "job_id": taken(logs["job_id"], rows),
        "job_type": _coded_rows(logs["job_type"], rows),
        "message_id": taken(logs["message_id"], rows),
    }


def _dlq_texts(dlq: pd.DataFrame) -> ErrorTexts | None:
    """The ``error`` text of DLQ messages sent as ``{original, error}`` envelopes."""
    if not len(dlq):
        return None
    err = string_array(dlq["error"])
    take = err.is_valid().to_numpy(zero_copy_only=False)
    if not take.any():
        return None
    rows = np.flatnonzero(take)
    return _texts(2, rows, Coded.constant("dlq", len(rows)), err.take(pa.array(rows)))


def _dlq_columns(dlq: pd.DataFrame, rows: np.ndarray) -> dict[str, Any]:
    n = len(rows)
    return {
        "invocation_id": _none(n),
        "ts": ns_of(dlq_time(dlq))[rows],
        "stack": Coded.constant(None, n),
        "job_id": taken(dlq["job_id"], rows),
        "job_type": _coded_rows(dlq["job_type"], rows),
        "message_id": taken(dlq["message_id"], rows),
    }
