"""One Logpush ``workers_trace_events`` record as a dict: the readable reference of the shape.

:func:`logpush_record` builds the documented PascalCase record of one invocation (cloudflare-formats B),
with ``Logs`` + ``Exceptions`` capped at :data:`CAP` characters and Logpush's truncation markers. The
fast writer (:func:`._fast.logpush_lines`) writes the same bytes without building dicts and falls
back to this function for the records over the cap.
"""

from __future__ import annotations

from typing import Any

from edgeinvestigate.simulator._records import InvocationView

__all__ = ["CAP", "logpush_record"]

CAP = 16_384


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
