"""Plotly figure builders return figures (never show them) and need the notebooks extra."""

from __future__ import annotations

import sys

import plotly.graph_objects as go
import pytest

import edgeinvestigate as ei
from edgeinvestigate.analysis import plots
from edgeinvestigate.errors import MissingExtraError
from edgeinvestigate.evidence.bundle import Evidence


@pytest.fixture
def analysed(small_evidence: Evidence) -> tuple[ei.Clusters, ei.Findings]:
    clusters = ei.cluster(small_evidence)
    return clusters, ei.analyze(small_evidence, clusters)


def test_timeline_has_job_types_deploy_markers_and_windows(
    analysed: tuple[ei.Clusters, ei.Findings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(go.Figure, "show", lambda *a, **k: pytest.fail("a builder called .show()"))
    _, findings = analysed
    fig = plots.timeline(findings)
    assert isinstance(fig, go.Figure)
    assert {t.name for t in fig.data} == {"IMAGE_PROCESSING", "DATA_SYNC"}
    shapes = fig.layout.shapes
    assert any(s.type == "line" for s in shapes)  # the v1 -> v2 deploy marker
    assert any(s.type == "rect" for s in shapes)  # the top hypotheses' windows
    assert any("deploy v2" in a.text for a in fig.layout.annotations)


def test_cluster_bars_blast_radius_attempts(analysed: tuple[ei.Clusters, ei.Findings]) -> None:
    clusters, findings = analysed
    bars = plots.cluster_bars(clusters)
    assert list(bars.data[0].x) == sorted(clusters.table["count"])  # largest at the top
    radius = plots.blast_radius(findings, dimension="job_type")
    assert set(radius.data[0].x) == {"IMAGE_PROCESSING", "DATA_SYNC"}
    hist = plots.attempts_histogram(findings)
    assert list(hist.data[0].x) == [b.attempts for b in findings.attempts]
    # every figure serialises (what reports embed)
    for fig in (bars, radius, hist):
        assert fig.to_json()


def test_missing_plotly_raises_a_friendly_error(
    analysed: tuple[ei.Clusters, ei.Findings], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "plotly", None)
    monkeypatch.setitem(sys.modules, "plotly.graph_objects", None)
    with pytest.raises(MissingExtraError, match=r"edgeinvestigate\[notebooks\]"):
        plots.timeline(analysed[1])


def test_timeline_window_labels_never_overlap(analysed: tuple[ei.Clusters, ei.Findings]) -> None:
    """An outage and its retry storm start in the same minute: their labels get separate rows."""
    _, findings = analysed
    first = next(h for h in findings.hypotheses if h.window is not None)
    twin = first.model_copy(update={"rank": 99, "kind": "retry_storm"})
    both = findings.model_copy(update={"hypotheses": [first, twin]})
    fig = plots.timeline(both)
    labels = [a for a in fig.layout.annotations if a.text.startswith("#")]
    assert [a.text for a in labels] == [f"#{first.rank} {first.kind.replace('_', ' ')}", "#99 retry storm"]
    assert labels[0].x == labels[1].x
    assert labels[0].y != labels[1].y
