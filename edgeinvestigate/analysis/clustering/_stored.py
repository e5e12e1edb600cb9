"""Clusters computed once and stored in the bundle, as derived frames (``derived/*.parquet``).

``collect`` and ``investigate`` cluster the evidence right after loading it and save the result with
the bundle (:func:`store_clusters`); ``clusters``, ``analyze``, ``report``, the notebooks and
``replay plan`` then read it (:func:`read_stored`) instead of clustering again. The frames:

==================  ===========================================================================
``clusters``        the cluster table (``Clusters.table``, :data:`CLUSTER_COLUMNS`)
``cluster_rows``    one row per error row (``Clusters.assign``): ``source`` (exception | log | dlq)
                    and ``row`` (position in that frame of the bundle), ``cluster_id``, the text,
                    template and rule, job and invocation fields
``cluster_dlq``     per DLQ message (``row``): ``message_id``, ``cluster_id``, ``cluster_join``
``cluster_keys``    the masked key of every distinct text and its normalised template
==================  ===========================================================================

They are keyed (:func:`clusters_key`) by a digest of the masks, the merge/split rules, the levels
and number of examples, and the clustering code itself: with other rules, or on a bundle whose
clusters another version computed (or an older release that stored none), :func:`cluster` computes
in memory and says why (``Clusters.note``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd

from edgeinvestigate.analysis._masking import Mask
from edgeinvestigate.analysis.clustering._clusters import Clusters
from edgeinvestigate.analysis.clustering._stored_rows import StoredRows
from edgeinvestigate.analysis.clustering._table import CLUSTER_COLUMNS

if TYPE_CHECKING:
    from edgeinvestigate.analysis.rules import ClusterRules
    from edgeinvestigate.evidence.bundle import Evidence

__all__ = [
    "STORED_NAME",
    "STORE_FORMAT",
    "bundle_rules",
    "clusters_key",
    "code_version",
    "read_stored",
    "rules_of",
    "store_clusters",
    "why_computed",
]

#: the name of the derived frame set
STORED_NAME: Final = "clusters"
STORE_FORMAT: Final = "edgeinvestigate-clusters/1"
_LIST_COLUMNS: Final = (
    "job_types",
    "scripts",
    "script_versions",
    "outcomes",
    "examples",
    "example_events",
    "sources",
)
#: the code whose changes change clusters: its digest is part of the key
_CODE: Final = (
    "analysis/clustering",
    "analysis/_masking.py",
    "analysis/_templates.py",
    "analysis/_columns.py",
    "analysis/triage.py",
    "analysis/rules.py",
    "analysis/deploys.py",
)


@cache
def code_version() -> str:
    """A digest of the clustering code (this package's files that decide what a cluster is)."""
    root = Path(__file__).resolve().parents[2]
    h = hashlib.sha256()
    for part in _CODE:
        p = root / part
        for f in sorted(p.rglob("*.py")) if p.is_dir() else [p]:
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _rules_json(rules: ClusterRules | None) -> dict[str, Any] | None:
    if rules is None or not (rules.split or rules.merge):
        return None
    dumped: dict[str, Any] = rules.model_dump(mode="json")
    return dumped


def clusters_key(
    rules: ClusterRules | None, masks: tuple[Mask, ...], levels: Sequence[str], max_examples: int
) -> str:
    """The key of clusters computed with these settings by this code."""
    settings = {
        "format": STORE_FORMAT,
        "code": code_version(),
        "masks": [dataclasses.astuple(m) for m in masks],
        "rules": _rules_json(rules),
        "levels": list(levels),
        "max_examples": max_examples,
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def store_clusters(ev: Evidence, clusters: Clusters) -> Evidence:
    """A copy of ``ev`` that holds ``clusters`` as derived frames, saved with it by ``ev.save()``.

    ``ev`` must be in storage order (``ev.in_storage_order()``) and ``clusters`` computed on it."""
    dlq = clusters.dlq
    frames = {
        "clusters": clusters.table,
        "cluster_rows": clusters.rows_table(),
        "cluster_dlq": pd.DataFrame(
            {
                "row": np.arange(len(dlq), dtype=np.int64),
                "message_id": dlq["message_id"].astype(object).where(dlq["message_id"].notna(), None)
                if len(dlq)
                else pd.Series(dtype=object),
                "cluster_id": dlq["cluster_id"].to_numpy(dtype=object),
                "cluster_join": dlq["cluster_join"].to_numpy(dtype=object),
            }
        ),
        "cluster_keys": pd.DataFrame(
            {
                "key": pd.Series(list(clusters.key_template), dtype=object),
                "norm_template": pd.Series(list(clusters.key_template.values()), dtype=object),
            }
        ),
    }
    info = {
        "format": STORE_FORMAT,
        "code": code_version(),
        "rules": _rules_json(clusters.rules),
        "rules_unused": clusters.rules.unused() if clusters.rules is not None else [],
        "clusters": len(clusters.table),
        "error_rows": len(clusters.rows),
    }
    return ev.with_derived(STORED_NAME, frames, key=clusters.key, info=info)


def bundle_rules(ev: Evidence) -> ClusterRules | None:
    """The rules the bundle's clusters were stored with (``None`` when none, or nothing stored)."""
    from edgeinvestigate.analysis.rules import ClusterRules

    d = ev.derived(STORED_NAME)
    data = d.info.get("rules") if d is not None else None
    if not isinstance(data, dict):
        return None
    try:
        return ClusterRules.model_validate(data)
    except ValueError:
        return None


def rules_of(ev: Evidence, rules: ClusterRules | str | Path | None) -> ClusterRules | None:
    """The rules to cluster ``ev`` with: ``rules`` (a rules file is loaded); ``None`` means the
    rules its stored clusters were made with (:func:`bundle_rules`)."""
    from edgeinvestigate.analysis.rules import ClusterRules  # pydantic: imported when clustering runs

    if rules is None:
        return bundle_rules(ev)
    return rules if isinstance(rules, ClusterRules) else ClusterRules.load(rules)


def why_computed(ev: Evidence, key: str) -> str:
    """Why :func:`cluster` computed in memory, for a note (``""``: nothing to say, e.g. evidence
    loaded in memory, or a time window of a bundle)."""
    d = ev.derived(STORED_NAME)
    if d is not None and d.key != key:
        return (
            "clusters computed in memory: the bundle's stored clusters were made with other rules, "
            "settings or another version of edgeinvestigate"
        )
    if d is None and ev.bundle_path is not None:
        return (
            "clusters computed in memory: this bundle holds no stored clusters (an older release "
            "wrote it, or it was saved without them); `edgeinvestigate collect` stores them"
        )
    return ""


#: columns of ``cluster_rows`` with few distinct values: read dictionary-encoded, one object each
_REPEATED: Final = (
    "source",
    "level",
    "job_type",
    "script",
    "script_version",
    "outcome",
    "queue",
    "stack",
    "key",
    "norm_template",
    "fingerprint",
    "template",
    "cluster_id",
    "rule",
)


def _objects(s: pd.Series) -> np.ndarray:
    return s.to_numpy(dtype=object)


def _utc_ns(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s, utc=True).dt.as_unit("ns")


def read_stored(
    ev: Evidence, key: str, rules: ClusterRules | None, masks: tuple[Mask, ...]
) -> Clusters | None:
    """The stored clusters of ``ev`` when they were computed with ``key``, else ``None``."""
    d = ev.derived(STORED_NAME)
    if d is None or d.key != key:
        return None
    cd = d.frame("cluster_dlq")
    if len(cd) != len(ev.dlq):
        return None
    table = d.frame("clusters")
    table = pd.DataFrame(
        {
            c: (
                [list(v) for v in table[c]]
                if c in _LIST_COLUMNS
                else _utc_ns(table[c])
                if c in ("first_seen", "last_seen")
                else table[c].astype(np.int64)
                if c in ("count", "n_dlq_messages", "n_dlq_jobs", "n_invocations")
                else table[c].astype(float)
                if c == "share"
                else _objects(table[c])
            )
            for c in CLUSTER_COLUMNS
        }
    )
    for c in _LIST_COLUMNS:
        table[c] = table[c].astype(object)
    rows = StoredRows(d, "cluster_rows", _REPEATED)  # read when asked; a pandas frame once `assign` is used
    dlq = ev.dlq.copy()
    dlq["cluster_id"] = _objects(cd["cluster_id"])
    dlq["cluster_join"] = _objects(cd["cluster_join"])
    keys = d.frame("cluster_keys")
    key_template = dict(zip(keys["key"].astype(str), keys["norm_template"].astype(str), strict=True))
    if rules is not None:
        unused = set(d.info.get("rules_unused") or [])
        names = [f"split[{i}]" for i in range(len(rules.split))] + [
            f"merge[{i}]" for i in range(len(rules.merge))
        ]
        rules._used = {n for n in names if n not in unused}
    return Clusters(table, rows, dlq, masks, rules, key_template, key=key, origin="stored")
