"""Error clustering: group thousands of error texts into a handful of named problems with stable ids.

>>> import edgeinvestigate as ei
>>> clusters = ei.cluster(ev)                           # doctest: +SKIP
>>> clusters.table[["cluster_id", "template", "count", "kind"]]   # doctest: +SKIP
>>> print(clusters.explain("msg-0042"))                 # doctest: +SKIP

What is clustered (one *error row* each):

* every exception (``name: message``; its stack adds a fingerprint of the in-app frames),
* every ``error`` and ``warn`` log line, and any log line whose structured JSON carries an
  ``error`` field (that field is used instead of the free text: ``{"event": "job_failed",
  "error": "..."}`` clusters by its ``error``),
* the ``error`` text of DLQ messages that were sent as ``{original, error}`` envelopes.

How (see :mod:`._masking` and :mod:`._templates`): mask the variable
parts of the *distinct* texts in one vectorised pass, deduplicate, run the template step on the
distinct masked strings, map back. The ``cluster_id`` is a hash of the normalised template (plus the
stack fingerprint), so it is identical across runs, machines, orderings and bundles. Log lines and
DLQ errors without a stack join the stack cluster of the same template (the most frequent one when
the same template is thrown from several places).

Which job an error row belongs to: the job id the line itself carries; for a line without one
(and for exceptions), the job of its invocation only when that invocation logged exactly one job
id. A queue batch invocation processes several jobs, so its job-less lines are not attributed to
any of them (guessing the first would join DLQ messages to errors of other jobs).

DLQ messages get a ``cluster_id`` and say how it was found (``cluster_join``):
``envelope_error`` (their own error text), ``job_id`` (the *last* error logged for the same job id
or message id before the message was dead-lettered, i.e. the failure that exhausted its retries;
the job's latest error when none is that early), ``type_time`` (the nearest error of the same job
type within :data:`TYPE_TIME_WINDOW`, a failure (exception or error line) before a warn line), or
``none``. The cluster table counts, per cluster, the DLQ
messages (``n_dlq_messages``) and the distinct job ids among them (``n_dlq_jobs``: equal to
``n_dlq_messages`` unless a job was dead-lettered more than once).

Computed once: ``collect`` and ``investigate`` store the clusters in the bundle they write
(:mod:`._stored`), keyed by a digest of the masks, the rules, the settings and this code.
:func:`cluster` reads them when the key matches, and computes in memory otherwise (other rules, a
bundle of an older release); ``Clusters.origin`` says which, ``Clusters.note`` why it computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from edgeinvestigate.analysis._masking import MASKS, Mask, mask_typed
from edgeinvestigate.analysis._templates import cluster_id_for, display_template, stack_fingerprint
from edgeinvestigate.analysis.clustering._clusters import ASSIGN_COLUMNS, Clusters, Explanation
from edgeinvestigate.analysis.clustering._dlq_join import TYPE_TIME_WINDOW, join_dlq
from edgeinvestigate.analysis.clustering._grouping import Grouping, group_texts
from edgeinvestigate.analysis.clustering._join import JOIN_SHARE, join_thrown_and_logged
from edgeinvestigate.analysis.clustering._rows import (
    ERROR_LEVELS,
    FAILURE_LEVELS,
    error_rows,
    invocation_context,
)
from edgeinvestigate.analysis.clustering._stored import (
    STORED_NAME,
    bundle_rules,
    clusters_key,
    read_stored,
    store_clusters,
    why_computed,
)
from edgeinvestigate.analysis.clustering._structured import structured_keys
from edgeinvestigate.analysis.clustering._table import CLUSTER_COLUMNS, cluster_table

if TYPE_CHECKING:
    from edgeinvestigate.analysis.rules import ClusterRules
    from edgeinvestigate.evidence.bundle import Evidence

__all__ = [
    "CLUSTER_COLUMNS",
    "ERROR_LEVELS",
    "FAILURE_LEVELS",
    "JOIN_SHARE",
    "STORED_NAME",
    "TYPE_TIME_WINDOW",
    "Clusters",
    "Explanation",
    "Grouping",
    "cluster",
    "group_texts",
    "store_clusters",
]


def cluster(
    ev: Evidence,
    *,
    rules: ClusterRules | str | Path | None = None,
    levels: Sequence[str] = ERROR_LEVELS,
    max_examples: int = 3,
    redact: bool = False,
    masks: tuple[Mask, ...] = MASKS,
    stored: bool = True,
) -> Clusters:
    """Cluster the errors of an evidence bundle (see the module docs for what and how).

    ``rules`` is a :class:`~edgeinvestigate.analysis.rules.ClusterRules` or the path of a rules file
    (TOML or JSON) that merges or splits clusters; ``None`` means the rules the bundle's clusters
    were stored with (none for a bundle collected without ``--rules``; pass ``ClusterRules()`` for
    none at all). ``redact=True`` masks the examples. ``stored=False`` always computes (the
    stored clusters of a bundle are exactly what this computes for the same key).
    """
    from edgeinvestigate.analysis.rules import ClusterRules  # pydantic: imported when clustering runs

    if rules is None:
        rules = bundle_rules(ev)
    elif not isinstance(rules, ClusterRules):
        rules = ClusterRules.load(rules)
    key = clusters_key(rules, masks, levels, max_examples)
    result = read_stored(ev, key, rules, masks) if stored else None
    if result is None:
        result = compute_clusters(ev, rules=rules, levels=levels, max_examples=max_examples, masks=masks)
        result.note = why_computed(ev, key) if stored else ""
    return result.redact() if redact else result


def compute_clusters(
    ev: Evidence,
    *,
    rules: ClusterRules | None,
    levels: Sequence[str],
    max_examples: int,
    masks: tuple[Mask, ...],
) -> Clusters:
    """The clustering itself, in memory (what :func:`cluster` does when nothing is stored)."""
    rows = error_rows(ev, levels)
    ctx = invocation_context(ev)
    rows = rows.merge(ctx, on="invocation_id", how="left") if len(rows) else rows
    for col in (
        "script",
        "script_version",
        "outcome",
        "queue",
        "request_id",
        "ray_id",
        "inv_job_type",
        "inv_job_id",
    ):
        if col not in rows:
            rows[col] = None
    rows["job_type"] = rows["job_type"].where(rows["job_type"].notna(), rows["inv_job_type"])
    rows["job_id"] = rows["job_id"].where(rows["job_id"].notna(), rows["inv_job_id"])
    rows = rows.drop(columns=["inv_job_type", "inv_job_id"])

    is_structured = rows["structured"].notna().to_numpy(dtype=bool)
    texts = rows["text"].astype(object)
    events = None
    if is_structured.any():  # structured lines are grouped by their meaning (see ._structured)
        texts = texts.copy()
        texts[is_structured] = structured_keys(list(rows["structured"][is_structured]), masks)
        events = [s.event or "" if s is not None else None for s in rows["structured"]]
    grouping = group_texts(texts, masks, premasked=is_structured, partitions=events)
    key_template = {k: grouping.templates[grouping.key_template[i]] for i, k in enumerate(grouping.keys)}
    rows["norm_template"] = [grouping.templates[i] for i in grouping.labels]
    rows["key"] = [grouping.keys[i] for i in grouping.key_labels]

    # stack fingerprints (once per distinct stack)
    stacks = rows["stack"]
    fp_of = {s: stack_fingerprint(s) for s in pd.unique(stacks.dropna())}
    rows["fingerprint"] = [fp_of.get(s, "") if isinstance(s, str) else "" for s in stacks]
    _attach_unstacked(rows)
    joined = join_thrown_and_logged(rows)
    key_template = {k: joined.get(t, t) for k, t in key_template.items()}
    pairs = list(zip(rows["norm_template"], rows["fingerprint"], strict=True))
    id_of = {p: cluster_id_for(*p) for p in set(pairs)}  # hash each (template, stack) once
    rows["cluster_id"] = [id_of[p] for p in pairs]
    rows["rule"] = [
        f"template {t!r}"
        + (f" + stack fingerprint {f}" if f else "")
        + (f" (logged as {j!r} by the invocations that threw it)" if isinstance(j, str) else "")
        for (t, f), j in zip(pairs, rows["joined_from"], strict=True)
    ]
    rows["display"] = _display_templates(rows, masks)
    if rules is not None:
        rows = rules.apply(rows)

    dlq = join_dlq(ev.dlq, rows)
    table = cluster_table(rows, dlq, max_examples)
    if rows.empty:
        rows = rows.assign(template=pd.Series(dtype=object))
    else:
        tpl = dict(zip(table["cluster_id"], table["template"], strict=True))
        rows["template"] = rows["cluster_id"].map(tpl)
    assign = rows[list(ASSIGN_COLUMNS)].reset_index(drop=True)
    assign["ts"] = pd.to_datetime(assign["ts"], utc=True).dt.as_unit("ns")  # as stored clusters read back
    key = clusters_key(rules, masks, levels, max_examples)
    return Clusters(table, assign, dlq, masks, rules, key_template, key=key)


def _attach_unstacked(rows: pd.DataFrame) -> None:
    """Rows without a stack join the most frequent stack cluster of the same template."""
    if rows.empty:
        return
    with_fp = rows[rows["fingerprint"] != ""]
    if with_fp.empty:
        return
    counts = with_fp.groupby(["norm_template", "fingerprint"]).size().reset_index(name="n")
    counts = counts.sort_values(["norm_template", "n", "fingerprint"], ascending=[True, False, True])
    best = counts.drop_duplicates("norm_template").set_index("norm_template")["fingerprint"]
    no_fp = rows["fingerprint"] == ""
    rows.loc[no_fp, "fingerprint"] = rows.loc[no_fp, "norm_template"].map(best).fillna("")


def _display_templates(rows: pd.DataFrame, masks: tuple[Mask, ...]) -> list[str]:
    """The readable template of each row's (template, fingerprint) group: the typed masking of its
    smallest raw text (a structured line: its typed cluster text; rows joined from a logged error:
    only when the template has no other rows), with the slots the template step generalised shown
    as ``<*>``."""
    if rows.empty:
        return []
    own = rows["joined_from"].isna()
    reps = (
        rows.assign(_joined=~own)
        .sort_values(["norm_template", "_joined", "text"], kind="stable")
        .drop_duplicates("norm_template")
    )
    shown = {}
    for t, text, shape in zip(reps["norm_template"], reps["text"], reps["structured"], strict=True):
        typed = shape.typed(masks) if shape is not None else mask_typed(str(text), masks)[0]
        shown[str(t)] = display_template(str(t), typed)
    return [shown[t] for t in rows["norm_template"]]
