"""Cross-source duplicates: the same invocation read from two telemetry formats.

``wrangler tail``, Tail Worker TraceItems, Logpush and the Workers Logs export carry the same
events, and on-call engineers combine them (tail for the last minutes, Logpush for older ones) with
overlapping windows. ``invocation_id`` hashes each source's own record bytes, so it differs per
format; duplicates are found by content instead:

* candidates have the same ``ts`` to the millisecond and come from different ``source`` values.
  A file whose timestamps are all whole seconds (a Logpush job with ``timestamp_format: rfc3339`` or
  ``unix``) carries second precision only: its rows are candidates for every row of the same second,
  while two millisecond-precise rows still need the same millisecond;
* they match when every field of :data:`KEY_FIELDS` that BOTH rows carry (non-null) is equal.
  Sources lack fields (local workerd TraceItems have no script name or cpu/wall time; a Logpush job
  may select only some fields): a field one side lacks is not compared. ``trigger == "unknown"``
  counts as missing; ``n_logs`` is compared only when neither row is ``truncated`` and the row's
  file has log lines at all (a Logpush job without the ``Logs`` field reports 0);
* pairing is one-to-one: a row matches at most one row of each other source, and two rows of the
  SAME source never match each other (they are different invocations, however alike). For each
  key the bundle keeps as many rows as the source with the most of them.

The kept row is the more complete of a pair (logs not truncated, a file with logs, then more
fields); the duplicate's logs and exceptions are dropped with it (its other fields are not merged
into the kept row). Counts per source pair go to ``LoadReport.duplicates``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = ["KEY_FIELDS", "Dedupe", "find_duplicates", "pair_name"]

#: compared when both rows have them (``ts`` and ``source`` are the blocking keys)
KEY_FIELDS: Final = (
    "script",
    "script_version",
    "trigger",
    "queue",
    "batch_size",
    "outcome",
    "status",
    "method",
    "url",
    "entrypoint",
    "cpu_ms",
    "wall_ms",
    "n_exceptions",
    "n_logs",
)


def pair_name(a: str, b: str) -> str:
    """``"logpush+tail"``: the key of a source pair in ``LoadReport.duplicates`` (names sorted)."""
    return "+".join(sorted((a, b)))


@dataclass
class Dedupe:
    """The result of :func:`find_duplicates`."""

    drop: np.ndarray
    """boolean mask over the invocations: True for a cross-source duplicate"""
    pairs: dict[str, int] = field(default_factory=dict)
    """dropped rows per source pair (:func:`pair_name`)"""

    @property
    def n(self) -> int:
        return int(self.drop.sum())


@dataclass
class _Kept:
    row: int  # position among the candidates
    source: str
    score: int
    seen: set[str]  # sources of this row and of every row matched to it
    fine_ts: int | None  # the millisecond timestamp of its millisecond-precise rows (None: seconds only)


def _second_precision(inv: pd.DataFrame, ts_ms: np.ndarray, has_ts: np.ndarray) -> np.ndarray:
    """True for the rows of files (``source_file``, else ``source``) whose timestamps are whole seconds."""
    whole = (ts_ms % 1000 == 0) | ~has_ts
    if whole[has_ts].all() or not whole[has_ts].any():
        # one precision for everything: blocking by the exact timestamp is right either way
        return np.zeros(len(inv), dtype=bool)
    by = "source_file" if "source_file" in inv else "source"
    keys = inv[by].astype(object).fillna("").to_numpy()
    per_file = pd.Series(whole).groupby(keys, sort=False).transform("all").to_numpy(dtype=bool)
    return per_file & has_ts


def find_duplicates(inv: pd.DataFrame) -> Dedupe:
    """Which rows of ``inv`` (an invocations frame) repeat an invocation of another source."""
    n = len(inv)
    drop = np.zeros(n, dtype=bool)
    if n == 0 or "source" not in inv or inv["source"].nunique(dropna=True) < 2:
        return Dedupe(drop)
    ts = inv["ts"]
    ms = ts.astype(pd.ArrowDtype(pa.timestamp("ms", tz="UTC"))).astype(pd.ArrowDtype(pa.int64()))
    ts_ms = np.asarray(ms.to_numpy(dtype="int64", na_value=0))
    has_ts = ts.notna().to_numpy(dtype=bool)
    src = inv["source"].astype(object).to_numpy()
    coarse = _second_precision(inv, ts_ms, has_ts)
    # the blocking key: the millisecond, or the whole second where a second-precision row is
    block = ts_ms.copy()
    if coarse.any():
        seconds = ts_ms // 1000
        in_coarse_second = np.isin(seconds, np.unique(seconds[coarse])) & has_ts
        block[in_coarse_second] = seconds[in_coarse_second] * 1000
    # candidates: a block that at least two sources have
    uniq = [np.unique(block[(src == s) & has_ts]) for s in pd.unique(src[has_ts])]
    values, counts = np.unique(np.concatenate(uniq), return_counts=True) if uniq else ([], [])
    shared = np.asarray(values)[np.asarray(counts) >= 2]
    cand = np.flatnonzero(has_ts & np.isin(block, shared))
    if not len(cand):
        return Dedupe(drop)

    truncated = (
        inv["truncated"].fillna(False).to_numpy(dtype=bool) if "truncated" in inv else np.zeros(n, dtype=bool)
    )
    # files without a single log line: their n_logs says nothing (Logs not selected, or no logging)
    logless = np.zeros(n, dtype=bool)
    if "source_file" in inv and "n_logs" in inv:
        per_file = (
            inv["n_logs"].fillna(0).groupby(inv["source_file"].astype(object), sort=False).transform("max")
        )
        logless = (per_file == 0).to_numpy(dtype=bool)

    order = cand[np.argsort(block[cand], kind="stable")]
    # the compared values of the candidates, None where a row does not carry the field
    columns = []
    for c in KEY_FIELDS:
        if c not in inv:
            continue
        col = inv[c].iloc[order]
        vals = col.astype(object).to_numpy()
        unknown = col.isna().to_numpy(dtype=bool)
        if c == "trigger":
            unknown |= (vals == "unknown").astype(bool)
        if c == "n_logs":
            unknown |= truncated[order] | logless[order]
        vals[unknown] = None
        columns.append(vals)
    keys: list[tuple[Any, ...]] = list(zip(*columns, strict=True)) if columns else [() for _ in order]
    scores = [
        sum(v is not None for v in key) + 100 * (not logless[r]) + 1000 * (not truncated[r])
        for key, r in zip(keys, order, strict=True)
    ]  # complete logs first (not truncated, a file with logs), then the most fields

    def matches(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
        compared = False
        for va, vb in zip(a, b, strict=True):
            if va is None or vb is None:
                continue
            if va != vb:
                return False
            compared = True
        return compared  # a timestamp alone is no evidence

    pairs: dict[str, int] = {}
    sorted_block = block[order]
    bounds = [*np.flatnonzero(np.diff(sorted_block)) + 1, len(order)]

    def same_moment(k: _Kept, i: int) -> bool:
        # a second-precision row fits any row of its second; two precise rows need the same millisecond
        return bool(coarse[order[i]]) or k.fine_ts is None or k.fine_ts == ts_ms[order[i]]

    start = 0
    for stop in bounds:
        by_source: dict[str, list[int]] = {}
        for i in range(start, stop):
            by_source.setdefault(src[order[i]], []).append(i)
        start = stop
        if len(by_source) < 2:
            continue
        # the source with the most rows first: it keeps them all, the others are paired against them
        groups = sorted(by_source.items(), key=lambda kv: (-len(kv[1]), str(kv[0])))
        kept: list[_Kept] = []
        for s, idx in groups:
            new: list[_Kept] = []
            for i in idx:
                k = next(
                    (
                        k
                        for k in kept
                        if s not in k.seen and same_moment(k, i) and matches(keys[k.row], keys[i])
                    ),
                    None,
                )
                fine = None if coarse[order[i]] else int(ts_ms[order[i]])
                if k is None:
                    new.append(_Kept(i, s, scores[i], {s}, fine))
                    continue
                name = pair_name(k.source, s)
                pairs[name] = pairs.get(name, 0) + 1
                k.seen.add(s)
                if k.fine_ts is None:
                    k.fine_ts = fine
                if scores[i] > k.score:  # keep the more complete row
                    drop[order[k.row]] = True
                    k.row, k.source, k.score = i, s, scores[i]
                else:
                    drop[order[i]] = True
            kept.extend(new)
    return Dedupe(drop, pairs)


def dedupe_frames(
    invocations: pd.DataFrame, logs: pd.DataFrame, exceptions: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """The three frames without cross-source duplicates (and their logs and exceptions)."""
    found = find_duplicates(invocations)
    if not found.n:
        return invocations, logs, exceptions, {}
    ids = invocations["invocation_id"].astype(object)
    gone = set(ids[found.drop]) - set(ids[~found.drop])
    out_inv = invocations[~found.drop].reset_index(drop=True)
    out = []
    for df in (logs, exceptions):
        keep = ~df["invocation_id"].astype(object).isin(gone).to_numpy(dtype=bool)
        out.append(df if keep.all() else df[keep].reset_index(drop=True))
    return out_inv, out[0], out[1], found.pairs


def drop_cross_source(frames: dict[str, pd.DataFrame], duplicates: dict[str, int]) -> None:
    """Drop cross-source duplicates from ``frames`` (in place) and add their counts to ``duplicates``."""
    inv, logs, exc, pairs = dedupe_frames(frames["invocations"], frames["logs"], frames["exceptions"])
    if not pairs:
        return
    frames["invocations"], frames["logs"], frames["exceptions"] = inv, logs, exc
    for pair, k in pairs.items():
        duplicates[pair] = duplicates.get(pair, 0) + k
