"""Queues API semantics against a real sandbox process (every response checked against the spec)."""

from __future__ import annotations

import base64
import json

import pytest

pytestmark = pytest.mark.e2e


def _job(i: int, job_type: str = "EMAIL_DELIVERY") -> dict:
    return {
        "type": job_type,
        "payload": {"to": f"user{i}@example.com", "template": "welcome", "jobId": f"job-{i:05d}"},
        "metadata": {"attempts": 0, "originalTimestamp": "2026-11-27T14:00:00.000Z"},
    }


def _pull(api, qid, **body):
    return api.ok("POST", f"/queues/{qid}/messages/pull", body)


def test_push_pull_ack_roundtrip(api):
    q = api.queue("jobs", consumer={"type": "http_pull", "max_retries": 3})
    qid = q["queue_id"]
    result = api.ok("POST", f"/queues/{qid}/messages", {"body": _job(1), "content_type": "json"})
    assert result["metadata"]["metrics"]["backlog_count"] == 1
    pulled = _pull(api, qid, batch_size=10, visibility_timeout_ms=5000)
    assert pulled["message_backlog_count"] == 1
    [msg] = pulled["messages"]
    assert len(msg["id"]) == 32
    assert msg["attempts"] == 1
    assert msg["metadata"]["CF-Content-Type"] == "json"
    assert json.loads(msg["body"]) == _job(1)
    assert msg["timestamp_ms"] > 1_700_000_000_000
    acked = api.ok("POST", f"/queues/{qid}/messages/ack", {"acks": [{"lease_id": msg["lease_id"]}]})
    assert acked == {"ackCount": 1, "retryCount": 0, "warnings": {}}
    assert api.ok("GET", f"/queues/{qid}/metrics") == {
        "backlog_count": 0,
        "backlog_bytes": 0,
        "oldest_message_timestamp_ms": 0,
    }


def test_fifo_order_and_batch_size(api):
    qid = api.queue("jobs", consumer={"type": "http_pull"})["queue_id"]
    api.ok("POST", f"/queues/{qid}/messages/batch", {"messages": [{"body": _job(i)} for i in range(7)]})
    first = _pull(api, qid, batch_size=3, visibility_timeout_ms=60_000)
    second = _pull(api, qid, batch_size=10, visibility_timeout_ms=60_000)
    order = [json.loads(m["body"])["payload"]["jobId"] for m in first["messages"] + second["messages"]]
    assert order == [f"job-{i:05d}" for i in range(7)]
    assert first["message_backlog_count"] == 7  # unacknowledged, leased ones included
    # default batch size of an http_pull consumer is 5
    qid2 = api.queue("jobs2", consumer={"type": "http_pull"})["queue_id"]
    api.ok("POST", f"/queues/{qid2}/messages/batch", {"messages": [{"body": _job(i)} for i in range(7)]})
    assert len(_pull(api, qid2)["messages"]) == 5


def test_lease_expiry_redelivers_and_attempts_grow(api, clock):
    qid = api.queue("jobs", consumer={"type": "http_pull", "max_retries": 5})["queue_id"]
    api.ok("POST", f"/queues/{qid}/messages", {"body": "hello", "content_type": "text"})
    seen = []
    for _ in range(3):
        pulled = _pull(api, qid, visibility_timeout_ms=30_000)
        assert len(pulled["messages"]) == 1
        seen.append(pulled["messages"][0])
        clock(29_000)
        # while leased, nobody else gets it
        assert _pull(api, qid, visibility_timeout_ms=30_000)["messages"] == []
        clock(1_001)
    assert [m["attempts"] for m in seen] == [1, 2, 3]
    assert len({m["id"] for m in seen}) == 1
    assert len({m["lease_id"] for m in seen}) == 3
    assert seen[0]["body"] == "hello"


def test_a_short_lease_expires(api, clock):
    qid = api.queue("jobs", consumer={"type": "http_pull", "max_retries": 5})["queue_id"]
    api.ok("POST", f"/queues/{qid}/messages", {"body": "hello", "content_type": "text"})
    first = _pull(api, qid, visibility_timeout_ms=100)["messages"]
    clock(101)
    again = _pull(api, qid, visibility_timeout_ms=100)["messages"]
    assert [m["attempts"] for m in first + again] == [1, 2]


def test_exhaustion_moves_to_dlq_with_same_id_and_timestamp(api, sandbox):
    q = api.queue("jobs", consumer={"type": "http_pull", "max_retries": 2, "dead_letter_queue": "jobs-dlq"})
    qid = q["queue_id"]
    api.ok("POST", f"/queues/{qid}/messages", {"body": _job(7)})
    deliveries = []
    for _ in range(3):  # max_retries=2 -> 3 deliveries
        [msg] = _pull(api, qid, visibility_timeout_ms=60_000)["messages"]
        deliveries.append(msg)
        api.ok(
            "POST",
            f"/queues/{qid}/messages/ack",
            {"retries": [{"lease_id": msg["lease_id"], "delay_seconds": 0}]},
        )
    assert [m["attempts"] for m in deliveries] == [1, 2, 3]
    assert _pull(api, qid)["messages"] == []
    state = sandbox.state()["accounts"][api.account]["queues"]
    assert state["jobs"]["messages"] == []
    assert state["jobs"]["stats"]["dead_lettered"] == 1
    [dead] = state["jobs-dlq"]["messages"]
    assert dead["id"] == deliveries[0]["id"]
    assert dead["timestamp_ms"] == deliveries[0]["timestamp_ms"]
    assert dead["body"] == _job(7)
    assert dead["attempts"] == 0  # a fresh delivery count in the DLQ, like miniflare
    # the DLQ was created automatically and is listed by name
    listed = api.ok("GET", "/queues", params={"name": "jobs-dlq"})
    assert [x["queue_name"] for x in listed] == ["jobs-dlq"]


def test_exhaustion_by_lease_expiry_and_delete_without_dlq(api, sandbox, clock):
    with_dlq = api.queue("a", consumer={"type": "http_pull", "max_retries": 0, "dead_letter_queue": "a-dlq"})
    without = api.queue("b", consumer={"type": "http_pull", "max_retries": 0})
    for q in (with_dlq, without):
        api.ok("POST", f"/queues/{q['queue_id']}/messages", {"body": "x", "content_type": "text"})
        assert len(_pull(api, q["queue_id"], visibility_timeout_ms=100)["messages"]) == 1
    clock(101)  # both leases expire: max_retries 0, so the first delivery was the last
    queues = sandbox.state()["accounts"][api.account]["queues"]
    assert [m["body"] for m in queues["a-dlq"]["messages"]] == ["x"]
    assert queues["a"]["messages"] == []
    assert queues["b"]["messages"] == []
    assert queues["b"]["stats"]["deleted_exhausted"] == 1
    assert "a-dlq" in [q["queue_name"] for q in api.ok("GET", "/queues")]


def test_retry_delay_hides_message(api, clock):
    qid = api.queue("jobs", consumer={"type": "http_pull", "max_retries": 5, "retry_delay": 60})["queue_id"]
    api.ok("POST", f"/queues/{qid}/messages", {"body": "x", "content_type": "text"})
    [msg] = _pull(api, qid)["messages"]
    res = api.ok(
        "POST",
        f"/queues/{qid}/messages/ack",
        {"retries": [{"lease_id": msg["lease_id"], "delay_seconds": 10}]},
    )
    assert res["retryCount"] == 1
    clock(9_000)
    assert _pull(api, qid)["messages"] == []
    clock(1_001)
    [again] = _pull(api, qid)["messages"]
    assert again["id"] == msg["id"]
    assert again["attempts"] == 2
    # without delay_seconds the consumer's retry_delay (60 s) applies
    api.ok("POST", f"/queues/{qid}/messages/ack", {"retries": [{"lease_id": again["lease_id"]}]})
    clock(59_000)
    assert _pull(api, qid)["messages"] == []
    clock(1_001)
    assert _pull(api, qid)["messages"][0]["attempts"] == 3


def test_ack_after_lease_expiry_is_accepted_unknown_lease_warns(api, sandbox, clock):
    qid = api.queue("jobs", consumer={"type": "http_pull", "max_retries": 3})["queue_id"]
    api.ok("POST", f"/queues/{qid}/messages", {"body": "late", "content_type": "text"})
    [msg] = _pull(api, qid, visibility_timeout_ms=100)["messages"]
    clock(101)  # expired; the sweep after moving the clock has released it
    res = api.ok(
        "POST", f"/queues/{qid}/messages/ack", {"acks": [{"lease_id": msg["lease_id"]}, {"lease_id": "nope"}]}
    )
    assert res["ackCount"] == 1
    assert set(res["warnings"]) == {"nope"}
    assert sandbox.queue_state(api.account, "jobs")["messages"] == []


def test_extend_keeps_the_lease(api, clock):
    qid = api.queue("jobs", consumer={"type": "http_pull"})["queue_id"]
    api.ok("POST", f"/queues/{qid}/messages", {"body": "x", "content_type": "text"})
    [msg] = _pull(api, qid, visibility_timeout_ms=30_000)["messages"]
    clock(20_000)
    res = api.ok(
        "POST",
        f"/queues/{qid}/messages/extend",
        {"extend": [{"lease_id": msg["lease_id"]}], "visibility_timeout_ms": 60_000},
    )
    assert res == {"extendCount": 1, "warnings": {}}
    clock(59_000)  # 79 s after the pull: past the first lease, inside the extended one
    assert _pull(api, qid)["messages"] == []
    clock(1_001)
    [again] = _pull(api, qid)["messages"]
    assert again["attempts"] == 2  # extending did not count as a delivery
    res = api.ok(
        "POST",
        f"/queues/{qid}/messages/extend",
        {"extend": [{"lease_id": "gone"}], "visibility_timeout_ms": 10},
    )
    assert res["extendCount"] == 0
    assert "gone" in res["warnings"]


def test_peek_changes_nothing_and_purge_by_ref(api, sandbox):
    qid = api.queue("dlq", consumer={"type": "http_pull", "max_retries": 3})["queue_id"]
    sandbox.load_messages(
        api.account,
        "dlq",
        [
            {"id": f"m{i}", "body": _job(i), "timestamp_ms": 1_790_000_000_000 + i, "attempts": 2}
            for i in range(4)
        ],
    )
    before = sandbox.queue_state(api.account, "dlq")["messages"]
    peeked = api.ok("POST", f"/queues/{qid}/messages/peek", {"batch_size": 10})["messages"]
    assert [m["id"] for m in peeked] == ["m0", "m1", "m2", "m3"]
    assert [m["attempts"] for m in peeked] == [2, 2, 2, 2]
    assert all("lease_id" not in m and m["ref"] for m in peeked)
    assert sandbox.queue_state(api.account, "dlq")["messages"] == before
    res = api.ok(
        "POST",
        f"/queues/{qid}/messages/purge",
        {"refs": [{"ref": peeked[1]["ref"]}, {"ref": peeked[3]["ref"]}]},
    )
    assert res["warnings"] == {}
    assert [m["id"] for m in sandbox.queue_state(api.account, "dlq")["messages"]] == ["m0", "m2"]
    again = api.ok(
        "POST", f"/queues/{qid}/messages/purge", {"refs": [{"ref": peeked[1]["ref"]}, {"ref": "bogus"}]}
    )
    assert set(again["warnings"]) == {peeked[1]["ref"], "bogus"}
    # pulling continues from the loaded attempts
    [m0] = _pull(api, qid, batch_size=1)["messages"]
    assert (m0["id"], m0["attempts"], m0["timestamp_ms"]) == ("m0", 3, 1_790_000_000_000)


def test_purge_queue_and_status(api, sandbox):
    qid = api.queue("jobs", consumer={"type": "http_pull"})["queue_id"]
    api.ok("POST", f"/queues/{qid}/messages/batch", {"messages": [{"body": _job(i)} for i in range(3)]})
    assert api.ok("GET", f"/queues/{qid}/purge") == {}
    resp = api.call("POST", f"/queues/{qid}/purge", {})
    assert resp.status_code == 400
    assert resp.json()["errors"][0]["code"] == 11011
    result = api.ok("POST", f"/queues/{qid}/purge", {"delete_messages_permanently": True})
    assert result["queue_id"] == qid
    status = api.ok("GET", f"/queues/{qid}/purge")
    assert status["completed"] == "true"
    assert status["started_at"].endswith("Z")
    assert api.ok("GET", f"/queues/{qid}/metrics")["backlog_count"] == 0


def test_list_get_consumers_and_paging(api):
    created = [
        api.queue(f"q{i:02d}", consumer={"type": "worker", "script_name": "jobs-consumer"}) for i in range(5)
    ]
    page1 = api.call("GET", "/queues", params={"per_page": 2, "page": 1}).json()
    assert [q["queue_name"] for q in page1["result"]] == ["q00", "q01"]
    assert page1["result_info"] == {"count": 2, "page": 1, "per_page": 2, "total_count": 5, "total_pages": 3}
    page3 = api.ok("GET", "/queues", params={"per_page": 2, "page": 3})
    assert [q["queue_name"] for q in page3] == ["q04"]
    assert api.ok("GET", "/queues", params={"name": "q03"})[0]["queue_id"] == created[3]["queue_id"]
    assert api.ok("GET", "/queues", params={"name": "q0"}) == []
    got = api.ok("GET", f"/queues/{created[0]['queue_id']}")
    assert got["queue_name"] == "q00"
    assert got["consumers_total_count"] == 1
    [consumer] = api.ok("GET", f"/queues/{created[0]['queue_id']}/consumers")
    assert consumer["type"] == "worker"
    assert consumer["script_name"] == "jobs-consumer"
    assert consumer["settings"]["max_retries"] == 3
    assert consumer["dead_letter_queue"] == ""
    one = api.ok("GET", f"/queues/{created[0]['queue_id']}/consumers/{consumer['consumer_id']}")
    assert one == consumer
    missing = api.call("GET", f"/queues/{created[0]['queue_id']}/consumers/ffff")
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["code"] == 11001
    nq = api.call("GET", "/queues/0123456789abcdef0123456789abcdef")
    assert nq.status_code == 404
    assert nq.json()["errors"][0]["code"] == 11000
    assert nq.json()["success"] is False


def test_pull_needs_http_pull_consumer(api):
    qid = api.queue("push-only", consumer={"type": "worker", "script_name": "jobs-consumer"})["queue_id"]
    resp = api.call("POST", f"/queues/{qid}/messages/pull", {})
    assert resp.status_code == 400
    err = resp.json()["errors"][0]
    assert err["code"] == 11002
    assert "http_pull" in err["message"]


def test_body_encodings(api, sandbox):
    qid = api.queue("plain", consumer={"type": "http_pull"})["queue_id"]
    b64q = api.queue("b64", consumer={"type": "http_pull"}, json_body_encoding="base64")["queue_id"]
    raw = bytes(range(256))
    v8 = b'\xff\x0fo"\x04type"\x0eEMAIL_DELIVERY{\x01'
    for name in ("plain", "b64"):
        sandbox.load_messages(
            api.account,
            name,
            [
                {"id": "t", "body": "héllo", "content_type": "text"},
                {"id": "j", "body": {"k": [1, "é"]}, "content_type": "json"},
                {"id": "b", "body": base64.b64encode(raw).decode(), "content_type": "bytes"},
                {"id": "v", "body": base64.b64encode(v8).decode(), "content_type": "v8"},
            ],
        )
    plain = {m["id"]: m for m in _pull(api, qid, batch_size=10)["messages"]}
    b64 = {
        m["id"]: m for m in api.ok("POST", f"/queues/{b64q}/messages/peek", {"batch_size": 10})["messages"]
    }
    assert {k: m["metadata"]["CF-Content-Type"] for k, m in plain.items()} == {
        "t": "text",
        "j": "json",
        "b": "bytes",
        "v": "v8",
    }
    assert plain["t"]["body"] == b64["t"]["body"] == "héllo"
    assert json.loads(plain["j"]["body"]) == {"k": [1, "é"]}
    assert json.loads(base64.b64decode(b64["j"]["body"], validate=True)) == {"k": [1, "é"]}
    for view in (plain, b64):
        assert base64.b64decode(view["b"]["body"], validate=True) == raw
        assert base64.b64decode(view["v"]["body"], validate=True) == v8
    # a json string value stays a JSON string (the spec types json bodies as objects; the API takes any value)
    api.ok(
        "POST", f"/queues/{qid}/messages", {"body": "just text", "content_type": "json"}, check_request=False
    )
    [m] = _pull(api, qid)["messages"]
    assert m["body"] == '"just text"'


def test_delay_seconds_on_push_and_batch(api, clock):
    qid = api.queue("jobs", consumer={"type": "http_pull"})["queue_id"]
    api.ok("POST", f"/queues/{qid}/messages", {"body": "later", "content_type": "text", "delay_seconds": 30})
    api.ok(
        "POST",
        f"/queues/{qid}/messages/batch",
        {
            "messages": [
                {"body": "b1", "content_type": "text"},
                {"body": "b2", "content_type": "text", "delay_seconds": 5},
            ],
            "delay_seconds": 60,
        },
    )
    assert _pull(api, qid)["messages"] == []
    assert api.ok("GET", f"/queues/{qid}/metrics")["backlog_count"] == 3

    def pull_and_ack():
        messages = _pull(api, qid)["messages"]
        if messages:
            api.ok(
                "POST",
                f"/queues/{qid}/messages/ack",
                {"acks": [{"lease_id": m["lease_id"]} for m in messages]},
            )
        return [m["body"] for m in messages]

    clock(5_001)
    assert pull_and_ack() == ["b2"]
    clock(25_000)
    assert pull_and_ack() == ["later"]
    clock(30_000)
    assert pull_and_ack() == ["b1"]


def test_retention_and_clock(api, sandbox):
    api.queue("short", consumer={"type": "http_pull"}, message_retention_period=60)
    now = sandbox.state()["now_ms"]
    sandbox.load_messages(
        api.account,
        "short",
        [
            {
                "id": "old",
                "body": "o",
                "content_type": "text",
                "enqueued_ms": now - 61_000,
                "timestamp_ms": now - 99_000,
            },
            {"id": "new", "body": "n", "content_type": "text"},
        ],
    )
    q = sandbox.queue_state(api.account, "short")
    assert [m["id"] for m in q["messages"]] == ["new"]
    assert q["stats"]["retention_expired"] == 1
    sandbox.admin.post("/__admin/clock", json={"advance_ms": 61_000}).raise_for_status()
    try:
        q = sandbox.queue_state(api.account, "short")
        assert q["messages"] == []
        assert q["stats"]["retention_expired"] == 2
    finally:
        sandbox.admin.post("/__admin/clock", json={"advance_ms": -61_000}).raise_for_status()


def _error(resp, status, code):
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert body["success"] is False
    assert body["result"] is None
    [err] = body["errors"]
    assert err["code"] == code
    assert err["message"]
    return err["message"]


def test_limits_give_cloudflare_style_errors(api, sandbox):
    qid = api.queue("jobs", consumer={"type": "http_pull"})["queue_id"]
    msg = _error(
        api.call("POST", f"/queues/{qid}/messages", {"body": "x" * 128_001, "content_type": "text"}),
        413,
        11003,
    )
    assert "128000" in msg
    api.ok("POST", f"/queues/{qid}/messages", {"body": "x" * 128_000, "content_type": "text"})
    _error(
        api.call("POST", f"/queues/{qid}/messages/batch", {"messages": [{"body": i} for i in range(101)]}),
        400,
        11004,
    )
    big = [{"body": "y" * 100_000, "content_type": "text"} for _ in range(3)]
    _error(api.call("POST", f"/queues/{qid}/messages/batch", {"messages": big}), 413, 11005)
    _error(api.call("POST", f"/queues/{qid}/messages/pull", {"batch_size": 101}), 400, 11006)
    _error(api.call("POST", f"/queues/{qid}/messages/pull", {"batch_size": 0.5}), 400, 11006)
    _error(
        api.call("POST", f"/queues/{qid}/messages/pull", {"visibility_timeout_ms": 43_200_001}), 400, 11007
    )
    _error(
        api.call(
            "POST", f"/queues/{qid}/messages", {"body": "x", "content_type": "text", "delay_seconds": 43_201}
        ),
        400,
        11008,
    )
    _error(api.call("POST", f"/queues/{qid}/messages", {"body": "AAAA", "content_type": "bytes"}), 400, 11009)
    _error(
        api.call("POST", f"/queues/{qid}/messages", {"body": {"a": 1}, "content_type": "text"}), 400, 11010
    )
    _error(
        api.call(
            "POST",
            f"/queues/{qid}/messages",
            content=b"{not json",
            headers={"content-type": "application/json"},
        ),
        400,
        10001,
    )
    # nothing from the rejected batches was stored (all or nothing)
    assert len(sandbox.queue_state(api.account, "jobs")["messages"]) == 1


def test_unknown_route_and_method(api):
    _error(api.call("GET", "/queues/abc/nothing-here", validate=False), 404, 7003)  # not in the spec
    resp = api.call("DELETE", "/queues", validate=False)
    _error(resp, 405, 7001)
    assert resp.headers["Allow"] == "GET, HEAD"
    head = api.call("HEAD", "/queues", validate=False)
    assert head.status_code == 200
    assert head.content == b""
    assert "Ratelimit" not in head.headers  # the shared sandbox runs with --rate-limit 0


def test_admin_load_is_idempotent_by_message_id(api, sandbox):
    """A loader that retries a batch (the lab's DLQ consumer) must not create twins."""
    api.queue("dlq", consumer={"type": "http_pull", "max_retries": 3})
    batch = [{"id": f"d{i}", "body": _job(i), "timestamp_ms": 1_790_000_000_000 + i} for i in range(3)]
    first = sandbox.load_messages(api.account, "dlq", batch)
    again = sandbox.load_messages(api.account, "dlq", [*batch, {"id": "d9", "body": _job(9)}])
    assert (first["loaded"], first["skipped"]) == (3, 0)
    assert (again["loaded"], again["skipped"], again["ids"]) == (1, 3, ["d9"])
    ids = [m["id"] for m in sandbox.queue_state(api.account, "dlq")["messages"]]
    assert ids == ["d0", "d1", "d2", "d9"]
