"""The cluster table: one row per cluster (:data:`CLUSTER_COLUMNS`), most frequent first.

Built with group codes and numpy (no per-cluster frames): the rows are factorised by cluster once,
and every column is a bincount, a min/max, or a handful of distinct (cluster, value) pairs.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import pandas as pd

from edgeinvestigate.analysis import triage

__all__ = ["CLUSTER_COLUMNS", "cluster_table"]

#: the columns of ``Clusters.table``, in order
CLUSTER_COLUMNS: Final = (
    "cluster_id",
    "template",
    "count",
    "share",
    "first_seen",
    "last_seen",
    "job_types",
    "scripts",
    "script_versions",
    "outcomes",
    "n_dlq_messages",
    "n_dlq_jobs",
    "examples",
    "kind",
    "kind_rule",
    "n_invocations",
    "sources",
    "fingerprint",
    "rule",
)
#: texts looked at to triage a cluster: the first rows of it, and the distinct texts among them
TRIAGE_ROWS: Final = 200
TRIAGE_TEXTS: Final = 25
_LIMIT_OUTCOMES: Final = ("exceededCpu", "exceededMemory")


def _empty_table() -> pd.DataFrame:
    table = pd.DataFrame({c: pd.Series(dtype=object) for c in CLUSTER_COLUMNS})
    for c in ("count", "n_dlq_messages", "n_dlq_jobs", "n_invocations"):
        table[c] = table[c].astype(np.int64)
    table["share"] = table["share"].astype(float)
    for c in ("first_seen", "last_seen"):
        table[c] = pd.Series(dtype="datetime64[ns, UTC]")
    return table


def _group_sort(codes: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
    """Row positions grouped by code, keeping ``order`` (default: row order) within a group. The
    codes are small ints, so the stable sort is a radix sort."""
    small = codes.astype(np.int16 if len(codes) and codes.max() < 2**15 else np.int32)
    if order is None:
        return np.argsort(small, kind="stable")
    return order[np.argsort(small[order], kind="stable")]


def _starts(sorted_codes: np.ndarray) -> np.ndarray:
    """Where each group begins in codes sorted by group (plus the end)."""
    return np.r_[0, np.flatnonzero(np.diff(sorted_codes)) + 1, len(sorted_codes)]


def _first_positions(codes: np.ndarray) -> np.ndarray:
    """The position of the first row of each code (codes numbered in order of first appearance)."""
    before = np.maximum.accumulate(np.r_[-1, codes[:-1]]) if len(codes) else codes
    return np.flatnonzero(codes > before)


def _uniq_lists(
    codes: np.ndarray, n_groups: int, values: np.ndarray, coded: tuple[np.ndarray, np.ndarray] | None = None
) -> list[list[str]]:
    """Per group: the sorted distinct ``str`` of its non-null values (``coded``: the values'
    codes, ``-1`` for null, and the distinct values, when they are known already)."""
    vcodes, uniques = coded if coded is not None else pd.factorize(values, use_na_sentinel=True)
    out: list[set[str]] = [set() for _ in range(n_groups)]
    ok = vcodes >= 0
    if ok.any():
        width = len(uniques)
        pairs = pd.unique(codes[ok].astype(np.int64) * width + vcodes[ok])
        shown = [str(u) for u in uniques]
        for g, v in zip((pairs // width).tolist(), (pairs % width).tolist(), strict=True):
            out[g].add(shown[v])
    return [sorted(s) for s in out]


def _distinct_texts(texts: np.ndarray, positions: np.ndarray, k: int) -> list[str]:
    """The first ``k`` distinct texts (as ``str``) of the rows at ``positions``, in that order."""
    seen: dict[str, None] = {}
    for i in positions.tolist():
        seen.setdefault(str(texts[i]), None)
        if len(seen) >= k:
            break
    return list(seen)


def _examples(codes: np.ndarray, ns: np.ndarray, texts: np.ndarray, k: int) -> list[list[str]]:
    """Per group: its first ``k`` distinct texts ordered by (time, text), rows without a time last.

    Rows are sorted by (group, time) with integer sorts; only each group's earliest rows (and rows
    tied with the last of them) are ordered by text in Python. A group whose earliest rows hold
    fewer than ``k`` distinct texts is looked at by the first row of each of its texts."""
    ts_key = np.where(ns == np.iinfo(np.int64).min, np.iinfo(np.int64).max, ns)
    order = _group_sort(codes, np.argsort(ts_key, kind="stable"))
    starts = _starts(codes[order])
    head = max(32, 8 * k)

    def by_time_text(i: int) -> tuple[int, bool, str]:
        t = texts[i]
        return int(ts_key[i]), t is None, "" if t is None else str(t)  # no text: last, like no time

    out: list[list[str]] = []
    for a, b in zip(starts[:-1].tolist(), starts[1:].tolist(), strict=True):
        stop = min(b, a + head)
        if stop < b:  # rows tied in time with the last candidate belong to the candidates too
            last = ts_key[order[stop - 1]]
            stop = a + int(np.searchsorted(ts_key[order[a:b]], last, side="right"))
        cand = order[a:stop]
        shown = _distinct_texts(texts, np.asarray(sorted(cand.tolist(), key=by_time_text)), k)
        if len(shown) < k and stop < b:
            # few distinct texts among many rows: the first row of each text (in time order), and
            # of those the texts up to the k-th first time (ties included), ordered by text
            every = order[a:b]
            firsts = every[~pd.Series(texts[every]).duplicated().to_numpy()]
            if len(firsts) > k:
                firsts = firsts[ts_key[firsts] <= ts_key[firsts[k - 1]]]
            shown = _distinct_texts(texts, np.asarray(sorted(firsts.tolist(), key=by_time_text)), k)
        out.append([e[:500] for e in shown])
    return out


def _samples(codes: np.ndarray, texts: np.ndarray) -> list[list[str]]:
    """Per group: the distinct texts (up to :data:`TRIAGE_TEXTS`) of its first :data:`TRIAGE_ROWS`
    rows, in row order: what triage reads."""
    order = _group_sort(codes)
    starts = _starts(codes[order])
    return [
        _distinct_texts(texts, order[a : min(b, a + TRIAGE_ROWS)], TRIAGE_TEXTS)
        for a, b in zip(starts[:-1].tolist(), starts[1:].tolist(), strict=True)
    ]


def _dlq_counts(dlq: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    if not len(dlq) or "cluster_id" not in dlq:
        empty = pd.Series(dtype=np.int64)
        return empty, empty
    counts = dlq.dropna(subset=["cluster_id"]).groupby("cluster_id", observed=True).size()
    jobs = (
        dlq.dropna(subset=["cluster_id", "job_id"])
        .astype({"job_id": object})
        .groupby("cluster_id", observed=True)["job_id"]
        .nunique()
    )
    return counts, jobs


def cluster_table(
    rows: pd.DataFrame,
    dlq: pd.DataFrame,
    max_examples: int,
    coded: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> pd.DataFrame:
    """The table of ``rows`` (error rows with ``cluster_id``, ``display``, ``fingerprint``, ``rule``
    and context). ``coded``: codes of repeated columns known already (see :func:`_uniq_lists`)."""
    if rows.empty:
        return _empty_table()
    known = (coded or {}).get("cluster_id")
    codes, cids = known if known is not None else pd.factorize(rows["cluster_id"].to_numpy(dtype=object))
    n = len(cids)
    tel = (rows["source"] != "dlq").to_numpy()
    total = int(tel.sum())
    counts = np.bincount(codes, weights=tel, minlength=n).astype(np.int64)
    first = _first_positions(codes)
    seen = rows["ts"].reset_index(drop=True).groupby(codes).agg(["min", "max"])
    texts = rows["text"].to_numpy(dtype=object)
    ns = pd.DatetimeIndex(rows["ts"]).as_unit("ns").asi8
    examples = _examples(codes, ns, texts, max_examples)
    samples = _samples(codes, texts)
    limited = rows["outcome"].isin(list(_LIMIT_OUTCOMES)).to_numpy()
    limit_share = np.bincount(codes, weights=limited, minlength=n) / np.bincount(codes, minlength=n)
    dlq_counts, dlq_jobs = _dlq_counts(dlq)
    n_inv = np.zeros(n, dtype=np.int64)
    if tel.any():
        if "invocation" in rows:  # the invocation's number (compute_clusters), -1 for none
            icodes = rows["invocation"].to_numpy()[tel]
        else:
            icodes, _ = pd.factorize(rows["invocation_id"].to_numpy(dtype=object)[tel], use_na_sentinel=True)
        ok = icodes >= 0
        if ok.any():
            width = int(icodes.max()) + 1
            pairs = pd.unique(codes[tel][ok].astype(np.int64) * width + icodes[ok])
            n_inv = np.bincount(pairs // width, minlength=n).astype(np.int64)
    lists = {
        col: _uniq_lists(codes, n, rows[col].to_numpy(dtype=object), (coded or {}).get(col))
        for col in ("job_type", "script", "script_version", "outcome", "source")
    }
    display = rows["display"].to_numpy(dtype=object)
    fingerprint = rows["fingerprint"].to_numpy(dtype=object)
    rule = rows["rule"].to_numpy(dtype=object)
    kinds = triage.classify_texts([t for g in samples for t in g])  # one pass over all the samples
    at = np.cumsum([0] + [len(s) for s in samples])
    records: list[dict[str, Any]] = []
    for g, cid in enumerate(cids):
        kind, kind_rule = triage.vote(kinds[at[g] : at[g + 1]])
        # an unclassified cluster is a limit hit when most of its rows come from invocations that hit
        # a limit (one warn line that happened to be logged by such an invocation does not make it one)
        if not kind_rule and limit_share[g] > 0.5:
            kind, kind_rule = "permanent", "resource-limit"
        records.append(
            {
                "cluster_id": cid,
                "template": display[first[g]],
                "count": int(counts[g]),
                "share": (int(counts[g]) / total) if total else 0.0,
                "first_seen": seen["min"].iloc[g],
                "last_seen": seen["max"].iloc[g],
                "job_types": lists["job_type"][g],
                "scripts": lists["script"][g],
                "script_versions": lists["script_version"][g],
                "outcomes": lists["outcome"][g],
                "n_dlq_messages": int(dlq_counts.get(cid, 0)),
                "n_dlq_jobs": int(dlq_jobs.get(cid, 0)),
                "examples": examples[g],
                "kind": kind,
                "kind_rule": kind_rule,
                "n_invocations": int(n_inv[g]),
                "sources": lists["source"][g],
                "fingerprint": str(fingerprint[first[g]]),
                "rule": str(rule[first[g]]),
            }
        )
    # clusters known only from DLQ joins are already in rows (dlq source); order: count, dlq, id
    table = pd.DataFrame.from_records(records, columns=list(CLUSTER_COLUMNS))
    table = table.sort_values(
        ["count", "n_dlq_messages", "cluster_id"], ascending=[False, False, True], kind="stable"
    ).reset_index(drop=True)
    table["first_seen"] = pd.to_datetime(table["first_seen"], utc=True).dt.as_unit("ns")
    table["last_seen"] = pd.to_datetime(table["last_seen"], utc=True).dt.as_unit("ns")
    return table
