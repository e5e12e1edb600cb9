"""Tables and sentences the notebooks and reports show, built from clusters and findings.

Notebooks hold calls and display only; what to show, in which order and with which words is
decided here, once, for every notebook and report:

- :func:`incident_clusters`: clusters ordered by their share of the incident (the clusters the
  findings name), with background clusters (errors that also occur when nothing is wrong) after
  them and marked as such, so background noise never pushes the incident's own clusters out;
- :func:`short_label`: a template cut to a length a chart axis can show;
- :func:`summary_findings`: the findings a summary names (every high-confidence one, at least the top);
- :func:`deploy_lag`: "12.5 min after" / "94.6 min before" instead of a signed number of minutes;
- :func:`page_title`: the report's browser title;
- :func:`account_for`, :func:`cluster_links`, :func:`example_events`: the ray / request id of each
  cluster's example events and the link that opens them in Cloudflare's dashboard (an ``<a href>``
  through :func:`~edgeinvestigate.report.kernel.table`'s ``links``, only for URLs built by
  :mod:`edgeinvestigate.analysis.deeplinks`);
- :func:`dlq_caveat`, :func:`dlq_label`: a peek bundle's DLQ numbers say "of the first 100 only".
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from edgeinvestigate.analysis._labels import short_label
from edgeinvestigate.analysis.deeplinks import account_id_of, event_link, valid_account_id

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from edgeinvestigate.analysis.clustering import Clusters
    from edgeinvestigate.evidence.bundle import Evidence
    from edgeinvestigate.models.findings import Findings, Hypothesis

__all__ = [
    "LINK_LABEL",
    "account_for",
    "cluster_links",
    "deploy_lag",
    "dlq_caveat",
    "dlq_label",
    "example_events",
    "incident_clusters",
    "page_title",
    "short_label",
    "summary_findings",
    "with_cluster_links",
]

#: the text of a link to the dashboard
LINK_LABEL = "Workers Logs ↗"

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


def account_for(ev: Evidence, given: str = "") -> str | None:
    """The account id for dashboard links: ``given`` (a notebook parameter), else the bundle's
    (``collect`` records its client's), else ``CLOUDFLARE_ACCOUNT_ID``; None without one."""
    return account_id_of(ev.manifest, given) or valid_account_id(os.environ.get("CLOUDFLARE_ACCOUNT_ID"))


def _event_id(event: dict[str, Any]) -> str:
    if event.get("request_id"):
        return f"request {event['request_id']}"
    if event.get("ray_id"):
        return f"ray {event['ray_id']}"
    return ""


def cluster_links(clusters: Clusters, account_id: str | None) -> pd.DataFrame:
    """Per cluster: the id of its first example event that has one (``"request 3f2a..."`` /
    ``"ray 8c1e..."``), a link label and the dashboard URL that opens it (None without an account id,
    a script or an id). Columns ``cluster_id``, ``event id``, ``Cloudflare``, ``dashboard_url``; merge
    it into a cluster table and show it with ``table(..., links={"Cloudflare": "dashboard_url"})``."""
    import pandas as pd

    rows = []
    for cid, events in zip(clusters.table["cluster_id"], clusters.table["example_events"], strict=True):
        with_id = [e for e in events if _event_id(e)]
        event = with_id[0] if with_id else None
        url = event_link(event, account_id) if event else None
        rows.append(
            {
                "cluster_id": cid,
                "event id": _event_id(event) if event else "",
                "Cloudflare": LINK_LABEL if url else "",
                "dashboard_url": url,
            }
        )
    return pd.DataFrame(rows, columns=["cluster_id", "event id", "Cloudflare", "dashboard_url"])


def with_cluster_links(df: pd.DataFrame, clusters: Clusters, account_id: str | None) -> pd.DataFrame:
    """``df`` (rows with a ``cluster_id``) with the :func:`cluster_links` columns: ``event id`` when
    some example event has one, ``Cloudflare`` and ``dashboard_url`` when some link could be built
    (none of them for a bundle whose sources carry no ids, e.g. Tail Worker traces of a consumer)."""
    links = cluster_links(clusters, account_id)
    out = df.merge(links, on="cluster_id", how="left")
    if not out["dashboard_url"].notna().any():
        out = out.drop(columns=["Cloudflare", "dashboard_url"])
    if not out["event id"].fillna("").astype(bool).any():
        out = out.drop(columns=["event id"])
    return out


def example_events(clusters: Clusters, cluster_id: str, account_id: str | None) -> pd.DataFrame:
    """The example events of one cluster: time, source, script, request and ray id, text and the
    dashboard URL of each (None where the source carries no id). Show with
    ``table(..., links={"Cloudflare": "dashboard_url"})``."""
    import pandas as pd

    info = clusters.get(cluster_id)
    rows = []
    for e in info.get("example_events") or []:
        url = event_link(e, account_id)
        rows.append(
            {
                "ts": pd.Timestamp(e["ts"]) if e.get("ts") else None,
                "source": e.get("source"),
                "script": e.get("script"),
                "request_id": e.get("request_id"),
                "ray_id": e.get("ray_id"),
                "Cloudflare": LINK_LABEL if url else "",
                "dashboard_url": url,
                "text": e.get("text"),
            }
        )
    columns = ["ts", "source", "script", "request_id", "ray_id", "Cloudflare", "dashboard_url", "text"]
    out = pd.DataFrame(rows, columns=columns)
    if not out["dashboard_url"].notna().any():
        out = out.drop(columns=["Cloudflare", "dashboard_url"])
    return out


def dlq_label(findings: Findings, name: str = "DLQ messages") -> str:
    """A column or row name for DLQ numbers: ``"DLQ messages (of the first 100 only)"`` for a peek."""
    cov = findings.dlq_coverage
    return f"{name} ({cov.label})" if cov is not None else name


def dlq_caveat(findings: Findings) -> str:
    """The sentence to show next to DLQ numbers of a partial bundle (empty when it holds the whole DLQ)."""
    cov = findings.dlq_coverage
    if cov is None:
        return ""
    return f"DLQ numbers are {cov.label}: {cov.reason}."
