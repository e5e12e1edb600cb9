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
from typing import Any

import isal.igzip as igzip

from edgeinvestigate.simulator._engine import Simulation
from edgeinvestigate.simulator._records import InvocationView

__all__ = ["logpush_record", "write_logpush"]

CAP = 16_384
MAX_RECORDS = 100_000


def _event(inv: InvocationView) -> dict[str, Any]:
    if inv.trigger == "queue":
        return {"Queue": inv.queue, "BatchSize": inv.batch}
    if inv.trigger == "fetch":
        return {
            "RayID": inv.ray_id,
            "Request": {"URL": inv.url, "Method": "POST"},
            "Response": {"Status": inv.status},
        }
    return {"Cron": inv.cron, "ScheduledTimeMs": inv.ts - (inv.ts % 60_000)}


def _capped(inv: InvocationView) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    exc: list[dict[str, Any]] = [
        {"Name": n, "Message": m, "TimestampMs": ts} for ts, n, m, _ in inv.exceptions
    ]
    logs: list[dict[str, Any]] = [
        {"Level": lv, "Message": [text], "TimestampMs": ts} for ts, lv, text in inv.logs
    ]
    used = sum(len(n) + len(m) for _, n, m, _ in inv.exceptions)
    if used + sum(len(t) for _, _, t in inv.logs) <= CAP:
        return exc, logs
    # Logpush counts exception names first, then exception messages, then log messages
    out_exc: list[dict[str, Any]] = []
    used = sum(len(n) for _, n, _, _ in inv.exceptions)
    for e in exc:
        if used + len(e["Message"]) > CAP:
            out_exc.append({"Name": e["Name"], "Message": "<<<Logpush: exception messages truncated>>>",
                            "TimestampMs": e["TimestampMs"]})  # fmt: skip
            return out_exc, []
        used += len(e["Message"])
        out_exc.append(e)
    out_logs: list[dict[str, Any]] = []
    for rec, (_, _, text) in zip(logs, inv.logs, strict=True):
        if used + len(text) > CAP:
            out_logs.append({"Level": rec["Level"], "Message": ["<<<Logpush: messages truncated>>>"],
                             "TimestampMs": rec["TimestampMs"]})  # fmt: skip
            break
        used += len(text)
        out_logs.append(rec)
    return out_exc, out_logs


def logpush_record(inv: InvocationView) -> dict[str, Any]:
    exc, logs = _capped(inv)
    return {
        "CPUTimeMs": inv.cpu,
        "DispatchNamespace": "",
        "Entrypoint": "",
        "Event": _event(inv),
        "EventTimestampMs": inv.ts,
        "EventType": inv.trigger,
        "Exceptions": exc,
        "Logs": logs,
        "Outcome": inv.outcome,
        "ScriptName": inv.script,
        "ScriptTags": [],
        "ScriptVersion": {"ID": inv.version.id, "Message": inv.version.message, "Tag": inv.version.tag},
        "WallTimeMs": inv.wall,
    }


def _stamp(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y%m%dT%H%M%SZ")


def write_logpush(sim: Simulation, root: Path) -> list[Path]:
    """Write the gz files; returns their paths."""
    from edgeinvestigate.simulator._fast import logpush_lines

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
