"""The ticket-ready Markdown summary: tables and text only, redacted, and log text never becomes a link."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest
from markdown_it import MarkdownIt

import edgeinvestigate as ei
from edgeinvestigate.report.sample import sample_dir
from edgeinvestigate.report.summary import markdown_summary, md_text

HOSTILE = (
    "boom ![pixel](http://evil.example/p.png) [click me](https://evil.example/login) "
    "<script>alert(1)</script> <img src=x onerror=alert(1)> mail bob@example.com | pipe `tick`"
)


def _render(md: str) -> str:
    """GitHub-like rendering: tables, strikethrough and bare-URL autolinks on."""
    return MarkdownIt("gfm-like", {"linkify": True}).render(md)


@pytest.fixture(scope="module")
def findings() -> Any:
    ev = ei.sample_bundle()
    return ei.analyze(ev)


def test_summary_has_title_impact_timeline_findings_and_links(findings: Any) -> None:
    md = markdown_summary(findings, incident_id="INC-9", report="out/incident-report.html", bundle="ev/INC-9")
    assert md.splitlines()[0].startswith("# INC-9: ")
    for section in ("## Impact", "## Timeline (UTC)", "## Findings", "## Links"):
        assert section in md
    html = _render(md)
    assert html.count("<table>") == 3
    assert "<a " not in html
    top = findings.hypotheses[0]
    assert f"| {top.rank} |" in md
    assert f"errors {top.evidence['errors']:,}" in md  # the evidence numbers
    assert f"{findings.incident.impact.invocations:,}" in md
    assert "`out/incident-report.html`" in md


def test_log_text_stays_text(findings: Any) -> None:
    top = findings.hypotheses[0].model_copy(update={"title": HOSTILE, "sentence": HOSTILE})
    hostile = findings.model_copy(update={"hypotheses": [top, *findings.hypotheses[1:]]})
    md = markdown_summary(hostile)
    html = _render(md)
    assert "<a " not in html, "link syntax in log text became a link"
    assert "<img" not in html
    assert "<script" not in html
    assert "bob@example.com" not in md, "e-mail addresses are redacted by default"
    assert "\\[email\\]" in md  # redacted, and the brackets escaped
    assert "evil.example" in html  # still visible, as text
    # the findings table keeps its 5 columns despite the pipe in the text
    rows = [line for line in md.splitlines() if line.startswith("| 1 |")]
    assert len(re.split(r"(?<!\\)\|", rows[0])) == 7
    kept = markdown_summary(hostile, redact=False)
    assert "bob@example.com" in kept


@pytest.mark.parametrize(
    ("text", "forbidden"),
    [
        ("[x](http://a.example)", "<a "),
        ("![x](http://a.example/i.png)", "<img"),
        ("see https://a.example/path?q=1.", "<a "),
        ("www.a.example", "<a "),
        ("<b>bold</b>", "<b>"),
        ("~~gone~~", "<s>"),
    ],
)
def test_md_text_neutralises_markup(text: str, forbidden: str) -> None:
    assert forbidden not in _render(md_text(text))


@pytest.mark.e2e
def test_analyze_prints_markdown_and_report_writes_summary_md(executed: Any) -> None:
    bundle = sample_dir() / "bundle"
    proc = subprocess.run(
        [sys.executable, "-m", "edgeinvestigate", "analyze", str(bundle), "--format", "markdown",
         "--incident-id", "INC-7"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("# INC-7: ")
    summary = executed.runs["incident-report"].html.parent / "summary.md"
    written = summary.read_text()
    assert written.startswith("# INC-7: ")
    assert "`incident-report.html`" in written
