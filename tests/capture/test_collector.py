"""The Tail Worker collector under concurrent POSTs: every array lands as one line, nothing lost."""

from __future__ import annotations

import json
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

import edgeinvestigate as ei
from edgeinvestigate.capture.collector import bind_socket
from edgeinvestigate.errors import ConfigError

DATA = Path(__file__).parents[1] / "lab" / "data"  # a capture of the lab's real workerd
REAL = DATA / "workerd-2026-04-26-traceitems.jsonl"


def _real_arrays() -> list[list[dict]]:
    return [json.loads(line) for line in REAL.read_text().splitlines() if line.strip()]


def test_concurrent_posts_nothing_lost(collector) -> None:
    arrays = _real_arrays()
    # 400 POSTs from 32 threads, each a real workerd TraceItem array tagged with a unique number
    bodies = []
    for n in range(400):
        arr = json.loads(json.dumps(arrays[n % len(arrays)]))
        arr[0]["eventTimestamp"] = arr[0]["eventTimestamp"] + n  # unique, still a real shape
        arr[0].setdefault("tailAttributes", {})["n"] = n
        bodies.append(json.dumps(arr, separators=(",", ":")))

    def post(chunk: list[str]) -> list[int]:
        # one connection per thread, like a Tail Worker isolate reusing its connection
        with httpx.Client(timeout=30) as client:
            return [
                client.post(
                    collector.url + "/", content=b, headers={"content-type": "application/json"}
                ).status_code
                for b in chunk
            ]

    with ThreadPoolExecutor(32) as pool:
        codes = [c for part in pool.map(post, [bodies[i::32] for i in range(32)]) for c in part]
    assert codes == [204] * 400
    health = httpx.get(collector.url + "/health").json()
    assert health["lines"] == 400
    assert health["rejected"] == 0
    # SIGTERM: graceful shutdown (uvicorn re-raises the signal afterwards, hence -15)
    assert collector.stop() in (0, -15)
    lines = collector.out.read_text().splitlines()
    assert len(lines) == 400
    seen = sorted(json.loads(line)[0]["tailAttributes"]["n"] for line in lines)
    assert seen == list(range(400))
    assert set(lines) == set(bodies)  # the runtime's bytes, unchanged


def test_bad_bodies_refused_and_kept(collector) -> None:
    good = REAL.read_text().splitlines()[0]
    with httpx.Client(base_url=collector.url, timeout=10) as client:
        r1 = client.post("/", content=b"{not json")
        r2 = client.post("/", content=b'"a string"')
        r3 = client.post("/", content=b"[1, 2]")
        r4 = client.post("/", content=good)
        # a single TraceItem object is stored as a one-element array
        r5 = client.post("/", content=json.dumps(json.loads(good)[0], indent=2))
    assert [r.status_code for r in (r1, r2, r3, r4, r5)] == [400, 400, 400, 204, 204]
    assert "not JSON" in r1.json()["error"]
    assert "JSON array of TraceItem" in r2.json()["error"]
    assert "item 0" in r3.json()["error"]
    collector.stop()
    lines = collector.out.read_text().splitlines()
    assert lines[0] == good
    assert json.loads(lines[1]) == json.loads(good)
    rejected = [
        json.loads(x)
        for x in collector.out.with_name("traceitems.jsonl.rejected.jsonl").read_text().splitlines()
    ]
    assert [r["body"] for r in rejected] == ["{not json", '"a string"', "[1, 2]"]


def test_loader_reads_collected_real_workerd_items(collector) -> None:
    """The TraceItem loader reads what real workerd 2026-04-26 emitted, through the collector."""
    with httpx.Client(base_url=collector.url, timeout=10) as client:
        for line in REAL.read_text().splitlines():
            assert client.post("/", content=line).status_code == 204
    collector.stop()
    ev = ei.load([collector.out])
    inv = ev.invocations
    assert len(inv) == len(REAL.read_text().splitlines())
    (report,) = ev.report.files
    assert report.source == "traceitems"
    assert report.skipped == 0
    assert report.n_issues == 0
    assert inv["script"].isna().all()  # local TraceItems have scriptName null
    assert (inv["cpu_ms"] == 0).all()
    assert (inv["wall_ms"] == 0).all()
    crashed = inv[(inv["outcome"] == "ok") & (inv["n_exceptions"] > 0)]
    assert len(crashed) >= 1
    assert crashed["failed"].all()
    assert set(inv["trigger"].astype(str)) == {"fetch", "queue"}
    logs = ev.logs
    dead = logs[logs["message"].str.contains('"job_dead_lettered"', regex=False)]
    assert len(dead) >= 1
    assert dead["job_id"].notna().all()
    assert dead["message_id"].notna().all()
    assert dead["attempt"].notna().all()
    assert set(ev.exceptions["name"].astype(str)) >= {"SyntaxError"}


def test_listen_backlog_holds_a_burst() -> None:
    """256 pending connections fit in the backlog before the server accepts any (stdlib 5 would not)."""
    sock = bind_socket("127.0.0.1", 0, backlog=256)
    port = sock.getsockname()[1]
    clients = []
    try:
        for _ in range(150):
            c = socket.create_connection(("127.0.0.1", port), timeout=2)
            clients.append(c)
        assert len(clients) == 150
    finally:
        for c in clients:
            c.close()
        sock.close()


def test_port_in_use_is_a_clear_error() -> None:
    sock = bind_socket("127.0.0.1", 0)
    try:
        with pytest.raises(ConfigError, match=r"cannot listen on 127\.0\.0\.1"):
            bind_socket("127.0.0.1", sock.getsockname()[1])
    finally:
        sock.close()
