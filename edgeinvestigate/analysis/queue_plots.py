"""Queue health: the figure and table of a bundle's queue analytics (``collect --queue-metrics``).

>>> fig = queue_health(ev, findings)       # doctest: +SKIP  (None when the bundle has no queue analytics)
>>> queue_health_table(findings)           # doctest: +SKIP

The figure has four panels sharing the time axis: the backlog of every queue (messages, the bucket's
average), the messages moved to a DLQ per bucket (``DeleteMessage`` with outcome ``dlq``, per source
queue), the consumer concurrency, and the largest lag (ms from write to read/delete). Deploy markers
are dashed vertical lines. Buckets without data are gaps, never zeros. The values are estimates
(adaptive sampling); the title says so.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from edgeinvestigate.analysis.plots import _go, _html
from edgeinvestigate.analysis.rca._queue_series import queue_series

if TYPE_CHECKING:
    from edgeinvestigate.evidence.bundle import Evidence
    from edgeinvestigate.models.findings import Findings

__all__ = ["queue_health", "queue_health_table"]

_PANELS = (
    ("backlog", "backlog (messages)", "lines"),
    ("dlq", "moved to the DLQ", "bars"),
    ("concurrency", "consumer concurrency", "lines"),
    ("lag_ms", "max lag (ms)", "lines"),
)


def queue_health(ev: Evidence, findings: Findings | None = None, *, title: str | None = None) -> Any:
    """The queue-health figure, or ``None`` when the bundle has no queue analytics."""
    series = queue_series(ev)
    if not series:
        return None
    go = _go()
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=len(_PANELS), cols=1, shared_xaxes=True, vertical_spacing=0.04,
        subplot_titles=[label for _, label, _ in _PANELS],
    )  # fmt: skip
    for qs in series:
        f = qs.frame
        for row, (col, _label, kind) in enumerate(_PANELS, start=1):
            y = f[col]
            if y.isna().all() or (col == "dlq" and not (y.fillna(0) > 0).any()):
                continue
            name = _html(qs.queue)
            hover = f"{name}<br>%{{x|%H:%M}} UTC: %{{y:,.1f}}<extra></extra>"
            if kind == "bars":
                trace = go.Bar(x=f.index, y=y, name=name, legendgroup=name, hovertemplate=hover)
            else:
                trace = go.Scatter(x=f.index, y=y, mode="lines+markers", name=name, legendgroup=name,
                                   connectgaps=False, hovertemplate=hover, showlegend=row == 1)  # fmt: skip
            fig.add_trace(trace, row=row, col=1)
    for d in findings.deploys if findings is not None else []:
        fig.add_vline(x=pd.Timestamp(d.at), line_dash="dash", line_color="#7d8597")
        fig.add_annotation(x=pd.Timestamp(d.at), y=1.0, yref="paper", text=_html(f"deploy {d.version[:8]}"),
                           showarrow=False, yanchor="bottom", font={"size": 10})  # fmt: skip
    fig.update_layout(
        title=title or "Queue health (Cloudflare analytics: estimates from adaptive sampling)",
        height=180 * len(_PANELS) + 120,
        barmode="group",
        legend={"orientation": "h", "y": -0.08},
    )
    fig.update_xaxes(title_text="time (UTC)", row=len(_PANELS), col=1)
    return fig


def queue_health_table(findings: Findings) -> pd.DataFrame:
    """One row per queue: totals, the backlog's start/peak/end, lag, concurrency, what had no data."""
    rows = [
        {
            "queue": h.queue,
            "writes": h.writes,
            "reads": h.reads,
            "acked": h.acked,
            "dead-lettered": h.dead_lettered,
            "backlog first": h.backlog_first,
            "backlog peak": h.backlog_peak,
            "backlog last": h.backlog_last,
            "backlog rose at": h.backlog_rise_at,
            "max lag (s)": None if h.max_lag_ms is None else round(h.max_lag_ms / 1000, 1),
            "mean concurrency": None if h.mean_concurrency is None else round(h.mean_concurrency, 2),
            "no data": ", ".join(h.no_data),
        }
        for h in findings.queue_health
    ]
    return pd.DataFrame(rows)
