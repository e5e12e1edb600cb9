"""What the notebooks call to show things: figures, tables, text and the findings they found.

Every helper here escapes the data it shows. Log lines and payloads come from the systems under
investigation and may contain ``<script>`` or ``<img onerror=...>``: a report must show them as
text, never run them. Static explanations live in the notebooks' Markdown cells; anything built from
data goes through :func:`say` (HTML-escaped values) or :func:`table` (escaped cells).

Figures are displayed with :func:`show`, which puts the figure both as plotly's own mimetype (for
JupyterLab) and as an HTML ``<div>`` plus a ``Plotly.newPlot`` call without plotly.js (for the HTML
report, which inlines plotly.js once in its ``<head>``). This sidesteps plotly.py issue 5365, where
figures silently vanish from nbconvert's HTML.
"""

from __future__ import annotations

import html
import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from edgeinvestigate.analysis.clustering import Clusters
    from edgeinvestigate.evidence.bundle import Evidence

__all__ = [
    "FINDINGS_MIMETYPE",
    "HIDDEN_OUTPUT_TAG",
    "cluster_views",
    "dlq_size",
    "emit",
    "findings_of",
    "note",
    "open_bundle",
    "pre",
    "say",
    "show",
    "table",
]

FINDINGS_MIMETYPE = "application/vnd.edgeinvestigate.models.findings+json"
RESULT_MIMETYPE = "application/vnd.edgeinvestigate.result+json"
HIDDEN_OUTPUT_TAG = "ei-hidden"
PLOTLY_MIMETYPE = "application/vnd.plotly.v1+json"


def _display(bundle: dict[str, Any], metadata: dict[str, Any] | None = None) -> None:
    from IPython.display import display

    display(bundle, raw=True, metadata=metadata or {})


# Mode-bar buttons that can send a chart off the machine (plotly.js 4 shows "Share chart..." by
# default and posts the figure's data to plotlyServerURL): removed, and the URL emptied, in every figure.
OFFLINE_PLOT_CONFIG: dict[str, Any] = {
    "displaylogo": False,
    "responsive": True,
    "showSendToCloud": False,
    "plotlyServerURL": "",
    "modeBarButtonsToRemove": ["sendDataToCloud", "editInChartStudio"],
}


def show(fig: Any, *, height: int | None = None) -> None:
    """Display a plotly figure so that it shows in JupyterLab and in the offline HTML report."""
    if height is not None:
        fig.update_layout(height=height)
    div = fig.to_html(full_html=False, include_plotlyjs=False, config=OFFLINE_PLOT_CONFIG)
    title = fig.layout.title.text or "figure"
    spec = json.loads(fig.to_json())
    spec["config"] = OFFLINE_PLOT_CONFIG
    _display(
        {
            PLOTLY_MIMETYPE: spec,
            "text/html": div,
            "text/plain": f"[figure: {title}]",
        }
    )


def _cell(value: Any) -> Any:
    """Lists and arrays become "a, b, c"; everything else stays."""
    if isinstance(value, str) or value is None:
        return value
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, list | tuple | set):
        return ", ".join(str(v) for v in value)
    return value


def _when(value: Any) -> Any:
    """Timestamps as 'YYYY-MM-DD HH:MM:SS' (UTC, which every frame uses)."""
    try:
        return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None and value == value else ""
    except (AttributeError, ValueError):
        return value


def _clip(value: Any, max_chars: int) -> Any:
    if isinstance(value, str) and len(value) > max_chars:
        return value[: max_chars - 1] + "…"
    return value


def _link_cells(shown: pd.DataFrame, links: dict[str, str]) -> tuple[pd.DataFrame, dict[str, str]]:
    """Cells of the ``links`` columns whose URL column holds a dashboard URL we built become
    placeholder tokens, and the anchors that replace them once the rest is escaped."""
    from uuid import uuid4

    from edgeinvestigate.analysis.deeplinks import DASHBOARD

    token = f"eilink{uuid4().hex}n"
    anchors: dict[str, str] = {}
    for col, url_col in links.items():
        if col not in shown or url_col not in shown:
            continue
        cells = []
        for text, url in zip(shown[col], shown[url_col], strict=True):
            if (
                isinstance(url, str)
                and url.startswith(DASHBOARD + "/")
                and not any(c in url for c in " \"<>'")
            ):
                key = f"{token}{len(anchors)}x"
                label = html.escape(str(text if text is not None and text == text else "open"))
                anchors[key] = (
                    f'<a href="{html.escape(url, quote=True)}" target="_blank" '
                    f'rel="noopener noreferrer">{label}</a>'
                )
                cells.append(key)
            else:
                cells.append(text)
        shown[col] = cells
    urls = [c for c in set(links.values()) if c not in links and c in shown]
    return shown.drop(columns=urls), anchors


def table(
    df: pd.DataFrame,
    *,
    max_rows: int = 50,
    max_chars: int = 300,
    index: bool = False,
    links: dict[str, str] | None = None,
) -> None:
    """Display a frame as an HTML table with every cell escaped and long text clipped.

    ``links`` maps a column to the column of dashboard URLs (built by
    :mod:`edgeinvestigate.analysis.deeplinks`) that its cells open: such a cell is an ``<a href>``
    to that URL (with the cell's escaped text), the URL column is not shown. Nothing else ever
    becomes a link: a URL column holding anything but ``https://dash.cloudflare.com/...`` stays text.
    """
    shown = df.head(max_rows).copy()
    anchors: dict[str, str] = {}
    if links:
        shown, anchors = _link_cells(shown, links)
    for col in shown.columns:
        dtype = str(shown[col].dtype)
        if shown[col].dtype == object or dtype.startswith(("string", "large_string", "list", "large_list")):
            shown[col] = shown[col].map(lambda v: _clip(_cell(v), max_chars))
        elif dtype.startswith("datetime64") or "timestamp" in dtype:
            shown[col] = shown[col].map(_when)
    body = shown.to_html(escape=True, index=index, border=0, classes="ei-table", na_rep="")
    plain = shown.to_string(index=index, max_colwidth=80)
    for key, anchor in anchors.items():
        body = body.replace(key, anchor)
        plain = plain.replace(key, html.unescape(re.sub(r"<[^>]+>", "", anchor)))
    more = len(df) - len(shown)
    if more > 0:
        body += f"<p class='ei-more'>… and {more:,} more rows</p>"
    _display({"text/html": body, "text/plain": plain})


def say(template: str, /, **values: Any) -> None:
    """Display a line of HTML: ``template`` is trusted markup, every ``{value}`` is escaped.

    >>> say("<b>{n}</b> messages in the DLQ of {queue}", n=1200, queue=name)  # doctest: +SKIP
    """
    escaped = {k: html.escape(_fmt(v), quote=True) for k, v in values.items()}
    text = template.format(**escaped)
    plain = template.format(**{k: _fmt(v) for k, v in values.items()})
    _display({"text/html": f"<div class='ei-say'>{text}</div>", "text/plain": _strip_tags(plain)})


def pre(text: str) -> None:
    """Display preformatted text (a plan summary, a stack trace), escaped."""
    _display({"text/html": f"<pre class='ei-pre'>{html.escape(str(text))}</pre>", "text/plain": str(text)})


def _fmt(value: Any) -> str:
    import datetime as dt

    if isinstance(value, dt.datetime):  # pandas Timestamps too; every frame is UTC
        return value.strftime("%Y-%m-%d %H:%M:%S UTC")
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3g}" if abs(value) < 1 else f"{value:,.1f}"
    return str(value)


def _strip_tags(text: str) -> str:
    import re

    return re.sub(r"<[^>]+>", "", text)


def emit(kind: str, data: Any) -> None:
    """Hand a result to the report runner (``kind`` ``"findings"`` becomes ``findings.json``).

    The output is tagged so the HTML report does not show it.
    """
    mimetype = FINDINGS_MIMETYPE if kind == "findings" else RESULT_MIMETYPE
    payload = data
    if hasattr(data, "model_dump"):
        payload = data.model_dump(mode="json")
    _display(
        {mimetype: {"kind": kind, "data": payload}, "text/plain": f"[{kind} recorded for the report]"},
        metadata={"tags": [HIDDEN_OUTPUT_TAG]},
    )


def note(text: str) -> None:
    """Display a note in italics (``Clusters.note``: why the clusters were computed in memory)."""
    if text:
        say("<p><i>{text}</i></p>", text=text)


def cluster_views(clusters: Clusters) -> dict[str, pd.DataFrame]:
    """The frames to pass to ``ev.sql(..., **views)`` so that the views ``clusters`` and
    ``cluster_rows`` are these clusters: none for clusters read from the bundle (its stored frames
    are views already, scanned from Parquet), the in-memory frames otherwise."""
    if clusters.origin == "stored" and not clusters.redacted:
        return {}
    return {"clusters": clusters.table, "cluster_rows": clusters.assign}


def dlq_size(ev: Evidence) -> str:
    """How many DLQ messages the bundle holds, against the queue's backlog when it saw only part.

    A peek sees at most the 100 messages at the head: ``"100 of 566 (peek sees the head only)"``
    instead of a plain ``"100"`` that reads like the size of the queue. The backlog and whether
    the collection was complete come from the manifest's ``dlq_collections``.
    """
    held = len(ev.dlq)
    backlog = 0
    partial: list[str] = []
    for c in ev.manifest.get("dlq_collections") or []:
        if not isinstance(c, dict):
            continue
        n = c.get("backlog_count")
        seen = c.get("messages")
        if isinstance(n, int) and not isinstance(n, bool):
            backlog += n
        if c.get("complete") is False or (isinstance(n, int) and isinstance(seen, int) and n > seen):
            partial.append("peek sees the head only" if c.get("mode") == "peek" else "snapshot stopped early")
    if not partial:
        return f"{held:,}"
    why = "; ".join(dict.fromkeys(partial))
    if backlog > held:
        return f"{held:,} of {backlog:,} ({why})"
    return f"{held:,} of more ({why})"


def findings_of(
    ev: Evidence, clusters: Any, findings_file: str = "", *, since: str = "", until: str = ""
) -> Any:
    """The findings a notebook reports: those in ``findings_file`` (the bundle's own findings.json,
    checked against it) when given, else :func:`edgeinvestigate.analyze` of ``ev``."""
    if not findings_file:
        from edgeinvestigate.analysis.rca import analyze

        return analyze(ev, clusters=clusters)
    from edgeinvestigate.report._preflight import saved_findings

    return saved_findings(findings_file, ev.manifest["rows"], since=since, until=until)


def open_bundle(bundle: str = "", *, since: str = "", until: str = "") -> Evidence:
    """The evidence a notebook works on: a bundle directory, or the bundled sample when empty."""
    from edgeinvestigate._time import parse_time
    from edgeinvestigate.evidence.bundle import Evidence
    from edgeinvestigate.report.sample import sample_bundle

    ev = Evidence.open(bundle) if bundle else sample_bundle()
    lo, hi = parse_time(since, name="since"), parse_time(until, name="until")
    if lo is None and hi is None:
        return ev
    return _window(ev, lo, hi)


def _window(ev: Evidence, lo: Any, hi: Any) -> Evidence:
    """The same evidence restricted to ``lo <= ts < hi`` (the DLQ by ``enqueued_at``)."""
    import dataclasses

    def cut(df: pd.DataFrame, col: str) -> pd.DataFrame:
        if df.empty or col not in df.columns:
            return df
        keep = df[col].notna()
        if lo is not None:
            keep &= df[col] >= lo
        if hi is not None:
            keep &= df[col] < hi
        return df[keep].reset_index(drop=True)

    manifest = dict(ev.manifest)
    manifest["window"] = {
        "since": None if lo is None else lo.isoformat(),
        "until": None if hi is None else hi.isoformat(),
    }
    return dataclasses.replace(
        ev,
        invocations=cut(ev.invocations, "ts"),
        logs=cut(ev.logs, "ts"),
        exceptions=cut(ev.exceptions, "ts"),
        dlq=cut(ev.dlq, "enqueued_at"),
        manifest=manifest,
        extra={name: cut(df, "ts") for name, df in ev.extra.items()},  # queue and Worker analytics
    )
