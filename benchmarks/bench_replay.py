"""Replay benchmark: N dead-lettered jobs replayed through the real sandbox, measured side by side.

    python benchmarks/bench_replay.py [--n 100000] [--rate 250]

Prints, from one run:

- messages per push request (target >= 99: batches are filled to 100 messages / 256 KB);
- the achieved push rate against the configured ``--rate`` (target: within 5%);
- total API requests against the minimum possible (one push per 100 messages plus the removal of
  the originals: one ack per batch with leases held, or one peek + one purge per batch without).

The DLQ is loaded through the sandbox's admin API; the plan is made from a peek-shaped snapshot of
it (no leases: the originals are removed by peek + purge, as after a ``collect --dlq-mode peek``),
so the whole path (plan file, hash check, ledger, rate limiter, push, removal) is exercised.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from edgeinvestigate.cloudflare.client import CloudflareClient
from edgeinvestigate.replay import plan_replay, run_replay
from edgeinvestigate.sandbox.testing import running_sandbox
from edgeinvestigate.sources.api.dlq_frame import dlq_frame

ACCOUNT = "0123456789abcdef0123456789abcdef"
T0_MS = 1_795_960_800_000
TYPES = ("IMAGE_PROCESSING", "EMAIL_DELIVERY", "REPORT_GENERATION", "DATA_SYNC", "WEBHOOK_PROCESSING")


def job(i: int) -> dict[str, Any]:
    return {
        "type": TYPES[i % len(TYPES)],
        "payload": {"jobId": f"job-{i:07d}", "to": f"user{i}@example.com", "template": "welcome"},
        "metadata": {"attempts": 3, "originalTimestamp": "2026-11-27T14:00:00.000Z"},
    }


def peek_shape(item: dict[str, Any]) -> dict[str, Any]:
    """The message as a peek returns it (body is a JSON string)."""
    return {
        "id": item["id"],
        "body": json.dumps(item["body"]),
        "attempts": 0,
        "timestamp_ms": item["timestamp_ms"],
        "metadata": {"CF-Content-Type": "json"},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="messages in the DLQ, all replayed")
    ap.add_argument("--rate", type=float, default=200.0, help="configured velocity, messages/s")
    args = ap.parse_args(argv)
    n = args.n

    with tempfile.TemporaryDirectory() as tmp, running_sandbox(Path(tmp), rate_limit="1000000/300") as sb:
        sb.create_queue(ACCOUNT, "jobs", consumer={"type": "worker", "script_name": "jobs-consumer"})
        sb.create_queue(ACCOUNT, "jobs-dlq", consumer={"type": "http_pull", "max_retries": 50})
        t = time.perf_counter()
        peeked = []
        for start in range(0, n, 5000):
            chunk = range(start, min(n, start + 5000))
            items = [{"id": f"{i:032x}", "body": job(i), "timestamp_ms": T0_MS + i} for i in chunk]
            sb.load_messages(ACCOUNT, "jobs-dlq", items)
            peeked += [peek_shape(it) for it in items]
        load_s = time.perf_counter() - t

        t = time.perf_counter()
        plan = plan_replay(
            dlq_frame(peeked, "jobs-dlq"),
            "jobs-dlq",
            "jobs",
            allow_queues=["jobs"],
            rate=args.rate,
            max_requests_per_5min=1_000_000,
        )
        plan_path = plan.save(Path(tmp) / "plan.json")
        plan_s = time.perf_counter() - t

        with CloudflareClient(ACCOUNT, sb.token, api_url=sb.url, timeout=60.0) as client:
            result = run_replay(plan_path, client, allow_queues=["jobs"])
        state = sb.state()["accounts"][ACCOUNT]["queues"]
        on_target = len(state["jobs"]["messages"])
        left = len(state["jobs-dlq"]["messages"])

    batches = math.ceil(n / 100)
    minimum = batches + 2 * batches  # pushes + (peek + purge) per batch without leases
    lookups = 2
    print(f"replay of {n:,} DLQ messages through the sandbox (load {load_s:.1f}s, plan {plan_s:.1f}s)")
    print(f"  outcome: {result.outcome}; on target {on_target:,}; left in DLQ {left:,}")
    print(
        f"  messages per push request: {result.messages_per_push:.2f} "
        f"({result.messages_pushed:,} messages in {result.push_requests:,} pushes; target >= 99)"
    )
    ratio = result.achieved_rate / args.rate
    print(
        f"  achieved rate vs configured: {result.achieved_rate:.1f} / {args.rate:.1f} msg/s = {ratio:.3f} "
        f"({'within' if abs(ratio - 1) <= 0.05 else 'NOT within'} 5%)"
    )
    print(
        f"  total requests vs minimum possible: {result.requests:,} / {minimum + lookups:,} = "
        f"{result.requests / (minimum + lookups):.3f} (minimum: {batches:,} pushes + {batches:,} peeks + "
        f"{batches:,} purges + {lookups} queue lookups; with leases held it would be {batches:,} acks "
        "instead of peek + purge)"
    )
    print(
        f"  429s {result.rate_limited}, 5xx/timeouts {result.server_errors}, elapsed {result.elapsed_s:.1f}s"
    )
    ok = result.outcome == "completed" and on_target == n and left == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
