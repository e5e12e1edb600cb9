"""Planning and loading the telemetry files of :func:`~edgeinvestigate.evidence.bundle.load`.

The files of the inputs are planned (folders walked, skipped entries listed), then loaded by their
registered loaders, in this process and, for large inputs, worker processes that share the files
(:func:`_run`). Each file's result is its tables, or with a spool (:mod:`._spool`) what the spool
wrote of them. ``s3://`` Logpush archives are read by :mod:`edgeinvestigate.sources.archive`.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import pandas as pd
import pyarrow as pa

from edgeinvestigate import errors
from edgeinvestigate._scratch import scratch_dir
from edgeinvestigate._time import parse_time
from edgeinvestigate.errors import ConfigError, EdgeInvestigateError, LoadError, ParseError
from edgeinvestigate.models.load_report import FileReport, Issue, LoadReport
from edgeinvestigate.sources.archive import load_archives, split_archive_specs
from edgeinvestigate.sources.files._context import ALL_FRAMES, MAX_RECORD_BYTES
from edgeinvestigate.sources.files._split import SPLIT_ALLOWED, SPLIT_MIN_BYTES, text_size
from edgeinvestigate.sources.files._worker import (
    LoadResult,
    claim_back,
    init_claims,
    load_claimed,
    load_one,
    read_ipc,
)
from edgeinvestigate.sources.registry import SOURCES, walk_inputs

__all__ = ["PARALLEL_MIN_BYTES", "PathSpec", "load_results", "plan_files", "raise_error"]

log = logging.getLogger("edgeinvestigate.evidence.bundle")  # the name users and tests know

#: several files of a parallel-capable source with at least this much text (decompressed) between them
#: are read by several processes: the same trade as one file's split (``SPLIT_MIN_BYTES``, ~0.1 s of
#: parsing against a worker's start). Ten files of 30,000 Logpush records (31 MB gzip, 224 MB of text)
#: loaded in 1.18-1.36 s with a worker against 1.56-1.60 s one by one, each split with the helper.
PARALLEL_MIN_BYTES: Final = SPLIT_MIN_BYTES
#: this process loads files too while the workers run (tests turn it off to exercise the workers)
_PARENT_TAKES_SHARE = True

PathLike = str | os.PathLike[str]
PathSpec = PathLike | tuple[PathLike, str]


def _iso(ts: pd.Timestamp | None) -> str | None:
    return None if ts is None else ts.isoformat()


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class _Job:
    path: Path
    source: str
    size: int
    in_dir: bool = False


def _plan(paths: PathSpec | Iterable[PathSpec], source: str | None) -> tuple[list[_Job], list[FileReport]]:
    """The files to load, and a report for each path skipped inside the input folders (a dangling
    link, a FIFO or device file, a link back to a folder read already)."""
    if isinstance(paths, str | os.PathLike | tuple):
        paths = [paths]
    jobs: list[_Job] = []
    skipped: list[FileReport] = []
    for spec in paths:
        name = source
        if isinstance(spec, tuple):
            spec, name = spec
        if name is not None and name not in SOURCES:
            raise ConfigError(f"unknown source {name!r}", hint=f"one of {', '.join(SOURCES)}")
        root = Path(spec)
        files, passed = walk_inputs(root)
        for f in files:
            try:
                size = f.stat().st_size
            except OSError:
                size = 0  # gone since the folder was listed: load_one reports it
            jobs.append(_Job(path=f, source=name or "", size=size, in_dir=f != root))
        for sp in passed:
            rep = FileReport(path=str(sp.path), source="skipped")
            rep.add(Issue(kind="file", message=sp.why, severity=sp.severity))
            skipped.append(rep)
    return jobs, skipped


def plan_files(paths: PathSpec | Iterable[PathSpec], source: str | None) -> list[_Job]:
    """The files :func:`load_results` would load (path, source name or ``""``, size)."""
    return _plan(paths, source)[0]


def _ms(ts: pd.Timestamp | None) -> int | None:
    return None if ts is None else int(ts.value // 1_000_000)


def raise_error(err: tuple[str, dict[str, Any]]) -> None:
    kind, d = err
    if kind == "parse":
        exc: EdgeInvestigateError = ParseError("", path=d["path"], line=d["line"], offset=d["offset"])
        exc.message = d["message"]
        exc.args = (d["message"],)
        exc.hint = d["hint"]
        raise exc
    cls = getattr(errors, kind, LoadError)
    raise cls(d["message"], hint=d["hint"])


@dataclass
class _Loaded:
    """What :func:`load_results` read: the window, the frames asked for, the archives, and one
    result per file (tables, or what the spool's ``write`` returned for them)."""

    since: pd.Timestamp | None
    until: pd.Timestamp | None
    frames: tuple[str, ...]
    archives: list[Any]
    results: list[LoadResult]

    def manifest(self, report: LoadReport, strict: bool) -> dict[str, Any]:
        """The manifest of the loaded evidence (adds the archives' notes to ``report``)."""
        manifest: dict[str, Any] = {
            "created_at": _now(),
            "window": {"since": _iso(self.since), "until": _iso(self.until)},
            "sources": [
                {
                    "path": f.path,
                    "source": f.source,
                    "size": f.size,
                    "sha256": f.sha256,
                    "mtime_ns": f.mtime_ns,
                }
                for f in report.files
            ],
            "strict": strict,
        }
        if self.archives:
            manifest["archives"] = [a.manifest() for a in self.archives]
            report.notes.extend(a.note() for a in self.archives)
        return manifest


def load_results(
    paths: PathSpec | Iterable[PathSpec],
    since: str | datetime | pd.Timestamp | None,
    until: str | datetime | pd.Timestamp | None,
    strict: bool,
    source: str | None,
    frames: Sequence[str],
    jobs: int | None,
    max_record_bytes: int,
    archive_margin: str | timedelta | None,
    *,
    write: Callable[[Path, dict[str, pa.Table]], Any] | None = None,
    spool: Path | None = None,
) -> _Loaded:
    """Check the arguments of :func:`load`, plan the files and load them (see :func:`_run`)."""
    s, u = parse_time(since, name="since"), parse_time(until, name="until")
    if s is not None and u is not None and s >= u:
        raise ConfigError(f"since ({s}) is not before until ({u})", hint="swap --since and --until")
    wanted = tuple(f for f in ALL_FRAMES if f in frames)
    unknown = set(frames) - set(ALL_FRAMES)
    if unknown:
        raise ConfigError(f"unknown frames {sorted(unknown)}", hint=f"choose from {ALL_FRAMES}")
    if max_record_bytes < 1:
        raise ConfigError(f"max_record_bytes must be positive, not {max_record_bytes}")
    archive_urls, paths = split_archive_specs(paths, source)
    plan, passed = _plan(paths, source)
    since_ms, until_ms = _ms(s), _ms(u)
    archives = load_archives(archive_urls, s, u, strict=strict, frames=wanted, margin=archive_margin)
    token = SPLIT_ALLOWED.set(jobs != 1)  # jobs=1: one process, also for one large file
    try:
        results = _run(plan, since_ms, until_ms, strict, wanted, jobs, max_record_bytes, write, spool)
    finally:
        SPLIT_ALLOWED.reset(token)
    results += [(None, rep, None) for rep in passed]
    results += [r for a in archives for r in a.results]

    return _Loaded(s, u, wanted, archives, results)


def _run(
    plan: list[_Job],
    since_ms: int | None,
    until_ms: int | None,
    strict: bool,
    frames: tuple[str, ...],
    jobs: int | None,
    max_record_bytes: int = MAX_RECORD_BYTES,
    write: Callable[[Path, dict[str, pa.Table]], Any] | None = None,
    spool: Path | None = None,
) -> list[LoadResult]:
    """Load every planned file; large Logpush inputs in this process plus worker processes.

    ``write`` (with ``spool``, a folder of its own): each file's tables are handed to
    ``write(spool/<n>, tables)`` as soon as they are loaded, in whichever process loaded them, and
    what it returns stands for them in the results (the spool of :mod:`._spool`)."""
    if (write is None) != (spool is None):
        raise ValueError("write and spool go together")
    big = [j for j in plan if not j.source or SOURCES[j.source].parallel]
    n_workers = jobs if jobs is not None else min(os.cpu_count() or 1, max(1, len(big)))
    if jobs is None and not _enough_text(big):
        n_workers = 1
    n_workers = min(n_workers, len(plan))
    ctx = _mp_context()
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if ctx.get_start_method() != "fork" and main_file is not None and not os.path.exists(main_file):
        n_workers = 1  # new worker processes re-import __main__, which is not a file (python - <<EOF)
    args = (since_ms, until_ms, strict, frames)
    cap = max_record_bytes

    def one(job: _Job, n: int) -> LoadResult:
        result = load_one(job.path, job.source, *args, job.in_dir, cap)
        if write is None or result[0] is None or spool is None:
            return result
        return write(spool / str(n), result[0]), result[1], result[2]

    if n_workers <= 1:
        return [one(j, i) for i, j in enumerate(plan)]
    # Work sharing: the workers claim files from the front of one list (biggest first), this process
    # from the back, one file at a time, so both finish at about the same time whatever the file
    # sizes and the workers' start-up time (nothing is queued ahead for a busy process).
    order = sorted(range(len(plan)), key=lambda i: -plan[i].size)
    files = [(plan[i].path, plan[i].source, plan[i].in_dir) for i in order]
    claims = (ctx.Lock(), ctx.RawValue("q", 0), ctx.RawValue("q", len(order)))
    shm = Path("/dev/shm")  # noqa: S108 - mkdtemp below makes a private 0700 directory in it
    tmp = spool or scratch_dir("edgeinvestigate-load", shm if shm.is_dir() else None)
    results: dict[int, LoadResult] = {}
    try:
        with ProcessPoolExecutor(
            max_workers=n_workers - 1, mp_context=ctx, initializer=init_claims, initargs=claims
        ) as pool:
            futures = [pool.submit(load_claimed, tmp, files, *args, cap, write) for _ in range(n_workers - 1)]
            while _PARENT_TAKES_SHARE and (k := claim_back(claims)) is not None:
                results[order[k]] = one(plan[order[k]], k)
            for fut in futures:
                try:
                    for k, paths, report, err in fut.result():
                        results[order[k]] = (paths, report, err) if write else read_ipc(paths, report, err)
                except (BrokenProcessPool, OSError) as exc:
                    # A worker could not start or died (e.g. a __main__ that cannot be re-imported,
                    # or memory): the files it took are loaded below. Nothing is lost, only slower.
                    log.warning("parallel load failed (%s); loading its files in this process", exc)
    finally:
        if spool is None:
            shutil.rmtree(tmp, ignore_errors=True)
    for i, job in enumerate(plan):
        if i not in results:  # claimed by a worker that failed (or never claimed: no worker started)
            log.warning("loading %s in this process", job.path)
            results[i] = one(job, len(plan) + i)  # a name no worker used
    return [results[i] for i in range(len(plan))]


def _enough_text(files: list[_Job]) -> bool:
    """Whether ``files`` hold :data:`PARALLEL_MIN_BYTES` of text between them (a gzip file's text size
    is in its trailer: one small read per file, and only until the sum is reached)."""
    total = 0
    for job in files:
        total += max(job.size, text_size(job.path)) if job.size < PARALLEL_MIN_BYTES else job.size
        if total >= PARALLEL_MIN_BYTES:
            return True
    return False


def _mp_context() -> Any:
    """``fork`` where it is safe and quiet (Linux, Python 3.11: workers start in milliseconds and
    nothing is re-imported); ``forkserver`` elsewhere (Python 3.12+ warns about forking a process
    with threads, and pandas/numpy always have some)."""
    import multiprocessing as mp

    if sys.platform == "linux" and sys.version_info < (3, 12):
        return mp.get_context("fork")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["edgeinvestigate.sources.files._worker"])  # no pandas in the workers
    return ctx
