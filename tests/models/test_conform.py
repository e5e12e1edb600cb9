"""conform(): extra categorical columns are made exactly as the frame's own categoricals are."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeinvestigate.models.frames import conform


def test_extra_categoricals_as_the_frames_own_from_plain_or_dictionary_columns() -> None:
    stacks = ["Error: b\n at f", None, "Error: a\n at g", "Error: b\n at f"]
    names = ["TypeError", "Error", None, "TypeError"]
    plain = pa.table({"invocation_id": ["1", "2", "3", "4"], "name": names, "stack": stacks})
    encoded = pa.table(
        {"invocation_id": ["1", "2", "3", "4"], "name": names, "stack": pa.array(stacks).dictionary_encode()}
    )
    default = conform(plain, "exceptions")
    assert not isinstance(default["stack"].dtype, pd.CategoricalDtype)  # not one of the frame's own
    for table in (plain, encoded):
        got = conform(table, "exceptions", categorical=("stack",))
        assert isinstance(got["stack"].dtype, pd.CategoricalDtype)
        # the same categories (sorted) and values as the frame's own categorical column gets
        pd.testing.assert_series_equal(got["stack"], default["stack"].astype("category"))
        pd.testing.assert_series_equal(got["name"], default["name"])
        assert list(got.columns) == list(default.columns)


_VALUES = st.lists(st.one_of(st.none(), st.sampled_from(["b", "a", "é", "", "queue-1", "Z"])), max_size=40)


@settings(max_examples=150, deadline=None)
@given(chunks=st.lists(_VALUES, max_size=4), encoded=st.booleans(), offset=st.integers(0, 5))
def test_categoricals_equal_pandas_whatever_the_chunks_nulls_and_slices(
    chunks: list[list[str | None]], encoded: bool, offset: int
) -> None:
    """The loaders hand conform columns in block chunks, dictionary-encoded or not, with nulls: the
    codes are pandas' own ``astype("category")`` (sorted categories, -1 for null)."""
    arrays = [pa.array(c, pa.string()) for c in chunks]
    if encoded:
        arrays = [a.dictionary_encode() for a in arrays]
    col = pa.chunked_array(arrays, type=arrays[0].type if arrays else pa.string())
    values = col.to_pylist()
    table = pa.table({"invocation_id": [str(i) for i in range(len(values))], "name": col})
    got = conform(table, "exceptions")["name"]
    want = pd.Series(values, dtype="string[pyarrow]").astype("category")
    assert list(got.cat.categories) == list(want.cat.categories)
    assert got.cat.codes.tolist() == want.cat.codes.tolist()
    # a slice keeps its dictionary's entries as categories, as pandas keeps a filtered column's
    dictionary = sorted({v for c in chunks for v in c if v is not None}) if encoded else None
    part = conform(table.slice(min(offset, len(values))), "exceptions")["name"]
    assert part.astype(object).where(part.notna(), None).tolist() == values[offset:]
    if dictionary is not None and len(chunks) == 1 and len(values) > offset:
        assert list(part.cat.categories) == dictionary
