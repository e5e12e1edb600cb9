"""The result of a simulation run: every invocation, delivery, log line, exception and DLQ message.

:class:`Simulation` holds index-aligned columns (numpy arrays and string lists) that every writer reads;
:data:`LEVELS` and the delivery status codes (:data:`STATUS_NAMES`) give the meaning of the coded ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeinvestigate.simulator._payloads import JobPayloads
from edgeinvestigate.simulator._scenario import JOB_TYPES, Scenario

__all__ = [
    "KILLED",
    "LEVELS",
    "L_DEBUG",
    "L_ERROR",
    "L_INFO",
    "L_LOG",
    "L_WARN",
    "OK",
    "PERM",
    "RETRY",
    "SKIPPED",
    "STATUS_NAMES",
    "Simulation",
    "TemplateInfo",
    "Version",
    "iso",
]

LEVELS = ("debug", "info", "log", "warn", "error")
L_DEBUG, L_INFO, L_LOG, L_WARN, L_ERROR = range(5)

# delivery status
OK, RETRY, PERM, KILLED, SKIPPED = range(5)
STATUS_NAMES = ("ok", "retry", "permanent", "killed", "skipped")


@dataclass(frozen=True)
class TemplateInfo:
    """A true message template of the run: id, ``<*>`` text, kind, and the root cause it belongs to."""

    id: str
    text: str
    kind: str  # transient | permanent | benign | limit
    source: str  # incident | noise | uncaught | chatter
    name: str = "Error"
    incident: str | None = None
    outcome: str | None = None


@dataclass
class Version:
    id: str
    tag: str
    message: str
    at_ms: int
    script: str


@dataclass
class Simulation:
    """Everything a writer needs: columnar arrays (numpy) and string lists, all index-aligned."""

    scenario: Scenario
    seed: int
    account_id: str
    queue_ids: dict[str, str]
    versions: list[Version]
    producer_version: Version
    templates: list[TemplateInfo]
    # jobs (one per produced message)
    job_type: np.ndarray
    job_ts: np.ndarray
    job_tenant: np.ndarray
    job_ids: list[str]
    msg_ids: list[str]
    tenants: list[str]
    payloads: JobPayloads
    job_cause: np.ndarray  # incident index flagged at production (poison / heavy), -1 otherwise
    # deliveries
    d_job: np.ndarray
    d_attempt: np.ndarray
    d_inv: np.ndarray
    d_status: np.ndarray
    d_tpl: np.ndarray
    d_cause: np.ndarray  # incident index responsible (incl. collateral of a kill), -1 otherwise
    d_start: np.ndarray
    d_end: np.ndarray
    d_final: np.ndarray
    d_error: list[str | None]
    # invocations (sorted by ts)
    i_ts: np.ndarray
    i_script: np.ndarray  # 0 consumer, 1 producer
    i_trigger: np.ndarray  # 0 queue, 1 fetch, 2 scheduled
    i_version: np.ndarray  # index into versions (consumer) or -1 (producer)
    i_outcome: list[str]
    i_cpu: np.ndarray
    i_wall: np.ndarray
    i_batch: np.ndarray
    i_status: np.ndarray  # fetch response status
    i_request_id: list[str]
    i_colo: list[str]
    i_client_ip: list[str]
    # logs, sorted by (invocation, ts); l_off[i]:l_off[i+1] are invocation i's
    l_inv: np.ndarray
    l_ts: np.ndarray
    l_level: np.ndarray
    l_text: list[str]
    l_error: list[str | None]  # the error text of warn/error lines (structured error field or the line)
    l_tpl: np.ndarray  # true template of warn/error lines, -1 otherwise
    l_job: np.ndarray  # delivery index of job lines, -1 otherwise
    l_off: np.ndarray
    # exceptions, sorted by invocation; x_off like l_off
    x_inv: np.ndarray
    x_ts: np.ndarray
    x_name: list[str]
    x_message: list[str]
    x_stack: list[str]
    x_tpl: np.ndarray
    x_off: np.ndarray
    # DLQ messages in arrival order
    dlq: list[dict[str, Any]] = field(default_factory=list)
    dlq_info: list[dict[str, Any]] = field(default_factory=list)

    @property
    def n_invocations(self) -> int:
        return len(self.i_ts)

    def queue_message(self, j: int) -> dict[str, Any]:
        """The ``QueueMessage`` body of job ``j`` as the producer sent it."""
        return {
            "type": JOB_TYPES[int(self.job_type[j])],
            "payload": self.payloads(j),
            "metadata": {"attempts": 0, "originalTimestamp": iso(int(self.job_ts[j]))},
        }


def iso(ms: int) -> str:
    """``2026-11-27T14:00:00.000Z`` of epoch ms."""
    return str(np.datetime64(int(ms), "ms")) + "Z"
