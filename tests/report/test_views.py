"""What the reports show and in which order: clusters of the incident first, words instead of raw numbers."""

from __future__ import annotations

import re
from typing import Any

import pytest

import edgeinvestigate as ei
from edgeinvestigate.analysis._labels import short_label
from edgeinvestigate.report import views


@pytest.fixture(scope="module")
def sample() -> tuple[Any, Any]:
    ev = ei.sample_bundle()
    clusters = ei.cluster(ev)
    return clusters, ei.analyze(ev, clusters=clusters)


def test_incident_clusters_come_first_by_share_and_background_is_marked(sample: tuple[Any, Any]) -> None:
    clusters, findings = sample
    ranked = views.incident_clusters(clusters, findings)
    named = {c for h in findings.hypotheses for c in h.cluster_ids}
    roles = list(ranked["role"])
    assert roles == sorted(roles, key=lambda r: r != "incident"), "background rows must come last"
    incident = ranked[ranked["role"] == "incident"]
    assert set(incident["cluster_id"]) == named & set(clusters.ids)
    assert incident["share"].sum() == pytest.approx(1.0)
    assert list(incident["count"]) == sorted(incident["count"], reverse=True)
    background = ranked[ranked["role"] == "background"]
    assert len(background) > 0, "the sample has background noise (slow subrequests, deprecations)"
    assert background["share"].isna().all()
    # the largest background cluster outnumbers some incident cluster, and still comes after it
    assert background["count"].max() > incident["count"].min()
    top = views.incident_clusters(clusters, findings, top_n=3)
    assert set(top["role"]) == {"incident"}


def test_summary_names_every_high_confidence_finding(sample: tuple[Any, Any]) -> None:
    _, findings = sample
    named = views.summary_findings(findings)
    high = [h for h in findings.hypotheses if h.confidence == "high"]
    assert len(high) >= 2, "the sample incident has a bad deploy and an outage, both high confidence"
    assert named == high


def test_deploy_lag_says_before_or_after() -> None:
    assert views.deploy_lag(-94.6) == "94.6 min before"
    assert views.deploy_lag(12.46) == "12.5 min after"
    assert views.deploy_lag(None) == ""
    assert views.deploy_lag(float("nan")) == ""


def test_short_labels_and_page_titles() -> None:
    long = "Cannot read properties of undefined (reading <quoted>) while rendering template <quoted>"
    label = short_label(long, 40)
    assert len(label) <= 40
    assert label.endswith("…")
    assert long.startswith(label[:-1])
    assert short_label("short one") == "short one"
    assert views.page_title("incident-report", incident_id="INC-9", title="Bad deploy") == (
        "INC-9: Bad deploy · incident-report"
    )
    assert views.page_title("triage") == "triage · edgeinvestigate"


def test_report_pages_have_real_titles(executed: Any) -> None:
    for name, run in executed.runs.items():
        titles = re.findall(r"<title>([^<]*)</title>", run.html.read_text())
        assert titles, name
        assert titles[0] != "Notebook", name
        assert name in titles[0], titles[0]
    incident = re.findall(r"<title>([^<]*)</title>", executed.runs["incident-report"].html.read_text())[0]
    assert incident.startswith("INC-")
