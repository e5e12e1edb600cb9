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

from edgeinvestigate.analysis._masking import MASKS, Mask
from edgeinvestigate.analysis.clustering._clusters import Clusters, Explanation
from edgeinvestigate.analysis.clustering._compute import compute_clusters
from edgeinvestigate.analysis.clustering._dlq_join import TYPE_TIME_WINDOW
from edgeinvestigate.analysis.clustering._grouping import Grouping, group_texts
from edgeinvestigate.analysis.clustering._join import JOIN_SHARE
from edgeinvestigate.analysis.clustering._rows import ERROR_LEVELS, FAILURE_LEVELS
from edgeinvestigate.analysis.clustering._stored import (
    STORED_NAME,
    clusters_key,
    read_stored,
    rules_of,
    store_clusters,
    why_computed,
)
from edgeinvestigate.analysis.clustering._table import CLUSTER_COLUMNS

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
    rules = rules_of(ev, rules)
    key = clusters_key(rules, masks, levels, max_examples)
    result = read_stored(ev, key, rules, masks) if stored else None
    if result is None:
        result = compute_clusters(ev, rules=rules, levels=levels, max_examples=max_examples, masks=masks)
        result.note = why_computed(ev, key) if stored else ""
    return result.redact() if redact else result
