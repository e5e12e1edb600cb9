"""Issue 14 item 10: saved DLQ files in the shapes they come in, and what a bad one says.

A Worker that consumes the DLQ and stores what it saw writes the runtime ``Message`` objects
(``id``/``messageId``/``message_id``, ``timestamp`` as ISO or epoch ms, ``attempts``, ``body`` an object or a
string; reference section E) under ``items`` or ``messages``: ``collect --dlq-file`` reads them. A bad
record is skipped and listed (``--strict`` stops at it), and no error talks about ``--strict`` when it was
not given."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pandas as pd
import pytest

import edgeinvestigate as ei
from edgeinvestigate.cli import main
from edgeinvestigate.errors import LoadError, ParseError
from edgeinvestigate.sources.api.dlq_frame import dlq_frame_from_file, read_dlq_file

JOB = {
    "type": "EMAIL_DELIVERY",
    "payload": {"jobId": "job_01HZX3", "to": "alice@example.org", "template": "receipt"},
    "metadata": {"attempts": 3, "originalTimestamp": "2026-11-27T14:02:11.482Z"},
}
#: what JSON.stringify(message) gives for runtime Messages (reference E), spelt as archives spell them
ITEMS = [
    {"messageId": "9f1c2d3e4b5a69788", "timestamp": "2026-11-27T14:02:11.482Z", "body": JOB, "attempts": 4},
    {
        "message_id": "9f1c2d3e4b5a69789",
        "timestamp": 1795788131482,
        "body": "resend receipt 42",
        "attempts": 1,
    },
    {
        "id": "9f1c2d3e4b5a6978a",
        "timestamp": "2026-11-27T14:03:00.000Z",
        "body": {"original": JOB, "error": "SMTP 421"},
        "attempts": 2,
    },
]


def _archive(tmp_path: Path, items: list, name: str = "dlq-archive.json", **extra: object) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({"count": len(items), "items": items} | extra, indent=2))
    return path


def test_a_workers_archive_of_runtime_messages_is_read(tmp_path):
    df, report = read_dlq_file(_archive(tmp_path, ITEMS), queue="jobs-dlq", strict=False)
    assert list(df["message_id"]) == [m.get("messageId") or m.get("message_id") or m.get("id") for m in ITEMS]
    assert list(df["enqueued_at"]) == [
        pd.Timestamp("2026-11-27T14:02:11.482Z"),
        pd.Timestamp(1795788131482, unit="ms", tz="UTC"),
        pd.Timestamp("2026-11-27T14:03:00.000Z"),
    ]
    assert list(df["attempts"]) == [4, 1, 2]
    assert list(df["content_type"]) == ["json", "text", "json"]
    assert list(df["envelope"]) == ["raw", "unknown", "wrapped"]
    assert list(df["job_id"])[::2] == ["job_01HZX3", "job_01HZX3"]
    assert df["decode_error"].isna().all()
    assert set(df["queue"]) == {"jobs-dlq"}
    assert (report.records, report.skipped, report.n_issues) == (3, 0, 0)


@pytest.mark.parametrize("key", ["items", "messages"])
def test_collect_reads_it_without_strict_and_says_nothing_of_strict(tmp_path, capsys, key):
    # the report of issue 14: "not a DLQ snapshot ... hint: run without --strict", --strict not given
    path = tmp_path / "archive.json"
    path.write_text(json.dumps({"count": 3, key: ITEMS}))
    out = tmp_path / "bundle"
    main(["collect", "--dlq-file", str(path), "--out", str(out)])
    captured = capsys.readouterr()
    assert "3 DLQ messages" in captured.out
    assert "--strict" not in captured.out + captured.err
    assert list(ei.Evidence.open(out).dlq["message_id"].astype(str)) == [
        "9f1c2d3e4b5a69788",
        "9f1c2d3e4b5a69789",
        "9f1c2d3e4b5a6978a",
    ]


def test_not_a_snapshot_names_the_shapes_not_strict(tmp_path, capsys):
    path = tmp_path / "stats.json"
    path.write_text(json.dumps({"count": 3, "queue": "jobs-dlq", "backlog": 12}))
    with pytest.raises(SystemExit) as info:
        main(["collect", "--dlq-file", str(path), "--out", str(tmp_path / "b")])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(
        f"error: {path}:1: not a DLQ snapshot: the file is one JSON object without a message array"
    )
    assert "'messages' or 'items' (such as {count, items})" in err
    assert "--strict" not in err
    assert "hint: check that this is the DLQ file" in err


def test_a_bad_message_is_skipped_and_listed_and_strict_stops_at_it(tmp_path, capsys):
    text = json.dumps({"count": 3, "items": ITEMS}, indent=2)
    text = text.replace('"attempts": 1\n', '"attempts": 1 oops\n', 1)  # the second message is damaged
    path = tmp_path / "archive.json"
    path.write_text(text)
    df, report = read_dlq_file(path, strict=False)
    assert list(df["message_id"]) == ["9f1c2d3e4b5a69788", "9f1c2d3e4b5a6978a"]
    [error] = [i for i in report.issues if i.severity == "error"]
    assert error.line == text[: error.offset].count("\n") + 1
    assert text[error.offset :].startswith('{\n      "message_id": "9f1c2d3e4b5a69789"')
    assert error.message.startswith(f"invalid JSON message at byte {error.offset} (JSON is malformed")
    assert not [i for i in report.issues if i.kind == "count"]  # three messages, as it says

    main(["collect", "--dlq-file", str(path), "--out", str(tmp_path / "b")])
    captured = capsys.readouterr()
    assert f"error: {path}:{error.line}: invalid JSON message at byte" in captured.out
    assert "1 records could not be loaded" in captured.err
    with pytest.raises(SystemExit):
        main(["collect", "--dlq-file", str(path), "--out", str(tmp_path / "c"), "--strict"])
    err = capsys.readouterr().err
    assert f"error: {path}:{error.line}: invalid JSON message at byte {error.offset}" in err
    assert "(--strict: the load stopped here)" in err
    assert "hint: nothing was written; fix the DLQ file, or collect it without --strict" in err
    assert not (tmp_path / "c").exists()


def test_hostile_messages_are_rows_or_reports_never_tracebacks(tmp_path):
    deep = "[" * 100_000 + "]" * 100_000
    text = json.dumps({"count": 4, "items": ["DEEP", ITEMS[0], "BIG", 5]}).replace('"DEEP"', deep)
    text = text.replace(
        '"BIG"', json.dumps({"id": "x", "timestamp": 253402300800000, "body": {"n": 1}, "attempts": 2**70})
    )
    path = tmp_path / "hostile.json"
    path.write_bytes(text.encode())
    df, report = read_dlq_file(path, strict=False)
    assert list(df["message_id"]) == ["9f1c2d3e4b5a69788", "x"]
    row = df.set_index("message_id").loc["x"]
    assert pd.isna(row["enqueued_at"])
    assert pd.isna(row["attempts"])
    assert (
        "timestamp 253402300800000, which is no time between 2010-01-01 and tomorrow" in row["decode_error"]
    )
    assert "attempts 1180591620717411303424 is not a count" in row["decode_error"]
    errors = [i.message for i in report.issues if i.severity == "error"]
    assert len(errors) == 2
    assert "nested too deeply" in errors[0]
    assert errors[1] == "message #4 is a JSON number 5, not a message object; skipped"
    assert [i.line for i in report.issues if i.severity == "error"] == [1, 1]  # a one-line file
    assert not [i for i in report.issues if i.kind == "count"]  # count 4: four messages, two of them bad


def test_a_count_that_does_not_match_is_noted(tmp_path):
    _df, report = read_dlq_file(_archive(tmp_path, ITEMS, count=5), strict=True)
    [note] = report.issues
    assert (note.kind, note.severity) == ("count", "info")
    assert note.message == "the file says count 5 but holds 3 messages"


def test_gzip_ndjson_and_a_peek_response(tmp_path):
    peek = [
        {
            "id": "a",
            "body": json.dumps(JOB),
            "attempts": 1,
            "timestamp_ms": 1795788131482,
            "metadata": {"CF-Content-Type": "json"},
        },
        {
            "id": "b",
            "body": "x",
            "attempts": 1,
            "timestamp_ms": 1795788131482,
            "metadata": {"CF-Content-Type": "text"},
        },
    ]
    nd = tmp_path / "messages.ndjson.gz"
    nd.write_bytes(gzip.compress(b"".join(json.dumps(m).encode() + b"\n" for m in peek)))
    assert list(dlq_frame_from_file(nd)["message_id"]) == ["a", "b"]
    env = tmp_path / "peek.json"
    env.write_text(json.dumps({"success": True, "errors": [], "messages": [], "result": {"messages": peek}}))
    frame = dlq_frame_from_file(env)
    assert list(frame["content_type"]) == ["json", "text"]
    assert frame.attrs["load_report"]["records"] == 2


def test_a_fifo_is_refused(tmp_path):
    fifo = tmp_path / "dlq.json"
    os.mkfifo(fifo)
    with pytest.raises(LoadError, match="not a regular file"):
        read_dlq_file(fifo)


def test_the_library_default_stays_strict_for_replay(tmp_path):
    # `replay plan FILE` reads a DLQ file with dlq_frame_from_file: a damaged file is refused there
    path = tmp_path / "broken.ndjson"
    path.write_text(json.dumps(ITEMS[0]) + "\n{oops\n")
    with pytest.raises(ParseError) as info:
        dlq_frame_from_file(path)
    assert f"{path}:2:" in str(info.value)
    assert "run without --strict" not in str(info.value)
    assert len(dlq_frame_from_file(path, strict=False)) == 1
