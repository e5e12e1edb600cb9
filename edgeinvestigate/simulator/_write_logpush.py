"""``logpush/YYYYMMDD/<start>_<end>_<hash>.log.gz``: Logpush ``workers_trace_events`` (cloudflare-formats B).

NDJSON records with the documented PascalCase fields, gzip-compressed, one file per upload window
(``logpush_interval_s``, at most 100,000 records), in ``{DATE}`` folders. ``Logs`` + ``Exceptions``
are capped at 16,384 characters with Logpush's truncation markers. The ``Event`` of queue and
scheduled invocations uses the PascalCase keys of the fetch shape seen live (``Queue``/``BatchSize``,
``Cron``/``ScheduledTimeMs``): an assumption, marked in ARCHITECTURE.md.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import isal.igzip as igzip

from edgeinvestigate.simulator._fast import logpush_lines
from edgeinvestigate.simulator._simulation import Simulation

__all__ = ["write_logpush"]

MAX_RECORDS = 100_000


def _stamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y%m%dT%H%M%SZ")


def write_logpush(sim: Simulation, root: Path) -> list[Path]:
    """Write the gz files; returns their paths."""
    interval = sim.scenario.system.logpush_interval_s * 1000
    files: list[Path] = []
    lines: list[bytes] = []
    window = None
    first_ms = last_ms = 0

    def flush() -> None:
        if not lines:
            return
        data = b"".join(lines)
        digest = hashlib.sha256(data).hexdigest()[:8]
        day = datetime.fromtimestamp(first_ms / 1000, tz=UTC).strftime("%Y%m%d")
        folder = root / day
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{_stamp(first_ms)}_{_stamp(last_ms)}_{digest}.log.gz"
        path.write_bytes(igzip.compress(data, compresslevel=1, mtime=0))
        files.append(path)
        lines.clear()

    for ts, line in logpush_lines(sim):
        w = ts // interval
        if window is not None and (w != window or len(lines) >= MAX_RECORDS):
            flush()
        if not lines:
            first_ms = ts
        window = w
        last_ms = ts
        lines.append(line + b"\n")
    flush()
    return files
