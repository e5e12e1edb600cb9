"""wrangler tail --format json: both indentations, NDJSON, the stray `json` line, every event variant."""

from __future__ import annotations

import pandas as pd
import pytest

import edgeinvestigate as ei
from edgeinvestigate.models.frames import FRAMES

TAIL_FILES = ["tail/tail-4space.json", "tail/tail-2space-stray.json", "tail/tail.ndjson"]


@pytest.mark.parametrize("rel", TAIL_FILES)
def test_every_framing_gives_the_same_frames(data_dir, rel):
    ref = ei.load(data_dir / "tail/tail.ndjson")
    ev = ei.load(data_dir / rel)
    assert ev.report.files[0].source == "tail"
    for name in ("invocations", "logs", "exceptions"):
        got, want = ev.frame(name), ref.frame(name)
        if "source_file" in got:
            got, want = got.drop(columns="source_file"), want.drop(columns="source_file")
        pd.testing.assert_frame_equal(got, want)
    assert list(ev.invocations.columns) == list(FRAMES["invocations"])


def test_triggers_and_fields(data_dir):
    ev = ei.load(data_dir / "tail/tail-4space.json")
    inv = ev.invocations
    assert list(inv["trigger"].astype(str)) == [
        "queue",
        "fetch",
        "scheduled",
        "alarm",
        "email",
        "tail",
        "rpc",
        "websocket",
        "unknown",
        "queue",
        "custom",
    ]
    q = inv.iloc[0]
    assert (q.script, q.queue, q.batch_size, q.outcome) == ("email-consumer", "email-jobs", 1, "exception")
    assert q.cpu_ms == 9.0
    assert q.wall_ms == 412.0
    assert q.n_logs == 2
    assert q.n_exceptions == 1
    assert bool(q.failed)
    assert q.script_version == "5d1f6a3e-8c2b-4a51-9f0e-2b7c3d4e5f60"
    assert q.ts == pd.Timestamp("2026-11-27T14:05:00Z")
    f = inv.iloc[1]
    assert (f.url, f.method, f.status, bool(f.failed)) == (
        "https://jobs.example.com/enqueue?token=REDACTED",
        "POST",
        202,
        False,
    )
    assert inv.iloc[3].entrypoint == "RateLimiter"
    # scriptName null and event null, zero cpu/wall time (local workerd) stay as given
    old = inv.iloc[8]
    assert pd.isna(old.script)
    assert old.cpu_ms == 0.0
    assert old.wall_ms == 0.0
    # older workerd: outcome ok but an exception -> failed
    assert inv.iloc[9].outcome == "ok"
    assert bool(inv.iloc[9].failed)
    assert inv.iloc[9].batch_size == 4
    # optional fields missing -> null, never invented
    assert pd.isna(inv.iloc[2].cpu_ms)
    assert pd.isna(inv.iloc[2].truncated)
    assert pd.isna(inv.iloc[2].url)


def test_structured_logs_lift_job_fields(data_dir):
    ev = ei.load(data_dir / "tail/tail-4space.json")
    logs = ev.logs
    first, second = logs.iloc[0], logs.iloc[1]
    assert (first.job_id, first.job_type, first.attempt, first.message_id) == (
        "job_01HZX3",
        "EMAIL_DELIVERY",
        3,
        "9f1c2d3e4b5a69788",
    )
    # an object argument with snake_case keys
    assert (second.job_id, second.job_type, second.attempt, second.level) == (
        "job_01HZX3",
        "EMAIL_DELIVERY",
        3,
        "error",
    )
    assert second.args.startswith('[{"event":"job_failed"')
    plain = logs[logs["message"] == "enqueued job_01HZX9"].iloc[0]
    assert plain.args == '["enqueued","job_01HZX9"]'
    assert pd.isna(plain.job_id)
    assert set(logs["invocation_id"]) <= set(ev.invocations["invocation_id"])
    exc = ev.exceptions.iloc[0]
    assert exc["name"] == "Error"
    assert exc["message"].startswith("SMTP 421")
    assert "index.js:88" in exc["stack"]


def test_stray_line_and_sampling_notice_are_reported_not_fatal(data_dir):
    ev = ei.load(data_dir / "tail/tail-2space-stray.json", strict=True)
    [(_, issue)] = ev.report.issues()
    assert issue.severity == "info"
    assert issue.kind == "stray"
    assert issue.line == 216
    ev = ei.load(data_dir / "tail/tail-4space.json")
    [(_path, issue)] = ev.report.issues()
    assert issue.kind == "tail-info"
    assert "sampling" in issue.message
    assert ev.report.ok


def test_invocation_ids_are_stable_and_distinct(data_dir):
    a = ei.load(data_dir / "tail/tail-4space.json").invocations["invocation_id"]
    b = ei.load(data_dir / "tail/tail-2space-stray.json").invocations["invocation_id"]
    assert list(a) == list(b)
    assert a.is_unique
    # known value: xxh3-64 of the record's compact JSON; a change here breaks saved bundles
    assert a.iloc[0] == ei.load(data_dir / "traceitems/array.json").invocations["invocation_id"].iloc[0]
