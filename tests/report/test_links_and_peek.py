"""Reports of a Workers Logs bundle whose DLQ was peeked: the cluster tables link each cluster's
example event to the dashboard (an ``<a href>`` only for the URLs we build, never from log text), and
every notebook says that its DLQ numbers are "of the first N only"."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from _helpers.peek import as_peeked

import edgeinvestigate as ei
from edgeinvestigate.analysis.deeplinks import DASHBOARD
from edgeinvestigate.report.runner import NOTEBOOKS, NotebookRun, write_report
from edgeinvestigate.simulator import simulate
from edgeinvestigate.sources.api.dlq_frame import dlq_frame_from_file

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PEEK = 20  # messages the (simulated) peek saw
EVIL = "evil.example.com"
HOSTILE = (
    f'upstream said <a href="https://{EVIL}/steal">open</a> and [click here](https://{EVIL}/md) '
    f"or javascript:alert(1) https://{EVIL}/bare"
)


def _hostile_event(truth: dict[str, Any], at_ms: int) -> dict[str, Any]:
    """A consumer error line (Workers Logs API shape) whose text carries links of its own."""
    rid = "0badc0de0badc0de"
    return {
        "dataset": "cloudflare-workers",
        "timestamp": at_ms,
        "source": {"event": "job.failed", "error": HOSTILE},
        "$metadata": {
            "id": "01M8EMWJVXR2KW3HHQC65THOST",
            "requestId": rid,
            "level": "error",
            "type": "cf-worker",
        },
        "$workers": {"scriptName": truth["consumer_script"], "eventType": "queue", "requestId": rid},
    }


@dataclasses.dataclass
class Reports:
    bundle: Path
    runs: dict[str, NotebookRun]
    truth: dict[str, Any]
    backlog: int


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Reports:
    root = tmp_path_factory.mktemp("links")
    summary = simulate("default", root / "sim", seed=3, invocations=900, formats=("workers_logs", "dlq"))
    truth = json.loads(summary.ground_truth.read_text())
    path = root / "sim" / "workers_logs" / "events.json"
    events = json.loads(path.read_text())
    events.append(_hostile_event(truth, max(e["timestamp"] for e in events)))
    path.write_text(json.dumps(events))
    ev = ei.load([path], strict=True)
    dlq = dlq_frame_from_file(root / "sim" / "dlq" / "messages.json")
    bundle = as_peeked(ev, dlq, PEEK, account_id=truth["account_id"]).save(root / "bundle")
    runs = {}
    for name in NOTEBOOKS:
        params = {"to_queue": "jobs"} if name == "dlq-replay" else None
        runs[name] = write_report(bundle, root / name, notebook=name, parameters=params, progress=False)
        runs[name].raise_for_error()
    return Reports(Path(bundle), runs, truth, len(dlq))


def _tables(page: str) -> list[str]:
    return re.findall(r"<table[^>]*ei-table.*?</table>", page, flags=re.S)


@pytest.mark.parametrize("name", list(NOTEBOOKS))
def test_every_notebook_says_its_dlq_numbers_are_of_the_first_n_only(reports: Reports, name: str) -> None:
    page = reports.runs[name].html.read_text()
    assert f"of the first {PEEK} only" in page, name
    findings = json.loads(Path(reports.runs[name].findings or "").read_text())
    assert findings["dlq_coverage"]["seen"] == PEEK
    assert findings["dlq_coverage"]["backlog"] == reports.backlog


@pytest.mark.parametrize("name", ["error-clusters", "triage"])
def test_cluster_tables_link_example_events_to_the_dashboard(reports: Reports, name: str) -> None:
    page = reports.runs[name].html.read_text()
    anchors = [a for t in _tables(page) for a in re.findall(r"<a\b[^>]*>", t)]
    assert anchors, f"{name}: no dashboard link in its cluster tables"
    ev = ei.Evidence.open(reports.bundle)
    request_ids = set(ev.invocations["request_id"].dropna().astype(str))
    for a in anchors:
        (href,) = re.findall(r'href="([^"]*)"', a)
        url = href.replace("&amp;", "&")
        assert url.startswith(f"{DASHBOARD}/{reports.truth['account_id']}/workers/services/view/")
        (flt,) = json.loads(parse_qs(urlsplit(url).query)["filters"][0])
        assert flt["key"] == "$metadata.requestId"
        assert flt["value"] in request_ids  # the event's own request id
        assert 'rel="noopener noreferrer"' in a


def test_log_text_never_becomes_a_link(reports: Reports) -> None:
    triage = reports.runs["triage"].html.read_text()
    assert EVIL in triage, "the latest error lines show the hostile line (as text)"
    assert "&lt;a href=" in triage  # escaped
    for name in ("error-clusters", "triage"):
        page = reports.runs[name].html.read_text()
        assert not re.search(rf"<a\b[^>]*{re.escape(EVIL)}", page), name
        assert not re.search(rf"<[a-z][^<>]*href=\"[^\"]*{re.escape(EVIL)}", page), name  # in no tag
        assert "javascript:alert" not in re.sub(r"&[a-z]+;", "", "".join(re.findall(r"<a\b[^>]*>", page)))
        for t in _tables(page):
            for href in re.findall(r'<a\b[^<>]*href="([^"]*)"', t):
                assert href.startswith(DASHBOARD + "/"), (name, href)


def test_table_links_only_dashboard_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd

    from edgeinvestigate.report import kernel

    shown: list[dict[str, Any]] = []
    monkeypatch.setattr(kernel, "_display", lambda bundle, metadata=None: shown.append(bundle))
    ours = f"{DASHBOARD}/{'a' * 32}/workers/services/view/w/production/observability/logs?filters=%5B%5D"
    df = pd.DataFrame(
        {
            "text": [HOSTILE, "ok"],
            "Cloudflare": ["<b>open</b>", "Workers Logs"],
            "dashboard_url": [f"https://{EVIL}/x", ours],
        }
    )
    kernel.table(df, links={"Cloudflare": "dashboard_url"})
    (out,) = shown
    page = out["text/html"]
    assert re.findall(r"<a\b[^>]*>", page) == [f'<a href="{ours}" target="_blank" rel="noopener noreferrer">']
    assert "&lt;b&gt;open&lt;/b&gt;" in page  # the other cell stays escaped text
    assert "dashboard_url" not in page
    assert EVIL in page  # shown as text in the text column, never as a link
    assert "Workers Logs" in out["text/plain"]


def test_account_id_parameter_is_checked() -> None:
    from edgeinvestigate.errors import NotebookParameterError
    from edgeinvestigate.report.params import validate_parameters

    ok = validate_parameters("triage", {"account_id": "A" * 32})
    assert ok.account_id == "a" * 32  # type: ignore[attr-defined]
    with pytest.raises(NotebookParameterError) as info:
        validate_parameters("error-clusters", {"account_id": "not-an-account"})
    assert "32 hex digits" in info.value.message
