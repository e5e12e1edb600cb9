"""Which cluster each DLQ message belongs to, and how it was found (``cluster_join``).

``envelope_error`` (the message's own error text), ``job_id`` (the last error logged for its
message id or job id before it was dead-lettered), ``type_time`` (the nearest error of the same job
type within :data:`TYPE_TIME_WINDOW`, failures first) or ``none``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import numpy as np
import pandas as pd

from edgeinvestigate.analysis._columns import as_object, dlq_time, utc_series
from edgeinvestigate.analysis.clustering._rows import FAILURE_LEVELS
from edgeinvestigate.models.frames import empty_frame

__all__ = ["DLQ_LOG_SKEW", "TYPE_TIME_WINDOW", "job_join", "join_dlq"]

#: how far apart a DLQ message and an error of the same job type may be for a ``type_time`` join
TYPE_TIME_WINDOW: Final = pd.Timedelta(minutes=15)
#: how much later than a DLQ message's time (its last attempt, else its enqueue time) the error that
#: dead-lettered it may be logged (clocks and log timestamps of one event differ slightly)
DLQ_LOG_SKEW: Final = pd.Timedelta(seconds=60)


def join_dlq(dlq: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """The DLQ frame with ``cluster_id`` and ``cluster_join`` (see the module docs)."""
    if dlq is None or len(dlq) == 0:
        out = empty_frame("dlq") if dlq is None else dlq.copy()
        out["cluster_id"] = pd.Series(dtype=object)
        out["cluster_join"] = pd.Series(dtype=object)
        return out
    out = dlq.copy()
    n = len(out)
    cid = np.full(n, None, dtype=object)
    how = np.full(n, "none", dtype=object)
    # 1. the envelope's own error text
    from_dlq = (rows["source"] == "dlq").to_numpy()
    if from_dlq.any():
        at = rows["row"].to_numpy()[from_dlq]
        cid[at] = rows["cluster_id"].to_numpy()[from_dlq]
        how[at] = "envelope_error"
    todo = np.flatnonzero(how == "none")
    if len(todo) and not from_dlq.all():
        # 2. job id or message id seen in an error row: the last one before it was dead-lettered
        # (only the columns the joins read, of the telemetry rows)
        tel = rows.loc[~from_dlq, ["ts", "level", "text", "job_id", "job_type", "message_id", "cluster_id"]]
        latest = tel.sort_values("ts", kind="stable").dropna(subset=["ts"])
        picked = job_join(out, todo, latest)
        if picked:
            tel_cids = latest["cluster_id"].to_numpy()
            for i, pos in picked.items():
                cid[i] = tel_cids[pos]
                how[i] = "job_id"
        # 3. nearest error of the same job type in time
        todo = np.flatnonzero(how == "none")
        typed = latest.dropna(subset=["job_type"])
        if len(todo) and len(typed):
            when = dlq_time(out).iloc[todo]
            left = pd.DataFrame(
                {
                    "i": todo,
                    "job_type": as_object(out["job_type"]).iloc[todo].to_numpy(),
                    "ts": when.to_numpy(),
                }
            ).dropna()
            if len(left):
                left["ts"] = pd.to_datetime(left["ts"], utc=True).astype("datetime64[ns, UTC]")
                left["job_type"] = left["job_type"].astype(str)
                right_all = typed[["ts", "job_type", "cluster_id", "level"]].copy()
                right_all["ts"] = right_all["ts"].astype("datetime64[ns, UTC]")
                right_all["job_type"] = right_all["job_type"].astype(str)
                # failures (exceptions, error lines) first: a warn line of the same job type nearby
                # ("slow subrequest") is a worse guess than an error a few minutes away
                failing = right_all["level"].isin(FAILURE_LEVELS)
                for right in (right_all[failing], right_all):
                    if left.empty or right.empty:
                        continue
                    m = pd.merge_asof(
                        left.sort_values("ts"),
                        right[["ts", "job_type", "cluster_id"]].sort_values("ts"),
                        on="ts",
                        by="job_type",
                        direction="nearest",
                        tolerance=TYPE_TIME_WINDOW,
                    )
                    m = m.dropna(subset=["cluster_id"])
                    cid[m["i"].to_numpy()] = m["cluster_id"].to_numpy()
                    how[m["i"].to_numpy()] = "type_time"
                    left = left[~left["i"].isin(m["i"])]
    out["cluster_id"] = cid
    out["cluster_join"] = how
    return out


def job_join(dlq: pd.DataFrame, todo: Iterable[int], tel: pd.DataFrame) -> dict[int, int]:
    """For the DLQ rows ``todo``: the position in ``tel`` (error rows sorted by time) of the error
    that dead-lettered the message: the last error row logged with the message's id (its own
    delivery attempts; a replay of the job gets a new id), else with its job id, no later than its
    ``last_attempt`` (plus :data:`DLQ_LOG_SKEW`) when the DLQ message records it. ``enqueued_at`` is
    no bound: a message moved by the runtime may keep the time it was first sent."""
    ts = pd.DatetimeIndex(tel["ts"]).as_unit("ns").asi8
    job = as_object(dlq["job_id"]).to_numpy()
    mid = as_object(dlq["message_id"]).to_numpy()
    wanted = np.asarray(
        list({str(v) for v in (*job, *mid) if v is not None}), dtype=object
    )  # ids a DLQ message has
    groups: dict[tuple[str, str], tuple[int, int]] = {}  # (column, id) -> its rows in ``positions``
    parts: list[np.ndarray] = []
    at = 0
    for col in ("message_id", "job_id"):
        present = (tel[col].notna() & tel[col].astype(object).isin(wanted)).to_numpy()
        if not present.any():
            continue
        pos = np.flatnonzero(present)
        codes, keys = pd.factorize(tel[col].astype(object)[present].astype(str).to_numpy())
        order = np.argsort(codes, kind="stable")  # each id's rows together, in order
        bounds = np.searchsorted(codes[order], np.arange(len(keys) + 1))
        groups.update({(col, str(k)): (at + bounds[j], at + bounds[j + 1]) for j, k in enumerate(keys)})
        parts.append(pos[order])
        at += len(pos)
    if not groups:
        return {}
    positions = np.concatenate(parts)
    last = pd.DatetimeIndex(utc_series(dlq["last_attempt"])).as_unit("ns")
    bound = (last + DLQ_LOG_SKEW).asi8
    known = last.notna()
    out: dict[int, int] = {}
    for i in todo:
        span: tuple[int, int] | None = None
        for col, key in (
            ("message_id", mid[i]),
            ("job_id", job[i]),
            ("job_id", mid[i]),
            ("message_id", job[i]),
        ):
            if key is not None and (col, str(key)) in groups:
                span = groups[(col, str(key))]
                break
        if span is None:
            continue
        pos = positions[span[0] : span[1]]
        if known[i]:
            early = pos[ts[pos] <= bound[i]]
            pos = early if len(early) else pos
        out[int(i)] = int(pos[-1])
    return out
