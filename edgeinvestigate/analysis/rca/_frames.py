"""The frames the analysis works on: one row per invocation, one row per job delivery."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from edgeinvestigate.analysis._columns import as_object, utc_series
from edgeinvestigate.analysis.deploys import invocation_versions

if TYPE_CHECKING:
    from edgeinvestigate.evidence.bundle import Evidence

__all__ = ["delivery_frame", "invocation_frame"]


def invocation_frame(ev: Evidence) -> pd.DataFrame:
    """One row per invocation with a time: its effective version (and where it came from), the first
    job type its logs name, outcome, CPU and wall time."""
    src = ev.invocations
    inv = pd.DataFrame(
        {
            "invocation_id": as_object(src["invocation_id"]),
            "ts": utc_series(src["ts"]),
            "script": as_object(src["script"]),
            "script_version": as_object(src["script_version"]),
            "trigger": as_object(src["trigger"]),
            "queue": as_object(src["queue"]),
            "outcome": as_object(src["outcome"]).fillna("unknown"),
            "failed": src["failed"].astype("boolean").fillna(False).astype(bool),
            "cpu_ms": pd.to_numeric(src["cpu_ms"].astype(object), errors="coerce"),
            "wall_ms": pd.to_numeric(src["wall_ms"].astype(object), errors="coerce"),
        }
    )
    logs = ev.logs
    # the version each invocation ran: its script_version, else the version its log lines name
    versions = invocation_versions(inv, logs)
    inv["script_version"] = versions["version"].to_numpy()
    inv["version_source"] = versions["version_source"].to_numpy()
    if len(logs) and len(inv):
        lj = pd.DataFrame(
            {"invocation_id": as_object(logs["invocation_id"]), "job_type": as_object(logs["job_type"])}
        )
        jt = lj.dropna().drop_duplicates("invocation_id")
        inv = inv.merge(jt, on="invocation_id", how="left")
    else:
        inv["job_type"] = None
    inv["job_type"] = inv["job_type"].fillna("unknown")
    return inv.dropna(subset=["ts"]).reset_index(drop=True)


def delivery_frame(ev: Evidence) -> pd.DataFrame:
    """One row per (job id, attempt, invocation) from logs that carry a job id and an attempt."""
    logs = ev.logs
    if logs.empty:
        return pd.DataFrame(columns=["job_id", "attempt", "invocation_id", "ts", "job_type"])
    d = pd.DataFrame(
        {
            "job_id": as_object(logs["job_id"]),
            "attempt": pd.to_numeric(logs["attempt"].astype(object), errors="coerce"),
            "invocation_id": as_object(logs["invocation_id"]),
            "ts": utc_series(logs["ts"]),
            "job_type": as_object(logs["job_type"]),
        }
    ).dropna(subset=["job_id", "attempt"])
    return d.drop_duplicates(["job_id", "attempt", "invocation_id"])
