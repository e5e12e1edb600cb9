"""Live tails: REST endpoints + the trace-v1 WebSocket fed by the admin endpoint (reference F, A2)."""

from __future__ import annotations

import json

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

pytestmark = pytest.mark.e2e

SCRIPT = "jobs-consumer"


def tail_event(i: int, *, outcome: str = "ok", method: str | None = None, version: str = "v1") -> dict:
    """One tail WebSocket message in the A2 shape (field order as in real captures)."""
    if method:
        event = {
            "request": {
                "url": "https://jobs.example.com/api/jobs?token=REDACTED",
                "method": method,
                "headers": {"content-type": "application/json", "cookie": "REDACTED"},
                "cf": {},
            },
            "response": {"status": 202},
        }
    else:
        event = {"queue": "jobs", "batchSize": 1}
    exceptions = []
    if outcome != "ok":
        exceptions = [
            {
                "name": "TypeError",
                "message": "Cannot read properties of undefined (reading 'name')",
                "timestamp": 1_795_000_000_000 + i,
                "stack": "TypeError: Cannot read ...\n    at render",
            }
        ]
    return {
        "wallTime": 14,
        "cpuTime": 3,
        "truncated": False,
        "executionModel": "stateless",
        "outcome": outcome,
        "scriptTags": [],
        "scriptVersion": {"id": version},
        "scriptName": SCRIPT,
        "diagnosticsChannelEvents": [],
        "exceptions": exceptions,
        "logs": [
            {
                "message": [json.dumps({"jobId": f"job-{i}", "type": "EMAIL_DELIVERY", "attempt": 1})],
                "level": "log",
                "timestamp": 1_795_000_000_000 + i,
            }
        ],
        "eventTimestamp": 1_795_000_000_000 + i,
        "event": event,
    }


def _inject(sandbox, account, events, min_clients=1):
    r = sandbox.admin.post(
        f"/__admin/accounts/{account}/scripts/{SCRIPT}/tail-events",
        json={"events": events, "min_clients": min_clients, "timeout_s": 5},
    )
    assert r.status_code == 200, r.text
    return r.json()["result"]


def test_tail_lifecycle_and_streaming(api, sandbox):
    tail = api.ok("POST", f"/workers/scripts/{SCRIPT}/tails", {"filters": []})
    assert set(tail) == {"id", "url", "expires_at"}
    assert tail["url"].startswith("ws://127.0.0.1:")
    assert api.ok("GET", f"/workers/scripts/{SCRIPT}/tails")["id"] == tail["id"]
    with connect(tail["url"], subprotocols=["trace-v1"], open_timeout=5) as ws:
        assert ws.subprotocol == "trace-v1"
        ws.send(json.dumps({"debug": False}))
        ws.ping(b"wrangler tail ping").wait(timeout=5)  # pings are answered
        sent = [tail_event(i) for i in range(3)]
        assert _inject(sandbox, api.account, sent) == {"clients": 1, "delivered": 3}
        got = [json.loads(ws.recv(timeout=5)) for _ in range(3)]
        assert got == sent
        state = sandbox.state()["accounts"][api.account]["tails"]
        assert [(t["tail_id"], t["connected"]) for t in state] == [(tail["id"], 1)]
        api.ok("DELETE", f"/workers/scripts/{SCRIPT}/tails/{tail['id']}", {})
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd.code == 1000
    missing = api.call("DELETE", f"/workers/scripts/{SCRIPT}/tails/{tail['id']}", {})
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["code"] == 10007
    assert api.call("GET", f"/workers/scripts/{SCRIPT}/tails").status_code == 404


def test_filters_and_debug(api, sandbox):
    tail = api.ok(
        "POST", f"/workers/scripts/{SCRIPT}/tails", {"filters": [{"outcome": ["exception", "exceededCpu"]}]}
    )
    events = [
        tail_event(0),
        tail_event(1, outcome="exception"),
        tail_event(2, method="POST"),
        tail_event(3, outcome="exception", version="v2"),
    ]
    with connect(tail["url"], subprotocols=["trace-v1"], open_timeout=5) as ws:
        ws.send(json.dumps({"debug": False}))
        assert _inject(sandbox, api.account, events)["delivered"] == 2
        assert [json.loads(ws.recv(timeout=5))["eventTimestamp"] for _ in range(2)] == [
            events[1]["eventTimestamp"],
            events[3]["eventTimestamp"],
        ]
        ws.send(json.dumps({"filters": [{"method": ["POST"]}]}))
        ws.send(json.dumps({"debug": False}))  # a round trip so the filter message is processed first
        res = _inject(sandbox, api.account, events)
        assert res["delivered"] == 1
        assert json.loads(ws.recv(timeout=5))["event"]["request"]["method"] == "POST"
        ws.send(json.dumps({"filters": [{"scriptVersion": "v2"}, {"query": "job-3"}]}))
        ws.send(json.dumps({"debug": False}))
        assert _inject(sandbox, api.account, events)["delivered"] == 1
        assert json.loads(ws.recv(timeout=5))["scriptVersion"] == {"id": "v2"}
        ws.send(json.dumps({"debug": True}))  # debug: everything, filters ignored
        ws.send(json.dumps({"debug": True}))
        assert _inject(sandbox, api.account, events)["delivered"] == 4


def test_websocket_needs_trace_v1_and_a_known_tail(api, sandbox):
    tail = api.ok("POST", f"/workers/scripts/{SCRIPT}/tails", {"filters": []})
    with pytest.raises(InvalidStatus) as err:
        connect(tail["url"], open_timeout=5)
    assert err.value.response.status_code == 403
    with pytest.raises(InvalidStatus):
        connect(tail["url"].rsplit("/", 1)[0] + "/0deadbeef", subprotocols=["trace-v1"], open_timeout=5)


def test_admin_disconnect_and_limits(api, sandbox):
    tail = api.ok("POST", f"/workers/scripts/{SCRIPT}/tails", {"filters": []})
    with connect(tail["url"], subprotocols=["trace-v1"], open_timeout=5) as ws:
        _inject(sandbox, api.account, [], min_clients=1)
        r = sandbox.admin.post(
            f"/__admin/accounts/{api.account}/scripts/{SCRIPT}/tails/disconnect", json={"code": 1011}
        )
        assert r.json()["result"] == {"closed": 1}
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=5)
        assert closed.value.rcvd.code == 1011
    waited = sandbox.admin.post(
        f"/__admin/accounts/{api.account}/scripts/{SCRIPT}/tail-events",
        json={"events": [], "min_clients": 1, "timeout_s": 0.2},
    )
    assert waited.status_code == 400
    for _ in range(9):
        api.ok("POST", f"/workers/scripts/{SCRIPT}/tails", {"filters": []})
    over = api.call("POST", f"/workers/scripts/{SCRIPT}/tails", {"filters": []})
    assert over.status_code == 429
    assert over.json()["errors"][0]["code"] == 10057
    bad_name = api.call("POST", "/workers/scripts/Not_Valid!/tails", {}, check_request=False)
    assert bad_name.status_code == 400
