"""Lab forwarding: pushed messages are POSTed to an HTTP endpoint, acked on 2xx, retried otherwise."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

pytestmark = pytest.mark.e2e


class Receiver:
    """A stand-in for the producer Worker's job API on 127.0.0.1: records POSTs, fails on demand."""

    def __init__(self, fail_first: int = 0, always_fail: bool = False) -> None:
        self.received: list[tuple[dict, object]] = []
        self.fail_first = fail_first
        self.always_fail = always_fail
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                owner.received.append((dict(self.headers), body))
                failing = owner.always_fail or len(owner.received) <= owner.fail_first
                self.send_response(503 if failing else 202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/jobs"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def _wait(predicate, timeout=10.0):
    """Poll ``predicate`` (the forwarder works in the background) until it holds or ``timeout`` s pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _stat(sandbox, account, queue, name):
    return sandbox.queue_state(account, queue)["stats"].get(name, 0)


def _after_the_backoff(sandbox, account, queue, clock):
    """Wait until the forwarder retried a failed delivery, then move the sandbox clock past the
    retry's backoff (1 s after a first failure, with retry_delay 0) instead of sleeping through it."""
    assert _wait(lambda: _stat(sandbox, account, queue, "retried") >= 1)
    clock(1_000)


def _forwarder_went_round(api, sandbox):
    """Return once the forwarder has visited every queue after this call (no fixed sleep).

    The forwarder visits the forwarded queues in creation order, pass after pass, so a queue created
    now comes last. Its first message is forwarded in some pass P; a second one, put there only after
    the first arrived, is forwarded in a later pass, which started after P ended and so visited every
    older queue before it.
    """
    api.queue("barrier", consumer={"type": "worker", "script_name": "jobs-consumer", "max_retries": 0})
    with Receiver() as rx:
        sandbox.admin.post(f"/__admin/accounts/{api.account}/queues/barrier/forward", json={"url": rx.url})
        for n in (1, 2):
            sandbox.load_messages(api.account, "barrier", [{"id": f"barrier-{n}", "body": {}}])
            assert _wait(lambda n=n: len(rx.received) == n)


def test_forward_acks_on_2xx_and_retries_otherwise(api, sandbox, clock):
    job = {
        "type": "EMAIL_DELIVERY",
        "payload": {"to": "a@example.com"},
        "metadata": {
            "attempts": 0,
            "originalTimestamp": "2026-11-27T14:00:00.000Z",
            "replay": {"idempotencyKey": "ei-replay-7f3a"},
        },
    }
    api.queue(
        "jobs-retry",
        consumer={"type": "worker", "script_name": "jobs-consumer", "max_retries": 3, "retry_delay": 0},
    )
    with Receiver(fail_first=1) as rx:
        r = sandbox.admin.post(
            f"/__admin/accounts/{api.account}/queues/jobs-retry/forward", json={"url": rx.url}
        )
        assert r.json()["result"]["forward_url"] == rx.url
        qid = api.ok("GET", "/queues", params={"name": "jobs-retry"})[0]["queue_id"]
        api.ok("POST", f"/queues/{qid}/messages", {"body": job, "content_type": "json"})
        api.ok("POST", f"/queues/{qid}/messages", {"body": "plain words", "content_type": "text"})
        _after_the_backoff(sandbox, api.account, "jobs-retry", clock)
        assert _wait(lambda: sandbox.queue_state(api.account, "jobs-retry")["stats"].get("acked", 0) == 2)
    bodies = [b for _, b in rx.received]
    assert bodies.count(job) == 2  # the first POST got 503 and was retried
    assert "plain words" in bodies
    headers = rx.received[0][0]
    assert headers["X-Queue-Name"] == "jobs-retry"
    assert headers["Content-Type"] == "application/json"
    attempts = [int(h["X-Queue-Message-Attempts"]) for h, b in rx.received if b == job]
    assert attempts == [1, 2]
    ids = {h["X-Queue-Message-Id"] for h, b in rx.received if b == job}
    assert len(ids) == 1
    state = sandbox.queue_state(api.account, "jobs-retry")
    assert state["messages"] == []
    assert state["stats"]["retried"] == 1


def test_forward_exhaustion_goes_to_the_dlq_and_forwarding_stops(api, sandbox, clock):
    api.queue(
        "jobs-retry",
        consumer={
            "type": "worker",
            "script_name": "jobs-consumer",
            "max_retries": 1,
            "dead_letter_queue": "jobs-dlq",
            "retry_delay": 0,
        },
    )
    with Receiver(always_fail=True) as rx:
        sandbox.admin.post(f"/__admin/accounts/{api.account}/queues/jobs-retry/forward", json={"url": rx.url})
        sandbox.load_messages(api.account, "jobs-retry", [{"id": "m-1", "body": {"type": "DATA_SYNC"}}])
        _after_the_backoff(sandbox, api.account, "jobs-retry", clock)
        assert _wait(lambda: sandbox.queue_state(api.account, "jobs-dlq")["messages"], timeout=15)
        assert len(rx.received) == 2  # max_retries=1: two deliveries
        sandbox.admin.post(f"/__admin/accounts/{api.account}/queues/jobs-retry/forward", json={"url": None})
        sandbox.load_messages(api.account, "jobs-retry", [{"id": "m-2", "body": {"type": "DATA_SYNC"}}])
        _forwarder_went_round(api, sandbox)
        assert len(rx.received) == 2
    [dead] = sandbox.queue_state(api.account, "jobs-dlq")["messages"]
    assert dead["id"] == "m-1"
    bad = sandbox.admin.post(
        f"/__admin/accounts/{api.account}/queues/jobs-retry/forward", json={"url": "ftp://x"}
    )
    assert bad.status_code == 400
