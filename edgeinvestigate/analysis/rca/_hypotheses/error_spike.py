"""Error spikes: the remaining clusters much more frequent in one short part of the window (above
their own background, with the least support of an error-based finding: see :mod:`.context`)."""

from __future__ import annotations

from edgeinvestigate.analysis.rca._buckets import main_burst
from edgeinvestigate.analysis.rca._hypotheses.context import Context, RawHypothesis, impact_jobs
from edgeinvestigate.analysis.rca._values import as_utc, hhmm, pydt
from edgeinvestigate.models.findings import TimeWindow

__all__ = ["error_spikes"]


def error_spikes(ctx: Context) -> list[RawHypothesis]:
    """One hypothesis per cluster (not explained yet) with 80% of its rows in one burst."""
    hyps: list[RawHypothesis] = []
    if not ctx.has_span:
        return hyps
    info = ctx.info
    for cid, g in ctx.by_cluster.items():
        if cid in ctx.used or len(g) < 10 or cid not in info:
            continue
        s, e, inside = main_burst(g, ctx.freq, ctx.start, ctx.end)
        if s is None or inside < 0.8 or (e - s) > 0.3 * ctx.span or not ctx.above_background(g, s, e):
            continue
        jobs = impact_jobs(g)
        if not ctx.supported(len(g), jobs):
            continue
        tpl = str(info[cid]["template"])
        hyps.append(
            {
                "kind": "error_spike",
                "title": f"Error spike {hhmm(s)}–{hhmm(e)}",
                "sentence": (
                    f"'{tpl[:120]}' spiked between {hhmm(s)} and {hhmm(e)} ({len(g)} errors in {jobs} jobs)."
                ),
                "score": jobs * 0.3,
                "fit": 0.3,
                "cluster_ids": [str(cid)],
                "job_types": list(info[cid]["job_types"]),
                "window": TimeWindow(start=pydt(as_utc(s)), end=pydt(as_utc(e))),
                "deploy": None,
                "evidence": {"errors": len(g), "jobs": jobs, "share_in_window": inside},
            }
        )
    return hyps
