"""The loaders read every format the simulator writes, and the frames agree across formats."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from _sim_helpers import Run

import edgeinvestigate as ei
from edgeinvestigate.sources.api.dlq_frame import dlq_frame_from_file

FORMATS = {
    "tail": "tail/tail.json",
    "traceitems": "traceitems/traceitems.jsonl",
    "logpush": "logpush",
    "workers_logs": "workers_logs/events.json",
}


@pytest.fixture(scope="module")
def frames(default_run: Run) -> dict[str, Any]:
    return {name: ei.load([default_run.out / rel], strict=True) for name, rel in FORMATS.items()}


@pytest.mark.parametrize("scenario", ["cpu-limits", "poison-payload"])
def test_other_scenarios_agree_too(scenario: str, sim_factory: Any) -> None:
    run = sim_factory(scenario)
    summaries = {name: _summary(ei.load([run.out / rel], strict=True)) for name, rel in FORMATS.items()}
    assert all(s == summaries["tail"] for s in summaries.values())
    c = run.truth["counts"]
    assert summaries["tail"]["exceptions"] == c["exceptions"]
    assert summaries["tail"]["failed"] == c["invocations"]["failed"]
    if scenario == "cpu-limits":
        assert summaries["tail"]["outcomes"].get("exceededCpu", 0) > 0


def _summary(ev: Any) -> dict[str, Any]:
    inv, logs, exc = ev.invocations, ev.logs, ev.exceptions
    return {
        "invocations": len(inv),
        "logs": len(logs),
        "exceptions": len(exc),
        "failed": int(inv["failed"].sum()),
        "outcomes": inv["outcome"].astype(str).value_counts().sort_index().to_dict(),
        "triggers": inv["trigger"].astype(str).value_counts().sort_index().to_dict(),
        "scripts": inv["script"].astype(str).value_counts().sort_index().to_dict(),
        "versions": inv["script_version"].astype(str).value_counts().sort_index().to_dict(),
        "levels": logs["level"].astype(str).value_counts().sort_index().to_dict(),
        "job_lines": int(logs["job_id"].notna().sum()),
        "exception_messages": sorted(exc["message"].astype(str)),
        "cpu": float(inv["cpu_ms"].sum()),
        "wall": float(inv["wall_ms"].sum()),
        "batch": int(inv["batch_size"].fillna(0).sum()),
    }


def test_frames_agree_across_formats(frames: dict[str, Any], default_run: Run) -> None:
    summaries = {name: _summary(ev) for name, ev in frames.items()}
    first = summaries["tail"]
    for name, s in summaries.items():
        assert s == first, name
        assert frames[name].report.skipped == 0
    c = default_run.truth["counts"]
    assert first["invocations"] == c["invocations"]["total"]
    assert first["logs"] == c["logs"]["total"]
    assert first["exceptions"] == c["exceptions"]
    assert first["failed"] == c["invocations"]["failed"]
    assert first["outcomes"] == dict(sorted(c["invocations"]["by_outcome"].items()))


def test_job_fields_are_lifted_from_structured_logs(frames: dict[str, Any], default_run: Run) -> None:
    logs = frames["logpush"].logs
    jobs = logs[logs["job_id"].notna()]
    assert set(jobs["job_type"].astype(str)) >= {"EMAIL_DELIVERY", "IMAGE_PROCESSING"}
    assert jobs["message_id"].notna().all()
    assert jobs["attempt"].between(1, 4).all()
    affected = set(default_run.truth["root_causes"][0]["affected_message_ids"])
    assert affected <= set(jobs["message_id"].astype(str))


def test_time_windows_match(frames: dict[str, Any], default_run: Run) -> None:
    w = default_run.truth["window"]
    for ev in frames.values():
        ts = ev.invocations["ts"]
        assert ts.min() >= pd.Timestamp(w["start"]) - pd.Timedelta(minutes=10)
        assert ts.max() <= pd.Timestamp(w["last_event"])


def test_dlq_frame_matches_ground_truth(default_run: Run) -> None:
    df = dlq_frame_from_file(default_run.out / "dlq" / "messages.json")
    truth = default_run.truth["dlq"]
    assert list(df["message_id"].astype(str)) == [d["dlq_message_id"] for d in truth]
    assert list(df["envelope"].astype(str)) == [d["envelope"] for d in truth]
    assert list(df["job_id"].astype(str)) == [d["job_id"] for d in truth]
    assert list(df["attempts"]) == [d["dlq_attempts"] for d in truth]
    wrapped = df[df["envelope"] == "wrapped"]
    want = [d["error"] for d in truth if d["envelope"] == "wrapped"]
    assert list(wrapped["error"].astype(str)) == want
    assert df["decode_error"].isna().all()
    assert (df["queue"].astype(str) == "jobs-dlq").all()
