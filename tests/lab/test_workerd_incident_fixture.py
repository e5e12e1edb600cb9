"""edgeinvestigate on a recorded lab incident from the real runtime (no node needed).

``data/workerd-incident/`` was written by ``edgeinvestigate lab run`` (wrangler 4.86.0, workerd
2026-04-26): the Tail Worker's TraceItem JSONL (gzip) and the DLQ as the Queues API's peek returned
it. ``expected.json`` is what the lab sent: every job id that should be in the DLQ and its envelope.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import edgeinvestigate as ei
from edgeinvestigate.sources.api.dlq_frame import dlq_frame_from_file

DATA = Path(__file__).parent / "data" / "workerd-incident"
BAD_DEPLOY = "Cannot read properties of undefined (reading 'locale')"


@pytest.fixture(scope="module")
def expected() -> dict:
    return json.loads((DATA / "expected.json").read_text())


@pytest.fixture(scope="module")
def ev():
    ev = ei.load([DATA / "traceitems.jsonl.gz"])
    return ev.with_dlq(dlq_frame_from_file(DATA / "dlq-messages.json", queue="jobs-dlq"))


def test_real_traceitems_load_cleanly(ev) -> None:
    (report,) = ev.report.files
    assert report.source == "traceitems"
    assert report.skipped == 0
    inv = ev.invocations
    assert inv["script"].isna().all()
    assert (inv["cpu_ms"] == 0).all()
    assert set(inv["trigger"].astype(str)) == {"fetch", "queue", "scheduled"}
    crashed = inv[(inv["outcome"] == "ok") & (inv["n_exceptions"] > 0)]
    assert len(crashed) == 4  # the poison message: 1 delivery + max_retries 3
    assert crashed["failed"].all()
    # every structured consumer line carries the job fields of the logging convention
    started = ev.logs[ev.logs["message"].str.contains('"event":"job_started"', regex=False)]
    assert started["job_id"].notna().all()
    assert started["message_id"].notna().all()
    assert started["attempt"].notna().all()


def test_real_dlq_envelopes(ev, expected: dict) -> None:
    dlq = ev.dlq
    got = dict(zip(dlq["job_id"].astype(str), dlq["envelope"].astype(str), strict=True))
    assert got == expected["jobs"]["expected_envelope"]
    email = dlq[dlq["job_type"] == "EMAIL_DELIVERY"]
    assert (email["error"] == BAD_DEPLOY).all()
    assert len(email) == sum(1 for j in expected["jobs"]["expected_in_dlq"] if j.startswith("incident-"))


def test_bad_deploy_is_the_biggest_dlq_cluster(ev, expected: dict) -> None:
    clusters = ei.cluster(ev)
    table = clusters.table.sort_values("n_dlq_messages", ascending=False)
    top = table.iloc[0]
    assert "Cannot read properties of undefined" in str(top["template"])
    assert list(top["job_types"]) == ["EMAIL_DELIVERY"]
    n_bad = sum(1 for j in expected["jobs"]["expected_in_dlq"] if j.startswith("incident-"))
    assert int(top["n_dlq_messages"]) == n_bad
    # log lines and DLQ envelopes of the bad deploy share one template
    assert set(top["sources"]) == {"dlq", "log"}
    # the poison message joins the exception cluster through its invocation, not a timeout cluster
    dlq = clusters.dlq
    poison = dlq[dlq["job_id"] == "poison-0000"]
    cid = poison["cluster_id"].iloc[0]
    tpl = clusters.table.set_index("cluster_id").loc[cid, "template"]
    assert "SyntaxError" in str(tpl)


def test_analysis_ranks_the_bad_deploy_first(ev, expected: dict) -> None:
    """The strict guard of the ranking on real-runtime data (the e2e test tolerates an analysis that
    ranks nothing, to keep checking the runtime; this test does not)."""
    findings = ei.analyze(ev)
    assert findings.hypotheses, "the analysis ranked nothing on the recorded real-runtime incident"
    top = min(findings.hypotheses, key=lambda h: h.rank)
    # local workerd has no scriptVersion: the deploy markers come from the consumer's `deploy` log field
    assert ev.invocations["script_version"].isna().all()
    assert [(d.version, d.previous_version, d.source) for d in findings.deploys] == [
        ("v42", "v41", "log_field"),
        ("v43", "v42", "log_field"),
    ]
    assert findings.deploy_sources == ["log_field"]
    assert top.kind == "bad_deploy", findings.to_text()
    assert top.deploy is not None
    assert top.deploy.version == "v42"
    assert top.evidence["stopped_with"] == "v43"
    assert top.evidence["share_on_version"] == 1.0
    assert "v42" in top.sentence
    assert "EMAIL_DELIVERY" in top.sentence
    assert "no deploy explains it" not in findings.to_text()
    assert top.job_types == ["EMAIL_DELIVERY"]
    n_bad = sum(1 for j in expected["jobs"]["expected_in_dlq"] if j.startswith("incident-"))
    assert top.evidence["dlq_messages"] == n_bad
    table = ei.cluster(ev).table.set_index("cluster_id")
    assert all(
        "Cannot read properties of undefined" in str(table.loc[c, "template"]) for c in top.cluster_ids
    )
