"""One cluster for an error that a Worker both throws and logs.

A consumer that catches, logs and rethrows (or logs and lets the runtime see the throw) reports the
same failure twice: an exception ``TypeError: Cannot read properties of undefined (reading 'x')`` and
a structured line ``{"event":"job.error","error":"Cannot read properties of undefined (reading
'x')"}`` (the ``error`` field is the message, without the name). Their texts differ, so their
templates do, and the clustering would show two clusters of the same size for one problem.

:func:`join_thrown_and_logged` pairs every logged error row with the exceptions of the same
invocation whose text is the logged text or ``<Name>: <logged text>``. When at least
:data:`JOIN_SHARE` of the rows of a logged template pair with one exception cluster, every row of that
template (log lines and the DLQ errors that share it, but not exceptions) joins the exception's
cluster: its template and stack fingerprint, hence its id. The exception clusters keep their ids;
the rows that joined say so in their ``rule``.

Vectorised: pairs are found by invocation number, and the texts are compared in Python only for the
pairs whose byte lengths and last bytes allow a match.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import pyarrow as pa

__all__ = ["JOIN_SHARE", "Candidates", "Joined", "candidates", "join_thrown_and_logged"]

#: the share of a logged template's rows that must pair with one exception cluster for it to join
JOIN_SHARE: Final = 0.5
#: trailing bytes compared before the texts of a pair are compared in Python
_TAIL: Final = 8


@dataclass
class Joined:
    """The rows after the join: template and fingerprint codes, the template each row had before it
    joined (``-1``: it did not), and ``{old template: new template}``."""

    labels: np.ndarray
    fingerprints: np.ndarray
    joined_from: np.ndarray
    templates: dict[str, str]


def _pairs(inv_l: np.ndarray, inv_e: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (log row, exception row) of the same invocation (numbers ``0..n-1``), as positions in
    ``inv_l``/``inv_e``."""
    order = np.argsort(inv_e, kind="stable")  # exceptions grouped by invocation
    counts = np.bincount(inv_e, minlength=n)
    starts = np.cumsum(counts) - counts
    cnt = counts[inv_l]
    total = int(cnt.sum())
    li = np.repeat(np.arange(len(inv_l)), cnt)
    first = np.repeat(starts[inv_l] - (np.cumsum(cnt) - cnt), cnt)
    return li, order[first + np.arange(total)]


def _may_match(text: pa.Array, lpos: np.ndarray, epos: np.ndarray) -> np.ndarray:
    """A necessary condition for ``e == t or e.endswith(": " + t)`` on UTF-8 bytes: ``e`` as long as
    ``t`` or 2+ bytes longer, and the last bytes alike."""
    if text.offset or text.type != pa.string():
        text = pa.concat_arrays([text.cast(pa.string())])
    offsets = np.frombuffer(text.buffers()[1], dtype=np.int32, count=len(text) + 1)
    data = np.frombuffer(text.buffers()[2], dtype=np.uint8) if text.buffers()[2] is not None else None
    n_t = (offsets[lpos + 1] - offsets[lpos]).astype(np.int64)
    n_e = (offsets[epos + 1] - offsets[epos]).astype(np.int64)
    ok = (n_e == n_t) | (n_e >= n_t + 2)
    if data is None:
        return ok
    end_t, end_e = offsets[lpos + 1].astype(np.int64), offsets[epos + 1].astype(np.int64)
    for k in range(1, _TAIL + 1):
        within = ok & (n_t >= k)
        if not within.any():
            break
        at = np.flatnonzero(within)
        ok[at] = data[end_t[at] - k] == data[end_e[at] - k]
    return ok


@dataclass
class Candidates:
    """What the join needs before the templates are known: the log rows it counts, and the (log row,
    exception row) pairs of one invocation whose texts may match (see :func:`_may_match`)."""

    logs: np.ndarray
    lpos: np.ndarray
    epos: np.ndarray


def candidates(source: np.ndarray, invocation: np.ndarray, text: pa.Array) -> Candidates:
    """The pairs a logged error and a thrown one may form (``source`` codes: 0 exception, 1 log;
    ``invocation`` numbers, ``-1`` for none)."""
    exc = np.flatnonzero((source == 0) & (invocation >= 0))
    logs = np.flatnonzero((source == 1) & (invocation >= 0) & text.is_valid().to_numpy(zero_copy_only=False))
    if not len(exc) or not len(logs):
        none = np.zeros(0, dtype=np.int64)
        return Candidates(logs, none, none)
    li, ei = _pairs(invocation[logs], invocation[exc], int(invocation.max()) + 1)
    lpos, epos = logs[li], exc[ei]
    keep = _may_match(text, lpos, epos)
    return Candidates(logs, lpos[keep], epos[keep])


def join_thrown_and_logged(
    found: Candidates,
    source: np.ndarray,
    text: pa.Array,
    labels: np.ndarray,
    fingerprints: np.ndarray,
    templates: list[str],
    fp_values: list[str],
) -> Joined:
    """Join logged errors to the exception cluster their invocations threw (see the module docs).

    ``found``: the :func:`candidates` of these rows; ``labels`` index ``templates``,
    ``fingerprints`` index ``fp_values``."""
    joined_from = np.full(len(labels), -1, dtype=np.int64)
    unchanged = Joined(labels, fingerprints, joined_from, {})
    keep = labels[found.lpos] != labels[found.epos]
    lpos, epos = found.lpos[keep], found.epos[keep]
    if len(lpos):
        ts = text.take(pa.array(lpos)).to_pylist()
        es = text.take(pa.array(epos)).to_pylist()
        same = np.fromiter(
            (e == t or (len(t) >= 8 and e.endswith(": " + t)) for t, e in zip(ts, es, strict=True)),
            dtype=bool,
            count=len(ts),
        )
        lpos, epos = lpos[same], epos[same]
    if not len(lpos):
        return unchanged
    n_rows = np.bincount(labels[found.logs], minlength=len(templates))
    # distinct (log row, exception template, exception fingerprint), counted per (log template, ...)
    hit = np.unique(np.stack([lpos, labels[epos], fingerprints[epos]], axis=1), axis=0)
    combos, n = np.unique(
        np.stack([labels[hit[:, 0]], hit[:, 1], hit[:, 2]], axis=1), axis=0, return_counts=True
    )
    best: dict[int, tuple[int, int, int]] = {}
    for (l_t, e_t, e_fp), k in sorted(
        zip(combos.tolist(), n.tolist(), strict=True),
        key=lambda c: (templates[c[0][0]], -c[1], templates[c[0][1]], fp_values[c[0][2]]),
    ):
        best.setdefault(l_t, (e_t, e_fp, k))
    target = np.full(len(templates), -1, dtype=np.int64)
    target_fp = np.zeros(len(templates), dtype=np.int64)
    joined: dict[str, str] = {}
    for l_t in sorted(best, key=lambda t: templates[t]):
        e_t, e_fp, k = best[l_t]
        if k < JOIN_SHARE * int(n_rows[l_t]) or templates[l_t] in joined.values():
            continue
        target[l_t], target_fp[l_t] = e_t, e_fp
        joined[templates[l_t]] = templates[e_t]
    if not joined:
        return unchanged
    # each template is moved at most once and never after it received rows: one vectorised move
    move = np.flatnonzero((source != 0) & (target[labels] >= 0))
    labels, fingerprints = labels.copy(), fingerprints.copy()
    joined_from[move] = labels[move]
    fingerprints[move] = target_fp[labels[move]]
    labels[move] = target[labels[move]]
    return Joined(labels, fingerprints, joined_from, joined)
