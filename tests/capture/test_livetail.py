"""Live tail capture over the sandbox's tail API and trace-v1 WebSocket (a real server on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _helpers.api import ACCOUNT, SCRIPT, TOKEN, ValidatingTransport, ok, tail_event

import edgeinvestigate as ei
from edgeinvestigate._http import Secret
from edgeinvestigate.capture.livetail import TailCapture, build_filters, capture_tail
from edgeinvestigate.cloudflare.client import CloudflareClient
from edgeinvestigate.errors import ConfigError, ServerError
from edgeinvestigate.sandbox.testing import RunningSandbox, running_sandbox

FAST = (0.05, 0.05, 0.05, 0.05, 0.05)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    with running_sandbox(tmp_path_factory.mktemp("sbtail"), token=TOKEN) as sb:
        yield sb


@pytest.fixture
def sb(sandbox: RunningSandbox) -> RunningSandbox:
    sandbox.admin.post("/__admin/reset").raise_for_status()
    return sandbox


@pytest.fixture
def client(sb: RunningSandbox) -> Iterator[CloudflareClient]:
    c = CloudflareClient(ACCOUNT, TOKEN, api_url=sb.url, transport=ValidatingTransport(), backoff=0.01)
    yield c
    c.close()


def inject(sb: RunningSandbox, events: list[dict], min_clients: int = 1) -> dict:
    r = sb.admin.post(
        f"/__admin/accounts/{ACCOUNT}/scripts/{SCRIPT}/tail-events",
        json={"events": events, "min_clients": min_clients, "timeout_s": 10},
    )
    r.raise_for_status()
    return r.json()["result"]


def tails(sb: RunningSandbox) -> list[dict]:
    return sb.state()["accounts"].get(ACCOUNT, {}).get("tails", [])


class Capture(threading.Thread):
    def __init__(self, client: CloudflareClient, out: Path, **kw: object) -> None:
        super().__init__(daemon=True)
        self.client, self.out, self.kw = client, out, kw
        self.result: TailCapture | None = None
        self.error: BaseException | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        try:
            self.result = capture_tail(self.client, SCRIPT, self.out, stop=self.stop, **self.kw)  # type: ignore[arg-type]
        except BaseException as exc:
            self.error = exc


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.e2e
def test_capture_writes_ndjson_and_deletes_the_tail(sb, client, tmp_path: Path) -> None:
    out = tmp_path / "tail.ndjson"
    cap = Capture(client, out, max_events=5, duration=30)
    cap.start()
    sent = [tail_event(i, outcome="exception" if i % 2 else "ok") for i in range(5)]
    assert inject(sb, sent)["delivered"] == 5
    cap.join(20)
    assert cap.error is None
    assert cap.result is not None
    assert cap.result.events == 5
    assert cap.result.stopped == "max_events"
    assert lines(out) == sent
    assert tails(sb) == []  # deleted on exit
    # the file is what the tail loader reads
    ev = ei.load([(out, "tail")])
    assert len(ev.invocations) == 5
    assert int(ev.invocations["failed"].sum()) == 2
    assert len(ev.exceptions) == 2


@pytest.mark.e2e
def test_filters_are_sent_when_the_tail_is_created(sb, client, tmp_path: Path) -> None:
    out = tmp_path / "errors.ndjson"
    filters = build_filters(outcomes=["error"], search="job.start")
    cap = Capture(client, out, filters=filters, max_events=2, duration=30)
    cap.start()
    inject(
        sb,
        [
            tail_event(0),
            tail_event(1, outcome="exception"),
            tail_event(2),
            tail_event(3, outcome="exceededCpu"),
        ],
    )
    cap.join(20)
    assert cap.error is None
    assert [e["outcome"] for e in lines(out)] == ["exception", "exceededCpu"]
    create = next(
        r for r in client._http._transport.requests if r.method == "POST" and r.url.path.endswith("/tails")
    )  # type: ignore[attr-defined]
    assert json.loads(create.content) == {
        "filters": [
            {"outcome": ["exception", "exceededCpu", "exceededMemory", "unknown"]},
            {"query": "job.start"},
        ]
    }


@pytest.mark.e2e
def test_reconnects_with_a_new_tail_after_a_lost_connection(sb, client, tmp_path: Path) -> None:
    out = tmp_path / "tail.ndjson"
    cap = Capture(client, out, max_events=4, duration=30, backoff=FAST)
    cap.start()
    inject(sb, [tail_event(0), tail_event(1)])
    first = [t["tail_id"] for t in tails(sb)]
    r = sb.admin.post(f"/__admin/accounts/{ACCOUNT}/scripts/{SCRIPT}/tails/disconnect", json={"code": 1011})
    assert r.json()["result"]["closed"] == 1
    inject(sb, [tail_event(2), tail_event(3)])  # waits for the new connection
    cap.join(20)
    assert cap.error is None
    assert cap.result is not None
    assert cap.result.events == 4
    assert cap.result.reconnects == 1
    assert cap.result.tails_created == 2
    assert [e["eventTimestamp"] for e in lines(out)] == [tail_event(i)["eventTimestamp"] for i in range(4)]
    assert tails(sb) == []
    assert first  # the first tail existed and was deleted before the reconnect


@pytest.mark.e2e
def test_close_1000_is_a_clean_stop(sb, client, tmp_path: Path) -> None:
    cap = Capture(client, tmp_path / "t.ndjson", duration=30, backoff=FAST)
    cap.start()
    inject(sb, [tail_event(0)])
    sb.admin.post(f"/__admin/accounts/{ACCOUNT}/scripts/{SCRIPT}/tails/disconnect", json={"code": 1000})
    cap.join(20)
    assert cap.error is None
    assert cap.result is not None
    assert cap.result.stopped == "closed"
    assert cap.result.reconnects == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_gives_up_after_five_reconnects_and_deletes_every_tail(tmp_path: Path) -> None:
    port = _free_port()  # nothing listens: every WebSocket connect is refused
    created: list[str] = []
    deleted: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            tid = f"{len(created):032x}"
            created.append(tid)
            return ok(
                {"id": tid, "url": f"ws://127.0.0.1:{port}/tail/{tid}", "expires_at": "2026-11-28T12:00:00Z"}
            )
        deleted.append(request.url.path.rsplit("/", 1)[-1])
        return ok(None)

    sleeps: list[float] = []
    client = CloudflareClient(
        ACCOUNT, Secret(TOKEN), api_url="http://cf.test/client/v4", transport=httpx.MockTransport(handler)
    )
    with pytest.raises(ServerError) as info:
        capture_tail(client, SCRIPT, tmp_path / "t.ndjson", sleep=sleeps.append)
    # no WebSocket ever opened: the error says nothing was captured (not "lost")
    assert "could not open a live tail of 'jobs-consumer'" in info.value.message
    assert "after 6 attempt(s); nothing was captured" in info.value.message
    assert sleeps == [1, 2, 4, 8, 16]
    assert len(created) == 6
    assert sorted(deleted) == sorted(created)
    assert TOKEN not in str(info.value)


def test_filter_building() -> None:
    assert build_filters(
        sampling_rate=0.25,
        methods=["post"],
        headers=["X-Job:abc", "X-Trace"],
        client_ips=["self"],
        version_id="v1",
    ) == [
        {"sampling_rate": 0.25},
        {"method": ["POST"]},
        {"header": {"key": "X-Job", "query": "abc"}},
        {"header": {"key": "X-Trace"}},
        {"client_ip": ["self"]},
        {"scriptVersion": "v1"},
    ]
    with pytest.raises(ConfigError):
        build_filters(sampling_rate=1.5)
    with pytest.raises(ConfigError):
        build_filters(outcomes=["exploded"])


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # what a shell gives a background job of a script


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("sig", "ignored"), [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGINT, True)]
)
def test_cli_ctrl_c_deletes_the_tail(sb, tmp_path: Path, sig: int, ignored: bool) -> None:
    """Ctrl-C and SIGTERM stop the tail and delete it, also in a process started with SIGINT ignored
    (a background job of a shell script; Python then installs no Ctrl-C handler of its own)."""
    out = tmp_path / "cli.ndjson"
    env = dict(
        os.environ, CLOUDFLARE_API_TOKEN=TOKEN, CLOUDFLARE_ACCOUNT_ID=ACCOUNT, CLOUDFLARE_API_BASE_URL=sb.url
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edgeinvestigate",
            "-vv",
            "tail",
            SCRIPT,
            "--out",
            str(out),
            "--filter-outcome",
            "error",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_ignore_sigint if ignored else None,
    )
    try:
        inject(sb, [tail_event(0, outcome="exception"), tail_event(1)], min_clients=1)
        deadline = time.monotonic() + 10
        while (not out.exists() or not out.read_text()) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(tails(sb)) == 1
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130
    assert tails(sb) == []
    assert [e["outcome"] for e in lines(out)] == ["exception"]
    text = stdout.decode() + stderr.decode()
    assert "captured 1 tail events" in text
    assert "deleted" in stderr.decode()
    assert TOKEN not in text


def test_messages_binary_frames_overloads_and_garbage_are_all_kept(tmp_path: Path) -> None:
    import io

    from edgeinvestigate.capture.livetail import _write

    result = TailCapture(path=tmp_path / "x", script=SCRIPT)
    buf = io.StringIO()
    _write(json.dumps(tail_event(1)).encode(), buf, result, None)  # binary frame
    _write(
        json.dumps(
            {
                "message": "Tail is currently in sampling mode due to the high volume of messages",
                "type": "overload",
            }
        ),
        buf,
        result,
        None,
    )
    _write("not json at all", buf, result, None)
    rows = [json.loads(line) for line in buf.getvalue().splitlines()]
    assert rows[0] == tail_event(1)
    assert rows[1]["type"] == "overload"
    assert rows[2] == {"undecodable_tail_message": "not json at all"}
    assert (result.events, result.overloads, result.undecodable) == (2, 1, 1)


def test_unreachable_api_is_an_error_not_zero_events(tmp_path: Path) -> None:
    """--duration must not turn "could not even create a tail" into a quiet capture of 0 events."""
    url = f"http://127.0.0.1:{_free_port()}/client/v4"  # nothing listens
    client = CloudflareClient(ACCOUNT, Secret(TOKEN), api_url=url, backoff=0.01, max_attempts=1)
    sleeps: list[float] = []
    with pytest.raises(ServerError) as info:
        capture_tail(
            client,
            SCRIPT,
            tmp_path / "t.ndjson",
            duration=0.2,
            sleep=lambda s: (sleeps.append(s), time.sleep(0.2)),
        )
    client.close()
    assert "could not open a live tail" in info.value.message
    assert "could not connect" in info.value.message
    assert "nothing was captured" in info.value.message
    assert "CLOUDFLARE_API_BASE_URL" in info.value.hint
    assert sleeps == [1]  # one backoff, then the duration was over
    assert TOKEN not in str(info.value)


def test_cli_tail_with_the_api_unreachable_exits_non_zero(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLOUDFLARE_")}
    env |= {
        "CLOUDFLARE_API_TOKEN": TOKEN,
        "CLOUDFLARE_ACCOUNT_ID": ACCOUNT,
        "CLOUDFLARE_API_BASE_URL": f"http://127.0.0.1:{_free_port()}",
    }
    args = [sys.executable, "-m", "edgeinvestigate", "tail", SCRIPT, "--duration", "0.5"]
    proc = subprocess.run(
        [*args, "--out", "t.ndjson"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1, proc.stderr
    assert "captured 0 tail events" not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr
    assert "could not open a live tail of 'jobs-consumer'" in errors[0]
    assert proc.stderr.strip().splitlines()[-1].startswith("hint: check CLOUDFLARE_API_BASE_URL")
    assert TOKEN not in proc.stdout + proc.stderr
    # an output path that cannot be created is a one-line error too (the CLI's OSError boundary)
    (tmp_path / "file").write_text("x")
    proc = subprocess.run(
        [*args, "--out", "file/t.ndjson"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "error: cannot read or write file" in proc.stderr
