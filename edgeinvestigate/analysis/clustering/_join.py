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
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd

__all__ = ["JOIN_SHARE", "join_thrown_and_logged"]

#: the share of a logged template's rows that must pair with one exception cluster for it to join
JOIN_SHARE: Final = 0.5


def join_thrown_and_logged(rows: pd.DataFrame) -> dict[str, str]:
    """Join logged errors to the exception cluster their invocations threw (see the module docs).

    Rewrites ``norm_template`` and ``fingerprint`` of the joined rows in place, sets
    ``joined_from`` (the template they had, else None) and returns ``{old template: new template}``.
    """
    rows["joined_from"] = None
    if rows.empty:
        return {}
    source = rows["source"]
    exc = rows[(source == "exception") & rows["invocation_id"].notna()]
    logs = rows[(source == "log") & rows["invocation_id"].notna() & rows["text"].notna()]
    if exc.empty or logs.empty:
        return {}
    pairs = pd.DataFrame(
        {
            "invocation_id": logs["invocation_id"].astype(object).to_numpy(),
            "ltext": logs["text"].astype(str).to_numpy(),
            "l_t": logs["norm_template"].to_numpy(),
            "li": logs.index.to_numpy(),
        }
    ).merge(
        pd.DataFrame(
            {
                "invocation_id": exc["invocation_id"].astype(object).to_numpy(),
                "etext": exc["text"].astype(str).to_numpy(),
                "e_t": exc["norm_template"].to_numpy(),
                "e_fp": exc["fingerprint"].to_numpy(),
            }
        ),
        on="invocation_id",
    )
    if pairs.empty:
        return {}
    same = np.fromiter(
        (
            lt != et and (e == t or (len(t) >= 8 and e.endswith(": " + t)))
            for t, e, lt, et in zip(pairs["ltext"], pairs["etext"], pairs["l_t"], pairs["e_t"], strict=True)
        ),
        dtype=bool,
        count=len(pairs),
    )
    pairs = pairs[same]
    if pairs.empty:
        return {}
    n_rows = logs.groupby("norm_template").size()
    hits = (
        pairs.drop_duplicates(["li", "e_t", "e_fp"])
        .groupby(["l_t", "e_t", "e_fp"])
        .size()
        .reset_index(name="n")
        .sort_values(["l_t", "n", "e_t", "e_fp"], ascending=[True, False, True, True], kind="stable")
        .drop_duplicates("l_t")
    )
    joined: dict[str, str] = {}
    for l_t, e_t, e_fp, n in hits.itertuples(index=False):
        if n < JOIN_SHARE * int(n_rows.get(l_t, 0)) or l_t in joined.values():
            continue
        move = (rows["norm_template"] == l_t) & (rows["source"] != "exception")
        rows.loc[move, "norm_template"] = e_t
        rows.loc[move, "fingerprint"] = e_fp
        rows.loc[move, "joined_from"] = l_t
        joined[str(l_t)] = str(e_t)
    return joined
