"""Plotly figure builders for findings and clusters.

Every builder returns a ``plotly.graph_objects.Figure`` and never calls ``.show()``: notebooks display
the returned figure, reports embed it. Plotly is part of the ``notebooks`` extra; it is imported on
first use and a missing install raises :class:`~edgeinvestigate.errors.MissingExtraError`.

>>> fig = timeline(findings)            # doctest: +SKIP
>>> fig = cluster_bars(clusters)        # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edgeinvestigate.errors import MissingExtraError

if TYPE_CHECKING:
    import pandas as pd

    from edgeinvestigate.analysis.clustering import Clusters
    from edgeinvestigate.models.findings import Findings

__all__ = ["attempts_histogram", "blast_radius", "cluster_bars", "timeline"]

_COLORS = {"transient": "#f0a202", "permanent": "#d1495b", "unknown": "#7d8597"}


def _html(text: str) -> str:
    """Data put into a hover template is text: escape it (and plotly's own %{...} syntax)."""
    import html

    return html.escape(text).replace("%{", "%&#123;")


def _go() -> Any:
    try:
        import plotly.graph_objects as go
    except ImportError as exc:
        raise MissingExtraError("notebooks", "plotting (edgeinvestigate.analysis.plots)") from exc
    return go


def timeline(findings: Findings, *, title: str = "Invocations with errors per job type") -> Any:
    """Failed invocations per bucket and job type (stacked), with a line per deploy marker and the
    windows of the top hypotheses shaded."""
    go = _go()
    fig = go.Figure()
    by_type: dict[str, tuple[list[Any], list[int]]] = {}
    for row in findings.failed_rate:
        xs, ys = by_type.setdefault(row.job_type, ([], []))
        xs.append(row.bucket)
        ys.append(row.failed)
    for job_type in sorted(by_type):
        xs, ys = by_type[job_type]
        fig.add_trace(
            go.Bar(
                x=xs,
                y=ys,
                name=job_type,
                hovertemplate=f"<b>{_html(job_type)}</b><br>%{{x|%H:%M}} UTC<br>"
                "%{y:,} invocations with errors<extra></extra>",
            )
        )
    for d in findings.deploys:
        # a deploy the user gave (not seen in the data) is dotted
        fig.add_vline(x=d.at, line_dash="dot" if d.source == "given" else "dash", line_color="#333")
        fig.add_annotation(
            x=d.at,
            y=1,
            yref="paper",
            text=f"deploy {d.version[:8]}",
            hovertext=f"{d.previous_version or '?'} -> {d.version} (from {d.source})",
            showarrow=False,
            yanchor="bottom",
        )
    label_row = 0
    for h in findings.hypotheses[:3]:
        if h.window is None:
            continue
        fig.add_vrect(
            x0=h.window.start,
            x1=h.window.end,
            fillcolor="#d1495b" if h.kind == "bad_deploy" else "#f0a202",
            opacity=0.12,
            line_width=0,
        )
        # one label row per finding: windows often start together (an outage and its retry storm)
        fig.add_annotation(
            x=h.window.start,
            y=0.99 - 0.08 * label_row,
            yref="paper",
            text=f"#{h.rank} {h.kind.replace('_', ' ')}",
            showarrow=False,
            bgcolor="rgba(255,255,255,0.85)",
            xanchor="left",
            yanchor="top",
        )
        label_row += 1
    fig.update_layout(
        barmode="stack",
        title=title,
        xaxis_title=f"time (UTC, {max(findings.bucket_seconds // 60, 1)} min buckets)",
        yaxis_title="invocations with errors",
        legend_title="job type",
    )
    return fig


def cluster_bars(
    clusters: Clusters,
    *,
    top: int = 15,
    title: str = "Top error clusters",
    table: pd.DataFrame | None = None,
) -> Any:
    """Horizontal bars: errors per cluster, labelled by a short template (colour = transient/permanent).

    ``table``: the rows to draw, in order (e.g. ``report.views.incident_clusters``; a ``role`` column
    marks background clusters, drawn paler and labelled so); default: the largest clusters.
    """
    go = _go()
    t = (clusters.table if table is None else table).head(top).iloc[::-1]
    roles = list(t["role"]) if "role" in t.columns else ["" for _ in range(len(t))]
    labels = _unique_labels(list(t["template"]), list(t["cluster_id"]), roles)
    fig = go.Figure(
        go.Bar(
            x=list(t["count"]),
            y=labels,
            orientation="h",
            marker_color=[_COLORS.get(str(k), _COLORS["unknown"]) for k in t["kind"]],
            marker_opacity=[0.45 if r == "background" else 1.0 for r in roles],
            customdata=list(zip(t["cluster_id"], t["kind"], t["n_dlq_messages"], t["template"], strict=True)),
            hovertemplate=(
                "<b>%{customdata[3]}</b><br>cluster %{customdata[0]} (%{customdata[1]})<br>"
                "%{x:,} errors · %{customdata[2]:,} DLQ messages<extra></extra>"
            ),
        )
    )
    fig.update_layout(
        title=title,
        xaxis_title="errors",
        yaxis_title="error cluster (template)",
        height=max(300, 28 * len(t) + 120),
    )
    return fig


def _unique_labels(templates: list[Any], ids: list[Any], roles: list[str]) -> list[str]:
    """Short template labels; a cluster id is added only where two labels would read the same."""
    from edgeinvestigate.analysis._labels import short_label

    base = [
        short_label(t, 48) + (" (background)" if r == "background" else "")
        for t, r in zip(templates, roles, strict=True)
    ]
    seen: dict[str, int] = {}
    for b in base:
        seen[b] = seen.get(b, 0) + 1
    return [f"{b} [{str(i)[:7]}]" if seen[b] > 1 else b for b, i in zip(base, ids, strict=True)]


def blast_radius(findings: Findings, *, dimension: str = "job_type", title: str | None = None) -> Any:
    """Errors by one blast-radius dimension (``job_type``, ``queue``, ``script``, ``script_version`` or a
    tenant-like payload field)."""
    go = _go()
    rows = [r for r in findings.blast_radius if r.dimension == dimension]
    rows.sort(key=lambda r: -r.errors)
    fig = go.Figure(
        go.Bar(
            x=[r.value for r in rows],
            y=[r.errors for r in rows],
            text=[f"{r.share:.0%}" for r in rows],
            textposition="auto",
        )
    )
    fig.update_layout(title=title or f"Errors by {dimension}", xaxis_title=dimension, yaxis_title="errors")
    return fig


def attempts_histogram(findings: Findings, *, title: str = "Deliveries by attempt") -> Any:
    """How many deliveries were first attempts, second attempts...: retries climbing shows here."""
    go = _go()
    fig = go.Figure(
        go.Bar(x=[b.attempts for b in findings.attempts], y=[b.deliveries for b in findings.attempts])
    )
    fig.update_layout(title=title, xaxis_title="attempt", yaxis_title="deliveries", xaxis_dtick=1)
    return fig
