"""Fault injection: what a client observes for each fault, and what the server applied."""

from __future__ import annotations

import time

import httpx
import pytest

from edgeinvestigate.errors import ConfigError
from edgeinvestigate.sandbox.contract import validate_exchange
from edgeinvestigate.sandbox.faults import FaultInjector, parse_faults
from edgeinvestigate.sandbox.testing import running_sandbox

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

JOB = {
    "type": "DATA_SYNC",
    "payload": {"source": "crm", "batch": 17},
    "metadata": {"attempts": 0, "originalTimestamp": "2026-11-27T14:00:00.000Z"},
}


@pytest.fixture(scope="module")
def faulty(tmp_path_factory):
    with running_sandbox(tmp_path_factory.mktemp("faulty"), rate_limit="0") as sb:
        yield sb


@pytest.fixture
def queue(faulty):
    faulty.set_faults("")
    faulty.admin.post("/__admin/reset").raise_for_status()
    q = faulty.create_queue("acct", "jobs", consumer={"type": "http_pull"})
    yield q["queue_id"]
    faulty.set_faults("")


def _count(sb, *, expect=None, timeout=5.0):
    """Messages in the queue; with ``expect``, wait (bounded) until the server has committed that many."""
    deadline = time.monotonic() + timeout
    while True:
        n = len(sb.queue_state("acct", "jobs")["messages"])
        if expect is None or n == expect or time.monotonic() > deadline:
            return n
        time.sleep(0.05)


def test_commit_then_timeout_applies_the_push(faulty, queue):
    faulty.set_faults("commit_timeout=1,commit_delay=3,seed=1")
    with faulty.client(timeout=httpx.Timeout(0.5, connect=2.0)) as c:
        with pytest.raises(httpx.ReadTimeout):
            c.post(f"/accounts/acct/queues/{queue}/messages", json={"body": JOB})
        assert _count(faulty, expect=1) == 1  # applied although the client saw a timeout
        # a naive retry creates the duplicate that replay must guard against
        with pytest.raises(httpx.ReadTimeout):
            c.post(f"/accounts/acct/queues/{queue}/messages", json={"body": JOB})
    assert _count(faulty, expect=2) == 2
    assert faulty.state()["faults"]["injected"]["commit_timeout"] == 2


def test_commit_then_drop_applies_the_batch(faulty, queue):
    faulty.set_faults("commit_timeout=1,commit_mode=drop")
    with faulty.client() as c, pytest.raises(httpx.RemoteProtocolError):
        c.post(f"/accounts/acct/queues/{queue}/messages/batch", json={"messages": [{"body": JOB}] * 3})
    assert _count(faulty, expect=3) == 3


def test_commit_timeout_only_hits_pushes(faulty, queue):
    faulty.set_faults("commit_timeout=1,commit_delay=3")
    with faulty.client(timeout=1.0) as c:
        assert c.get(f"/accounts/acct/queues/{queue}/metrics").status_code == 200
        assert c.post(f"/accounts/acct/queues/{queue}/messages/peek", json={}).status_code == 200


def test_drop_applies_nothing(faulty, queue):
    faulty.set_faults("drop=1")
    with faulty.client() as c, pytest.raises(httpx.RemoteProtocolError):
        c.post(f"/accounts/acct/queues/{queue}/messages", json={"body": JOB})
    assert _count(faulty) == 0
    assert "ASGI callable" not in faulty.log_path.read_text()


def test_error_rate_gives_cloudflare_500(faulty, queue):
    faulty.set_faults("error_rate=1")
    with faulty.client() as c:
        r = c.post(f"/accounts/acct/queues/{queue}/messages", json={"body": JOB})
    assert r.status_code == 500
    assert r.json()["errors"][0]["code"] == 10002
    assert r.json()["success"] is False
    assert _count(faulty) == 0


def test_burst429_then_recovers(faulty, queue):
    faulty.set_faults("burst429=2,retry_after=3")
    with faulty.client() as c:
        statuses = []
        for _ in range(3):
            r = c.post(f"/accounts/acct/queues/{queue}/messages", json={"body": JOB})
            validate_exchange(r)
            statuses.append(r.status_code)
            if r.status_code == 429:
                assert r.headers["Retry-After"] == "3"
                # the global limit is off in this sandbox: no Ratelimit headers, only Retry-After
                assert "Ratelimit-Policy" not in r.headers
    assert statuses == [429, 429, 200]
    assert _count(faulty) == 1


def test_latency_and_ops_filter(faulty, queue):
    faulty.set_faults("latency=1.0,ops=push")
    with faulty.client() as c:
        t0 = time.perf_counter()
        c.get(f"/accounts/acct/queues/{queue}/metrics").raise_for_status()
        fast = time.perf_counter() - t0
        t0 = time.perf_counter()
        c.post(f"/accounts/acct/queues/{queue}/messages", json={"body": JOB}).raise_for_status()
        slow = time.perf_counter() - t0
    assert slow >= 1.0 > fast


def test_admin_is_never_faulted(faulty, queue):
    faulty.set_faults("error_rate=1,drop=1")
    assert faulty.state()["faults"]["faults"]["error_rate"] == 1.0
    assert faulty.admin.get("/__admin/faults").status_code == 200
    bad = faulty.admin.put("/__admin/faults", json={"spec": "error_rate=2"})
    assert bad.status_code == 400
    assert "probability" in bad.text


def test_faults_from_the_command_line(tmp_path):
    with running_sandbox(tmp_path, faults="error_burst=1,seed=3") as sb, sb.client() as c:
        assert [c.get("/accounts/a/queues").status_code for _ in range(2)] == [500, 200]


def test_parse_faults_round_trip_and_errors():
    spec = parse_faults(
        "latency=0.2,error_rate=0.05,burst429=10,drop=0.01,commit_timeout=0.05,seed=1,ops=push+batch"
    )
    assert (spec.latency, spec.error_rate, spec.burst429, spec.drop, spec.commit_timeout, spec.seed) == (
        0.2,
        0.05,
        10,
        0.01,
        0.05,
        1,
    )
    assert spec.ops == ["push", "batch"]
    assert parse_faults(spec.to_spec()) == spec
    for bad in ("latency", "nonsense=1", "drop=1.5", "latency=-1", "commit_mode=explode", "burst429=x"):
        with pytest.raises(ConfigError) as err:
            parse_faults(bad)
        assert "fault spec" in str(err.value)


def test_seeded_faults_are_deterministic():
    def run():
        inj = FaultInjector(parse_faults("error_rate=0.3,drop=0.2,seed=42"))
        return [inj.before("push") for _ in range(50)]

    first = run()
    assert first == run()
    assert {"500", "drop", None} <= set(first)
