"""Tail Worker ``TraceItem`` files, framed however the consumer wrote them.

Accepted: a JSON array of TraceItems; JSONL with one array (``JSON.stringify(events)``) or one object
per line; the wrapped form ``{"receivedAt": ..., "events": [...]}`` per line; pretty-printed versions
of all of these. The records are the camelCase trace records of cloudflare-formats.md A4.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from edgeinvestigate.sources.files._context import FileContext
from edgeinvestigate.sources.files._framing import iter_documents
from edgeinvestigate.sources.files._reading import read_bytes
from edgeinvestigate.sources.files._rows import Rows, show
from edgeinvestigate.sources.files._tail import add_trace_item, check_capture

__all__ = ["load_traceitems"]


def _items(value: Any, ctx: FileContext, line: int) -> list[Any]:
    if isinstance(value, list):
        out: list[Any] = []
        for v in value:
            # an array of wrapped batches is unusual but harmless
            out.extend(_items(v, ctx, line) if isinstance(v, dict) and "events" in v else [v])
        return out
    if isinstance(value, dict) and "events" in value and "outcome" not in value:
        events = value["events"]
        if isinstance(events, list):
            return events
        ctx.issue(
            "type",
            f"'events' is {type(events).__name__} {show(events)}, skipped",
            line=line,
            expected="an array of TraceItems",
        )
        return []
    return [value]


def load_traceitems(path: Path, ctx: FileContext) -> dict[str, pa.Table]:
    """Load a file of Tail Worker TraceItems (arrays, JSONL, or ``{receivedAt, events}`` wrappers)."""
    rows = Rows()
    data = read_bytes(path, ctx)
    for value, line, _raw in iter_documents(data, ctx):
        for item in _items(value, ctx, line):
            add_trace_item(item, rows, ctx, line)
    check_capture(ctx, "Tail Worker TraceItem")
    return rows.to_tables(ctx.source, ctx.path)
