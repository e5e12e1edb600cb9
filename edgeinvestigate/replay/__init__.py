"""Selective DLQ replay: a reviewed plan, a velocity-limited run, a crash-safe ledger, and proof.

>>> plan = plan_replay(ev, "jobs-dlq", "jobs", allow_queues=["jobs"])  # doctest: +SKIP
>>> plan.save("plan.json")  # doctest: +SKIP
>>> run_replay("plan.json", CloudflareClient.from_env(), allow_queues=["jobs"])  # doctest: +SKIP
>>> replay_status("plan.json").counts  # doctest: +SKIP

The contract is at-least-once: every message pushed carries ``metadata.replay.id``, an idempotency
key consumers dedupe on; a DLQ message is removed only after its push was confirmed; a crash at any
point resumes from the ledger without losing a message. The target queue is allowed by the operator
at run time (``allow_queues``, ``EDGEINVESTIGATE_REPLAY_ALLOW_QUEUES`` or a config file), never by
the plan file; one run per plan at a time on a machine. See ``runbooks/replay-failed-jobs.md``.
"""

from __future__ import annotations

from edgeinvestigate.replay._default_selection import default_selection
from edgeinvestigate.replay._ledger import Ledger, default_ledger_path
from edgeinvestigate.replay._patch import merge_patch
from edgeinvestigate.replay._plan import ReplayPlan
from edgeinvestigate.replay._planner import plan_replay
from edgeinvestigate.replay._result import RunResult
from edgeinvestigate.replay._runner import run_replay, run_until_settled
from edgeinvestigate.replay._status import ReplayStatus, cancel_replay, export_replay, replay_status
from edgeinvestigate.replay._targets import ALLOW_ENV, runtime_allow_list
from edgeinvestigate.replay._verify import VerifyReport, verify_replay

__all__ = [
    "ALLOW_ENV",
    "Ledger",
    "ReplayPlan",
    "ReplayStatus",
    "RunResult",
    "VerifyReport",
    "cancel_replay",
    "default_ledger_path",
    "default_selection",
    "export_replay",
    "merge_patch",
    "plan_replay",
    "replay_status",
    "run_replay",
    "run_until_settled",
    "runtime_allow_list",
    "verify_replay",
]
