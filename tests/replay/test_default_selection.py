"""The default selection: the clusters the findings say a fix made safe, never the ground truth."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

import edgeinvestigate as ei
from edgeinvestigate.replay._default_selection import SafeCluster, default_selection

T = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)


def _at(minutes: int) -> datetime:
    return T + pd.Timedelta(minutes=minutes)


def _deploy(version: str, minutes: int, script: str = "jobs-consumer") -> SimpleNamespace:
    return SimpleNamespace(script=script, version=version, at=_at(minutes))


def _clusters(*rows: tuple[str, int, str, int]) -> SimpleNamespace:
    """(cluster id, DLQ messages, kind, last error at minute)"""
    table = pd.DataFrame(
        [
            {"cluster_id": c, "n_dlq_messages": n, "kind": k, "kind_rule": "timeout", "last_seen": _at(m)}
            for c, n, k, m in rows
        ]
    )
    return SimpleNamespace(table=table)


def _findings(hypotheses: list[SimpleNamespace], deploys: list[SimpleNamespace]) -> SimpleNamespace:
    return SimpleNamespace(hypotheses=hypotheses, deploys=deploys, window=SimpleNamespace(end=_at(120)))


def _bad_deploy(deploy: SimpleNamespace, *cluster_ids: str) -> SimpleNamespace:
    return SimpleNamespace(kind="bad_deploy", deploy=deploy, cluster_ids=list(cluster_ids))


def test_the_sample_incident_replays_the_reverted_deploy_and_the_outage_that_ended() -> None:
    ev = ei.sample_bundle()
    clusters = ei.cluster(ev)
    findings = ei.analyze(ev, clusters=clusters)
    safe = default_selection(ev, clusters=clusters, findings=findings)
    bad = next(h for h in findings.hypotheses if h.kind == "bad_deploy")
    outage = next(h for h in findings.hypotheses if h.kind == "dependency_outage")
    assert all(isinstance(c, SafeCluster) for c in safe)
    assert safe[0].cluster_id == bad.cluster_ids[0]  # bad-deploy clusters first
    assert "replaced at" in safe[0].reason
    assert {c.cluster_id for c in safe} == set(bad.cluster_ids) | set(outage.cluster_ids)
    assert all("errors stopped at" in c.reason for c in safe[1:])


def test_the_ground_truth_of_a_simulated_bundle_plays_no_part(tmp_path: Path) -> None:
    ev = ei.sample_bundle()
    manifest = {k: v for k, v in ev.manifest.items() if k not in ("ground_truth", "simulation")}
    plain = dataclasses.replace(ev, manifest=manifest).save(tmp_path / "bundle")
    assert default_selection(plain) == default_selection(ev)  # a bundle directory is opened too


def test_a_bad_deploy_still_live_is_not_replayed_and_only_dlq_clusters_count() -> None:
    clusters = _clusters(
        ("c-reverted", 5, "permanent", 100),
        ("c-live", 5, "permanent", 119),
        ("c-recovered", 3, "transient", 60),
        ("c-no-dlq", 0, "transient", 60),
        ("c-ongoing", 4, "transient", 115),  # stopped 5 min before the end: not over yet
    )
    v1, v2, v3 = _deploy("v1-aaaaaaaa", 30), _deploy("v2-bbbbbbbb", 90), _deploy("v3-cccccccc", 100, "api")
    findings = _findings(
        [_bad_deploy(v1, "c-reverted", "c-no-dlq"), _bad_deploy(v3, "c-live")], deploys=[v1, v2, v3]
    )
    safe = default_selection(object(), clusters=clusters, findings=findings)  # type: ignore[arg-type]
    assert [c.cluster_id for c in safe] == ["c-reverted", "c-recovered"]
    assert safe[0].reason == "new after deploy v1-aaaaa (14:30 UTC), which v2-bbbbb replaced at 15:30 UTC"
    assert safe[1].reason == "transient (timeout); its errors stopped at 15:00 UTC"
    assert default_selection(object(), clusters=clusters, findings=_findings([], [])) == [  # type: ignore[arg-type]
        SafeCluster("c-recovered", "transient (timeout); its errors stopped at 15:00 UTC")
    ]
