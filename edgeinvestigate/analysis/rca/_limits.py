"""Worker limits: CPU and wall time against the limits, limit hits, the job types that hit them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import pandas as pd

from edgeinvestigate.analysis._columns import as_object
from edgeinvestigate.analysis.rca._values import as_utc, hhmm, pydt
from edgeinvestigate.models.findings import LimitHit, LimitStats, TimeWindow

if TYPE_CHECKING:
    from edgeinvestigate.evidence.bundle import Evidence

__all__ = [
    "CPU_LIMIT_MS",
    "LIMIT_NAMES",
    "LIMIT_OUTCOMES",
    "NEAR",
    "WALL_LIMIT_MS",
    "find_limit_hits",
    "lifted_types",
    "limit_hit",
    "limit_stats",
    "over_represented_types",
    "what_hit",
]

#: the default Worker limits, and the share of a limit that counts as near it
WALL_LIMIT_MS: Final = 30_000.0
CPU_LIMIT_MS: Final = 30_000.0
NEAR: Final = 0.9
#: invocation outcomes that are limit hits
LIMIT_OUTCOMES: Final = ("exceededCpu", "exceededMemory", "exceededWallTime")


def limit_stats(inv: pd.DataFrame, cpu_limit: float, wall_limit: float) -> LimitStats:
    """CPU and wall time percentiles against the limits, and the invocations over or near them."""

    def q(s: pd.Series, p: float) -> float | None:
        s = s.dropna()
        return float(s.quantile(p)) if len(s) else None

    cpu, wall = inv["cpu_ms"], inv["wall_ms"]
    return LimitStats(
        cpu_limit_ms=cpu_limit,
        wall_limit_ms=wall_limit,
        cpu_p50_ms=q(cpu, 0.5),
        cpu_p95_ms=q(cpu, 0.95),
        cpu_p99_ms=q(cpu, 0.99),
        cpu_max_ms=q(cpu, 1.0),
        wall_p50_ms=q(wall, 0.5),
        wall_p95_ms=q(wall, 0.95),
        wall_p99_ms=q(wall, 0.99),
        wall_max_ms=q(wall, 1.0),
        exceeded_cpu=int((inv["outcome"] == "exceededCpu").sum()),
        exceeded_memory=int((inv["outcome"] == "exceededMemory").sum()),
        exceeded_wall=int((inv["outcome"] == "exceededWallTime").sum()),
        cpu_near_limit=int((cpu >= NEAR * cpu_limit).sum()),
        wall_near_limit=int((wall >= NEAR * wall_limit).sum()),
    )


def over_represented_types(ev: Evidence, invocation_ids: set[Any]) -> list[str]:
    """Job types over-represented among the jobs of some invocations (a batch mixes job types, so
    the type that makes invocations heavy is the one whose share rises there): share >= 20% and at
    least 1.5 times its share overall, most over-represented first."""
    logs = ev.logs
    if not invocation_ids or logs.empty:
        return []
    d = pd.DataFrame(
        {
            "invocation_id": as_object(logs["invocation_id"]),
            "job_id": as_object(logs["job_id"]),
            "job_type": as_object(logs["job_type"]),
        }
    ).dropna(subset=["job_type"])
    d = d.drop_duplicates(["invocation_id", "job_id", "job_type"])
    if d.empty:
        return []
    inside = d[d["invocation_id"].isin(invocation_ids)]["job_type"].value_counts()
    return lifted_types(d["job_type"].value_counts(), inside)


def lifted_types(overall: pd.Series, inside: pd.Series) -> list[str]:
    """:func:`over_represented_types` from the counts of job types overall and among the chosen
    invocations (both as ``value_counts`` orders them)."""
    if not len(inside):
        return []
    overall = overall / overall.sum()
    inside = inside / inside.sum()
    lift = (inside / overall.reindex(inside.index)).sort_values(ascending=False)
    return [str(t) for t, v in lift.items() if float(v) >= 1.5 and float(inside.get(t, 0.0)) >= 0.2]


def what_hit(name: str, cpu_limit: float, wall_limit: float) -> str:
    """What an invocation did to hit limit ``name``, as the sentences say it."""
    return {
        "exceededCpu": "exceeded the CPU time limit",
        "exceededMemory": "exceeded the 128 MB memory limit",
        "exceededWallTime": "exceeded the wall-time limit",
        "wall_near_limit": f"ran for more than {NEAR * wall_limit / 1000:.0f} s of wall time "
        f"(limit {wall_limit / 1000:.0f} s)",
        "cpu_near_limit": f"used more than {NEAR * cpu_limit / 1000:.0f} s of CPU "
        f"(limit {cpu_limit / 1000:.0f} s)",
    }[name]


#: the limits in the order the findings list them
LIMIT_NAMES: Final = (
    "exceededCpu",
    "exceededMemory",
    "exceededWallTime",
    "wall_near_limit",
    "cpu_near_limit",
)


def limit_hit(
    name: str, n: int, types: list[str], scripts: list[str], start: Any, end: Any, what: str
) -> LimitHit:
    """One limit hit: ``n`` invocations of ``types`` and ``scripts`` between ``start`` and ``end``."""
    window = TimeWindow(start=pydt(as_utc(start)), end=pydt(as_utc(end)))
    return LimitHit(
        limit=name,  # type: ignore[arg-type]
        invocations=n,
        job_types=types,
        scripts=scripts,
        window=window,
        sentence=(
            f"{n} invocations{(' of ' + ', '.join(types)) if types else ''} {what} "
            f"between {hhmm(as_utc(start))} and {hhmm(as_utc(end))}."
        ),
    )


def find_limit_hits(inv: pd.DataFrame, cpu_limit: float, wall_limit: float) -> list[LimitHit]:
    """The invocations that exceeded a limit, or came within :data:`NEAR` of one, per limit."""
    out: list[LimitHit] = []
    checks: list[tuple[str, pd.Series]] = [
        ("exceededCpu", inv["outcome"] == "exceededCpu"),
        ("exceededMemory", inv["outcome"] == "exceededMemory"),
        ("exceededWallTime", inv["outcome"] == "exceededWallTime"),
        ("wall_near_limit", (inv["wall_ms"] >= NEAR * wall_limit) & (inv["outcome"] != "exceededWallTime")),
        ("cpu_near_limit", (inv["cpu_ms"] >= NEAR * cpu_limit) & (inv["outcome"] != "exceededCpu")),
    ]
    for name, mask in checks:
        mask = mask.fillna(False).astype(bool)
        n = int(mask.sum())
        if not n:
            continue
        hit = inv[mask]
        types = sorted({str(x) for x in hit["job_type"] if x != "unknown"})
        scripts = sorted({str(x) for x in hit["script"].dropna()})
        what = what_hit(name, cpu_limit, wall_limit)
        out.append(limit_hit(name, n, types, scripts, hit["ts"].min(), hit["ts"].max(), what))
    return out
