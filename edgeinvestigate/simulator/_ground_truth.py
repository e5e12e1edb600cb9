"""``ground_truth.json``: what really happened, to score clustering and root-cause analysis.

Top-level keys (stable; add, never rename):

- ``format``, ``scenario``, ``description``, ``seed``, ``generator`` (package version)
- ``account_id``, ``consumer_script``, ``producer_script``
- ``queues``: ``{immediate|retry|dlq: {name, id}}``; ``consumer``: the consumer settings used
- ``window``: ``{start, end, last_event}`` (ISO-8601 UTC)
- ``deployments``: ``[{script, version_id, tag, message, at}]``
- ``root_causes``: ``[{id, kind, job_type, transient, description, script_version?, start, end,
  first_error, last_error, template_ids, n_failed_deliveries, n_collateral_deliveries,
  affected_message_ids, affected_job_ids, dlq_message_ids}]``
- ``affected_job_types``: job types hit by a root cause
- ``counts``: invocations (total / by script / by outcome / by trigger), logs (total / by level),
  exceptions, deliveries by status, jobs, DLQ (total / wrapped / raw), errors
- ``templates``: ``[{id, text, kind, source, name, incident}]``, ``text`` with ``<*>`` for variables
- ``errors``: every error message and its true template: ``[{where: log|exception|dlq, ts, text,
  template_id, root_cause, level?, request_id?, message_id?, job_id?, job_type?, attempt?,
  dlq_message_id?}]`` (log = every ``warn``/``error`` line: its ``error`` field or its text)
- ``dlq``: one entry per DLQ message: ids, envelope (wrapped | raw), deliveries before it arrived,
  error / last error and template, root cause, ``dlq_attempts``
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from edgeinvestigate._version import __version__
from edgeinvestigate.simulator._records import TRIGGER_NAMES
from edgeinvestigate.simulator._scenario import JOB_TYPES
from edgeinvestigate.simulator._simulation import LEVELS, SKIPPED, STATUS_NAMES, Simulation, iso

__all__ = ["ground_truth", "write_ground_truth"]

FORMAT = "edgeinvestigate-ground-truth/1"


def _errors(sim: Simulation) -> list[dict[str, Any]]:
    T = sim.templates
    out: list[dict[str, Any]] = []
    req = sim.i_request_id
    sel = np.flatnonzero(sim.l_level >= LEVELS.index("warn")).tolist()
    l_inv = sim.l_inv.tolist()
    l_ts = sim.l_ts.tolist()
    l_tpl = sim.l_tpl.tolist()
    l_job = sim.l_job.tolist()
    l_level = sim.l_level.tolist()
    for k in sel:
        tpl = T[l_tpl[k]]
        rec: dict[str, Any] = {
            "where": "log",
            "ts": iso(l_ts[k]),
            "text": sim.l_error[k],
            "template_id": tpl.id,
            "root_cause": tpl.incident,
            "level": LEVELS[l_level[k]],
            "request_id": req[l_inv[k]],
        }
        di = l_job[k]
        if di >= 0:
            j = int(sim.d_job[di])
            rec.update(
                message_id=sim.msg_ids[j],
                job_id=sim.job_ids[j],
                job_type=JOB_TYPES[int(sim.job_type[j])],
                attempt=int(sim.d_attempt[di]),
            )
        out.append(rec)
    x_inv = sim.x_inv.tolist()
    for k, (ts, tpl_i) in enumerate(zip(sim.x_ts.tolist(), sim.x_tpl.tolist(), strict=True)):
        tpl = T[tpl_i]
        out.append(
            {
                "where": "exception",
                "ts": iso(ts),
                "text": sim.x_message[k],
                "name": sim.x_name[k],
                "template_id": tpl.id,
                "root_cause": tpl.incident,
                "request_id": req[x_inv[k]],
            }
        )
    for info in sim.dlq_info:
        if info["error"] is None:
            continue
        out.append(
            {
                "where": "dlq",
                "ts": iso(info["arrived_ms"]),
                "text": info["error"],
                "template_id": info["template_id"],
                "root_cause": info["root_cause"],
                "dlq_message_id": info["dlq_message_id"],
                "message_id": info["message_id"],
                "job_id": info["job_id"],
                "job_type": info["job_type"],
                "attempt": info["deliveries"],
            }
        )
    return out


def _root_causes(sim: Simulation) -> list[dict[str, Any]]:
    sc = sim.scenario
    out = []
    tags = [d.tag for d in sc.deployments]
    for k, inc in enumerate(sc.incidents):
        a, b = sc.incident_window(inc)
        mine = sim.d_cause == k
        collateral = mine & (sim.d_status == SKIPPED)
        failed = mine & ~collateral
        f_idx = np.flatnonzero(failed)
        jobs = sim.d_job[np.flatnonzero(mine)]
        order = np.unique(jobs, return_index=True)
        first_seen = jobs[np.sort(order[1])]
        rc: dict[str, Any] = {
            "id": inc.id,
            "kind": inc.kind,
            "job_type": inc.job_type,
            "transient": inc.is_transient,
            "description": inc.description,
            "start": iso(a),
            "end": iso(min(b, sc.end_ms)) if inc.kind == "bad_deploy" else iso(b),
            "first_error": iso(int(sim.d_end[f_idx].min())) if len(f_idx) else None,
            "last_error": iso(int(sim.d_end[f_idx].max())) if len(f_idx) else None,
            "template_ids": [t.id for t in sim.templates if t.incident == inc.id],
            "n_failed_deliveries": len(f_idx),
            "n_collateral_deliveries": int(collateral.sum()),
            "affected_message_ids": [sim.msg_ids[j] for j in first_seen.tolist()],
            "affected_job_ids": [sim.job_ids[j] for j in first_seen.tolist()],
            "dlq_message_ids": [d["dlq_message_id"] for d in sim.dlq_info if d["root_cause"] == inc.id],
        }
        if inc.kind == "bad_deploy":
            v = sim.versions[tags.index(inc.deployment or "")]
            rc["script_version"] = {"id": v.id, "tag": v.tag, "message": v.message, "script": v.script}
            if tags.index(inc.deployment or "") + 1 < len(tags):
                nxt = sim.versions[tags.index(inc.deployment or "") + 1]
                rc["fixed_by"] = {"id": nxt.id, "tag": nxt.tag, "message": nxt.message}
        out.append(rc)
    return out


def ground_truth(sim: Simulation) -> dict[str, Any]:
    """The ground truth of a run as a JSON-ready dict."""
    sc, s = sim.scenario, sim.scenario.system
    scripts = [s.consumer_script, s.producer_script]
    last = int((sim.i_ts + sim.i_wall).max()) if sim.n_invocations else sc.end_ms
    errors = _errors(sim)
    root = _root_causes(sim)
    return {
        "format": FORMAT,
        "scenario": sc.name,
        "description": sc.description,
        "seed": sim.seed,
        "generator": f"edgeinvestigate {__version__}",
        "account_id": sim.account_id,
        "consumer_script": s.consumer_script,
        "producer_script": s.producer_script,
        "queues": {
            "immediate": {"name": s.queue, "id": sim.queue_ids[s.queue]},
            "retry": {"name": s.retry_queue, "id": sim.queue_ids[s.retry_queue]},
            "dlq": {"name": s.dlq, "id": sim.queue_ids[s.dlq]},
        },
        "consumer": {
            "max_retries": s.max_retries,
            "batch_size": s.batch_size,
            "max_wait_time_ms": int(s.batch_timeout_s * 1000),
            "retry_delay": s.retry_delay_s,
            "dead_letter_queue": s.dlq,
            "backoff": {"base_s": s.backoff_base_s, "factor": s.backoff_factor, "max_s": s.backoff_max_s},
            "dlq_envelope": s.dlq_envelope,
            "dlq_json_encoding": s.dlq_json_encoding,
        },
        "window": {"start": iso(sc.start_ms), "end": iso(sc.end_ms), "last_event": iso(last)},
        "deployments": [
            {"script": v.script, "version_id": v.id, "tag": v.tag, "message": v.message, "at": iso(v.at_ms)}
            for v in [sim.producer_version, *sim.versions]
        ],
        "root_causes": root,
        "affected_job_types": sorted({r["job_type"] for r in root}),
        "counts": {
            "invocations": {
                "total": sim.n_invocations,
                "by_script": {scripts[k]: v for k, v in sorted(Counter(sim.i_script.tolist()).items())},
                "by_outcome": dict(sorted(Counter(sim.i_outcome).items())),
                "by_trigger": {
                    TRIGGER_NAMES[k]: v for k, v in sorted(Counter(sim.i_trigger.tolist()).items())
                },
                "failed": int(
                    sum(1 for o in sim.i_outcome if o != "ok")
                    + np.count_nonzero(
                        (np.diff(sim.x_off) > 0) & (np.array(sim.i_outcome, dtype=object) == "ok")
                    )
                ),
            },
            "logs": {
                "total": len(sim.l_text),
                "by_level": {LEVELS[k]: v for k, v in sorted(Counter(sim.l_level.tolist()).items())},
            },
            "exceptions": len(sim.x_message),
            "jobs": len(sim.job_ids),
            "deliveries": {STATUS_NAMES[k]: v for k, v in sorted(Counter(sim.d_status.tolist()).items())},
            "dlq": {
                "total": len(sim.dlq),
                "wrapped": sum(1 for d in sim.dlq_info if d["envelope"] == "wrapped"),
                "raw": sum(1 for d in sim.dlq_info if d["envelope"] == "raw"),
            },
            "errors": dict(sorted(Counter(e["where"] for e in errors).items())),
        },
        "templates": [
            {
                "id": t.id,
                "text": t.text,
                "kind": t.kind,
                "source": t.source,
                "name": t.name,
                "incident": t.incident,
            }
            for t in sim.templates
        ],
        "errors": errors,
        "dlq": [{**d, "arrived": iso(d.pop("arrived_ms"))} for d in (dict(x) for x in sim.dlq_info)],
    }


_ONE_PER_LINE = ("errors", "dlq")


def write_ground_truth(sim: Simulation, path: Path) -> dict[str, Any]:
    """Write ``ground_truth.json``: indented, except one compact record per line in the long lists."""
    gt = ground_truth(sim)
    path.parent.mkdir(parents=True, exist_ok=True)
    enc = msgspec.json.encode
    parts = []
    for key, value in gt.items():
        if key in _ONE_PER_LINE and value:
            body = b"[\n  " + b",\n  ".join(enc(v) for v in value) + b"\n ]"
        else:
            body = msgspec.json.format(enc(value), indent=1).replace(b"\n", b"\n ")
        parts.append(b" " + enc(key) + b": " + body)
    path.write_bytes(b"{\n" + b",\n".join(parts) + b"\n}\n")
    return gt
