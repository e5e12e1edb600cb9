"""Bearer auth (401/403, Cloudflare-shaped) and the global rate limit (429, Retry-After, Ratelimit)."""

from __future__ import annotations

import re

import httpx
import pytest

from edgeinvestigate._http import make_client
from edgeinvestigate.cloudflare.client import CloudflareClient
from edgeinvestigate.sandbox.contract import validate_exchange
from edgeinvestigate.sandbox.testing import running_sandbox

pytestmark = pytest.mark.e2e

RATELIMIT = re.compile(r'^"default";r=(\d+);t=(\d+)$')


@pytest.mark.parametrize(
    ("path", "method", "body"),
    [
        ("/accounts/acct/queues", "GET", None),
        (
            "/accounts/acct/workers/observability/telemetry/query",
            "POST",
            {"queryId": "q", "timeframe": {"from": 0, "to": 1}},
        ),
        ("/accounts/acct/workers/scripts/jobs-consumer/tails", "POST", {"filters": []}),
    ],
)
def test_missing_token_401_wrong_token_403(sandbox, path, method, body):
    with make_client(sandbox.url) as anonymous, sandbox.client(token="not-the-token") as wrong:
        r401 = anonymous.request(method, path, json=body)
        r403 = wrong.request(method, path, json=body)
    assert r401.status_code == 401
    assert r403.status_code == 403
    for resp, code in ((r401, 9106), (r403, 9109)):
        validate_exchange(resp)
        data = resp.json()
        assert data["success"] is False
        assert data["errors"][0]["code"] == code
        assert sandbox.token not in resp.text
    if "telemetry" in path:
        assert r401.json()["errors"][0]["message"] == "Unauthorized"
        assert r403.json()["errors"][0]["message"] == "Forbidden"


def test_admin_needs_the_token_too(sandbox):
    with make_client(sandbox.base) as anonymous:
        assert anonymous.get("/__admin/state").status_code == 401
        assert anonymous.post("/__admin/reset").status_code == 401
    with make_client(sandbox.base, token=None, headers={"Authorization": "Basic abc"}) as basic:
        assert basic.get("/__admin/state").status_code == 401


def test_rate_limit_429_with_retry_after_and_headers(tmp_path):
    with running_sandbox(tmp_path, rate_limit="4/60") as sb, sb.client() as c:
        qid = sb.create_queue("acct", "jobs", consumer={"type": "http_pull"})["queue_id"]
        sb.load_messages("acct", "jobs", [{"body": {"n": i}} for i in range(3)])
        remaining = []
        for _ in range(4):
            r = c.get("/accounts/acct/queues")
            assert r.status_code == 200
            m = RATELIMIT.match(r.headers["Ratelimit"])
            assert m, r.headers["Ratelimit"]
            remaining.append(int(m.group(1)))
            assert 0 < int(m.group(2)) <= 60
            assert r.headers["Ratelimit-Policy"] == '"default";q=4;w=60'
            assert "Retry-After" not in r.headers
        assert remaining == [3, 2, 1, 0]
        limited = c.post(f"/accounts/acct/queues/{qid}/messages", json={"body": {"x": 1}})
        assert limited.status_code == 429
        validate_exchange(limited)
        assert 1 <= int(limited.headers["Retry-After"]) <= 60
        assert limited.json()["errors"][0]["code"] == 10429
        assert RATELIMIT.match(limited.headers["Ratelimit"]).group(1) == "0"
        # nothing was pushed by the limited request
        assert len(sb.queue_state("acct", "jobs")["messages"]) == 3
        # pull and ack are exempt
        pulled = c.post(f"/accounts/acct/queues/{qid}/messages/pull", json={"batch_size": 2})
        assert pulled.status_code == 200
        assert len(pulled.json()["result"]["messages"]) == 2
        assert "Ratelimit" in pulled.headers
        leases = [{"lease_id": m["lease_id"]} for m in pulled.json()["result"]["messages"]]
        acked = c.post(f"/accounts/acct/queues/{qid}/messages/ack", json={"acks": leases})
        assert acked.status_code == 200
        assert acked.json()["result"]["ackCount"] == 2
        # telemetry is limited like any other call
        q = c.post(
            "/accounts/acct/workers/observability/telemetry/query",
            json={"queryId": "q", "timeframe": {"from": 0, "to": 1}},
        )
        assert q.status_code == 429
        validate_exchange(q)
        # the limit is configurable at runtime; a new window starts
        sb.admin.put("/__admin/rate-limit", json={"limit": 100, "window_s": 300}).raise_for_status()
        again = c.get("/accounts/acct/queues")
        assert again.status_code == 200
        assert again.headers["Ratelimit-Policy"] == '"default";q=100;w=300'


def test_wrong_tokens_do_not_consume_the_budget(tmp_path):
    with (
        running_sandbox(tmp_path, rate_limit="2/60") as sb,
        sb.client(token="wrong") as bad,
        sb.client() as good,
    ):
        for _ in range(5):
            assert bad.get("/accounts/a/queues").status_code == 403
        assert [good.get("/accounts/a/queues").status_code for _ in range(3)] == [200, 200, 429]


def test_token_never_in_log_or_ready_file(tmp_path):
    secret = "tok-" + "7" * 30
    with running_sandbox(tmp_path, token=secret) as sb:
        with sb.client(token="wrong") as bad:
            bad.get("/accounts/a/queues")
        with httpx.Client() as raw:
            raw.get(sb.base + "/client/v4/accounts/a/queues", headers={"Authorization": f"Bearer {secret}x"})
        assert secret not in repr(sb)
    texts = [p.read_text(errors="replace") for p in (tmp_path / "sandbox-proc").iterdir() if p.is_file()]
    assert texts
    assert all(secret not in t for t in texts)


def test_rate_limit_off_sends_no_headers_and_the_client_never_waits(tmp_path):
    """``--rate-limit 0``: no 429 however many requests, no Ratelimit headers, and CloudflareClient
    (which sleeps when ``Ratelimit`` says ``r=0``) never sleeps."""
    sleeps: list[float] = []
    with running_sandbox(tmp_path, rate_limit="0") as sb:
        sb.create_queue("acct", "jobs", consumer={"type": "http_pull"})
        with sb.client() as raw:
            for _ in range(30):
                r = raw.get("/accounts/acct/queues")
                assert r.status_code == 200
                assert "Ratelimit" not in r.headers
                assert "Ratelimit-Policy" not in r.headers
        with CloudflareClient("acct", sb.secret, api_url=sb.url, sleep=sleeps.append) as client:
            qid = client.queue_id("jobs")
            for i in range(150):  # more than a limit of 100 or 120 could ever allow
                client.push(qid, {"n": i})
            assert client.get_queue(qid)["queue_name"] == "jobs"
            assert not client.rate_limit.known
            assert client.requests_sent >= 152
        assert sleeps == []
        assert len(sb.queue_state("acct", "jobs")["messages"]) == 150
        # switched on at runtime, the headers come back
        sb.admin.put("/__admin/rate-limit", json={"limit": 10, "window_s": 60}).raise_for_status()
        with sb.client() as raw:
            again = raw.get("/accounts/acct/queues")
        assert again.headers["Ratelimit-Policy"] == '"default";q=10;w=60'
        assert RATELIMIT.match(again.headers["Ratelimit"]).group(1) == "9"
