"""The clustering itself, in memory: error rows -> grouping kernel -> stack fingerprints -> thrown and
logged errors joined -> ids, rules, readable templates -> DLQ joins -> the cluster table.

Columns stay Arrow arrays and integer codes (:mod:`._arrow`), and the error rows of the result are an
Arrow table (``Clusters.rows``): a template, a fingerprint, a cluster id or a rule is computed once
per distinct value and shared by its rows. The grouping kernel (DuckDB and Arrow, which release the
GIL) runs in a thread while this one joins the invocation context: on two cores they overlap (up to
:data:`OVERLAP_ROWS` error rows; more run one after the other, see :func:`prepare`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from edgeinvestigate.analysis._masking import Mask, mask_typed
from edgeinvestigate.analysis._templates import cluster_id_for, display_template, stack_fingerprint
from edgeinvestigate.analysis.clustering._arrow import (
    NAT,
    Coded,
    Objects,
    dictionary_of,
    objects,
    timestamps,
)
from edgeinvestigate.analysis.clustering._clusters import ASSIGN_COLUMNS, Clusters, assign_frame
from edgeinvestigate.analysis.clustering._context import Context, invocation_context
from edgeinvestigate.analysis.clustering._dlq_join import join_dlq
from edgeinvestigate.analysis.clustering._grouping import Grouping, group_texts
from edgeinvestigate.analysis.clustering._join import Candidates, candidates, join_thrown_and_logged
from edgeinvestigate.analysis.clustering._rows import (
    SOURCES,
    ErrorRows,
    ErrorTexts,
    error_rows,
    error_texts,
    frame_rows,
)
from edgeinvestigate.analysis.clustering._stored import clusters_key
from edgeinvestigate.analysis.clustering._structured import structured_keys
from edgeinvestigate.analysis.clustering._table import TableRows, cluster_table

if TYPE_CHECKING:
    from edgeinvestigate.analysis.rules import ClusterRules
    from edgeinvestigate.evidence.bundle import Evidence

__all__ = ["OVERLAP_ROWS", "compute_clusters", "finish", "prepare"]

#: up to this many error rows the grouping kernel runs in a thread beside the rest (see :func:`prepare`)
OVERLAP_ROWS: Final = 2_000_000

#: the columns of the error rows the DLQ join reads
_DLQ_JOIN: Final = ("source", "row", "ts", "level", "text", "job_id", "job_type", "message_id", "cluster_id")


def _kernel_input(rows: ErrorTexts, masks: tuple[Mask, ...]) -> tuple[pa.Array, Any, Any]:
    """The texts the kernel groups: a structured line's key instead of its text (see
    :mod:`._structured`), with the flags and event names that say so."""
    if not rows.structured:
        return rows.text, None, None
    at = np.fromiter(rows.structured, dtype=np.int64, count=len(rows.structured))
    shapes = list(rows.structured.values())
    flags = np.zeros(len(rows), dtype=bool)
    flags[at] = True
    texts = pc.replace_with_mask(rows.text, pa.array(flags), pa.array(structured_keys(shapes, masks)))
    events: list[str | None] = [None] * len(rows)
    for i, s in zip(at.tolist(), shapes, strict=True):
        events[i] = s.event or ""
    return texts, flags, events


def _fingerprints(stacks: Coded) -> tuple[np.ndarray, list[str]]:
    """Each row's stack fingerprint (a code into the distinct fingerprints, ``""`` first), computed
    once per distinct stack."""
    fp_values: dict[str, int] = {"": 0}
    per_stack = np.asarray(
        [
            fp_values.setdefault(stack_fingerprint(s), len(fp_values)) if s is not None else 0
            for s in stacks.values
        ],
        dtype=np.int64,
    )
    return per_stack[stacks.codes], list(fp_values)


def _attach_unstacked(labels: np.ndarray, fps: np.ndarray, fp_values: list[str]) -> np.ndarray:
    """Rows without a stack join the most frequent stack cluster of the same template (ties: the
    smallest fingerprint)."""
    has = fps != 0
    if not has.any() or has.all():
        return fps
    width = len(fp_values)
    pairs, counts = np.unique(labels[has] * width + fps[has], return_counts=True)
    best: dict[int, tuple[int, str, int]] = {}
    for pair, n in zip(pairs.tolist(), counts.tolist(), strict=True):
        label, fp = divmod(pair, width)
        key = (-n, fp_values[fp], fp)
        if label not in best or key < best[label]:
            best[label] = key
    per_label = np.zeros(int(labels.max()) + 1, dtype=np.int64)
    for label, (_n, _fp, fp) in best.items():
        per_label[label] = fp
    out = fps.copy()
    out[~has] = per_label[labels[~has]]
    return out


def _display(
    labels: np.ndarray,
    joined_from: np.ndarray,
    rows: ErrorRows,
    templates: list[str],
    masks: tuple[Mask, ...],
) -> np.ndarray:
    """The readable template of each row's template: the typed masking of its smallest raw text (a
    structured line: its typed cluster text; rows joined from a logged error: only when the template
    has no other rows; the first such row when several hold it), with the slots the template step
    generalised shown as ``<*>``."""
    shown = np.full(len(templates), None, dtype=object)
    if not len(labels):
        return shown[labels]
    own = joined_from < 0
    has_own = np.bincount(labels[own], minlength=len(templates)) > 0
    cand = own | ~has_own[labels]
    pos = np.flatnonzero(cand)
    text = rows.text if len(pos) == len(labels) else rows.text.take(pa.array(pos))
    mins = pa.table({"l": labels[pos], "t": text}).group_by("l").aggregate([("t", "min")])
    smallest: list[str | None] = [None] * len(templates)
    for label, value in zip(mins.column("l").to_pylist(), mins.column("t_min").to_pylist(), strict=True):
        smallest[label] = value
    first = _first_holders(labels, pos, text, rows, smallest)
    for label in mins.column("l").to_pylist():
        shape = rows.structured.get(int(first[label]))
        typed = shape.typed(masks) if shape is not None else mask_typed(str(smallest[label]), masks)[0]
        shown[label] = display_template(templates[label], typed)
    return shown[labels]


def _first_holders(
    labels: np.ndarray, pos: np.ndarray, text: pa.Array, rows: ErrorRows, smallest: list[str | None]
) -> np.ndarray:
    """Per template that holds a structured line: the first row of ``pos`` (``text`` are theirs) that
    holds its smallest text (a template whose texts are all missing: its first row without one);
    ``-1`` for the others, whose display does not depend on the row."""
    first = np.full(len(smallest), -1, dtype=np.int64)
    if not rows.structured:
        return first
    need = np.zeros(len(smallest), dtype=bool)
    need[labels[np.fromiter(rows.structured, dtype=np.int64, count=len(rows.structured))]] = True
    sub = np.flatnonzero(need[labels[pos]])
    if len(sub) < len(pos):
        pos, text = pos[sub], text.take(pa.array(sub))
    # the rows that hold their template's smallest text: by a hash lookup of each text among them
    distinct = pc.unique(pa.array([v for v, ok in zip(smallest, need, strict=True) if ok], pa.string()))
    distinct = distinct.drop_null()
    at = pc.fill_null(pc.index_in(text, value_set=distinct), -1).to_numpy(zero_copy_only=False)
    lookup = {v: i for i, v in enumerate(distinct.to_pylist())}
    want = np.asarray([lookup.get(v, -2) if v is not None else -1 for v in smallest], dtype=np.int64)
    reps = pos[at == want[labels[pos]]]
    first[labels[reps[::-1]]] = reps[::-1]
    return first


def _ids_and_rules(
    labels: np.ndarray, fps: np.ndarray, joined_from: np.ndarray, templates: list[str], fp_values: list[str]
) -> tuple[np.ndarray, np.ndarray, Coded]:
    """Per row: its cluster (a code into the distinct ids, in order of first appearance), and its
    rule; each computed once per distinct (template, fingerprint, joined from)."""
    width_j = len(templates) + 1
    triple = (labels * len(fp_values) + fps) * width_j + (joined_from + 1)
    tcodes, uniq = pd.factorize(triple)
    ids: dict[str, int] = {}
    triple_cluster = np.zeros(len(uniq), dtype=np.int64)
    rules = np.empty(len(uniq), dtype=object)
    for k, value in enumerate(uniq.tolist()):
        pair, j = divmod(value, width_j)
        label, fp = divmod(pair, len(fp_values))
        t, f = templates[label], fp_values[fp]
        triple_cluster[k] = ids.setdefault(cluster_id_for(t, f), len(ids))
        rules[k] = (
            f"template {t!r}"
            + (f" + stack fingerprint {f}" if f else "")
            + (f" (logged as {templates[j - 1]!r} by the invocations that threw it)" if j else "")
        )
    return triple_cluster[tcodes], np.asarray(list(ids), dtype=object), Coded(tcodes, rules)


@dataclass
class _Prepared:
    """What does not need the templates, computed while the kernel runs: the rows and their context,
    stack fingerprints, the thrown/logged pair candidates, the rows by time, their frame rows."""

    rows: ErrorRows
    ctx: Context
    fps: np.ndarray
    fp_values: list[str]
    pairs: Candidates
    by_time: np.ndarray
    frame_row: np.ndarray


def _prepare(
    first: ErrorTexts, ev: Evidence, let_go: Callable[[str], None] | None, jobs: pa.Table | None
) -> _Prepared:
    rows = error_rows(first, ev, None if let_go is None else partial(let_go, "rows"))
    ctx = invocation_context(rows, ev, jobs)
    # the rows' own job columns are read by the context only, which holds them filled in
    rows.job_id, rows.job_type = ctx.job_id, ctx.job_type
    if let_go is not None:
        let_go("context")
    fps, fp_values = _fingerprints(rows.stack)
    pairs = candidates(rows.source, ctx.invocation, rows.text)
    by_time = np.argsort(np.where(rows.ts == NAT, np.iinfo(np.int64).max, rows.ts), kind="stable")
    return _Prepared(rows, ctx, fps, fp_values, pairs, by_time, frame_rows(rows, ev.logs))


def _coded(c: Coded) -> pa.DictionaryArray:
    return dictionary_of(c.codes, c.values)


def _rows_table(prep: _Prepared, computed: dict[str, pa.Array]) -> pa.Table:
    """The error rows (:data:`ASSIGN_COLUMNS`) as an Arrow table: columns with few distinct values
    dictionary-encoded, the others as their frames hold them; ``computed``: the columns the
    clustering made (source, templates, ids, rules)."""
    rows, ctx = prep.rows, prep.ctx
    cols: dict[str, pa.Array] = {
        "row": pa.array(prep.frame_row, pa.int64()),
        "invocation_id": rows.invocation_id,
        "ts": timestamps(rows.ts),
        "level": _coded(rows.level),
        "job_id": ctx.job_id,
        "job_type": _coded(ctx.job_type),
        "message_id": rows.message_id,
        "script": _coded(ctx.script),
        "script_version": _coded(ctx.script_version),
        "outcome": _coded(ctx.outcome),
        "queue": _coded(ctx.queue),
        "request_id": ctx.request_id,
        "ray_id": ctx.ray_id,
        "text": rows.text,
        "stack": _coded(rows.stack),
        **computed,
    }
    return pa.table({c: cols[c] for c in ASSIGN_COLUMNS})


def compute_clusters(
    ev: Evidence,
    *,
    rules: ClusterRules | None,
    levels: Sequence[str],
    max_examples: int,
    masks: tuple[Mask, ...],
) -> Clusters:
    """The clustering itself, in memory (what :func:`cluster` does when nothing is stored)."""
    prep, grouping = prepare(error_texts(ev, levels), ev, masks)
    return finish(ev.dlq, prep, grouping, rules, levels, max_examples, masks)


def prepare(
    first: ErrorTexts,
    ev: Evidence,
    masks: tuple[Mask, ...],
    let_go: Callable[[str], None] | None = None,
    jobs: pa.Table | None = None,
) -> tuple[_Prepared, Grouping]:
    """The error rows ``first`` of ``ev`` grouped by the kernel, and what else does not need the
    templates (:class:`_Prepared`): all that reads the frames of ``ev``. Up to
    :data:`OVERLAP_ROWS` rows, the kernel runs in a thread beside the rest (on two cores they
    overlap); more run one after the other, so that their memory does not add up. ``let_go`` is
    called with ``"rows"`` once the rows' own columns are taken, before they are joined (their
    invocation context reads only ``invocations`` and the ``invocation_id`` and text columns of
    ``logs``, and their job columns unless ``jobs``, the jobs of the invocations, are given: see
    :mod:`._context`), and with ``"context"`` once the context is joined (what is left reads only
    the index of ``logs``)."""
    texts, premasked, events = _kernel_input(first, masks)
    if len(first) > OVERLAP_ROWS:
        grouping = group_texts(texts, masks, premasked=premasked, partitions=events)
        del texts, premasked, events
        return _prepare(first, ev, let_go, jobs), grouping
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="grouping") as pool:
        pending = pool.submit(group_texts, texts, masks, premasked=premasked, partitions=events)
        prep = _prepare(first, ev, let_go, jobs)
        grouping = pending.result()
    return prep, grouping


def finish(
    dlq_frame: pd.DataFrame,
    prep: _Prepared,
    grouping: Grouping,
    rules: ClusterRules | None,
    levels: Sequence[str],
    max_examples: int,
    masks: tuple[Mask, ...],
) -> Clusters:
    """From the kernel's grouping to the result (see :func:`compute_clusters`); ``dlq_frame``: the
    DLQ frame of the evidence (the only frame this reads)."""
    rows, ctx, fp_values = prep.rows, prep.ctx, prep.fp_values
    templates = list(grouping.templates)
    labels = np.asarray(grouping.labels, dtype=np.int64)
    fps = _attach_unstacked(labels, prep.fps, fp_values)
    joined = join_thrown_and_logged(prep.pairs, rows.source, rows.text, labels, fps, templates, fp_values)
    key_template = {
        k: joined.templates.get(t, t)
        for k, t in zip(
            grouping.keys, np.asarray(templates, dtype=object)[grouping.key_template], strict=True
        )
    }
    codes, ids, rule = _ids_and_rules(
        joined.labels, joined.fingerprints, joined.joined_from, templates, fp_values
    )
    tpl = np.asarray(templates, dtype=object)
    display = _display(joined.labels, joined.joined_from, rows, templates, masks)
    if rules is not None:
        frame = pd.DataFrame(
            {
                "text": objects(rows.text),
                "norm_template": tpl[joined.labels],
                "cluster_id": ids[codes],
                "rule": rule.objects(),
                "display": display,
            },
            copy=False,
        )
        frame = rules.apply(frame)
        display = frame["display"].to_numpy()
        codes, uniq = pd.factorize(frame["cluster_id"].to_numpy())
        ids = np.asarray(uniq, dtype=object)
        rcodes, runiq = pd.factorize(frame["rule"].to_numpy())
        rule = Coded(rcodes, np.asarray(runiq, dtype=object))
    source = Coded(rows.source.astype(np.int64), np.asarray(SOURCES, dtype=object))
    computed = {
        "source": _coded(source),
        "key": dictionary_of(grouping.key_labels, grouping.keys),
        "norm_template": dictionary_of(joined.labels, tpl),
        "fingerprint": dictionary_of(joined.fingerprints, fp_values),
        "cluster_id": dictionary_of(codes, ids),
        "rule": _coded(rule),
    }
    table_rows = _rows_table(prep, {**computed, "template": pa.nulls(len(codes), pa.string())})
    dlq = join_dlq(dlq_frame, assign_frame(table_rows, _DLQ_JOIN) if len(dlq_frame) else pd.DataFrame())
    table = cluster_table(
        TableRows(
            codes=codes,
            ids=ids,
            source=source,
            ts=rows.ts,
            by_time=prep.by_time,
            texts=Objects(rows.text),
            text=rows.text,
            display=display,
            fingerprint=Objects(computed["fingerprint"]),
            rule=Objects(computed["rule"]),
            invocation=ctx.invocation,
            invocation_id=Objects(rows.invocation_id),
            job_type=ctx.job_type,
            script=ctx.script,
            script_version=ctx.script_version,
            outcome=ctx.outcome,
            request_id=Objects(ctx.request_id),
            ray_id=Objects(ctx.ray_id),
        ),
        dlq,
        max_examples,
    )
    key = clusters_key(rules, masks, levels, max_examples)
    if not len(codes):  # no error rows: the computed columns of an empty frame are float64 (as ever)
        empty = assign_frame(table_rows)
        for c in ("key", "norm_template", "fingerprint", "cluster_id", "rule"):
            empty[c] = np.zeros(0)
        return Clusters(table, empty, dlq, masks, rules, key_template, key=key)
    shown = dict(zip(table["cluster_id"], table["template"], strict=True))
    template = dictionary_of(codes, np.asarray([shown[c] for c in ids], dtype=object))
    table_rows = table_rows.set_column(ASSIGN_COLUMNS.index("template"), "template", template)
    return Clusters(table, table_rows, dlq, masks, rules, key_template, key=key)
