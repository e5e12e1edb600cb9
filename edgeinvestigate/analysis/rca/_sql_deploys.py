"""Deploy markers by SQL over ``inv``: the first appearance of every version per Worker, and the
given deployments (the same rules as :func:`~edgeinvestigate.analysis.rca._deploys.deploy_markers`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

from edgeinvestigate.analysis.deploys import Deployment
from edgeinvestigate.analysis.rca._deploys import given_deploy, unique_markers
from edgeinvestigate.analysis.rca._values import as_utc, pydt
from edgeinvestigate.models.findings import Deploy

if TYPE_CHECKING:
    from edgeinvestigate.analysis.sql import Engine

__all__ = ["deploy_markers_sql"]

#: a bound past every timestamp, in epoch milliseconds
_FAR: float = 2.0**62


def _key(first: Any) -> tuple[int, int]:
    return int(first[0]), int(first[1])


def deploy_markers_sql(engine: Engine, given: Sequence[Deployment] = ()) -> list[Deploy]:
    """The deploy markers of ``inv`` plus the ``given`` deployments (which replace an observed marker
    of the same version)."""
    out = _observed(engine)
    if given:
        named = {version for version, _ in given}
        out = [d for d in out if d.version not in named] + _given(engine, given)
    out.sort(key=lambda d: (d.at, d.version))
    return out


def _observed(engine: Engine) -> list[Deploy]:
    g = engine.df("version_firsts")
    if g.empty:
        return []
    g["script"] = g["script"].astype(object).where(g["script"].notna(), None)
    g["worker"] = [
        str(s) if s is not None else "\0" + str(u) for s, u in zip(g["script"], g["unnamed"], strict=True)
    ]
    g["key"] = [_key(f) for f in g["first_key"]]
    out: list[Deploy] = []
    groups: dict[str, list[int]] = {}  # by hand: pandas' groupby merges strings that start with NUL
    for i, worker in enumerate(g["worker"]):
        groups.setdefault(worker, []).append(i)
    for worker in sorted(groups):
        w = g.iloc[groups[worker]].sort_values("key", kind="stable")
        versions = [str(v) for v in w["script_version"]]
        keys = list(w["key"])
        named = not str(worker).startswith("\0")
        for i in range(1, len(w)):
            at = pd.Timestamp(keys[i][0], unit="ms", tz="UTC")
            before = engine.df(
                "versions_between",
                t0=keys[i - 1][0],
                t1=keys[i][0],
                named=named,
                script=str(worker) if named else "",
                unnamed="" if named else str(worker)[1:],
            )
            if len(before):
                ranked = [
                    (int(before["n"].iloc[k]), str(before["script_version"].iloc[k]))
                    for k in _lexsorted(before["first_key"])
                ]
                counts = pd.Series([n for n, _ in ranked], index=[v for _, v in ranked])
                prev = str(counts.sort_values(ascending=False).index[0])
            else:
                prev = versions[i - 1]
            out.append(
                Deploy(
                    script=(str(worker) or None) if named else None,
                    version=versions[i],
                    previous_version=prev,
                    at=pydt(as_utc(at)),
                    invocations_after=int(w["n"].iloc[i]),
                    source=str(w["version_source"].iloc[i]),  # type: ignore[arg-type]
                )
            )
    return unique_markers(out)


def _lexsorted(firsts: pd.Series) -> list[int]:
    """Positions of ``firsts`` (``[ts_ms, pos]`` keys) in ascending order."""
    keys = [_key(f) for f in firsts]
    return sorted(range(len(keys)), key=lambda k: keys[k])


def _given(engine: Engine, given: Sequence[Deployment]) -> list[Deploy]:
    out: list[Deploy] = []
    for i, (version, at) in enumerate(given):
        until = given[i + 1][1] if i + 1 < len(given) else None
        r = engine.one(
            "given_deploy",
            at=pd.Timestamp(at).value / 1e6,
            version=version,
            until=pd.Timestamp(until).value / 1e6 if until is not None else _FAR,
        )
        ran = int(r["ran"] or 0)
        after = ran if int(r["with_version"] or 0) and ran else int(r["after"] or 0)
        last_before = str(r["last_before"]) if r["last_before"] is not None else None
        out.append(given_deploy(given, i, last_before, after))
    return out
