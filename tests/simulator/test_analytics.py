"""The simulator's Queue and Worker analytics: consistent with the run, found by the analysis, served
by the sandbox after ``simulate --sandbox`` exactly as the file says."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from _sim_helpers import Run

import edgeinvestigate as ei
from edgeinvestigate.cloudflare.client import CloudflareClient
from edgeinvestigate.evidence.dlq import with_dlq_file
from edgeinvestigate.evidence.queue_metrics import with_metrics_file
from edgeinvestigate.sandbox.testing import running_sandbox
from edgeinvestigate.simulator import simulate

TOKEN = "sim-analytics-token-4b2d"


def _bundle(run: Run) -> ei.Evidence:
    ev = ei.load([run.out / "workers_logs" / "events.json"])
    ev = with_dlq_file(ev, run.out / "dlq" / "messages.json")
    return with_metrics_file(ev, run.out / "analytics" / "analytics.json")


def test_the_analytics_add_up_to_the_run(sim_factory: Callable[..., Run]) -> None:
    run = sim_factory("default", 1)
    truth = json.loads((run.out / "ground_truth.json").read_text())
    ops = _bundle(run).frame("queue_operations")
    jobs = ops[ops["queue"] == "jobs"]

    def total(action: str, outcome: str | None = None) -> int:
        m = jobs["action"] == action
        if outcome is not None:
            m &= jobs["outcome"] == outcome
        return int(jobs.loc[m, "count"].sum())

    assert total("WriteMessage") == truth["counts"]["jobs"]
    assert total("ReadMessage") == sum(truth["counts"]["deliveries"].values())
    assert total("DeleteMessage", "dlq") == truth["counts"]["dlq"]["raw"]
    dlq_writes = ops[(ops["queue"] == "jobs-dlq") & (ops["action"] == "WriteMessage")]
    assert int(dlq_writes["count"].sum()) == truth["counts"]["dlq"]["total"]
    inv = _bundle(run).frame("worker_invocations")
    assert int(inv["requests"].sum()) == truth["counts"]["invocations"]["total"]
    assert (inv["cpu_p99_ms"] >= inv["cpu_p50_ms"]).all()


def test_a_stalled_consumer_without_errors_is_the_top_finding(sim_factory: Callable[..., Run]) -> None:
    run = sim_factory("consumer-stall", 3, 1500)
    truth = json.loads((run.out / "ground_truth.json").read_text())
    (cause,) = truth["root_causes"]
    findings = ei.analyze(_bundle(run))
    top = findings.hypotheses[0]
    assert top.kind == "consumer_stalled"
    assert top.evidence["mode"] == "stalled"
    assert top.evidence["errors_during"] == 0
    assert top.evidence["reads_per_bucket_during"] == 0.0
    assert pd.Timestamp(top.evidence["start"]) == pd.Timestamp(cause["start"]).floor("min")
    assert pd.Timestamp(top.evidence["end"]) == pd.Timestamp(cause["end"]).floor("min")
    assert findings.incident.timeline.detection == pd.Timestamp(cause["start"]).floor("min").to_pydatetime()


def test_messages_dead_lettered_without_error_logs(sim_factory: Callable[..., Run]) -> None:
    run = sim_factory("silent-dead-letters", 3, 1500)
    truth = json.loads((run.out / "ground_truth.json").read_text())
    (cause,) = truth["root_causes"]
    silent = len(cause["dlq_message_ids"])
    assert silent > 20
    # the consumer never logged these failures
    logged = [e for e in truth["errors"] if e["root_cause"] == cause["id"] and e["where"] == "log"]
    assert logged == []
    findings = ei.analyze(_bundle(run))
    (dead,) = [h for h in findings.hypotheses if h.kind == "dead_lettering" and h.evidence["queue"] == "jobs"]
    assert findings.hypotheses[0] is dead
    assert dead.evidence["dlq_messages"] == truth["counts"]["dlq"]["raw"]
    assert dead.evidence["without_error_log"] >= silent - 5  # a few noise failures fall in the window
    assert "without an error log" in dead.sentence


@pytest.mark.e2e
def test_simulate_sandbox_serves_the_same_analytics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEINVESTIGATE_SANDBOX_TOKEN", TOKEN)
    with running_sandbox(tmp_path / "sb", token=TOKEN) as sb:
        summary = simulate("consumer-stall", tmp_path / "inc", seed=2, invocations=800, start="-3h",
                           sandbox_url=sb.url)  # fmt: skip
        assert summary.sandbox is not None
        assert summary.sandbox["analytics_loaded"]["queueMessageOperationsAdaptiveGroups"] > 0
        truth = json.loads((tmp_path / "inc" / "ground_truth.json").read_text())
        since = pd.Timestamp(truth["window"]["start"]).floor("min")
        until = since + pd.Timedelta(hours=2)  # before "now", when loading the DLQ moved its backlog
        with CloudflareClient(truth["account_id"], TOKEN, api_url=sb.url) as client:
            served = ei.load_queue_metrics(client, ["jobs", "jobs-dlq"], since, until)
        from_file = with_metrics_file(ei.Evidence.empty(), tmp_path / "inc" / "analytics" / "analytics.json")

        def window(df: pd.DataFrame) -> pd.DataFrame:
            return df[(df["ts"] >= since) & (df["ts"] < until)].reset_index(drop=True)

        for name in ("queue_operations", "queue_consumers"):
            pd.testing.assert_frame_equal(served.frame(name), window(from_file.frame(name)))
        a, b = served.frame("queue_backlog"), window(from_file.frame("queue_backlog"))
        merged = a.merge(b, on=["ts", "queue"], suffixes=("_served", "_file"))
        assert len(merged) == len(b)
        # the sandbox sums float averages in SQLite: equal to the file's to the last few bits
        assert (merged["messages_served"] - merged["messages_file"]).abs().max() < 1e-9


def test_with_analytics_the_injected_causes_still_lead_and_explain_the_dlq(
    sim_factory: Callable[..., Run],
) -> None:
    run = sim_factory("default", 1)
    ev = ei.load([run.out / "workers_logs" / "events.json"])
    ev = with_dlq_file(ev, run.out / "dlq" / "messages.json")
    without = ei.analyze(ev)
    findings = ei.analyze(with_metrics_file(ev, run.out / "analytics" / "analytics.json"))
    assert findings.top is not None
    assert without.top is not None
    assert findings.top.title == without.top.title  # the bad deploy still leads
    assert not [h for h in findings.hypotheses if h.kind in ("consumer_stalled", "throughput_drop")]
    [dead] = [h for h in findings.hypotheses if h.kind == "dead_lettering"]
    assert dead.confidence == "low"  # a symptom: the errors of the outage explain it
    assert dead.cluster_ids
    assert "follows from those errors" in dead.sentence
