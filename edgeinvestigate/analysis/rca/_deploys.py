"""Deploy markers (observed and given) and how each cluster's rate shifted around them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import pandas as pd

from edgeinvestigate.analysis.deploys import Deployment
from edgeinvestigate.analysis.rca._values import as_utc, pydt
from edgeinvestigate.models.findings import ClusterShift, Deploy

__all__ = ["NEW_AFTER", "cluster_shift", "cluster_shifts", "deploy_markers", "shift_window", "unique_markers"]

#: a cluster is "new after deploy X" when first seen this soon after it (and never before)
NEW_AFTER: Final = pd.Timedelta(minutes=10)


def deploy_markers(inv: pd.DataFrame, given: Sequence[Deployment] = ()) -> list[Deploy]:
    """Every version that first appears after another version of the same script was running
    (``inv["script_version"]`` is the effective version, ``inv["version_source"]`` where it came
    from), plus the ``given`` deployments, which replace an observed marker of the same version."""
    v = inv.dropna(subset=["script_version"]).sort_values("ts", kind="stable") if len(inv) else inv
    out = _observed(v)
    if given:
        named = {version for version, _ in given}
        out = [d for d in out if d.version not in named] + _given(inv, v, given)
    out.sort(key=lambda d: (d.at, d.version))
    return out


def _observed(v: pd.DataFrame) -> list[Deploy]:
    """The first appearance of every new version in ``v`` (invocations with a version, by time)."""
    out: list[Deploy] = []
    # without a script name (local workerd), tell Workers apart by what invoked them: a producer's
    # and a consumer's versions are not deploys of one another
    # (the Workers without a name first; a NUL-prefixed key would be cut at the NUL by pandas' groupby)
    unnamed = v["trigger"].fillna("?").astype(str) + "/" + v["queue"].fillna("").astype(str)
    named = v["script"].notna()
    worker = [named.astype(int), v["script"].astype(object).where(named, unnamed)]
    for (is_named, key), g in v.groupby(worker, sort=True) if len(v) else ():
        script = str(key) if is_named else ""
        first = g.drop_duplicates("script_version")
        versions = list(first["script_version"])
        for i in range(1, len(first)):
            at = first["ts"].iloc[i]
            # the version mostly running since the marker before (not the whole window's favourite)
            before = g[(g["ts"] < at) & (g["ts"] >= first["ts"].iloc[i - 1])]
            prev = before["script_version"].value_counts().index[0] if len(before) else versions[i - 1]
            out.append(
                Deploy(
                    script=str(script) or None,
                    version=str(versions[i]),
                    previous_version=str(prev),
                    at=pydt(as_utc(at)),
                    invocations_after=int((g["script_version"] == versions[i]).sum()),
                    source=str(first["version_source"].iloc[i]),  # type: ignore[arg-type]
                )
            )
    return unique_markers(out)


def unique_markers(out: list[Deploy]) -> list[Deploy]:
    """The markers by time; one Worker on several queues (no script name) shows one deploy once per
    queue: keep the first."""
    out.sort(key=lambda d: (d.at, d.version))
    seen: set[tuple[str | None, str]] = set()
    unique: list[Deploy] = []
    for d in out:
        if (d.script, d.version) not in seen:
            seen.add((d.script, d.version))
            unique.append(d)
    return unique


def _given(inv: pd.DataFrame, v: pd.DataFrame, given: Sequence[Deployment]) -> list[Deploy]:
    """A marker per given deployment; what ran before it and how many invocations ran it after."""
    out: list[Deploy] = []
    for i, (version, at) in enumerate(given):
        before = v[v["ts"] < at] if len(v) else v
        last_before = str(before["script_version"].iloc[-1]) if len(before) else None
        ran = (v["script_version"] == version) if len(v) else pd.Series(dtype=bool)
        if len(v) and ran.any():
            after = int(ran.sum())
        else:  # the data names no versions: the invocations until the next given deployment
            until = given[i + 1][1] if i + 1 < len(given) else None
            ts = inv["ts"] if len(inv) else pd.Series(dtype="datetime64[ns, UTC]")
            after = int(((ts >= at) & ((ts < until) if until is not None else True)).sum())
        out.append(given_deploy(given, i, last_before, after))
    return out


def given_deploy(given: Sequence[Deployment], i: int, last_before: str | None, after: int) -> Deploy:
    """The marker of the ``i``-th given deployment (both engines): the version before it is the
    given one before it, else the last version the data ran before it (``last_before``)."""
    version, at = given[i]
    return Deploy(
        script=None,
        version=version,
        previous_version=given[i - 1][0] if i > 0 else last_before,
        at=pydt(as_utc(at)),
        invocations_after=after,
        source="given",
    )


def cluster_shifts(
    errors: pd.DataFrame, table: pd.DataFrame, deploys: list[Deploy], span: pd.Timedelta
) -> list[ClusterShift]:
    """Each cluster's errors in a window before and after every deploy (of its script), and whether
    it is new after the deploy (first seen within :data:`NEW_AFTER`, never before)."""
    out: list[ClusterShift] = []
    if errors.empty or not deploys:
        return out
    w = shift_window(span)
    templates = dict(zip(table["cluster_id"], table["template"], strict=True))
    for d in deploys:
        at = pd.Timestamp(d.at)
        same_script = (
            errors if d.script is None else errors[errors["script"].isna() | (errors["script"] == d.script)]
        )
        for cid, g in same_script.groupby("cluster_id", sort=True):
            before = int(((g["ts"] >= at - w) & (g["ts"] < at)).sum())
            after = int(((g["ts"] >= at) & (g["ts"] < at + w)).sum())
            known = g["script_version"].dropna()
            share = float((known == d.version).mean()) if len(known) else None
            shift = cluster_shift(
                d, str(cid), str(templates.get(cid, "")), before, after, bool((g["ts"] < at).any()),
                g["ts"].min(), share, w,
            )  # fmt: skip
            if shift is not None:
                out.append(shift)
    return out


def shift_window(span: pd.Timedelta) -> pd.Timedelta:
    """The window before and after a deploy that the shifts count in."""
    return min(pd.Timedelta(minutes=30), max(span / 2, pd.Timedelta(minutes=1)))


def cluster_shift(
    d: Deploy,
    cid: str,
    template: str,
    before: int,
    after: int,
    ever_before: bool,
    first: Any,
    share: float | None,
    w: pd.Timedelta,
) -> ClusterShift | None:
    """One cluster's shift around deploy ``d`` (None when it is not active around it)."""
    if before == 0 and after == 0:
        return None  # not active around this deploy
    minutes = w.total_seconds() / 60
    lag = (first - pd.Timestamp(d.at)).total_seconds() / 60
    new = (not ever_before) and 0 <= lag <= NEW_AFTER.total_seconds() / 60
    return ClusterShift(
        cluster_id=cid,
        template=template,
        version=d.version,
        script=d.script,
        before=before,
        after=after,
        rate_before_per_min=before / minutes,
        rate_after_per_min=after / minutes,
        share_on_version=share,
        first_seen=pydt(as_utc(first)),
        minutes_after_deploy=round(lag, 2),
        new_after_deploy=new,
    )
