"""The clusters worth replaying when nobody chose: those the findings say a fix made safe.

Read from the findings of the bundle itself, never from a simulator's ground truth:

- a cluster that is new after a deploy which a later deploy of the same script replaced (the
  revert, or the fix, is live: the jobs should succeed now);
- a ``transient`` cluster whose errors stopped well before the end of the window (the dependency
  recovered).

Only clusters with messages in the DLQ count. ``edgeinvestigate demo`` and the ``dlq-replay``
notebook both plan their replay from :func:`default_selection`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from edgeinvestigate.analysis.clustering import Clusters
    from edgeinvestigate.evidence.bundle import Evidence
    from edgeinvestigate.models.findings import Findings

__all__ = ["STOPPED_FOR_S", "SafeCluster", "default_selection"]

#: a transient cluster counts as over when its last error is this long before the end of the window
STOPPED_FOR_S = 600


class SafeCluster(NamedTuple):
    """A cluster to replay and why the findings say it is safe now."""

    cluster_id: str
    reason: str


def default_selection(
    ev: Evidence | str | Path,
    *,
    clusters: Clusters | None = None,
    findings: Findings | None = None,
) -> list[SafeCluster]:
    """The clusters a fix made safe to replay (see the module docstring), bad-deploy clusters first.

    ``ev`` is an evidence bundle or its directory; ``clusters`` and ``findings`` are computed from it
    unless given (pass them when they are at hand: clustering a large bundle takes a while). An
    empty list means no cluster is judged safe: the caller chooses, or replays nothing.
    """
    from edgeinvestigate.analysis.clustering import cluster
    from edgeinvestigate.analysis.rca import analyze
    from edgeinvestigate.evidence.bundle import Evidence

    if isinstance(ev, str | Path):
        ev = Evidence.open(ev)
    if clusters is None:
        clusters = cluster(ev)
    if findings is None:
        findings = analyze(ev, clusters=clusters)
    table = clusters.table
    in_dlq = {str(c) for c, n in zip(table["cluster_id"], table["n_dlq_messages"], strict=True) if n}
    chosen = _replaced_deploys(findings, in_dlq)
    for cid, reason in _recovered(clusters, findings, in_dlq).items():
        chosen.setdefault(cid, reason)
    return [SafeCluster(cid, reason) for cid, reason in chosen.items()]


def _replaced_deploys(findings: Findings, in_dlq: set[str]) -> dict[str, str]:
    """The clusters of bad-deploy hypotheses whose deploy a later one of the same script replaced."""
    chosen: dict[str, str] = {}
    for h in findings.hypotheses:
        if h.kind != "bad_deploy" or h.deploy is None:
            continue
        bad = h.deploy
        later = [d for d in findings.deploys if d.script == bad.script and d.at > bad.at]
        if not later:
            continue  # the bad version is still live: replaying would fail again
        for cid in h.cluster_ids:
            if cid in in_dlq:
                chosen[cid] = (
                    f"new after deploy {bad.version[:8]} ({bad.at:%H:%M} UTC), "
                    f"which {later[0].version[:8]} replaced at {later[0].at:%H:%M} UTC"
                )
    return chosen


def _recovered(clusters: Clusters, findings: Findings, in_dlq: set[str]) -> dict[str, str]:
    """The transient clusters whose errors stopped ``STOPPED_FOR_S`` or more before the window's end."""
    import pandas as pd

    end = findings.window.end if findings.window else None
    if end is None:
        return {}
    chosen: dict[str, str] = {}
    for rec in clusters.table.to_dict("records"):
        cid = str(rec["cluster_id"])
        if cid not in in_dlq or rec["kind"] != "transient":
            continue
        last = pd.Timestamp(rec["last_seen"]) if rec["last_seen"] is not None else None
        if last is not None and (pd.Timestamp(end) - last).total_seconds() > STOPPED_FOR_S:
            chosen[cid] = f"transient ({rec['kind_rule']}); its errors stopped at {last:%H:%M} UTC"
    return chosen
