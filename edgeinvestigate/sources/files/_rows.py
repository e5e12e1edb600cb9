"""The rows a loader builds: column lists for the three frames, turned into pyarrow tables.

Loaders return plain pyarrow tables (:meth:`Rows.to_tables`); :func:`edgeinvestigate.load` conforms
them to :mod:`models.frames` once, after all files are read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Final

import msgspec
import pyarrow as pa
import xxhash

from edgeinvestigate.sources.files._context import FileContext, snippet

__all__ = [
    "EXC_COLS",
    "INV_COLS",
    "LOG_COLS",
    "TS",
    "Rows",
    "arrow_column",
    "canonical_bytes",
    "constant_dictionary",
    "guard_record",
    "record_id",
    "show",
]

_json_encode = msgspec.json.Encoder().encode


def record_id(canonical: bytes) -> str:
    """The stable id of a record: 64-bit xxh3 of its compact JSON bytes, as 16 hex digits."""
    return xxhash.xxh3_64_hexdigest(canonical)


def canonical_bytes(obj: Any) -> bytes:
    """Compact JSON in the key order of the source (what ``JSON.stringify`` writes)."""
    return _json_encode(obj)


INV_COLS: Final = (
    "invocation_id",
    "ts",
    "script",
    "script_version",
    "trigger",
    "queue",
    "batch_size",
    "outcome",
    "failed",
    "cpu_ms",
    "wall_ms",
    "n_logs",
    "n_exceptions",
    "truncated",
    "url",
    "method",
    "status",
    "entrypoint",
    "dispatch_namespace",
    "request_id",
    "ray_id",
)
LOG_COLS: Final = (
    "invocation_id",
    "ts",
    "level",
    "message",
    "args",
    "job_id",
    "job_type",
    "attempt",
    "message_id",
)
EXC_COLS: Final = ("invocation_id", "ts", "name", "message", "stack")

TS = pa.timestamp("ms", tz="UTC")
_TYPES: Final[dict[str, pa.DataType]] = {
    "ts": TS,
    "batch_size": pa.int32(),
    "failed": pa.bool_(),
    "cpu_ms": pa.float64(),
    "wall_ms": pa.float64(),
    "n_logs": pa.int32(),
    "n_exceptions": pa.int32(),
    "truncated": pa.bool_(),
    "status": pa.int32(),
    "attempt": pa.int32(),
}


#: low-cardinality columns (categoricals in the frames): dictionary-encoded where they are built,
#: so the encoding work happens in the loader processes, not in the parent
_DICT_COLS: Final = frozenset(
    {"script", "script_version", "trigger", "queue", "outcome", "level", "job_type", "name"}
)


def arrow_column(name: str, values: list[Any]) -> pa.Array:
    typ = _TYPES.get(name, pa.string())
    if typ is TS:
        return pa.array(values, type=pa.int64()).cast(TS)
    if name in _DICT_COLS:
        return pa.array(values, type=typ).dictionary_encode()
    return pa.array(values, type=typ)


class Rows:
    """Column lists for the three frames of one file, turned into pyarrow tables at the end."""

    def __init__(self) -> None:
        self.inv: dict[str, list[Any]] = {c: [] for c in INV_COLS}
        self.log: dict[str, list[Any]] = {c: [] for c in LOG_COLS}
        self.exc: dict[str, list[Any]] = {c: [] for c in EXC_COLS}

    def mark(self) -> tuple[int, int, int]:
        """The row counts now (see :meth:`rollback`)."""
        return len(self.inv["invocation_id"]), len(self.log["invocation_id"]), len(self.exc["invocation_id"])

    def rollback(self, mark: tuple[int, int, int]) -> None:
        """Drop every row added after :meth:`mark` gave ``mark``."""
        for cols, n in zip((self.inv, self.log, self.exc), mark, strict=True):
            for values in cols.values():
                del values[n:]

    def add_invocation(self, **values: Any) -> None:
        for c in INV_COLS:
            self.inv[c].append(values.get(c))

    def add_log(self, **values: Any) -> None:
        for c in LOG_COLS:
            self.log[c].append(values.get(c))

    def add_exception(self, **values: Any) -> None:
        for c in EXC_COLS:
            self.exc[c].append(values.get(c))

    def to_tables(self, source: str, source_file: str) -> dict[str, pa.Table]:
        n = len(self.inv["invocation_id"])
        inv = {c: arrow_column(c, v) for c, v in self.inv.items()}
        inv["source"] = constant_dictionary(source, n)
        inv["source_file"] = constant_dictionary(source_file, n)
        return {
            "invocations": pa.table(inv),
            "logs": pa.table({c: arrow_column(c, v) for c, v in self.log.items()}),
            "exceptions": pa.table({c: arrow_column(c, v) for c, v in self.exc.items()}),
        }


def constant_dictionary(value: str, n: int) -> pa.Array:
    """``n`` copies of one string as a dictionary array (cheap for source/source_file)."""
    import numpy as np

    return pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(n, dtype=np.int32)), pa.array([value], pa.string())
    )


#: what a hostile record can raise while its fields are read (after it decoded): RecursionError
#: (values nested near the interpreter's limit, when they are encoded or shown), OverflowError (an
#: integer too big for a float), ValueError (an integer too long to print, a value pyarrow refuses)
RECORD_ERRORS: Final = (RecursionError, OverflowError, ValueError)


def show(value: Any) -> str:
    """A short quote of a decoded value for a report (never raises, whatever the value)."""
    try:
        return snippet(canonical_bytes(value))
    except RECORD_ERRORS:
        return f"<{type(value).__name__} nested too deeply to show>"


def guard_record(
    ctx: FileContext,
    rows: Rows,
    line: int,
    add: Callable[[], None],
    *,
    more_lines: Sequence[int] = (),
    uncount: int = 0,
) -> None:
    """Run ``add()`` (which adds one record to ``rows``); when the record makes it raise (see
    :data:`RECORD_ERRORS`), undo what it added to the rows and the report and list the record as
    skipped at ``line`` (and each of ``more_lines``, the other records it was built from; ``uncount``
    of them were counted as read before ``add``): a hostile record costs only itself, never the load."""
    rep = ctx.report
    mark = rows.mark()
    counts = (rep.records, rep.invocations, rep.logs, rep.exceptions, rep.filtered, rep.skipped, rep.n_issues)
    n_listed = len(rep.issues)
    try:
        add()
    except RECORD_ERRORS as exc:
        rows.rollback(mark)
        (rep.records, rep.invocations, rep.logs, rep.exceptions, rep.filtered, rep.skipped, rep.n_issues) = (
            counts
        )
        del rep.issues[n_listed:]
        rep.records -= uncount
        why = "nested too deeply" if isinstance(exc, RecursionError) else f"{type(exc).__name__}: {exc}"
        for n in (line, *more_lines):
            ctx.issue(
                "json",
                f"record could not be read ({why[:200]}); skipped",
                line=n,
                expected="a record of the documented shape",
            )
