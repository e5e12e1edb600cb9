"""The bundle on disk as the engine's store: Parquet written for scanning, and derived frames.

Frames (the contract, documented in the README, "The evidence bundle"):

* ``invocations.parquet``, ``logs.parquet``, ``exceptions.parquet`` sorted by ``ts`` (see
  :mod:`._frames`), ``dlq.parquet`` in collection order; zstd, row groups of
  :data:`ROW_GROUP_ROWS` rows with min/max statistics, so DuckDB, Polars or Spark skip what a
  window or a filter does not need and scan the rest in parallel. Timestamps are
  ``TIMESTAMP(MILLIS, UTC)``, strings UTF-8 (low-cardinality ones dictionary-encoded).
* ``derived/NAME.parquet``: frames computed from the evidence when it was collected (the error
  clusters: ``clusters``, ``cluster_rows``, ``cluster_dlq``, ``cluster_keys``), listed in the
  manifest under ``derived`` with the ``key`` of the code and settings that computed them. This
  module stores and reads them without knowing how they are computed (that is
  :mod:`edgeinvestigate.analysis`); they are written once, with the bundle, and never added to an
  existing bundle: a bundle is evidence.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Final

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from edgeinvestigate.errors import BundleError
from edgeinvestigate.evidence._bundle_files import checked_parquet
from edgeinvestigate.evidence._frames import StoredFrame

__all__ = [
    "DERIVED_DIR",
    "ROW_GROUP_ROWS",
    "Derived",
    "read_derived",
    "stored_frame",
    "write_derived",
    "write_frame",
]

#: rows per Parquet row group: the unit a reader skips by statistics or hands to one thread
ROW_GROUP_ROWS: Final = 128 * 1024
#: the folder of the derived frames inside a bundle
DERIVED_DIR: Final = "derived"
_RECREATE: Final = "re-create the bundle with `edgeinvestigate collect ... --out DIR`"


@dataclass
class Derived:
    """One set of derived frames (``name``, e.g. ``clusters``): frames by view name, the ``key`` of
    what computed them, and free-form ``info`` (JSON)."""

    name: str
    key: str
    #: a frame: pandas, an Arrow table (as computed; written as it is), or still in the bundle
    frames: dict[str, pd.DataFrame | pa.Table | StoredFrame]
    info: dict[str, Any] = field(default_factory=dict)

    def frame(self, view: str) -> pd.DataFrame:
        """One derived frame as pandas (read from the bundle on first use)."""
        value = self.frames[view]
        if isinstance(value, StoredFrame):
            value = value.read()
            self.frames[view] = value
        elif isinstance(value, pa.Table):
            return value.to_pandas()
        return value

    def table_or_frame(self, view: str) -> pd.DataFrame | pa.Table:
        """One derived frame held in memory as it is (an Arrow table stays one)."""
        value = self.frames[view]
        return value if isinstance(value, pa.Table) else self.frame(view)

    def arrow(
        self, view: str, *, dictionary: tuple[str, ...] = (), columns: Sequence[str] | None = None
    ) -> pa.Table:
        """One derived frame as an Arrow table (``dictionary``: columns to read dictionary-encoded,
        as Parquet stores them), without pandas; ``columns``: only these (only they are read)."""
        value = self.frames[view]
        if isinstance(value, pa.Table):
            return value if columns is None else value.select(list(columns))
        if not isinstance(value, StoredFrame):
            frame = value if columns is None else value[list(columns)]
            return pa.Table.from_pandas(frame, preserve_index=False)
        wanted = list(columns) if columns is not None else None
        encoded = [c for c in dictionary if wanted is None or c in wanted]
        try:
            table: pa.Table = pq.read_table(value.path, columns=wanted, read_dictionary=encoded or None)
        except (OSError, pa.ArrowException) as exc:
            raise BundleError(f"cannot read {value.path}: {exc}", hint=_RECREATE) from exc
        return table

    def rows(self, view: str) -> int:
        """The number of rows of one derived frame (a stored one is not read)."""
        value = self.frames[view]
        return value.rows if isinstance(value, StoredFrame) else len(value)

    def file(self, view: str) -> Path | None:
        value = self.frames[view]
        return value.path if isinstance(value, StoredFrame) else None


def write_frame(df: pd.DataFrame | pa.Table, path: Path) -> None:
    """One frame (pandas or Arrow) as a Parquet file written for scanning (zstd, row groups with
    statistics)."""
    table = df if isinstance(df, pa.Table) else pa.Table.from_pandas(df, preserve_index=False)
    pq.write_table(
        table,
        path,
        compression="zstd",
        row_group_size=ROW_GROUP_ROWS,
        write_statistics=True,
        coerce_timestamps="ms",  # TIMESTAMP(MILLIS): what every reader (Spark too) takes
        allow_truncated_timestamps=False,  # never drop precision silently
    )


def write_derived(dest: Path, ev: Any) -> dict[str, Any]:
    """Write the derived frames of ``ev`` under ``dest/derived/``; returns the manifest entry."""
    entry: dict[str, Any] = {}
    sets: dict[str, Derived] = ev.__dict__.get("_derived", {})
    for name, d in sets.items():
        (dest / DERIVED_DIR).mkdir(exist_ok=True)
        files: dict[str, str] = {}
        rows: dict[str, int] = {}
        for view in d.frames:
            rel = f"{DERIVED_DIR}/{view}.parquet"
            df = d.table_or_frame(view)
            write_frame(df, dest / rel)
            files[view] = rel
            rows[view] = len(df)
        entry[name] = {"key": d.key, "info": d.info, "frames": files, "rows": rows}
    return entry


def stored_frame(src: Path, name: str, rel: str, reader: Any, rows: int | None = None) -> StoredFrame:
    """A frame file of the bundle at ``src`` with its row count read from the Parquet footer (checked
    like the frames: a regular file of the bundle, the manifest's row count)."""
    path = src / rel
    n = checked_parquet(src, path, f"{name} frame file", rows)
    return StoredFrame(name=name, path=path, rows=n, reader=lambda: reader(path))


def _derived_path(src: Path, name: str, rel: Any) -> str:
    """A derived frame file listed in a manifest: ``derived/<plain name>.parquet`` inside the bundle."""
    p = PurePosixPath(rel) if isinstance(rel, str) else None
    if (
        p is None
        or p.is_absolute()
        or len(p.parts) != 2
        or p.parts[0] != DERIVED_DIR
        or p.parts[1] in (".", "..")
        or not p.name.endswith(".parquet")
        or "\\" in str(rel)
    ):
        raise BundleError(
            f"{src / 'manifest.json'} lists {rel!r} as the derived frame {name}: derived frames must be "
            f"files in the bundle's {DERIVED_DIR}/ folder; refusing to read it",
            hint=f"the manifest was edited by hand or is not from edgeinvestigate; {_RECREATE}",
        )
    return str(p)


def _read_table(path: Path) -> pd.DataFrame:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise BundleError(f"cannot read {path}: {exc}", hint=_RECREATE) from exc
    df: pd.DataFrame = table.to_pandas()
    return df


def read_derived(src: Path, manifest: Mapping[str, Any]) -> dict[str, Derived]:
    """The derived frame sets listed in a bundle's manifest, not read yet (none in older bundles)."""
    listed = manifest.get("derived")
    if listed is None:
        return {}
    bad = BundleError(
        f"{src / 'manifest.json'} has a malformed 'derived' entry",
        hint=f"the manifest was edited by hand or is not from edgeinvestigate; {_RECREATE}",
    )
    if not isinstance(listed, dict):
        raise bad
    out: dict[str, Derived] = {}
    for name, d in listed.items():
        if not (isinstance(d, dict) and isinstance(d.get("frames"), dict) and isinstance(d.get("key"), str)):
            raise bad
        rows: dict[str, Any] = d["rows"] if isinstance(d.get("rows"), dict) else {}
        frames: dict[str, pd.DataFrame | StoredFrame] = {}
        for view, rel in d["frames"].items():
            checked = _derived_path(src, str(view), rel)
            n = rows.get(view)
            frames[str(view)] = stored_frame(
                src, str(view), checked, _read_table, n if isinstance(n, int) else None
            )
        info: dict[str, Any] = d["info"] if isinstance(d.get("info"), dict) else {}
        out[str(name)] = Derived(name=str(name), key=d["key"], frames=frames, info=dict(info))
    return out
