"""DLQ body decoding (reference D2), envelope recognition and the dlq frame, on peek-shaped records."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pandas as pd
import pytest

from edgeinvestigate.errors import ParseError
from edgeinvestigate.models import frames as schema
from edgeinvestigate.sources.api.dlq_body import V8_FLAG, decode_body, recognise_envelope
from edgeinvestigate.sources.api.dlq_frame import dlq_frame, dlq_frame_from_file

JOB = {
    "type": "EMAIL_DELIVERY",
    "payload": {
        "jobId": "job-7f3a",
        "to": "user@example.com",
        "template": "welcome",
        "data": {"name": "User"},
    },
    "metadata": {
        "attempts": 3,
        "originalTimestamp": "2026-11-27T14:02:11.482Z",
        "lastAttempt": "2026-11-27T14:05:40.001Z",
    },
}
WRAPPED = {"original": JOB, "error": "SMTP 421: too many connections"}
RUNTIME_WRAPPED = {
    "original": {
        "id": "9f2e4c1a0b7d4e3f8a6b5c4d3e2f1a0b",
        "timestamp": "2026-11-27T14:02:11.500Z",
        "body": JOB,
        "attempts": 4,
    },
    "error": "Image too large: 31457280 bytes",
}


def b64(value: bytes | str) -> str:
    raw = value.encode() if isinstance(value, str) else value
    return base64.b64encode(raw).decode()


def peeked(mid: str, body: str, ct: str | None, attempts: int = 1, ts: int = 1_795_788_131_482) -> dict:
    meta = {"CF-sourceMessageSource": "api"}
    if ct is not None:
        meta["CF-Content-Type"] = ct
    return {
        "id": mid,
        "body": body,
        "attempts": attempts,
        "timestamp_ms": ts,
        "metadata": meta,
        "ref": f"ref-{mid}",
    }


# ------------------------------------------------------------------ decode_body


def test_text_is_kept_as_is() -> None:
    d = decode_body('{"looks":"like json"}', "text")
    assert d.value == '{"looks":"like json"}'
    assert d.decode_error is None


def test_json_plain_then_base64() -> None:
    plain = decode_body(json.dumps(JOB), "json")
    assert plain.value == JOB
    assert plain.encoding == "plain"
    b = decode_body(b64(json.dumps(JOB)), "json")
    assert b.value == JOB
    assert b.encoding == "base64"


def test_json_that_is_neither_is_flagged_not_dropped() -> None:
    d = decode_body("hello", "json")  # the docs example with CF-Content-Type json, not base64 JSON
    assert d.value is None
    assert "not JSON" in d.decode_error
    assert "not base64" in d.decode_error
    bad_b64 = decode_body(b64(b"\xff\xfe binary"), "json")
    assert "not UTF-8" in bad_b64.decode_error


def test_base64_validation_is_strict() -> None:
    # characters outside the base64 alphabet must not be silently skipped
    d = decode_body("eyJhIjox*fQ==", "json")
    assert d.decode_error is not None


def test_bytes_are_base64_decoded() -> None:
    d = decode_body(b64(b"\x00\x01binary\xff"), "bytes")
    assert d.data == b"\x00\x01binary\xff"
    assert d.decode_error is None
    assert "not valid base64" in decode_body("%%%", "bytes").decode_error


def test_v8_is_opaque_and_flagged() -> None:
    d = decode_body(b64(b'\xff\x0fo"\x04type'), "v8")
    assert d.value is None
    assert d.decode_error == V8_FLAG


def test_missing_content_type_tries_json_then_v8() -> None:
    assert decode_body(json.dumps(JOB), None).value == JOB
    assert decode_body(b64(json.dumps(JOB)), None).value == JOB
    opaque = decode_body(b64(b"\xff\x0f\x00\x01"), None)
    assert "treated as v8" in opaque.decode_error


def test_unknown_content_type() -> None:
    assert "unknown content type" in decode_body("x", "protobuf").decode_error


# ------------------------------------------------------------------ envelopes


def test_raw_queue_message() -> None:
    e = recognise_envelope(JOB)
    assert e.kind == "raw"
    assert e.job_type == "EMAIL_DELIVERY"
    assert e.job_id == "job-7f3a"
    assert e.meta_attempts == 3
    assert e.error is None


def test_wrapped_queue_message() -> None:
    e = recognise_envelope(WRAPPED)
    assert e.kind == "wrapped"
    assert e.job_type == "EMAIL_DELIVERY"
    assert e.error == "SMTP 421: too many connections"


def test_wrapped_runtime_message() -> None:
    e = recognise_envelope(RUNTIME_WRAPPED)
    assert e.kind == "wrapped"
    assert e.job_type == "EMAIL_DELIVERY"
    assert e.original_id == "9f2e4c1a0b7d4e3f8a6b5c4d3e2f1a0b"
    assert e.error == "Image too large: 31457280 bytes"
    # runtime message whose body is not a QueueMessage: still wrapped, payload = body
    other = recognise_envelope(
        {
            "original": {
                "id": "m1",
                "timestamp": "2026-11-27T14:00:00Z",
                "body": {"jobId": "j-1", "url": "https://x"},
                "attempts": 2,
            },
            "error": {"message": "timeout", "name": "TimeoutError"},
        }
    )
    assert other.kind == "wrapped"
    assert other.job_type is None
    assert other.job_id == "j-1"
    assert other.meta_attempts == 2
    assert other.error == "timeout"


@pytest.mark.parametrize(
    "value",
    [
        {"type": "DATA_SYNC", "payload": {}},  # no metadata
        {"type": 7, "payload": {}, "metadata": {"attempts": 1, "originalTimestamp": "2026-11-27T14:00:00Z"}},
        {"original": "just a string", "error": "x"},
        {"hello": "world"},
        ["a", "list"],
        "a string",
        42,
    ],
)
def test_anything_else_is_unknown(value: object) -> None:
    assert recognise_envelope(value).kind == "unknown"


# ------------------------------------------------------------------ frame


def test_dlq_frame_has_the_canonical_columns_and_keeps_every_message() -> None:
    msgs = [
        peeked("m-raw", json.dumps(JOB), "json", attempts=1),
        peeked("m-b64", b64(json.dumps(WRAPPED)), "json", attempts=2),
        peeked("m-rt", json.dumps(RUNTIME_WRAPPED), "json"),
        peeked("m-text", "plain text job", "text"),
        peeked("m-bytes", b64(b"\x00\x01"), "bytes"),
        peeked("m-v8", b64(b"\xff\x0fo"), "v8"),
        peeked("m-bad", "{not json", "json"),
        peeked("m-noct", json.dumps(JOB), None),
    ]
    df = dlq_frame(msgs, "jobs-dlq")
    assert list(df.columns) == list(schema.DLQ)
    assert len(df) == len(msgs)
    rows = df.set_index("message_id")
    assert rows.loc["m-raw", "envelope"] == "raw"
    assert rows.loc["m-raw", "job_type"] == "EMAIL_DELIVERY"
    assert rows.loc["m-raw", "job_id"] == "job-7f3a"
    assert json.loads(rows.loc["m-raw", "payload"]) == JOB["payload"]
    assert rows.loc["m-raw", "original_timestamp"] == pd.Timestamp("2026-11-27T14:02:11.482Z")
    assert rows.loc["m-raw", "last_attempt"] == pd.Timestamp("2026-11-27T14:05:40.001Z")
    assert rows.loc["m-raw", "meta_attempts"] == 3
    assert rows.loc["m-raw", "enqueued_at"] == pd.Timestamp(1_795_788_131_482, unit="ms", tz="UTC")
    assert rows.loc["m-b64", "envelope"] == "wrapped"
    assert rows.loc["m-b64", "error"] == "SMTP 421: too many connections"
    assert rows.loc["m-b64", "attempts"] == 2
    assert rows.loc["m-rt", "error"] == "Image too large: 31457280 bytes"
    assert rows.loc["m-text", "envelope"] == "unknown"
    assert json.loads(rows.loc["m-text", "payload"]) == "plain text job"
    assert rows.loc["m-v8", "decode_error"] == V8_FLAG
    assert pd.isna(rows.loc["m-v8", "payload"])
    assert rows.loc["m-bad", "body_raw"] == "{not json"
    assert "not JSON" in rows.loc["m-bad", "decode_error"]
    assert rows.loc["m-noct", "envelope"] == "raw"
    assert pd.isna(rows.loc["m-noct", "content_type"])
    assert set(df["queue"].astype(str)) == {"jobs-dlq"}
    assert df["lease_id"].isna().all()
    # conform() is idempotent on our frame: the dtypes are exactly the canonical ones
    pd.testing.assert_frame_equal(schema.conform(df, "dlq"), df)


def test_bad_timestamps_are_reported_not_fatal() -> None:
    job = dict(JOB, metadata={"attempts": 1, "originalTimestamp": "yesterday-ish"})
    df = dlq_frame([peeked("m1", json.dumps(job), "json")], "q")
    assert pd.isna(df.loc[0, "original_timestamp"])
    assert "originalTimestamp 'yesterday-ish' is not a time" in df.loc[0, "decode_error"]


def test_empty_frame() -> None:
    df = dlq_frame([], "q")
    assert df.empty
    assert list(df.columns) == list(schema.DLQ)


def test_frame_from_file_variants(tmp_path: Path) -> None:
    msgs = [peeked("a", json.dumps(JOB), "json"), peeked("b", "x", "text")]
    arr = tmp_path / "messages.json"
    arr.write_text(json.dumps(msgs), encoding="utf-8")
    assert list(dlq_frame_from_file(arr, queue="jobs-dlq")["message_id"]) == ["a", "b"]
    env = tmp_path / "peek.json"
    env.write_text(json.dumps({"success": True, "errors": [], "messages": [], "result": {"messages": msgs}}))
    assert len(dlq_frame_from_file(env)) == 2
    obj = tmp_path / "obj.json"
    obj.write_text(json.dumps({"queue": "jobs-dlq", "messages": msgs}))
    assert set(dlq_frame_from_file(obj)["queue"].astype(str)) == {"jobs-dlq"}
    nd = tmp_path / "messages.ndjson"
    nd.write_text("\n".join(json.dumps(m) for m in msgs) + "\n")
    assert len(dlq_frame_from_file(nd)) == 2


def test_frame_from_file_errors_name_file_and_line(tmp_path: Path) -> None:
    nd = tmp_path / "broken.ndjson"
    nd.write_text(json.dumps(peeked("a", "x", "text")) + "\n{oops\n")
    with pytest.raises(ParseError) as info:
        dlq_frame_from_file(nd)
    assert f"{nd}:2" in str(info.value)
    notobj = tmp_path / "list.json"
    notobj.write_text(json.dumps([peeked("a", "x", "text"), 5]))
    with pytest.raises(ParseError) as info2:
        dlq_frame_from_file(notobj)
    assert "message #2" in str(info2.value)
