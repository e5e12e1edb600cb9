"""The DLQ of a run, in arrival order: what each dead-lettered delivery left in the dead letter queue.

A permanent error is an explicit send by the consumer: a NEW message (new id, ``timestamp_ms`` of the
send) with body ``{original, error}`` (``original`` is ``{id, timestamp, body, attempts}`` with
``dlq_envelope = "message"``, else the ``QueueMessage``). Exhausted retries are runtime moves: same id,
same ``timestamp_ms``, the original body. ``attempts`` counts earlier snapshot pulls from the DLQ.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgeinvestigate.simulator._deliveries import Deliveries
from edgeinvestigate.simulator._scenario import JOB_TYPES
from edgeinvestigate.simulator._simulation import SKIPPED, STATUS_NAMES, Simulation, iso
from edgeinvestigate.simulator._templates import pick_cum
from edgeinvestigate.simulator._values import hex_ids

__all__ = ["add_dead_letters"]

_Entry = tuple[int, int, dict[str, Any], dict[str, Any]]  # (arrival ms, 0 wrapped | 1 raw, message, info)


def add_dead_letters(sim: Simulation, deliveries: Deliveries, rng: np.random.Generator) -> None:
    """Fill ``sim.dlq`` (peek-shaped messages) and ``sim.dlq_info`` (their ground truth)."""
    wrapped = deliveries.dlq_wrapped_idx.tolist()
    new_ids = hex_ids(rng, len(wrapped), 32)
    entries = [_wrapped(sim, di, new_id) for di, new_id in zip(wrapped, new_ids, strict=True)]
    entries += [_raw(sim, di) for di in deliveries.dlq_raw_idx.tolist()]
    entries.sort(key=lambda e: (e[0], e[1], e[2]["id"]))
    prior = np.array(sim.scenario.system.dlq_prior_pulls, dtype=float)
    pulls = pick_cum(np.cumsum(prior / prior.sum()), rng.random(len(entries))).tolist()
    for (_, _, msg, info), p in zip(entries, pulls, strict=True):
        msg["attempts"] = int(p)
        info["dlq_attempts"] = int(p)
        sim.dlq.append(msg)
        sim.dlq_info.append(info)


def _cause_id(sim: Simulation, k: int) -> str | None:
    return sim.scenario.incidents[k].id if k >= 0 else None


def _job_info(sim: Simulation, j: int) -> dict[str, Any]:
    return {
        "message_id": sim.msg_ids[j],
        "job_id": sim.job_ids[j],
        "job_type": JOB_TYPES[int(sim.job_type[j])],
    }


def _wrapped(sim: Simulation, di: int, new_id: str) -> _Entry:
    """The consumer's ``{original, error}`` send of delivery ``di`` (a permanent error)."""
    j = int(sim.d_job[di])
    sent = int(sim.d_end[di])
    att = int(sim.d_attempt[di])
    body = sim.queue_message(j)
    body["metadata"] = {**body["metadata"], "attempts": att, "lastAttempt": iso(sent)}
    if sim.scenario.system.dlq_envelope == "message":
        original: dict[str, Any] = {
            "id": sim.msg_ids[j],
            "timestamp": iso(int(sim.job_ts[j])),
            "body": body,
            "attempts": att,
        }
    else:
        original = body
    env = {"original": original, "error": sim.d_error[di]}
    info = {
        "dlq_message_id": new_id,
        **_job_info(sim, j),
        "envelope": "wrapped",
        "arrived_ms": sent,
        "deliveries": att,
        "error": sim.d_error[di],
        "template_id": sim.templates[int(sim.d_tpl[di])].id,
        "root_cause": _cause_id(sim, int(sim.d_cause[di])),
    }
    return sent, 0, {"id": new_id, "timestamp_ms": sent, "body": env}, info


def _raw(sim: Simulation, di: int) -> _Entry:
    """The runtime's move of delivery ``di`` (retries exhausted): the message as it was sent."""
    j = int(sim.d_job[di])
    inv = int(sim.d_inv[di])
    arrived = int(sim.i_ts[inv] + sim.i_wall[inv]) + 1
    st = int(sim.d_status[di])
    tpl = int(sim.d_tpl[di])
    last_tpl = sim.templates[tpl].id if tpl >= 0 and st != SKIPPED else None
    info = {
        "dlq_message_id": sim.msg_ids[j],
        **_job_info(sim, j),
        "envelope": "raw",
        "arrived_ms": arrived,
        "deliveries": int(sim.d_attempt[di]),
        "error": None,
        "last_error": sim.d_error[di] if st != SKIPPED else None,
        "template_id": last_tpl,
        "last_status": STATUS_NAMES[st],
        "root_cause": _cause_id(sim, int(sim.d_cause[di])),
    }
    message = {"id": sim.msg_ids[j], "timestamp_ms": int(sim.job_ts[j]), "body": sim.queue_message(j)}
    return arrived, 1, message, info
