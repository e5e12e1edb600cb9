"""The extra frames of a bundle (queue and Worker analytics): saved, opened and merged beside the four.

A bundle holds an extra frame only when it was collected (``collect --queue-metrics`` ...): its absence
means "not collected", an empty one "collected, no data". Bundles written before extra frames existed
open with none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from edgeinvestigate.errors import BundleError
from edgeinvestigate.models.analytics import METRIC_FRAMES
from edgeinvestigate.models.frames import conform, dictionary_columns

__all__ = ["EXTRA_FRAMES", "merge_extra", "open_extra", "save_extra"]

EXTRA_FRAMES: Final = tuple(METRIC_FRAMES)


def save_extra(tmp: Path, extra: Mapping[str, pd.DataFrame]) -> dict[str, str]:
    """Write each extra frame as ``NAME.parquet`` into ``tmp``; returns ``{name: file}``."""
    files = {}
    for name in EXTRA_FRAMES:
        if name in extra:
            pq.write_table(pa.Table.from_pandas(extra[name], preserve_index=False), tmp / f"{name}.parquet",
                           compression="zstd")  # fmt: skip
            files[name] = f"{name}.parquet"
    return files


def open_extra(src: Path, manifest: Mapping[str, Any]) -> dict[str, pd.DataFrame]:
    """The extra frames a manifest lists (none for older bundles)."""
    listed = manifest.get("frames") if isinstance(manifest.get("frames"), dict) else {}
    out: dict[str, pd.DataFrame] = {}
    for name in EXTRA_FRAMES:
        rel = (listed or {}).get(name)
        if rel is None:
            continue
        if not isinstance(rel, str) or Path(rel).name != rel or rel in (".", ".."):
            raise BundleError(
                f"{src / 'manifest.json'} lists {rel!r} as the {name} frame file: frame files must be plain "
                "file names inside the bundle; refusing to read it",
                hint="the manifest was edited by hand; re-create the bundle with collect",
            )
        path = src / rel
        if not path.is_file():
            raise BundleError(
                f"evidence bundle {src} is incomplete: its {name} frame file {rel} is missing",
                hint=f"restore {rel} from a copy of the bundle, or re-create the bundle with collect",
            )
        try:
            out[name] = conform(pq.read_table(path, read_dictionary=dictionary_columns(name)), name)
        except (OSError, pa.ArrowException) as exc:
            raise BundleError(f"cannot read {path}: {exc}", hint="re-create the bundle with collect") from exc
        expected = (manifest.get("rows") or {}).get(name)
        if expected is not None and expected != len(out[name]):
            raise BundleError(
                f"{path} has {len(out[name])} rows but the manifest says {expected}",
                hint="the bundle was changed after it was written; re-create it with collect",
            )
    return out


def merge_extra(parts: Sequence[Mapping[str, pd.DataFrame]]) -> dict[str, pd.DataFrame]:
    """Stack the extra frames of several bundles (a frame any part has is in the result)."""
    out: dict[str, pd.DataFrame] = {}
    for name in EXTRA_FRAMES:
        frames = [p[name] for p in parts if name in p]
        if frames:
            tables = [pa.Table.from_pandas(conform(f, name), preserve_index=False) for f in frames]
            out[name] = conform(pa.concat_tables(tables, promote_options="permissive"), name)
    return out
