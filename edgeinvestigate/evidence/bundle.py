"""Loading telemetry into an :class:`Evidence` bundle, and saving / opening bundles.

>>> import edgeinvestigate as ei
>>> ev = ei.load(["tail.json", "logpush/20261127/"], since="2026-11-27T14:00Z")  # doctest: +SKIP
>>> ev.invocations, ev.logs, ev.exceptions, ev.dlq, ev.report                     # doctest: +SKIP
>>> ev.save("evidence/INC-123"); ev2 = ei.Evidence.open("evidence/INC-123")       # doctest: +SKIP

A bundle directory holds ``invocations.parquet``, ``logs.parquet``, ``exceptions.parquet``,
``dlq.parquet`` and ``manifest.json`` (tool version, sources with sha256 and sizes, time window, row
counts, the load report), and ``derived/*.parquet`` (the stored clusters); the first three sorted by
``ts`` and written for scanning (:mod:`._store`). Frames of an opened bundle are read on first use
(:mod:`._frames`); ``ev.sql()`` queries them in DuckDB (:mod:`._sql`).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Final

import pandas as pd
import pyarrow as pa

from edgeinvestigate._scratch import scratch_dir
from edgeinvestigate._version import __version__
from edgeinvestigate.errors import BundleError
from edgeinvestigate.evidence._bundle_files import (
    BUNDLE_FORMAT,
    check_destination,
    checked_frame_file,
    is_bundle,
    read_frame_table,
    read_manifest,
)
from edgeinvestigate.evidence._dedupe import drop_cross_source
from edgeinvestigate.evidence._engine import EvidenceEngine
from edgeinvestigate.evidence._extra import EXTRA_FRAMES, merge_extra, open_extra, save_extra
from edgeinvestigate.evidence._frames import FrameSlot, StoredFrame, frame_rows
from edgeinvestigate.evidence._loading import PathLike, PathSpec, load_results, raise_error
from edgeinvestigate.evidence._store import Derived, read_derived, write_derived, write_frame
from edgeinvestigate.models.frames import conform, empty_frame
from edgeinvestigate.models.load_report import LoadReport
from edgeinvestigate.sources.files._context import ALL_FRAMES, MAX_RECORD_BYTES

__all__ = ["BUNDLE_FORMAT", "Evidence", "check_destination", "concat_frames", "is_bundle", "load"]

log = logging.getLogger(__name__)

FRAME_NAMES: Final = ("invocations", "logs", "exceptions", "dlq")


def _iso(ts: pd.Timestamp | None) -> str | None:
    return None if ts is None else ts.isoformat()


@dataclass(eq=False)
class Evidence(EvidenceEngine):
    """The frames of one investigation plus what was loaded (``report``) and from where (``manifest``).

    Frames of an opened bundle are read on first use (:mod:`._frames`); ``sql``/``rel`` query them
    in DuckDB, ``derived`` holds frames stored with the bundle (:mod:`._engine`).
    """

    # descriptors, not defaults: a frame of an opened bundle is read on first use
    invocations: FrameSlot = FrameSlot()  # noqa: RUF009
    logs: FrameSlot = FrameSlot()  # noqa: RUF009
    exceptions: FrameSlot = FrameSlot()  # noqa: RUF009
    dlq: FrameSlot = FrameSlot(optional=True)  # noqa: RUF009
    report: LoadReport = field(default_factory=LoadReport)
    manifest: dict[str, Any] = field(default_factory=dict)
    #: frames beyond the four, present only when collected: queue and Worker analytics
    #: (``queue_backlog``, ``queue_operations``, ``queue_consumers``, ``worker_invocations``)
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)
    _derived: dict[str, Derived] = field(init=False, repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.manifest = dict(self.manifest)
        self.manifest.setdefault("format", BUNDLE_FORMAT)
        self.manifest.setdefault("tool", "edgeinvestigate")
        self.manifest.setdefault("version", __version__)
        self.manifest.setdefault("sources", [])
        self.manifest.setdefault("window", {"since": None, "until": None})
        self.manifest["rows"] = {name: frame_rows(self, name) for name in FRAME_NAMES}
        self.manifest["rows"].update({name: len(df) for name, df in self.extra.items()})
        self.manifest.pop("derived", None)  # the derived frames this object holds are in _derived

    def frame(self, name: str) -> pd.DataFrame:
        """One frame by name (``invocations``, ``logs``, ``exceptions``, ``dlq``, or an extra frame:
        empty when it was not collected; ``name in ev.extra`` tells the two apart)."""
        if name in EXTRA_FRAMES:
            return self.extra[name] if name in self.extra else empty_frame(name)
        if name not in FRAME_NAMES:
            raise KeyError(f"unknown frame {name!r}; one of {FRAME_NAMES}")
        df: pd.DataFrame = getattr(self, name)
        return df

    def __repr__(self) -> str:
        rows = ", ".join(f"{k}={v}" for k, v in self.manifest["rows"].items())
        return f"<Evidence {rows}; {self.report.skipped} records skipped>"

    # --- derived bundles ---------------------------------------------------------------------
    def with_dlq(self, df: pd.DataFrame, *, source: str | None = None) -> Evidence:
        """A copy with ``df`` (any frame with DLQ columns) as the conformed ``dlq`` frame."""
        manifest = dict(self.manifest)
        if source:
            manifest["sources"] = [*manifest["sources"], {"path": source, "source": "dlq"}]
        return self.copy_with(dlq=conform(df, "dlq"), manifest=manifest)

    @classmethod
    def merge(cls, parts: Sequence[Evidence], *, dedupe: bool = True) -> Evidence:
        """Combine bundles. An invocation (by ``invocation_id``) or DLQ message (by ``message_id``)
        present in several keeps its first copy, with the logs and exceptions of that copy.
        ``dedupe``: also drop the same invocation read from another format (as :func:`load` does;
        counted in ``report.duplicates``)."""
        if not parts:
            return cls.empty()
        if len(parts) == 1:
            return parts[0]
        seen: set[str] = set()
        tables: dict[str, list[pa.Table]] = {n: [] for n in FRAME_NAMES}
        seen_msgs: set[str] = set()
        for ev in parts:
            ids = ev.invocations["invocation_id"].astype(object)
            dup = ids.isin(seen).to_numpy(dtype=bool)
            dup_ids = set(ids[dup])
            seen.update(ids[~dup])
            tables["invocations"].append(_to_arrow(ev.invocations[~dup]))
            for name in ("logs", "exceptions"):
                df = ev.frame(name)
                keep = ~df["invocation_id"].astype(object).isin(dup_ids).to_numpy(dtype=bool)
                tables[name].append(_to_arrow(df[keep]))
            mids = ev.dlq["message_id"].astype(object)
            mdup = (mids.isin(seen_msgs) & mids.notna()).to_numpy(dtype=bool)
            seen_msgs.update(mids[~mdup].dropna())
            tables["dlq"].append(_to_arrow(ev.dlq[~mdup]))
        frames = {
            n: conform(pa.concat_tables(ts, promote_options="permissive"), n) for n, ts in tables.items()
        }
        report = LoadReport()
        sources: list[dict[str, Any]] = []
        for ev in parts:
            report = report.merge(ev.report)
            sources.extend(ev.manifest.get("sources", []))
        if dedupe:
            drop_cross_source(frames, report.duplicates)
        sinces = [p.manifest["window"].get("since") for p in parts]
        untils = [p.manifest["window"].get("until") for p in parts]
        window = {
            "since": None if None in sinces else min(sinces),
            "until": None if None in untils else max(untils),
        }
        manifest = {"sources": sources, "window": window, "created_at": _now()}
        if archives := [a for p in parts for a in p.manifest.get("archives", [])]:
            manifest["archives"] = archives  # what each R2/S3 archive read listed, skipped, failed
        if metrics := [m for p in parts if (m := p.manifest.get("queue_metrics"))]:
            manifest["queue_metrics"] = metrics[0] if len(metrics) == 1 else {"parts": metrics}
        return cls(
            invocations=frames["invocations"],
            logs=frames["logs"],
            exceptions=frames["exceptions"],
            dlq=frames["dlq"],
            report=report,
            manifest=manifest,
            extra=merge_extra([p.extra for p in parts]),
        )

    @classmethod
    def empty(cls) -> Evidence:
        return cls(
            invocations=empty_frame("invocations"),
            logs=empty_frame("logs"),
            exceptions=empty_frame("exceptions"),
            dlq=empty_frame("dlq"),
        )

    # --- bundles on disk ---------------------------------------------------------------------
    def save(
        self, path: PathLike, *, overwrite: bool = False, inputs: Iterable[PathLike] | None = None
    ) -> Path:
        """Write the bundle (one Parquet file per frame + ``manifest.json``) to directory ``path``.

        Refuses to write into a non-empty directory unless ``overwrite=True``, and even then only
        replaces an existing evidence bundle (a directory with this tool's ``manifest.json``): any
        other folder is refused and left untouched. Also refused: ``path`` holding (or lying inside)
        one of the files the bundle was loaded from (``inputs``, default: the manifest's sources),
        and the current directory or one of its parents. The bundle is written next to ``path``
        first and moved into place, so a crash never leaves half a bundle behind.
        """
        if inputs is None:
            inputs = [
                s["path"] for s in self.manifest.get("sources", []) if isinstance(s, dict) and s.get("path")
            ]
        dest = check_destination(path, inputs=inputs, overwrite=overwrite)
        ordered = self.in_storage_order()  # invocations, logs, exceptions sorted by ts (scans skip)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = scratch_dir(f".{dest.name}.saving", dest.parent)  # a killed save's is swept
        try:
            manifest = dict(self.manifest)
            manifest["saved_at"] = _now()
            manifest["frames"] = {}
            for name in FRAME_NAMES:
                fname = f"{name}.parquet"
                spooled = ordered.__dict__[f"_frame_{name}"]
                if isinstance(spooled, StoredFrame) and spooled.in_storage_order:
                    shutil.copyfile(spooled.path, tmp / fname)  # written for the bundle already
                else:
                    write_frame(ordered.frame(name), tmp / fname)
                manifest["frames"][name] = fname
            manifest["frames"].update(save_extra(tmp, self.extra))
            if self._derived:
                if ordered is not self:
                    raise ValueError("derived frames must be computed on ev.in_storage_order()")
                manifest["derived"] = write_derived(tmp, self)
            manifest["report"] = self.report.to_dict()
            (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n")
            if dest.exists():
                old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
                dest.rename(old)
                tmp.rename(dest)
                shutil.rmtree(old, ignore_errors=True)
            else:
                tmp.rename(dest)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.manifest = {k: v for k, v in manifest.items() if k not in ("report", "derived")}
        return dest

    @classmethod
    def open(cls, path: PathLike) -> Evidence:
        """Read a bundle written by :meth:`save`.

        Nothing in the bundle is trusted: a manifest that is not this tool's, a frame file that is a
        symbolic link (to another bundle's file, say) or not a regular file, and a frame whose row
        count (read from the Parquet footer first) differs from the manifest's are refused with a
        :class:`~edgeinvestigate.errors.BundleError`.
        """
        src = Path(path)
        manifest = read_manifest(src)
        frames: dict[str, StoredFrame] = {}  # checked now, read on first use
        for name in FRAME_NAMES:
            fpath, rows = checked_frame_file(src, name, manifest)
            frames[name] = StoredFrame(
                name=name, path=fpath, rows=rows, reader=partial(_read_frame, src, name, manifest)
            )
        derived = read_derived(src, manifest)
        try:
            report = LoadReport.from_dict(manifest.pop("report", {}) or {})
        except (TypeError, ValueError, AttributeError, KeyError) as exc:
            raise BundleError(
                f"cannot read the load report in {src / 'manifest.json'}: {exc}",
                hint="the manifest was edited by hand or is not from edgeinvestigate; re-create the bundle",
            ) from exc
        extra = open_extra(src, manifest)
        ev = cls(**frames, report=report, manifest=manifest, extra=extra)
        ev._derived = derived
        ev.__dict__["_bundle_dir"] = src
        return ev

    def equals(self, other: Evidence) -> bool:
        """Same frames (values and dtypes) and the same load report."""
        return all(self.frame(n).equals(other.frame(n)) for n in FRAME_NAMES) and (
            self.report.to_dict() == other.report.to_dict()
        )


def _read_frame(src: Path, name: str, manifest: dict[str, Any]) -> pd.DataFrame:
    """Frame ``name`` of the bundle at ``src``, checked again as it is read (it is read on first use,
    so the file may have changed since the bundle was opened)."""
    return conform(read_frame_table(src, name, manifest), name)


def concat_frames(frames: Sequence[pd.DataFrame], name: str) -> pd.DataFrame:
    """Stack frames of one canonical kind (categoricals with different categories are fine)."""
    if not frames:
        return empty_frame(name)
    tables = [_to_arrow(conform(df, name)) for df in frames]
    return conform(pa.concat_tables(tables, promote_options="permissive"), name)


def _to_arrow(df: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(df, preserve_index=False)


def _now() -> str:
    return datetime.now(UTC).isoformat()


# --- load --------------------------------------------------------------------------------------


def load(
    paths: PathSpec | Iterable[PathSpec],
    since: str | datetime | pd.Timestamp | None = None,
    until: str | datetime | pd.Timestamp | None = None,
    strict: bool = False,
    *,
    source: str | None = None,
    frames: Sequence[str] = ALL_FRAMES,
    jobs: int | None = None,
    dedupe: bool = True,
    max_record_bytes: int = MAX_RECORD_BYTES,
    archive_margin: str | timedelta | None = None,
) -> Evidence:
    """Load telemetry files and directories into one :class:`Evidence`.

    ``paths``: files or directories (read recursively); an item may be ``(path, source_name)`` to
    skip content sniffing. ``since``/``until``: ISO-8601, epoch, ``-2h`` or datetimes; records
    outside ``[since, until)`` are skipped while reading. ``strict``: raise
    :class:`~edgeinvestigate.errors.ParseError` at the first malformed record instead of listing it
    in ``ev.report``. ``frames``: build only some of ``invocations``/``logs``/``exceptions`` (the
    others are empty; invocation counts stay exact). ``jobs``: processes for large inputs (default:
    up to the CPU count when several Logpush files hold 16 MiB of text or more between them).
    ``jobs=1`` reads everything in this process (no helper for one large file either).
    ``dedupe``: when several formats (tail, TraceItems, Logpush, Workers Logs) hold the same
    invocation, keep one copy with its logs and exceptions; the counts dropped per source pair are
    in ``ev.report.duplicates`` (see :mod:`edgeinvestigate.evidence._dedupe`).
    ``max_record_bytes``: a record (a line, or one JSON value) larger than this is skipped and
    listed in the report without being held in memory (default 8 MiB).

    Folders are read recursively, following symbolic links (with loop protection); a dangling
    link, a FIFO or device file inside one is skipped and listed in the report.
    """
    loaded = load_results(paths, since, until, strict, source, frames, jobs, max_record_bytes, archive_margin)
    wanted, results = loaded.frames, loaded.results
    report = LoadReport()
    parts: dict[str, list[pa.Table]] = {n: [] for n in ALL_FRAMES}
    for tables, file_report, err in results:
        if err is not None:
            raise_error(err)
        report.files.append(file_report)
        if tables is not None:
            for n in ALL_FRAMES:
                parts[n].append(tables[n])
    out: dict[str, pd.DataFrame] = {}
    for n in ALL_FRAMES:
        if n in wanted and parts[n]:
            out[n] = conform(_concat(parts[n]), n)
        else:
            out[n] = empty_frame(n)
    if dedupe:
        drop_cross_source(out, report.duplicates)
    manifest = loaded.manifest(report, strict)
    return Evidence(
        invocations=out["invocations"],
        logs=out["logs"],
        exceptions=out["exceptions"],
        dlq=empty_frame("dlq"),
        report=report,
        manifest=manifest,
    )


def _concat(tables: list[pa.Table]) -> pa.Table:
    if len(tables) == 1:
        return tables[0]
    # The same columns everywhere; dictionary columns may have different dictionaries.
    return pa.concat_tables([t.select(tables[0].column_names) for t in tables], promote_options="permissive")


def frames_of(ev: Evidence) -> dict[str, pd.DataFrame]:
    """The four frames of a bundle by name."""
    return {n: ev.frame(n) for n in FRAME_NAMES}
