"""Dependency outages: bursts of transient errors (5xx, timeouts) that are not tied to a deploy;
clusters whose bursts overlap and share job types are one outage.

Noise stays out: a cluster's burst counts only when it stands out from the cluster's own rate in
the rest of the window (:data:`~.context.MIN_BURST_RATIO`: background-level clusters are never an
outage), and an outage is reported only with the least support of every error-based finding
(:data:`~.context.MIN_ERRORS` errors in :data:`~.context.MIN_JOBS` jobs, at least
:data:`~.context.MIN_SHARE` of the window's error rows): five 429s over eight minutes are not an
outage.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pandas as pd

from edgeinvestigate.analysis.rca._buckets import main_burst
from edgeinvestigate.analysis.rca._hypotheses.context import Context, RawHypothesis, impact_jobs
from edgeinvestigate.analysis.rca._values import as_utc, hhmm, pydt, short
from edgeinvestigate.models.findings import TimeWindow

__all__ = ["dependency_outages"]

_HOST = re.compile(r"\b(?:[a-z][a-z0-9+.-]*://)?((?:[a-z0-9-]+\.)+[a-z]{2,})(?::\d+)?(?:/|\b)", re.IGNORECASE)

#: a transient cluster's burst: (cluster id, start, end, its error rows)
_Burst = tuple[Any, ...]


def dependency_outages(ctx: Context) -> list[RawHypothesis]:
    """One hypothesis per group of overlapping transient bursts."""
    if not ctx.has_span:
        return []
    hyps: list[RawHypothesis] = []
    for grp in _outages(_bursts(ctx)):
        hyp = _outage(ctx, grp)
        if not ctx.supported(int(hyp["evidence"]["errors"]), int(hyp["evidence"]["jobs"])):
            continue  # too small to be an outage: its clusters stay free for the later kinds
        hyps.append(hyp)
        ctx.used.update(hyp["cluster_ids"])
    return hyps


def _dependency(texts: Sequence[str]) -> str | None:
    hosts: Counter[str] = Counter()
    for t in texts:
        for m in _HOST.finditer(t):
            host = m.group(1).lower()
            if not host.endswith((".js", ".ts", ".json", ".png", ".jpg")):
                hosts[host] += 1
    if not hosts:
        return None
    host, n = hosts.most_common(1)[0]
    return host if n >= max(1, len(texts) // 2) else None


def _bursts(ctx: Context) -> list[_Burst]:
    """The transient clusters not explained yet whose rows mostly fall in one short burst."""
    bursts = []
    for cid, g in ctx.by_cluster.items():
        if cid in ctx.used or cid not in ctx.info or str(ctx.info[cid]["kind"]) != "transient":
            continue
        if len(g) < 5:
            continue
        s, e, inside = main_burst(g, ctx.freq, ctx.start, ctx.end)
        if s is None or inside < 0.6 or (e - s) > 0.6 * ctx.span or not ctx.above_background(g, s, e):
            continue
        bursts.append((cid, s, e, g))
    return bursts


def _outages(bursts: list[_Burst]) -> list[list[_Burst]]:
    """Clusters whose bursts overlap and share job types are one outage."""
    bursts.sort(key=lambda b: (b[1], b[0]))
    groups: list[list[_Burst]] = []
    for b in bursts:
        for grp in groups:
            gs = min(x[1] for x in grp)
            ge = max(x[2] for x in grp)
            types_a = set(pd.concat([x[3] for x in grp])["job_type"].dropna())
            types_b = set(b[3]["job_type"].dropna())
            if b[1] <= ge and b[2] >= gs and (not types_a or not types_b or types_a & types_b):
                grp.append(b)
                break
        else:
            groups.append([b])
    return groups


def _outage(ctx: Context, grp: list[_Burst]) -> RawHypothesis:
    info = ctx.info
    cids = [x[0] for x in grp]
    g = pd.concat([x[3] for x in grp])
    ws = min(x[1] for x in grp)
    we = max(x[2] for x in grp)
    inside = g[(g["ts"] >= ws) & (g["ts"] < we)]
    jobs = impact_jobs(inside)
    types = sorted({str(x) for x in inside["job_type"].dropna()})
    examples: list[str] = []
    for c in cids:
        examples.extend(str(e) for e in info[c]["examples"])
    dep = _dependency(examples)
    rules = sorted({str(info[c]["kind_rule"]) for c in cids})
    versions = sorted({str(v) for v in inside["script_version"].dropna()})
    sentence = (
        f"{'Calls to ' + dep if dep else 'A dependency'} failed with transient errors "
        f"({', '.join(rules)}) between {hhmm(ws)} and {hhmm(we)}: {len(inside)} errors in {jobs} jobs"
        + (f" of {', '.join(types)}" if types else "")
        + (f", across versions {', '.join(short(v) for v in versions)}" if len(versions) > 1 else "")
        + "; it is not tied to a deploy."
    )
    return {
        "kind": "dependency_outage",
        "title": f"Dependency outage{(' of ' + dep) if dep else ''} {hhmm(ws)}–{hhmm(we)}",
        "sentence": sentence,
        "score": jobs * 0.9,
        "fit": 0.9,
        "cluster_ids": cids,
        "job_types": types,
        "window": TimeWindow(start=pydt(as_utc(ws)), end=pydt(as_utc(we))),
        "deploy": None,
        "evidence": {
            "dependency": dep,
            "errors": len(inside),
            "jobs": jobs,
            "dlq_messages": int(sum(ctx.dlq_counts.get(c, 0) for c in cids)),
            "start": ws.isoformat(),
            "end": we.isoformat(),
            "triage_rules": rules,
        },
    }
