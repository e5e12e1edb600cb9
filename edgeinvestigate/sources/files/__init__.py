"""File loaders, one private module per format. Use :func:`edgeinvestigate.load` rather than these.

Every loader has the signature ``loader(path: Path, ctx: FileContext) -> dict[str, pyarrow.Table]``
(``invocations``, ``logs``, ``exceptions``; not yet conformed) and reports problems through
``ctx.issue``. :func:`workers_logs_events_to_frames` is public so that the Workers Logs query API
(:mod:`edgeinvestigate.sources.api.workers_logs`) maps its events exactly like the file loader does.

Shared by the loaders: ``_context`` (:class:`FileContext`), ``_reading`` (plain/gzip files, blocks of
lines), ``_framing`` (JSON values of NDJSON / pretty / array text), ``_rows`` (the frame columns) and
``_coerce`` (times, log arguments, job fields). ``_worker`` loads one file, here or in a worker process;
``_split`` (with its helper process, ``_split_helper``) parses one large file on two cores.
"""

from __future__ import annotations

from edgeinvestigate.sources.files._context import FileContext
from edgeinvestigate.sources.files._logpush import load_logpush
from edgeinvestigate.sources.files._tail import load_tail
from edgeinvestigate.sources.files._traceitems import load_traceitems
from edgeinvestigate.sources.files._workers_logs import (
    load_workers_logs_export,
    workers_logs_events_to_frames,
)

__all__ = [
    "FileContext",
    "load_logpush",
    "load_tail",
    "load_traceitems",
    "load_workers_logs_export",
    "workers_logs_events_to_frames",
]
