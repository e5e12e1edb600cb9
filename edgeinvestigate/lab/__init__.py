"""The real-runtime lab: the job system of ``processing-architecture.md`` on workerd, investigated.

``lab/`` holds the Workers (producer, consumer, DLQ consumer, Tail Worker) and a lockfile pinning
wrangler 4.86.0. :func:`run_lab` (``edgeinvestigate lab run``, ``make lab``) starts the sandbox,
the collector and one ``wrangler dev``, drives an incident, collects the evidence, writes the
report, replays the top cluster into the real runtime and verifies it. See ``lab/README.md``.
"""

from __future__ import annotations

from edgeinvestigate.lab._runtime import WRANGLER_VERSION, find_lab_dir, node_available
from edgeinvestigate.lab._scenario import LabOptions, LabResult, run_lab
from edgeinvestigate.lab._services import ACCOUNT_ID, DLQ_QUEUE, IMMEDIATE_QUEUE, RETRY_QUEUE

__all__ = [
    "ACCOUNT_ID",
    "DLQ_QUEUE",
    "IMMEDIATE_QUEUE",
    "RETRY_QUEUE",
    "WRANGLER_VERSION",
    "LabOptions",
    "LabResult",
    "find_lab_dir",
    "node_available",
    "run_lab",
]
