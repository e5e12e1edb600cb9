"""Which DLQ messages a plan replays: the bundle's ``dlq`` frame, the selectors (clusters, job types,
time, ids, ``--where``), the exclusions decided before any body is read (a message id collected twice,
an ``--id`` the bundle does not hold), what the ledgers of earlier plans say about the chosen messages,
and how much of the DLQ the bundle saw.

:func:`select` is the selection step of :func:`~edgeinvestigate.replay.plan_replay`; building the plan
from it (rewriting, batching, warnings) is :mod:`._planner`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeinvestigate.errors import ConfigError, EdgeInvestigateError, ReplayError
from edgeinvestigate.replay._plan import RUNBOOK, Excluded
from edgeinvestigate.replay._registry import PriorReplays, find_prior_replays

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Selection", "dlq_coverage", "dlq_frame_of", "dlq_names", "of_queue", "select"]


@dataclass
class Selection:
    """The messages a plan replays, out of the DLQ of its source queue."""

    #: the DLQ of the source queue, one row per message id (the first of duplicates)
    frame: pd.DataFrame
    #: the selected rows, oldest first
    chosen: pd.DataFrame
    #: message ids collected twice, ``--id`` values not in the bundle
    excluded: list[Excluded]
    #: ``--cluster`` / ``--id`` values that name nothing in the frame (with close matches)
    unknown: list[str]
    #: what the ledgers of earlier plans say about the chosen messages
    prior: PriorReplays
    #: the cluster id of each row of ``frame`` (by index), when the messages could be clustered
    cluster_col: pd.Series | None = None
    #: why the messages carry no cluster id (empty when they do)
    cluster_note: str = ""
    #: cluster id -> its triage (transient / permanent / unknown), when the bundle was clustered
    cluster_kinds: dict[str, str] = field(default_factory=dict)

    @property
    def not_selected(self) -> int:
        """Messages of the source DLQ that the selectors left out (they stay in the DLQ)."""
        return len(self.frame) - len(self.chosen)

    @property
    def unknown_warning(self) -> str:
        return f"unknown {'; '.join(self.unknown)}: the other selectors matched" if self.unknown else ""

    def clusters_by_index(self) -> dict[int, Any]:
        """Row index of ``frame`` -> its cluster id (possibly NA)."""
        if self.cluster_col is None:
            return {}
        return dict(zip(self.frame.index, self.cluster_col, strict=False))


def dlq_names(frame: pd.DataFrame) -> set[str]:
    """The DLQ names in a ``dlq`` frame (its ``queue`` column): never a replay target."""
    if "queue" not in frame.columns:
        return set()
    return set(frame["queue"].astype("string").dropna().unique())


def of_queue(frame: pd.DataFrame, queue: str) -> pd.DataFrame:
    """The messages of one DLQ (all of them when the frame does not name its queues), re-indexed."""
    names = dlq_names(frame)
    if names:
        keep = (frame["queue"].astype("string") == queue).fillna(False).to_numpy(dtype=bool)
        if not keep.any():
            raise ReplayError(
                f"the bundle holds no DLQ messages from {queue!r} (it has: {', '.join(sorted(names))})",
                hint="check --from, or collect that DLQ first",
            )
        frame = frame[keep]
    return frame.reset_index(drop=True)


def select(
    ev: Any,
    frame: pd.DataFrame,
    queue: str,
    *,
    clusters: Sequence[str] = (),
    types: Sequence[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    ids: Sequence[str] = (),
    where: str | None = None,
    bundle: str | None = None,
    near: str | Path | None = None,
) -> Selection:
    """Apply the selectors to ``frame`` (the DLQ of ``queue``, see :func:`of_queue`).

    A message id collected twice is kept once (the first); ``--cluster`` / ``--id`` values that name
    nothing are listed with close matches. A selection that matches nothing is refused
    (:class:`ConfigError`, no empty plan), naming the selector that emptied it and the data's time range.
    The chosen messages are looked up in the ledgers of earlier plans registered in ``bundle`` and
    next to ``near`` (see :mod:`._registry`).
    """
    import pandas as pd

    frame, excluded = _drop_duplicates(frame)
    cluster_col, cluster_note, kinds = _cluster_column(ev, frame, clusters)
    steps, unknown, not_found = _mask(frame, cluster_col, clusters, types, since, until, ids, where)
    excluded += not_found
    mask = pd.Series(True, index=frame.index)
    for _, step in steps:
        mask &= step
    chosen = frame[mask.to_numpy(dtype=bool)]
    if chosen.empty:
        raise ConfigError(_empty_message(frame, queue, steps, unknown), hint=_empty_hint(steps, unknown))
    if "enqueued_at" in chosen.columns:
        chosen = chosen.assign(_order=chosen["enqueued_at"].astype(object)).sort_values(
            ["_order", "message_id"], kind="stable", na_position="last"
        )
    prior = find_prior_replays(
        chosen["message_id"].astype(str), bundle=bundle, near=[near] if near is not None else []
    )
    return Selection(frame, chosen, excluded, unknown, prior, cluster_col, cluster_note, kinds)


def _empty_message(
    frame: pd.DataFrame, queue: str, steps: list[tuple[str, pd.Series]], unknown: list[str]
) -> str:
    """Which selector emptied the selection (each applied after the ones before it), and the data's
    time range."""
    import pandas as pd

    left = pd.Series(True, index=frame.index)
    narrowed = []
    for label, step in steps:
        left &= step
        n = int(left.sum())
        narrowed.append(f"{label} leaves {n}")
        if n == 0:
            break
    what = f"; unknown {'; '.join(unknown)}" if unknown else ""
    return (
        f"no DLQ message of {queue!r} in this bundle matches the selection{what}; refusing to write an "
        f"empty plan. The bundle holds {len(frame)} messages of {queue!r}{_time_range(frame)}"
        + ("; " + ", then ".join(narrowed) if narrowed else ": nothing to replay")
    )


def _empty_hint(steps: list[tuple[str, pd.Series]], unknown: list[str]) -> str:
    if unknown:
        return (
            "check the ids (edgeinvestigate clusters BUNDLE lists the cluster ids; the message ids are in "
            "the bundle's dlq frame)"
        )
    labels = [label for label, _ in steps]
    timed = any(label.startswith(("--since", "--until")) for label in labels)
    return (
        "change the selector that emptied it"
        + (" (--since/--until compare with the time each message was dead-lettered, in UTC)" if timed else "")
        + "; edgeinvestigate clusters BUNDLE lists the clusters and their job types; no file was written"
    )


def _time_range(frame: pd.DataFrame) -> str:
    """`` (dead-lettered from A to B UTC)`` for the messages of ``frame``, or nothing."""
    import pandas as pd

    for col in ("enqueued_at", "original_timestamp"):
        if col in frame.columns and frame[col].notna().any():
            when = pd.to_datetime(frame[col].astype(object), utc=True).dropna()
            if when.empty:
                continue
            first, last = when.min(), when.max()
            verb = "dead-lettered" if col == "enqueued_at" else "first enqueued"
            return f" ({verb} from {first:%Y-%m-%dT%H:%M:%SZ} to {last:%Y-%m-%dT%H:%M:%SZ})"
    return ""


def _drop_duplicates(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[Excluded]]:
    """A message id is replayed at most once per plan: the first row of each id is kept."""
    dup = frame["message_id"].astype("string").duplicated(keep="first").fillna(False).to_numpy(dtype=bool)
    excluded = [
        Excluded(message_id=mid, reason="duplicate") for mid in frame.loc[dup, "message_id"].astype(str)
    ]
    return frame[~dup].reset_index(drop=True), excluded


def _cluster_column(
    ev: Any, frame: pd.DataFrame, clusters: Sequence[str]
) -> tuple[pd.Series | None, str, dict[str, str]]:
    """The cluster id of each message, when there are none why (an error only with ``--cluster``),
    and each cluster's triage (transient / permanent / unknown) when the bundle was clustered."""
    import pandas as pd

    if isinstance(ev, pd.DataFrame) and "cluster_id" not in frame.columns:
        if clusters:
            _cluster_ids(ev, frame)  # raises the --cluster error
        return (
            None,
            (
                "no cluster ids: the input is a DLQ file or frame without telemetry to cluster; plan from "
                "an evidence bundle to see clusters"
            ),
            {},
        )
    try:
        col, kinds = _cluster_ids(ev, frame)
    except EdgeInvestigateError as exc:
        if clusters:
            raise
        return None, f"no cluster ids: clustering the bundle failed: {exc.message}", {}
    return col, "", kinds


def _mask(
    frame: pd.DataFrame,
    cluster_col: pd.Series | None,
    clusters: Sequence[str],
    types: Sequence[str],
    since: datetime | None,
    until: datetime | None,
    ids: Sequence[str],
    where: str | None,
) -> tuple[list[tuple[str, pd.Series]], list[str], list[Excluded]]:
    """Every selector as ``(label, mask over frame)``, in order (the selection is their AND), the
    unknown ``--cluster``/``--id`` values, and an ``Excluded`` for each ``--id`` not in the frame."""
    steps: list[tuple[str, pd.Series]] = []
    unknown: list[str] = []
    not_found: list[Excluded] = []
    if clusters:
        assert cluster_col is not None
        known = sorted(set(cluster_col.dropna().astype(str)))
        unknown += [f"--cluster {c}" + _close(c, known) for c in sorted(set(clusters)) if c not in set(known)]
        steps.append((_label("--cluster", clusters), cluster_col.isin(list(clusters)).fillna(False)))
    if types:
        steps.append(
            (_label("--type", types), frame["job_type"].astype("string").isin(list(types)).fillna(False))
        )
    if since is not None or until is not None:
        label = " ".join(
            f"{name} {t:%Y-%m-%dT%H:%M:%SZ}" for name, t in (("--since", since), ("--until", until)) if t
        )
        steps.append((label, _time_mask(frame, since, until)))
    if ids:
        present = set(frame["message_id"].astype(str))
        for mid in sorted(set(ids) - present):
            not_found.append(Excluded(message_id=mid, reason="not_found"))
            unknown.append(f"--id {mid}" + _close(mid, sorted(present)))
        steps.append(
            (_label("--id", ids), frame["message_id"].astype("string").isin(list(ids)).fillna(False))
        )
    if where:
        steps.append((f"--where {where!r}", _where_mask(frame, where)))
    return steps, unknown, not_found


def _label(option: str, values: Sequence[str]) -> str:
    shown = sorted(set(values))
    return f"{option} {', '.join(shown[:3])}" + (f" (and {len(shown) - 3} more)" if len(shown) > 3 else "")


def _time_mask(frame: pd.DataFrame, since: datetime | None, until: datetime | None) -> pd.Series:
    """``--since`` / ``--until`` on the time each message was dead-lettered (or first enqueued)."""
    import pandas as pd

    when = frame["enqueued_at"] if "enqueued_at" in frame.columns else None
    if when is None or when.isna().all():
        when = frame.get("original_timestamp")
    if when is None:
        raise ConfigError("--since/--until need enqueued_at in the dlq frame", hint=RUNBOOK)
    when = pd.to_datetime(when.astype(object), utc=True)
    mask = pd.Series(True, index=frame.index)
    if since is not None:
        mask &= (when >= since).fillna(False)
    if until is not None:
        mask &= (when < until).fillna(False)
    return mask


def dlq_frame_of(ev: Any) -> pd.DataFrame:
    """The ``dlq`` frame of an Evidence, a bundle directory, or a frame given as is."""
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


def _cluster_ids(ev: Any, frame: pd.DataFrame) -> tuple[pd.Series, dict[str, str]]:
    """The cluster id of each row of ``frame`` and the triage of each cluster (when clustered here)."""
    import pandas as pd

    if "cluster_id" in frame.columns:
        return frame["cluster_id"].astype("string"), {}
    if isinstance(ev, pd.DataFrame):
        raise ConfigError(
            "--cluster needs cluster ids: the dlq frame has no cluster_id column",
            hint="pass an evidence bundle (clusters are computed with edgeinvestigate clusters)",
        )
    from edgeinvestigate.analysis.clustering import cluster

    clusters = cluster(ev)
    cdf = clusters.dlq
    mapping = dict(zip(cdf["message_id"].astype(str), cdf["cluster_id"].astype("string"), strict=False))
    table = clusters.table
    kinds: dict[str, str] = {}
    if "kind" in table.columns:
        kinds = {
            str(c): str(k) for c, k in zip(table["cluster_id"], table["kind"], strict=True) if k is not None
        }
    return frame["message_id"].astype(str).map(mapping).astype("string"), kinds


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
