"""Queue and Worker analytics in a bundle: ``load_queue_metrics()`` and adding them to an Evidence.

>>> ev = ei.load_queue_metrics(client, ["jobs", "jobs-dlq"], since="-2h", until=None)    # doctest: +SKIP
>>> ev.frame("queue_backlog"), ev.frame("queue_operations"), ev.manifest["queue_metrics"] # doctest: +SKIP

The frames are :mod:`edgeinvestigate.sources.api.queue_metrics`'s; they go into ``ev.extra`` (saved and
opened with the bundle), what was asked into ``manifest["queue_metrics"]``, and the notes (estimates,
"no data, not zero", shortened windows) into the load report's notes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeinvestigate.evidence._extra import merge_extra
from edgeinvestigate.evidence.bundle import Evidence
from edgeinvestigate.sources.api.queue_metrics import MetricsFrames, queue_metrics_frames, read_metrics_file

if TYPE_CHECKING:
    from edgeinvestigate.cloudflare.client import CloudflareClient

__all__ = ["load_queue_metrics", "with_metrics", "with_metrics_file"]


def with_metrics(ev: Evidence, metrics: MetricsFrames) -> Evidence:
    """A copy of ``ev`` with the analytics frames added (stacked onto any it has)."""
    extra = merge_extra([ev.extra, metrics.frames]) if ev.extra else dict(metrics.frames)
    manifest = dict(ev.manifest)
    old = manifest.get("queue_metrics")
    manifest["queue_metrics"] = metrics.manifest if old is None else {"parts": [old, metrics.manifest]}
    report = replace(
        ev.report, notes=[*ev.report.notes, *(n for n in metrics.notes if n not in ev.report.notes)]
    )
    return ev.copy_with(report=report, manifest=manifest, extra=extra)


def load_queue_metrics(
    client: CloudflareClient,
    queues: Sequence[str] = (),
    since: Any = None,
    until: Any = None,
    *,
    scripts: Sequence[str] = (),
) -> Evidence:
    """The backlog, message operations and consumer concurrency of ``queues`` (names or ids) and the
    invocations of ``scripts`` over ``[since, until)`` from the GraphQL Analytics API, as an
    :class:`Evidence` with only those frames (merge it with others, or save it). The token needs
    Account Analytics Read."""
    part = with_metrics(Evidence.empty(), queue_metrics_frames(client, queues, since, until, scripts=scripts))
    part.manifest["window"] = dict(part.manifest["queue_metrics"]["window"])
    return part


def with_metrics_file(ev: Evidence, path: str | Path) -> Evidence:
    """``ev`` plus the analytics of a saved GraphQL answer (``collect --queue-metrics-file``)."""
    out = with_metrics(ev, read_metrics_file(path))
    out.manifest["sources"] = [
        *out.manifest.get("sources", []),
        {"path": str(path), "source": "queue_metrics"},
    ]
    return out
