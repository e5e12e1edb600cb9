"""``PUT /accounts/{a}/queues/{q}/consumers/{c}`` against a real sandbox process, through Cloudflare's own
Python SDK (the OpenAPI subset of the other sandbox tests lacks the route): the new settings take effect
on the next delivery, the consumer keeps its id, and bad bodies are 400s that say what to send."""

from __future__ import annotations

import cloudflare
import pytest

pytestmark = pytest.mark.e2e


@pytest.fixture
def cf(sandbox):
    with cloudflare.Cloudflare(api_token=sandbox.token, base_url=sandbox.url, max_retries=0) as client:
        yield client


def _pull_consumer(api, **settings) -> tuple[str, str]:
    q = api.queue("jobs", consumer={"type": "http_pull", **settings})
    return q["queue_id"], q["consumers"][0]["consumer_id"]


def test_sdk_raises_max_retries_and_the_queue_follows(api, cf) -> None:
    qid, cid = _pull_consumer(api, max_retries=0, dead_letter_queue="jobs-dlq")
    updated = cf.queues.consumers.update(
        cid,
        account_id=api.account,
        queue_id=qid,
        type="http_pull",
        dead_letter_queue="jobs-dlq",
        settings={"max_retries": 5, "batch_size": 20, "visibility_timeout_ms": 10_000},
    )
    assert updated is not None
    assert updated.consumer_id == cid
    assert updated.settings is not None
    assert (updated.settings.max_retries, updated.settings.batch_size) == (5, 20)
    assert updated.dead_letter_queue == "jobs-dlq"
    got = api.ok("GET", f"/queues/{qid}/consumers/{cid}")
    assert got["settings"]["max_retries"] == 5
    assert got["settings"]["visibility_timeout_ms"] == 10_000
    # with max_retries 0 the first retry would have dead-lettered the message; with 5 it comes back
    api.ok("POST", f"/queues/{qid}/messages", {"body": {"type": "EMAIL_DELIVERY"}})
    for attempt in range(1, 4):
        [msg] = api.ok("POST", f"/queues/{qid}/messages/pull", {})["messages"]
        assert msg["attempts"] == attempt
        api.ok("POST", f"/queues/{qid}/messages/ack", {"retries": [{"lease_id": msg["lease_id"]}]})
    assert api.ok("GET", f"/queues/{qid}/metrics")["backlog_count"] == 1
    # the consumer's batch_size is the default of a pull now
    api.ok("POST", f"/queues/{qid}/messages/batch", {"messages": [{"body": {"n": i}} for i in range(30)]})
    assert len(api.ok("POST", f"/queues/{qid}/messages/pull", {})["messages"]) == 20


def test_put_replaces_the_consumer(api, cf, sandbox) -> None:
    qid, cid = _pull_consumer(api, max_retries=7, visibility_timeout_ms=60_000, dead_letter_queue="jobs-dlq")
    updated = cf.queues.consumers.update(cid, account_id=api.account, queue_id=qid, type="http_pull")
    assert updated is not None
    assert updated.settings is not None
    # what the body left out takes its default, and no dead letter queue means none
    assert updated.settings.max_retries == 3
    assert updated.settings.visibility_timeout_ms == 30_000
    assert updated.dead_letter_queue == ""
    # a worker consumer with a new dead letter queue: the queue is created, like Cloudflare does
    worker = cf.queues.consumers.update(
        cid,
        account_id=api.account,
        queue_id=qid,
        type="worker",
        script_name="jobs-consumer",
        dead_letter_queue="jobs-dlq-2",
        settings={"max_retries": 10, "max_concurrency": 5, "retry_delay": 30},
    )
    assert worker is not None
    assert worker.type == "worker"
    assert worker.script_name == "jobs-consumer"
    assert "jobs-dlq-2" in sandbox.state()["accounts"][api.account]["queues"]
    listed = api.ok("GET", f"/queues/{qid}/consumers")
    assert [c["consumer_id"] for c in listed] == [cid]
    assert listed[0]["settings"]["retry_delay"] == 30


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"type": "http_pull", "settings": {"max_retries": 1000}},
            "max_retries must be a whole number from 0 to 100",
        ),
        ({"type": "http_pull", "settings": {"max_retry": 5}}, "settings.max_retry is not a setting"),
        ({"type": "http_pull", "settings": {"max_concurrency": 5}}, "not a setting of a http_pull consumer"),
        ({"type": "http_pull", "max_retries": 5}, "go under 'settings'"),
        ({"settings": {"max_retries": 5}}, "type must be 'worker' or 'http_pull'"),
        ({"type": "worker"}, "script_name None is not a valid Worker name"),
        (
            {"type": "http_pull", "dead_letter_queue": "../etc"},
            "dead_letter_queue '../etc' is not a valid queue name",
        ),
        ({"type": "http_pull", "dead_letter_queue": "jobs"}, "is the queue itself"),
        ({"type": "http_pull", "settings": {"batch_size": 1.5}}, "batch_size must be a whole number"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_bad_consumer_bodies_are_400s_that_say_why(api, body, expected) -> None:
    qid, cid = _pull_consumer(api, max_retries=2)
    r = api.call("PUT", f"/queues/{qid}/consumers/{cid}", body, validate=False)
    assert r.status_code == 400, r.text
    envelope = r.json()
    assert envelope["success"] is False
    assert envelope["result"] is None
    assert expected in envelope["errors"][0]["message"]
    assert api.ok("GET", f"/queues/{qid}/consumers/{cid}")["settings"]["max_retries"] == 2  # unchanged


def test_unknown_consumer_or_queue_is_a_404(api, cf) -> None:
    qid, cid = _pull_consumer(api)
    with pytest.raises(cloudflare.NotFoundError) as caught:
        cf.queues.consumers.update("0" * 32, account_id=api.account, queue_id=qid, type="http_pull")
    body = caught.value.body
    assert isinstance(body, dict)
    assert body["errors"][0]["code"] == 11001
    assert cid in body["errors"][0]["message"]  # names the consumer the queue has
    with pytest.raises(cloudflare.NotFoundError):
        cf.queues.consumers.update(cid, account_id=api.account, queue_id="f" * 32, type="http_pull")
