"""Tail Worker TraceItems: a JSON array, JSONL arrays, and {receivedAt, events} wrappers."""

from __future__ import annotations

import pandas as pd
import pytest

import edgeinvestigate as ei


@pytest.mark.parametrize(
    "rel", ["traceitems/array.json", "traceitems/arrays.jsonl", "traceitems/wrapped.jsonl"]
)
def test_traceitem_framings_match_the_tail_records(data_dir, rel):
    ev = ei.load(data_dir / rel)
    ref = ei.load(data_dir / "tail/tail.ndjson")
    assert ev.report.files[0].source == "traceitems"
    assert ev.report.ok
    assert ev.report.n_issues == 0
    got = ev.invocations.drop(columns=["source", "source_file"])
    want = ref.invocations.drop(columns=["source", "source_file"])
    pd.testing.assert_frame_equal(got, want)
    pd.testing.assert_frame_equal(ev.logs, ref.logs)
    pd.testing.assert_frame_equal(ev.exceptions, ref.exceptions)


def test_two_items_per_array_dispatch_namespace(tmp_path):
    # A dispatch-namespace worker and the user worker arrive in one array.
    items = [
        {
            "outcome": "ok",
            "scriptName": "dispatcher",
            "dispatchNamespace": "customers",
            "eventTimestamp": 1795788300000,
            "event": {
                "request": {"url": "https://a.example.com/", "method": "GET", "headers": {}},
                "response": {"status": 200},
            },
            "logs": [],
            "exceptions": [],
            "cpuTime": 1,
            "wallTime": 2,
            "truncated": False,
            "executionModel": "stateless",
        },
        {
            "outcome": "exception",
            "scriptName": "customer-worker",
            "eventTimestamp": 1795788300001,
            "event": {"request": {"url": "https://a.example.com/", "method": "GET", "headers": {}}},
            "logs": [
                {"message": ["boom"], "level": "error", "timestamp": 1795788300002, "errorInfo": [None]}
            ],
            "exceptions": [{"name": "Error", "message": "boom", "timestamp": 1795788300003}],
            "cpuTime": 3,
            "wallTime": 4,
            "truncated": True,
            "executionModel": "stateless",
        },
    ]
    import json

    p = tmp_path / "events.jsonl"
    p.write_text(json.dumps(items) + "\n")
    ev = ei.load(p)
    inv = ev.invocations
    assert list(inv["script"].astype(str)) == ["dispatcher", "customer-worker"]
    assert inv.iloc[0].dispatch_namespace == "customers"
    assert inv.iloc[0].status == 200
    assert bool(inv.iloc[1].truncated)
    assert bool(inv.iloc[1].failed)
    assert pd.isna(inv.iloc[1].status)
    assert ev.logs.iloc[0].message == "boom"
    assert ev.logs.iloc[0].level == "error"
