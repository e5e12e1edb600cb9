"""Blast radius: errors by job type, queue, script, version and tenant-like payload fields."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import msgspec
import pandas as pd

from edgeinvestigate.analysis._columns import as_object, json_decode, json_values
from edgeinvestigate.models.findings import BlastRadiusRow

if TYPE_CHECKING:
    from edgeinvestigate.analysis.clustering import Clusters
    from edgeinvestigate.evidence.bundle import Evidence

__all__ = ["TENANT_FIELDS", "blast_radius_rows", "find_payload_fields"]

#: payload fields that name a tenant-like owner of a job (looked up at the top level and in ``payload``)
TENANT_FIELDS: Final = (
    "tenant",
    "tenantId",
    "tenant_id",
    "customer",
    "customerId",
    "customer_id",
    "account",
    "accountId",
    "account_id",
    "org",
    "orgId",
    "org_id",
    "workspace",
    "workspaceId",
    "workspace_id",
)


def _find_field(obj: Any, fields: Sequence[str]) -> tuple[str, str] | None:
    """The first of ``fields`` in a JSON object, or in its ``payload``/``data``/``body``/``original``."""
    if isinstance(obj, dict):
        for f in fields:
            v = obj.get(f)
            if v is not None and not isinstance(v, dict | list):
                return f, str(v)
        for nested in ("payload", "data", "body", "original"):
            hit = _find_field(obj.get(nested), fields)
            if hit:
                return hit
    return None


def find_payload_fields(ev: Evidence, clusters: Clusters, fields: Sequence[str]) -> pd.DataFrame:
    """Tenant-like fields per job: from DLQ payloads and structured error log lines.

    Returns rows (job_id, cluster_id, field, value); job_id may be null for log lines without one.
    """
    rows: list[dict[str, Any]] = []
    if not fields:
        return pd.DataFrame(columns=["job_id", "cluster_id", "field", "value", "source"])
    dlq = clusters.dlq
    if len(dlq):
        for payload, job, cid in zip(
            as_object(dlq["payload"]), as_object(dlq["job_id"]), as_object(dlq["cluster_id"]), strict=True
        ):
            if not payload:
                continue
            try:
                hit = _find_field(json_decode(payload), fields)
            except (ValueError, msgspec.DecodeError):
                continue
            if hit:
                rows.append(
                    {"job_id": job, "cluster_id": cid, "field": hit[0], "value": hit[1], "source": "dlq"}
                )
    logs = ev.logs
    a = clusters.assign
    log_rows = a[a["source"] == "log"]
    if len(log_rows) and len(logs):
        args = as_object(logs["args"]).to_numpy()
        msgs = as_object(logs["message"]).to_numpy()
        for r, job, cid in zip(log_rows["row"], log_rows["job_id"], log_rows["cluster_id"], strict=True):
            for text in (msgs[r], args[r]):
                if not text or "{" not in str(text):
                    continue
                hit = None
                for o in json_values(text):
                    hit = _find_field(o, fields)
                    if hit:
                        break
                if hit:
                    rows.append(
                        {"job_id": job, "cluster_id": cid, "field": hit[0], "value": hit[1], "source": "log"}
                    )
                    break
    return pd.DataFrame(rows, columns=["job_id", "cluster_id", "field", "value", "source"])


def blast_radius_rows(errors: pd.DataFrame, payload: pd.DataFrame) -> list[BlastRadiusRow]:
    """Error rows by job type, queue, script and version, and by each tenant-like payload field."""
    out: list[BlastRadiusRow] = []
    total = len(errors)
    if total:
        for dim in ("job_type", "queue", "script", "script_version"):
            col = errors[dim].fillna("unknown").astype(str)
            for value, n in col.value_counts().items():
                jobs = errors.loc[col == value, "job_id"].dropna().nunique()
                out.append(
                    BlastRadiusRow(
                        dimension=dim, value=str(value), errors=int(n), share=n / total, jobs=int(jobs)
                    )
                )
    if len(payload):
        for fieldname, g in payload.groupby("field", sort=True):
            counts = g["value"].value_counts()
            n_all = len(g)
            for value, n in counts.head(20).items():
                jobs = g.loc[g["value"] == value, "job_id"].dropna().nunique()
                out.append(
                    BlastRadiusRow(
                        dimension=str(fieldname),
                        value=str(value),
                        errors=int(n),
                        share=n / n_all,
                        jobs=int(jobs),
                    )
                )
    return out
