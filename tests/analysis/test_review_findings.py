"""Findings that must not mislead: what "failed" means, whose timeline the incident has, which error
a DLQ message is joined to, what a DLQ-only bundle says, and DLQ messages no cluster explains."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
from click.testing import CliRunner

import edgeinvestigate as ei
from edgeinvestigate.cli import cli
from edgeinvestigate.evidence.bundle import Evidence

from .conftest import T0, invocation, make_evidence


def _job_log(inv: str, ts: pd.Timestamp, level: str, event: str, job: str, **kw: Any) -> dict[str, Any]:
    body = {
        "event": event,
        "jobId": job,
        "type": kw.get("job_type", "WEBHOOK_PROCESSING"),
        **kw.pop("extra", {}),
    }
    return {
        "invocation_id": inv,
        "ts": ts,
        "level": level,
        "job_id": job,
        "job_type": kw.pop("job_type", "WEBHOOK_PROCESSING"),
        "attempt": kw.pop("attempt", 1),
        "message_id": kw.pop("message_id", f"m-{job}"),
        "message": json.dumps(body),
    }


# --------------------------------------------------------------------------------------------
# 1. "failed" has one definition: runtime failure, exception or error-level line; warn is not
# --------------------------------------------------------------------------------------------
def test_warn_only_invocations_are_not_failed() -> None:
    inv, logs, exc = [], [], []
    for i in range(40):
        ts = T0 + pd.Timedelta(seconds=30 * i)
        inv.append(invocation(i, ts))
        job = f"job_{i}"
        logs.append(_job_log(f"inv-{i}", ts, "log", "job.completed", job))
        if i < 20:  # a retry logged at warn (with an error field) and a warning: not failures
            logs.append(_job_log(f"inv-{i}", ts, "warn", "job.retry", job, extra={"error": "fetch failed"}))
            logs.append(
                {"invocation_id": f"inv-{i}", "ts": ts, "level": "warn", "message": f"slow subrequest: {i}ms"}
            )
    # failures: an error-level line in an ok invocation, an exception, a runtime outcome
    logs.append(_job_log("inv-30", T0, "error", "job.exhausted", "job_30", extra={"error": "fetch failed"}))
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
# 2. the incident's timeline is the top hypothesis's, not background noise
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
# 3. DLQ joins: a job id belongs to a line only when unambiguous; the job's last error wins
# --------------------------------------------------------------------------------------------
def _batch_evidence(last_attempt: pd.Timestamp | None = None) -> Evidence:
    """Job A fails 503, 503, then times out and is dead-lettered raw; a later batch invocation that
    starts with job A's replay (same job id, new message) also logs a job-less warning."""
    t = T0
    logs = []
    for k, (level, err) in enumerate(
        [
            ("warn", "Upstream https://img.example.com/a responded 503 Service Unavailable"),
            ("warn", "Upstream https://img.example.com/a responded 503 Service Unavailable"),
            ("error", "fetch to https://img.example.com/a timed out after 3000ms"),
        ]
    ):
        ts = t + pd.Timedelta(seconds=120 * k)
        logs.append(
            _job_log(f"inv-a{k}", ts, level, "job.retry" if level == "warn" else "job.exhausted", "job_A",
                     message_id="msg-A", attempt=k + 1, extra={"error": err})
        )  # fmt: skip
    # a batch of two jobs, 5 minutes later: its job-less line belongs to neither job
    tb = t + pd.Timedelta(minutes=20)
    logs.append(_job_log("inv-b", tb, "log", "job.started", "job_A", message_id="msg-A2"))
    logs.append(_job_log("inv-b", tb, "log", "job.started", "job_B", message_id="msg-B"))
    logs.append(
        {"invocation_id": "inv-b", "ts": tb, "level": "warn", "message": 'deprecated field "x" in payload'}
    )
    inv = [invocation(0, t, invocation_id="inv-a0"), invocation(1, t, invocation_id="inv-a1")]
    inv += [invocation(2, t, invocation_id="inv-a2"), invocation(3, tb, invocation_id="inv-b")]
    dlq = [{"message_id": "msg-A", "enqueued_at": t, "attempts": 0, "job_type": "WEBHOOK_PROCESSING",
            "job_id": "job_A", "envelope": "raw", "last_attempt": last_attempt}]  # fmt: skip
    return make_evidence(invocations=inv, logs=logs, dlq=dlq)


def test_batch_job_less_lines_are_not_attributed_and_last_error_wins() -> None:
    cl = ei.cluster(_batch_evidence())
    a = cl.assign
    warn = a[a["text"].str.startswith("deprecated")]
    assert warn["job_id"].isna().all()  # the batch held two jobs: no guess
    d = cl.dlq.set_index("message_id").loc["msg-A"]
    assert d["cluster_join"] == "job_id"
    timeout = a[a["text"].str.startswith("fetch to")]["cluster_id"].iloc[0]
    assert d["cluster_id"] == timeout  # the error that exhausted it, not the earlier 503s
    rule = cl.explain("msg-A").rule
    assert "msg-A" in rule
    assert "timed out" in rule
    assert "last error" in rule
    assert "deprecated" not in rule


def test_single_job_invocation_lines_keep_their_job() -> None:
    logs = [
        _job_log("inv-1", T0, "log", "job.started", "job_S"),
        {"invocation_id": "inv-1", "ts": T0, "level": "error", "message": "KV write failed: SQLITE_BUSY"},
    ]
    cl = ei.cluster(make_evidence(invocations=[invocation(1, T0)], logs=logs))
    row = cl.assign[cl.assign["text"].str.startswith("KV write")].iloc[0]
    assert row["job_id"] == "job_S"


def test_dlq_join_stops_at_the_last_attempt() -> None:
    ev = _batch_evidence(last_attempt=T0 + pd.Timedelta(seconds=120))  # dead-lettered after the 2nd 503
    cl = ei.cluster(ev)
    d = cl.dlq.set_index("message_id").loc["msg-A"]
    upstream = cl.assign[cl.assign["text"].str.startswith("Upstream")]["cluster_id"].iloc[0]
    assert d["cluster_id"] == upstream
    assert "before its last attempt" in cl.explain("msg-A").rule


def test_dependency_outage_dlq_messages_join_the_outage_clusters(tmp_path: Path) -> None:
    from edgeinvestigate.evidence.bundle import load
    from edgeinvestigate.simulator import simulate
    from edgeinvestigate.sources.api.dlq_frame import dlq_frame_from_file

    summary = simulate("dependency-outage", tmp_path, seed=0, formats=("traceitems", "dlq"))
    ev = load([tmp_path / "traceitems" / "traceitems.jsonl"], strict=True)
    ev = ev.with_dlq(dlq_frame_from_file(tmp_path / "dlq" / "messages.json"))
    truth = json.loads(summary.ground_truth.read_text())["root_causes"][0]
    cl = ei.cluster(ev)
    f = ei.analyze(ev, cl)
    assert f.top is not None
    assert f.top.kind == "dependency_outage"
    dlq = cl.dlq.set_index("message_id").loc[truth["dlq_message_ids"]]
    assert (dlq["cluster_join"] == "job_id").all()
    assert dlq["cluster_id"].isin(f.top.cluster_ids).all(), dlq["cluster_id"].value_counts()
    # and each one joins the last error its own message logged
    tel = cl.assign[cl.assign["source"] != "dlq"].sort_values("ts", kind="stable")
    last = tel.dropna(subset=["message_id"]).groupby("message_id")["cluster_id"].last()
    assert (dlq["cluster_id"] == last.reindex(dlq.index)).all()


# --------------------------------------------------------------------------------------------
# 4. a DLQ-only or empty bundle says so, and still ranks what the DLQ shows
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


def test_analyze_cli_on_an_empty_bundle(tmp_path: Path) -> None:
    bundle = Evidence.empty().save(tmp_path / "empty")
    res = CliRunner().invoke(cli, ["analyze", str(bundle)])
    assert res.exit_code == 0, res.output
    assert "The bundle is empty" in res.stdout
    assert "No hypothesis stands out" not in res.stdout


# --------------------------------------------------------------------------------------------
# 5. DLQ messages no cluster explains are counted, and clusters count distinct DLQ jobs
# --------------------------------------------------------------------------------------------
def test_outage_finding_counts_unattributed_dlq_messages() -> None:
    inv, logs = [], []
    for i in range(120):
        ts = T0 + pd.Timedelta(minutes=i)
        inv.append(invocation(i, ts))
        logs.append(_job_log(f"inv-{i}", ts, "log", "job.completed", f"ok_{i}", job_type="IMAGE_PROCESSING"))
        if 60 <= i < 80:
            for k in range(3):
                logs.append(
                    _job_log(f"inv-{i}", ts, "warn", "job.retry", f"job_{i}_{k}", job_type="IMAGE_PROCESSING",
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


def test_clusters_count_distinct_dlq_jobs(tmp_path: Path) -> None:
    err = "Invalid DATA_SYNC payload: cursor must be a string"
    dlq = [{"message_id": f"m{i}", "enqueued_at": T0 + pd.Timedelta(minutes=i), "attempts": 4,
            "job_type": "DATA_SYNC", "job_id": f"job_{i % 2}", "envelope": "wrapped", "error": err}
           for i in range(3)]  # fmt: skip
    ev = make_evidence(dlq=dlq)
    cl = ei.cluster(ev)
    rec = cl.records()[0]
    assert (rec["n_dlq_messages"], rec["n_dlq_jobs"]) == (3, 2)
    bundle = ev.save(tmp_path / "b")
    out = CliRunner().invoke(cli, ["clusters", str(bundle), "--format", "csv"]).stdout
    row = next(csv.DictReader(io.StringIO(out)))
    assert (row["n_dlq_messages"], row["n_dlq_jobs"]) == ("3", "2")
    data = json.loads(CliRunner().invoke(cli, ["clusters", str(bundle), "--format", "json"]).stdout)
    assert data["clusters"][0]["n_dlq_jobs"] == 2


def test_clusters_cli_explain_tells_which_error_joined(tmp_path: Path) -> None:
    bundle = _batch_evidence().save(tmp_path / "batch")
    res = CliRunner().invoke(cli, ["clusters", str(bundle), "--explain", "msg-A"])
    assert res.exit_code == 0, res.output
    assert "join:      job_id" in res.stdout
    assert "its message id msg-A was logged with an error in that cluster" in res.stdout
    assert "timed out after 3000ms" in res.stdout
    assert "deprecated" not in res.stdout
