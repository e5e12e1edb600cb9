"""The cluster table: one row per cluster (:data:`CLUSTER_COLUMNS`), most frequent first.

``examples`` are the cluster's first distinct texts (by time, then text); ``example_events`` the
event behind each of them (its first row with that text, one whose invocation has a request or ray
id first: time, source, script, invocation, and the ``request_id`` / ``ray_id`` its source carries,
so the same event can be opened in Cloudflare's dashboard).

Built with group codes and numpy (no per-cluster frames): the rows are grouped by cluster once, and
every column is a count, a min/max, or a handful of distinct (cluster, value) pairs; Python looks
only at the first rows of each cluster (examples, the texts triage reads).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from edgeinvestigate.analysis import triage
from edgeinvestigate.analysis.clustering._arrow import NAT, Coded, Objects, missing, utc_column

__all__ = ["CLUSTER_COLUMNS", "EVENT_FIELDS", "TableRows", "cluster_table", "empty_table"]

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
    "example_events",
)
#: the fields of one example event
EVENT_FIELDS: Final = ("ts", "source", "script", "invocation_id", "request_id", "ray_id", "text")
#: texts triage reads: the distinct texts (up to ``TRIAGE_TEXTS``) of a cluster's first rows
TRIAGE_ROWS: Final = 200
TRIAGE_TEXTS: Final = 25
_LIMIT_OUTCOMES: Final = ("exceededCpu", "exceededMemory")
_LAST: Final = np.iinfo(np.int64).max


@dataclass
class TableRows:
    """What the table is made of, per error row: the cluster (``codes`` index ``ids``) and the
    columns it reads (``texts`` and the other :class:`Objects` give Python objects of the rows
    asked, ``ts`` int64 nanoseconds, ``by_time`` the rows in a stable order by time, rows without
    one last)."""

    codes: np.ndarray
    ids: np.ndarray
    source: Coded
    ts: np.ndarray
    by_time: np.ndarray
    texts: Objects
    text: pa.Array
    display: np.ndarray
    fingerprint: Objects
    rule: Objects
    invocation: np.ndarray
    invocation_id: Objects
    job_type: Coded
    script: Coded
    script_version: Coded
    outcome: Coded
    request_id: Objects
    ray_id: Objects


def empty_table() -> pd.DataFrame:
    table = pd.DataFrame({c: pd.Series(dtype=object) for c in CLUSTER_COLUMNS})
    for c in ("count", "n_dlq_messages", "n_dlq_jobs", "n_invocations"):
        table[c] = table[c].astype(np.int64)
    table["share"] = table["share"].astype(float)
    for c in ("first_seen", "last_seen"):
        table[c] = pd.Series(dtype="datetime64[ns, UTC]")
    return table


def _missing(v: Any) -> bool:
    return missing(v) or v is pd.NA


def _plain(value: Any) -> str | None:
    return None if _missing(value) else str(value)


def _starts(sorted_codes: np.ndarray) -> np.ndarray:
    """Where each group begins in codes sorted by group (plus the end)."""
    return np.r_[0, np.flatnonzero(np.diff(sorted_codes)) + 1, len(sorted_codes)]


def _first_positions(codes: np.ndarray, n: int) -> np.ndarray:
    """The position of the first row of each code."""
    first = np.full(n, -1, dtype=np.int64)
    pos = np.arange(len(codes))[::-1]
    first[codes[pos]] = pos
    return first


def _distinct_pairs(codes: np.ndarray, values: np.ndarray, width: int) -> np.ndarray:
    """The distinct ``codes * width + values`` (both non-negative)."""
    keys = codes.astype(np.int64) * width + values
    size = (int(codes.max()) + 1) * width if len(codes) else 0
    if size <= 4 * len(keys) + 1_000_000:  # small enough for a table of seen pairs
        seen = np.zeros(size, dtype=bool)
        seen[keys] = True
        return np.flatnonzero(seen)
    return np.asarray(pd.unique(keys))


def _distinct_per_group(codes: np.ndarray, order: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Per group ``0..n-1``: how many distinct values (``>= 0``; a negative one is not counted) its
    rows hold. ``order`` has the rows grouped by code.

    With few groups, one group after the other: each writes its row positions into a table indexed
    by value, and a row counts when its value's entry is its own position (the value's last row in
    the group); no hash of (group, value) pairs. With many groups, the distinct pairs."""
    counts = np.zeros(n, dtype=np.int64)
    grouped = values[order]
    keep = grouped >= 0
    if not keep.any():
        return counts
    grouped, group, width = grouped[keep], codes[order][keep], int(grouped.max()) + 1
    if n * _ROWS_PER_GROUP > len(grouped):
        pairs = _distinct_pairs(group, grouped, width)
        return np.bincount(pairs // width, minlength=n).astype(np.int64)
    bounds = np.searchsorted(group, np.arange(n + 1))
    seen = np.full(width, -1, dtype=np.int64)
    pos = np.arange(len(grouped))
    for g in np.flatnonzero(np.diff(bounds)).tolist():
        a, b = int(bounds[g]), int(bounds[g + 1])
        seen[grouped[a:b]] = pos[a:b]
        counts[g] = np.count_nonzero(seen[grouped[a:b]] == pos[a:b])
    return counts


#: rows per group from which :func:`_distinct_per_group` goes one group after the other
_ROWS_PER_GROUP: Final = 64


def _uniq_lists(codes: np.ndarray, n: int, col: Coded) -> list[list[str]]:
    """Per group: the sorted distinct ``str`` of its values that are not missing."""
    out: list[set[str]] = [set() for _ in range(n)]
    width = max(1, len(col.values))
    shown = [None if _missing(v) else str(v) for v in col.values]
    pairs = _distinct_pairs(codes, col.codes, width)
    for g, v in zip((pairs // width).tolist(), (pairs % width).tolist(), strict=True):
        if shown[v] is not None:
            out[g].add(shown[v])
    return [sorted(s) for s in out]


def _distinct_texts(texts: Objects, positions: list[int], k: int) -> list[str]:
    """The first ``k`` distinct texts (as ``str``) of the rows at ``positions``, in that order."""
    seen: dict[str, None] = {}
    for t in texts[np.asarray(positions, dtype=np.int64)] if positions else ():
        seen.setdefault(str(t), None)
        if len(seen) >= k:
            break
    return list(seen)


def _by_time_text(rows: np.ndarray, ts_key: np.ndarray, texts: Objects) -> list[int]:
    """``rows`` ordered by (time, text), rows without a text last among those of their time."""
    values = texts[rows]
    keys = [
        (int(ts_key[i]), t is None, "" if t is None else str(t), n)
        for n, (i, t) in enumerate(zip(rows.tolist(), values, strict=True))
    ]
    return [int(rows[key[3]]) for key in sorted(keys)]


def _examples(
    order: np.ndarray, starts: np.ndarray, ts_key: np.ndarray, texts: Objects, k: int
) -> list[list[str]]:
    """Per group: its first ``k`` distinct texts ordered by (time, text), rows without a time last
    and rows without a text last among those of their time (``order``: rows by group, then time).

    Only each group's earliest rows (and rows tied with the last of them) are ordered by text in
    Python. A group whose earliest rows hold fewer than ``k`` distinct texts is looked at by the
    first row of each of its texts."""
    head = max(32, 8 * k)
    out: list[list[str]] = []
    for a, b in zip(starts[:-1].tolist(), starts[1:].tolist(), strict=True):
        stop = min(b, a + head)
        if stop < b:  # rows tied in time with the last candidate are candidates too
            last = ts_key[order[stop - 1]]
            stop = a + int(np.searchsorted(ts_key[order[a:b]], last, side="right"))
        shown = _distinct_texts(texts, _by_time_text(order[a:stop], ts_key, texts), k)
        if len(shown) < k and stop < b:
            # few distinct texts among many rows: the first row of each text (in time order), and of
            # those the texts up to the k-th first time (ties included), ordered by (time, text)
            every = order[a:b]
            firsts = every[~pd.Series(texts[every], dtype=object).duplicated().to_numpy()]
            if len(firsts) > k:
                firsts = firsts[ts_key[firsts] <= ts_key[firsts[k - 1]]]
            shown = _distinct_texts(texts, _by_time_text(firsts, ts_key, texts), k)
        out.append(shown)
    return out


def _by_group(codes: np.ndarray, order: np.ndarray | None = None) -> np.ndarray:
    """Row positions grouped by code, keeping ``order`` (default: row order) within a group (a stable
    sort of small integers: a radix sort)."""
    small = codes.astype(np.int16 if len(codes) and codes.max() < 2**15 else np.int32)
    if order is None:
        return np.argsort(small, kind="stable")
    return order[np.argsort(small[order], kind="stable")]


def _samples(codes: np.ndarray, texts: Objects) -> list[list[str]]:
    """Per group: the distinct texts (up to :data:`TRIAGE_TEXTS`) of its first :data:`TRIAGE_ROWS`
    rows, in row order: what triage reads."""
    order = _by_group(codes)
    starts = _starts(codes[order])
    return [
        _distinct_texts(texts, order[a : min(b, a + TRIAGE_ROWS)].tolist(), TRIAGE_TEXTS)
        for a, b in zip(starts[:-1].tolist(), starts[1:].tolist(), strict=True)
    ]


def _example_events(
    r: TableRows, ts_key: np.ndarray, examples: list[list[str]]
) -> list[list[dict[str, Any]]]:
    """Per group, the event behind each example text: its first row with that text, rows whose
    invocation has a request or ray id first, then by time (none last), then in row order."""
    wanted = sorted({t for ex in examples for t in ex})
    out: list[list[dict[str, Any]]] = [[] for _ in examples]
    if not wanted:
        return out
    index = pc.index_in(r.text, value_set=pa.array(wanted, pa.string()))
    idx = pc.fill_null(index, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    at = {t: i for i, t in enumerate(wanted)}
    if "None" in at:  # str(None): a row without a text shows as "None"
        idx[r.text.is_null().to_numpy(zero_copy_only=False)] = at["None"]
    width = len(wanted)
    allowed = np.asarray([g * width + at[t] for g, ex in enumerate(examples) for t in ex])
    cand = np.flatnonzero(idx >= 0)
    keys = r.codes[cand].astype(np.int64) * width + idx[cand]
    ok = np.isin(keys, allowed)
    cand, keys = cand[ok], keys[ok]
    no_id = pd.isna(r.request_id[cand]) & pd.isna(r.ray_id[cand])
    order = np.lexsort((cand, ts_key[cand], no_id, keys))
    firsts = order[np.r_[True, keys[order][1:] != keys[order][:-1]]]
    chosen = dict(zip(keys[firsts].tolist(), cand[firsts].tolist(), strict=True))
    for g, ex in enumerate(examples):
        for t in ex:
            i = chosen[g * width + at[t]]
            ts = int(r.ts[i])
            out[g].append(
                {
                    "ts": None if ts == NAT else pd.Timestamp(ts, unit="ns", tz="UTC").isoformat(),
                    "source": _plain(r.source.values[r.source.codes[i]]),
                    "script": _plain(r.script.values[r.script.codes[i]]),
                    "invocation_id": _plain(r.invocation_id[i]),
                    "request_id": _plain(r.request_id[i]),
                    "ray_id": _plain(r.ray_id[i]),
                    "text": t[:500],
                }
            )
    return out


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


def _kinds(samples: list[list[str]], limit_share: np.ndarray) -> tuple[list[str], list[str]]:
    """Each group's kind and the rule behind it (an unclassified cluster is a limit hit when most of
    its rows come from invocations that hit a limit: one warn line that happened to be logged by
    such an invocation does not make it one)."""
    kinds = triage.classify_texts([t for s in samples for t in s])  # one pass over all the samples
    at = np.cumsum([0] + [len(s) for s in samples])
    kind: list[str] = []
    rule: list[str] = []
    for g in range(len(samples)):
        k, why = triage.vote(kinds[at[g] : at[g + 1]])
        if not why and limit_share[g] > 0.5:
            k, why = "permanent", "resource-limit"
        kind.append(k)
        rule.append(why)
    return kind, rule


def cluster_table(r: TableRows, dlq: pd.DataFrame, max_examples: int) -> pd.DataFrame:
    """The table of the error rows ``r`` (see the module docs)."""
    codes, n = r.codes, len(r.ids)
    if not len(codes):
        return empty_table()
    tel = r.source.codes != list(r.source.values).index("dlq")
    total = int(tel.sum())
    counts = np.bincount(codes, weights=tel, minlength=n).astype(np.int64)
    first = _first_positions(codes, n)
    ts_key = np.where(r.ts == NAT, _LAST, r.ts)
    order = _by_group(codes, r.by_time)  # by group, then time (none last), then row
    starts = _starts(codes[order])
    timed = np.bincount(codes, weights=r.ts != NAT, minlength=n).astype(np.int64)
    low = ts_key[order[starts[:-1]]]
    high = ts_key[order[starts[:-1] + np.maximum(timed, 1) - 1]]
    first_seen = np.where(timed > 0, low, NAT)
    last_seen = np.where(timed > 0, high, NAT)
    examples = _examples(order, starts, ts_key, r.texts, max_examples)
    events = _example_events(r, ts_key, examples)
    limited = np.asarray([v in _LIMIT_OUTCOMES for v in r.outcome.values], dtype=bool)[r.outcome.codes]
    limit_share = np.bincount(codes, weights=limited, minlength=n) / np.bincount(codes, minlength=n)
    kind, kind_rule = _kinds(_samples(codes, r.texts), limit_share)
    n_inv = _distinct_per_group(codes, order, np.where(tel, r.invocation, -1), n)
    dlq_counts, dlq_jobs = _dlq_counts(dlq)
    ids = [str(c) for c in r.ids]
    table = pd.DataFrame(
        {
            "cluster_id": np.asarray(r.ids, dtype=object),
            "template": r.display[first],
            "count": counts,
            "share": counts / total if total else np.zeros(n),
            "first_seen": utc_column(first_seen),
            "last_seen": utc_column(last_seen),
            "job_types": _objects(_uniq_lists(codes, n, r.job_type)),
            "scripts": _objects(_uniq_lists(codes, n, r.script)),
            "script_versions": _objects(_uniq_lists(codes, n, r.script_version)),
            "outcomes": _objects(_uniq_lists(codes, n, r.outcome)),
            "n_dlq_messages": np.asarray([int(dlq_counts.get(c, 0)) for c in ids], dtype=np.int64),
            "n_dlq_jobs": np.asarray([int(dlq_jobs.get(c, 0)) for c in ids], dtype=np.int64),
            "examples": _objects([[e[:500] for e in ex] for ex in examples]),
            "kind": np.asarray(kind, dtype=object),
            "kind_rule": np.asarray(kind_rule, dtype=object),
            "n_invocations": n_inv,
            "sources": _objects(_uniq_lists(codes, n, r.source)),
            "fingerprint": np.asarray([str(f) for f in r.fingerprint[first]], dtype=object),
            "rule": np.asarray([str(f) for f in r.rule[first]], dtype=object),
            "example_events": _objects(events),
        }
    )
    # clusters known only from DLQ joins are already in rows (dlq source); order: count, dlq, id
    return table.sort_values(
        ["count", "n_dlq_messages", "cluster_id"], ascending=[False, False, True], kind="stable"
    ).reset_index(drop=True)


def _objects(values: list[Any]) -> np.ndarray:
    """A list of lists as a 1-d object array (one list per element)."""
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out
