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
    "Objects",
    "coded",
    "contains",
    "dictionary_of",
    "first_of",
    "missing",
    "ns_of",
    "objects",
    "string_array",
    "string_chunks",
    "take_chunks",
    "taken",
    "taken_at",
    "timestamps",
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
    """The ``rows`` of a column as an Arrow string array, in the order asked (rows may repeat), nulls
    kept. A categorical is taken by its codes first, and only those rows are decoded. A chunked
    column is taken from each chunk apart (:func:`take_chunks`): its chunks are never joined, so a
    column whose texts hold more than 2 GiB together is taken as well as a small one. The rows
    taken must hold less than 2 GiB of text together (one ``string`` array: 32-bit offsets), else
    Arrow's ``ArrowInvalid`` "offset overflow" is raised."""
    if isinstance(s, pa.Array):
        return s.take(pa.array(rows, pa.int64()))
    if isinstance(s, pd.Series) and isinstance(s.dtype, pd.CategoricalDtype):
        arr: pa.Array = pa.array(s).take(pa.array(rows, pa.int64()))
        return arr.dictionary_decode().cast(pa.string())
    return take_chunks(s if isinstance(s, pa.ChunkedArray) else string_chunks(s), rows)


def take_chunks(chunks: pa.ChunkedArray, rows: np.ndarray) -> pa.Array:
    """``chunks.take(rows)`` as one array, without joining the chunks first (which
    ``ChunkedArray.take`` does: a string column of more than 2 GiB overflows its 32-bit offsets
    however few rows are taken). Each chunk's rows are taken from that chunk and only the taken
    pieces are joined. Sorted ``rows`` (the common case) are split at the chunk bounds; others are
    grouped by chunk (a stable sort of the chunk numbers) and put back in the order asked. A row out of
    ``0..len(chunks)-1`` raises ``IndexError``; the taken rows must fit one array of the type (for
    ``string``: less than 2 GiB of text), else Arrow's ``ArrowInvalid`` is raised."""
    at = np.asarray(rows, dtype=np.int64)
    if at.ndim != 1:
        raise ValueError(f"rows must be one-dimensional, not of shape {at.shape}")
    n = len(chunks)
    if len(at) and (at.min() < 0 or at.max() >= n):
        bad = at[(at < 0) | (at >= n)][0]
        raise IndexError(f"row {bad} is out of bounds for a column of {n} rows")
    if chunks.num_chunks == 1:
        return chunks.chunk(0).take(pa.array(at))
    if not len(at):
        return pa.array([], chunks.type)
    bounds = np.cumsum([0, *(len(c) for c in chunks.chunks)], dtype=np.int64)
    back: np.ndarray | None = None
    if np.all(at[1:] >= at[:-1]):
        cut = np.searchsorted(at, bounds)  # the rows of chunk i: at[cut[i] : cut[i + 1]]
    else:  # grouped by chunk, in the order asked within each chunk; ``back`` restores that order
        which = np.searchsorted(bounds, at, side="right") - 1  # an empty chunk's bound is passed over
        order = np.argsort(which, kind="stable")
        at = at[order]
        back = np.empty(len(order), dtype=np.int64)
        back[order] = np.arange(len(order), dtype=np.int64)
        cut = np.concatenate([[0], np.cumsum(np.bincount(which, minlength=chunks.num_chunks))])
    pieces = [
        chunks.chunk(i).take(pa.array(at[cut[i] : cut[i + 1]] - bounds[i]))
        for i in range(chunks.num_chunks)
        if cut[i + 1] > cut[i]
    ]
    out: pa.Array = pieces[0] if len(pieces) == 1 else pa.concat_arrays(pieces)
    return out if back is None else out.take(pa.array(back))


def objects(arr: pa.Array) -> np.ndarray:
    """Python strings (``None`` for nulls) of an Arrow string array."""
    out: np.ndarray = arr.to_numpy(zero_copy_only=False)
    return out


def taken_at(arr: pa.Array, at: np.ndarray) -> pa.Array:
    """The values of ``arr`` at positions ``at`` (null where ``at`` is negative)."""
    if not len(arr) or arr.null_count == len(arr):
        return pa.nulls(len(at), arr.type)
    out: pa.Array = arr.take(pa.array(at, pa.int64(), mask=at < 0))
    return out


class Objects:
    """The Python objects (``None`` for nulls) of an Arrow array, made only for the rows asked:
    ``objects[i]`` one, ``objects[rows]`` (positions or a mask) an object array of them."""

    def __init__(self, arr: pa.Array) -> None:
        self.arr = arr

    def __len__(self) -> int:
        return len(self.arr)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, int | np.integer):
            return self.arr[int(key)].as_py()
        rows = np.asarray(key)
        if rows.dtype == bool:
            rows = np.flatnonzero(rows)
        return objects(self.arr.take(pa.array(rows, pa.int64())))


def missing(value: Any) -> bool:
    """``None`` or ``nan``: a missing value (what pandas takes for one in an object column)."""
    return value is None or (isinstance(value, float) and np.isnan(value))


def dictionary_of(codes: np.ndarray, values: Any) -> pa.DictionaryArray:
    """``values[codes]`` as an Arrow dictionary array of strings: a value used by several codes is
    one entry, a missing one (``None``, ``nan``) a null, a negative code a null."""
    vals = np.asarray(values, dtype=object)
    gone = np.fromiter((missing(v) for v in vals), dtype=bool, count=len(vals))
    vals = vals.copy()
    vals[gone] = None
    vcodes, uniq = pd.factorize(vals, use_na_sentinel=True)
    # indices as narrow as the values allow (a million rows of a handful of values: 1 MB, not 4)
    width = np.int8 if len(uniq) < 2**7 else np.int16 if len(uniq) < 2**15 else np.int32
    per_code = np.append(vcodes, -1).astype(width)  # a negative code: the last one, null
    idx: np.ndarray = per_code[np.where(codes < 0, len(vcodes), codes)]
    dictionary = pa.array([str(v) for v in uniq], pa.string())
    return pa.DictionaryArray.from_arrays(pa.array(idx, mask=idx < 0), dictionary)


def timestamps(ns: np.ndarray) -> pa.Array:
    """int64 nanoseconds (:data:`NAT` for missing) as an Arrow ``timestamp[ns, UTC]`` array."""
    return pa.array(ns, pa.int64(), mask=ns == NAT).cast(pa.timestamp("ns", tz="UTC"))


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
        gone = np.asarray([missing(v) for v in self.values], dtype=bool)
        fill = gone[self.codes] if len(self.codes) else np.zeros(0, dtype=bool)
        if not fill.any():
            return self
        codes = self.codes.copy()
        codes[fill] = other.codes[fill] + len(self.values)
        return Coded(codes, np.concatenate([self.values, other.values]))


def coded(arr: pa.Array | pa.ChunkedArray) -> Coded:
    """An Arrow array (a dictionary array included) as :class:`Coded`, nulls as ``None``. A chunked
    array is encoded across its chunks without joining them (a text column of more than 2 GiB whose
    distinct values are fewer): the codes and values of the joined array."""
    if isinstance(arr, pa.ChunkedArray):
        if pa.types.is_dictionary(arr.type):
            arr = pa.chunked_array([c.dictionary_decode() for c in arr.chunks], arr.type.value_type)
        enc = pc.dictionary_encode(arr)  # one dictionary, the final one, in every chunk
        dictionary = enc.chunk(0).dictionary if enc.num_chunks else pa.array([], arr.type)
        indices: Any = pa.chunked_array([c.indices for c in enc.chunks], pa.int32())
    elif pa.types.is_dictionary(arr.type):
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
