"""Workers Logs from the Workers Observability query API as an :class:`Evidence` bundle.

>>> ev = ei.load_workers_logs(client, "jobs-consumer", since="-2h")      # doctest: +SKIP

The query, paging and mapping are :func:`edgeinvestigate.sources.api.workers_logs.workers_logs_frames`;
this module records them in a bundle's manifest (the query URL as the source, with the window and
paging statistics).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from edgeinvestigate.evidence.bundle import Evidence
from edgeinvestigate.sources.api.workers_logs import MAX_LIMIT, SOURCE, workers_logs_frames

if TYPE_CHECKING:
    from edgeinvestigate.cloudflare.client import CloudflareClient

__all__ = ["load_workers_logs"]


def load_workers_logs(
    client: CloudflareClient,
    script: str,
    since: Any = None,
    until: Any = None,
    limit: int = MAX_LIMIT,
    *,
    max_events: int | None = None,
    filters: Sequence[Mapping[str, Any]] = (),
    needle: str | None = None,
    strict: bool = False,
) -> Evidence:
    """Workers Logs of ``script`` between ``since`` and ``until`` (default: the last hour) as Evidence.

    ``limit`` is the page size (at most 2000); ``max_events`` caps the total; ``filters`` are extra
    query filters (``{key, operation, type, value}``); ``needle`` is a full-text search.
    """
    wl = workers_logs_frames(
        client,
        script,
        since,
        until,
        limit,
        max_events=max_events,
        filters=filters,
        needle=needle,
        strict=strict,
    )
    stats = wl.stats
    manifest = {
        "created_at": datetime.now(UTC).isoformat(),
        "window": {"since": stats["since"], "until": stats["until"]},
        "sources": [{"path": wl.source_file, "source": SOURCE, **stats}],
        "strict": strict,
    }
    return Evidence(
        invocations=wl.frames["invocations"],
        logs=wl.frames["logs"],
        exceptions=wl.frames["exceptions"],
        report=wl.report,
        manifest=manifest,
    )
