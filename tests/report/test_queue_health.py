"""The queue-health section of the triage notebook (its first section) and of the incident report, on a
bundle with queue analytics: the stalled consumer of the ``consumer-stall`` scenario."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import edgeinvestigate as ei
from edgeinvestigate.evidence.dlq import with_dlq_file
from edgeinvestigate.evidence.queue_metrics import with_metrics_file
from edgeinvestigate.report.runner import write_report

pytestmark = [pytest.mark.e2e]


@pytest.fixture(scope="module")
def stall_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("stall")
    run = ei.simulate("consumer-stall", root / "sim", seed=4, invocations=1200)
    ev = ei.load([run.out / "workers_logs" / "events.json"])
    ev = with_dlq_file(ev, run.out / "dlq" / "messages.json")
    ev = with_metrics_file(ev, run.out / "analytics" / "analytics.json")
    return ev.save(root / "bundle")


@pytest.mark.parametrize("notebook", ["triage", "incident-report"])
def test_queue_health_section_shows_the_stall(stall_bundle: Path, tmp_path: Path, notebook: str) -> None:
    run = write_report(stall_bundle, tmp_path / notebook, notebook=notebook, progress=False)
    assert run.ok, run.error
    page = run.html.read_text()
    assert "Queue health" in page
    assert "estimates from adaptive sampling" in page  # the figure's title says what the numbers are
    assert "backlog (messages)" in page
    assert "consumer concurrency" in page
    assert re.search(r"jobs-dlq|jobs", page)
    if notebook == "triage":
        # the section comes first, right after the summary, and names the stall
        assert page.index("Queue health") < page.index("Failure rate by job type")
        assert "stalled at" in page


def test_without_analytics_the_section_says_how_to_collect_them(tmp_path: Path) -> None:
    bundle = ei.Evidence.empty().save(tmp_path / "bundle")
    run = write_report(bundle, tmp_path / "r", notebook="triage", progress=False)
    assert run.ok, run.error
    assert "--queue-metrics QUEUE" in run.html.read_text()
