"""Columns as the clustering works on them: Arrow string arrays, integer codes, int64 nanoseconds.

The evidence frames keep pyarrow-backed and categorical dtypes; these helpers read them without a
Python object per row. Columns with few distinct values (a level, a script, a template) are
:class:`Coded`: a code per row and the distinct values, so a per-cluster question is integer work
and the Python objects of a result column are shared by the rows that hold the same value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

__all__ = [
    "NAT",
    "Coded",
    "coded",
    "contains",
    "first_of",
    "ns_of",
    "objects",
    "string_array",
    "string_chunks",
    "taken",
    "utc_column",
]

#: a missing time in int64 nanoseconds (what ``NaT`` is)
NAT: Final = np.iinfo(np.int64).min


def string_chunks(s: pd.Series) -> pa.ChunkedArray:
    """A column (arrow-backed, categorical or object) as Arrow strings in the chunks it holds (the
    row groups of a saved bundle: nothing is copied), nulls kept."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        arr: Any = pa.array(s)
    elif hasattr(s.array, "__arrow_array__"):
        arr = s.array.__arrow_array__()
    else:
        arr = pa.array(s.astype(object).where(s.notna(), None), type=pa.string(), from_pandas=True)
    if not isinstance(arr, pa.ChunkedArray):
        arr = pa.chunked_array([arr])
    if pa.types.is_dictionary(arr.type):
        arr = pa.chunked_array([c.dictionary_decode() for c in arr.chunks], arr.type.value_type)
    if arr.type != pa.string():
        arr = arr.cast(pa.string())
    return arr


def string_array(s: pd.Series) -> pa.Array:
    """A column (arrow-backed, categorical or object) as one Arrow string array, nulls kept."""
    arr = string_chunks(s)
    return arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)


def taken(s: pd.Series | pa.Array | pa.ChunkedArray, rows: np.ndarray) -> pa.Array:
    """The ``rows`` of a column as an Arrow string array (a categorical is taken by its codes first,
    and only those rows are decoded; chunks are not joined first)."""
    sel = pa.array(rows, pa.int64())
    if isinstance(s, pa.Array):
        return s.take(sel)
    if isinstance(s, pd.Series) and isinstance(s.dtype, pd.CategoricalDtype):
        arr: pa.Array = pa.array(s).take(sel)
        return arr.dictionary_decode().cast(pa.string())
    chunks = s if isinstance(s, pa.ChunkedArray) else string_chunks(s)
    out = chunks.take(sel)
    return out.combine_chunks() if out.num_chunks != 1 else out.chunk(0)


def objects(arr: pa.Array) -> np.ndarray:
    """Python strings (``None`` for nulls) of an Arrow string array."""
    out: np.ndarray = arr.to_numpy(zero_copy_only=False)
    return out


def ns_of(s: pd.Series) -> np.ndarray:
    """A timestamp column as int64 nanoseconds since the epoch (:data:`NAT` for missing)."""
    if isinstance(s.dtype, pd.ArrowDtype) and pa.types.is_timestamp(s.dtype.pyarrow_dtype):
        arr = s.array.__arrow_array__()
        arr = pc.cast(arr, pa.timestamp("ns", tz="UTC")).cast(pa.int64())
        out: np.ndarray = pc.fill_null(arr, NAT).to_numpy()
        return out.astype(np.int64, copy=False)
    values = pd.DatetimeIndex(pd.to_datetime(s, utc=True)).as_unit("ns")
    return values.asi8.copy()


def utc_column(ns: np.ndarray) -> pd.Series:
    """int64 nanoseconds (``NaT`` as :data:`NAT`) as a ``datetime64[ns, UTC]`` column."""
    return pd.Series(ns.view("datetime64[ns]")).dt.tz_localize("UTC")


def first_of(codes: np.ndarray, n: int, where: np.ndarray | None = None) -> np.ndarray:
    """Per code ``0..n-1``: the position of its first occurrence in ``codes`` (among ``where``),
    ``-1`` for none (negative codes are never counted)."""
    ok = codes >= 0 if where is None else where & (codes >= 0)
    pos = np.flatnonzero(ok)[::-1]
    first = np.full(n, -1, dtype=np.int64)
    first[codes[pos]] = pos  # the last write wins: the first occurrence
    return first


@dataclass
class Coded:
    """A column with few distinct values: ``values[codes]`` are its Python objects.

    ``values`` may hold the same value twice and may hold ``None`` and ``nan`` (a missing value, and
    a value that a left join did not find: the distinction pandas merges make)."""

    codes: np.ndarray
    values: np.ndarray

    def objects(self) -> np.ndarray:
        out: np.ndarray = self.values[self.codes]
        return out

    def take(self, rows: np.ndarray) -> Coded:
        return Coded(self.codes[rows], self.values)

    @staticmethod
    def constant(value: Any, n: int) -> Coded:
        return Coded(np.zeros(n, dtype=np.int64), np.asarray([value], dtype=object))

    @staticmethod
    def concat(parts: list[Coded]) -> Coded:
        if not parts:
            return Coded(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=object))
        offsets = np.cumsum([0] + [len(p.values) for p in parts])
        codes = np.concatenate([p.codes + off for p, off in zip(parts, offsets, strict=False)])
        return Coded(codes, np.concatenate([p.values for p in parts]))

    def where_missing(self, other: Coded) -> Coded:
        """This column where its value is not missing (``None``/``nan``), else ``other``'s."""
        missing = np.asarray(
            [v is None or (isinstance(v, float) and np.isnan(v)) for v in self.values], dtype=bool
        )
        fill = missing[self.codes] if len(self.codes) else np.zeros(0, dtype=bool)
        if not fill.any():
            return self
        codes = self.codes.copy()
        codes[fill] = other.codes[fill] + len(self.values)
        return Coded(codes, np.concatenate([self.values, other.values]))


def coded(arr: pa.Array) -> Coded:
    """An Arrow array (a dictionary array included) as :class:`Coded`, nulls as ``None``."""
    if pa.types.is_dictionary(arr.type):
        dictionary, indices = arr.dictionary, arr.indices
    else:
        enc = pc.dictionary_encode(arr)
        dictionary, indices = enc.dictionary, enc.indices
    values = np.asarray([*dictionary.to_pylist(), None], dtype=object)
    codes = pc.fill_null(indices, len(values) - 1).to_numpy(zero_copy_only=False).astype(np.int64)
    return Coded(codes, values)


def contains(arr: pa.Array | pa.ChunkedArray, needle: str) -> np.ndarray:
    """Whether each text holds ``needle`` (null: False): one regular-expression scan of the string
    data, several times faster than ``pc.match_substring``. A match that runs from one text into
    the next is no match, and the text after it is checked on its own (a match in it may overlap)."""
    if isinstance(arr, pa.ChunkedArray):
        parts = [contains(c, needle) for c in arr.chunks]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)
    if arr.type != pa.string():
        arr = arr.cast(pa.string())
    n = len(arr)
    out = np.zeros(n, dtype=bool)
    data = arr.buffers()[2] if n else None
    if data is None or arr.null_count == n:
        return out
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int32, count=n + 1, offset=arr.offset * 4)
    size = len(needle.encode("utf-8"))
    view = memoryview(data)[offsets[0] : offsets[-1]]
    starts = np.fromiter(
        (m.start() for m in re.finditer(re.escape(needle.encode("utf-8")), view)), dtype=np.int64
    )
    if not len(starts):
        return out
    starts += offsets[0]
    row = np.searchsorted(offsets, starts, side="right") - 1
    inside = starts + size <= offsets[row + 1]
    out[row[inside]] = True
    if not inside.all():  # the texts a spanning match ran into: checked on their own
        first = row[~inside] + 1
        last = np.searchsorted(offsets, starts[~inside] + size - 1, side="right") - 1
        spanning = np.unique(np.concatenate([np.arange(a, b + 1) for a, b in zip(first, last, strict=True)]))
        spanning = spanning[~out[spanning]]
        texts = arr.take(pa.array(spanning, pa.int64())).to_pylist()
        out[spanning] = [t is not None and needle in t for t in texts]
    return out & arr.is_valid().to_numpy(zero_copy_only=False)
