"""Taking rows of a chunked text column (:func:`edgeinvestigate.analysis.clustering._arrow.taken`):
the chunks are never joined, so a column whose texts hold more than 2 GiB together (each chunk far
less) is taken as well as a small one. ``ChunkedArray.take`` joins the chunks first and overflows the
32-bit offsets of ``string`` ("offset overflow while concatenating arrays"), however few rows it takes.
"""

from __future__ import annotations

import gc

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgeinvestigate.analysis.clustering._arrow import coded, taken
from edgeinvestigate.analysis.clustering._rows import _per_distinct

MIB = 1 << 20


def _big_chunk(n: int) -> pa.Array:
    """``n`` texts of 1 MiB each (``n`` MiB of string data, one buffer): text ``i`` starts with its
    number; every 7th is null."""
    data = np.full(n * MIB, ord("x"), dtype=np.uint8)
    starts = np.arange(n, dtype=np.int64) * MIB
    for i in range(n):
        data[starts[i] : starts[i] + 8] = np.frombuffer(f"{i:08d}".encode(), dtype=np.uint8)
    offsets = np.arange(n + 1, dtype=np.int32) * np.int32(MIB)
    valid = np.arange(n) % 7 != 3
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.StringArray.from_buffers(
        n, pa.py_buffer(offsets), pa.py_buffer(data), bitmap, null_count=int((~valid).sum())
    )


def test_rows_of_a_column_of_more_than_2_gib_are_taken() -> None:
    """Two chunks of 1.1 GiB each (the same array twice: ~1.1 GiB of memory) and rows in both,
    sorted, unsorted and repeated: the right texts (and nulls) in the order asked."""
    n = 1100
    chunk = _big_chunk(n)
    big = pa.chunked_array([chunk, chunk])
    assert big.nbytes > 2 * 1100 * MIB  # the buffers are counted per chunk: more than 2 GiB of text
    try:
        for rows in (
            np.array([1, 5, n - 1, n, n + 2, 2 * n - 1]),  # sorted, across the bound
            np.array([n + 2, 1, 2 * n - 1, 3, 5, n + 2, 1]),  # unsorted, repeated, a null
            np.array([n + 3, n + 10]),  # sorted, all in the second chunk
        ):
            got = taken(big, rows)
            assert got.type == pa.string()
            assert len(got) == len(rows)
            for text, row in zip(got, rows, strict=True):
                want = chunk[int(row) % n]
                if not want.is_valid:
                    assert not text.is_valid
                    continue
                value = text.as_py()
                assert len(value) == MIB
                assert value[:8] == f"{int(row) % n:08d}"
                assert value == want.as_py()
        # the same column as pandas holds it (arrow-backed, chunked), and where the bug was met
        series = pd.Series(pd.arrays.ArrowExtensionArray(big), copy=False)
        assert taken(series, np.array([0, n + 1])).to_pylist() == [chunk[0].as_py(), chunk[1].as_py()]
        rows = np.array([2, n + 2, 2 * n - 2])
        lengths = _per_distinct(lambda m, a: (len(m), a[:8]), big, big, rows)
        assert lengths == [(MIB, "00000002")] * 2 + [(MIB, f"{n - 2:08d}")]
    finally:
        del chunk, big
        gc.collect()


def _chunked(parts: list[list[str | None]], sliced: bool) -> pa.ChunkedArray:
    """Chunks of these texts; ``sliced``: each chunk a slice (offset) of a longer array."""
    if not sliced:
        return pa.chunked_array([pa.array(p, pa.string()) for p in parts], pa.string())
    return pa.chunked_array(
        [pa.array(["pad", *p, None], pa.string()).slice(1, len(p)) for p in parts], pa.string()
    )


texts = st.one_of(st.none(), st.text(max_size=6), st.sampled_from(["", "a", "é€😀"]))
columns = st.tuples(st.lists(st.lists(texts, max_size=6), max_size=5), st.booleans())


@st.composite
def cases(draw: st.DrawFn) -> tuple[pa.ChunkedArray, np.ndarray]:
    parts, sliced = draw(columns)
    chunks = _chunked(parts, sliced)
    n = len(chunks)
    rows = draw(st.lists(st.integers(0, n - 1), max_size=20)) if n else []
    if draw(st.booleans()):
        rows = sorted(rows)
    return chunks, np.asarray(rows, dtype=np.int64)


@given(cases())
def test_taken_is_take_of_the_joined_chunks(case: tuple[pa.ChunkedArray, np.ndarray]) -> None:
    chunks, rows = case
    want = chunks.combine_chunks().take(pa.array(rows, pa.int64()))
    got = taken(chunks, rows)
    assert isinstance(got, pa.Array)
    assert got.type == pa.string()
    got.validate(full=True)
    assert got.equals(want), (got, want)
    assert taken(pd.Series(pd.arrays.ArrowExtensionArray(chunks), copy=False), rows).equals(want)


@given(columns)
def test_coded_of_chunks_is_coded_of_the_joined_chunks(column: tuple[list[list[str | None]], bool]) -> None:
    chunks = _chunked(*column)
    got, want = coded(chunks), coded(chunks.combine_chunks())
    np.testing.assert_array_equal(got.codes, want.codes)
    assert got.values.tolist() == want.values.tolist()


def test_rows_out_of_bounds_raise() -> None:
    chunks = pa.chunked_array([pa.array(["a"]), pa.array(["b", "c"])])
    for rows in ([3], [-1], [0, 5, 1]):
        with pytest.raises(IndexError):
            taken(chunks, np.asarray(rows))
