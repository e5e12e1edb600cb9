"""A known sequence of queue operations through the sandbox's REST API, and the analytics it must give.

Minute A: push 6 messages (7 bytes each), pull 2 + pull 2 (two batches in flight), ack the first two,
retry the other two. Minute B: pull 4 (two retried, two fresh), retry all four (the two retried ones pass
``max_retries`` 1 and move to the DLQ), pull the two left, let their lease expire (they pass it too: DLQ).
Minute C and later: nothing (no data). The expected values are derived from those steps, not measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from edgeinvestigate.cloudflare.client import CloudflareClient
from edgeinvestigate.sandbox.testing import RunningSandbox

BODY_BYTES = 7  # {"n":0} .. {"n":5}


@dataclass
class Ran:
    minute_a: pd.Timestamp
    minute_b: pd.Timestamp
    queue_id: str
    dlq_id: str
    idle_id: str
    steps: list[str] = field(default_factory=list)

    @property
    def since(self) -> pd.Timestamp:
        return self.minute_a - pd.Timedelta(minutes=2)

    @property
    def until(self) -> pd.Timestamp:
        return self.minute_a + pd.Timedelta(minutes=8)


def run_known_operations(sb: RunningSandbox, client: CloudflareClient, account: str) -> Ran:
    sb.create_queue(
        account, "jobs", consumer={"type": "http_pull", "max_retries": 1, "dead_letter_queue": "jobs-dlq"}
    )
    sb.create_queue(account, "idle", consumer={"type": "http_pull"})
    now = sb.next_minute()
    minute_a = pd.Timestamp(now - now % 60_000, unit="ms", tz="UTC")
    qid = client.queue_id("jobs")
    client.push_batch(qid, [{"body": {"n": i}} for i in range(6)])
    first = client.pull(qid, batch_size=2, visibility_timeout_ms=30_000)["messages"]
    second = client.pull(qid, batch_size=2, visibility_timeout_ms=30_000)["messages"]
    assert len(first) == len(second) == 2
    client.ack(qid, acks=[m["lease_id"] for m in first], retries=[m["lease_id"] for m in second])
    sb.advance_clock(60_000)
    batch = client.pull(qid, batch_size=10, visibility_timeout_ms=30_000)["messages"]
    assert len(batch) == 4
    client.ack(qid, retries=[m["lease_id"] for m in batch])
    last = client.pull(qid, batch_size=10, visibility_timeout_ms=30_000)["messages"]
    assert len(last) == 2
    sb.advance_clock(40_000)  # the two leases expire past max_retries: moved to the DLQ
    return Ran(
        minute_a=minute_a,
        minute_b=minute_a + pd.Timedelta(minutes=1),
        queue_id=qid,
        dlq_id=client.queue_id("jobs-dlq"),
        idle_id=client.queue_id("idle"),
    )


#: (minute, queue, action, consumer_type, outcome) -> (count, bytes, mean retries)
EXPECTED_OPERATIONS = {
    ("a", "jobs", "WriteMessage", None, None): (6, 6 * BODY_BYTES, 0.0),
    ("a", "jobs", "ReadMessage", "http", None): (4, 4 * BODY_BYTES, 0.0),
    ("a", "jobs", "DeleteMessage", "http", "success"): (2, 2 * BODY_BYTES, 0.0),
    # reads of minute B: two retried (1 retry each) + two fresh, then the two fresh again (1 each)
    ("b", "jobs", "ReadMessage", "http", None): (6, 6 * BODY_BYTES, 4 / 6),
    # two moved on retry, two on lease expiry; every one had been delivered twice
    ("b", "jobs", "DeleteMessage", "http", "dlq"): (4, 4 * BODY_BYTES, 1.0),
    ("b", "jobs-dlq", "WriteMessage", None, None): (4, 4 * BODY_BYTES, 0.0),
}
#: (minute, queue) -> mean of the backlog samples (messages) taken after each change
EXPECTED_BACKLOG = {
    ("a", "jobs"): (6 + 6 + 6 + 4) / 4,  # push, pull, pull, ack+retry
    ("b", "jobs"): (4 + 2 + 2 + 0) / 4,  # pull, retry (2 moved), pull, expiry (2 moved)
    ("b", "jobs-dlq"): (1 + 2 + 3 + 4) / 4,  # one sample per message moved in
}
#: (minute, queue) -> mean consumer batches in flight at each pull
EXPECTED_CONCURRENCY = {("a", "jobs"): (1 + 2) / 2, ("b", "jobs"): (1 + 1) / 2}
