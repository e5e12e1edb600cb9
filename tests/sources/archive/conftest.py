"""A real S3-compatible server (moto's server mode) on 127.0.0.1 and a Logpush archive laid out in it.

The archive (``s3://logs/workers/``) is written exactly as Logpush writes one with ``{DATE}`` in its
destination: ``YYYYMMDD/<start>_<end>_<hash>.log.gz`` objects of five minutes each from 2026-11-26
20:00 to 2026-11-28 04:00 UTC (384 objects over three day folders, one batch across midnight in the
earlier day's folder), plus one truncated (corrupt) gzip object, one object with an odd name, one late
batch (a record older than its name says, within the margin) and ``ownership-challenge.txt``.
The same files are kept on disk, so a test can compare the two reads.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import random
import re
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

boto3 = pytest.importorskip("boto3", reason="the s3 extra (boto3) is not installed")
moto_server = pytest.importorskip("moto.server", reason="moto[s3] + flask (dev dependencies) not installed")

from botocore.config import Config  # noqa: E402

BUCKET = "logs"
PREFIX = "workers/"
URL = f"s3://{BUCKET}/{PREFIX}"
ARCHIVE_START = datetime(2026, 11, 26, 20, 0, tzinfo=UTC)
ARCHIVE_END = datetime(2026, 11, 28, 4, 0, tzinfo=UTC)
BATCH = timedelta(minutes=5)
#: the main test window (the hour after midnight: the day before matters)
SINCE = datetime(2026, 11, 27, 0, 0, tzinfo=UTC)
UNTIL = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
CORRUPT = "20261127/20261127T003000Z_20261127T003500Z_badc0ffe.log.gz"
ODD = "20261127/late-batch-from-a-replay.log.gz"
LATE = "20261127/20261127T010500Z_20261127T011000Z_1a7e1a7e.log.gz"
PLAIN = "20261127/20261127T004000Z_20261127T004500Z_0001.log"
CHALLENGE = "ownership-challenge.txt"
SECRET = "s3cr3t-DO-NOT-PRINT-7f1c"
TOKEN = "t0ken-DO-NOT-PRINT-9e2a"


def _stamp(t: datetime) -> str:
    return t.strftime("%Y%m%dT%H%M%SZ")


def record(rng: random.Random, ts_ms: int, n: int) -> dict[str, Any]:
    failed = rng.random() < 0.2
    job = f"job_{rng.getrandbits(48):012x}"
    logs = [
        {
            "Level": "log",
            "Message": [json.dumps({"event": "start", "jobId": job, "type": "EMAIL", "attempt": 1 + n % 3})],
            "TimestampMs": ts_ms + 1,
        },
        {"Level": "info", "Message": ["step", n], "TimestampMs": ts_ms + 2},
    ]
    exc = [{"Name": "Error", "Message": f"SMTP 421 try again ({n % 7})", "TimestampMs": ts_ms + 3}]
    return {
        "CPUTimeMs": rng.randrange(1, 40),
        "DispatchNamespace": "",
        "Entrypoint": "",
        "Event": {"Queue": "jobs", "BatchSize": 1 + n % 5},
        "EventTimestampMs": ts_ms,
        "EventType": "queue",
        "Exceptions": exc if failed else [],
        "Logs": logs,
        "Outcome": "exception" if failed else "ok",
        "ScriptName": "email-consumer",
        "ScriptTags": [],
        "ScriptVersion": {"ID": f"v{1 + n % 2}", "Message": "", "Tag": ""},
        "WallTimeMs": rng.randrange(5, 900),
    }


def _gz(records: list[dict[str, Any]]) -> bytes:
    text = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
    return gzip.compress(text.encode(), compresslevel=1, mtime=0)


def _ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


@dataclass
class Archive:
    """The archive on disk (``root``/<key>) and its keys relative to the prefix."""

    root: Path
    keys: list[str] = field(default_factory=list)

    def path(self, key: str) -> Path:
        return self.root / key


def build_archive(root: Path, per_batch: int = 12, seed: int = 13) -> Archive:
    rng = random.Random(seed)
    arch = Archive(root=root)
    objects: dict[str, bytes] = {}
    t, n = ARCHIVE_START, 0
    while t < ARCHIVE_END:
        # the first batch after 23:57 runs across midnight (it stays in the earlier day's folder)
        dur = timedelta(minutes=6) if (t.hour, t.minute) == (23, 55) else BATCH
        if (t.hour, t.minute) == (0, 0):
            t += timedelta(minutes=1)
            dur = timedelta(minutes=4)
        recs = []
        step = dur / per_batch
        for k in range(per_batch):
            recs.append(record(rng, _ms(t + step * k) + rng.randrange(1000), n))
            n += 1
        last = t + dur - timedelta(seconds=1)
        data = _gz(recs)
        key = f"{t:%Y%m%d}/{_stamp(t)}_{_stamp(last)}_{hashlib.sha256(data).hexdigest()[:8]}.log.gz"
        objects[key] = data
        t += dur
    # a truncated upload inside the window: the records before the cut are loaded
    whole = _gz([record(rng, _ms(SINCE + timedelta(minutes=30, seconds=k * 20)), n + k) for k in range(40)])
    objects[CORRUPT] = whole[: len(whole) // 2]
    # a name that says nothing about its time: read, records filtered by the window
    odd = [record(rng, _ms(SINCE + timedelta(minutes=m)), 900 + m) for m in (-30, 10, 20, 59, 61, 90)]
    objects[ODD] = _gz(odd)
    # a late batch: named after the window, holds a record of the window (within the 10 min margin)
    late = [record(rng, _ms(UNTIL - timedelta(minutes=3)), 990)] + [
        record(rng, _ms(UNTIL + timedelta(minutes=5, seconds=k)), 991 + k) for k in range(3)
    ]
    objects[LATE] = _gz(late)
    # an uncompressed batch (a job or a copy that stored plain NDJSON)
    plain = [record(rng, _ms(SINCE + timedelta(minutes=40, seconds=k * 30)), 995 + k) for k in range(5)]
    objects[PLAIN] = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in plain).encode()
    for key, data in sorted(objects.items()):
        p = root / key
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        arch.keys.append(key)
    return arch


class RequestLog(logging.Handler):
    """The server's own request log: werkzeug writes one INFO line per request."""

    LINE = re.compile(r'"(?P<method>[A-Z]+) (?P<target>\S+) HTTP/[\d.]+" (?P<status>\d{3})')

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self._lock2 = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        text = re.sub(r"\x1b\[[0-9;]*m", "", record.getMessage())
        with self._lock2:
            self.lines.append(text)

    def clear(self) -> None:
        with self._lock2:
            self.lines.clear()

    def requests(self) -> list[tuple[str, str, dict[str, list[str]], int]]:
        """``(method, path, query, status)`` of each logged request."""
        out = []
        for line in list(self.lines):
            m = self.LINE.search(line)
            if m:
                parts = urlsplit(m["target"])
                out.append((m["method"], unquote(parts.path), parse_qs(parts.query), int(m["status"])))
        return out

    def gets(self, bucket: str = BUCKET) -> list[str]:
        """Keys of the objects fetched (GET of an object, not a listing)."""
        head = f"/{bucket}/"
        return [
            p[len(head) :]
            for method, p, q, _ in self.requests()
            if method == "GET" and p.startswith(head) and "list-type" not in q
        ]

    def list_prefixes(self, bucket: str = BUCKET) -> list[str]:
        return [
            q.get("prefix", [""])[0]
            for method, p, q, _ in self.requests()
            if method == "GET" and p.rstrip("/") == f"/{bucket}" and "list-type" in q
        ]


@dataclass
class S3Server:
    endpoint: str
    log: RequestLog

    def client(self, **kw: Any) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id="test-key",
            aws_secret_access_key=SECRET,
            config=Config(s3={"addressing_style": "path"}),
            **kw,
        )

    def moto_api(self, path: str, body: bytes = b"") -> None:
        req = urllib.request.Request(
            f"{self.endpoint}/moto-api/{path}",
            data=body,
            method="POST",
            headers={"Content-Type": "text/plain"},  # a form body would not reach moto's handler
        )
        with urllib.request.urlopen(req, timeout=10) as resp:  # 127.0.0.1 only
            resp.read()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    from moto.server import ThreadedMotoServer

    log = RequestLog()
    wz = logging.getLogger("werkzeug")
    wz.setLevel(logging.INFO)
    wz.addHandler(log)
    wz.propagate = False
    srv = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    srv.start()
    host, port = srv.get_host_and_port()
    try:
        yield S3Server(endpoint=f"http://{host}:{port}", log=log)
    finally:
        srv.stop()
        wz.removeHandler(log)


@pytest.fixture(scope="session")
def archive(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Archive:
    arch = build_archive(tmp_path_factory.mktemp("archive") / "workers")
    s3 = s3_server.client()
    s3.create_bucket(Bucket=BUCKET)
    for key in arch.keys:
        s3.put_object(Bucket=BUCKET, Key=PREFIX + key, Body=arch.path(key).read_bytes())
    # where the job's destination path puts it: the prefix, and with {DATE} in the path a day folder
    for key in (CHALLENGE, f"20261127/{CHALLENGE}"):
        s3.put_object(Bucket=BUCKET, Key=PREFIX + key, Body=b"eyJhbGciOiJIUzI1NiJ9.e30.x")
    return arch


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, s3_server: S3Server, tmp_path: Path) -> S3Server:
    """The AWS environment a user would set, pointed at the test server; nothing of the machine's
    own AWS configuration is read, and no metadata service is asked."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "3")
    s3_server.log.clear()
    return s3_server


# --- a fault-injecting proxy in front of the server ---------------------------------------------


@dataclass
class Fault:
    """Answer requests whose path contains ``match`` (and whose method is ``method``) ``times`` times
    with ``status`` + an S3 error ``code``, or (``drop_at``) cut the body after that many bytes."""

    match: str
    times: int = 1
    status: int = 503
    code: str = "SlowDown"
    method: str = "GET"
    drop_at: int | None = None
    hits: int = 0


class FaultProxy:
    """A reverse proxy on 127.0.0.1 that forwards to the S3 server, except where a fault says."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.faults: list[Fault] = []
        self.seen: list[tuple[str, str, str]] = []  # method, path, Range header
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:
                proxy.handle(self)

            def do_HEAD(self) -> None:
                proxy.handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.endpoint = f"http://127.0.0.1:{self.server.server_port}"

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        import http.client

        self.seen.append((h.command, h.path, h.headers.get("Range", "")))
        fault = next(
            (f for f in self.faults if f.match in h.path and f.method == h.command and f.hits < f.times), None
        )
        if fault is not None and fault.drop_at is None:
            fault.hits += 1
            body = (
                f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{fault.code}</Code>'
                f"<Message>injected</Message><RequestId>1</RequestId></Error>"
            ).encode()
            h.send_response(fault.status)
            h.send_header("Content-Type", "application/xml")
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            return
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=30)
        headers = {k: v for k, v in h.headers.items() if k.lower() not in ("host", "connection")}
        conn.request(h.command, h.path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
        h.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("connection", "transfer-encoding", "content-length", "server", "date"):
                h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if fault is not None and fault.drop_at is not None and len(body) > fault.drop_at:
            fault.hits += 1
            h.wfile.write(body[: fault.drop_at])
            h.wfile.flush()
            h.close_connection = True
            return
        h.wfile.write(body)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fault_proxy(aws_env: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    proxy = FaultProxy(aws_env.endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
    try:
        yield proxy
    finally:
        proxy.close()
