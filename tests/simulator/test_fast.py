"""The fast byte-level writers produce exactly the documented dict shapes of ``_records``."""

from __future__ import annotations

import msgspec

from edgeinvestigate.simulator._engine import run
from edgeinvestigate.simulator._fast import logpush_lines, trace_item_lines
from edgeinvestigate.simulator._logpush_record import logpush_record
from edgeinvestigate.simulator._records import invocations, trace_item
from edgeinvestigate.simulator._scenario import load_scenario


def test_fast_lines_equal_the_reference_dicts() -> None:
    for name in ("default", "cpu-limits"):
        sim = run(load_scenario(name), seed=5, invocations=400)
        views = list(invocations(sim))
        enc = msgspec.json.encode
        assert list(trace_item_lines(sim)) == [enc(trace_item(v)) for v in views]
        detail = list(trace_item_lines(sim, version_detail=True))
        assert detail == [enc(trace_item(v, version_detail=True)) for v in views]
        fast = list(logpush_lines(sim))
        assert [ts for ts, _ in fast] == [v.ts for v in views]
        assert [line for _, line in fast] == [enc(logpush_record(v)) for v in views]


def test_fast_workers_logs_events_equal_the_reference_dicts() -> None:
    from edgeinvestigate.simulator._write_workers_logs import event_lines, iter_events

    for name in ("default", "cpu-limits"):
        sim = run(load_scenario(name), seed=5, invocations=300)
        assert list(event_lines(sim)) == [msgspec.json.encode(e) for e in iter_events(sim)]
