"""The invocations of a run in time order: consumer batches and producer requests / cron ticks merged.

``c_rank`` / ``p_rank`` give the position in the timeline of each consumer batch / producer
invocation; every other part of the run refers to invocations by that position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgeinvestigate.simulator._deliveries import Deliveries
from edgeinvestigate.simulator._production import Production
from edgeinvestigate.simulator._scenario import Scenario
from edgeinvestigate.simulator._templates import Templates
from edgeinvestigate.simulator._values import hex_ids

__all__ = ["Timeline", "timeline"]


@dataclass
class Timeline:
    """Invocation columns (``i_*``, as in :class:`~._simulation.Simulation`), sorted by time."""

    c_rank: np.ndarray
    p_rank: np.ndarray
    i_ts: np.ndarray
    i_script: np.ndarray  # 0 consumer, 1 producer
    i_trigger: np.ndarray  # 0 queue, 1 fetch, 2 scheduled
    i_version: np.ndarray  # index into the consumer versions, -1 for the producer
    i_outcome: list[str]
    i_cpu: np.ndarray
    i_wall: np.ndarray
    i_batch: np.ndarray
    i_status: np.ndarray  # fetch response status
    i_request_id: list[str]
    i_colo: list[str]
    i_client_ip: list[str]


def timeline(
    scenario: Scenario,
    jobs: Production,
    deliveries: Deliveries,
    templates: Templates,
    rng: np.random.Generator,
) -> Timeline:
    """Merge the consumer's batches and the producer's invocations; draw what the producer's lack."""
    b = deliveries.b
    nc, npi = len(b["ts"]), len(jobs.p_ts)
    ts_all = np.concatenate([b["ts"], jobs.p_ts])
    order = np.argsort(ts_all, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    p_wall = (8 + rng.lognormal(2.5, 0.6, npi) + 2 * jobs.p_count).astype(np.int64)
    p_cpu = np.maximum(1, (p_wall * 0.15).astype(np.int64))
    outcome_c = [
        "ok" if x < 0 else (templates.info[x].outcome or "exception") for x in b["outcome_tpl"].tolist()
    ]
    outcomes = outcome_c + ["ok"] * npi
    n = nc + npi
    request_ids = hex_ids(rng, n, 16)
    colos = scenario.system.colos
    colo = [colos[k] for k in rng.integers(0, len(colos), n).tolist()]
    ips = rng.integers(1, 255, size=(n, 4)).tolist()
    return Timeline(
        c_rank=rank[:nc],
        p_rank=rank[nc:],
        i_ts=ts_all[order],
        i_script=np.concatenate([np.zeros(nc, np.int8), np.ones(npi, np.int8)])[order],
        i_trigger=np.concatenate([np.zeros(nc, np.int8), jobs.p_trigger])[order],
        i_version=np.concatenate([b["version"], np.full(npi, -1)])[order],
        i_outcome=[outcomes[k] for k in order.tolist()],
        i_cpu=np.concatenate([b["cpu"], p_cpu])[order],
        i_wall=np.concatenate([b["wall"], p_wall])[order],
        i_batch=np.concatenate([b["size"], np.zeros(npi, np.int64)])[order],
        i_status=np.concatenate([np.zeros(nc, np.int32), np.where(jobs.p_trigger == 1, 202, 0)])[order],
        i_request_id=request_ids,
        i_colo=colo,
        i_client_ip=[f"{x[0]}.{x[1]}.{x[2]}.{x[3]}" for x in ips],
    )
