"""Noise stays out of the postmortem: error-based findings need the least support and a burst above
the background (rca._hypotheses.context); checked on the simulator's scenarios and their ground truth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import edgeinvestigate as ei
from edgeinvestigate.analysis.rca._hypotheses.context import MIN_ERRORS, MIN_JOBS, MIN_SHARE
from edgeinvestigate.evidence.bundle import Evidence, load
from edgeinvestigate.simulator import simulate
from edgeinvestigate.sources.api.dlq_frame import dlq_frame_from_file

#: a quiet scenario (background noise only) plus a few HTTP 429s over eight minutes
QUIET_429 = """
name = "quiet-429"
description = "A quiet day with background noise; the partner API rate limits a few DATA_SYNC calls."
start = "2026-11-27T14:00:00Z"
duration_minutes = 120
invocations = 3000
noise = 0.5

[[deployments]]
tag = "v141"
at = "-3d"

[[incidents]]
id = "partner-429s"
kind = "dependency_outage"
job_type = "DATA_SYNC"
start = "+60m"
end = "+68m"
rate = {rate}
description = "the partner API answers 429 to some DATA_SYNC calls"

[[incidents.errors]]
template = "Partner API answered 429 Too Many Requests for {{url}}"
"""

ERROR_KINDS = {"bad_deploy", "dependency_outage", "poison_payload", "error_spike"}


def _run(scenario: str | Path, out: Path, seed: int) -> tuple[Evidence, dict[str, Any]]:
    summary = simulate(scenario, out, seed=seed, formats=("traceitems", "dlq"))
    ev = load([out / "traceitems" / "traceitems.jsonl"], strict=True)
    ev = ev.with_dlq(dlq_frame_from_file(out / "dlq" / "messages.json"))
    return ev, json.loads(summary.ground_truth.read_text())


def _quiet(tmp_path: Path, rate: float, seed: int) -> tuple[Evidence, dict[str, Any]]:
    path = tmp_path / "quiet-429.toml"
    path.write_text(QUIET_429.format(rate=rate))
    return _run(path, tmp_path / "out", seed)


def _incident_rows(clusters: ei.Clusters, truth: dict[str, Any], cause: str) -> pd.DataFrame:
    """The error rows (telemetry) of one ground-truth root cause, by time and text."""
    want = {(pd.Timestamp(e["ts"]), e["text"]) for e in truth["errors"] if e["root_cause"] == cause}
    a = clusters.assign[clusters.assign["source"] != "dlq"]
    keys = zip(pd.to_datetime(a["ts"], utc=True), a["text"].astype(str), strict=True)
    return a[[k in want for k in keys]]


@pytest.mark.parametrize("seed", [1, 3, 4])
def test_a_few_429s_on_a_quiet_day_are_no_finding(tmp_path: Path, seed: int) -> None:
    ev, truth = _quiet(tmp_path, rate=0.15, seed=seed)
    (cause,) = truth["root_causes"]
    errors = [e for e in truth["errors"] if e["root_cause"] == cause["id"] and e["where"] != "dlq"]
    # the setup: the ground truth's 429s are below the least support of a finding
    assert errors
    assert len(errors) < MIN_ERRORS or len(cause["affected_job_ids"]) < MIN_JOBS
    clusters = ei.cluster(ev)
    f = ei.analyze(ev, clusters)
    rows = _incident_rows(clusters, truth, cause["id"])
    assert len(rows) == len(errors)
    named = {c for h in f.hypotheses for c in h.cluster_ids}
    assert not set(rows["cluster_id"]) & named, f.to_text()
    assert not [h for h in f.hypotheses if h.kind == "dependency_outage"], f.to_text()
    # nothing to put on the postmortem's timeline: no finding, no window
    assert not [h for h in f.hypotheses if h.window is not None and h.kind in ERROR_KINDS]
    assert f.incident.title == "No incident found"
    assert "No hypothesis stands out" in f.to_text()
    # the 429s are still a cluster of the table
    assert set(rows["cluster_id"]) <= set(clusters.table["cluster_id"])


def test_the_same_429s_at_outage_scale_are_an_outage(tmp_path: Path) -> None:
    ev, truth = _quiet(tmp_path, rate=0.85, seed=1)
    (cause,) = truth["root_causes"]
    clusters = ei.cluster(ev)
    f = ei.analyze(ev, clusters)
    rows = _incident_rows(clusters, truth, cause["id"])
    assert len(rows) >= MIN_ERRORS
    assert len(rows) >= MIN_SHARE * len(clusters.assign[clusters.assign["source"] != "dlq"])
    outage = next(h for h in f.hypotheses if h.kind == "dependency_outage")
    assert set(rows["cluster_id"]) <= set(outage.cluster_ids)
    assert outage.evidence["jobs"] == len(cause["affected_job_ids"])
    bucket = pd.Timedelta(seconds=f.bucket_seconds)
    assert outage.window is not None
    assert abs(pd.Timestamp(outage.window.start) - pd.Timestamp(cause["start"])) <= bucket


@pytest.mark.parametrize(
    "scenario", ["default", "dependency-outage", "bad-deploy", "poison-payload", "cpu-limits"]
)
def test_background_noise_is_never_a_finding_and_real_causes_are(tmp_path: Path, scenario: str) -> None:
    ev, truth = _run(scenario, tmp_path, seed=3)
    clusters = ei.cluster(ev)
    f = ei.analyze(ev, clusters)
    incident_rows = pd.concat([_incident_rows(clusters, truth, rc["id"]) for rc in truth["root_causes"]])
    incident_share = incident_rows.groupby("cluster_id").size() / clusters.assign.groupby("cluster_id").size()
    for h in f.hypotheses:
        if h.kind not in ERROR_KINDS:
            continue
        # every cluster an error-based finding names is mostly rows of a real root cause
        shares = incident_share.reindex(h.cluster_ids).fillna(0.0)
        assert (shares >= 0.5).all(), (h.title, shares.to_dict(), f.to_text())
    # and every real root cause is found (by the kind the ground truth names)
    kinds = {h.kind for h in f.hypotheses}
    expected = {"cpu_limits": "limit_hit"}
    for rc in truth["root_causes"]:
        assert expected.get(rc["kind"], rc["kind"]) in kinds, f.to_text()
