"""The queue findings on hand-made analytics frames: each rule, and no data never read as zero."""

from __future__ import annotations

import pandas as pd

import edgeinvestigate as ei
from edgeinvestigate.models.frames import conform

T0 = pd.Timestamp("2026-11-27T14:00Z")


def _bundle(minutes: int, reads, writes, backlog, concurrency=None) -> ei.Evidence:
    """One queue ``q``; a list value per minute, ``None`` for no row (no data)."""
    ops, back, conc = [], [], []
    for m in range(minutes):
        ts = T0 + pd.Timedelta(minutes=m)
        if writes[m] is not None:
            ops.append(
                {
                    "ts": ts,
                    "queue": "q",
                    "action": "WriteMessage",
                    "count": writes[m],
                    "bytes": 10 * writes[m],
                }
            )
        if reads[m]:
            ops.append({"ts": ts, "queue": "q", "action": "ReadMessage", "consumer_type": "worker",
                        "count": reads[m], "bytes": 10 * reads[m], "lag_ms": 50.0})  # fmt: skip
        if backlog[m] is not None:
            back.append({"ts": ts, "queue": "q", "messages": float(backlog[m]), "bytes": 10.0 * backlog[m]})
        if concurrency is not None and concurrency[m] is not None:
            conc.append({"ts": ts, "queue": "q", "concurrency": float(concurrency[m])})
    ev = ei.Evidence.empty()
    ev.extra = {
        "queue_operations": conform(pd.DataFrame(ops), "queue_operations"),
        "queue_backlog": conform(pd.DataFrame(back), "queue_backlog"),
        "queue_consumers": conform(pd.DataFrame(conc), "queue_consumers"),
    }
    ev.manifest["queue_metrics"] = {"bucket_seconds": 60}
    return ev


def test_concurrency_falling_while_the_backlog_rises_is_falling_behind() -> None:
    reads = [20, 20, 20, 12, 12, 12, 12]  # reads fall by 40%: not half
    writes = [20] * 7
    backlog = [5, 5, 5, 13, 21, 29, 37]
    conc = [4, 4, 4, 1, 1, 1, 1]
    findings = ei.analyze(_bundle(7, reads, writes, backlog, conc))
    [stall] = [h for h in findings.hypotheses if h.kind == "consumer_stalled"]
    assert stall.evidence["mode"] == "falling_behind"
    assert stall.evidence["signal"] == "concurrency"
    assert stall.evidence["backlog_growth"] == 32.0
    assert stall.evidence["concurrency_before"] == 4.0
    assert stall.evidence["concurrency_during"] == 1.0
    assert "fell behind" in stall.title


def test_a_gap_in_the_data_is_not_a_stall() -> None:
    # minutes 3-5 have no row at all (an idle queue answers nothing): not zero reads
    reads = [20, 20, 20, None, None, None, 20]
    writes = [20, 20, 20, None, None, None, 20]
    backlog = [5, 5, 5, None, None, None, 5]
    findings = ei.analyze(_bundle(7, reads, writes, backlog))
    assert [h.kind for h in findings.hypotheses] == []
    [health] = findings.queue_health
    assert health.reads == 80
    assert health.backlog_peak == 5.0


def test_reads_down_with_steady_writes_and_no_backlog_data_is_a_throughput_drop() -> None:
    reads = [30, 30, 30, 10, 10, 10, 10, 30]
    writes = [30] * 8
    backlog = [None] * 8  # the backlog dataset gave nothing
    findings = ei.analyze(_bundle(8, reads, writes, backlog))
    [drop] = findings.hypotheses
    assert drop.kind == "throughput_drop"
    assert drop.evidence["missing_reads"] == 4 * 20.0
    assert drop.evidence["start"] == (T0 + pd.Timedelta(minutes=3)).isoformat()
    assert findings.queue_health[0].no_data == ["backlog", "concurrency"]
