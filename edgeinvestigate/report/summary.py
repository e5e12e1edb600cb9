"""A ticket-ready Markdown summary of the findings, for Slack, GitHub issues and incident tickets.

``edgeinvestigate analyze BUNDLE --format markdown`` prints it and ``edgeinvestigate report`` writes it
as ``summary.md`` next to the HTML. It holds a title line, the impact numbers, the UTC timeline, the
ranked findings with their evidence numbers, and links to the report and the bundle. Tables only,
no HTML. Text that comes from the data (templates, hosts, versions) is redacted like the reports
and escaped so that it stays text: Markdown link and image syntax in a log line never becomes a
link, an image or HTML, and URLs are shown as code so that no renderer turns them into links.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeinvestigate.report.redact import Redactor

if TYPE_CHECKING:  # pragma: no cover
    from edgeinvestigate.models.findings import Findings

__all__ = ["markdown_summary", "md_text"]

# What can start markup in running text or a table cell: backslash, code, emphasis, links and
# images (``[``, ``]``; ``(`` and ``!`` are harmless once brackets are escaped), tables, strikethrough,
# and ``_`` at a word boundary (GFM never reads ``EMAIL_DELIVERY`` as emphasis). ``&``, ``<``, ``>``
# become entities, which GitHub and Slack both show as the characters and never as HTML or links.
_SPECIAL = re.compile(r"([\\`*\[\]|~]|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def _escape(text: str) -> str:
    text = re.sub(r"[&<>]", lambda m: _ENTITIES[m.group(0)], text)
    return _SPECIAL.sub(r"\\\1", text)


# URLs, bare host names and e-mail addresses: renderers (GitHub, Slack, linkify) turn them into links
_URL = re.compile(
    r"\b(?:[a-z][a-z0-9+.-]*://|www\.)[^\s`<>()\[\]]+(?<![.,;:!?'\"])"
    r"|(?<![\w@.-])(?:[\w.+-]+@)?(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,24}\b(?![\w-])",
    re.I,
)
_EVIDENCE_KEYS = ("errors", "jobs", "dlq_messages", "deliveries", "retried", "invocations", "messages",
                  "share_on_version", "minutes_to_first_error",
                  # queue analytics findings
                  "backlog_growth", "errors_during", "without_error_log", "missing_reads")  # fmt: skip


def md_text(text: object, redactor: Redactor | None = None) -> str:
    """One line of data as Markdown text: redacted, escaped, URLs as code spans, no line breaks."""
    raw = " ".join(str(text if text is not None else "").split())
    if redactor is not None:
        raw = redactor.text(raw)
    out: list[str] = []
    pos = 0
    for m in _URL.finditer(raw):
        out.append(_escape(raw[pos : m.start()]))
        url = m.group(0).replace("`", "'").replace("|", "%7C")
        out.append(f"`{url}`")
        pos = m.end()
    out.append(_escape(raw[pos:]))
    return "".join(out)


def _row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _evidence(evidence: dict[str, Any]) -> str:
    parts = []
    for key in _EVIDENCE_KEYS:
        value = evidence.get(key)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, float):
            parts.append(f"{key.replace('_', ' ')} {value:.2f}".rstrip("0").rstrip("."))
        elif isinstance(value, int):
            partial = evidence.get("dlq_partial") if key == "dlq_messages" else None
            parts.append(f"{key.replace('_', ' ')} {value:,}" + (f" ({partial})" if partial else ""))
    return ", ".join(parts)


def _when(value: Any) -> str:
    return f"{value:%Y-%m-%d %H:%M:%S}" if value is not None else "-"


def markdown_summary(
    findings: Findings,
    *,
    incident_id: str = "",
    title: str = "",
    report: str | Path | None = None,
    bundle: str | Path | None = None,
    max_findings: int = 5,
    redact: bool = True,
    dlq_note: str = "",
) -> str:
    """The summary as Markdown text (ends with a newline)."""
    r = Redactor(pii=redact, credentials=True)
    inc = findings.incident
    imp = inc.impact
    head = ": ".join(x for x in (incident_id.strip(), title.strip() or inc.title) if x)
    lines = [f"# {md_text(head or 'Incident summary', r)}", ""]
    cov = findings.dlq_coverage
    if not dlq_note and cov is not None:
        dlq_note = f"{cov.label}: {cov.reason}"
    dlq = f"{imp.dlq_messages:,} of the incident" + (f" ({md_text(dlq_note, r)})" if dlq_note else "")
    lines += [
        "## Impact",
        "",
        _row(["measure", "value"]),
        _row(["---", "---:"]),
        _row(["invocations", f"{imp.invocations:,}"]),
        _row(["failed invocations", f"{imp.failed_invocations:,} ({imp.failed_rate:.1%})"]),
        _row(["errors (of the incident)", f"{imp.errors:,} ({imp.incident_errors:,})"]),
        _row(["jobs failed", "-" if imp.jobs_failed is None else f"{imp.jobs_failed:,}"]),
        _row(["DLQ messages", dlq]),
        _row(["affected job types", md_text(", ".join(inc.affected_job_types) or "none", r)]),
        "",
    ]
    tl = inc.timeline
    events = [(tl.first_error, "first error"), (tl.detection, "detection (first bucket above normal)"),
              (tl.peak, "peak"), (tl.last_error, "last error")]  # fmt: skip
    events += [(d.at, f"deploy of {d.script or 'script'} version {d.version[:12]}") for d in findings.deploys]
    dated = sorted(((t, what) for t, what in events if t is not None), key=lambda e: e[0])
    lines += ["## Timeline (UTC)", "", _row(["time (UTC)", "event"]), _row(["---", "---"])]
    lines += [_row([_when(t), md_text(what, r)]) for t, what in dated] or [_row(["-", "no errors"])]
    lines += ["", "## Findings", ""]
    if findings.hypotheses:
        lines += [
            _row(["#", "finding", "kind", "confidence", "evidence"]),
            _row(["---:", "---", "---", "---", "---"]),
        ]
        for h in findings.hypotheses[:max_findings]:
            lines.append(
                _row([str(h.rank), md_text(h.title, r), h.kind.replace("_", " "), h.confidence,
                      md_text(_evidence(h.evidence), r)])
            )  # fmt: skip
        lines.append("")
        lines += [f"{h.rank}. {md_text(h.sentence, r)}" for h in findings.hypotheses[:max_findings]]
    else:
        lines.append("No hypothesis stands out: errors look like the usual background.")
    links = [(label, value) for label, value in (("report", report), ("bundle", bundle)) if value]
    if links:
        lines += ["", "## Links", ""]
        lines += [f"- {label}: `{str(value).replace('`', chr(39))}`" for label, value in links]
    return "\n".join(lines) + "\n"
