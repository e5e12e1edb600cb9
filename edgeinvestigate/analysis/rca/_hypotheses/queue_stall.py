"""From queue analytics: a consumer that stalled or fell behind, and a throughput drop.

* ``consumer_stalled``: reads per bucket fell to at most half the consumer's usual pace (the median of
  its buckets with reads), or the consumer concurrency to at most half its usual level, for two buckets
  or more, after it had been reading, while the backlog rose by at least one bucket's usual reads (and
  3 messages) (``signal`` says which fell). ``mode`` is ``stalled`` when reads fell to a tenth or less, else
  ``falling_behind``. Errors logged meanwhile (any telemetry) are counted: without any, nothing else
  explains it and the fit is 0.9; with some, 0.6 (an error hypothesis may be the cause). Score: the
  backlog growth (messages held up) times the fit.
* ``throughput_drop``: writes stayed at least 70% of their usual pace while reads fell to 60% or less
  for three buckets or more, where no stall explains it (say, the backlog dataset has no data).
  Score: the reads missing against the usual pace, times 0.5.

Only observed buckets count (see :mod:`edgeinvestigate.analysis.rca._queue_series`): no data is never
read as zero reads.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from edgeinvestigate.analysis.rca._hypotheses.context import RawHypothesis
from edgeinvestigate.analysis.rca._queue_series import QueueSeries
from edgeinvestigate.analysis.rca._values import hhmm, pydt
from edgeinvestigate.models.findings import TimeWindow

__all__ = ["consumer_stalls", "throughput_drops"]


def _runs(mask: np.ndarray, min_len: int) -> list[tuple[int, int]]:
    """``(start, end)`` index pairs (inclusive) of runs of True at least ``min_len`` long."""
    runs, start = [], None
    for i, flag in enumerate([*mask.tolist(), False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            if i - start >= min_len:
                runs.append((start, i - 1))
            start = None
    return runs


def _num(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else round(float(value), 3)


def _per(series: QueueSeries) -> str:
    return (
        "minute"
        if series.bucket <= pd.Timedelta(minutes=1)
        else f"{int(series.bucket.total_seconds() // 60)} min"
    )


def _below(values: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Which buckets are at most ``factor`` times the usual level, and the usual level before each.

    The usual level is the median of the earlier buckets that were not low themselves (and above
    zero), so a long drop does not become its own baseline. NaN (no data) is never low.
    """
    low = np.zeros(len(values), dtype=bool)
    usual = np.full(len(values), np.nan)
    normal: list[float] = []
    for i, v in enumerate(values.tolist()):
        if normal:
            usual[i] = float(np.median(normal))
        if np.isnan(v):
            continue
        if normal and v <= factor * usual[i]:
            low[i] = True
        elif v > 0:
            normal.append(v)
    return low, usual


def _errors_between(errors: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> int:
    if errors is None or len(errors) == 0:
        return 0
    return int(((errors["ts"] >= start) & (errors["ts"] < end)).sum())


def consumer_stalls(queues: list[QueueSeries], errors: pd.DataFrame) -> list[RawHypothesis]:
    """One ``consumer_stalled`` hypothesis per stall found (see the module docs)."""
    hyps: list[RawHypothesis] = []
    for qs in queues:
        f = qs.observed
        reads = f["reads"].to_numpy(dtype=float)
        if len(f) < 3 or not (reads > 0).any():
            continue
        low_reads, usual_reads = _below(reads, 0.5)
        # concurrency without data is no signal (never read as zero)
        low_conc, _ = _below(f["concurrency"].to_numpy(dtype=float), 0.5)
        low = low_reads | low_conc
        for a, b in _runs(low, 2):
            if a == 0 or not (reads[:a] > 0).any():
                continue  # the consumer must have been reading before
            base = float(usual_reads[a])
            backlog = f["backlog"].to_numpy(dtype=float)
            prior = backlog[:a][~np.isnan(backlog[:a])]
            inside = backlog[a : b + 1][~np.isnan(backlog[a : b + 1])]
            if not len(inside):
                continue  # no backlog data: a throughput drop at most, never a stall by assumption
            start_backlog = float(prior[-1]) if len(prior) else float(inside[0])
            peak = float(inside.max())
            growth = peak - start_backlog
            if growth < max(3.0, base):
                continue  # less than one bucket's usual work held up: noise, not a stall
            t0, t1 = f.index[a], f.index[b] + qs.bucket
            during = f.iloc[a : b + 1]
            reads_during = float(during["reads"].mean())
            writes_during = float(during["writes"].mean())
            conc_before = f["concurrency"].iloc[:a].mean()
            conc_during = during["concurrency"].mean()
            n_errors = _errors_between(errors, t0, t1)
            mode = "stalled" if reads_during <= 0.1 * base else "falling_behind"
            signal = " and ".join(
                name for name, m in (("reads", low_reads), ("concurrency", low_conc)) if m[a : b + 1].any()
            )
            fit = 0.9 if n_errors == 0 else 0.6
            per = _per(qs)
            what = "stalled" if mode == "stalled" else "fell behind"
            conc_text = (
                f"; consumer concurrency {conc_before:.1f} before, "
                + ("no data during it" if pd.isna(conc_during) else f"{conc_during:.1f} during it")
                if not pd.isna(conc_before)
                else ""
            )
            tail = (
                "; no error was logged meanwhile, so look at the consumer itself (delivery paused, a hung "
                "batch, its concurrency or a failed deploy of the consumer), not at job errors."
                if n_errors == 0
                else f"; {n_errors} errors were logged meanwhile (see the error findings)."
            )
            hyps.append(
                {
                    "kind": "consumer_stalled",
                    "title": f"Consumer of {qs.queue} {what} {hhmm(t0)}–{hhmm(t1)}",
                    "sentence": (
                        f"The consumer of {qs.queue!r} {what} at {hhmm(t0)}: reads fell from ~{base:.0f} to "
                        f"{reads_during:.1f} per {per} while producers wrote {writes_during:.1f} per {per}, "
                        f"and the backlog grew from {start_backlog:.0f} to {peak:.0f} messages by {hhmm(t1)}"
                        f"{conc_text}{tail} Queue analytics are estimates (adaptive sampling)."
                    ),
                    "score": growth * fit,
                    "fit": fit,
                    "cluster_ids": [],
                    "job_types": [],
                    "window": TimeWindow(start=pydt(t0), end=pydt(t1)),
                    "deploy": None,
                    "evidence": {
                        "queue": qs.queue,
                        "mode": mode,
                        "signal": signal,
                        "start": t0.isoformat(),
                        "end": t1.isoformat(),
                        "bucket_seconds": int(qs.bucket.total_seconds()),
                        "reads_per_bucket_before": _num(base),
                        "reads_per_bucket_during": _num(reads_during),
                        "writes_per_bucket_during": _num(writes_during),
                        "backlog_start": _num(start_backlog),
                        "backlog_peak": _num(peak),
                        "backlog_growth": _num(growth),
                        "concurrency_before": _num(conc_before),
                        "concurrency_during": _num(conc_during),
                        "errors_during": n_errors,
                    },
                }
            )
    return hyps


def throughput_drops(queues: list[QueueSeries], stalls: list[RawHypothesis]) -> list[RawHypothesis]:
    """One ``throughput_drop`` per drop no stall explains (see the module docs)."""
    hyps: list[RawHypothesis] = []
    stalled = {h["evidence"]["queue"] for h in stalls}
    for qs in queues:
        if qs.queue in stalled:
            continue
        f = qs.observed
        reads, writes = f["reads"].to_numpy(dtype=float), f["writes"].to_numpy(dtype=float)
        if len(f) < 4 or not (reads > 0).any() or not (writes > 0).any():
            continue
        low_reads, usual_reads = _below(reads, 0.6)
        _, usual_writes = _below(writes, 0.7)
        mask = low_reads & ~(writes < 0.7 * np.nan_to_num(usual_writes, nan=0.0))
        for a, b in _runs(mask, 3):
            if a == 0:
                continue
            base_r = float(usual_reads[a])
            t0, t1 = f.index[a], f.index[b] + qs.bucket
            missing = float(np.clip(base_r - reads[a : b + 1], 0, None).sum())
            per = _per(qs)
            hyps.append(
                {
                    "kind": "throughput_drop",
                    "title": f"Throughput of {qs.queue} dropped {hhmm(t0)}–{hhmm(t1)}",
                    "sentence": (
                        f"Reads of {qs.queue!r} dropped from ~{base_r:.0f} to "
                        f"{reads[a : b + 1].mean():.1f} per {per} between {hhmm(t0)} and {hhmm(t1)} "
                        "while writes held at "
                        f"{writes[a : b + 1].mean():.1f} per {per}: about {missing:.0f} messages were not "
                        "consumed on time. Queue analytics are estimates (adaptive sampling)."
                    ),
                    "score": missing * 0.5,
                    "fit": 0.5,
                    "cluster_ids": [],
                    "job_types": [],
                    "window": TimeWindow(start=pydt(t0), end=pydt(t1)),
                    "deploy": None,
                    "evidence": {
                        "queue": qs.queue,
                        "start": t0.isoformat(),
                        "end": t1.isoformat(),
                        "reads_per_bucket_before": _num(base_r),
                        "reads_per_bucket_during": _num(reads[a : b + 1].mean()),
                        "writes_per_bucket_during": _num(writes[a : b + 1].mean()),
                        "missing_reads": _num(missing),
                    },
                }
            )
    return hyps
