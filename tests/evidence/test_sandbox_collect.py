"""Workers Logs and the full ``collect`` CLI against the sandbox as a real server; the token never leaks."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _helpers.api import ACCOUNT, SCRIPT, TOKEN, VERSION, ValidatingTransport, job, wl_events

import edgeinvestigate as ei
from edgeinvestigate.cloudflare.client import CloudflareClient
from edgeinvestigate.errors import AuthError, EdgeInvestigateError
from edgeinvestigate.evidence.workers_logs import load_workers_logs
from edgeinvestigate.sandbox.testing import RunningSandbox, running_sandbox
from edgeinvestigate.sources.api.dlq import collect_dlq
from edgeinvestigate.sources.api.workers_logs import workers_logs_counts

pytestmark = pytest.mark.e2e

START = 1_795_788_000_000  # 2026-11-27T14:00:00Z
N_REQUESTS = 4600  # 4600 invocation lines + 4600 log lines + 920 exception lines = 10,120 events
SINCE, UNTIL = "2026-11-27T13:59:00Z", "2026-11-27T15:00:00Z"


@pytest.fixture(scope="module")
def sb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    with running_sandbox(tmp_path_factory.mktemp("sbcollect"), token=TOKEN) as sandbox:
        events = wl_events(N_REQUESTS, START) + wl_events(50, START, script="other-worker")
        for i in range(0, len(events), 2500):
            sandbox.load_events(ACCOUNT, events[i : i + 2500])
        sandbox.create_queue(ACCOUNT, "jobs-dlq", consumer={"type": "http_pull", "max_retries": 5})
        msgs = [
            {
                "id": f"m{i:031x}",
                "body": job(i),
                "content_type": "json",
                "timestamp_ms": START + i,
                "attempts": 0,
            }
            for i in range(120)
        ]
        msgs.append(
            {"id": "broken", "body": "e3RydW5jYXRlZA==", "content_type": "json", "body_encoding": "base64"}
        )
        sandbox.load_messages(ACCOUNT, "jobs-dlq", msgs)
        yield sandbox


@pytest.fixture
def client(sb: RunningSandbox) -> Iterator[CloudflareClient]:
    # every request is validated; responses: the first of each endpoint (2000-event pages are slow to check)
    c = CloudflareClient(ACCOUNT, TOKEN, api_url=sb.url, transport=ValidatingTransport(responses_per_path=1))
    yield c
    c.close()


def test_workers_logs_pages_through_ten_thousand_events(client) -> None:
    ev = load_workers_logs(client, SCRIPT, since=SINCE, until=UNTIL)
    src = ev.manifest["sources"][0]
    assert src["events"] == N_REQUESTS * 2 + N_REQUESTS // 5
    assert src["events"] > 10_000
    assert src["pages"] == 6  # 5 full pages of 2000 and the rest
    assert src["stopped"] == "exhausted"
    assert len(ev.invocations) == N_REQUESTS
    assert set(ev.invocations["script"].astype(str)) == {SCRIPT}
    assert ev.invocations["cpu_ms"].astype(float).eq(7.0).all()
    assert int(ev.invocations["failed"].sum()) == N_REQUESTS // 5
    assert len(ev.exceptions) == N_REQUESTS // 5
    assert ev.invocations["invocation_id"].is_unique
    queries = [r for r in client._http._transport.requests if r.url.path.endswith("/telemetry/query")]  # type: ignore[attr-defined]
    bodies = [json.loads(r.content) for r in queries]
    assert all(b["view"] == "events" and b["limit"] == 2000 for b in bodies)
    assert [("offset" in b) for b in bodies] == [False] + [True] * 5


def test_workers_logs_counts_per_bucket_and_version(client) -> None:
    df = workers_logs_counts(client, SCRIPT, since=SINCE, until=UNTIL, granularity=61)
    assert not df.empty
    assert set(df["script_version"].dropna().astype(str)) == {VERSION}
    # every failing request has an error log line, an exception line and an invocation with outcome exception
    assert int(df["errors"].sum()) == 3 * (N_REQUESTS // 5)


def test_snapshot_frame_matches_what_the_queue_holds(sb, client) -> None:
    res = collect_dlq(client, "jobs-dlq", mode="snapshot")
    held = {m["id"] for m in sb.queue_state(ACCOUNT, "jobs-dlq")["messages"]}
    assert set(res.frame["message_id"]) == held
    assert len(held) == 121
    assert res.frame.set_index("message_id").loc["broken", "decode_error"]


def _scan(token: str, *texts: str, files: list[Path] = ()) -> list[str]:
    found = [f"text #{i}" for i, t in enumerate(texts) if token in t]
    needle = token.encode()
    found += [str(p) for p in files if p.is_file() and needle in p.read_bytes()]
    return found


def test_full_collect_run_never_shows_the_token(sb, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "bundle"
    env = dict(
        os.environ, CLOUDFLARE_API_TOKEN=TOKEN, CLOUDFLARE_ACCOUNT_ID=ACCOUNT, CLOUDFLARE_API_BASE_URL=sb.url
    )
    cmd = [
        sys.executable,
        "-m",
        "edgeinvestigate",
        "-vv",
        "collect",
        "--workers-logs",
        SCRIPT,
        "--dlq",
        "jobs-dlq",
        "--since",
        SINCE,
        "--until",
        "2026-11-27T14:05:00Z",  # 5 minutes: 1200 requests, ~2600 events, 2 pages (10k paging: own test)
        "--out",
        str(out),
    ]
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "DEBUG" in run.stderr  # -vv logging was on
    assert "/telemetry/query -> 200" in run.stderr
    assert "peek saw 100 of 121" in run.stderr  # the peek limit is said plainly
    ev = ei.Evidence.open(out)
    assert len(ev.invocations) == 1200
    assert len(ev.dlq) == 100
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dlq_collections"][0]["complete"] is False
    assert any("peek saw 100 of 121" in n for n in ev.report.notes)  # kept with the evidence

    # the same with the token in a file, a failing run (unknown queue) and a wrong token
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    env2 = {k: v for k, v in env.items() if k != "CLOUDFLARE_API_TOKEN"}
    run2 = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgeinvestigate",
            "-vv",
            "collect",
            "--dlq",
            "no-such-queue",
            "--token-file",
            str(token_file),
            "--out",
            str(tmp_path / "b2"),
        ],
        env=env2,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run2.returncode != 0
    assert "unknown queue name 'no-such-queue'" in run2.stderr
    run3 = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgeinvestigate",
            "-vv",
            "collect",
            "--dlq",
            "jobs-dlq",
            "--out",
            str(tmp_path / "b3"),
        ],
        env=dict(env, CLOUDFLARE_API_TOKEN=TOKEN[::-1]),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run3.returncode != 0
    assert "CLOUDFLARE_API_TOKEN" in run3.stderr

    # in-process: every log record at DEBUG, exception messages and reprs
    caplog.set_level(logging.DEBUG)
    errors: list[str] = []
    with CloudflareClient.from_env(
        environ={
            "CLOUDFLARE_API_TOKEN": TOKEN,
            "CLOUDFLARE_ACCOUNT_ID": ACCOUNT,
            "CLOUDFLARE_API_BASE_URL": sb.url,
        }
    ) as c:
        reprs = [repr(c), str(c), repr(c.__dict__), repr(c.rate_limit)]
        frame = ei.load_dlq(c, "jobs-dlq")
        for bad in ("missing-queue",):
            try:
                ei.load_dlq(c, bad)
            except EdgeInvestigateError as exc:
                errors += [str(exc), repr(exc), exc.hint, exc.message]
    with CloudflareClient(ACCOUNT, TOKEN[:-1] + "x", api_url=sb.url) as wrong:
        with pytest.raises(AuthError) as auth:
            wrong.list_queues()
        errors += [str(auth.value), repr(auth.value), repr(wrong)]
    texts = [
        run.stdout,
        run.stderr,
        run2.stdout,
        run2.stderr,
        run3.stdout,
        run3.stderr,
        caplog.text,
        *reprs,
        *errors,
        frame.to_json(),
        json.dumps(frame.attrs, default=str),
    ]
    files = [p for d in (out, tmp_path) for p in d.rglob("*") if p != token_file]
    assert files
    assert _scan(TOKEN, *texts, files=files) == []
    assert _scan(TOKEN[:-1] + "x", *texts) == []
