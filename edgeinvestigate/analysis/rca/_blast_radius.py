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

__all__ = [
    "TENANT_FIELDS",
    "blast_radius_from_counts",
    "blast_radius_rows",
    "dlq_payload_fields",
    "find_payload_fields",
]

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


def log_field(message: Any, args: Any, fields: Sequence[str]) -> tuple[str, str] | None:
    """The first of ``fields`` (and its value) found in the JSON of a log line's message or args."""
    for text in (message, args):
        if not isinstance(text, str) or "{" not in text:
            continue
        for o in json_values(text):
            hit = _find_field(o, fields)
            if hit:
                return hit
    return None


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


def dlq_payload_fields(dlq: pd.DataFrame, fields: Sequence[str]) -> list[dict[str, Any]]:
    """Tenant-like fields of the DLQ payloads: rows (job_id, cluster_id, field, value, source)."""
    rows: list[dict[str, Any]] = []
    if not len(dlq) or not fields:
        return rows
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
            rows.append({"job_id": job, "cluster_id": cid, "field": hit[0], "value": hit[1], "source": "dlq"})
    return rows


def find_payload_fields(ev: Evidence, clusters: Clusters, fields: Sequence[str]) -> pd.DataFrame:
    """Tenant-like fields per job: from DLQ payloads and structured error log lines.

    Returns rows (job_id, cluster_id, field, value); job_id may be null for log lines without one.
    """
    if not fields:
        return pd.DataFrame(columns=["job_id", "cluster_id", "field", "value", "source"])
    rows = dlq_payload_fields(clusters.dlq, fields)
    logs = ev.logs
    a = clusters.assign
    log_rows = a[a["source"] == "log"]
    if len(log_rows) and len(logs):
        args = as_object(logs["args"]).to_numpy()
        msgs = as_object(logs["message"]).to_numpy()
        for r, job, cid in zip(log_rows["row"], log_rows["job_id"], log_rows["cluster_id"], strict=True):
            hit = log_field(msgs[r], args[r], fields)
            if hit:
                rows.append(
                    {"job_id": job, "cluster_id": cid, "field": hit[0], "value": hit[1], "source": "log"}
                )
    return pd.DataFrame(rows, columns=["job_id", "cluster_id", "field", "value", "source"])


#: the dimensions of the error rows that the blast radius counts by
DIMENSIONS: Final = ("job_type", "queue", "script", "script_version")


def blast_radius_rows(errors: pd.DataFrame, payload: pd.DataFrame) -> list[BlastRadiusRow]:
    """Error rows by job type, queue, script and version, and by each tenant-like payload field."""
    out: list[BlastRadiusRow] = []
    total = len(errors)
    if total:
        for dim in DIMENSIONS:
            col = errors[dim].fillna("unknown").astype(str)
            for value, n in col.value_counts().items():
                jobs = errors.loc[col == value, "job_id"].dropna().nunique()
                out.append(
                    BlastRadiusRow(
                        dimension=dim, value=str(value), errors=int(n), share=n / total, jobs=int(jobs)
                    )
                )
    return out + _payload_rows(payload)


def blast_radius_from_counts(counts: pd.DataFrame, total: int, payload: pd.DataFrame) -> list[BlastRadiusRow]:
    """:func:`blast_radius_rows` from counts per (``dimension``, ``value``): ``n`` error rows, ``jobs``
    and ``first`` (the position of the value's first row, which orders ties as ``value_counts`` does)."""
    out: list[BlastRadiusRow] = []
    if total:
        for dim in DIMENSIONS:
            c = counts[counts["dimension"] == dim].sort_values("first", kind="stable")
            jobs = dict(zip(c["value"], c["jobs"], strict=True))
            order = pd.Series(c["n"].to_numpy(dtype="int64"), index=c["value"].astype(object).to_numpy())
            for value, n in order.sort_values(ascending=False).items():
                out.append(
                    BlastRadiusRow(
                        dimension=dim, value=str(value), errors=int(n), share=n / total, jobs=int(jobs[value])
                    )
                )
    return out + _payload_rows(payload)


def _payload_rows(payload: pd.DataFrame) -> list[BlastRadiusRow]:
    out: list[BlastRadiusRow] = []
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
