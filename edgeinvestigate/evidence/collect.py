"""``collect()``: telemetry files, Workers Logs and dead-letter queues in one :class:`Evidence`.

The library form of ``edgeinvestigate collect`` (the command adds its options, the output
directory and the printing):

>>> ev = collect(["tail.json"], workers_logs=["jobs-consumer"], dlq=["jobs-dlq"],   # doctest: +SKIP
...              since="-2h", client=CloudflareClient.from_env())
>>> ev.save("evidence/INC-123")                                                     # doctest: +SKIP

Files are loaded first (:func:`edgeinvestigate.load`), then each script's Workers Logs
(:func:`edgeinvestigate.load_workers_logs`) and each DLQ (:func:`edgeinvestigate.load_dlq`);
saved DLQ files are added to the ``dlq`` frame. The load report's notes say what looks wrong: an
empty Workers Logs query, telemetry sources that hold the same invocations, the DLQ warnings.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from edgeinvestigate._time import parse_time
from edgeinvestigate.errors import ConfigError, LoadError
from edgeinvestigate.evidence._collect_checks import (
    empty_query_warning,
    overlapping_sources,
    rejected_files_error,
    unknown_script_check,
)
from edgeinvestigate.evidence._secrets import mask_secrets
from edgeinvestigate.evidence._spool import spool_load
from edgeinvestigate.evidence.bundle import Evidence, PathSpec, load
from edgeinvestigate.evidence.dlq import with_dlq_frames
from edgeinvestigate.evidence.queue_metrics import with_metrics, with_metrics_file
from edgeinvestigate.evidence.workers_logs import load_workers_logs
from edgeinvestigate.sources.api.dlq import load_dlq
from edgeinvestigate.sources.api.dlq_frame import dlq_frame_from_file
from edgeinvestigate.sources.api.queue_metrics import queue_metrics_frames
from edgeinvestigate.sources.files._context import MAX_RECORD_BYTES

if TYPE_CHECKING:
    from edgeinvestigate.cloudflare.client import CloudflareClient

KEPT_SECRETS_NOTE = (
    "credentials in the telemetry were kept verbatim (--keep-secrets): treat this bundle as a secret"
)

__all__ = ["collect", "collect_inputs"]

TimeSpec = str | datetime | pd.Timestamp | None


def collect(
    files: Sequence[PathSpec] = (),
    *,
    since: TimeSpec = None,
    until: TimeSpec = None,
    strict: bool = False,
    jobs: int | None = None,
    workers_logs: Sequence[str] = (),
    dlq: Sequence[str] = (),
    dlq_mode: Literal["peek", "snapshot"] = "peek",
    force: bool = False,
    release: bool = True,
    visibility_timeout_ms: int | None = None,
    dlq_files: Sequence[str | Path] = (),
    client: CloudflareClient | Callable[[], CloudflareClient] | None = None,
    on_warning: Callable[[str], None] | None = None,
    archive_margin: str | None = None,
    queue_metrics: Sequence[str] = (),
    worker_metrics: Sequence[str] = (),
    queue_metrics_files: Sequence[str | Path] = (),
    keep_secrets: bool = False,
    max_record_bytes: int = MAX_RECORD_BYTES,
    spool: Path | None = None,
) -> Evidence:
    """Load telemetry files and API sources into one :class:`Evidence`.

    ``files``: paths (format sniffed) or ``(path, source)`` pairs, loaded with ``since``/``until``,
    ``strict``, ``jobs`` and ``max_record_bytes`` like :func:`edgeinvestigate.load`; a file that
    gave nothing but rejected records raises :class:`~edgeinvestigate.errors.LoadError` naming the
    format it looks like. ``workers_logs``: scripts whose Workers Logs to query; ``dlq``: queues to read with
    ``dlq_mode`` (``force``, ``release`` and ``visibility_timeout_ms`` as in
    :func:`edgeinvestigate.load_dlq`); ``dlq_files``: saved DLQ files (a bad record in one is skipped
    and listed in the load report, or with ``strict`` stops the collect). ``client`` (or a function
    that makes it, called after the files are loaded) is needed for ``workers_logs`` and ``dlq``.
    ``on_warning`` is called with each warning about an empty Workers Logs query (also in the
    report's notes); the DLQ warnings are logged by :func:`edgeinvestigate.load_dlq`.
    ``archive_margin``: for ``s3://`` Logpush archives among ``files``, how far outside the window an
    object's name may lie and still be read (default 10 minutes). Credentials in the telemetry frames
    are masked (:mod:`edgeinvestigate.evidence._secrets`) unless ``keep_secrets``.
    ``queue_metrics`` (queue names or ids) and ``worker_metrics`` (script names): their GraphQL
    Analytics for the window (needs ``since``; see :func:`edgeinvestigate.load_queue_metrics`);
    ``queue_metrics_files``: saved GraphQL answers of those datasets.
    ``spool``: an empty folder of the caller's (on the disk of the bundle about to be written, and
    removed by the caller after :meth:`Evidence.save`): local files of one telemetry format are then
    loaded through it (:mod:`edgeinvestigate.evidence._spool`), masked and sorted as they would be
    in memory, without ever holding the telemetry frames in memory; the result must be saved before
    the folder is removed.
    """
    s, u = parse_time(since, name="since"), parse_time(until, name="until")
    parts: list[Evidence] = []
    spooled = None
    if files and spool is not None and not workers_logs:
        spooled = spool_load(
            files,
            spool,
            since=s,
            until=u,
            strict=strict,
            jobs=jobs,
            max_record_bytes=max_record_bytes,
            mask=not keep_secrets,
        )
        if spooled is not None:
            _check_loaded(spooled.evidence, files, dlq_files)
            parts.append(spooled.evidence)
    if files and spooled is None:
        parts.append(
            _load_files(
                files,
                s,
                u,
                strict=strict,
                jobs=jobs,
                dlq_files=dlq_files,
                archive_margin=archive_margin,
                max_record_bytes=max_record_bytes,
            )
        )
    api = _client(client) if (workers_logs or dlq or queue_metrics or worker_metrics) else None
    if api is not None:
        parts.extend(_workers_logs(api, script, s, u, on_warning) for script in workers_logs)
    ev = Evidence.merge(parts) if parts else Evidence.empty()
    if parts:
        ev.manifest["window"] = {
            "since": None if s is None else s.isoformat(),
            "until": None if u is None else u.isoformat(),
        }
    extra: dict[str, Any] = {"release": release}
    if visibility_timeout_ms is not None:
        extra["visibility_timeout_ms"] = visibility_timeout_ms
    frames: list[pd.DataFrame] = []
    if api is not None:
        # load_dlq logs each of its warnings once (the CLI shows them as "warning: ..." on stderr)
        frames = [load_dlq(api, queue, mode=dlq_mode, force=force, **extra) for queue in dlq]
    frames.extend(dlq_frame_from_file(p, strict=strict) for p in dlq_files)
    if frames:
        sources = [*(f"queue:{q}" for q in dlq), *(str(p) for p in dlq_files)]
        ev = with_dlq_frames(ev, frames, sources)
    if api is not None and (queue_metrics or worker_metrics):
        ev = with_metrics(ev, queue_metrics_frames(api, queue_metrics, s, u, scripts=worker_metrics))
    for path in queue_metrics_files:
        ev = with_metrics_file(ev, path)
    if spooled is None:  # the spool loads one telemetry format: no source can overlap another
        ev.report.notes.extend(overlapping_sources(ev.invocations))
    used = api if api is not None else (client if client is not None and not callable(client) else None)
    if used is not None and getattr(used, "account_id", None):
        ev.manifest["account_id"] = used.account_id  # links back to the dashboard need it
    if keep_secrets:
        ev.manifest["secrets_masked"] = {"kept": True}
        ev.report.notes.append(KEPT_SECRETS_NOTE)
        return ev
    if spooled is not None and spooled.masked is not None:  # masked as each file was spooled
        ev.manifest["secrets_masked"] = {**spooled.masked, "kept": False}
        return ev
    return mask_secrets(ev)


def collect_inputs(files: Sequence[PathSpec], dlq_files: Sequence[str | Path] = ()) -> list[Any]:
    """The input paths of a collect (file specs without their source names, then the DLQ files):
    the bundle may not be written over them, and a rejected one among them is an error."""
    return [spec[0] if isinstance(spec, tuple) else spec for spec in files] + list(dlq_files)


def _load_files(
    files: Sequence[PathSpec],
    since: pd.Timestamp | None,
    until: pd.Timestamp | None,
    *,
    strict: bool,
    jobs: int | None,
    dlq_files: Sequence[str | Path],
    archive_margin: str | None = None,
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> Evidence:
    ev = load(
        files,
        since=since,
        until=until,
        strict=strict,
        jobs=jobs,
        archive_margin=archive_margin,
        max_record_bytes=max_record_bytes,
    )
    _check_loaded(ev, files, dlq_files)
    return ev


def _check_loaded(ev: Evidence, files: Sequence[PathSpec], dlq_files: Sequence[str | Path]) -> None:
    """Refuse a collect whose inputs held no telemetry file, or a given file that was rejected."""
    if not [f for f in ev.report.files if f.source != "skipped"]:
        given = ", ".join(str(spec[0] if isinstance(spec, tuple) else spec) for spec in files)
        passed = "; ".join(f"{f.path}: {f.issues[0].message}" for f in ev.report.files if f.issues)
        raise LoadError(
            f"no telemetry files found in {given}" + (f" (skipped: {passed})" if passed else ""),
            hint="check the path: collect reads wrangler tail JSON, TraceItems JSON(L), Logpush "
            ".log/.gz files or YYYYMMDD trees, and Workers Logs exports",
        )
    rejected_files_error(ev.report, collect_inputs(files, dlq_files))


def _client(client: CloudflareClient | Callable[[], CloudflareClient] | None) -> CloudflareClient:
    if client is None:
        raise ConfigError(
            "collecting Workers Logs or a DLQ needs a Cloudflare API client",
            hint="pass client=CloudflareClient.from_env() (CLOUDFLARE_API_TOKEN, CLOUDFLARE_ACCOUNT_ID)",
        )
    return client() if callable(client) else client


def _workers_logs(
    client: CloudflareClient,
    script: str,
    since: pd.Timestamp | None,
    until: pd.Timestamp | None,
    on_warning: Callable[[str], None] | None,
) -> Evidence:
    """The Workers Logs of ``script``; a query that returned no event at all gets a warning naming the
    Workers that have events in the window, and a likely typo of one of them is refused ("did you mean")."""
    part = load_workers_logs(client, script, since=since, until=until)
    empty = empty_query_warning(part.manifest, script, client.account_id)
    if empty:
        empty = unknown_script_check(client, part.manifest, script, empty)
        if on_warning is not None:
            on_warning(empty)
        part.report.notes.append(empty)
    return part
