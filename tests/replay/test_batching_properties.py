"""Properties of batching and idempotency keys, for any mix of message sizes."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from edgeinvestigate.replay._plan import PlanMessage
from edgeinvestigate.replay._planner import cut_batches
from edgeinvestigate.replay._rewrite import (
    MAX_BATCH_BYTES,
    MAX_BATCH_MESSAGES,
    MAX_MESSAGE_BYTES,
    MESSAGE_OVERHEAD_BYTES,
    idempotency_key,
)

sizes = st.lists(st.integers(min_value=2, max_value=MAX_MESSAGE_BYTES - MESSAGE_OVERHEAD_BYTES), max_size=400)


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


@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_idempotency_keys_are_stable_and_distinct(
    message_id: str, selection_a: str, selection_b: str
) -> None:
    key = idempotency_key(message_id, selection_a)
    assert key == idempotency_key(message_id, selection_a)
    assert key.startswith("rpl_")
    assert len(key) == 36
    if selection_a != selection_b:
        assert key != idempotency_key(message_id, selection_b)
    assert key != idempotency_key(message_id + "x", selection_a)
