"""DLQ peek and snapshot against the sandbox running as a real HTTP server on 127.0.0.1.

Every request the client sends (and every JSON answer) is validated against the OpenAPI subset.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from _helpers.api import ACCOUNT, TOKEN, ValidatingTransport, job

from edgeinvestigate.cloudflare.client import CloudflareClient
from edgeinvestigate.errors import AuthError, NotFoundError, RateLimitedError, ReplayRefusedError, ServerError
from edgeinvestigate.sandbox.testing import RunningSandbox, running_sandbox
from edgeinvestigate.sources.api.dlq import collect_dlq, load_dlq
from edgeinvestigate.sources.api.dlq_body import V8_FLAG
from edgeinvestigate.sources.api.dlq_leases import release_leases

pytestmark = pytest.mark.e2e

DLQ = "jobs-dlq"


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    with running_sandbox(tmp_path_factory.mktemp("sb"), token=TOKEN) as sb:
        yield sb


@pytest.fixture
def sb(sandbox: RunningSandbox) -> RunningSandbox:
    sandbox.admin.post("/__admin/reset").raise_for_status()
    sandbox.set_faults("")
    return sandbox


@pytest.fixture
def client(sb: RunningSandbox) -> Iterator[CloudflareClient]:
    transport = ValidatingTransport()
    c = CloudflareClient(ACCOUNT, TOKEN, api_url=sb.url, transport=transport, backoff=0.01)
    yield c
    c.close()


def make_dlq(sb: RunningSandbox, messages: list[dict], *, max_retries: int = 5, **queue: object) -> None:
    sb.create_queue(ACCOUNT, DLQ, consumer={"type": "http_pull", "max_retries": max_retries}, **queue)
    for i in range(0, len(messages), 500):
        sb.load_messages(ACCOUNT, DLQ, messages[i : i + 500])


def stored(sb: RunningSandbox) -> list[dict]:
    return sb.queue_state(ACCOUNT, DLQ)["messages"]


def jobs(n: int, attempts: int = 0) -> list[dict]:
    return [
        {
            "id": f"m{i:031x}",
            "body": job(i),
            "content_type": "json",
            "timestamp_ms": 1_795_788_131_000 + i,
            "attempts": attempts,
        }
        for i in range(n)
    ]


def test_peek_consumes_nothing_and_says_when_it_saw_only_the_head(sb, client) -> None:
    make_dlq(sb, jobs(150, attempts=1))
    before = stored(sb)
    df = load_dlq(client, DLQ)
    after = stored(sb)
    assert after == before  # same messages, same attempts, no leases
    assert all(m["lease_id"] is None for m in after)
    assert len(df) == 100
    assert list(df["message_id"]) == [m["id"] for m in before[:100]]
    summary = df.attrs["dlq_collection"]
    assert summary["complete"] is False
    assert summary["backlog_count"] == 150
    assert any("peek saw 100 of 150" in w and "--dlq-mode snapshot" in w for w in summary["warnings"])
    assert df["envelope"].astype(str).eq("raw").all()
    assert df["job_id"].iloc[0] == "job-00000"


def test_peek_of_a_small_queue_is_complete(sb, client) -> None:
    make_dlq(sb, jobs(3))
    res = collect_dlq(client, DLQ)
    assert res.complete
    assert res.warnings == []
    assert len(res.frame) == 3


@pytest.mark.parametrize("json_encoding", ["plain", "base64"])
def test_every_body_encoding_and_envelope_through_the_api(sb, client, json_encoding: str) -> None:
    wrapped = {"original": job(1, "EMAIL_DELIVERY"), "error": "SMTP 421: too many connections"}
    runtime = {
        "original": {
            "id": "orig-1",
            "timestamp": "2026-11-27T14:00:00.000Z",
            "body": job(2, "DATA_SYNC"),
            "attempts": 4,
        },
        "error": "upstream 503",
    }
    b64 = lambda b: base64.b64encode(b).decode()  # noqa: E731
    msgs = [
        {"id": "raw", "body": job(0), "content_type": "json"},
        {"id": "wrapped", "body": wrapped, "content_type": "json"},
        {"id": "runtime", "body": runtime, "content_type": "json"},
        {"id": "text", "body": "resize 42.png", "content_type": "text"},
        {"id": "bytes", "body": b64(b"\x00\x01\x02binary"), "content_type": "bytes"},
        {"id": "v8", "body": b64(b'\xff\x0fo"\x04type"\x10IMAGE_PROCESSING{\x01'), "content_type": "v8"},
        {"id": "notjson", "body": b64(b"{truncated"), "content_type": "json", "body_encoding": "base64"},
        {"id": "unknown", "body": {"hello": "world"}, "content_type": "json"},
    ]
    make_dlq(sb, msgs, json_body_encoding=json_encoding)
    df = load_dlq(client, DLQ).set_index("message_id")
    assert len(df) == len(msgs)
    assert df.loc["raw", "envelope"] == "raw"
    assert df.loc["wrapped", "envelope"] == "wrapped"
    assert df.loc["wrapped", "error"] == "SMTP 421: too many connections"
    assert df.loc["wrapped", "job_type"] == "EMAIL_DELIVERY"
    assert df.loc["runtime", "envelope"] == "wrapped"
    assert df.loc["runtime", "job_type"] == "DATA_SYNC"
    assert df.loc["runtime", "error"] == "upstream 503"
    assert json.loads(df.loc["text", "payload"]) == "resize 42.png"
    assert df.loc["bytes", "content_type"] == "bytes"
    assert pd.isna(df.loc["bytes", "decode_error"])
    assert df.loc["v8", "decode_error"] == V8_FLAG
    assert "not JSON" in df.loc["notjson", "decode_error"]
    assert df.loc["notjson", "body_raw"]  # kept, never dropped
    assert df.loc["unknown", "envelope"] == "unknown"
    assert json.loads(df.loc["unknown", "payload"]) == {"hello": "world"}
    if json_encoding == "base64":
        assert (
            df.loc["raw", "body_raw"]
            == base64.b64encode(json.dumps(job(0), separators=(",", ":")).encode()).decode()
        )


def test_snapshot_reads_everything_and_releases_it(sb, client) -> None:
    make_dlq(sb, jobs(250), max_retries=5)
    before = {m["id"]: m for m in stored(sb)}
    res = collect_dlq(client, DLQ, mode="snapshot")
    assert res.complete
    assert len(res.frame) == 250
    assert res.released == 250
    assert res.max_retries == 5
    after = {m["id"]: m for m in stored(sb)}
    assert after.keys() == before.keys()
    for mid, m in after.items():
        assert m["lease_id"] is None
        assert m["body"] == before[mid]["body"]
        assert m["attempts"] == before[mid]["attempts"] + 1  # one pull = one delivery attempt
    assert res.frame["lease_id"].isna().all()
    assert set(res.frame["message_id"]) == set(before)


def test_snapshot_can_keep_leases_for_replay(sb, client) -> None:
    make_dlq(sb, jobs(30), max_retries=5)
    res = collect_dlq(client, DLQ, mode="snapshot", release=False)
    assert len(res.leases) == 30
    assert res.frame["lease_id"].notna().all()
    assert all(m["lease_id"] for m in stored(sb))
    # the caller releases the ones it will not replay
    keep = set(res.frame["lease_id"][:10])
    released, warnings = release_leases(client, res.queue_id, [lid for lid in res.leases if lid not in keep])
    assert released == 20
    assert warnings == []
    leased = [m for m in stored(sb) if m["lease_id"]]
    assert len(leased) == 10


def test_max_retries_guard_refuses_and_pulls_nothing(sb, client) -> None:
    msgs = jobs(5)
    msgs[3]["attempts"] = 2  # one more pull makes it 3 > max_retries=2: it would be deleted
    make_dlq(sb, msgs, max_retries=2)
    before = stored(sb)
    with pytest.raises(ReplayRefusedError) as info:
        collect_dlq(client, DLQ, mode="snapshot")
    msg = str(info.value)
    assert "max_retries=2" in msg
    assert "DELETED" in msg
    assert msgs[3]["id"] in msg
    assert "--force" in info.value.hint
    assert stored(sb) == before  # nothing was pulled


def test_messages_past_max_retries_beyond_the_checked_head_are_requeued_not_lost(sb, client) -> None:
    """The guard can only peek the first 100; one pulled past max_retries later is saved, not deleted."""
    msgs = jobs(150, attempts=1)
    for m in msgs[110:140]:
        m["attempts"] = 3  # one more pull makes it 4 > max_retries=3: released, it would be deleted
    make_dlq(sb, msgs, max_retries=3)
    res = collect_dlq(client, DLQ, mode="snapshot")
    after = stored(sb)
    assert len(after) == 150  # nothing lost
    assert sb.queue_state(ACCOUNT, DLQ)["stats"].get("deleted_exhausted", 0) == 0
    doomed = {m["id"] for m in msgs[110:140]}
    assert set(res.requeued) == doomed
    # the pulled copies were acked; their bodies are back as new messages (read later by the same snapshot)
    assert not doomed & {m["id"] for m in after}
    assert sorted(json.dumps(m["body"], sort_keys=True) for m in after) == sorted(
        json.dumps(m["body"], sort_keys=True) for m in msgs
    )
    assert len(res.frame) == 150
    assert not doomed & set(res.frame["message_id"].astype(str))
    assert sorted(res.frame["job_id"].astype(str)) == sorted(m["body"]["payload"]["jobId"] for m in msgs)
    assert set(res.summary()["requeued"]) == doomed
    assert sum("pushed back onto" in w for w in res.warnings) == 30
    assert all(m["lease_id"] is None for m in after)


def test_a_v8_message_past_max_retries_keeps_its_lease_and_says_what_to_do(sb, client) -> None:
    msgs = jobs(120, attempts=1)
    v8 = {
        "id": "v8-doomed",
        "body": base64.b64encode(b'\xff\x0fo"\x04type"\x04SYNC{\x01').decode(),
        "content_type": "v8",
        "attempts": 3,
    }
    make_dlq(sb, [*msgs, v8], max_retries=3)
    res = collect_dlq(client, DLQ, mode="snapshot")
    after = {m["id"]: m for m in stored(sb)}
    assert len(after) == 121
    assert after["v8-doomed"]["lease_id"]  # still leased (12 h), not released into deletion
    assert res.leases == [after["v8-doomed"]["lease_id"]]
    assert res.requeued == []
    [w] = [w for w in res.warnings if "v8-doomed" in w]
    assert "cannot be sent through the REST API" in w
    assert "--message-retries" in w
    assert sum(1 for m in after.values() if m["lease_id"]) == 1


def test_max_retries_zero_always_refuses(sb, client) -> None:
    make_dlq(sb, jobs(2), max_retries=0)
    with pytest.raises(ReplayRefusedError):
        load_dlq(client, DLQ, mode="snapshot")


def test_force_snapshot_keeps_the_body_of_what_it_loses(sb, client) -> None:
    msgs = jobs(4)
    msgs[1]["attempts"] = 2
    make_dlq(sb, msgs, max_retries=2)
    res = collect_dlq(client, DLQ, mode="snapshot", force=True)
    assert len(res.frame) == 4  # the message that was lost is in the frame (and so in the bundle)
    assert any(w.startswith("--force") for w in res.warnings)
    assert any(msgs[1]["id"] in w and "DELETED" in w for w in res.warnings)
    assert {m["id"] for m in stored(sb)} == {m["id"] for m in msgs} - {msgs[1]["id"]}


def test_snapshot_needs_a_pull_consumer(sb, client) -> None:
    sb.create_queue(ACCOUNT, DLQ, consumer={"type": "worker", "script_name": "dlq-consumer"})
    from edgeinvestigate.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        collect_dlq(client, DLQ, mode="snapshot")
    assert "wrangler queues consumer http add jobs-dlq" in info.value.hint


def test_snapshot_extends_leases_while_it_reads(sb, client) -> None:
    make_dlq(sb, jobs(40), max_retries=5)
    # 5 pulls of 0.5 s each against 2 s leases: the first extend is due 1 s after the first pull, a whole
    # second before its lease would end (slack for a busy CI machine)
    sb.set_faults("latency=0.5,ops=pull")
    res = collect_dlq(client, DLQ, mode="snapshot", batch_size=10, visibility_timeout_ms=2000)
    sb.set_faults("")
    assert len(res.frame) == 40
    assert not [w for w in res.warnings if "delivered again" in w]
    extends = [r for r in client._http._transport.requests if r.url.path.endswith("/extend")]  # type: ignore[attr-defined]
    assert extends
    assert all(m["attempts"] == 1 for m in stored(sb))


def test_errors_from_the_real_server(sb, tmp_path: Path) -> None:
    make_dlq(sb, jobs(2))
    with (
        CloudflareClient(ACCOUNT, "not-the-token", api_url=sb.url) as bad,
        CloudflareClient(ACCOUNT, TOKEN, api_url=sb.url, backoff=0.01, max_retry_wait=5) as good,
    ):
        with pytest.raises(AuthError) as info:
            load_dlq(bad, DLQ)
        assert info.value.status in (401, 403)
        assert info.value.codes
        assert "not-the-token" not in str(info.value)
        with pytest.raises(NotFoundError) as nf:
            load_dlq(good, "no-such-dlq")
        assert "unknown queue name 'no-such-dlq'" in str(nf.value)
        sb.set_faults("burst429=2,retry_after=1")
        assert len(load_dlq(good, DLQ)) == 2  # reads wait for Retry-After and go on
        sb.set_faults("burst429=1,retry_after=120")
        with pytest.raises(RateLimitedError) as rl:
            good.metrics(good.queue_id(DLQ))
        assert rl.value.retry_after == 120
        sb.set_faults("error_burst=1")
        with pytest.raises(ServerError):
            good.ack(good.queue_id(DLQ), acks=["lease-that-does-not-matter"])  # never retried
        sb.set_faults("drop=1,ops=peek")
        with pytest.raises(ServerError) as dropped:
            good.peek(good.queue_id(DLQ))
        assert "lost the connection" in dropped.value.message
        sb.set_faults("")
        assert TOKEN not in str(dropped.value)


def test_cli_snapshot_refusal_and_help(sb, tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    msgs = jobs(3)
    msgs[0]["attempts"] = 1
    make_dlq(sb, msgs, max_retries=1)
    env = dict(
        os.environ, CLOUDFLARE_API_TOKEN=TOKEN, CLOUDFLARE_ACCOUNT_ID=ACCOUNT, CLOUDFLARE_API_BASE_URL=sb.url
    )
    base = [sys.executable, "-m", "edgeinvestigate", "collect", "--dlq", DLQ, "--dlq-mode", "snapshot"]
    before = stored(sb)
    run = subprocess.run(
        [*base, "--out", str(tmp_path / "b")], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 3, run.stderr
    assert "error: refusing the snapshot: a snapshot of DLQ 'jobs-dlq' would push 1 message(s)" in run.stderr
    assert "max_retries=1" in run.stderr
    assert "--force" in run.stderr
    assert stored(sb) == before
    forced = subprocess.run(
        [*base, "--force", "--out", str(tmp_path / "c")], env=env, capture_output=True, text=True, timeout=120
    )
    assert forced.returncode == 0, forced.stderr
    assert "warning: --force" in forced.stderr
    assert "3 DLQ messages" in forced.stdout
    helptext = subprocess.run(
        [sys.executable, "-m", "edgeinvestigate", "collect", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    assert "max_retries" in " ".join(helptext.split())
    assert "DELETED" in helptext


def test_interrupted_snapshot_releases_what_it_leased(sb, client, monkeypatch: pytest.MonkeyPatch) -> None:
    make_dlq(sb, jobs(30), max_retries=5)
    real_pull = client.pull
    calls = {"n": 0}

    def pull_then_ctrl_c(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_pull(*args, **kwargs)

    monkeypatch.setattr(client, "pull", pull_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        collect_dlq(client, DLQ, mode="snapshot", batch_size=10)
    after = stored(sb)
    assert len(after) == 30
    assert all(m["lease_id"] is None for m in after)  # released at once, not left to time out
    assert sorted(m["attempts"] for m in after) == [0] * 10 + [1] * 20
