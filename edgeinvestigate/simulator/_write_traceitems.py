"""``traceitems/traceitems.jsonl``: what a Tail Worker forwards (cloudflare-formats A4).

A Tail Worker's ``tail(events)`` gets an array of ``TraceItem``; the consumer here writes
``JSON.stringify(events)`` as one line per call. Each array holds the items of one tail call (one
invocation, as usual for a Worker outside a dispatch namespace).
"""

from __future__ import annotations

from pathlib import Path

from edgeinvestigate.simulator._fast import trace_item_lines
from edgeinvestigate.simulator._simulation import Simulation

__all__ = ["write_traceitems"]


def write_traceitems(sim: Simulation, path: Path) -> int:
    """Write one ``[TraceItem]`` array per line; returns the number of items."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("wb") as fh:
        buf: list[bytes] = []
        for line in trace_item_lines(sim, version_detail=True):
            buf.append(b"[" + line + b"]\n")
            n += 1
            if len(buf) >= 8192:
                fh.write(b"".join(buf))
                buf.clear()
        fh.write(b"".join(buf))
    return n
