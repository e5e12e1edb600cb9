"""The services a lab run starts: the sandbox with the lab's queues, the collector, ``wrangler dev``.

- the sandbox holds the DLQ (``http_pull``, read by the investigation over the Queues REST API) and the
  retry queue (its consumer is the producer's job API: the sandbox forwards every message there, so a
  replay re-enters the real runtime);
- the collector receives the Tail Worker's POSTs and writes TraceItem JSONL;
- one ``wrangler dev`` runs the four lab Workers.

Every process is registered to be stopped when the run's ``ExitStack`` / :class:`ProcessSet` unwinds.
"""

from __future__ import annotations

import json
import secrets
import sys
from contextlib import ExitStack
from pathlib import Path

from edgeinvestigate.errors import EdgeInvestigateError
from edgeinvestigate.lab._procs import ManagedProcess, ProcessSet, wait_until
from edgeinvestigate.lab._runtime import Deploy, RuntimeSettings, WranglerRuntime
from edgeinvestigate.sandbox.testing import RunningSandbox

__all__ = [
    "ACCOUNT_ID",
    "DLQ_QUEUE",
    "IMMEDIATE_QUEUE",
    "RETRY_QUEUE",
    "create_queues",
    "start_collector",
    "start_runtime",
    "start_sandbox",
]

ACCOUNT_ID = "023e105f4ecef8ad9ca31a8372d0c353"
IMMEDIATE_QUEUE = "jobs-immediate"
DLQ_QUEUE = "jobs-dlq"
RETRY_QUEUE = "jobs-retry"


def start_sandbox(workdir: Path, stack: ExitStack) -> RunningSandbox:
    """A sandbox process with a fresh random token (stopped when ``stack`` unwinds)."""
    sandbox = RunningSandbox(workdir, token=secrets.token_urlsafe(24))
    stack.callback(sandbox.stop)
    sandbox.start()
    return sandbox


def create_queues(sandbox: RunningSandbox) -> None:
    """The DLQ (``http_pull``) and the retry queue (worker consumer, ``max_retries`` 5, into the DLQ)."""
    sandbox.create_queue(
        ACCOUNT_ID,
        DLQ_QUEUE,
        consumer={"type": "http_pull", "max_retries": 3, "visibility_timeout_ms": 30_000},
    )
    sandbox.create_queue(
        ACCOUNT_ID,
        RETRY_QUEUE,
        consumer={
            "type": "worker",
            "script_name": "jobs-producer",
            "max_retries": 5,
            "retry_delay": 1,
            "dead_letter_queue": DLQ_QUEUE,
        },
    )


def start_collector(procs: ProcessSet, state: Path, trace: Path) -> tuple[ManagedProcess, str]:
    """``edgeinvestigate lab collector`` writing ``trace``; returns the process and its URL."""
    ready = state / "collector.ready.json"
    ready.unlink(missing_ok=True)  # a reused state folder must not point at an old collector
    argv = [
        sys.executable,
        "-m",
        "edgeinvestigate",
        "lab",
        "collector",
        "--listen",
        "127.0.0.1:0",
        "--out",
        str(trace),
        "--ready-file",
        str(ready),
    ]
    collector = procs.start("collector", argv)
    wait_until(ready.exists, timeout=30, what="the collector", proc=collector)
    return collector, str(json.loads(ready.read_text())["url"])


def start_runtime(
    lab_dir: Path,
    state: Path,
    procs: ProcessSet,
    sandbox: RunningSandbox,
    collector_url: str,
    deploy: Deploy,
) -> WranglerRuntime:
    """``wrangler dev`` with ``deploy``; the sandbox then forwards the retry queue to its job API."""
    settings = RuntimeSettings(
        collector_url=collector_url + "/",
        sandbox_url=sandbox.base,
        sandbox_token=sandbox.secret,
        account_id=ACCOUNT_ID,
        dlq_name=DLQ_QUEUE,
    )
    runtime = WranglerRuntime(lab_dir, state, procs, settings)
    runtime.start(deploy)
    # replays pushed onto the retry queue re-enter the runtime through the producer's job API
    resp = sandbox.admin.post(
        f"/__admin/accounts/{ACCOUNT_ID}/queues/{RETRY_QUEUE}/forward",
        json={"url": f"{runtime.url}/jobs"},
    )
    if resp.status_code != 200:
        raise EdgeInvestigateError(f"the sandbox refused to forward {RETRY_QUEUE}: {resp.text[:300]}")
    return runtime
