"""analyze(): findings on hand-made evidence and on the simulator's default scenario (ground truth)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

import edgeinvestigate as ei
from edgeinvestigate.analysis.rca import choose_bucket
from edgeinvestigate.evidence.bundle import Evidence
from edgeinvestigate.models.findings import Findings

from .conftest import T0, invocation, make_evidence


@pytest.mark.parametrize(
    ("span", "bucket"),
    [("10min", 60), ("2h", 60), ("3h", 120), ("6h", 300), ("1d", 900), ("7d", 7200), ("365d", 86400)],
)
def test_bucket_is_chosen_from_the_window(span: str, bucket: int) -> None:
    assert choose_bucket(pd.Timedelta(span)) == bucket


def test_small_evidence_findings(small_evidence: Evidence) -> None:
    f = ei.analyze(small_evidence)
    top = f.top
    assert top is not None
    assert top.kind == "bad_deploy"
    assert top.deploy is not None
    assert top.deploy.version == "v2"
    assert top.deploy.previous_version == "v1"
    assert top.job_types == ["IMAGE_PROCESSING"]
    assert "v2" in top.sentence
    assert "IMAGE_PROCESSING" in top.sentence
    assert top.evidence["errors"] == 15
    assert top.evidence["dlq_messages"] == 2
    outage = next(h for h in f.hypotheses if h.kind == "dependency_outage")
    assert outage.evidence["dependency"] == "sync.partner-api.com"
    assert outage.window is not None
    assert pd.Timestamp(outage.window.start) == T0 + pd.Timedelta(minutes=10)
    assert [d.version for d in f.deploys] == ["v2"]
    assert {s.new_after_deploy for s in f.new_after_deploy} == {True}
    assert f.incident.timeline.first_error == (T0 + pd.Timedelta(minutes=10)).to_pydatetime()
    assert f.incident.impact.invocations == 60
    assert {r.value for r in f.blast_radius if r.dimension == "job_type"} == {"IMAGE_PROCESSING", "DATA_SYNC"}
    assert sum(d.messages for d in f.dlq_by_cluster) == 4
    # JSON round trip for reports
    again = Findings.model_validate_json(f.model_dump_json())
    assert again == f


def test_limit_hits_and_attempts() -> None:
    inv = [invocation(i, T0 + pd.Timedelta(seconds=10 * i)) for i in range(20)]
    inv += [invocation(100, T0, outcome="exceededCpu", cpu_ms=30_050.0)]
    inv += [invocation(101, T0, wall_ms=29_500.0)]
    inv += [invocation(102, T0, outcome="exceededMemory")]
    logs = [
        {"invocation_id": f"inv-{i}", "ts": T0 + pd.Timedelta(seconds=10 * i), "level": "log", "job_id": f"job_{i % 5}",  # noqa: E501
         "job_type": "REPORT_GENERATION", "attempt": 1 + i // 5, "message": "processing"}
        for i in range(20)
    ]  # fmt: skip
    f = ei.analyze(make_evidence(invocations=inv, logs=logs))
    hits = {h.limit: h.invocations for h in f.limit_hits}
    assert hits == {"exceededCpu": 1, "exceededMemory": 1, "wall_near_limit": 1}
    assert f.limits.exceeded_cpu == 1
    assert f.limits.wall_near_limit == 1
    assert [(b.attempts, b.deliveries) for b in f.attempts] == [(1, 5), (2, 5), (3, 5), (4, 5)]
    assert any(h.kind == "limit_hit" for h in f.hypotheses)


def test_tenant_fields_blast_radius_and_poison_payload() -> None:
    dlq = [
        {"message_id": f"m{i}", "enqueued_at": T0 + pd.Timedelta(minutes=i), "job_type": "DATA_SYNC",
         "job_id": f"job_{i}", "envelope": "wrapped", "error": f"Invalid DATA_SYNC payload for job job_{i}: bad cursor",  # noqa: E501
         "payload": f'{{"type":"DATA_SYNC","payload":{{"tenantId":"{"t_42" if i % 10 else "t_7"}","n":{i}}}}}'}  # noqa: E501
        for i in range(30)
    ]  # fmt: skip
    dlq += [
        {"message_id": f"u{i}", "enqueued_at": T0 + pd.Timedelta(minutes=i), "job_type": "DATA_SYNC",
         "job_id": f"job_u{i}", "envelope": "wrapped", "error": "Upstream API responded 503 Service Unavailable",  # noqa: E501
         "payload": f'{{"type":"DATA_SYNC","payload":{{"tenantId":"t_{100 + i}"}}}}'}
        for i in range(30)
    ]  # fmt: skip
    f = ei.analyze(make_evidence(dlq=dlq))
    tenants = {r.value: r.errors for r in f.blast_radius if r.dimension == "tenantId"}
    assert tenants["t_42"] == 27
    assert tenants["t_7"] == 3
    assert len(tenants) == 20
    poison = next(h for h in f.hypotheses if h.kind == "poison_payload")
    assert poison.evidence["value"] == "t_42"
    assert poison.evidence["field"] == "tenantId"
    assert "tenantId=t_42" in poison.sentence
    f2 = ei.analyze(make_evidence(dlq=dlq), tenant_fields=("nope",))
    assert not [r for r in f2.blast_radius if r.dimension == "tenantId"]


def _cause(truth: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(rc for rc in truth["root_causes"] if rc["kind"] == kind)


def test_default_scenario_top_finding_matches_ground_truth(
    default_incident: tuple[Evidence, dict[str, Any]],
) -> None:
    ev, truth = default_incident
    clusters = ei.cluster(ev)
    f = ei.analyze(ev, clusters)
    bucket = pd.Timedelta(seconds=f.bucket_seconds)
    deploy = _cause(truth, "bad_deploy")
    top = f.top
    assert top is not None
    assert top.kind == "bad_deploy", f.to_text()
    assert top.deploy is not None
    assert top.deploy.version == deploy["script_version"]["id"]
    assert top.job_types == [deploy["job_type"]]
    assert deploy["job_type"] in top.sentence
    assert top.deploy.version[:8] in top.sentence
    assert top.evidence["stopped_with"] == deploy["fixed_by"]["id"]
    assert abs(pd.Timestamp(top.deploy.at) - pd.Timestamp(deploy["start"])) <= bucket

    outage = _cause(truth, "dependency_outage")
    hyp = next(h for h in f.hypotheses if h.kind == "dependency_outage")
    assert hyp.window is not None
    assert outage["job_type"] in hyp.job_types
    assert abs(pd.Timestamp(hyp.window.start) - pd.Timestamp(outage["start"])) <= bucket
    assert abs(pd.Timestamp(hyp.window.end) - pd.Timestamp(outage["end"])) <= bucket
    assert hyp.evidence["jobs"] == len(outage["affected_job_ids"])

    # the incident skeleton starts at the first error of the bad deploy
    first = pd.Timestamp(f.incident.timeline.first_error)
    assert abs(first - pd.Timestamp(deploy["first_error"])) <= bucket
    assert f.incident.timeline.detection is not None
    assert deploy["job_type"] in f.incident.affected_job_types

    # DLQ messages of the bad deploy are tied to its cluster
    dlq = clusters.dlq.set_index("message_id")
    ids = [m for m in deploy["dlq_message_ids"] if m in dlq.index]
    assert ids
    hit = dlq.loc[ids, "cluster_id"].isin(top.cluster_ids).mean()
    assert hit >= 0.95
    outage_ids = [m for m in outage["dlq_message_ids"] if m in dlq.index]
    assert dlq.loc[outage_ids, "cluster_join"].ne("none").mean() >= 0.9


@pytest.mark.parametrize(
    ("scenario", "kind"),
    [
        ("dependency-outage", "dependency_outage"),
        ("poison-payload", "poison_payload"),
        ("cpu-limits", "limit_hit"),
    ],
)
def test_other_scenarios_top_finding(scenario: str, kind: str, tmp_path: Any) -> None:
    import json

    from edgeinvestigate.evidence.bundle import load
    from edgeinvestigate.simulator import simulate
    from edgeinvestigate.sources.api.dlq import dlq_frame_from_file

    summary = simulate(scenario, tmp_path, seed=5, formats=("traceitems", "dlq"))
    ev = load([tmp_path / "traceitems" / "traceitems.jsonl"], strict=True)
    ev = ev.with_dlq(dlq_frame_from_file(tmp_path / "dlq" / "messages.json"))
    truth = json.loads(summary.ground_truth.read_text())["root_causes"][0]
    f = ei.analyze(ev)
    top = f.top
    assert top is not None
    assert top.kind == kind, f.to_text()
    assert truth["job_type"] in top.job_types
    assert top.job_types[0] == truth["job_type"]
    assert top.window is not None
    bucket = pd.Timedelta(seconds=f.bucket_seconds)
    assert abs(pd.Timestamp(top.window.start) - pd.Timestamp(truth["start"])) <= 2 * bucket


def test_logs_only_evidence() -> None:
    # Workers Logs without invocation lines: no invocations, errors still on a timeline
    logs = [
        {
            "invocation_id": f"i{i}",
            "ts": T0 + pd.Timedelta(minutes=i),
            "level": "error",
            "message": f"boom {i}",
        }
        for i in range(30)
    ]
    f = ei.analyze(make_evidence(logs=logs))
    assert f.totals["invocations"] == 0
    assert f.totals["error_rows"] == 30
    assert f.window is not None
    assert f.incident.timeline.first_error == T0.to_pydatetime()
    assert f.clusters[0].template == "boom <int>"
