"""Workers Logs: dashboard export (flattened) and API events, grouped into invocations."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import edgeinvestigate as ei
from edgeinvestigate.models.load_report import FileReport
from edgeinvestigate.sources.files import workers_logs_events_to_frames


@pytest.mark.parametrize(
    "rel",
    ["workers_logs/dashboard-export.json", "workers_logs/api-events.json", "workers_logs/api-events.ndjson"],
)
def test_exports_group_into_invocations(data_dir, rel):
    ev = ei.load(data_dir / rel)
    assert ev.report.files[0].source == "workers_logs_export"
    assert ev.report.n_issues == 0
    inv = ev.invocations
    assert list(inv["script"].astype(str)) == ["email-consumer", "jobs-api"]
    q = inv.iloc[0]
    assert (q.trigger, q.queue, q.batch_size, q.outcome, q.cpu_ms, q.wall_ms) == (
        "queue",
        "email-jobs",
        1,
        "exception",
        9.0,
        412.0,
    )
    assert q.ts == pd.Timestamp("2026-11-27T14:05:00Z")
    assert bool(q.failed)
    assert q.n_logs == 1
    assert q.n_exceptions == 1
    f = inv.iloc[1]
    assert (f.trigger, f.url, f.method, f.status, bool(f.failed)) == (
        "fetch",
        "https://jobs.example.com/enqueue",
        "POST",
        202,
        False,
    )
    log = ev.logs.iloc[0]
    assert (log.job_id, log.job_type, log.attempt, log.message_id, log.level) == (
        "job_01HZX3",
        "EMAIL_DELIVERY",
        3,
        "9f1c2d3e4b5a69788",
        "log",
    )
    exc = ev.exceptions.iloc[0]
    assert exc["name"] == "Error"
    assert "index.js:88" in exc["stack"]
    assert exc["invocation_id"] == q.invocation_id


def test_dashboard_and_api_shapes_agree(data_dir):
    a = ei.load(data_dir / "workers_logs/dashboard-export.json")
    b = ei.load(data_dir / "workers_logs/api-events.json")
    cols = [
        "invocation_id",
        "ts",
        "script",
        "trigger",
        "outcome",
        "failed",
        "cpu_ms",
        "n_logs",
        "n_exceptions",
    ]
    pd.testing.assert_frame_equal(a.invocations[cols], b.invocations[cols])
    pd.testing.assert_frame_equal(a.exceptions, b.exceptions)


def test_events_to_frames_function_for_the_api(data_dir):
    events = json.loads((data_dir / "workers_logs/api-events.json").read_text())
    report = FileReport(path="api", source="workers_logs")
    frames = workers_logs_events_to_frames(
        events, "https://api.cloudflare.com/client/v4/accounts/x/query", report=report
    )
    assert set(frames) == {"invocations", "logs", "exceptions"}
    assert frames["invocations"]["source"].iloc[0] == "workers_logs"
    assert frames["invocations"]["source_file"].iloc[0].startswith("https://")
    assert report.records == 5
    assert report.invocations == 2
    ev = ei.load(data_dir / "workers_logs/api-events.json")
    assert list(frames["invocations"]["invocation_id"]) == list(ev.invocations["invocation_id"])
    # a window pushes down
    frames = workers_logs_events_to_frames(events, "api", since="2026-11-27T14:05:30Z")
    assert list(frames["invocations"]["script"].astype(str)) == ["jobs-api"]


def test_saved_query_response_and_lines_without_invocation_event(tmp_path, data_dir):
    events = json.loads((data_dir / "workers_logs/api-events.json").read_text())
    logs_only = [e for e in events if e["$metadata"]["type"] != "cf-worker-event"]  # invocation_logs=false
    resp = {
        "success": True,
        "errors": [],
        "messages": [],
        "result": {"events": {"count": len(logs_only), "events": logs_only}},
    }
    p = tmp_path / "query.json"
    p.write_text(json.dumps(resp))
    ev = ei.load(p)
    inv = ev.invocations
    assert len(inv) == 2
    # no invocation line: no CPU/wall, outcome unknown; failed because of the exception
    assert pd.isna(inv.iloc[0].cpu_ms)
    assert pd.isna(inv.iloc[0].outcome)
    assert bool(inv.iloc[0].failed)
    assert pd.isna(inv.iloc[1].failed)  # nothing says whether it failed
    assert inv.iloc[0].ts == pd.Timestamp("2026-11-27T14:05:00.005Z")  # earliest line of the invocation
