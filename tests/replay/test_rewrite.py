"""Idempotency keys: stable per message and selection, distinct otherwise."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from edgeinvestigate.replay._rewrite import idempotency_key


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
