"""The orchestration that combines areas: collect -> clusters -> findings -> report -> draft plan.

``collect`` and ``investigate`` cluster the evidence once, right after loading, and store the
clusters in the bundle they write (:func:`cluster_and_store`); ``investigate`` then analyses,
writes the incident report and, with ``--to``, a draft replay plan (:func:`investigate_bundle`).
Nothing here computes anything itself: evidence stores, analysis computes, report renders, replay
plans.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeinvestigate._memory import give_back_memory

if TYPE_CHECKING:
    from edgeinvestigate.analysis.clustering import Clusters
    from edgeinvestigate.cli._progress import Progress
    from edgeinvestigate.evidence.bundle import Evidence
    from edgeinvestigate.models.findings import Findings

__all__ = [
    "Investigation",
    "cluster_and_store",
    "investigate_bundle",
    "note",
    "open_clusters",
    "reopen",
    "write_investigation_report",
]

log = logging.getLogger("edgeinvestigate.note")


def note(text: str) -> None:
    """A ``note: ...`` line on stderr (shown by the CLI's handler, see ``cli._main``)."""
    if text:
        log.info(text)


def cluster_and_store(ev: Evidence, *, rules: Path | None, progress: Progress) -> tuple[Evidence, Clusters]:
    """Sort ``ev`` for storage (in place), cluster it and return it holding the clusters, ready to be
    saved."""
    from edgeinvestigate.analysis.clustering import store_clusters
    from edgeinvestigate.analysis.clustering._lean import cluster_lean

    ev.sort_for_storage()  # in place: the loaded evidence is this command's own (spooled: sorted)
    n = ev.manifest["rows"]
    with progress.step(f"clustering the errors of {n['logs']:,} log lines, {n['exceptions']:,} exceptions"):
        # spooled logs are read without the lines and texts clustering skips (the same clusters)
        clusters = cluster_lean(ev, rules=rules)
    give_back_memory()  # the logs clustering read
    return store_clusters(ev, clusters), clusters


def reopen(bundle: Path) -> Evidence:
    """The bundle just written, opened again (frames read on first use), with the memory of the loaded
    frames given back to the system."""
    from edgeinvestigate.evidence.bundle import Evidence

    give_back_memory()
    return Evidence.open(bundle)


def open_clusters(ev: Evidence, *, rules: Path | None, progress: Progress, redact: bool = False) -> Clusters:
    """The clusters of an opened bundle: stored ones when they match, else computed (with a note)."""
    from edgeinvestigate.analysis.clustering import STORED_NAME, cluster

    stored = ev.derived(STORED_NAME)
    title = "reading the stored clusters" if stored is not None else "clustering the errors"
    with progress.step(title):
        clusters = cluster(ev, rules=rules, redact=redact)
    note(clusters.note)
    return clusters


@dataclass
class Investigation:
    """What ``investigate`` wrote (paths) and found."""

    out: Path
    bundle: Path
    findings_path: Path
    findings: Findings
    #: the clusters, until the report is written (:func:`write_investigation_report` drops them)
    clusters: Clusters | None
    n_clusters: int = 0
    report: Path | None = None
    report_run: Any = None
    plan: Path | None = None
    selected: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def investigate_bundle(
    ev: Evidence, clusters: Clusters, out: Path, *, to_queue: str | None, progress: Progress
) -> Investigation:
    """After ``ev`` (with ``clusters``) was saved to ``out/bundle``: findings and draft plan."""
    from edgeinvestigate.analysis.rca import analyze

    bundle = out / "bundle"
    with progress.step("ranking root causes"):
        findings = analyze(ev, clusters)
    findings_path = out / "findings.json"
    findings_path.write_text(findings.model_dump_json(indent=2) + "\n", encoding="utf-8")
    result = Investigation(out, bundle, findings_path, findings, clusters, n_clusters=len(clusters))
    if to_queue:
        _draft_plan(result, ev, to_queue, progress)
    return result


def write_investigation_report(
    result: Investigation, *, parameters: dict[str, str], redact: bool, progress: Progress
) -> None:
    """The incident report of ``result``'s bundle (``out/report``), made by another process: call it
    once this process holds nothing of the evidence (the clusters are dropped here), so the two
    never hold it together."""
    from edgeinvestigate.report.runner import write_report

    result.clusters = None
    give_back_memory()
    # the kernel reports the findings just written instead of analysing the bundle again
    parameters = {**parameters, "findings_file": str(result.findings_path)}
    run = write_report(
        result.bundle, result.out / "report", parameters=parameters, redact=redact, progress=progress.enabled
    )
    result.report, result.report_run = run.html, run


def _draft_plan(result: Investigation, ev: Evidence, to_queue: str, progress: Progress) -> None:
    """A replay plan of the clusters ``default_selection`` judges safe, written and never run."""
    from edgeinvestigate.replay import default_selection, plan_replay

    if not len(ev.dlq):
        result.notes.append(f"no DLQ messages were collected: no replay plan to {to_queue!r} was written")
        return
    with progress.step("choosing the clusters a fix made safe, drafting their replay"):
        clusters = result.clusters
        if clusters is None:
            raise RuntimeError("draft the plan before the report drops the clusters")
        safe = default_selection(ev, clusters=clusters, findings=result.findings)
        if not safe:
            result.notes.append(
                "no cluster with DLQ messages was judged safe to replay: no replay plan was written "
                "(see runbooks/replay-failed-jobs.md to choose clusters yourself)"
            )
            return
        result.selected = [(c.cluster_id, c.reason) for c in safe]
        chosen = {c.cluster_id for c in safe}
        dlq = clusters.dlq
        in_chosen = dlq[dlq["cluster_id"].isin(chosen)]
        queues = in_chosen["queue"].astype(object).dropna().value_counts()
        if queues.empty:
            result.notes.append("the selected DLQ messages name no queue: no replay plan was written")
            return
        from_queue = str(queues.index[0])
        if len(queues) > 1:
            result.notes.append(
                f"the selected messages are in {len(queues)} DLQs; the plan replays those of {from_queue!r} "
                "(plan the others with `edgeinvestigate replay plan`)"
            )
        path = result.out / "plan.json"
        plan = plan_replay(
            ev,
            from_queue,
            to_queue,
            clusters=sorted(chosen),
            allow_queues=[to_queue],
            bundle=str(result.bundle.resolve()),
            near=path,
        )
        plan.save(path, overwrite=True)
    result.plan = path
