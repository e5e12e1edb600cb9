"""analyze(): findings on hand-made evidence and on the simulator's scenarios (ground truth); what
"failed" means, whose timeline the incident has, DLQ-only bundles and unattributed DLQ messages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import edgeinvestigate as ei
from edgeinvestigate.analysis.rca import choose_bucket
from edgeinvestigate.analysis.rca._hypotheses.context import MIN_ERRORS
from edgeinvestigate.evidence.bundle import Evidence
from edgeinvestigate.models.findings import Findings

from .conftest import T0, invocation, job_log, make_evidence


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
    # five upstream 503s in five jobs over eight minutes are below the least support of a finding
    upstream = next(c for c in f.clusters if c.template.startswith("Upstream API"))
    assert upstream.count < MIN_ERRORS
    assert not [h for h in f.hypotheses if upstream.cluster_id in h.cluster_ids]
    assert not [h for h in f.hypotheses if h.kind == "dependency_outage"]
    assert [d.version for d in f.deploys] == ["v2"]
    assert {s.new_after_deploy for s in f.new_after_deploy} == {True}
    # the incident starts with the bad deploy's first error, not with the upstream noise
    first_thrown = small_evidence.exceptions["ts"].min()
    assert f.incident.timeline.first_error == pd.Timestamp(first_thrown).to_pydatetime()
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
    from edgeinvestigate.sources.api.dlq_frame import dlq_frame_from_file

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


# --------------------------------------------------------------------------------------------
# "failed" has one definition: runtime failure, exception or error-level line; warn is not
# --------------------------------------------------------------------------------------------
def test_warn_only_invocations_are_not_failed() -> None:
    inv, logs, exc = [], [], []
    for i in range(40):
        ts = T0 + pd.Timedelta(seconds=30 * i)
        inv.append(invocation(i, ts))
        job = f"job_{i}"
        logs.append(job_log(f"inv-{i}", ts, "log", "job.completed", job))
        if i < 20:  # a retry logged at warn (with an error field) and a warning: not failures
            logs.append(job_log(f"inv-{i}", ts, "warn", "job.retry", job, extra={"error": "fetch failed"}))
            logs.append(
                {"invocation_id": f"inv-{i}", "ts": ts, "level": "warn", "message": f"slow subrequest: {i}ms"}
            )
    # failures: an error-level line in an ok invocation, an exception, a runtime outcome
    logs.append(job_log("inv-30", T0, "error", "job.exhausted", "job_30", extra={"error": "fetch failed"}))
    exc.append({"invocation_id": "inv-31", "ts": T0, "name": "TypeError", "message": "x is not a function"})
    inv[32] = invocation(32, inv[32]["ts"], outcome="exceededCpu")
    f = ei.analyze(make_evidence(invocations=inv, logs=logs, exceptions=exc))
    assert f.totals["failed_invocations"] == 3
    assert f.incident.impact.failed_invocations == 3
    assert f.totals["error_rows"] == 20 + 20 + 1 + 1  # warn rows are still clustered
    assert f.totals["failure_rows"] == f.incident.impact.failure_rows == 2
    # the same definition in the rates and in the timeline
    assert sum(r.failed for r in f.failed_rate) == 3
    assert sum(r.failed for r in f.timeline) == 3
    assert sum(r.invocations for r in f.timeline) == 40
    assert "failed: 3 (7.5%)" in f.to_text()
    assert "2 failures, 40 warnings" in f.to_text()


def test_default_scenario_failed_counts_follow_the_definition(
    default_incident: tuple[Evidence, dict[str, Any]],
) -> None:
    ev, _truth = default_incident
    f = ei.analyze(ev)
    logs = ev.logs
    level = logs["level"].astype(object)
    errored = set(logs.loc[level == "error", "invocation_id"].dropna()) | set(
        ev.exceptions["invocation_id"].dropna()
    )
    runtime = set(ev.invocations.loc[ev.invocations["failed"].astype(bool), "invocation_id"])
    warn_only = set(logs.loc[level == "warn", "invocation_id"].dropna()) - errored - runtime
    assert warn_only  # the scenario has invocations that only warned
    expected = len(set(ev.invocations["invocation_id"]) & (errored | runtime))
    assert f.totals["failed_invocations"] == expected
    assert sum(r.failed for r in f.failed_rate) == expected
    assert sum(r.failed for r in f.timeline) == expected
    # the one incident-unrelated job type is not shown as failing like the broken ones
    rates = (
        pd.DataFrame([r.model_dump() for r in f.failed_rate])
        .groupby("job_type")[["invocations", "failed"]]
        .sum()
    )
    share = rates["failed"] / rates["invocations"]
    assert share.idxmax() in {"EMAIL_DELIVERY", "IMAGE_PROCESSING"}, share


# --------------------------------------------------------------------------------------------
# the incident's timeline is the top hypothesis's, not background noise
# --------------------------------------------------------------------------------------------
def test_incident_timeline_follows_a_limit_hit_without_clusters() -> None:
    inv, logs = [], []
    for i in range(120):  # two hours of background warnings and a few errors
        ts = T0 + pd.Timedelta(minutes=i)
        inv.append(invocation(i, ts))
        logs.append(
            {"invocation_id": f"inv-{i}", "ts": ts, "level": "warn", "message": f"slow subrequest: {i}ms"}
        )
        if i % 20 == 3:
            logs.append({"invocation_id": f"inv-{i}", "ts": ts, "level": "error", "message": f"KV miss {i}"})
    for k in range(80):  # limit hits from 14:40 to 15:00, no error text at all
        ts = T0 + pd.Timedelta(minutes=40) + pd.Timedelta(seconds=k * 15)
        inv.append(invocation(1000 + k, ts, outcome="exceededCpu", cpu_ms=30_050.0))
    f = ei.analyze(make_evidence(invocations=inv, logs=logs))
    assert f.top is not None
    assert f.top.kind == "limit_hit", f.to_text()
    tl = f.incident.timeline
    assert pd.Timestamp(tl.first_error) == T0 + pd.Timedelta(minutes=40)
    assert pd.Timestamp(tl.last_error) == T0 + pd.Timedelta(minutes=40) + pd.Timedelta(seconds=79 * 15)
    assert tl.detection is not None
    assert pd.Timestamp(tl.detection) >= T0 + pd.Timedelta(minutes=40)
    assert tl.peak is not None
    assert pd.Timestamp(tl.peak) >= T0 + pd.Timedelta(minutes=40)


def test_cpu_limits_scenario_timeline_matches_ground_truth(tmp_path: Path) -> None:
    from edgeinvestigate.evidence.bundle import load
    from edgeinvestigate.simulator import simulate
    from edgeinvestigate.sources.api.dlq_frame import dlq_frame_from_file

    summary = simulate("cpu-limits", tmp_path, seed=3, formats=("traceitems", "dlq"))
    ev = load([tmp_path / "traceitems" / "traceitems.jsonl"], strict=True)
    ev = ev.with_dlq(dlq_frame_from_file(tmp_path / "dlq" / "messages.json"))
    truth = json.loads(summary.ground_truth.read_text())["root_causes"][0]
    clusters = ei.cluster(ev)
    f = ei.analyze(ev, clusters)
    assert f.top is not None
    assert f.top.kind == "limit_hit", f.to_text()
    bucket = pd.Timedelta(seconds=f.bucket_seconds)
    tl = f.incident.timeline
    assert abs(pd.Timestamp(tl.first_error) - pd.Timestamp(truth["first_error"])) <= bucket, f.to_text()
    assert abs(pd.Timestamp(tl.last_error) - pd.Timestamp(truth["last_error"])) <= bucket, f.to_text()
    assert pd.Timestamp(tl.detection) >= pd.Timestamp(truth["start"]) - bucket
    # warn noise that a limit-hit invocation happened to log is not a resource-limit cluster
    limit_clusters = clusters.table[clusters.table["kind_rule"] == "resource-limit"]
    assert all("exceeded" in t for t in limit_clusters["template"]), limit_clusters["template"].tolist()
    # its DLQ messages (raw, job ids never logged: joined by job type and time) join a failure
    # nearby, not a warning ("slow subrequest") that happened to be closer
    dlq = clusters.dlq.set_index("message_id")
    joined = dlq.loc[[m for m in truth["dlq_message_ids"] if m in dlq.index], "cluster_id"]
    assert len(joined)
    failing = set(clusters.assign.loc[clusters.assign["level"].isin(["error", "exception"]), "cluster_id"])
    assert joined.isin(failing).all(), joined.value_counts()
    exceeded = set(clusters.table.loc[clusters.table["template"].str.contains("exceeded"), "cluster_id"])
    assert joined.isin(exceeded).mean() >= 0.8, joined.value_counts()


# --------------------------------------------------------------------------------------------
# a DLQ-only or empty bundle says so, and still ranks what the DLQ shows
# --------------------------------------------------------------------------------------------
def _dlq_only() -> list[dict[str, Any]]:
    rows = []
    for i in range(566):
        ts = T0 + pd.Timedelta(seconds=7 * i)
        if i < 470:
            err = f"TypeError: Cannot read properties of undefined (reading 'items') in job job_{i:04d}"
            jt = "DATA_SYNC" if i % 3 else "WEBHOOK_PROCESSING"
        elif i < 520:
            err = f"Webhook endpoint https://hooks.example.com/{i} returned 410 Gone"
            jt = "WEBHOOK_PROCESSING"
        else:
            err = None
            jt = "IMAGE_PROCESSING"
        rows.append({"message_id": f"m{i}", "enqueued_at": ts, "attempts": 4, "job_type": jt,
                     "job_id": f"job_{i:04d}", "envelope": "wrapped" if err else "raw", "error": err})  # fmt: skip  # noqa: E501
    return rows


def test_dlq_only_bundle_says_it_has_no_telemetry_and_ranks_the_dlq() -> None:
    f = ei.analyze(make_evidence(dlq=_dlq_only()))
    assert f.has_telemetry is False
    top = f.top
    assert top is not None
    assert top.kind == "dlq_cluster"
    assert top.evidence["dlq_messages"] == 470
    assert "TypeError" in top.sentence
    assert "470 of 566" in top.sentence
    assert "DATA_SYNC" in top.sentence
    assert "WEBHOOK_PROCESSING" in top.sentence
    assert top.evidence["triage_rule"] == "type-error"
    text = f.to_text()
    assert "no telemetry" in text
    assert "No hypothesis stands out" not in text
    assert "46 DLQ messages have no error text" in text
    assert "IMAGE_PROCESSING 46" in text
    assert "collect --workers-logs" in text
    assert f.incident.title == top.title
    assert f.incident.timeline.first_error is not None


# --------------------------------------------------------------------------------------------
# DLQ messages no cluster explains are counted
# --------------------------------------------------------------------------------------------
def test_outage_finding_counts_unattributed_dlq_messages() -> None:
    inv, logs = [], []
    for i in range(120):
        ts = T0 + pd.Timedelta(minutes=i)
        inv.append(invocation(i, ts))
        logs.append(job_log(f"inv-{i}", ts, "log", "job.completed", f"ok_{i}", job_type="IMAGE_PROCESSING"))
        if 60 <= i < 80:
            for k in range(3):
                logs.append(
                    job_log(f"inv-{i}", ts, "warn", "job.retry", f"job_{i}_{k}", job_type="IMAGE_PROCESSING",
                             extra={"error": f"Image service https://images.example.com/{i} returned 503 Service Unavailable"})  # noqa: E501
                )  # fmt: skip
    # the DLQ was peeked days later: raw bodies, job ids never logged, times far from the outage
    later = T0 + pd.Timedelta(days=2)
    dlq = [{"message_id": f"d{i}", "enqueued_at": later, "attempts": 0, "job_type": "IMAGE_PROCESSING",
            "job_id": f"lost_{i}", "envelope": "raw"} for i in range(7)]  # fmt: skip
    f = ei.analyze(make_evidence(invocations=inv, logs=logs, dlq=dlq))
    outage = next(h for h in f.hypotheses if h.kind == "dependency_outage")
    assert outage.evidence["dlq_messages"] == 0
    assert outage.evidence["dlq_unattributed"] == 7
    assert "7 DLQ messages of IMAGE_PROCESSING could not be attributed" in outage.sentence
    assert f.totals["dlq_unattributed"] == 7
    assert "7 not attributed to any cluster" in f.to_text()
