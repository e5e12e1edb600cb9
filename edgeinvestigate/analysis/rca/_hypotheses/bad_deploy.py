"""Bad deploys: a deploy after which new error clusters start, on its version (and stop with the next
deploy)."""

from __future__ import annotations

import pandas as pd

from edgeinvestigate.analysis.rca._hypotheses.context import Context, RawHypothesis, impact_jobs
from edgeinvestigate.analysis.rca._values import as_utc, hhmm, pydt, short
from edgeinvestigate.models.findings import ClusterShift, Deploy, TimeWindow

__all__ = ["bad_deploys"]


def bad_deploys(ctx: Context) -> list[RawHypothesis]:
    """One hypothesis per deploy that introduced new error clusters."""
    hyps: list[RawHypothesis] = []
    for d in ctx.deploys:
        new = _new_clusters(ctx, d)
        if not new:
            continue
        hyp = _bad_deploy(ctx, d, new)
        if not ctx.supported(int(hyp["evidence"]["errors"]), int(hyp["evidence"]["jobs"])):
            continue  # a handful of new errors after a deploy is not a bad deploy
        hyps.append(hyp)
        ctx.used.update(hyp["cluster_ids"])
    return hyps


def _new_clusters(ctx: Context, d: Deploy) -> list[ClusterShift]:
    """The clusters new after deploy ``d`` that it plausibly caused."""
    info = ctx.info
    new = [s for s in ctx.shifts if s.version == d.version and s.new_after_deploy]
    # a cluster whose errors (where the version is known) mostly ran another version is not
    # this deploy's doing
    new = [s for s in new if s.share_on_version is None or s.share_on_version >= 0.5]
    if new:  # a rare background error that happens to appear after a deploy is not its doing
        biggest = max(s.after for s in new)
        new = [s for s in new if s.after >= max(3, 0.05 * biggest)]
    if any(str(info.get(s.cluster_id, {}).get("kind")) != "transient" for s in new):
        # a deploy breaks code: transient errors (5xx, timeouts) that start with code errors are
        # a dependency's, left to the outage hypotheses
        new = [s for s in new if str(info.get(s.cluster_id, {}).get("kind")) != "transient"]
    return new


def _bad_deploy(ctx: Context, d: Deploy, new: list[ClusterShift]) -> RawHypothesis:
    info, by_cluster, freq = ctx.info, ctx.by_cluster, ctx.freq
    at = pd.Timestamp(d.at)
    nxt = [x for x in ctx.deploys if x.at > d.at and (x.script == d.script or d.script is None)]
    next_at = pd.Timestamp(nxt[0].at) if nxt else None
    cids = [s.cluster_id for s in new]
    g = pd.concat([by_cluster[c] for c in cids if c in by_cluster])
    lag = min(s.minutes_after_deploy for s in new)
    bucket_min = freq.total_seconds() / 60
    fit = 1.0 / (1.0 + max(0.0, lag - bucket_min) / 5.0)
    kinds = [str(info[c]["kind"]) for c in cids if c in info]
    if kinds and all(k == "transient" for k in kinds):
        fit *= 0.5  # transient errors right after a deploy are more often a coincidence
    stopped = None
    if next_at is not None:
        last = g["ts"].max()
        if abs((last - next_at).total_seconds()) <= 2 * freq.total_seconds() + 60:
            stopped = nxt[0]
            fit *= 1.2
    share_on = [s.share_on_version for s in new if s.share_on_version is not None]
    jobs = impact_jobs(g)
    types = sorted({str(x) for x in g["job_type"].dropna()})
    top_cid = max(cids, key=by_cluster.size)
    tpl = str(info[top_cid]["template"]) if top_cid in info else ""
    window_end = g["ts"].max() + freq
    sentence = (
        f"Deploy {short(d.version)} of {d.script or 'the worker'} at {hhmm(at)} introduced "
        f"{len(cids)} new error cluster{'s' if len(cids) > 1 else ''} ('{tpl[:120]}') hitting "
        f"{', '.join(types) or 'jobs'}: {len(g)} errors in {jobs} jobs"
        + (f", {min(share_on):.0%} of them on {short(d.version)}" if share_on else "")
        + (
            f"; they stopped with deploy {short(stopped.version)} at {hhmm(pd.Timestamp(stopped.at))}"
            if stopped
            else ""
        )
        + "."
    )
    dlq_n = int(sum(ctx.dlq_counts.get(c, 0) for c in cids))
    return {
        "kind": "bad_deploy",
        "title": f"Bad deploy {d.version} ({', '.join(types) or d.script or 'worker'})",
        "sentence": sentence,
        "score": jobs * fit * 1.0,
        "fit": fit,
        "cluster_ids": cids,
        "job_types": types,
        "window": TimeWindow(start=pydt(as_utc(at)), end=pydt(as_utc(window_end))),
        "deploy": d,
        "evidence": {
            "version": d.version,
            "previous_version": d.previous_version,
            "script": d.script,
            "deployed_at": at.isoformat(),
            "errors": len(g),
            "jobs": jobs,
            "dlq_messages": dlq_n,
            "minutes_to_first_error": lag,
            "share_on_version": min(share_on) if share_on else None,
            "stopped_with": stopped.version if stopped else None,
        },
    }
