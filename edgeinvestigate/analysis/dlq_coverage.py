"""How much of the dead-letter queue a bundle holds, and the findings that say so.

``collect --dlq QUEUE`` peeks by default: the Queues API shows at most the 100 messages at the head
of the queue, so a DLQ of 566 messages arrives as 100. A snapshot may stop early too. The manifest's
``dlq_collections`` records each collection (``mode``, ``messages``, ``backlog_count``,
``complete``); :func:`dlq_coverage` reads them into a
:class:`~edgeinvestigate.models.findings.DlqCoverage` (``None`` when every collection was complete,
or the DLQ came from a file), and :func:`mark_partial_dlq` makes every finding that counts DLQ
messages say that its number is "of the first 100 only" (``evidence["dlq_partial"]`` and its
sentence), so a dependency outage never reads "0 DLQ messages" where a snapshot finds 64.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from edgeinvestigate.models.findings import DlqCoverage, Hypothesis

__all__ = ["dlq_coverage", "mark_partial_dlq"]


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def dlq_coverage(manifest: Mapping[str, Any]) -> DlqCoverage | None:
    """The part of the DLQ a bundle holds (see the module docs); ``None`` when it holds all of it."""
    partial = []
    for c in manifest.get("dlq_collections") or []:
        if not isinstance(c, Mapping):
            continue
        seen, backlog = _int(c.get("messages")), _int(c.get("backlog_count"))
        if c.get("complete") is False or (seen is not None and backlog is not None and backlog > seen):
            partial.append((str(c.get("queue") or ""), str(c.get("mode") or "peek"), seen or 0, backlog))
    if not partial:
        return None
    modes = {m for _, m, _, _ in partial}
    backlogs = [b for _, _, _, b in partial]
    return DlqCoverage(
        mode="mixed" if len(modes) > 1 else ("snapshot" if modes == {"snapshot"} else "peek"),
        seen=sum(n for _, _, n, _ in partial),
        backlog=sum(b for b in backlogs if b is not None) if all(b is not None for b in backlogs) else None,
        queues=sorted({q for q, _, _, _ in partial if q}),
    )


def mark_partial_dlq(hyps: Iterable[Hypothesis], coverage: DlqCoverage | None) -> None:
    """Every finding that counts DLQ messages says they are of the first N only (in place)."""
    if coverage is None:
        return
    for h in hyps:
        n = h.evidence.get("dlq_messages")
        if not isinstance(n, int) or isinstance(n, bool):
            continue
        h.evidence["dlq_partial"] = coverage.label
        h.sentence += f" DLQ messages of this finding: {n:,}, {coverage.label} ({coverage.reason})."
