"""``sandbox/_store.py`` and its parts, in memory (no server): queues, messages and leases on the
sandbox clock, events, tails, reset."""

from __future__ import annotations

import pytest

from edgeinvestigate.sandbox._store import Store

ACCOUNT = "acct"


@pytest.fixture
def store():
    s = Store(None)
    yield s
    s.close()


def _consumer(**settings) -> dict:
    return {"type": "http_pull", "dead_letter_queue": "jobs-dlq", "settings": {"max_retries": 1, **settings}}


def test_upsert_is_idempotent_and_creates_the_dead_letter_queue(store: Store) -> None:
    q = store.queues.upsert(ACCOUNT, "jobs", consumer=_consumer())
    again = store.queues.upsert(ACCOUNT, "jobs", settings={"delivery_delay": 5})
    assert again.queue_id == q.queue_id
    assert again.consumer is not None
    assert q.consumer is not None
    assert again.consumer["consumer_id"] == q.consumer["consumer_id"]
    assert again.settings["delivery_delay"] == 5
    assert [x.queue_name for x in store.queues.all(ACCOUNT)] == ["jobs", "jobs-dlq"]
    assert store.queues.by_name(ACCOUNT, "jobs-dlq") is not None
    assert store.queues.all("other") == []


def test_expired_leases_redeliver_then_move_to_the_dead_letter_queue(store: Store) -> None:
    q = store.queues.upsert(ACCOUNT, "jobs", consumer=_consumer())
    store.messages.push(q, [(b'{"type":"DATA_SYNC"}', "json", 0)])
    attempts = []
    for _ in range(2):  # max_retries 1: two deliveries
        [row], _ = store.messages.pull(q, 10, 1_000)
        attempts.append(row["attempts"])
        store.clock.advance(1_000)
        store.messages.sweep()
    assert attempts == [1, 2]
    assert store.messages.of(q.queue_id) == []
    dlq = store.queues.by_name(ACCOUNT, "jobs-dlq")
    assert dlq is not None
    [dead] = store.messages.of(dlq.queue_id)
    assert (dead["id"], dead["attempts"], dead["source"]) == (row["id"], 0, "dead_letter")
    stats = store.messages.stats(q.queue_id)
    assert (stats["delivered"], stats["lease_expired"], stats["dead_lettered"]) == (2, 2, 1)


def test_ack_after_the_lease_expired_and_retry_delay(store: Store) -> None:
    q = store.queues.upsert(ACCOUNT, "jobs", consumer=_consumer(max_retries=5))
    store.messages.push(q, [(b"a", "text", 0), (b"b", "text", 0)])
    (a, b), backlog = store.messages.pull(q, 10, 1_000)
    assert backlog == 2
    store.clock.advance(1_001)
    store.messages.sweep()  # both leases expired: released, not yet redelivered
    n_ack, n_retry, warnings = store.messages.ack(q, [a["lease_id"]], [(b["lease_id"], 30)])
    assert (n_ack, n_retry, warnings) == (1, 1, {})
    assert store.messages.pull(q, 10, 1_000)[0] == []  # b waits 30 s
    store.clock.advance(30_000)
    [again], _ = store.messages.pull(q, 10, 1_000)
    assert (again["id"], again["attempts"]) == (b["id"], 2)
    assert store.messages.metrics(q)["backlog_count"] == 1


def test_events_tails_and_reset(store: Store) -> None:
    events = [
        {"timestamp": 1, "$metadata": {"id": "a"}},
        {"timestamp": 2, "$metadata": {"id": "b"}},
    ]
    assert store.events.add(ACCOUNT, events) == 2
    assert [e["$metadata"]["id"] for e in store.events.of(ACCOUNT)] == ["b", "a"]  # newest first
    assert store.events.counts() == {ACCOUNT: 2}
    tail = store.tails.create(ACCOUNT, "jobs-consumer", [{"outcome": ["exception"]}], 60_000)
    assert store.tails.get(tail["tail_id"]) == tail
    assert store.tails.all(ACCOUNT, "jobs-consumer") == [tail]
    store.queues.upsert(ACCOUNT, "jobs")
    store.clock.advance(5_000)
    store.reset()
    assert store.clock.offset_ms == 0
    assert (store.queues.all(), store.events.of(ACCOUNT), store.tails.all()) == ([], [], [])
    assert not store.tails.delete(ACCOUNT, "jobs-consumer", tail["tail_id"])


def test_a_missing_dead_letter_queue_gets_the_settings_of_a_new_queue_naming_it(store: Store) -> None:
    store.queues.upsert(ACCOUNT, "short", settings={"message_retention_period": 60}, consumer=_consumer())
    dlq = store.queues.by_name(ACCOUNT, "jobs-dlq")
    assert dlq is not None
    assert dlq.retention_s == 60
    # an existing queue given a new dead letter queue: that one gets the default settings
    consumer = _consumer() | {"dead_letter_queue": "short-dlq"}
    store.queues.upsert(ACCOUNT, "short", consumer=consumer)
    other = store.queues.by_name(ACCOUNT, "short-dlq")
    assert other is not None
    assert other.retention_s == 345_600
