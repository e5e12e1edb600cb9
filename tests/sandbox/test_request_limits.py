"""Hostile request bodies and names against a real sandbox process: a body is refused at its size cap
while it streams in (never read whole), deep JSON is a 400 in the envelope (never a 500, never a bare
text/plain answer on ``/__admin/``), and queue names follow Cloudflare's rule."""

from __future__ import annotations

import json
import socket
import threading
import time

import psutil
import pytest

from edgeinvestigate.sandbox._request_body import MAX_API_BODY, MAX_JSON_DEPTH, json_depth

pytestmark = pytest.mark.e2e


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def _raw_request(port: int, head: str, chunks=(), *, timeout: float = 30.0) -> tuple[bytes, int]:
    """Send ``head`` then ``chunks`` on a raw socket; returns (the response bytes, bytes of body sent).

    Sending stops at the first socket error (a server may close once it answered)."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(head.encode())
        try:
            for chunk in chunks:
                s.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass
        data = b""
        try:
            while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < 20:
                part = s.recv(65536)
                if not part:
                    break
                data += part
        except OSError:
            pass
    return data, sent


def _envelope(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body)


def test_json_depth_counts_without_recursion() -> None:
    assert json_depth(1) == 0
    assert json_depth([]) == 1
    assert json_depth({"a": [{"b": 1}]}) == 3
    deep: list = []
    for _ in range(50_000):  # far past the interpreter's recursion limit
        deep = [deep]
    assert json_depth(deep) > MAX_JSON_DEPTH


def test_deep_json_is_a_400_in_the_envelope_on_every_family(api, sandbox) -> None:
    qid = api.queue("jobs", consumer={"type": "http_pull"})["queue_id"]
    deep = _nested(5000)
    headers = {"content-type": "application/json"}
    push = api.call("POST", f"/queues/{qid}/messages", content=deep, headers=headers, validate=False)
    assert push.status_code == 400, push.text
    assert push.json()["success"] is False
    assert f"deeper than {MAX_JSON_DEPTH} levels" in push.json()["errors"][0]["message"]
    query = api.call(
        "POST", "/workers/observability/telemetry/query", content=deep, headers=headers, validate=False
    )
    assert query.status_code == 400
    assert "deeper than" in query.json()["errors"][0]["detail"]  # the telemetry family's shape
    admin = sandbox.admin.post(f"/__admin/accounts/{api.account}/telemetry/events", content=deep)
    assert admin.status_code == 400
    assert admin.headers["content-type"] == "application/json"
    assert "deeper than" in admin.json()["errors"][0]["message"]
    # the message was not stored, and the server still answers
    assert api.ok("GET", f"/queues/{qid}/metrics")["backlog_count"] == 0


def test_json_nesting_limit_is_exact(api) -> None:
    qid = api.queue("jobs", consumer={"type": "http_pull"})["queue_id"]
    # {"body": [[...]]}: the object is level 1, so the body may nest MAX_JSON_DEPTH - 1 deep
    fits = json.loads(_nested(MAX_JSON_DEPTH - 1))
    ok = api.call("POST", f"/queues/{qid}/messages", {"body": fits}, validate=False)
    assert ok.status_code == 200, ok.text
    too_deep = json.loads(_nested(MAX_JSON_DEPTH))
    refused = api.call("POST", f"/queues/{qid}/messages", {"body": too_deep}, validate=False)
    assert refused.status_code == 400
    assert api.ok("GET", f"/queues/{qid}/metrics")["backlog_count"] == 1


def test_declared_length_over_the_cap_is_refused_before_the_body_is_read(api, sandbox) -> None:
    qid = api.queue("jobs", consumer={"type": "http_pull"})["queue_id"]
    size = MAX_API_BODY + 1
    head = (
        f"POST /client/v4/accounts/{api.account}/queues/{qid}/messages HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {sandbox.token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {size}\r\n\r\n"
    )
    started = time.monotonic()
    raw, _ = _raw_request(sandbox.port, head, timeout=10)  # no body at all: the answer must not wait for it
    status, body = _envelope(raw)
    assert time.monotonic() - started < 5
    assert status == 413
    assert body["success"] is False
    assert body["errors"][0]["code"] == 11003  # a push: message too large
    assert f"{size} bytes" in body["errors"][0]["message"]


def test_chunked_body_is_cut_at_the_cap_without_buffering_it(api, sandbox) -> None:
    qid = api.queue("jobs", consumer={"type": "http_pull"})["queue_id"]
    proc = psutil.Process(sandbox.pid)
    before = proc.memory_info().rss
    peak = [before]
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    head = (
        f"POST /client/v4/accounts/{api.account}/queues/{qid}/messages/batch HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {sandbox.token}\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    piece = b"x" * 65536
    chunk = b"%x\r\n" % len(piece) + piece + b"\r\n"
    total = 256 * 2**20  # 256 MiB, 128 times the cap
    try:
        raw, sent = _raw_request(sandbox.port, head, (chunk for _ in range(total // len(piece))))
    finally:
        done.set()
        watcher.join()
    status, body = _envelope(raw)
    assert status == 413, raw[:300]
    assert body["errors"][0]["code"] == 11005  # a batch push: batch too large
    assert "passed the limit" in body["errors"][0]["message"]
    assert sent > MAX_API_BODY
    # the server held at most the cap (plus noise), never the hundreds of MiB sent
    assert peak[0] - before < 64 * 2**20, (before >> 20, peak[0] >> 20)
    assert api.ok("GET", f"/queues/{qid}/metrics")["backlog_count"] == 0


@pytest.mark.parametrize(
    "name",
    ["../../etc/passwd", "<script>", "Jobs", "jobs_dlq", "-jobs", "jobs-", "a" * 64, "jobs dlq", "jöbs", ""],
)
def test_admin_refuses_queue_names_cloudflare_refuses(sandbox, account, name) -> None:
    r = sandbox.admin.post(f"/__admin/accounts/{account}/queues", json={"queue_name": name})
    assert r.status_code == 400, r.text
    message = r.json()["errors"][0]["message"]
    assert "queue_name" in message
    if name:
        assert repr(name) in message
        assert "lowercase letters, digits and dashes" in message
    assert account not in sandbox.state()["accounts"]


def test_admin_accepts_valid_names_and_checks_the_dead_letter_queue(sandbox, account) -> None:
    for name in ("a", "7", "jobs-dlq", "a" * 63):
        assert sandbox.create_queue(account, name)["queue_name"] == name
    bad_dlq = sandbox.admin.post(
        f"/__admin/accounts/{account}/queues",
        json={"queue_name": "jobs", "consumer": {"type": "http_pull", "dead_letter_queue": "../dlq"}},
    )
    assert bad_dlq.status_code == 400
    assert "dead_letter_queue '../dlq'" in bad_dlq.json()["errors"][0]["message"]
    itself = sandbox.admin.post(
        f"/__admin/accounts/{account}/queues",
        json={"queue_name": "jobs", "consumer": {"type": "http_pull", "dead_letter_queue": "jobs"}},
    )
    assert itself.status_code == 400
    assert "the queue itself" in itself.json()["errors"][0]["message"]
    assert set(sandbox.state()["accounts"][account]["queues"]) == {"a", "7", "jobs-dlq", "a" * 63}


def test_graphql_bodies_have_the_same_caps(sandbox) -> None:
    deep = sandbox.admin.post(
        "/client/v4/graphql", content=_nested(5000), headers={"content-type": "application/json"}
    )
    assert deep.status_code == 400
    assert deep.json()["data"] is None
    assert "deeper than" in deep.json()["errors"][0]["message"]
    head = (
        f"POST /client/v4/graphql HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {sandbox.token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {MAX_API_BODY + 1}\r\n\r\n"
    )
    raw, _ = _raw_request(sandbox.port, head, timeout=10)
    status, body = _envelope(raw)
    assert status == 413
    assert "limit of this route" in body["errors"][0]["message"]
