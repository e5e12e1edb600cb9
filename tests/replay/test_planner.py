"""Building a plan: rewritten bodies, idempotency keys, exclusions and why, batches, estimates."""

from __future__ import annotations

import itertools

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from replay_messages import dlq_messages, job, message_id, peeked

from edgeinvestigate.errors import ConfigError
from edgeinvestigate.replay import ReplayPlan, plan_replay
from edgeinvestigate.replay._plan import PlanMessage
from edgeinvestigate.replay._planner import cut_batches
from edgeinvestigate.replay._rewrite import (
    MAX_BATCH_BYTES,
    MAX_BATCH_MESSAGES,
    MAX_MESSAGE_BYTES,
    MESSAGE_OVERHEAD_BYTES,
    body_size,
)
from edgeinvestigate.sources.api.dlq import dlq_frame

NOW = "2026-11-28T03:00:00.000Z"
sizes = st.lists(st.integers(min_value=2, max_value=MAX_MESSAGE_BYTES - MESSAGE_OVERHEAD_BYTES), max_size=400)


def plan(frame: pd.DataFrame, **kw: object) -> ReplayPlan:
    kw.setdefault("allow_queues", ["jobs"])
    kw.setdefault("now", NOW)
    return plan_replay(frame, "jobs-dlq", "jobs", **kw)  # type: ignore[arg-type]


def test_rewritten_body_is_the_job_with_fresh_attempts_and_a_replay_block(dlq_frame: pd.DataFrame) -> None:
    p = plan(dlq_frame)
    assert len(p.messages) == 300
    assert not p.excluded
    for m in p.messages:
        i = int(m.message_id[:8], 16)
        original = job(i)
        body = m.body
        assert body["type"] == original["type"]
        assert body["payload"] == original["payload"]
        meta = body["metadata"]
        assert meta["attempts"] == 0
        assert meta["lastAttempt"] == NOW
        assert meta["originalTimestamp"] == original["metadata"]["originalTimestamp"]
        assert meta["replay"] == {"id": m.replay_id, "of": m.message_id, "plan": p.plan_id, "at": NOW}
        assert m.replay_id.startswith("rpl_")
        assert len(m.replay_id) == 36
        assert m.size == body_size(body)
    shapes = {m.shape for m in p.messages}
    assert shapes == {"raw", "wrapped", "wrapped-message"}  # both {original, error} shapes unwrapped


def test_idempotency_key_is_stable_per_message_and_selection(dlq_frame: pd.DataFrame) -> None:
    a = plan(dlq_frame, types=["EMAIL_DELIVERY"])
    b = plan(dlq_frame, types=["EMAIL_DELIVERY"], now="2026-11-28T04:00:00.000Z")
    c = plan(dlq_frame, types=["EMAIL_DELIVERY", "DATA_SYNC"])
    keys_a = {m.message_id: m.replay_id for m in a.messages}
    assert keys_a == {m.message_id: m.replay_id for m in b.messages}  # re-planned: same keys
    assert a.plan_id != b.plan_id
    assert all(keys_a[m.message_id] != m.replay_id for m in c.messages if m.message_id in keys_a)
    assert len(set(keys_a.values())) == len(keys_a)


def test_exclusions_say_why() -> None:
    replayed = job(3)
    replayed["metadata"]["replay"] = {"id": "rpl_x", "of": message_id(99), "plan": "p", "at": NOW}
    msgs = [
        peeked(0, job(0)),
        peeked(1, None, content_type="v8"),
        peeked(2, None, content_type="bytes"),
        peeked(3, replayed),
        peeked(4, "plain text job", content_type="text"),
        peeked(5, {"hello": "not a job"}),
        peeked(6, job(6, size=130_000)),
        {**peeked(7, job(7)), "body": "{not json"},
        peeked(0, job(0)),  # collected twice
    ]
    p = plan(dlq_frame(msgs, "jobs-dlq"))
    assert [m.message_id for m in p.messages] == [message_id(0)]
    reasons = {e.message_id: e.reason for e in p.excluded}
    assert reasons == {
        message_id(1): "unsupported_content_type",
        message_id(2): "unsupported_content_type",
        message_id(3): "already_replayed",
        message_id(4): "not_a_job",
        message_id(5): "not_a_job",
        message_id(6): "oversize",
        message_id(7): "decode_error",
        message_id(0): "duplicate",
    }
    text = p.summary()
    for reason in set(reasons.values()):
        assert reason in text
    assert "v8/bytes bodies cannot be pushed" in text


def test_batches_hold_at_most_100_messages_and_256_kb() -> None:
    msgs = [peeked(i, job(i, size=40_000 if i % 3 == 0 else 0)) for i in range(450)]
    p = plan(dlq_frame(msgs, "jobs-dlq"))
    assert sum(len(b.message_ids) for b in p.batches) == 450
    by_id = {m.message_id: m for m in p.messages}
    for b in p.batches:
        assert len(b.message_ids) <= 100
        assert sum(by_id[i].size + 100 for i in b.message_ids) == b.bytes <= MAX_BATCH_BYTES
        assert all(by_id[i].batch == b.index for i in b.message_ids)
    small = plan(dlq_frame([peeked(i, job(i)) for i in range(250)], "jobs-dlq"))
    assert [len(b.message_ids) for b in small.batches] == [100, 100, 50]
    est = small.estimates
    assert est.push_requests == 3
    assert est.removal_requests == 6
    assert est.duration_s == pytest.approx(max(250 / 100.0, 9 * 300 / 1200), abs=0.1)


@settings(max_examples=200, deadline=None)
@given(sizes)
def test_batches_respect_both_limits_keep_order_and_lose_nothing(message_sizes: list[int]) -> None:
    msgs = [
        PlanMessage(message_id=f"m{i}", replay_id=f"r{i}", batch=-1, size=s, body={})
        for i, s in enumerate(message_sizes)
    ]
    batches = cut_batches(msgs)
    flat = [mid for b in batches for mid in b.message_ids]
    assert flat == [m.message_id for m in msgs]  # every message once, in order
    by_id = {m.message_id: m for m in msgs}
    for b in batches:
        assert 1 <= len(b.message_ids) <= MAX_BATCH_MESSAGES
        assert (
            b.bytes == sum(by_id[i].size + MESSAGE_OVERHEAD_BYTES for i in b.message_ids) <= MAX_BATCH_BYTES
        )
    # greedy: a batch is only cut when the next message would not fit
    for a, nxt in itertools.pairwise(batches):
        first = by_id[nxt.message_ids[0]]
        assert (
            len(a.message_ids) == MAX_BATCH_MESSAGES
            or a.bytes + first.size + MESSAGE_OVERHEAD_BYTES > MAX_BATCH_BYTES
        )


def test_leases_make_removal_one_ack_per_batch() -> None:
    msgs = [peeked(i, job(i), lease_id=f"lease-{i}") for i in range(150)]
    p = plan(dlq_frame(msgs, "jobs-dlq"))
    assert p.estimates.removal_requests == 2
    assert p.messages[0].lease_id == "lease-0"


def test_a_plan_whose_every_selected_message_is_excluded_is_not_made() -> None:
    # every message a v8 body: nothing could be pushed, so no (empty) plan either
    msgs = [peeked(i, None, content_type="v8") for i in range(4)]
    with pytest.raises(ConfigError) as err:
        plan(dlq_frame(msgs, "jobs-dlq"))
    assert err.value.exit_code == 2
    assert (
        "all 4 selected DLQ messages of 'jobs-dlq' are excluded (4 unsupported_content_type)"
        in err.value.message
    )
    assert "refusing to write an empty plan" in err.value.message
    assert "replay-failed-jobs.md" in err.value.hint


def test_many_messages_plan_quickly() -> None:
    frame = dlq_frame(dlq_messages(5000), "jobs-dlq")
    p = plan(frame)
    assert len(p.batches) == 50
    assert p.estimates.requests == 150
