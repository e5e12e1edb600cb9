"""Tables and sentences the notebooks and reports show, built from clusters and findings.

Notebooks hold calls and display only; what to show, in which order and with which words is
decided here, once, for every notebook and report:

- :func:`incident_clusters`: clusters ordered by their share of the incident (the clusters the
  findings name), with background clusters (errors that also occur when nothing is wrong) after
  them and marked as such, so background noise never pushes the incident's own clusters out;
- :func:`short_label`: a template cut to a length a chart axis can show;
- :func:`summary_findings`: the findings a summary names (every high-confidence one, at least the top);
- :func:`deploy_lag`: "12.5 min after" / "94.6 min before" instead of a signed number of minutes;
- :func:`page_title`: the report's browser title.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeinvestigate.analysis._labels import short_label

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from edgeinvestigate.analysis.clustering import Clusters
    from edgeinvestigate.models.findings import Findings, Hypothesis

__all__ = ["deploy_lag", "incident_clusters", "page_title", "short_label", "summary_findings"]

INCIDENT = "incident"
BACKGROUND = "background"


def incident_clusters(clusters: Clusters, findings: Findings, top_n: int | None = None) -> pd.DataFrame:
    """The cluster table ordered by share of the incident, background clusters last and marked.

    A cluster is *of the incident* when a finding names it; its ``share`` is its part of the errors
    of those clusters. Other clusters are *background*: listed after, with no share. Columns:
    ``cluster_id``, ``label`` (short template), ``role``, ``share``, ``kind``, ``count``,
    ``n_dlq_messages``, ``first_seen``, ``last_seen``, ``job_types``, ``template``.
    """
    import pandas as pd

    named: list[str] = []
    for h in findings.hypotheses:
        named += [c for c in h.cluster_ids if c not in named]
    t = clusters.table.copy()
    if t.empty:
        return pd.DataFrame(
            columns=["cluster_id", "label", "role", "share", "kind", "count", "n_dlq_messages",
                     "first_seen", "last_seen", "job_types", "template"]
        )  # fmt: skip
    in_incident = t["cluster_id"].isin(named)
    total = int(t.loc[in_incident, "count"].sum())
    t["role"] = [INCIDENT if x else BACKGROUND for x in in_incident]
    t["share"] = [
        (float(c) / total if total and x else None) for c, x in zip(t["count"], in_incident, strict=True)
    ]
    t["label"] = [short_label(x) for x in t["template"]]
    t["_order"] = (~in_incident).astype(int)
    t = t.sort_values(["_order", "count"], ascending=[True, False], kind="stable").drop(columns="_order")
    columns = ["cluster_id", "label", "role", "share", "kind", "count", "n_dlq_messages", "first_seen",
               "last_seen", "job_types", "template"]  # fmt: skip
    t = t[[c for c in columns if c in t.columns]].reset_index(drop=True)
    return t if top_n is None else t.head(top_n)


def summary_findings(findings: Findings) -> list[Hypothesis]:
    """The findings a summary names: every high-confidence one, and at least the top one."""
    high = [h for h in findings.hypotheses if h.confidence == "high"]
    if high:
        return high
    return [findings.hypotheses[0]] if findings.hypotheses else []


def deploy_lag(minutes: float | None) -> str:
    """``12.46`` -> ``"12.5 min after"``; ``-94.6`` -> ``"94.6 min before"`` (the cluster predates it)."""
    if minutes is None or minutes != minutes:  # None or NaN
        return ""
    if minutes < 0:
        return f"{-minutes:.1f} min before"
    return f"{minutes:.1f} min after"


def page_title(notebook: str, *, incident_id: str = "", title: str = "") -> str:
    """The browser title of a report: ``"INC-9: Bad deploy ... · incident-report"``."""
    head = ": ".join(x for x in (incident_id.strip(), title.strip()) if x)
    return f"{head} · {notebook}" if head else f"{notebook} · edgeinvestigate"
