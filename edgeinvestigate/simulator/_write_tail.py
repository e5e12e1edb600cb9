"""``tail/tail.json``: what ``wrangler tail --format json`` prints (cloudflare-formats A1/A2).

Each tail event is printed as ``JSON.stringify(event, null, 4)`` followed by a newline: pretty
objects back to back, not NDJSON and not an array. The file holds the events of both Workers
(consumer and producer), as two ``wrangler tail`` sessions appending to one file would.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from edgeinvestigate.simulator._fast import trace_item_lines
from edgeinvestigate.simulator._simulation import Simulation

__all__ = ["write_tail"]


def write_tail(sim: Simulation, path: Path, *, indent: int = 4) -> int:
    """Write every invocation as a pretty tail event; returns the number of events."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = msgspec.json.format
    n = 0
    with path.open("wb") as fh:
        buf: list[bytes] = []
        for line in trace_item_lines(sim):
            buf.append(fmt(line, indent=indent))
            buf.append(b"\n")
            n += 1
            if len(buf) >= 4096:
                fh.write(b"".join(buf))
                buf.clear()
        fh.write(b"".join(buf))
    return n
