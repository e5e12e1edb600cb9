"""The frames of an :class:`~edgeinvestigate.evidence.bundle.Evidence`: pandas in memory, or Parquet
files of a saved bundle read on first use.

``ev.logs`` and friends are plain pandas frames. A bundle opened from disk reads none of them until
one is used (``clusters`` on a bundle with stored clusters never reads the logs); a frame of
:data:`LARGE_FRAME_ROWS` rows or more prints one ``note:`` line on stderr when it is read, naming
``ev.sql()`` / ``ev.rel()``, which query the Parquet file in DuckDB without loading it.

Storage order: a saved bundle's ``invocations``, ``logs`` and ``exceptions`` are sorted by ``ts``
(stable: rows with the same time keep their order; rows without a time last), so a scan for a window
reads only the row groups that hold it. ``dlq`` keeps the order it was collected in.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, overload

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from edgeinvestigate.models.frames import empty_frame

__all__ = [
    "LARGE_FRAME_ROWS",
    "SORTED_FRAMES",
    "FrameSlot",
    "StoredFrame",
    "frame_file",
    "frame_rows",
    "note",
    "sort_in_place",
    "storage_order",
]

#: reading a frame with at least this many rows into pandas prints a note (it takes a while and memory)
LARGE_FRAME_ROWS: Final = 1_000_000
#: the frames a saved bundle keeps sorted by ``ts``
SORTED_FRAMES: Final = ("invocations", "logs", "exceptions")


def note(text: str) -> None:
    """One ``note: ...`` line on stderr (the notebooks show stderr under the cell)."""
    print(f"note: {text}", file=sys.stderr, flush=True)


@dataclass
class StoredFrame:
    """A frame still in its Parquet file: ``read()`` makes the pandas frame."""

    name: str
    path: Path
    rows: int
    reader: Callable[[], pd.DataFrame]
    #: written in storage order by this process (the spool): saved by copying the file as it is
    in_storage_order: bool = False

    def read(self) -> pd.DataFrame:
        if self.rows >= LARGE_FRAME_ROWS:
            note(
                f"reading the {self.name} frame ({self.rows:,} rows) from {self.path} into pandas; "
                f'ev.sql("SELECT ... FROM {self.name}") or ev.rel("{self.name}") query it in DuckDB '
                "without loading it"
            )
        return self.reader()


class FrameSlot:
    """A frame attribute of ``Evidence`` (a dataclass field): holds a DataFrame or a
    :class:`StoredFrame`, which is read (once) when the attribute is first used.

    ``None`` (the default of ``dlq``) stands for the empty frame. The Parquet file a frame was read
    from is remembered (:func:`frame_file`) until the attribute is set to another frame.
    """

    def __init__(self, *, optional: bool = False) -> None:
        self.optional = optional
        self.name = ""
        self.attr = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.attr = f"_frame_{name}"

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Any: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> pd.DataFrame: ...
    def __get__(self, obj: object | None, owner: type | None = None) -> Any:
        if obj is None:
            if self.optional:
                return None  # the dataclass default: the empty frame
            raise AttributeError(self.name)  # a required field
        value = obj.__dict__[self.attr]
        if isinstance(value, StoredFrame):
            df = value.read()
            obj.__dict__[self.attr] = df
            obj.__dict__.setdefault("_frame_files", {})[self.name] = value.path
            return df
        frame: pd.DataFrame = value
        return frame

    def __set__(self, obj: object, value: pd.DataFrame | StoredFrame | None) -> None:
        if value is None:
            value = empty_frame(self.name)
        obj.__dict__[self.attr] = value
        files: dict[str, Path] = obj.__dict__.setdefault("_frame_files", {})
        if isinstance(value, StoredFrame):
            files[self.name] = value.path
        else:
            files.pop(self.name, None)
        obj.__dict__.pop("_duckdb", None)  # SQL views over the old frame are stale


def frame_rows(ev: Any, name: str) -> int:
    """The row count of a frame without reading it."""
    value = ev.__dict__.get(f"_frame_{name}")
    if isinstance(value, StoredFrame):
        return value.rows
    return len(ev.frame(name))


def frame_file(ev: Any, name: str) -> Path | None:
    """The Parquet file of a frame of a saved bundle (``None`` for a frame made in memory)."""
    files: dict[str, Path] = ev.__dict__.get("_frame_files", {})
    return files.get(name)


def _ts_order(df: pd.DataFrame) -> np.ndarray | None:
    """The stable order that sorts ``df`` by ``ts`` (nulls last), or ``None`` when it is sorted."""
    if len(df) < 2 or "ts" not in df.columns:
        return None
    ts = df["ts"]
    if isinstance(ts.dtype, pd.ArrowDtype):
        arr = pc.cast(ts.array.__arrow_array__(), pa.int64())
        ints = pc.fill_null(arr, np.iinfo(np.int64).max).to_numpy()
    else:
        values = pd.DatetimeIndex(ts)
        ints = np.where(values.isna(), np.iinfo(np.int64).max, values.asi8)
    if bool(np.all(ints[1:] >= ints[:-1])):
        return None
    return np.argsort(ints, kind="stable")


def sort_in_place(df: pd.DataFrame) -> pd.DataFrame | None:
    """``df`` in storage order, built column by column while ``df``'s columns are dropped (so at most
    one column is held twice; ``df`` is left without columns), or ``None`` when it is sorted already
    (``df`` untouched). For a frame nobody else holds."""
    order = _ts_order(df)
    if order is None:
        return None
    taken: dict[str, pd.Series] = {}
    for col in list(df.columns):
        taken[col] = df[col].take(order).reset_index(drop=True)
        del df[col]
    return pd.DataFrame(taken, copy=False)


def storage_order(
    frames: dict[str, pd.DataFrame], *, names: tuple[str, ...] = SORTED_FRAMES
) -> dict[str, pd.DataFrame] | None:
    """The frames in storage order (see the module docs), or ``None`` when they are in it already;
    ``names``: the sorted frames among ``frames``."""
    out = dict(frames)
    changed = False
    for name in names:
        order = _ts_order(frames[name])
        if order is not None:
            out[name] = frames[name].take(order).reset_index(drop=True)
            changed = True
    return out if changed else None
