"""The exceptions of a run: the limit error of a killed invocation, or an uncaught bug at a batch's end."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeinvestigate.simulator._deliveries import Deliveries
from edgeinvestigate.simulator._simulation import KILLED
from edgeinvestigate.simulator._templates import Templates
from edgeinvestigate.simulator._texts import Texts
from edgeinvestigate.simulator._timeline import Timeline

__all__ = ["Exceptions", "exceptions"]

_LIMIT_STACK = (
    "{name}: {message}\n    at generateReport (index.js:233:11)\n    at async Object.queue (index.js:71:9)"
)
_UNCAUGHT_STACK = (
    "{name}: {message}\n    at flushMetrics (index.js:412:17)\n    at async Object.queue (index.js:88:5)"
)


@dataclass
class Exceptions:
    """Exception columns (``x_*``, as in :class:`~._simulation.Simulation`), sorted by invocation;
    ``x_off[i]:x_off[i+1]`` are invocation i's."""

    x_inv: np.ndarray
    x_ts: np.ndarray
    x_name: list[str]
    x_message: list[str]
    x_stack: list[str]
    x_tpl: np.ndarray
    x_off: np.ndarray


def exceptions(
    deliveries: Deliveries, tl: Timeline, templates: Templates, texts: Texts, d_error: list[str | None]
) -> Exceptions:
    d, b = deliveries.d, deliveries.b
    d_inv = tl.c_rank[d["inv"]]
    killer = np.flatnonzero(d["status"] == KILLED)
    x_msg_k = [d_error[i] or "" for i in killer.tolist()]
    out_tpl = b["outcome_tpl"]
    unc_b = np.flatnonzero((out_tpl >= 0) & ~np.isin(np.arange(len(b["ts"])), d["inv"][killer]))
    x_tpl_u = out_tpl[unc_b]
    x_msg_u = [str(x) for x in texts.render(x_tpl_u)]
    x_inv = np.concatenate([d_inv[killer], tl.c_rank[unc_b]])
    xo = np.argsort(x_inv, kind="stable")
    x_inv = x_inv[xo]
    x_ts = np.concatenate([d["end"][killer], b["ts"][unc_b] + b["wall"][unc_b]]).astype(np.int64)[xo]
    x_tpl = np.concatenate([d["tpl"][killer], x_tpl_u]).astype(np.int32)[xo]
    msgs = x_msg_k + x_msg_u
    x_message = [msgs[k] for k in xo.tolist()]
    x_name = [templates.info[int(t)].name for t in x_tpl.tolist()]
    x_stack = []
    for name, msg, t in zip(x_name, x_message, x_tpl.tolist(), strict=True):
        stack = _UNCAUGHT_STACK if templates.info[t].source == "uncaught" else _LIMIT_STACK
        x_stack.append(stack.format(name=name, message=msg))
    return Exceptions(
        x_inv=x_inv,
        x_ts=x_ts,
        x_name=x_name,
        x_message=x_message,
        x_stack=x_stack,
        x_tpl=x_tpl,
        x_off=np.searchsorted(x_inv, np.arange(len(tl.i_ts) + 1)),
    )
