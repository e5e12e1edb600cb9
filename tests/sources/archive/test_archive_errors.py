"""Failure paths of archive reads: one-line errors with a hint for 403, NoSuchBucket, expired
credentials, an endpoint that is not S3, no credentials, a missing window; retries with backoff for
throttling and 5xx; a dropped connection resumed; an object gone between list and read."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

import edgeinvestigate as ei
from edgeinvestigate.errors import AuthError, ConfigError, LoadError, NotFoundError, ServerError
from edgeinvestigate.sources.archive import load_logpush_archive

from .conftest import BUCKET, PREFIX, SINCE, UNTIL, URL, Fault

RUNBOOK = "runbooks/logpush-archives.md"
SHORT = (SINCE + timedelta(minutes=20), SINCE + timedelta(minutes=25))


def _one_line(exc: Exception) -> str:
    text = str(exc)
    assert "\n" not in text
    assert RUNBOOK in text or "--since" in text
    return text


def test_missing_window_is_refused(aws_env, archive):
    with pytest.raises(ConfigError, match=r"needs a time window, and --until is missing") as info:
        ei.load([URL], since=SINCE)
    assert "--until now" in info.value.hint
    with pytest.raises(ConfigError, match=r"--since and --until is missing"):
        ei.load([URL])
    assert aws_env.log.requests() == []  # refused before anything was asked


def test_no_such_bucket(aws_env, archive):
    with pytest.raises(NotFoundError) as info:
        ei.load(["s3://no-such-bucket/workers/"], since=SINCE, until=UNTIL)
    text = _one_line(info.value)
    assert "there is no bucket 'no-such-bucket'" in text
    assert info.value.status == 404


def test_forbidden_and_unknown_key(aws_env, archive, monkeypatch):
    """moto with authorization on: a key without s3:GetObject, and a key the server does not know."""
    import boto3

    iam = boto3.client(
        "iam",
        endpoint_url=aws_env.endpoint,
        region_name="us-east-1",
        aws_access_key_id="admin",
        aws_secret_access_key="admin",
    )
    iam.create_user(UserName="lister")
    iam.put_user_policy(
        UserName="lister",
        PolicyName="list-only",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": ["s3:List*", "s3:ListBucket"], "Resource": "*"}],
            }
        ),
    )
    key = iam.create_access_key(UserName="lister")["AccessKey"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key["AccessKeyId"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", key["SecretAccessKey"])
    monkeypatch.delenv("AWS_SESSION_TOKEN")
    aws_env.moto_api("reset-auth", b"0")
    try:
        with pytest.raises(AuthError) as info:
            ei.load([URL], since=SHORT[0], until=SHORT[1])
        text = _one_line(info.value)
        assert "S3 refused GetObject on s3://logs/workers/20261127/" in text
        assert "HTTP 403 AccessDenied" in text
        assert key["SecretAccessKey"] not in text
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNUNKNOWN00")
        with pytest.raises(AuthError) as info:
            ei.load([URL], since=SHORT[0], until=SHORT[1])
        text = _one_line(info.value)
        assert "S3 refused ListObjectsV2" in text
        assert "the access key id is not known" in text
    finally:
        aws_env.moto_api("reset-auth", b"inf")


def test_expired_credentials(fault_proxy, archive):
    fault_proxy.faults.append(Fault(match="/", times=99, status=400, code="ExpiredToken"))
    with pytest.raises(AuthError, match=r"the S3 credentials have expired \(HTTP 400 ExpiredToken"):
        ei.load([URL], since=SINCE, until=UNTIL)


def test_throttling_and_5xx_are_retried(fault_proxy, aws_env, archive):
    key = PREFIX + "20261127/20261127T002100Z"
    fault_proxy.faults += [
        Fault(match="list-type=2", times=1, status=503, code="SlowDown"),
        Fault(match=key, times=2, status=503, code="SlowDown"),
        Fault(match=PREFIX + "20261127/20261127T001600Z", times=1, status=500, code="InternalError"),
    ]
    ev = ei.load([URL], since=SHORT[0], until=SHORT[1])
    disk = ei.load([archive.root], since=SHORT[0], until=SHORT[1])
    pd.testing.assert_frame_equal(
        ev.invocations.drop(columns=["source_file"]), disk.invocations.drop(columns=["source_file"])
    )
    assert all(f.hits == f.times for f in fault_proxy.faults)
    gets = [p for m, p, _ in fault_proxy.seen if m == "GET" and key in p]
    assert len(gets) == 3  # two SlowDowns, then the object


def test_throttling_that_does_not_stop(fault_proxy, archive):
    fault_proxy.faults.append(Fault(match="list-type=2", times=99, status=503, code="SlowDown"))
    with pytest.raises(ServerError, match=r"still failed after 3 tries \(HTTP 503 SlowDown\)"):
        ei.load([URL], since=SINCE, until=UNTIL)


def test_dropped_connection_is_resumed(fault_proxy, archive):
    key = PREFIX + "20261127/20261127T002100Z"
    fault_proxy.faults.append(Fault(match=key, times=1, drop_at=300))
    ev = ei.load([URL], since=SHORT[0], until=SHORT[1])
    disk = ei.load([archive.root], since=SHORT[0], until=SHORT[1])
    pd.testing.assert_frame_equal(ev.logs, disk.logs)
    ranges = [r for m, p, r in fault_proxy.seen if m == "GET" and key in p]
    assert ranges == ["", "bytes=300-"]
    (resumed,) = [f for f in ev.report.files if key in f.path]
    (local,) = [f for f in disk.report.files if key.removeprefix(PREFIX) in f.path]
    assert resumed.issues == []
    assert (resumed.invocations, resumed.sha256) == (local.invocations, local.sha256)


def test_object_deleted_after_listing_is_reported(aws_env, archive, monkeypatch):
    """An object gone between the listing and its GET fails alone; the load report lists it."""
    from edgeinvestigate.sources.archive import _stream

    gone = PREFIX + "20261127/20261127T002100Z"
    real = _stream.ObjectStream._open

    def _open(self):
        if self.obj.key.startswith(gone):
            self.obj = type(self.obj)(key=self.obj.key + ".deleted", size=self.obj.size)
        return real(self)

    monkeypatch.setattr(_stream.ObjectStream, "_open", _open)
    load = load_logpush_archive(URL, SHORT[0], SHORT[1])
    (failed,) = load.failed
    assert failed[0].startswith(f"s3://{BUCKET}/{gone}")
    assert "deleted after it was listed (NoSuchKey)" in failed[1]
    assert "FAILED 1: " in load.note()
    assert load.manifest()["failed"][0]["path"] == failed[0]
    report = next(r for _, r, _ in load.results if r.path == failed[0])
    assert report.skipped == 1
    assert report.issues[0].kind == "s3"


class _NotS3(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<html><body>Welcome to nginx!</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def test_endpoint_that_is_not_s3(aws_env, monkeypatch):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _NotS3)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{srv.server_port}")
        with pytest.raises(ConfigError) as info:
            ei.load([URL], since=SINCE, until=UNTIL)
        text = _one_line(info.value)
        assert "did not answer ListObjectsV2 like S3 (HTTP 200, text/html" in text
    finally:
        srv.shutdown()
        srv.server_close()


def test_endpoint_that_does_not_answer(aws_env, monkeypatch):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    with pytest.raises(ServerError) as info:
        ei.load([URL], since=SINCE, until=UNTIL)
    assert f"cannot reach the S3 endpoint http://127.0.0.1:{port}" in _one_line(info.value)


def test_no_credentials(aws_env, monkeypatch):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    with pytest.raises(ConfigError, match="no usable S3 credentials") as info:
        ei.load([URL], since=SINCE, until=UNTIL)
    assert "AWS_ACCESS_KEY_ID" in info.value.hint


def test_window_with_no_objects(aws_env, archive):
    with pytest.raises(LoadError) as info:
        ei.load([URL], since="2026-12-05T00:00Z", until="2026-12-05T01:00Z")
    assert "has no objects in the day folders of the window" in str(info.value)
    assert "its day folders run from 20261126 to 20261128" in info.value.hint
    with pytest.raises(LoadError, match="there are no Logpush objects under s3://logs/nothing-here/"):
        ei.load(["s3://logs/nothing-here/"], since=SINCE, until=UNTIL)


def test_bad_urls():
    with pytest.raises(ConfigError, match="r2:// URLs are not read directly") as info:
        ei.load(["r2://logs/workers/"], since=SINCE, until=UNTIL)
    assert "AWS_ENDPOINT_URL=https://<ACCOUNT_ID>.r2.cloudflarestorage.com" in info.value.hint
    with pytest.raises(ConfigError, match="is read as a Logpush archive, not as tail"):
        ei.load([("s3://logs/workers/", "tail")], since=SINCE, until=UNTIL)


def test_an_object_that_keeps_failing_fails_alone(fault_proxy, archive):
    key = PREFIX + "20261127/20261127T002100Z"
    fault_proxy.faults.append(Fault(match=key, times=99, status=503, code="SlowDown"))
    load = load_logpush_archive(URL, SHORT[0], SHORT[1])
    (failed,) = load.failed
    assert failed[0].startswith(f"s3://{BUCKET}/{key}")
    assert "still failed after 3 tries (HTTP 503 SlowDown)" in failed[1]
    assert len(load.results) == len(load.plan.selected)
    assert sum(1 for t, _, _ in load.results if t is not None) == len(load.plan.selected) - 1


def test_the_load_stops_when_many_objects_fail(fault_proxy, archive):
    fault_proxy.faults.append(Fault(match=PREFIX + "2026112", times=999, status=500, code="InternalError"))
    with pytest.raises(LoadError, match=r"objects could not be read \(the last: .*\); the load stopped"):
        ei.load([URL], since=SINCE, until=UNTIL)
