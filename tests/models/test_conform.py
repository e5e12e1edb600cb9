"""conform(): extra categorical columns are made exactly as the frame's own categoricals are."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

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
