"""Which DLQ messages a plan replays: the bundle's ``dlq`` frame, the selectors (clusters, job types,
time, ids, ``--where``), and how much of the DLQ the bundle saw."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeinvestigate.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["dlq_coverage"]


def _dlq_frame(ev: Any) -> pd.DataFrame:
    import pandas as pd

    if isinstance(ev, pd.DataFrame):
        return ev
    if isinstance(ev, str | Path):
        from edgeinvestigate.evidence.bundle import Evidence

        ev = Evidence.open(ev)
    frame = getattr(ev, "dlq", None)
    if not isinstance(frame, pd.DataFrame):
        raise ConfigError(
            "the evidence has no dlq frame", hint="collect the DLQ first: edgeinvestigate collect"
        )
    return frame


def _cluster_ids(ev: Any, frame: pd.DataFrame) -> pd.Series:
    import pandas as pd

    if "cluster_id" in frame.columns:
        return frame["cluster_id"].astype("string")
    if isinstance(ev, pd.DataFrame):
        raise ConfigError(
            "--cluster needs cluster ids: the dlq frame has no cluster_id column",
            hint="pass an evidence bundle (clusters are computed with edgeinvestigate clusters)",
        )
    from edgeinvestigate.analysis.clustering import cluster

    clusters = cluster(ev)
    cdf = clusters.dlq
    mapping = dict(zip(cdf["message_id"].astype(str), cdf["cluster_id"].astype("string"), strict=False))
    return frame["message_id"].astype(str).map(mapping).astype("string")


def _close(name: str, known: Sequence[str]) -> str:
    """`` (did you mean a, b?)`` for the close matches of ``name`` among ``known``."""
    import difflib

    near = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    return f" (did you mean {', '.join(near)}?)" if near else " (no close match)"


def _where_mask(frame: pd.DataFrame, where: str) -> pd.Series:
    """``--where``: a boolean Series aligned to ``frame``, or a ConfigError naming what it returned."""
    import pandas as pd

    columns = ", ".join(map(str, frame.columns))
    try:
        result: Any = frame.eval(where)
    except Exception as exc:
        raise ConfigError(
            f"--where {where!r} failed on the dlq frame: {exc}",
            hint=f"a pandas query over the columns: {columns}",
        ) from exc
    ok = (
        isinstance(result, pd.Series)
        and result.index.equals(frame.index)
        and (pd.api.types.is_bool_dtype(result.dtype))
    )
    if not ok:
        what = (
            f"a Series of dtype {result.dtype}"
            if isinstance(result, pd.Series)
            else f"{type(result).__name__} {str(result)[:60]!r}"
        )
        raise ConfigError(
            f"--where {where!r} is not a condition: it returned {what}, not one true/false per message",
            hint=f'write a comparison, e.g. --where "attempts >= 3" (columns: {columns})',
        )
    mask: pd.Series = result.fillna(False).astype(bool)
    return mask


def dlq_coverage(ev: Any, frame: pd.DataFrame, queue: str) -> dict[str, Any] | None:
    """How much of ``queue`` the bundle saw, from its manifest's ``dlq_collections`` (or the frame's
    ``attrs``); None when the bundle does not say (a DLQ file)."""
    manifest = getattr(ev, "manifest", None)
    entries: list[Any] = []
    if isinstance(manifest, dict):
        entries = list(manifest.get("dlq_collections") or [])
    attrs = getattr(frame, "attrs", None)
    if not entries and isinstance(attrs, dict) and isinstance(attrs.get("dlq_collection"), dict):
        entries = [attrs["dlq_collection"]]
    mine = [e for e in entries if isinstance(e, dict) and e.get("queue") == queue]
    if not mine:
        return None
    e = mine[-1]
    seen = int(e.get("messages") or 0)
    backlog = e.get("backlog_count")
    backlog = int(backlog) if isinstance(backlog, int | float) else None
    complete = bool(e.get("complete", True)) and (backlog is None or backlog <= seen)
    return {
        "queue": queue,
        "mode": str(e.get("mode") or "?"),
        "messages": seen,
        "backlog_count": backlog,
        "complete": complete,
    }
