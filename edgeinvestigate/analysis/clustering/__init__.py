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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from edgeinvestigate.analysis._masking import MASKS, Mask, mask_typed
from edgeinvestigate.analysis._templates import cluster_id_for, display_template, stack_fingerprint
from edgeinvestigate.analysis.clustering._clusters import ASSIGN_COLUMNS, Clusters, Explanation
from edgeinvestigate.analysis.clustering._dlq_join import TYPE_TIME_WINDOW, join_dlq
from edgeinvestigate.analysis.clustering._grouping import EMPTY_TEXT, Grouping, group_texts
from edgeinvestigate.analysis.clustering._rows import (
    ERROR_LEVELS,
    FAILURE_LEVELS,
    add_context,
    coded_objects,
    error_rows,
    objects,
    utc_column,
)
from edgeinvestigate.analysis.clustering._stored import (
    STORED_NAME,
    bundle_rules,
    clusters_key,
    read_stored,
    store_clusters,
    why_computed,
)
from edgeinvestigate.analysis.clustering._table import CLUSTER_COLUMNS, cluster_table

if TYPE_CHECKING:
    from edgeinvestigate.analysis.rules import ClusterRules
    from edgeinvestigate.evidence.bundle import Evidence

#: the error rows' string columns (Arrow until the rows are assembled)
_STRING_COLUMNS = (
    "source",
    "invocation_id",
    "level",
    "text",
    "stack",
    "job_id",
    "job_type",
    "message_id",
    "script",
    "script_version",
    "outcome",
    "queue",
)

#: the columns among them with few distinct values
_REPEATED = ("source", "level", "stack", "job_type", "script", "script_version", "outcome", "queue")

__all__ = [
    "CLUSTER_COLUMNS",
    "ERROR_LEVELS",
    "FAILURE_LEVELS",
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
    """The clustering itself, in memory (what :func:`cluster` does when nothing is stored).

    The grouping kernel (DuckDB, which releases the GIL) runs in a thread while this one adds the
    invocation context and turns the columns into Python objects: on two cores they overlap."""
    cols = error_rows(ev, levels)
    text: pa.Array = cols["text"]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="grouping") as pool:
        pending = pool.submit(group_texts, text, masks)
        add_context(cols, ev)
        data: dict[str, Any] = {c: objects(cols[c]) for c in _STRING_COLUMNS if c not in _REPEATED}
        coded: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for c in _REPEATED:
            data[c], *codes = coded_objects(cols[c])
            coded[c] = (codes[0], codes[1])
        # stack fingerprints (once per distinct stack); rows without one join their template's stack
        stacks = pc.dictionary_encode(cols["stack"])
        fps = [stack_fingerprint(s) for s in stacks.dictionary.to_pylist()] + [""]
        scodes = pc.fill_null(stacks.indices, len(fps) - 1).to_numpy(zero_copy_only=False)
        grouping = pending.result()
    templates = np.asarray(grouping.templates, dtype=object)
    key_template = {k: str(templates[grouping.key_template[i]]) for i, k in enumerate(grouping.keys)}
    labels = np.asarray(grouping.labels, dtype=np.int64)
    fingerprint = _attach_unstacked(labels, templates, np.asarray(fps, dtype=object)[scodes])
    # the id and rule of each (template, fingerprint) pair, computed once per pair
    fcodes, fvalues = pd.factorize(fingerprint)
    width = max(1, len(fvalues))
    inverse, pairs = pd.factorize(labels * width + fcodes)
    tpl_of, fp_of = templates[pairs // width], np.asarray(fvalues, dtype=object)[pairs % width]
    ids = np.asarray([cluster_id_for(t, f) for t, f in zip(tpl_of, fp_of, strict=True)], dtype=object)
    why = [
        f"template {t!r}" + (f" + stack fingerprint {f}" if f else "")
        for t, f in zip(tpl_of, fp_of, strict=True)
    ]
    data["row"] = cols["row"]
    data["ts"] = utc_column(cols["ts"])
    data["invocation"] = cols["invocation"]
    data["norm_template"] = templates[labels]
    data["key"] = np.asarray(grouping.keys, dtype=object)[grouping.key_labels]
    data["fingerprint"] = fingerprint
    data["cluster_id"] = ids[inverse]
    data["rule"] = np.asarray(why, dtype=object)[inverse]
    data["display"] = _display_templates(labels, templates, text, masks)
    rows = pd.DataFrame(data, copy=False)  # copy=False: no consolidation of the object columns
    if rules is not None:
        rows = rules.apply(rows)
    else:  # the ids' codes, in order of first appearance, are known: no need to hash them again
        coded["cluster_id"] = (inverse, ids)

    dlq = join_dlq(ev.dlq, rows)
    table = cluster_table(rows, dlq, max_examples, coded)
    if rows.empty:
        rows = rows.assign(template=pd.Series(dtype=object))
    else:
        shown = dict(zip(table["cluster_id"], table["template"], strict=True))
        known = coded.get("cluster_id")
        ccodes, cids = known if known is not None else pd.factorize(rows["cluster_id"].to_numpy(dtype=object))
        rows["template"] = np.asarray([shown[c] for c in cids], dtype=object)[ccodes]
    assign = pd.DataFrame({c: rows[c].to_numpy() for c in ASSIGN_COLUMNS if c != "ts"}, copy=False)
    assign.insert(ASSIGN_COLUMNS.index("ts"), "ts", rows["ts"].reset_index(drop=True))
    key = clusters_key(rules, masks, levels, max_examples)
    return Clusters(table, assign, dlq, masks, rules, key_template, key=key)


def _attach_unstacked(labels: np.ndarray, templates: np.ndarray, fingerprint: np.ndarray) -> np.ndarray:
    """Rows without a stack join the most frequent stack cluster of the same template."""
    has = fingerprint != ""
    if not has.any() or has.all():
        return fingerprint
    counts = (
        pd.DataFrame({"norm_template": templates[labels[has]], "fingerprint": fingerprint[has]})
        .groupby(["norm_template", "fingerprint"])
        .size()
        .reset_index(name="n")
    )
    counts = counts.sort_values(["norm_template", "n", "fingerprint"], ascending=[True, False, True])
    top = counts.drop_duplicates("norm_template")
    best: dict[str, str] = dict(zip(top["norm_template"], top["fingerprint"], strict=True))
    per_label = np.array([best.get(str(t), "") for t in templates], dtype=object)
    out = fingerprint.copy()
    out[~has] = per_label[labels[~has]]
    return out


def _display_templates(
    labels: np.ndarray, templates: np.ndarray, text: pa.Array, masks: tuple[Mask, ...]
) -> np.ndarray:
    """The readable template of each row's template: the typed masking of its smallest raw text, with
    the slots the template step generalised shown as ``<*>``."""
    if not len(labels):
        return np.zeros(0, dtype=object)
    reps = pa.table({"l": labels, "t": text}).group_by("l").aggregate([("t", "min")])
    shown = np.full(len(templates), None, dtype=object)
    for label, rep in zip(reps.column("l").to_pylist(), reps.column("t_min").to_pylist(), strict=True):
        t = str(templates[label])
        shown[label] = display_template(t, mask_typed(EMPTY_TEXT if rep is None else rep, masks)[0])
    return shown[labels]
