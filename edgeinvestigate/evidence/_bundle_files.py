"""The files of an evidence bundle on disk: where one may be written, and reading one back safely.

A bundle is a directory with ``manifest.json`` and one Parquet file per frame. Reading one back
trusts nothing in it: the manifest is checked before anything else is read (unreadable, nested too
deeply, or not this tool's: a :class:`~edgeinvestigate.errors.BundleError`, never a traceback), a
frame file must be a regular file of the bundle's own (a symbolic link, say to another bundle's
file, is refused), and each frame's row count is checked against the manifest from the Parquet
footer before its data is read, so a small file that expands to millions of rows is refused
without being decompressed.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.parquet as pq

from edgeinvestigate.errors import BundleError
from edgeinvestigate.models.frames import dictionary_columns

__all__ = [
    "BUNDLE_FORMAT",
    "check_destination",
    "checked_frame_file",
    "checked_parquet",
    "is_bundle",
    "read_frame_table",
    "read_manifest",
]

BUNDLE_FORMAT: Final = "edgeinvestigate-evidence/1"
#: a manifest larger than this is not one this tool wrote (it holds the load report: at most 200
#: issues per file, a few hundred bytes each)
MAX_MANIFEST_BYTES: Final = 256 * 1024 * 1024
_RECREATE: Final = "re-create the bundle with `edgeinvestigate collect ... --out DIR`"


def _regular_file(path: Path, what: str, src: Path) -> os.stat_result:
    """The stat of ``path``, which must be a regular file of the bundle itself (not a link)."""
    try:
        st = path.lstat()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise BundleError(f"cannot read {path}: {exc.strerror or exc}", hint=_RECREATE) from exc
    if stat.S_ISLNK(st.st_mode):
        target = os.readlink(path)
        raise BundleError(
            f"evidence bundle {src}: its {what} {path.name} is a symbolic link (to {target}), not a file of "
            "this bundle; refusing to read it (it could be another bundle's data)",
            hint=f"copy the real file into the bundle, or {_RECREATE}",
        )
    if not stat.S_ISREG(st.st_mode):
        raise BundleError(
            f"evidence bundle {src}: its {what} {path.name} is not a regular file; refusing to read it",
            hint=_RECREATE,
        )
    return st


def read_manifest(src: Path) -> dict[str, Any]:
    """The checked ``manifest.json`` of the bundle at ``src``."""
    mpath = src / "manifest.json"
    try:
        st = _regular_file(mpath, "manifest", src)
    except FileNotFoundError:
        st = None
    if st is None or not src.is_dir():
        raise BundleError(
            f"{src} is not an evidence bundle (no manifest.json)",
            hint="create one with `edgeinvestigate collect ... --out DIR` or Evidence.save(DIR)",
        )
    if st.st_size > MAX_MANIFEST_BYTES:
        raise BundleError(
            f"{mpath} is {st.st_size:,} bytes, far more than a manifest this tool writes; "
            "refusing to read it",
            hint=_RECREATE,
        )
    try:
        manifest = json.loads(mpath.read_bytes())
    except RecursionError:
        raise BundleError(
            f"cannot read {mpath}: its JSON is nested too deeply (not a manifest this tool writes)",
            hint=_RECREATE,
        ) from None
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise BundleError(f"cannot read {mpath}: {exc}", hint=_RECREATE) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(
            f"{mpath} is not a {BUNDLE_FORMAT} manifest",
            hint="re-create the bundle with this version of edgeinvestigate collect",
        )
    return manifest


def _frame_path(src: Path, name: str, rel: Any) -> Path:
    """The file of frame ``name`` listed in a manifest: a plain file name inside the bundle."""
    if (
        not isinstance(rel, str)
        or not rel
        or Path(rel).is_absolute()
        or Path(rel).name != rel
        or rel in (".", "..")
    ):
        raise BundleError(
            f"{src / 'manifest.json'} lists {rel!r} as the {name} frame file: frame files must be "
            "plain file names inside the bundle; refusing to read it",
            hint="the manifest was edited by hand or is not from edgeinvestigate; re-create the "
            "bundle with collect",
        )
    return src / rel


def checked_parquet(src: Path, path: Path, what: str, expected: int | None) -> int:
    """The row count of the Parquet file ``path`` of the bundle at ``src`` (``what``: e.g. "logs frame
    file"), read from its footer only, after checking that it is a regular file of the bundle and
    that the count is the manifest's ``expected`` (when known)."""
    try:
        _regular_file(path, what, src)
    except FileNotFoundError:
        rel = path.relative_to(src).as_posix() if path.is_relative_to(src) else path.name
        raise BundleError(
            f"evidence bundle {src} is incomplete: its {what} {rel} is missing "
            f"(manifest.json says {expected if expected is not None else '?'} rows); it was deleted or "
            "renamed after the bundle was written",
            hint=f"restore {rel} from a copy of the bundle, or re-create the bundle with "
            "`edgeinvestigate collect ... --out DIR`",
        ) from None
    try:
        n_rows = int(pq.read_metadata(path).num_rows)
    except (OSError, pa.ArrowException) as exc:
        raise BundleError(f"cannot read {path}: {exc}", hint=_RECREATE) from exc
    if expected is not None and expected != n_rows:
        raise BundleError(
            f"{path} has {n_rows} rows but the manifest says {expected}",
            hint="the bundle was changed after it was written; re-create it with collect",
        )
    return n_rows


def checked_frame_file(src: Path, name: str, manifest: dict[str, Any]) -> tuple[Path, int]:
    """The Parquet file of frame ``name`` of the bundle at ``src`` and its row count, after the checks
    of :func:`checked_parquet` against the manifest."""
    listed = manifest.get("frames")
    listed = listed if isinstance(listed, dict) else {}
    fpath = _frame_path(src, name, listed.get(name, f"{name}.parquet"))
    rows = manifest.get("rows")
    expected = rows.get(name) if isinstance(rows, dict) else None
    return fpath, checked_parquet(src, fpath, f"{name} frame file", expected)


def read_frame_table(src: Path, name: str, manifest: dict[str, Any]) -> pa.Table:
    """Frame ``name`` of the bundle at ``src`` as read from its Parquet file, after the checks of
    :func:`checked_frame_file`."""
    fpath, n_rows = checked_frame_file(src, name, manifest)
    try:
        table = pq.read_table(fpath, read_dictionary=dictionary_columns(name))
    except (OSError, pa.ArrowException) as exc:
        raise BundleError(f"cannot read {fpath}: {exc}", hint=_RECREATE) from exc
    if table.num_rows != n_rows:
        raise BundleError(
            f"{fpath} changed while it was read ({table.num_rows} rows, the footer said {n_rows})",
            hint=_RECREATE,
        )
    return table


def is_bundle(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a directory with this tool's ``manifest.json``."""
    try:
        read_manifest(Path(path))
    except BundleError:
        return False
    return True


def _inside(child: Path, parent: Path) -> bool:
    return child == parent or parent in child.parents


def check_destination(
    path: str | os.PathLike[str], *, inputs: Iterable[str | os.PathLike[str]] = (), overwrite: bool = False
) -> Path:
    """Check that an evidence bundle may be written to ``path``; returns it. Raises
    :class:`~edgeinvestigate.errors.BundleError` (and touches nothing) when ``path`` is a file, the
    current directory or one of its parents, holds or lies inside one of ``inputs``, or is a
    non-empty directory that is not an evidence bundle (a bundle only with ``overwrite``)."""
    dest = Path(path)
    full = dest.resolve()
    if not full.name or _inside(Path.cwd().resolve(), full):
        raise BundleError(
            f"cannot write an evidence bundle to {str(dest)!r}: it is the current directory or one of "
            "its parents (the bundle replaces the whole directory)",
            hint="give --out a new directory name, such as --out evidence/INC-123",
        )
    if dest.exists() and not dest.is_dir():
        raise BundleError(
            f"cannot write an evidence bundle to {dest}: it is a file", hint="choose a directory"
        )
    for item in inputs:
        inp = Path(item)
        if not inp.exists():
            continue  # an API source ("queue:x") or a file gone since
        rin = inp.resolve()
        if _inside(rin, full) or _inside(full, rin):
            where = "holds" if _inside(rin, full) and rin != full else "is inside" if rin != full else "is"
            raise BundleError(
                f"cannot write the evidence bundle to {dest}: it {where} the input {inp}; "
                "writing there would replace the files being collected",
                hint="choose an --out directory outside the input files, such as --out evidence/INC-123",
            )
    if dest.is_dir() and any(dest.iterdir()):
        if not overwrite:
            raise BundleError(
                f"{dest} already exists and is not empty; refusing to overwrite it",
                hint="pass overwrite=True (CLI: --overwrite) to replace an evidence bundle, or choose "
                "another --out directory",
            )
        if not is_bundle(dest):
            raise BundleError(
                f"{dest} is not an evidence bundle (no edgeinvestigate manifest.json), so --overwrite "
                "will not replace it; nothing was changed",
                hint="choose another --out directory (overwrite only ever replaces a bundle written "
                "by collect)",
            )
    return dest
