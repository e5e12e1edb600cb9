"""Evidence as a DLQ peek sees it: the head of the queue and the manifest's collection record."""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd

from edgeinvestigate.evidence.bundle import Evidence


def as_peeked(ev: Evidence, dlq: pd.DataFrame, n: int, **manifest: Any) -> Evidence:
    """``ev`` with the first ``n`` messages of ``dlq`` by arrival, recorded as a peek of ``jobs-dlq``
    whose backlog is all of ``dlq`` (``manifest``: more manifest entries)."""
    head = dlq.sort_values("enqueued_at", kind="stable").head(n).reset_index(drop=True)
    peek = ev.with_dlq(head)
    record = {
        "queue": "jobs-dlq",
        "mode": "peek",
        "messages": n,
        "backlog_count": len(dlq),
        "complete": False,
    }
    return dataclasses.replace(peek, manifest={**peek.manifest, **manifest, "dlq_collections": [record]})
