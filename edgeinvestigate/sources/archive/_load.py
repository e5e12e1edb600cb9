"""Loading a window of a Logpush archive: plan (list + names), then stream the objects in parallel."""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final

import pyarrow as pa

from edgeinvestigate._time import parse_time
from edgeinvestigate.errors import ConfigError, LoadError
from edgeinvestigate.models.load_report import FileReport
from edgeinvestigate.sources.archive._client import make_s3_client
from edgeinvestigate.sources.archive._listing import ArchivePlan, list_window, require_window
from edgeinvestigate.sources.archive._names import (
    RUNBOOK,
    is_archive_url,
    parse_archive_url,
    parse_margin,
)
from edgeinvestigate.sources.archive._stream import load_object
from edgeinvestigate.sources.files._context import ALL_FRAMES

__all__ = [
    "DEFAULT_CONNECTIONS",
    "ArchiveLoad",
    "load_archives",
    "load_logpush_archive",
    "plan_archive",
    "split_archive_specs",
]

log = logging.getLogger(__name__)

#: objects read at the same time (each on its own connection)
DEFAULT_CONNECTIONS: Final = 4
#: objects that may fail (after their retries) before the load stops: this many, or a tenth
MAX_FAILED: Final = 3

ObjectResult = tuple[dict[str, pa.Table] | None, FileReport, None]
TimeLike = str | datetime | None


@dataclass
class ArchiveLoad:
    """What one archive gave: the plan, one result per object read (tables + report, in key order,
    shaped like the file loaders' results) and the objects that failed."""

    plan: ArchivePlan
    results: list[ObjectResult] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    """``(s3 url, reason)`` of each object that could not be read"""
    bytes_read: int = 0
    seconds: float = 0.0

    @property
    def _failed_urls(self) -> set[str]:
        return {u for u, _ in self.failed}

    def note(self) -> str:
        """One line for the load report: listed / read / skipped by name / ignored / failed."""
        p = self.plan
        n_read = len(self.results) - len(self.failed)
        text = (
            f"{p.url}: listed {p.listed} objects in {len(p.prefixes)} "
            f"{'day folders' if p.layout == 'daily' else 'prefix'} ({p.list_requests} LIST requests); "
            f"read {n_read} ({self.bytes_read:,d} bytes, {len(p.unnamed)} by an unknown name), "
            f"skipped {len(p.skipped)} by name (outside the window ± {_minutes(p.margin)}), "
            f"ignored {len(p.ignored)}"
        )
        if self.failed:
            text += f", FAILED {len(self.failed)}: " + "; ".join(f"{u} ({why})" for u, why in self.failed)
        return text

    def manifest(self) -> dict[str, Any]:
        """The archive's entry in ``manifest.json``: every key listed, by what happened to it."""
        p = self.plan
        return {
            "url": str(p.url),
            "layout": p.layout,
            "window": {"since": p.since.isoformat(), "until": p.until.isoformat()},
            "margin_s": int(p.margin.total_seconds()),
            "prefixes": list(p.prefixes),
            "list_requests": p.list_requests,
            "listed": p.listed,
            "read": [r.path for _, r, _ in self.results if r.path not in self._failed_urls],
            "bytes_read": self.bytes_read,
            "skipped_by_name": [p.url.url(o.key) for o in p.skipped],
            "ignored": [p.url.url(k) for k in p.ignored],
            "failed": [{"path": u, "reason": why} for u, why in self.failed],
            "seconds": round(self.seconds, 3),
        }


def _minutes(td: timedelta) -> str:
    s = int(td.total_seconds())
    return f"{s // 60} min" if s % 60 == 0 else f"{s} s"


def _window(since: TimeLike, until: TimeLike, url: str) -> tuple[datetime, datetime]:
    s, u = parse_time(since, name="since"), parse_time(until, name="until")
    require_window(s, u, url)
    assert s is not None
    assert u is not None
    if s >= u:
        raise ConfigError(f"since ({s}) is not before until ({u})", hint="swap --since and --until")
    return s.to_pydatetime(), u.to_pydatetime()


def plan_archive(
    url: str,
    since: TimeLike,
    until: TimeLike,
    *,
    margin: str | timedelta | None = None,
    client: Any = None,
) -> ArchivePlan:
    """List the objects of the Logpush archive at ``url`` (``s3://bucket/prefix/``) that a load of
    ``[since, until)`` would read, and those it would skip by name. Reads no object."""
    where = parse_archive_url(url)
    s, u = _window(since, until, url)
    client = client if client is not None else make_s3_client()
    return list_window(client, where, s, u, parse_margin(margin))


def load_logpush_archive(
    url: str,
    since: TimeLike,
    until: TimeLike,
    *,
    margin: str | timedelta | None = None,
    strict: bool = False,
    frames: Sequence[str] = ALL_FRAMES,
    connections: int = DEFAULT_CONNECTIONS,
    client: Any = None,
) -> ArchiveLoad:
    """Read the window ``[since, until)`` of the Logpush ``workers_trace_events`` archive at ``url``
    straight from R2 or S3: list the window's day folders, skip objects whose names lie outside the
    window (± ``margin``, default 10 min), stream the others through the Logpush parser on
    ``connections`` connections. Nothing is written to disk. Records are filtered to the window.

    Returns an :class:`ArchiveLoad` whose ``results`` are shaped like the file loaders' (what
    :func:`edgeinvestigate.load` merges; ``ei.load(["s3://..."], since=..., until=...)`` calls this).
    """
    where = parse_archive_url(url)
    s, u = _window(since, until, url)
    client = client if client is not None else make_s3_client(connections)
    t0 = time.perf_counter()
    plan = list_window(client, where, s, u, parse_margin(margin))
    out = ArchiveLoad(plan=plan)
    since_ms, until_ms = int(s.timestamp() * 1000), int(u.timestamp() * 1000)
    args = (since_ms, until_ms, strict, tuple(f for f in ALL_FRAMES if f in frames))
    stop = threading.Event()
    budget = max(MAX_FAILED, len(plan.selected) // 10)
    gc_was_enabled = gc.isenabled()  # the parser turns the collector off while it runs, per thread
    try:
        with ThreadPoolExecutor(max_workers=max(1, connections), thread_name_prefix="s3-read") as pool:
            futures: list[Future[Any]] = [
                pool.submit(load_object, client, where, obj, *args, stop=stop) for obj in plan.selected
            ]
            try:
                for obj, fut in zip(plan.selected, futures, strict=True):
                    tables, report, failed = fut.result()
                    out.results.append((tables, report, None))
                    if failed is None:
                        out.bytes_read += obj.size
                        continue
                    out.failed.append((report.path, failed))
                    if len(out.failed) > budget:
                        raise _too_many_failed(out)
            except BaseException:
                stop.set()  # the objects being read stop at their next read
                for fut in futures:
                    fut.cancel()
                raise
    finally:
        if gc_was_enabled:
            gc.enable()
    out.seconds = time.perf_counter() - t0
    log.info("%s", out.note())
    return out


def _too_many_failed(out: ArchiveLoad) -> LoadError:
    path, why = out.failed[-1]
    return LoadError(
        f"{out.plan.url}: {len(out.failed)} objects could not be read (the last: {path}: {why}); "
        "the load stopped",
        hint=f"the store is failing or throttling: wait a few minutes and run again; see {RUNBOOK}",
    )


def split_archive_specs(paths: Any, source: str | None) -> tuple[list[str], list[Any]]:
    """Split ``ei.load`` inputs into archive URLs (``s3://...``) and everything else. An archive is
    Logpush data: another ``source`` for it is refused."""
    items: Iterable[Any] = (
        [paths] if isinstance(paths, str | tuple) or hasattr(paths, "__fspath__") else paths
    )
    archives: list[str] = []
    rest: list[Any] = []
    for spec in items:
        value, name = spec if isinstance(spec, tuple) else (spec, source)
        if is_archive_url(value):
            if name not in (None, "logpush"):
                raise ConfigError(
                    f"{value} is read as a Logpush archive, not as {name}",
                    hint="archives in R2/S3 hold Logpush workers_trace_events: give them with --logpush",
                )
            archives.append(str(value))
        else:
            rest.append(spec)
    return archives, rest


def load_archives(
    urls: Sequence[str],
    since: TimeLike,
    until: TimeLike,
    *,
    strict: bool = False,
    frames: Sequence[str] = ALL_FRAMES,
    margin: str | timedelta | None = None,
) -> list[ArchiveLoad]:
    """:func:`load_logpush_archive` for each URL, sharing one S3 client (for ``ei.load``)."""
    for url in urls:  # every URL and the window are checked before anything is listed
        parse_archive_url(url)
        _window(since, until, url)
    parse_margin(margin)
    client = make_s3_client(DEFAULT_CONNECTIONS) if urls else None
    return [
        load_logpush_archive(url, since, until, margin=margin, strict=strict, frames=frames, client=client)
        for url in urls
    ]
