"""An evidence bundle made of the clustering corpus, for ``bench_cluster.py --bundle`` (``ei.cluster`` end
to end: open the bundle, read its frames, cluster).

Every corpus message is an error row of a queue consumer: the messages of every fifth true template
are thrown as exceptions (``Error: <message>``, with a stack), the others logged as log lines
(error or warn level, with job id and type, as structured consumers log them), so that each template
is one kind of row, as in a real consumer. Half as many
invocations, and as many ``info`` lines as error rows that clustering must skip. Times increase with
the message index, so the saved frames keep the corpus order and the truth of every row is known.
Saved twice into ``bench-data/``: without stored clusters (the computing path) and with them (what
``collect`` writes).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_795_780_800_000  # 2026-11-27T12:00:00Z
TYPES = np.array(
    ["EMAIL_DELIVERY", "IMAGE_PROCESSING", "DATA_SYNC", "REPORT_GENERATION", "WEBHOOK_PROCESSING"],
    dtype=object,
)
STACK = "Error: x\n    at handler (src/index.js:10:5)\n    at run (src/jobs.js:20:3)"


def _frames(
    msgs: list[str], truth: list[int], seed: int
) -> tuple[dict[str, pd.DataFrame], dict[str, np.ndarray]]:
    from edgeinvestigate.models.frames import conform

    n = len(msgs)
    rng = np.random.default_rng(seed)
    n_inv = max(1, n // 2)
    owner = np.sort(rng.integers(0, n_inv, n))  # message i belongs to invocation owner[i]
    inv_ts = T0 + np.arange(n_inv, dtype=np.int64) * 7
    ids = np.array([f"{i:016x}" for i in range(n_inv)], dtype=object)
    invocations = pd.DataFrame(
        {
            "invocation_id": ids,
            "ts": pd.to_datetime(inv_ts, unit="ms", utc=True),
            "script": "jobs-consumer",
            "script_version": np.where(np.arange(n_inv) < n_inv // 2, "v1", "v2"),
            "trigger": "queue",
            "queue": "jobs",
            "outcome": np.where(rng.random(n_inv) < 0.3, "exception", "ok"),
            "failed": False,
            "source": "logpush",
        }
    )
    is_exc = np.asarray(truth) % 5 == 0
    ts = inv_ts[owner] + 1  # in message order (owners are sorted)
    text = np.asarray(msgs, dtype=object)
    li, ei_ = np.flatnonzero(~is_exc), np.flatnonzero(is_exc)
    errors = pd.DataFrame(
        {
            "invocation_id": ids[owner[li]],
            "ts": ts[li],
            "level": np.where(rng.random(len(li)) < 0.8, "error", "warn"),
            "message": text[li],
            "job_id": [f"job_{o:012x}" for o in owner[li]],
            "job_type": TYPES[owner[li] % 5],
            "attempt": 1,
        }
    )
    chatter = pd.DataFrame(
        {
            "invocation_id": ids[owner[li]],
            "ts": ts[li],
            "level": "info",
            "message": "job started",
        }
    )
    logs = pd.concat([errors, chatter], ignore_index=True)
    order = np.argsort(logs["ts"].to_numpy(), kind="stable")
    logs = logs.iloc[order].reset_index(drop=True)
    logs["ts"] = pd.to_datetime(logs["ts"], unit="ms", utc=True)
    log_of = np.full(len(order), -1, dtype=np.int64)  # log row -> corpus index (-1: chatter)
    is_error = order < len(li)
    log_of[is_error] = li[order[is_error]]
    exceptions = pd.DataFrame(
        {
            "invocation_id": ids[owner[ei_]],
            "ts": pd.to_datetime(ts[ei_], unit="ms", utc=True),
            "name": "Error",
            "message": text[ei_],
            "stack": STACK,
        }
    )
    frames = {
        "invocations": conform(invocations, "invocations"),
        "logs": conform(logs, "logs"),
        "exceptions": conform(exceptions, "exceptions"),
    }
    return frames, {"log": log_of, "exception": ei_}


def ensure(n: int, seed: int, n_templates: int) -> tuple[Path, Path, dict[str, np.ndarray], list[int]]:
    """The two bundles (plain, with stored clusters), the row -> corpus index maps, the truth."""
    from edgeinvestigate.analysis.clustering import cluster, store_clusters
    from edgeinvestigate.evidence.bundle import Evidence
    from edgeinvestigate.simulator import corpus

    msgs, truth = corpus(n, seed=seed, n_templates=n_templates)
    base = ROOT / "bench-data" / f"cluster-bundle-{n}-{seed}-{n_templates}"
    plain, stored, index = base / "plain", base / "stored", base / "rows.npz"
    marker = base / "done.json"
    if not marker.is_file():
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        frames, rows = _frames(msgs, truth, seed)
        ev = Evidence(**frames)
        assert ev.in_storage_order() is ev  # saved as built: rows keep the corpus order
        ev.save(plain)
        store_clusters(ev, cluster(ev, stored=False)).save(stored)
        np.savez(index, log=rows["log"], exception=rows["exception"])
        marker.write_text(json.dumps({"messages": n, "seed": seed, "templates": n_templates}))
    from edgeinvestigate.analysis.clustering._stored import code_version

    made = json.loads(marker.read_text())
    if made.get("code") != code_version():  # the clustering code changed: store its clusters anew
        ev = Evidence.open(plain)
        shutil.rmtree(stored, ignore_errors=True)
        store_clusters(ev, cluster(ev, stored=False)).save(stored)
        marker.write_text(json.dumps({**made, "code": code_version()}))
    loaded = np.load(index)
    return plain, stored, {"log": loaded["log"], "exception": loaded["exception"]}, truth


def labels_of(assign: pd.DataFrame, rows: dict[str, np.ndarray], n: int) -> np.ndarray:
    """The cluster id of every corpus message, from the error rows of ``ei.cluster``."""
    out = np.full(n, None, dtype=object)
    for source in ("log", "exception"):
        part = assign[assign["source"] == source]
        at = rows[source][part["row"].to_numpy()]
        keep = at >= 0
        out[at[keep]] = part["cluster_id"].to_numpy()[keep]
    return out
