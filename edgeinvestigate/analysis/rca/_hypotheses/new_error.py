"""New permanent errors not tied to a deploy: a large permanent cluster that starts well into the
window (changed input: a poison payload when it is a validation error, else an error spike)."""

from __future__ import annotations

from edgeinvestigate.analysis.rca._hypotheses.context import Context, RawHypothesis, impact_jobs
from edgeinvestigate.analysis.rca._notes import NO_DEPLOY_HOW
from edgeinvestigate.analysis.rca._values import as_utc, hhmm, pydt
from edgeinvestigate.models.findings import TimeWindow

__all__ = ["new_permanent_errors"]


def new_permanent_errors(ctx: Context) -> list[RawHypothesis]:
    """One hypothesis per new permanent cluster that no earlier kind explains."""
    hyps: list[RawHypothesis] = []
    info, start, span = ctx.info, ctx.start, ctx.span
    permanent_rows = sum(
        len(g) for c, g in ctx.by_cluster.items() if c in info and info[c]["kind"] == "permanent"
    )
    if not ctx.has_span:
        return hyps
    for cid, g in ctx.by_cluster.items():
        if cid in ctx.used or len(g) < 10 or cid not in info or info[cid]["kind"] != "permanent":
            continue
        if info[cid]["kind_rule"] == "resource-limit":
            continue  # the limit-hit hypothesis explains these
        if len(g) < 0.1 * permanent_rows:
            continue  # a rare background error that started late is not an incident
        first = g["ts"].min()
        if first <= start + 0.05 * span:
            continue  # there from the start: background, or older than the window
        jobs = impact_jobs(g)
        if not ctx.supported(len(g), jobs):
            continue
        tpl = str(info[cid]["template"])
        types = sorted({str(x) for x in g["job_type"].dropna()})
        rule = str(info[cid]["kind_rule"])
        last = g["ts"].max()
        head = (
            f"From {hhmm(first)} to {hhmm(last)}, {jobs} {', '.join(types)} jobs failed "
            f"permanently with '{tpl[:120]}' ({rule})"
        )
        if ctx.deploy_info:
            sentence = (
                head
                + "; no deploy explains it, so the input changed"
                + (" (a bad payload)." if rule == "validation" else ".")
            )
        else:
            sentence = (
                head
                + "; the data has no deploy information, so a bad deploy is as likely as changed input. "
                + NO_DEPLOY_HOW
            )
        hyps.append(
            {
                "kind": "poison_payload" if rule == "validation" else "error_spike",
                "title": f"New permanent error from {hhmm(first)} ({', '.join(types) or 'jobs'})",
                "sentence": sentence,
                "score": jobs * 0.8,
                "fit": 0.8,
                "cluster_ids": [cid],
                "job_types": types,
                "window": TimeWindow(start=pydt(as_utc(first)), end=pydt(as_utc(last + ctx.freq))),
                "deploy": None,
                "evidence": {
                    "errors": len(g),
                    "jobs": jobs,
                    "dlq_messages": int(ctx.dlq_counts.get(cid, 0)),
                    "triage_rule": rule,
                },
            }
        )
        ctx.used.add(cid)
    return hyps
