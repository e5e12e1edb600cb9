"""Poison payloads: a cluster whose failing jobs share one tenant-like payload value that is rare
among all jobs (a bad payload, not the code)."""

from __future__ import annotations

from edgeinvestigate.analysis.rca._hypotheses.context import Context, RawHypothesis, impact_jobs

__all__ = ["poison_payloads"]


def poison_payloads(ctx: Context) -> list[RawHypothesis]:
    """A permanent cluster concentrated on one tenant-like value (one hypothesis per cluster)."""
    hyps: list[RawHypothesis] = []
    payload, info = ctx.payload, ctx.info
    if not len(payload):
        return hyps
    for (cid_any, fieldname), g in payload.dropna(subset=["cluster_id"]).groupby(["cluster_id", "field"]):
        cid = str(cid_any)
        if cid in ctx.used or cid not in info or len(g) < 5:
            continue
        top_value, n = g["value"].value_counts().index[0], int(g["value"].value_counts().iloc[0])
        share = n / len(g)
        overall = payload[payload["field"] == fieldname]["value"]
        base_share = float((overall == top_value).mean()) if len(overall) else 0.0
        if share < 0.8 or base_share > 0.5:
            continue
        cg = ctx.by_cluster.get(cid)
        jobs = impact_jobs(cg) if cg is not None else int(g["job_id"].nunique())
        if not ctx.supported(len(cg) if cg is not None else len(g), jobs):
            continue
        tpl = str(info[cid]["template"])
        hyps.append(
            {
                "kind": "poison_payload",
                "title": f"Payloads of {fieldname}={top_value} fail",
                "sentence": (
                    f"{share:.0%} of the jobs failing with '{tpl[:100]}' have {fieldname}={top_value} "
                    f"(it is {base_share:.0%} of all jobs seen): a bad payload, not the code."
                ),
                "score": jobs * 0.7,
                "fit": 0.7,
                "cluster_ids": [str(cid)],
                "job_types": list(info[cid]["job_types"]),
                "window": None,
                "deploy": None,
                "evidence": {
                    "field": str(fieldname),
                    "value": str(top_value),
                    "share": share,
                    "jobs": jobs,
                },
            }
        )
        ctx.used.add(str(cid))
    return hyps
