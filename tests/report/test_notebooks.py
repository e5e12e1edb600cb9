"""Every notebook runs through papermill on the sample incident, and finds what was injected.

The executions are shared per session (see conftest.py); these tests read what they wrote.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import nbformat
import pytest

from edgeinvestigate.cli._main import main
from edgeinvestigate.report.runner import NOTEBOOKS, run_notebook

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _truth_cause(truth: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(rc for rc in truth["root_causes"] if rc["kind"] == kind)


@pytest.mark.parametrize("name", list(NOTEBOOKS))
def test_notebook_ran_cleanly(executed: Any, name: str) -> None:
    run = executed.runs[name]
    assert run.ipynb.is_file()
    assert run.html.is_file()
    nb = nbformat.read(run.ipynb, as_version=4)
    assert not any("INCOMPLETE" in c.source for c in nb.cells if c.cell_type == "markdown"), name
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", f"{name}: {out.get('ename')}: {out.get('evalue')}"
            if out["output_type"] == "stream":
                assert out["name"] != "stderr", f"{name} wrote to stderr: {out['text'][:300]}"
    # one injected-parameters cell, carrying the bundle and nothing secret
    params = nb.metadata["papermill"]["parameters"]
    assert Path(params["bundle"]) == executed.bundle.resolve()
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_findings_name_the_injected_root_causes(executed: Any) -> None:
    truth = executed.ground_truth
    assert truth, "the sample bundle carries its ground truth"
    bad = _truth_cause(truth, "bad_deploy")
    version = next(d["version_id"] for d in truth["deployments"] if d["at"] == bad["start"])
    outage = _truth_cause(truth, "dependency_outage")
    for name in NOTEBOOKS:
        path = executed.runs[name].findings
        assert path is not None, f"{name} wrote no findings.json"
        findings = json.loads(Path(path).read_text())
        top = findings["hypotheses"][0]
        assert top["kind"] == "bad_deploy", name
        assert top["deploy"]["version"] == version, name
        assert "EMAIL_DELIVERY" in top["job_types"], name
        dep = next(h for h in findings["hypotheses"] if h["kind"] == "dependency_outage")
        assert "IMAGE_PROCESSING" in dep["job_types"]
        bucket = timedelta(seconds=findings["bucket_seconds"])
        assert abs(_when(dep["window"]["start"]) - _when(outage["start"])) <= bucket
        assert abs(_when(dep["window"]["end"]) - _when(outage["end"])) <= bucket


def test_reports_show_the_root_cause(executed: Any) -> None:
    findings = json.loads(Path(executed.runs["incident-report"].findings).read_text())
    top = findings["hypotheses"][0]
    email_cluster = top["cluster_ids"][0]
    for name in ("triage", "error-clusters", "root-cause", "incident-report"):
        page = executed.runs[name].html.read_text()
        assert email_cluster in page, f"{name}.html does not show the bad-deploy cluster"
    assert "EMAIL_DELIVERY" in executed.runs["triage"].html.read_text()
    page = executed.runs["incident-report"].html.read_text()
    for section in (
        "Impact",
        "Timeline (UTC)",
        "Findings",
        "Data manifest",
        "Where we got lucky",
        "Action items",
    ):
        assert section in page
    assert "INC-7" in page


def test_dlq_replay_plans_the_findings_clusters_without_sending(executed: Any) -> None:
    run = executed.runs["dlq-replay"]
    plan = json.loads((run.out_dir / "replay-plan.json").read_text())
    findings = json.loads(Path(run.findings).read_text())
    wanted = {
        c
        for h in findings["hypotheses"]
        if h["kind"] in ("bad_deploy", "dependency_outage")
        for c in h["cluster_ids"]
    }
    assert plan["messages"], "the dry run selected nothing"
    assert set(plan["by_cluster"]) <= wanted
    assert set(plan["by_type"]) <= {"EMAIL_DELIVERY", "IMAGE_PROCESSING"}
    assert plan["by_type"]["EMAIL_DELIVERY"] > 0
    assert all(m["body"]["metadata"]["replay"]["id"] for m in plan["messages"])
    from edgeinvestigate.replay import default_ledger_path

    assert not Path(default_ledger_path(run.out_dir / "replay-plan.json")).exists()  # nothing was run
    assert "Dry run only" in run.html.read_text()


def test_token_in_the_environment_never_reaches_a_report(executed: Any) -> None:
    files = executed.files()
    assert len(files) >= 15
    for path in files:
        assert executed.token not in path.read_text(errors="replace"), path


def test_pii_is_redacted_and_code_hidden(executed: Any, hostile: Any) -> None:
    for path in executed.files():
        text = path.read_text(errors="replace")
        assert hostile.email not in text, path
        assert hostile.ip not in text, path
        assert "Bearer abcdefghijklmnopqrstuvwxyz" not in text, path
    page = executed.runs["triage"].html.read_text()
    assert "[email]" in page
    assert "[ip]" in page
    assert "hl-ipython3" not in page  # code cells hidden by default
    assert "open_bundle" not in page


@pytest.mark.parametrize("name", ["triage", "error-clusters", "root-cause", "incident-report"])
def test_html_is_self_contained_with_every_figure(executed: Any, name: str) -> None:
    run = executed.runs[name]
    page = run.html.read_text()
    assert run.n_figures >= 1 or name == "incident-report"
    assert page.count('class="plotly-graph-div"') >= max(run.n_figures, 1)
    assert "Plotly.newPlot" in page
    assert re.search(r"<script[^>]+src=", page) is None, "a script is loaded from elsewhere"
    assert re.search(r"<link[^>]+href=[\"']https?:", page) is None, "a stylesheet is loaded from elsewhere"
    assert "Content-Security-Policy" in page


def test_no_redact_keeps_pii_but_never_the_token(
    executed: Any, hostile: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOUDFLARE_API_TOKEN", executed.token)
    run = run_notebook(
        "triage",
        tmp_path,
        {"bundle": str(executed.bundle), "top_n": 3},
        redact=False,
        show_code=True,
        progress=False,
    )
    assert run.ok, run.error
    page = run.html.read_text()
    assert hostile.email in page
    assert "NOT REDACTED" in page
    assert "hl-ipython3" in page  # --show-code
    assert "open_bundle" in page
    for path in (run.html, run.ipynb, run.findings):
        assert executed.token not in Path(path).read_text()


def test_a_failing_run_still_writes_both_files_with_a_banner(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], hostile: Any
) -> None:
    bundle = tmp_path / "broken-bundle"
    bundle.mkdir()
    (bundle / "manifest.json").write_text('{"format": "not a bundle", "note": "' + hostile.script + '"}')
    out = tmp_path / "report"
    with pytest.raises(SystemExit) as exit_info:
        main(["report", str(bundle), "--out", str(out), "--notebook", "triage", "--progress"])
    assert exit_info.value.code != 0
    err = capfd.readouterr().err
    assert "Executing" in err  # papermill's progress bar
    assert "failed" in err
    assert (out / "triage.failed.ipynb").is_file()
    assert not (out / "triage.html").exists()
    page = (out / "triage.failed.html").read_text()
    banner = re.search(r"<div class=[\"']ei-banner[\"'][^>]*><pre>(.*?)</pre>", page, re.S)
    assert banner is not None
    assert "INCOMPLETE" in banner.group(1)
    assert "cell [" in banner.group(1)
    assert "open_bundle" in banner.group(1) or "Error" in banner.group(1)
    assert hostile.script not in page
    nb = nbformat.read(out / "triage.failed.ipynb", as_version=4)
    assert "INCOMPLETE" in nb.cells[0].source


def test_incident_report_on_an_empty_bundle(tmp_path: Path) -> None:
    """No data at all is a valid (if boring) incident: the report says so instead of crashing."""
    import edgeinvestigate as ei
    from edgeinvestigate.report.runner import write_report

    bundle = ei.Evidence.empty().save(tmp_path / "bundle")
    run = write_report(bundle, tmp_path / "report", progress=False)
    assert run.ok, run.error
    assert "No hypothesis stands out" in run.html.read_text()
    assert json.loads(Path(run.findings).read_text())["hypotheses"] == []


def test_data_manifest_sizes_are_whole_bytes(executed: Any) -> None:
    """A source without a size (the DLQ file) must not turn every size into a float (17602.0)."""
    page = executed.runs["incident-report"].html.read_text()
    manifest = page[page.index("Data manifest") :]
    sizes = {
        str(s["size"])
        for s in json.loads((executed.bundle / "manifest.json").read_text())["sources"]
        if "size" in s
    }
    assert sizes
    for size in sizes:
        assert f"<td>{size}</td>" in manifest
        assert f"<td>{size}.0</td>" not in manifest


def test_impact_says_which_dlq_count_it_is(executed: Any) -> None:
    """The incident's DLQ messages and the whole DLQ are different numbers: both are labelled."""
    page = executed.runs["incident-report"].html.read_text()
    impact = page[page.index("Impact") : page.index("Timeline (UTC)")]
    findings = json.loads(executed.runs["incident-report"].findings.read_text())
    total = findings["totals"]["dlq_messages"]
    ours = findings["incident"]["impact"]["dlq_messages"]
    assert re.search(rf"<td>DLQ messages of the incident</td>\s*<td>{ours:,}</td>", impact)
    assert re.search(rf"<td>DLQ messages in all</td>\s*<td>{total:,}</td>", impact)
    assert "jobs in the DLQ" not in impact


def test_triage_counts_the_whole_dlq_and_plots_readable_steps(executed: Any) -> None:
    page = executed.runs["triage"].html.read_text()
    manifest = json.loads((executed.bundle / "manifest.json").read_text())
    assert f"<b>{manifest['rows']['dlq']:,}</b> messages in the dead-letter queue" in page
    nb = nbformat.read(executed.runs["triage"].ipynb, as_version=4)
    titles = [
        out["data"]["application/vnd.plotly.v1+json"]["layout"]["title"]["text"]
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if "application/vnd.plotly.v1+json" in out.get("data", {})
    ]
    assert "Failed rate by job type (5 min steps)" in titles


def test_root_cause_shows_limits_as_a_table_and_whole_attempts(executed: Any) -> None:
    page = executed.runs["root-cause"].html.read_text()
    assert '"cpu_limit_ms":' not in page  # no raw JSON dump
    assert re.search(r"<td>cpu_limit_ms</td>\s*<td>[0-9,]+</td>", page)
    nb = nbformat.read(executed.runs["root-cause"].ipynb, as_version=4)
    figures = {
        fig["layout"]["title"]["text"]: fig
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if (fig := out.get("data", {}).get("application/vnd.plotly.v1+json")) is not None
    }
    assert figures["Deliveries by attempt number"]["layout"]["xaxis"]["dtick"] == 1
    timeline = figures["Failed invocations by job type"]
    assert {t["type"] for t in timeline["data"]} == {"bar"}  # plots.timeline: stacked bars
    assert any(a["text"].startswith("deploy ") for a in timeline["layout"]["annotations"])


def test_error_cluster_bars_get_a_row_per_cluster(executed: Any) -> None:
    nb = nbformat.read(executed.runs["error-clusters"].ipynb, as_version=4)
    bars = next(
        fig
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if (fig := out.get("data", {}).get("application/vnd.plotly.v1+json")) is not None
        and fig["layout"]["title"]["text"].endswith("clusters by error count")
    )
    n = len({y for trace in bars["data"] for y in trace["y"]})
    assert bars["layout"]["height"] >= 26 * n + 140  # labels do not overlap
