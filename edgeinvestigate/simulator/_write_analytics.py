"""``analytics/analytics.json``: the run's Queue and Worker analytics as a GraphQL Analytics response.

The same shape the API answers (``{"data": {"viewer": {"accounts": [{dataset: [groups]}]}}, "errors":
null}``) with one group per minute, written from the run (no random draws, so the other files of a
scenario do not change): ``collect --queue-metrics-file`` reads it, ``simulate --sandbox`` loads it
into the sandbox's ``/graphql``. ``extensions.edgeinvestigate.queues`` maps the queue ids to names.

How the run becomes analytics (the immediate queue and the DLQ; the consumer is a Worker):

* ``WriteMessage``: each job when the producer sends it; on the DLQ each message that arrives there
  (the consumer's ``{original, error}`` sends and the runtime's moves);
* ``ReadMessage`` (``worker``): each delivery, at its batch's invocation, ``retryCount`` its attempt - 1,
  ``lagTime`` from the job's send;
* ``DeleteMessage`` (``worker``): ``success`` for each ack (a completed job, and a permanent error the
  consumer dead-letters itself, which it then acks), ``dlq`` for each runtime move after ``max_retries``;
* backlog: messages sent and not yet deleted, sampled every 10 s, the minute's mean (bytes likewise);
  minutes of an empty queue with no operation have no group (no data);
* concurrency: consumer invocations running, sampled every 10 s, the minute's mean, for minutes with any;
* ``workersInvocationsAdaptive``: per minute, script and status (``success``, ``scriptThrewException``,
  ``exceededResources``), requests, errors, ``subrequests`` 0 (not simulated), CPU P50/P99 in
  microseconds (the API's unit: ``models.analytics.CPU_TIME_UNIT``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from edgeinvestigate.models.analytics import BACKLOG, CONSUMERS, INVOCATIONS, OPERATIONS
from edgeinvestigate.simulator._simulation import KILLED, OK, PERM, RETRY, SKIPPED, Simulation

__all__ = ["analytics_response", "write_analytics"]

_MIN = 60_000
_SAMPLE = 10_000
_ENC = msgspec.json.Encoder()
_STATUS = {"ok": "success", "exception": "scriptThrewException"}


def _minute_iso(ms: int) -> str:
    return str(np.datetime64(int(ms) // 1000, "s")) + "Z"


def _ops(
    groups: dict[tuple[Any, ...], list[float]], qid: str, action: str, ctype: str, outcome: str,
    at: np.ndarray, sizes: np.ndarray, lags: np.ndarray, retries: np.ndarray,
) -> None:  # fmt: skip
    """Add one operation per element (times ``at``) to ``groups[(minute, qid, action, ctype, outcome)]``."""
    if len(at) == 0:
        return
    minute = at - at % _MIN
    for m in np.unique(minute).tolist():
        sel = minute == m
        g = groups.setdefault((m, qid, action, ctype, outcome), [0, 0, 0.0, 0.0, 0])
        g[0] += int(sel.sum())
        g[1] += int(sizes[sel].sum())
        g[2] += float(lags[sel].sum())
        g[3] += float(retries[sel].sum())
        g[4] = max(g[4], int(sizes[sel].max()))


def _gauge(changes_t: np.ndarray, changes_v: np.ndarray, start: int, end: int) -> dict[int, float]:
    """The mean per minute of a step function (sum of ``changes_v`` at times ``changes_t``), sampled every
    10 s over ``[start, end)``; only minutes where it is not zero throughout."""
    order = np.argsort(changes_t, kind="stable")
    t, v = changes_t[order], np.cumsum(changes_v[order])
    first = start - start % _MIN
    samples = np.arange(first, end, _SAMPLE, dtype=np.int64)
    idx = np.searchsorted(t, samples, side="right") - 1
    level = np.where(idx >= 0, v[np.maximum(idx, 0)], 0.0)
    out: dict[int, float] = {}
    minute = samples - samples % _MIN
    for m in np.unique(minute).tolist():
        vals = level[minute == m]
        if vals.any():
            out[int(m)] = float(vals.mean())
    return out


def analytics_response(sim: Simulation) -> dict[str, Any]:
    """The run's analytics as one GraphQL response body (see the module docs)."""
    s = sim.scenario.system
    qid, dlq_id = sim.queue_ids[s.queue], sim.queue_ids[s.dlq]
    sizes = np.array([len(_ENC.encode(sim.queue_message(j))) for j in range(len(sim.job_ts))], dtype=np.int64)
    inv_ts = sim.i_ts[sim.d_inv]
    d_size = sizes[sim.d_job]
    sent = sim.job_ts[sim.d_job]
    ops: dict[tuple[Any, ...], list[float]] = {}
    zeros = np.zeros(len(sim.job_ts))
    _ops(ops, qid, "WriteMessage", "", "", sim.job_ts, sizes, zeros, zeros)
    _ops(ops, qid, "ReadMessage", "worker", "", inv_ts, d_size, inv_ts - sent, sim.d_attempt - 1.0)
    again = np.isin(sim.d_status, (RETRY, KILLED, SKIPPED))
    acked = (sim.d_status == OK) | (sim.d_status == PERM)
    moved = again & sim.d_final
    # a message past max_retries is moved when its batch ends (when _dead_letters has it arrive)
    t_gone = np.where(moved, inv_ts + sim.i_wall[sim.d_inv].astype(np.int64) + 1, sim.d_end)
    for mask, outcome in ((acked, "success"), (moved, "dlq")):
        _ops(ops, qid, "DeleteMessage", "worker", outcome, t_gone[mask], d_size[mask],
             t_gone[mask] - sent[mask], sim.d_attempt[mask] - 1.0)  # fmt: skip
    dlq_sizes = np.array([len(_ENC.encode(m["body"])) for m in sim.dlq], dtype=np.int64)
    dlq_at = np.array([int(i["arrived_ms"]) for i in sim.dlq_info], dtype=np.int64)
    _ops(ops, dlq_id, "WriteMessage", "", "", dlq_at, dlq_sizes, np.zeros(len(dlq_at)), np.zeros(len(dlq_at)))
    start, end = (
        sim.scenario.start_ms,
        int(max(sim.i_ts.max(initial=0) + sim.i_wall.max(initial=0), sim.scenario.end_ms)),
    )
    gone = acked | moved
    backlog: dict[str, tuple[dict[int, float], dict[int, float]]] = {
        qid: (
            _gauge(np.concatenate([sim.job_ts, t_gone[gone]]),
                   np.concatenate([np.ones(len(sim.job_ts)), -np.ones(int(gone.sum()))]), start, end),
            _gauge(np.concatenate([sim.job_ts, t_gone[gone]]),
                   np.concatenate([sizes, -d_size[gone]]).astype(float), start, end),
        ),
        dlq_id: (
            _gauge(dlq_at, np.ones(len(dlq_at)), start, end),
            _gauge(dlq_at, dlq_sizes.astype(float), start, end),
        ),
    }  # fmt: skip
    consumer = sim.i_script == 0
    conc = _gauge(
        np.concatenate(
            [sim.i_ts[consumer], sim.i_ts[consumer] + np.maximum(sim.i_wall[consumer], 1).astype(np.int64)]
        ),
        np.concatenate([np.ones(int(consumer.sum())), -np.ones(int(consumer.sum()))]),
        start,
        end,
    )
    account = {
        BACKLOG: [
            {"avg": {"messages": msgs[m], "bytes": byts.get(m, 0.0)},
             "dimensions": {"datetimeMinute": _minute_iso(m), "queueId": q}}
            for q, (msgs, byts) in backlog.items()
            for m in sorted(msgs)
        ],
        CONSUMERS: [
            {"avg": {"concurrency": v}, "dimensions": {"datetimeMinute": _minute_iso(m), "queueId": qid}}
            for m, v in sorted(conc.items())
        ],
        OPERATIONS: [
            {
                "count": int(g[0]),
                "sum": {"bytes": int(g[1]), "billableOperations": int(g[0])},
                "avg": {"lagTime": g[2] / g[0], "retryCount": g[3] / g[0]},
                "max": {"messageSize": int(g[4])},
                "dimensions": {"datetimeMinute": _minute_iso(m), "queueId": q, "actionType": a,
                               "consumerType": c, "outcome": o},
            }
            for (m, q, a, c, o), g in sorted(ops.items())
        ],
        INVOCATIONS: _invocations(sim),
    }  # fmt: skip
    return {
        "data": {"viewer": {"accounts": [account]}},
        "errors": None,
        "extensions": {"edgeinvestigate": {"queues": {qid: s.queue, dlq_id: s.dlq}}},
    }


def _invocations(sim: Simulation) -> list[dict[str, Any]]:
    s = sim.scenario.system
    scripts = (s.consumer_script, s.producer_script)
    status = np.array(
        [
            _STATUS.get(o, "exceededResources" if o.startswith("exceeded") else "internalError")
            for o in sim.i_outcome
        ]
    )
    minute = sim.i_ts - sim.i_ts % _MIN
    out = []
    keys = sorted(set(zip(minute.tolist(), sim.i_script.tolist(), status.tolist(), strict=True)))
    for m, sc, st in keys:
        sel = (minute == m) & (sim.i_script == sc) & (status == st)
        cpu_us = sim.i_cpu[sel].astype(float) * 1000.0
        n = int(sel.sum())
        out.append(
            {
                "sum": {"requests": n, "errors": 0 if st == "success" else n, "subrequests": 0},
                "quantiles": {
                    "cpuTimeP50": float(np.percentile(cpu_us, 50)),
                    "cpuTimeP99": float(np.percentile(cpu_us, 99)),
                },
                "dimensions": {"datetimeMinute": _minute_iso(m), "scriptName": scripts[sc], "status": st},
            }
        )
    return out


def write_analytics(sim: Simulation, path: Path) -> int:
    """Write ``analytics/analytics.json``; returns the number of groups."""
    body = analytics_response(sim)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(msgspec.json.format(_ENC.encode(body), indent=1) + b"\n")
    account = body["data"]["viewer"]["accounts"][0]
    return sum(len(v) for v in account.values())
